# Replicate-weight SEs from R's survey package for FIXED subbootstrap factors exported from
# Python (make_bootstrap_factors.py), so the Python variance formula is checked exactly.
# Run from this folder:  Rscript make_bootstrap.R   (R >= 4, survey >= 4.1)
# svrepdesign() has no type "subbootstrap"; as.svrepdesign(type = "subbootstrap") builds the
# design with scale = 1/(B-1) and rscales = 1 (survey:::subbootweights), which type = "other"
# with those arguments reproduces; the check below confirms it on R's own replicates.
# Writes bootstrap_reference.csv: design, statistic, estimate, SE (R defaults: subbootstrap
# scale 1/(B-1), rscales 1, mse = FALSE) and SE with mse = TRUE.
suppressMessages(library(survey))
options(digits = 15)

rep_design <- function(data, wt, strata, psu, factors_file) {
  f <- read.csv(factors_file)
  key_f <- paste(f$stratum, f$psu)
  key_d <- paste(data[[strata]], data[[psu]])
  idx <- match(key_d, key_f)
  stopifnot(!anyNA(idx))
  reps <- as.matrix(f[idx, grep("^rep", names(f))])
  list(
    default = svrepdesign(data = data, weights = as.formula(paste0("~", wt)),
                          repweights = reps, type = "other", scale = 1 / (ncol(reps) - 1),
                          rscales = 1, combined.weights = FALSE),
    mse = svrepdesign(data = data, weights = as.formula(paste0("~", wt)),
                      repweights = reps, type = "other", scale = 1 / (ncol(reps) - 1),
                      rscales = 1, combined.weights = FALSE, mse = TRUE)
  )
}

api <- read.csv("data/apistrat.csv")
api$row <- seq_len(nrow(api)) - 1
nh <- read.csv("data/nhanes.csv")
nh$female <- as.numeric(nh$RIAGENDR == 2)

designs <- list(
  apistrat = list(d = rep_design(api, "pw", "stype", "row", "bootstrap_factors_apistrat.csv"),
                  var = "api00"),
  nhanes = list(d = rep_design(nh, "WTMEC2YR", "SDMVSTRA", "SDMVPSU",
                               "bootstrap_factors_nhanes.csv"), var = "female")
)

out <- list()
for (name in names(designs)) {
  x <- designs[[name]]
  fml <- as.formula(paste0("~", x$var))
  for (stat in c("mean", "total")) {
    fun <- if (stat == "mean") svymean else svytotal
    a <- fun(fml, x$d$default)
    b <- fun(fml, x$d$mse)
    out[[length(out) + 1]] <- data.frame(
      design = name, variable = x$var, statistic = stat, estimate = coef(a)[[1]],
      se = SE(a)[[1]], se_mse = SE(b)[[1]]
    )
  }
}
# R's own subbootstrap design carries the same scale and centring
chk <- as.svrepdesign(svydesign(ids = ~1, strata = ~stype, weights = ~pw, data = api),
                      type = "subbootstrap", replicates = 50)
stopifnot(isTRUE(all.equal(chk$scale, 1 / 49)), all(chk$rscales == 1), !isTRUE(chk$mse))
res <- do.call(rbind, out)
write.csv(res, "bootstrap_reference.csv", row.names = FALSE)
print(res)
