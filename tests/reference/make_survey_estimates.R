# Reference values for the design-based estimates of painanx (analysis.survey.estimates),
# computed with R's survey package on the designs exported by make_survey_data.R:
# means, totals, proportions (with the svyciprop logit interval), ratios, svyby domain
# estimates with their covariance, differences and prevalence ratios (svycontrast), design
# effects (deff=TRUE and deff="replace") and t intervals on the design df.
#
# Run from this folder:  Rscript make_survey_estimates.R   (R >= 4, survey 4.1.1)
# Writes survey_estimates_reference.csv: one row per number, in long form. The first columns
# describe the case (the Python test rebuilds it from them), then key/term (domain and term of
# the number; key2/term2 for covariances), quantity and value.
#
# Conventions (those of painanx, each R's):
# * missing values: na.rm=TRUE. svyby(covmat=TRUE) fails with na.rm=TRUE in survey 4.1.1
#   (the influence functions lose the rows with NA), so domain estimates are computed on
#   subset(design, <variables complete>), which is what na.rm does for each domain.
# * intervals: confint(..., df=degf(design)) with the degrees of freedom of the WHOLE design,
#   also for domains; svyciprop(method="logit", df=degf(design)).
suppressMessages(library(survey))
options(digits = 15)

read <- function(name) read.csv(file.path("data", name), stringsAsFactors = FALSE)
apistrat <- read("apistrat.csv")
apiclus1 <- read("apiclus1.csv")
nhanes <- read("nhanes.csv")
lonely <- read("lonely_design.csv")

designs <- list(
  apistrat = function() svydesign(ids = ~1, strata = ~stype, weights = ~pw, data = apistrat),
  apiclus1 = function() svydesign(ids = ~dnum, weights = ~pw, data = apiclus1),
  nhanes = function() svydesign(ids = ~SDMVPSU, strata = ~SDMVSTRA, weights = ~WTMEC2YR,
                                nest = TRUE, data = nhanes),
  lonely_design = function() svydesign(ids = ~psu, strata = ~stratum, weights = ~weight,
                                       nest = TRUE, data = lonely)
)

rows <- list()
add <- function(spec, quantity, value, key = "", term = "", key2 = "", term2 = "") {
  rows[[length(rows) + 1]] <<- data.frame(
    spec, key = key, term = term, key2 = key2, term2 = term2, quantity = quantity,
    value = unname(as.numeric(value)), stringsAsFactors = FALSE
  )
}

lit <- function(v) if (is.character(v)) deparse(v) else as.character(v)

# the formula R estimates for a case, and the prefix R puts before level names
stat_formula <- function(cs) {
  if (!is.null(cs$level)) {
    as.formula(sprintf("~I(as.numeric(%s == %s))", cs$variable, lit(cs$level)))
  } else if (isTRUE(cs$categorical)) {
    as.formula(sprintf("~factor(%s)", cs$variable))
  } else {
    as.formula(paste0("~", cs$variable))
  }
}
term_names <- function(cs, names) {
  if (isTRUE(cs$categorical)) sub(sprintf("^factor\\(%s\\)", cs$variable), "", names) else ""
}

run_case <- function(cs, design_name, lonely_psu) {
  options(survey.lonely.psu = lonely_psu)
  full <- designs[[design_name]]()
  df <- degf(full)
  tq <- qt(0.975, df)
  d <- full
  if (!is.null(cs$domain_column)) {
    d <- full[full$variables[[cs$domain_column]] == cs$domain_value, ]
  }
  spec <- data.frame(
    case = cs$case, design = design_name, lonely_psu = lonely_psu, kind = cs$kind,
    variable = cs$variable, ratio_denominator = if (is.null(cs$den)) "" else cs$den,
    level = if (is.null(cs$level)) "" else as.character(cs$level),
    categorical = isTRUE(cs$categorical),
    by = if (is.null(cs$by)) "" else paste(cs$by, collapse = "+"),
    domain_column = if (is.null(cs$domain_column)) "" else cs$domain_column,
    domain_value = if (is.null(cs$domain_column)) "" else as.character(cs$domain_value),
    df = df, stringsAsFactors = FALSE
  )
  f <- stat_formula(cs)
  den <- if (is.null(cs$den)) NULL else as.formula(paste0("~", cs$den))
  binary <- cs$kind == "proportion" && !isTRUE(cs$categorical)

  if (is.null(cs$by)) {
    est <- function(deff) switch(cs$kind,
      mean = , proportion = svymean(f, d, na.rm = TRUE, deff = deff),
      total = svytotal(f, d, na.rm = TRUE, deff = deff),
      ratio = svyratio(f, den, d, na.rm = TRUE, deff = deff)
    )
    e <- est(TRUE)
    er <- est("replace")
    cf <- coef(e)
    se <- SE(e)
    ci <- confint(e, df = df)
    terms <- term_names(cs, names(cf))
    for (i in seq_along(cf)) {
      add(spec, "estimate", cf[i], term = terms[i])
      add(spec, "se", se[i], term = terms[i])
      add(spec, "ci_low", ci[i, 1], term = terms[i])
      add(spec, "ci_high", ci[i, 2], term = terms[i])
      add(spec, "deff", diag(as.matrix(attr(e, "deff")))[i], term = terms[i])
      add(spec, "deff_replace", diag(as.matrix(attr(er, "deff")))[i], term = terms[i])
    }
    if (binary) {
      cp <- svyciprop(f, d, method = "logit", df = df, na.rm = TRUE)
      add(spec, "logit_ci_low", attr(cp, "ci")[1])
      add(spec, "logit_ci_high", attr(cp, "ci")[2])
    }
    return(invisible())
  }

  # domains: svyby on the rows where the analysed variables are present (na.rm, see above)
  vars <- c(all.vars(f), if (!is.null(den)) all.vars(den))
  d2 <- d[complete.cases(d$variables[, vars, drop = FALSE]), ]
  byf <- as.formula(paste0("~", paste(cs$by, collapse = "+")))
  FUN <- switch(cs$kind, mean = , proportion = svymean, total = svytotal, ratio = svyratio)
  by <- function(deff, covmat) {
    if (is.null(den)) svyby(f, byf, d2, FUN, deff = deff, covmat = covmat)
    else svyby(f, byf, d2, FUN, denominator = den, deff = deff, covmat = covmat)
  }
  b <- by(TRUE, TRUE)
  br <- by("replace", FALSE)
  info <- attr(b, "svyby")
  nstats <- info$nstats
  keys <- do.call(paste, c(lapply(b[, cs$by, drop = FALSE], as.character), sep = "|"))
  ndom <- length(keys)
  terms <- if (nstats == 1) "" else term_names(cs, info$variables)
  # coef(), SE(), deff() and vcov() of svyby are term-major (all domains of term 1, ...)
  key_of <- rep(keys, times = nstats)
  term_of <- rep(terms, each = ndom)
  cf <- coef(b)
  se <- as.vector(as.matrix(SE(b)))
  ci <- confint(b, df = df)
  dfa <- as.vector(as.matrix(deff(b)))
  # deff.svyby() rejects deff="replace" objects (`!"replace"`), so read the DEff columns as it does
  ib <- attr(br, "svyby")
  dfr <- as.vector(as.matrix(br[, max(ib$margins) + ib$nstats * (1 + ib$vars) + (1:ib$nstats)]))
  v <- vcov(b)
  for (i in seq_along(cf)) {
    add(spec, "estimate", cf[i], key_of[i], term_of[i])
    add(spec, "se", se[i], key_of[i], term_of[i])
    add(spec, "ci_low", ci[i, 1], key_of[i], term_of[i])
    add(spec, "ci_high", ci[i, 2], key_of[i], term_of[i])
    add(spec, "deff", dfa[i], key_of[i], term_of[i])
    add(spec, "deff_replace", dfr[i], key_of[i], term_of[i])
    for (j in seq_along(cf)) {
      add(spec, "cov", v[i, j], key_of[i], term_of[i], key_of[j], term_of[j])
    }
  }
  if (binary) {  # svyciprop logit interval in each domain
    rowkey <- do.call(paste, c(lapply(d2$variables[, cs$by, drop = FALSE], as.character),
                               sep = "|"))
    for (k in keys) {
      cp <- svyciprop(f, d2[rowkey == k, ], method = "logit", df = df)
      add(spec, "logit_ci_low", attr(cp, "ci")[1], k)
      add(spec, "logit_ci_high", attr(cp, "ci")[2], k)
    }
  }
  # differences and prevalence ratios of two domains (svycontrast on the svyby covariance)
  for (pair in cs$pairs) {
    ia <- which(keys == pair[1])
    ib <- which(keys == pair[2])
    stopifnot(length(ia) == 1, length(ib) == 1)
    cvec <- numeric(length(cf))
    cvec[ia] <- 1
    cvec[ib] <- -1
    diff <- svycontrast(b, cvec)
    dci <- confint(diff, df = df)
    pspec <- spec
    pspec$kind <- paste0(cs$kind, "_difference")
    add(pspec, "estimate", coef(diff), pair[1], key2 = pair[2])
    add(pspec, "se", SE(diff), pair[1], key2 = pair[2])
    add(pspec, "ci_low", dci[1, 1], pair[1], key2 = pair[2])
    add(pspec, "ci_high", dci[1, 2], pair[1], key2 = pair[2])
    if (cs$kind %in% c("mean", "proportion")) {
      na <- names(cf)[ia]
      nb <- names(cf)[ib]
      logpr <- svycontrast(b, str2lang(sprintf("log(`%s` / `%s`)", na, nb)))
      pr <- svycontrast(b, str2lang(sprintf("`%s` / `%s`", na, nb)))
      lci <- confint(logpr, df = df)
      pspec$kind <- paste0(cs$kind, "_ratio")
      add(pspec, "log_ratio", coef(logpr), pair[1], key2 = pair[2])
      add(pspec, "se_log", SE(logpr), pair[1], key2 = pair[2])
      add(pspec, "ratio", coef(pr), pair[1], key2 = pair[2])
      add(pspec, "se", SE(pr), pair[1], key2 = pair[2])
      add(pspec, "ci_low", exp(lci[1, 1]), pair[1], key2 = pair[2])
      add(pspec, "ci_high", exp(lci[1, 2]), pair[1], key2 = pair[2])
    }
  }
}

case <- function(case, kind, variable, ...) list(case = case, kind = kind, variable = variable, ...)

cases <- list(
  apistrat = list(
    case("mean_api00", "mean", "api00"),
    case("mean_acs_k3_na", "mean", "acs.k3"),
    case("total_enroll", "total", "enroll"),
    case("prop_schwide_levels", "proportion", "sch.wide", categorical = TRUE),
    case("prop_schwide_yes", "proportion", "sch.wide", level = "Yes"),
    case("ratio_api", "ratio", "api00", den = "api99"),
    case("mean_api00_by_stype", "mean", "api00", by = "stype", pairs = list(c("E", "H"))),
    case("prop_schwide_yes_by_stype", "proportion", "sch.wide", level = "Yes", by = "stype",
         pairs = list(c("E", "H"), c("M", "H"))),
    case("prop_schwide_levels_by_stype", "proportion", "sch.wide", categorical = TRUE,
         by = "stype"),
    case("prop_awards_yes_in_H", "proportion", "awards", level = "Yes",
         domain_column = "stype", domain_value = "H"),
    case("total_enroll_by_stype", "total", "enroll", by = "stype", pairs = list(c("E", "M"))),
    case("ratio_api_by_stype", "ratio", "api00", den = "api99", by = "stype"),
    case("mean_api00_by_stype_awards", "mean", "api00", by = c("stype", "awards"),
         pairs = list(c("E|Yes", "E|No")))
  ),
  apiclus1 = list(
    case("mean_api00", "mean", "api00"),
    case("total_enroll", "total", "enroll"),
    case("prop_awards_yes", "proportion", "awards", level = "Yes"),
    case("prop_stype_levels", "proportion", "stype", categorical = TRUE),
    case("ratio_api", "ratio", "api00", den = "api99"),
    case("mean_api00_by_stype", "mean", "api00", by = "stype", pairs = list(c("E", "H"))),
    case("prop_awards_yes_by_stype", "proportion", "awards", level = "Yes", by = "stype",
         pairs = list(c("E", "M"))),
    case("mean_acs_k3_in_E", "mean", "acs.k3", domain_column = "stype", domain_value = "E")
  ),
  nhanes = list(
    case("mean_hichol_na", "mean", "HI_CHOL"),
    case("prop_hichol_na", "proportion", "HI_CHOL"),
    case("total_hichol_na", "total", "HI_CHOL"),
    case("prop_race_levels", "proportion", "race", categorical = TRUE),
    case("prop_agecat_levels", "proportion", "agecat", categorical = TRUE),
    case("prop_hichol_by_sex", "proportion", "HI_CHOL", by = "RIAGENDR",
         pairs = list(c("2", "1"))),
    case("prop_hichol_by_agecat", "proportion", "HI_CHOL", by = "agecat",
         pairs = list(c("(59,Inf]", "(19,39]"))),
    case("prop_hichol_by_sex_race", "proportion", "HI_CHOL", by = c("RIAGENDR", "race"),
         pairs = list(c("2|3", "1|3"))),
    case("prop_hichol_in_age40_59", "proportion", "HI_CHOL",
         domain_column = "agecat", domain_value = "(39,59]"),
    case("prop_race_levels_by_sex", "proportion", "race", categorical = TRUE, by = "RIAGENDR")
  ),
  lonely_design = list(
    case("mean_tension", "mean", "tension"),
    case("prop_pain_any", "proportion", "pain_any"),
    case("prop_pain4_levels", "proportion", "pain4", categorical = TRUE),
    case("total_visits", "total", "visits"),
    case("ratio_visits_age", "ratio", "visits", den = "age"),
    case("prop_pain_by_female", "proportion", "pain_any", by = "female",
         pairs = list(c("1", "0"))),
    case("mean_tension_by_anxiety", "mean", "tension", by = "anxiety",
         pairs = list(c("3", "0"))),
    case("prop_pain_by_anxiety", "proportion", "pain_any", by = "anxiety",
         pairs = list(c("3", "0"), c("2", "0"))),
    case("prop_pain_by_female_anxiety", "proportion", "pain_any", by = c("female", "anxiety"),
         pairs = list(c("1|3", "0|3"))),
    case("prop_pain_in_anxiety3", "proportion", "pain_any",
         domain_column = "anxiety", domain_value = 3),
    case("total_visits_by_anxiety", "total", "visits", by = "anxiety"),
    case("ratio_visits_age_by_female", "ratio", "visits", den = "age", by = "female"),
    case("prop_pain4_levels_by_female", "proportion", "pain4", categorical = TRUE,
         by = "female")
  )
)

for (design_name in names(cases)) {
  policies <- if (design_name == "lonely_design") c("certainty", "remove", "adjust", "average")
              else "fail"
  for (policy in policies) {
    for (cs in cases[[design_name]]) run_case(cs, design_name, policy)
  }
}
# R's default policy refuses the lonely design: the Python design must refuse it too
options(survey.lonely.psu = "fail")
failed <- tryCatch({ svymean(~tension, designs$lonely_design()); FALSE },
                   error = function(e) grepl("has only one PSU", conditionMessage(e)))
stopifnot(failed)

out <- do.call(rbind, rows)
out$value <- sprintf("%.17g", out$value)
write.csv(out, "survey_estimates_reference.csv", row.names = FALSE)
cat(sprintf("wrote survey_estimates_reference.csv: %d numbers in %d cases (survey %s)\n",
            nrow(out), length(unique(paste(out$design, out$lonely_psu, out$case))),
            as.character(packageVersion("survey"))))
