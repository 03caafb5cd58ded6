"""C1, C3 and C7 with the NHIS 2017 measures: low back pain in the past 3 months (PAINLB), the
K6 nervousness item (ASINERV), serious psychological distress and the depressed-mood proxy.

A constructed stratified, clustered world with known coefficients checks the new code paths
(synthetic: it validates the estimators, never evidence); the committed 2017 extract checks
that the real findings exist under the registry's keys and measures. No 2017 number is typed
in here beyond sanity bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.claims.verdicts import evaluate_claims
from analysis.core.findings import estimand_info
from analysis.data import load
from analysis.data.schema import categorical_dtype
from analysis.models import overview
from analysis.models.anxiety_pain import anxiety_and_pain
from analysis.models.benzodiazepines import benzodiazepines_and_pain
from analysis.models.comorbidity import comorbidity
from analysis.models.design import survey_design

C1_KEYS = {
    "prevalence_nervous_most_plus_among_low_back_pain_3m": "proportion",
    "prevalence_nervous_some_plus_among_low_back_pain_3m": "proportion",
    "prevalence_serious_distress_among_low_back_pain_3m": "proportion",
    "prevalence_ratio_nervous_most_plus_low_back_pain_3m": "prevalence ratio",
    "prevalence_ratio_nervous_some_plus_low_back_pain_3m": "prevalence ratio",
    "prevalence_ratio_serious_distress_low_back_pain_3m": "prevalence ratio",
}
C3_C7_KEYS = {
    "or_low_back_pain_3m_nervous_most_plus": "C3",
    "trend_nervousness_frequency_low_back_pain_3m": "C3",
    "or_low_back_pain_3m_depressed_mood": "C3",
    "or_low_back_pain_3m_obesity": "C7",
    "or_low_back_pain_3m_inactive": "C7",
}
GAD7_KEYS = {
    "prevalence_gad7_ge10_among_chronic_back_pain",
    "or_back_pain_any_gad7_moderate_plus",
    "trend_gad7_category_back_pain",
    "or_back_pain_obesity",
}
N_STRATA, N_PSU = 30, 6
BETA = {"step": 0.3, "depressed": 0.5, "obese": 0.45, "inactive": 0.3, "age10": 0.12}
P_DISTRESS = {True: 0.09, False: 0.03}  # serious distress with / without low back pain: PR 3


def k6_world(n: int, seed: int) -> pd.DataFrame:
    """An NHIS 2017-like frame: low back pain ~ logistic(nervousness step, depressed mood,
    age, BMI group, activity); serious distress depends on low back pain only."""
    rng = np.random.default_rng(seed)
    stratum = rng.integers(0, N_STRATA, n)
    psu = rng.integers(1, N_PSU + 1, n)  # labels repeat across strata: nest=True
    cluster = rng.normal(0, 0.5, (N_STRATA, N_PSU + 1))[stratum, psu]
    step = np.clip(np.floor(rng.exponential(0.9, n) + 0.6 * (cluster > 0.3)), 0, 3).astype(int)
    levels = np.array(["none of the time", "a little", "some", "most"])[step]
    levels = np.where((step == 3) & (rng.random(n) < 0.4), "all of the time", levels)
    depressed = rng.random(n) < 0.02 + 0.06 * step
    age = rng.uniform(18, 85, n)
    bmi = np.clip(rng.normal(28, 5.5, n), 16, 60)
    activity = rng.choice([0, 1, 2], n, p=[0.3, 0.2, 0.5])
    eta = (
        -1.3
        + BETA["step"] * step
        + BETA["depressed"] * depressed
        + BETA["obese"] * (bmi >= 30)
        + BETA["inactive"] * (activity == 0)
        + BETA["age10"] * (age - 50) / 10
        + 0.3 * cluster
    )
    pain = rng.random(n) < 1 / (1 + np.exp(-eta))
    distress = rng.random(n) < np.where(pain, P_DISTRESS[True], P_DISTRESS[False])
    df = pd.DataFrame(
        {
            "source": pd.array(["nhis"] * n, dtype="string"),
            "survey_year": pd.array([2017] * n, dtype="Int64"),
            "weight": np.exp(rng.normal(0, 0.4, n)) * (1 + stratum % 3),
            "stratum": pd.array(stratum.astype(str), dtype="string"),
            "psu": pd.array(psu.astype(str), dtype="string"),
            "age": age,
            "sex": pd.Categorical(rng.choice(["female", "male"], n), categories=["female", "male"]),
            "bmi": bmi,
            "physical_activity": pd.Categorical.from_codes(
                activity, dtype=categorical_dtype("physical_activity")
            ),
            "low_back_pain_3m": pd.array(pain, dtype="boolean"),
            "nervous_frequency": pd.Series(levels).astype(categorical_dtype("nervous_frequency")),
            "serious_psychological_distress": pd.array(distress, dtype="boolean"),
            "depressed_mood_most_plus": pd.array(depressed, dtype="boolean"),
        }
    )
    # a few missing answers, as in the survey (na.rm semantics)
    df.loc[rng.random(n) < 0.02, "nervous_frequency"] = np.nan
    df.loc[rng.random(n) < 0.02, "serious_psychological_distress"] = pd.NA
    df.loc[rng.random(n) < 0.005, "low_back_pain_3m"] = pd.NA
    return df


def _within(est, se, truth, k=4.0):
    assert abs(est - truth) <= k * se, f"estimate {est:.4g} (SE {se:.3g}) vs truth {truth:.4g}"


@pytest.fixture(scope="module")
def world():
    return k6_world(15_000, seed=17)


@pytest.fixture(scope="module")
def world_models(world):
    return anxiety_and_pain(world)


# ------------------------------------------------------------------ constructed world


def test_k6_model_recovers_coefficients(world_models):
    r = world_models
    assert r.measures["name"].startswith("low back pain and K6 nervousness")
    assert r.ordinal is None and r.logistic_collapsed is None  # yes/no outcome: logistic only
    b, se = r.logistic.params, r.logistic.bse
    for k, lv in enumerate(["a little", "some", "most or all"], start=1):
        _within(b[f"nervous[T.{lv}]"], se[f"nervous[T.{lv}]"], k * BETA["step"])
    _within(b["depressed_mood"], se["depressed_mood"], BETA["depressed"])
    _within(b["bmi_group[T.obese]"], se["bmi_group[T.obese]"], BETA["obese"])
    _within(b["activity[T.inactive]"], se["activity[T.inactive]"], BETA["inactive"])
    trend = r.estimates["trend"]
    _within(trend.log_estimate, trend.se, BETA["step"])
    assert r.dose_response.df == 3 and r.dose_response.p_value < 1e-6
    # the registry's most-or-all OR is the main model's top level, not a separate fit
    top = r.estimates["nervous_most_or_all"]
    assert top.log_estimate == pytest.approx(b["nervous[T.most or all]"], rel=1e-12)
    assert r.predicted["probability"].is_monotonic_increasing


def test_k6_findings_under_the_registry_keys(world_models):
    fs = world_models.to_findings("nhis")
    measured = {f.estimand: f for f in fs if f.measured}
    assert set(measured) == set(C3_C7_KEYS)
    for key, claim in C3_C7_KEYS.items():
        f = measured[key]
        assert f.claim_id == claim and f.measure == estimand_info(key).measure
        assert f.ci_low < f.estimate < f.ci_high
        assert f.extra["evalue_point"] > 1 and f.extra["evalue_ci"] <= f.extra["evalue_point"]
        assert "depressed_mood" in f.extra["covariates"]
        assert any("not the GAD-7" in c for c in f.caveats)
        assert any("depression proxy" in c for c in f.caveats)
    # the GAD-7 keys: not measured here, and said so
    unmeasured = {f.estimand: f for f in fs if not f.measured}
    assert {"or_back_pain_any_gad7_moderate_plus", "or_back_pain_obesity"} <= set(unmeasured)
    assert unmeasured["or_back_pain_obesity"].extra["missing_column"] == "back_pain_severity"
    evaluate_claims(fs)  # measure/source checks pass


def test_k6_comorbidity_recovers_the_ratio_on_one_design(world):
    res = comorbidity(world)
    t = res.to_frame()
    assert list(t.index) == ["nervous_most_plus", "nervous_some_plus", "serious_distress"]
    sd = t.loc["serious_distress"]
    _within(sd["p_exposed"], sd["p_exposed_se"], P_DISTRESS[True])
    _within(math.log(sd["prevalence_ratio"]), sd["pr_se_log"], math.log(3.0))
    # nervous most or all: the domain estimate of the survey core on the full design
    df = world.copy()
    nervous = df["nervous_frequency"]
    df["flag"] = nervous.isin(["most", "all of the time"]).astype(float).where(nervous.notna())
    pain = df["low_back_pain_3m"].fillna(False).to_numpy(bool)
    est = survey_design(df).proportion("flag", domain=pain)
    row = t.loc["nervous_most_plus"]
    assert est.value == pytest.approx(row["p_exposed"], rel=1e-12)
    assert est.std_error == pytest.approx(row["p_exposed_se"], rel=1e-12)
    assert res.exposure_rule == "low back pain in the past 3 months"
    assert any("includes short episodes" in c for c in res.caveats("nhis"))


def test_yes_no_outcome_keeps_missing_answers_missing(world):
    """`levels: [true]` on a boolean column: a missing answer is left out, not counted no."""
    res = comorbidity(world)
    df = world.copy()
    sd = df["serious_psychological_distress"]
    df["sd"] = sd.to_numpy(dtype=float, na_value=np.nan)
    by = survey_design(df).proportion("sd", domain=df["low_back_pain_3m"].fillna(False))
    assert by.value == pytest.approx(res.table.loc["serious_distress", "p_exposed"], rel=1e-12)


def test_absent_depression_proxy_is_not_measured(world):
    r = anxiety_and_pain(world.drop(columns=["depressed_mood_most_plus"]))
    fs = {f.estimand: f for f in r.to_findings("nhis")}
    dep = fs["or_low_back_pain_3m_depressed_mood"]
    assert not dep.measured and dep.extra["missing_column"] == "depressed_mood_most_plus"
    trend = fs["trend_nervousness_frequency_low_back_pain_3m"]
    assert trend.measured and any("Not adjusted for depression" in c for c in trend.caveats)
    # without the nervousness item C3 is not estimable, C7 still is
    no_nervous = anxiety_and_pain(world.drop(columns=["nervous_frequency"]))
    g = {f.estimand: f for f in no_nervous.to_findings("nhis")}
    assert not g["or_low_back_pain_3m_nervous_most_plus"].measured
    assert g["or_low_back_pain_3m_obesity"].measured


def test_2017_keys_are_not_written_for_other_sources(world):
    """The registry takes the 2017 keys from NHIS only: other sources do not write them."""
    help_like = pd.DataFrame({"source": "help", "weight": 1.0, "psu": np.arange(40).astype(str)})
    for result in (comorbidity(help_like), anxiety_and_pain(help_like)):
        keys = {f.estimand for f in result.to_findings("help")}
        assert keys and not keys & (set(C1_KEYS) | set(C3_C7_KEYS))
    synthetic = {f.estimand for f in comorbidity(world).to_findings("synthetic")}
    assert not synthetic & set(C1_KEYS)


# ------------------------------------------------------------------ the committed extract


@pytest.fixture(scope="module")
def nhis2017():
    df = load("nhis")
    assert set(df["survey_year"].dropna().unique()) == {2017}
    return df


@pytest.fixture(scope="module")
def nhis_findings(nhis2017):
    return comorbidity(nhis2017).to_findings("nhis") + anxiety_and_pain(nhis2017).to_findings(
        "nhis"
    )


def test_extract_findings_exist_with_the_registry_measures(nhis2017, nhis_findings):
    measured = {f.estimand: f for f in nhis_findings if f.measured}
    assert set(measured) == set(C1_KEYS) | set(C3_C7_KEYS)
    for key, f in measured.items():
        assert f.source == "nhis" and f.measure == estimand_info(key).measure
        assert f.ci_low < f.estimate < f.ci_high
        if f.measure == "proportion":
            assert 0.005 < f.estimate < 0.6  # sanity bounds only
        else:
            assert 0.5 < f.estimate < 20 and f.extra["evalue_point"] >= 1
    assert {f.n for f in measured.values()} == {len(nhis2017)}
    unmeasured = {f.estimand for f in nhis_findings if not f.measured}
    assert GAD7_KEYS <= unmeasured  # 2017 has no GAD-7, chronic pain or severity


def test_extract_domains_use_the_full_design(nhis2017):
    """The C1 estimates equal the survey core's estimates in each domain of the full design."""
    res = comorbidity(nhis2017)
    df = nhis2017.copy()
    nervous = df["nervous_frequency"]
    df["flag"] = nervous.isin(["most", "all of the time"]).astype(float).where(nervous.notna())
    df["pain"] = df["low_back_pain_3m"].map({True: "yes", False: "no"}).astype("object")
    design = survey_design(df)
    row = res.table.loc["nervous_most_plus"]
    for group, column in (("yes", "p_exposed"), ("no", "p_unexposed")):
        mask = (df["pain"] == group).to_numpy()
        est = design.proportion("flag", domain=mask)
        assert est.value == pytest.approx(row[column], rel=1e-10)
        assert est.std_error == pytest.approx(row[f"{column}_se"], rel=1e-10)
    pr = design.prevalence_ratio("flag", by="pain", numerator="yes", denominator="no")
    assert pr.ratio == pytest.approx(row["prevalence_ratio"], rel=1e-10)
    assert pr.ci() == pytest.approx((row["pr_ci_low"], row["pr_ci_high"]), rel=1e-10)


def test_extract_claims_use_nhis(nhis_findings):
    verdicts = {v.claim_id: v for v in evaluate_claims(nhis_findings)}
    for claim in ("C1", "C3", "C7"):
        assert "nhis" in verdicts[claim].sources
        assert verdicts[claim].verdict != "insufficient evidence"


def test_extract_model_adjusts_for_the_proxy_not_the_nervousness_item(nhis2017):
    r = anxiety_and_pain(nhis2017)
    assert r.logistic.formula.startswith("back_pain_any ~ nervous + ")
    assert "depressed_mood" in r.covariates and "nervous" not in r.covariates
    assert "ASINERV" in r.summary() and "not the GAD-7" in r.summary()


def test_extract_says_what_2017_does_not_measure(nhis2017):
    benzo = benzodiazepines_and_pain(nhis2017)
    assert not benzo.measured
    assert benzo.summary().startswith("NHIS 2017 has no anxiety-medication item")
    table = overview.measures_table(nhis2017)
    assert {"low_back_pain_3m", "nervous_frequency"} <= set(table["column"])
    assert table["what it measures"].str.contains("ASINERV").any()
    assert not table["column"].isin(["gad7_score", "phq8_score"]).any()
