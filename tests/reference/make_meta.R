# Reference values for analysis.evidence.meta from R metafor (random-effects meta-analysis).
# Run from the project root:  Rscript tests/reference/make_meta.R
# Writes tests/reference/meta_reference.json. Tests compare against that file; they never run R.
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

fit_values <- function(res, test) {
  pr <- predict(res)
  list(
    test = test,
    estimate = unname(as.numeric(coef(res))),
    se = res$se,
    ci_low = res$ci.lb,
    ci_high = res$ci.ub,
    zval = res$zval,
    pval = res$pval,
    tau2 = res$tau2,
    se_tau2 = if (is.null(res$se.tau2) || is.na(res$se.tau2)) NULL else res$se.tau2,
    I2 = res$I2,
    H2 = res$H2,
    Q = res$QE,
    Q_df = res$k - res$p,
    Q_pval = res$QEp,
    pi_low = pr$pi.lb,
    pi_high = pr$pi.ub,
    k = res$k
  )
}

one_dataset <- function(name, yi, vi, note) {
  out <- list(name = name, note = note, yi = as.numeric(yi), vi = as.numeric(vi), fits = list())
  for (method in c("DL", "REML")) {
    for (test in c("z", "knha")) {
      # REML is iterative: converge tightly so the reference is the REML solution itself,
      # not metafor's default stopping point (threshold 1e-5 on the change in tau^2).
      res <- rma(yi = yi, vi = vi, method = method, test = test,
                 control = list(threshold = 1e-12, maxiter = 10000))
      out$fits[[paste(method, test, sep = "_")]] <- c(list(method = method), fit_values(res, test))
    }
  }
  # metafor's default stopping rule, kept for information (shows the size of the difference).
  out$reml_default_tau2 <- rma(yi = yi, vi = vi, method = "REML")$tau2
  out
}

# 1. BCG vaccine trials: log risk ratios from 2x2 tables (escalc measure "RR").
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
ds_bcg <- one_dataset("dat.bcg", bcg$yi, bcg$vi, "metafor dat.bcg, escalc(measure='RR')")
ds_bcg$counts <- list(
  events_treat = dat.bcg$tpos, n_treat = dat.bcg$tpos + dat.bcg$tneg,
  events_ctrl = dat.bcg$cpos, n_ctrl = dat.bcg$cpos + dat.bcg$cneg
)

# 2. Normand (1999) length of hospital stay: mean differences (escalc measure "MD").
nor <- escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i,
              m2i = m2i, sd2i = sd2i, n2i = n2i, data = dat.normand1999)
ds_nor <- one_dataset("dat.normand1999", nor$yi, nor$vi, "metafor dat.normand1999, escalc(measure='MD')")

# 3. A small, homogeneous set (tau^2 estimate truncated at 0 by DL and REML).
yi_h <- c(0.10, 0.12, 0.08, 0.11)
vi_h <- c(0.04, 0.05, 0.03, 0.06)
ds_hom <- one_dataset("homogeneous", yi_h, vi_h, "four near-identical effects: tau^2 = 0 boundary")

ref <- list(
  generated_by = "tests/reference/make_meta.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  level = 95,
  datasets = list(ds_bcg, ds_nor, ds_hom)
)
write_json(ref, "tests/reference/meta_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null")
cat("wrote tests/reference/meta_reference.json\n")
