# Reference values for direct standardisation (analysis.survey.standardize), computed with R's
# survey package: svystandardize(design, by=, over=, population=, excluding.missing=~y), then
# svymean(~y, .) (over = ~1) or svyby(~y, ~over, ., svymean) (one estimate per over group).
#
# Run from this folder:  Rscript make_standardize.R   (R >= 4, survey 4.1.1)
# Writes standardize_reference.csv: one row per number. The first columns describe the case
# (the Python test rebuilds it from them): design, variable (level: the share equal to it),
# by, over ("" for all), population as "level=count;..." (the standard population of the by
# groups); then domain (the over group, "" for all), quantity (estimate, se, df) and value.
# The designs are those of make_survey_data.R (committed in data/).
suppressMessages(library(survey))
options(digits = 15)

read <- function(name) read.csv(file.path("data", name), stringsAsFactors = FALSE)
apistrat <- read("apistrat.csv")
apiclus1 <- read("apiclus1.csv")
nhanes <- read("nhanes.csv")

designs <- list(
  apistrat = function() svydesign(ids = ~1, strata = ~stype, weights = ~pw, data = apistrat),
  apiclus1 = function() svydesign(ids = ~dnum, weights = ~pw, data = apiclus1),
  nhanes = function() svydesign(ids = ~SDMVPSU, strata = ~SDMVSTRA, weights = ~WTMEC2YR,
                                nest = TRUE, data = nhanes)
)

# population: named by the levels of `by` (R takes them in sorted level order)
cases <- list(
  list(case = "nhanes_hichol_by_race", design = "nhanes", variable = "HI_CHOL", level = "",
       by = "agecat", over = "race",
       population = c("(0,19]" = 55901, "(19,39]" = 77670, "(39,59]" = 72816,
                      "(59,Inf]" = 45364)),
  list(case = "nhanes_hichol_all", design = "nhanes", variable = "HI_CHOL", level = "",
       by = "agecat", over = "",
       population = c("(0,19]" = 55901, "(19,39]" = 77670, "(39,59]" = 72816,
                      "(59,Inf]" = 45364)),
  list(case = "nhanes_hichol_by_sex_3", design = "nhanes", variable = "HI_CHOL", level = "",
       by = "agecat", over = "RIAGENDR",
       population = c("(0,19]" = 0.2, "(19,39]" = 0.3, "(39,59]" = 0.3, "(59,Inf]" = 0.2)),
  list(case = "apistrat_target_by_awards", design = "apistrat", variable = "target",
       level = "", by = "yr.rnd", over = "awards", population = c(No = 3, Yes = 1)),
  list(case = "apistrat_schwide_all", design = "apistrat", variable = "sch.wide",
       level = "Yes", by = "yr.rnd", over = "", population = c(No = 0.7, Yes = 0.3)),
  list(case = "apiclus1_api00_all", design = "apiclus1", variable = "api00", level = "",
       by = "stype", over = "", population = c(E = 0.6, H = 0.15, M = 0.25)),
  list(case = "apiclus1_api00_by_both", design = "apiclus1", variable = "api00", level = "",
       by = "stype", over = "both", population = c(E = 0.5, H = 0.3, M = 0.2))
)

rows <- list()
for (cs in cases) {
  d <- designs[[cs$design]]()
  y <- cs$variable
  if (nzchar(cs$level)) {
    d <- update(d, .y = as.numeric(get(cs$variable) == cs$level))
    y <- ".y"
  }
  over <- if (nzchar(cs$over)) as.formula(paste0("~", cs$over)) else ~1
  std <- svystandardize(d, by = as.formula(paste0("~", cs$by)), over = over,
                        population = unname(cs$population),
                        excluding.missing = as.formula(paste0("~", y)))
  if (nzchar(cs$over)) {
    est <- svyby(as.formula(paste0("~", y)), over, std, svymean)
    domains <- as.character(est[[cs$over]])
    values <- coef(est)
    ses <- SE(est)
  } else {
    est <- svymean(as.formula(paste0("~", y)), std)
    domains <- ""
    values <- coef(est)
    ses <- SE(est)
  }
  population <- paste(names(cs$population), cs$population, sep = "=", collapse = ";")
  for (i in seq_along(domains)) {
    for (q in c("estimate", "se", "df")) {
      value <- switch(q, estimate = values[[i]], se = ses[[i]], df = degf(std))
      rows[[length(rows) + 1]] <- data.frame(
        case = cs$case, design = cs$design, variable = cs$variable, level = cs$level,
        by = cs$by, over = cs$over, population = population, domain = domains[[i]],
        quantity = q, value = sprintf("%.17g", value), stringsAsFactors = FALSE
      )
    }
  }
}
out <- do.call(rbind, rows)
write.csv(out, "standardize_reference.csv", row.names = FALSE)
cat(sprintf("wrote %d numbers for %d cases\n", nrow(out), length(cases)))
