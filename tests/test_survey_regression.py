"""Behaviour of design-based regression beyond the R reference values: cross-checks with
statsmodels, invariances, the analytic derivatives of the ordinal likelihood, result objects
and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.miscmodels.ordinal_model import OrderedModel

from analysis.survey import (
    SurveyDesign,
    SurveyGLMResult,
    SurveyModelError,
    SurveyOrdinalResult,
    svyglm,
    svyolr,
)
from analysis.survey.ordinal import _pieces, fit_proportional_odds
from analysis.survey.regression import glm_family

DATA = Path(__file__).parent / "reference" / "data"
RHS = "C(anxiety) + age + female + bmi"


@pytest.fixture(scope="module")
def design(lonely) -> SurveyDesign:
    return SurveyDesign(
        lonely, weight="weight", strata="stratum", psu="psu", nest=True, lonely_psu="adjust",
        label="lonely design",
    )  # fmt: skip


# ------------------------------------------------------------------ agreement with statsmodels
@pytest.mark.parametrize(
    ("family", "outcome"),
    [("gaussian", "tension"), ("quasibinomial", "pain_any"), ("quasipoisson", "pain_any")],
)
def test_estimates_and_model_based_covariance_equal_statsmodels_glm(design, family, outcome):
    fit = svyglm(f"{outcome} ~ {RHS}", design, family=family)
    X = pd.get_dummies(design.data["anxiety"], prefix="a", drop_first=True, dtype=float)
    X = sm.add_constant(pd.concat([X, design.data[["age", "female", "bmi"]]], axis=1))
    w = design.weights / design.weights.mean()
    ref = sm.GLM(
        design.data[outcome], X, family=glm_family(family).statsmodels_family, freq_weights=w
    ).fit(tol=1e-12)
    np.testing.assert_allclose(fit.params.to_numpy(), ref.params.to_numpy(), rtol=1e-8)
    if family != "gaussian":  # dispersion fixed at 1: cov = (X'WX)^-1, R's naive.cov
        np.testing.assert_allclose(
            fit.model_based_cov.to_numpy(), ref.cov_params().to_numpy(), rtol=1e-7
        )


def test_results_do_not_depend_on_the_scale_of_the_weights(lonely, design):
    scaled = SurveyDesign(
        lonely.assign(weight=lonely["weight"] * 1234.5), weight="weight", strata="stratum",
        psu="psu", nest=True, lonely_psu="adjust",
    )  # fmt: skip
    a = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    b = svyglm(f"pain_any ~ {RHS}", scaled, family="quasibinomial")
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-9)
    c, d = svyolr(f"pain4 ~ {RHS}", design), svyolr(f"pain4 ~ {RHS}", scaled)
    np.testing.assert_allclose(c.params, d.params, rtol=1e-9)
    np.testing.assert_allclose(c.bse, d.bse, rtol=1e-8)


def test_design_based_ses_differ_from_model_based_ones(design):
    """The clustering matters in this design: the sandwich is not the naive covariance."""
    fit = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    naive = np.sqrt(np.diag(fit.model_based_cov))
    assert np.max(np.abs(fit.bse.to_numpy() / naive - 1)) > 0.05


# ------------------------------------------------------------------ ordinal likelihood
def test_ordinal_gradient_and_hessian_are_the_derivatives_of_the_log_likelihood(design):
    rng = np.random.default_rng(1)
    n, p = 300, 3
    X = rng.normal(size=(n, p))
    y = rng.integers(0, 4, n)
    w = rng.uniform(0.5, 2, n)
    theta = np.array([0.3, -0.2, 0.1, -1.0, 0.2, 1.1])

    def loglik(t):
        return _pieces(X, y, w, t[:p], t[p:])[0]

    def grad(t):
        return _pieces(X, y, w, t[:p], t[p:])[1].sum(axis=0)

    def central(f, t, h=1e-5):
        eye = np.eye(len(t)) * h
        return np.array([(f(t + e) - f(t - e)) / (2 * h) for e in eye]).T

    _, scores, neg_hessian = _pieces(X, y, w, theta[:p], theta[p:])
    np.testing.assert_allclose(scores.sum(axis=0), central(loglik, theta), rtol=1e-7)
    np.testing.assert_allclose(-neg_hessian, central(grad, theta), rtol=1e-7, atol=1e-8)


def test_ordinal_fit_equals_statsmodels_ordered_model_without_weights(lonely):
    X = pd.get_dummies(lonely["anxiety"], prefix="a", drop_first=True, dtype=float)
    X = pd.concat([X, lonely[["age", "female", "bmi"]]], axis=1)
    y = lonely["pain4"].to_numpy() - 1
    ours = fit_proportional_odds(X.to_numpy(), y, np.ones(len(y)), 3)
    ref = OrderedModel(y, X, distr="logit").fit(method="newton", disp=False, maxiter=100)
    cuts = ref.model.transform_threshold_params(ref.params.to_numpy())[1:-1]
    np.testing.assert_allclose(ours.beta, ref.params.to_numpy()[:6], rtol=1e-6)
    np.testing.assert_allclose(ours.zeta, cuts, rtol=1e-6)


def test_ordered_categorical_outcome_uses_its_category_order(lonely):
    labels = {1: "not at all", 2: "a little", 3: "somewhere in between", 4: "a lot"}
    order = list(labels.values())
    data = lonely.assign(
        severity=pd.Categorical(lonely["pain4"].map(labels), categories=order, ordered=True)
    )
    des = SurveyDesign(data, weight="weight", strata="stratum", psu="psu", nest=True,
                       lonely_psu="adjust")  # fmt: skip
    by_label = svyolr(f"severity ~ {RHS}", des)
    by_code = svyolr(f"pain4 ~ {RHS}", des)
    assert by_label.levels == order
    assert list(by_label.zeta.index) == ["not at all|a little", "a little|somewhere in between",
                                         "somewhere in between|a lot"]  # fmt: skip
    np.testing.assert_allclose(by_label.params.to_numpy(), by_code.params.to_numpy())
    as_text = SurveyDesign(data.assign(severity=data["severity"].astype("string")),
                           weight="weight", strata="stratum", psu="psu", nest=True,
                           lonely_psu="adjust")  # fmt: skip
    with pytest.raises(SurveyModelError, match="'severity' is text: make it an ordered"):
        svyolr(f"severity ~ {RHS}", as_text)


def test_text_columns_are_factors_like_in_r(lonely):
    """The schema stores text as pandas' "string" dtype: a bare term is a factor, as in R."""
    sex = pd.array(np.where(lonely["female"] == 1, "female", "male"), dtype="string")
    des = SurveyDesign(lonely.assign(sex=sex), weight="weight", strata="stratum", psu="psu",
                       nest=True, lonely_psu="adjust")  # fmt: skip
    bare = svyglm("pain_any ~ age + sex", des, family="quasibinomial")
    numeric = svyglm("pain_any ~ age + female", des, family="quasibinomial")
    assert list(bare.params.index) == ["Intercept", "age", "sex[T.male]"]
    assert bare.params["sex[T.male]"] == pytest.approx(-numeric.params["female"])
    assert bare.bse["sex[T.male]"] == pytest.approx(numeric.bse["female"])
    profiles = pd.DataFrame({"age": [50, 50], "sex": pd.array(["male", "female"], dtype="string")})
    np.testing.assert_allclose(
        bare.predict(profiles)["estimate"],
        numeric.predict(pd.DataFrame({"age": [50, 50], "female": [0, 1]}))["estimate"],
    )
    with pytest.raises(SurveyModelError, match="covariate profiles cannot be encoded"):
        bare.predict(profiles.assign(sex=pd.array(["other", "male"], dtype="string")))


# ------------------------------------------------------------------ domains and missing values
def test_domain_given_as_column_equals_domain_given_as_mask(lonely, design):
    data = lonely.assign(is_female=pd.array(lonely["female"] == 1, dtype="boolean"))
    data.loc[data.index[:5], "is_female"] = pd.NA  # missing: outside the domain, as R does
    des = SurveyDesign(data, weight="weight", strata="stratum", psu="psu", nest=True,
                       lonely_psu="adjust")  # fmt: skip
    mask = (data["female"] == 1).to_numpy() & (np.arange(len(data)) >= 5)
    by_col = svyglm("pain_any ~ C(anxiety) + age", des, family="quasibinomial", domain="is_female")
    by_mask = svyglm("pain_any ~ C(anxiety) + age", des, family="quasibinomial", domain=mask)
    pd.testing.assert_series_equal(by_col.params, by_mask.params)
    pd.testing.assert_series_equal(by_col.bse, by_mask.bse)
    assert by_col.n_fitted == mask.sum()
    assert "domain 'is_female'" in by_col.summary()


def test_row_labels_of_the_data_do_not_matter(lonely, design):
    shuffled_labels = lonely.set_index(pd.Index(np.arange(len(lonely))[::-1] * 3))
    des = SurveyDesign(shuffled_labels, weight="weight", strata="stratum", psu="psu", nest=True,
                       lonely_psu="adjust")  # fmt: skip
    mask = (lonely["age"] >= 40).to_numpy()
    a = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial", domain=mask)
    b = svyglm(f"pain_any ~ {RHS}", des, family="quasibinomial", domain=mask)
    np.testing.assert_allclose(a.params, b.params)
    np.testing.assert_allclose(a.bse, b.bse)


def test_rows_with_missing_values_are_dropped_and_reported(lonely):
    data = lonely.copy()
    data.loc[data.index[::50], "bmi"] = np.nan
    des = SurveyDesign(data, weight="weight", strata="stratum", psu="psu", nest=True,
                       lonely_psu="adjust")  # fmt: skip
    fit = svyglm(f"pain_any ~ {RHS}", des, family="quasibinomial")
    n_missing = int(data["bmi"].isna().sum())
    assert fit.n_fitted == len(data) - n_missing
    assert f"({n_missing} dropped for missing values)" in fit.summary()


# ------------------------------------------------------------------ results objects
def test_glm_summary_and_frame_are_readable_and_complete(design):
    fit = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    assert isinstance(fit, SurveyGLMResult)
    frame = fit.to_frame()
    assert list(frame.columns) == [
        "estimate", "std_error", "t", "p_value", "ci_low", "ci_high",
        "exp_estimate", "exp_ci_low", "exp_ci_high",
    ]  # fmt: skip
    np.testing.assert_allclose(frame["exp_estimate"], np.exp(fit.params))
    text = fit.summary()
    for piece in ("svyglm", "quasibinomial", "logit", "odds ratio", "design df 71",
                  "residual df 65", "C(anxiety)[T.3]", "lonely design"):  # fmt: skip
        assert piece in text
    gaussian = svyglm(f"tension ~ {RHS}", design)
    assert "exp_estimate" not in gaussian.to_frame().columns


def test_ordinal_summary_frame_and_probabilities(design):
    fit = svyolr(f"pain4 ~ {RHS}", design)
    assert isinstance(fit, SurveyOrdinalResult)
    frame = fit.to_frame()
    assert frame.loc["1|2", "exp_estimate"] != frame.loc["1|2", "exp_estimate"]  # NaN for cuts
    assert frame.loc["age", "exp_estimate"] == pytest.approx(np.exp(fit.params["age"]))
    assert "svyolr" in fit.summary() and "zeta_k - x'beta" in fit.summary()
    profiles = pd.DataFrame({"anxiety": [0, 3], "age": 50, "female": 1, "bmi": 28.0})
    probs = fit.predict_proba(profiles)
    assert len(probs) == 8
    np.testing.assert_allclose(probs.groupby("profile")["probability"].sum(), 1.0)
    assert (probs["ci_low"] >= 0).all() and (probs["ci_high"] <= 1).all()
    # more anxiety, more pain: P(a lot) rises with anxiety (beta > 0 in R's convention)
    top = probs[probs["level"] == 4].set_index("profile")["probability"]
    assert top[1] > top[0]


def test_wald_test_of_a_contrast_equals_the_contrast_t_squared(design):
    fit = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    trend = {"C(anxiety)[T.1]": 1, "C(anxiety)[T.2]": 2, "C(anxiety)[T.3]": 3}
    c = fit.contrast(trend, label="linear trend", exponentiate=True)
    test = fit.wald_test(contrast=trend)
    assert test.F == pytest.approx(c.t**2)
    assert test.p_value == pytest.approx(c.p_value)
    assert "linear trend" in c.summary() and "exp_estimate" in c.to_frame().columns
    joint = fit.wald_test("C(anxiety)")
    assert joint.df == 3 and joint.ddf == fit.df_resid
    assert joint.to_frame().loc["C(anxiety)", "F"] == pytest.approx(joint.F)
    assert "regTermTest" in joint.summary()
    # a matrix contrast with a null value: H0 beta_age = 0.01
    L = np.zeros((1, len(fit.params)))
    L[0, list(fit.params.index).index("age")] = 1
    t_age = (fit.params["age"] - 0.01) / fit.bse["age"]
    assert fit.wald_test(contrast=L, null=[0.01]).F == pytest.approx(t_age**2)


def test_linear_trend_is_the_slope_of_the_level_effects(design):
    fit = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    trend = fit.linear_trend("C(anxiety)")
    effects = np.r_[0.0, fit.params[["C(anxiety)[T.1]", "C(anxiety)[T.2]", "C(anxiety)[T.3]"]]]
    assert trend.estimate == pytest.approx(np.polyfit(np.arange(4), effects, 1)[0])
    assert trend.to_frame()["exp_estimate"].iloc[0] == pytest.approx(np.exp(trend.estimate))
    # doubling the scores halves the slope; the test is unchanged
    doubled = fit.linear_trend("C(anxiety)", scores=[0, 2, 4, 6])
    assert doubled.estimate == pytest.approx(trend.estimate / 2)
    assert doubled.p_value == pytest.approx(trend.p_value)
    with pytest.raises(SurveyModelError, match="has 4 levels .* got 3 scores"):
        fit.linear_trend("C(anxiety)", scores=[0, 1, 2])
    with pytest.raises(SurveyModelError, match="'anxiety' is not a term"):
        fit.linear_trend("anxiety")


def test_logistic_predictions_stay_within_zero_and_one(design):
    fit = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    profiles = pd.DataFrame({"anxiety": [0, 1, 2, 3], "age": 80, "female": 1, "bmi": 45.0})
    pred = fit.predict(profiles)
    assert ((pred["ci_low"] > 0) & (pred["ci_high"] < 1)).all()
    assert pred["estimate"].is_monotonic_increasing


# ------------------------------------------------------------------ bad input
def test_bad_input_gives_clear_errors(lonely, design):
    with pytest.raises(SurveyModelError, match=r"outcome 'tension': \d+ value\(s\) outside"):
        svyglm(f"tension ~ {RHS}", design, family="quasibinomial")
    with pytest.raises(SurveyModelError, match="family must be one of"):
        svyglm(f"pain_any ~ {RHS}", design, family="logistic")
    with pytest.raises(SurveyModelError, match="no observations"):
        svyglm(f"pain_any ~ {RHS}", design, domain=np.zeros(len(lonely), dtype=bool))
    with pytest.raises(SurveyModelError, match="has 3 values, the design has 1827"):
        svyglm(f"pain_any ~ {RHS}", design, domain=np.ones(3, dtype=bool))
    with pytest.raises(SurveyModelError, match="expected booleans"):
        svyglm(f"pain_any ~ {RHS}", design, domain=np.ones(len(lonely)))
    with pytest.raises(SurveyModelError, match="column 'female': expected booleans"):
        svyglm(f"pain_any ~ {RHS}", design, domain="female")
    with pytest.raises(SurveyModelError, match="index does not match"):
        svyglm(f"pain_any ~ {RHS}", design, domain=pd.Series(True, index=lonely.index + 1))
    with pytest.raises(SurveyModelError, match="domain column 'nope' is not in the data"):
        svyglm(f"pain_any ~ {RHS}", design, domain="nope")
    with pytest.raises(SurveyModelError, match="cannot be evaluated.*missing_column"):
        svyglm("pain_any ~ missing_column", design)
    with pytest.raises(SurveyModelError, match=r"rank deficient.*\{2\*age\}|rank deficient"):
        svyglm("pain_any ~ age + {2*age}", design)
    fit = svyglm(f"pain_any ~ {RHS}", design, family="quasibinomial")
    with pytest.raises(SurveyModelError, match="term 'C\\(sex\\)' is not in the model"):
        fit.wald_test("C(sex)")
    with pytest.raises(SurveyModelError, match="'nope' is not a coefficient"):
        fit.contrast({"nope": 1})
    with pytest.raises(SurveyModelError, match="3 or more levels"):
        svyolr(f"pain_any ~ {RHS}", design)
    with pytest.raises(SurveyModelError, match="must be a column"):
        svyolr(f"C(pain4) ~ {RHS}", design)
    data = lonely.assign(visits=-lonely["visits"])
    des = SurveyDesign(data, weight="weight", strata="stratum", psu="psu", nest=True,
                       lonely_psu="adjust")  # fmt: skip
    with pytest.raises(SurveyModelError, match=r"outcome 'visits': \d+ negative"):
        svyglm(f"visits ~ {RHS}", des, family="poisson")


def test_rank_deficiency_names_the_aliased_column(design):
    with pytest.raises(SurveyModelError, match=r"aliased column\(s\): \['age_copy'\]"):
        des = SurveyDesign(design.data.assign(age_copy=design.data["age"] * 2), weight="weight",
                           strata="stratum", psu="psu", nest=True, lonely_psu="adjust")  # fmt: skip
        svyglm("pain_any ~ age + age_copy", des)
