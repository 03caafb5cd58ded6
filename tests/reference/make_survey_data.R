# Writes the example designs the survey-core tests use, as CSV, from R's survey package
# (apistrat, apiclus1, nhanes) plus a synthetic design with lonely PSUs.
# Run from this folder:  Rscript make_survey_data.R   (R >= 4, survey >= 4.1)
suppressMessages(library(survey))
data(api)
data(nhanes)
dir.create("data", showWarnings = FALSE)
write.csv(apistrat, "data/apistrat.csv", row.names = FALSE)
write.csv(apiclus1, "data/apiclus1.csv", row.names = FALSE)
write.csv(nhanes, "data/nhanes.csv", row.names = FALSE)

# A synthetic design with lonely PSUs: 40 strata with 1-4 PSUs (5 strata have one PSU),
# PSU labels reused across strata (so nest=TRUE is needed), unequal weights, a continuous,
# a binary, a count and a 4-level ordinal outcome, and covariates.
set.seed(20261124)
n_psu <- c(rep(1, 5), sample(2:4, 35, replace = TRUE))
rows <- list()
for (h in seq_along(n_psu)) {
  for (j in seq_len(n_psu[h])) {
    m <- sample(8:25, 1)
    u <- rnorm(1, 0, 0.4)
    age <- round(runif(m, 18, 85))
    female <- rbinom(m, 1, 0.52)
    anxiety <- sample(0:3, m, replace = TRUE, prob = c(0.75, 0.14, 0.06, 0.05))
    bmi <- round(rnorm(m, 28, 5), 1)
    eta <- -1.2 + 0.015 * (age - 50) + 0.2 * female + 0.35 * anxiety + 0.03 * (bmi - 28) + u
    pain_any <- rbinom(m, 1, plogis(eta))
    latent <- eta + rlogis(m)
    pain4 <- cut(latent, c(-Inf, -0.6, 0.5, 1.6, Inf), labels = FALSE)
    visits <- rpois(m, exp(0.2 + 0.25 * anxiety + 0.5 * u))
    tension <- 2 + 0.8 * anxiety + 0.02 * (age - 50) + u + rnorm(m)
    w <- round(runif(m, 200, 3000) * (1 + female), 2)
    rows[[length(rows) + 1]] <- data.frame(
      stratum = h, psu = j, weight = w, age = age, female = female, anxiety = anxiety,
      bmi = bmi, pain_any = pain_any, pain4 = pain4, visits = visits, tension = round(tension, 3)
    )
  }
}
lonely <- do.call(rbind, rows)
write.csv(lonely, "data/lonely_design.csv", row.names = FALSE)
cat("wrote data/apistrat.csv data/apiclus1.csv data/nhanes.csv data/lonely_design.csv\n")
