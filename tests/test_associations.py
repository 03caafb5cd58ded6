"""Comorbidity (C1) and anxiety-pain models (C3, C7) on simulated stratified, clustered samples.

The simulated worlds have known values: a true prevalence ratio for C1, and logistic /
proportional-odds coefficients for C3 and C7 (the ordinal latent-variable model makes the
logistic model of 'any back pain' exact, with the same coefficients). Synthetic data:
it validates the estimators, it is never evidence.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from analysis.claims.verdicts import evaluate_claims
from analysis.data.schema import categorical_dtype, gad7_category, phq8_category
from analysis.models import figures
from analysis.models.anxiety_pain import anxiety_and_pain
from analysis.models.comorbidity import back_pain_exposure, comorbidity
from analysis.models.design import choose_measure_set, survey_design

N_STRATA, N_PSU = 30, 6
P_GAD_EXPOSED, P_GAD_UNEXPOSED = 0.18, 0.06  # true PR 3.0
P_WEEKLY_EXPOSED, P_WEEKLY_UNEXPOSED = 0.30, 0.15  # true PR 2.0
BETA = {  # log odds ratios of the pain model
    "gad7_step": 0.35,
    "age10": 0.15,
    "male": -0.2,
    "obese": 0.4,
    "overweight": 0.15,
    "phq8_per_point": 0.04,
    "inactive": 0.3,
    "insufficient": 0.1,
}
CUTS = (0.2, 1.3, 2.6)  # latent cut-points: not at all | a little | in between | a lot


def _design_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    stratum = rng.integers(0, N_STRATA, n)
    psu = rng.integers(1, N_PSU + 1, n)  # labels repeat across strata: nest=True
    weight = np.exp(rng.normal(0, 0.4, n)) * (1 + stratum % 3)
    return pd.DataFrame(
        {
            "source": pd.array(["synthetic"] * n, dtype="string"),
            "weight": weight,
            "stratum": pd.array(stratum.astype(str), dtype="string"),
            "psu": pd.array(psu.astype(str), dtype="string"),
        }
    )


def _gad_scores(flag: np.ndarray, rng) -> np.ndarray:
    return np.where(flag, rng.integers(10, 22, len(flag)), rng.integers(0, 10, len(flag)))


def simulate_comorbidity_world(n: int, seed: int) -> pd.DataFrame:
    """Chronic back pain clustered by PSU; anxiety depends on it only (true PRs 3 and 2)."""
    rng = np.random.default_rng(seed)
    df = _design_frame(n, rng)
    cluster = rng.normal(0, 0.8, (N_STRATA, N_PSU + 1))
    lin = -1.4 + cluster[df["stratum"].astype(int), df["psu"].astype(int)]
    chronic = rng.random(n) < 1 / (1 + np.exp(-lin))
    sev = np.where(chronic, rng.integers(1, 4, n), rng.integers(0, 4, n))
    sev_levels = categorical_dtype("back_pain_severity").categories
    # some chronic pain elsewhere with no back pain: not chronic BACK pain
    no_back = chronic & (rng.random(n) < 0.15)
    sev = np.where(no_back, 0, sev)
    exposed = chronic & (sev > 0)
    gad = rng.random(n) < np.where(exposed, P_GAD_EXPOSED, P_GAD_UNEXPOSED)
    weekly = rng.random(n) < np.where(exposed, P_WEEKLY_EXPOSED, P_WEEKLY_UNEXPOSED)
    freq = np.where(weekly, rng.choice(["weekly", "daily"], n), rng.choice(["never", "monthly"], n))
    df["chronic_pain"] = pd.array(chronic, dtype="boolean")
    df["back_pain_severity"] = pd.Categorical.from_codes(
        sev, dtype=categorical_dtype("back_pain_severity")
    )
    assert list(sev_levels)[0] == "not at all"
    df["gad7_score"] = pd.array(_gad_scores(gad, rng), dtype="Int64")
    df["gad7_category"] = gad7_category(df["gad7_score"])
    df["anxiety_frequency"] = pd.Series(freq).astype(categorical_dtype("anxiety_frequency"))
    # a few missing answers (na.rm semantics)
    df.loc[rng.random(n) < 0.02, "gad7_score"] = pd.NA
    df["gad7_category"] = gad7_category(df["gad7_score"])
    return df


def simulate_pain_world(
    n: int,
    seed: int,
    anxiety_effect: float = BETA["gad7_step"],
    depression_effect: float = BETA["phq8_per_point"],
) -> pd.DataFrame:
    """Proportional-odds back pain on GAD-7 step and covariates; anxiety clustered by PSU."""
    rng = np.random.default_rng(seed)
    df = _design_frame(n, rng)
    cluster = rng.normal(0, 0.6, (N_STRATA, N_PSU + 1))
    u = cluster[df["stratum"].astype(int), df["psu"].astype(int)]
    step = np.clip(np.floor(rng.exponential(0.8, n) + 0.5 * (u > 0.3)), 0, 3).astype(int)
    lo, hi = np.array([0, 5, 10, 15]), np.array([4, 9, 14, 21])
    gad_score = lo[step] + (rng.random(n) * (hi[step] - lo[step] + 1)).astype(int)
    age = rng.uniform(18, 85, n)
    male = rng.random(n) < 0.48
    bmi = rng.normal(27.5, 5, n) + 0.8 * u
    bmi = np.clip(bmi, 19, 60)  # no underweight: the model must drop the empty level
    act = rng.choice([0, 1, 2], n, p=[0.3, 0.2, 0.5])  # inactive, insufficient, active
    dep = rng.random(n) < 0.05 + 0.08 * step
    phq = np.where(dep, rng.integers(10, 25, n), rng.integers(0, 10, n))
    eta = (
        anxiety_effect * step
        + BETA["age10"] * (age - 50) / 10
        + BETA["male"] * male
        + BETA["obese"] * (bmi >= 30)
        + BETA["overweight"] * ((bmi >= 25) & (bmi < 30))
        + depression_effect * phq
        + BETA["inactive"] * (act == 0)
        + BETA["insufficient"] * (act == 1)
    )
    latent = eta + rng.logistic(size=n)
    sev = np.searchsorted(np.array(CUTS), latent)
    df["age"] = age
    df["sex"] = pd.array(np.where(male, "male", "female"), dtype="string")
    df["bmi"] = bmi
    df["physical_activity"] = pd.Categorical.from_codes(
        act, dtype=categorical_dtype("physical_activity")
    )
    df["back_pain_severity"] = pd.Categorical.from_codes(
        sev, dtype=categorical_dtype("back_pain_severity")
    )
    df["gad7_score"] = pd.array(gad_score, dtype="Int64")
    df["gad7_category"] = gad7_category(df["gad7_score"])
    df["phq8_score"] = pd.array(phq, dtype="Int64")
    df["phq8_category"] = phq8_category(df["phq8_score"])
    return df


@pytest.fixture(scope="module")
def c1_world():
    return simulate_comorbidity_world(12_000, seed=3)


@pytest.fixture(scope="module")
def pain_world():
    return simulate_pain_world(12_000, seed=5)


@pytest.fixture(scope="module")
def pain_result(pain_world):
    return anxiety_and_pain(pain_world)


def _within(est, se, truth, k=4.0):
    assert abs(est - truth) <= k * se, f"estimate {est:.4g} (SE {se:.3g}) vs truth {truth:.4g}"


# ----------------------------------------------------------------------------- C1


def test_comorbidity_recovers_prevalence_and_ratio(c1_world):
    res = comorbidity(c1_world)
    t = res.to_frame()
    gad, wk = t.loc["gad7_ge10"], t.loc["anxiety_weekly_plus"]
    _within(gad["p_exposed"], gad["p_exposed_se"], P_GAD_EXPOSED)
    _within(gad["p_unexposed"], gad["p_unexposed_se"], P_GAD_UNEXPOSED)
    _within(math.log(gad["prevalence_ratio"]), gad["pr_se_log"], math.log(3.0))
    _within(math.log(wk["prevalence_ratio"]), wk["pr_se_log"], math.log(2.0))
    assert gad["pr_ci_low"] < gad["prevalence_ratio"] < gad["pr_ci_high"]
    assert gad["evalue_point"] > gad["evalue_ci"] > 1
    assert res.exposure_rule == "chronic pain with back pain"
    assert "PR" in res.summary()


def test_comorbidity_uses_one_design_with_domains(c1_world):
    """Same numbers as the survey core's domain estimate on the full design (no subsetting)."""
    res = comorbidity(c1_world)
    df = c1_world.copy()
    gad7, _ = choose_measure_set(
        "comorbidity", lambda s: s["outcomes"][0]["column"] == "gad7_score"
    )
    exposure, _, _ = back_pain_exposure(df, gad7)
    df["exp"] = exposure
    df["g"] = (df["gad7_score"].astype("float64") >= 10).astype("float64")
    df.loc[df["gad7_score"].isna(), "g"] = np.nan
    est = survey_design(df).proportion("g", domain=df["exp"].fillna(False).to_numpy(bool))
    assert est.value == pytest.approx(res.table.loc["gad7_ge10", "p_exposed"], rel=1e-12)
    assert est.std_error == pytest.approx(res.table.loc["gad7_ge10", "p_exposed_se"], rel=1e-12)


def test_comorbidity_findings_pass_registry_checks(c1_world):
    res = comorbidity(c1_world)
    fs = res.to_findings("synthetic", truth={"prevalence_ratio_gad7_ge10_chronic_back_pain": 3.0})
    keys = {f.estimand for f in fs}
    # the weekly-anxiety keys are NHIS-only in the registry: not written for synthetic
    assert keys == {
        "prevalence_gad7_ge10_among_chronic_back_pain",
        "prevalence_ratio_gad7_ge10_chronic_back_pain",
    }
    verdicts = {v.claim_id: v.verdict for v in evaluate_claims(fs)}
    assert verdicts["C1"] == "insufficient evidence"  # synthetic never counts
    nhis_all = res.to_findings("nhis")
    nhis = [f for f in nhis_all if f.measured]
    assert len(nhis) == 4 and {f.measure for f in nhis} == {"proportion", "prevalence ratio"}
    # the NHIS 2017 set's keys: not measured here (no low back pain item), said so
    unmeasured = [f for f in nhis_all if not f.measured]
    assert len(unmeasured) == 6 and all(f.estimand.endswith("_3m") for f in unmeasured)
    assert {f.extra["missing_column"] for f in unmeasured} == {"low_back_pain_3m"}
    c1 = next(v for v in evaluate_claims(nhis) if v.claim_id == "C1")
    # both checks support it, but four of C1's nine primary estimands are too few
    assert [c["verdict"] for c in c1.checks] == ["supported", "supported"]
    assert (c1.verdict, c1.rests_on) == ("partly supported", "4 of 9")
    pr = next(f for f in fs if f.estimand.startswith("prevalence_ratio"))
    assert pr.truth == 3.0 and pr.extra["evalue_point"] > 1


def test_comorbidity_not_measured_and_fallback(c1_world):
    no_gad = c1_world.drop(columns=["gad7_score", "gad7_category"])
    fs = comorbidity(no_gad).to_findings("nhis")
    gad = [f for f in fs if "gad7" in f.estimand]
    assert len(gad) == 2 and all(not f.measured and f.estimate is None for f in gad)
    assert gad[0].extra["missing_column"] == "gad7_score"
    evaluate_claims(fs)  # measure/source checks pass
    # a source without chronic_pain: back pain 'a lot' stands in, with a caveat
    fb = comorbidity(c1_world.drop(columns=["chronic_pain"]))
    assert fb.exposure_rule.startswith("back pain 'a lot'")
    assert any("stands in" in c for c in fb.to_findings("nhis")[0].caveats)
    # HELP-like: weight 1, PSU = person, no stratum, no pain or anxiety columns
    help_like = pd.DataFrame({"source": "help", "weight": 1.0, "psu": np.arange(50).astype(str)})
    hf = comorbidity(help_like).to_findings("help")
    assert len(hf) == 4 and not any(f.measured for f in hf)
    evaluate_claims(hf)


def test_comorbidity_figure(c1_world):
    fig = figures.comorbidity(comorbidity(c1_world))
    assert len(fig.axes[0].patches) >= 4


# ----------------------------------------------------------------------------- C3 / C7


def est_or(result, name: str) -> float:
    return result.estimates[name].estimate


def test_logistic_and_ordinal_recover_coefficients(pain_result):
    r = pain_result
    b = r.logistic.params
    se = r.logistic.bse
    for lv, k in (("mild", 1), ("moderate", 2), ("severe", 3)):
        _within(b[f"gad7[T.{lv}]"], se[f"gad7[T.{lv}]"], k * BETA["gad7_step"])
    _within(b["phq8_score"], se["phq8_score"], BETA["phq8_per_point"])
    # the depression model swaps the score for PHQ-8 >= 10: positive with a per-point effect
    dep = r.logistic_depression
    assert "phq8_score" not in dep.params.index and dep.params["phq8_ge10"] > 0
    assert est_or(r, "phq8_moderate_plus") > 1
    _within(b["bmi_group[T.obese]"], se["bmi_group[T.obese]"], BETA["obese"])
    _within(b["activity[T.inactive]"], se["activity[T.inactive]"], BETA["inactive"])
    _within(b["age"], se["age"], BETA["age10"] / 10)
    est = r.estimates
    _within(est["trend"].log_estimate, est["trend"].se, BETA["gad7_step"])
    _within(est["trend_logistic"].log_estimate, est["trend_logistic"].se, BETA["gad7_step"])
    # ordinal cut-points: latent thresholds plus the age centring (age enters as (age-50)/10)
    z = r.ordinal_trend.zeta.to_numpy()
    se_z = np.sqrt(np.diag(r.ordinal_trend.cov_params.to_numpy()))[-3:]
    for zi, si, c in zip(z, se_z, CUTS, strict=True):
        _within(zi, si, c + 5 * BETA["age10"])
    # moderate+ collapses two steps and three: its OR lies in between (with noise)
    m = est["gad7_moderate_plus"]
    assert math.exp(1.5 * BETA["gad7_step"]) < m.estimate < math.exp(3.5 * BETA["gad7_step"])
    assert r.dose_response.p_value < 1e-6 and r.dose_response.df == 3
    assert "underweight" not in r.logistic.params.index.str.cat()


def test_predicted_probabilities_increase_and_match_truth(pain_world, pain_result):
    p = pain_result.predicted
    assert list(p.index) == ["none", "mild", "moderate", "severe"]
    assert p["probability"].is_monotonic_increasing
    assert ((p["ci_low"] < p["probability"]) & (p["probability"] < p["ci_high"])).all()
    # standardised truth from the generating model, over the sample's weighted covariates
    d = pain_world
    base = (
        BETA["age10"] * (d["age"] - 50) / 10
        + BETA["male"] * (d["sex"] == "male").to_numpy(bool)
        + BETA["obese"] * (d["bmi"] >= 30)
        + BETA["overweight"] * ((d["bmi"] >= 25) & (d["bmi"] < 30))
        + BETA["phq8_per_point"] * d["phq8_score"].astype(float)
        + BETA["inactive"] * (d["physical_activity"] == "inactive").to_numpy(bool)
        + BETA["insufficient"] * (d["physical_activity"] == "insufficiently active").to_numpy(bool)
    ).to_numpy(float)
    w = d["weight"].to_numpy() / d["weight"].sum()
    for k, lv in enumerate(p.index):
        truth = float(w @ (1 / (1 + np.exp(-(base + k * BETA["gad7_step"] - CUTS[0])))))
        _within(p.loc[lv, "probability"], p.loc[lv, "std_error"], truth)


def test_findings_keys_evalues_and_registry_checks(pain_result):
    fs = pain_result.to_findings("synthetic", truth={"or_back_pain_obesity": math.exp(0.4)})
    keys = [f.estimand for f in fs]
    for k in (
        "or_back_pain_any_gad7_moderate_plus",
        "trend_gad7_category_back_pain",
        "or_back_pain_any_phq8_moderate_plus",
        "or_back_pain_obesity",
        "or_back_pain_inactive",
    ):
        assert keys.count(k) == 1
    assert keys.count("predicted_probability_back_pain_by_gad7_category") == 4
    for f in fs:
        if f.measure == "odds ratio":
            assert f.extra["evalue_point"] > 1 and f.ci_low < f.estimate < f.ci_high
            assert any("Synthetic data" in c for c in f.caveats)
    assert next(f for f in fs if f.estimand == "or_back_pain_obesity").truth == math.exp(0.4)
    v = {x.claim_id: x.verdict for x in evaluate_claims(fs)}
    assert v["C3"] == v["C7"] == "insufficient evidence"  # synthetic only validates
    ev = {x.claim_id: x.verdict for x in evaluate_claims(pain_result.to_findings("nhis"))}
    assert ev["C3"] in ("supported", "partly supported") and ev["C7"] != "contradicted"


def test_null_world_is_not_supported():
    null = anxiety_and_pain(
        simulate_pain_world(8_000, seed=11, anxiety_effect=0.0, depression_effect=0.0)
    )
    fs = null.to_findings("nhis")  # judged as if it were evidence
    verdict = {v.claim_id: v.verdict for v in evaluate_claims(fs)}["C3"]
    assert verdict != "supported"
    trend = null.estimates["trend"]
    assert trend.ci()[0] < 1 < trend.ci()[1]


def test_absent_columns_give_not_measured_findings(pain_world):
    no_bmi_phq = pain_world.drop(columns=["bmi", "phq8_score", "phq8_category"])
    r = anxiety_and_pain(no_bmi_phq)
    fs = {f.estimand: f for f in r.to_findings("nhis")}
    assert not fs["or_back_pain_obesity"].measured
    assert not fs["or_back_pain_any_phq8_moderate_plus"].measured
    assert fs["or_back_pain_any_gad7_moderate_plus"].measured
    assert any("Not adjusted for bmi" in c for c in fs["trend_gad7_category_back_pain"].caveats)
    no_gad = anxiety_and_pain(pain_world.drop(columns=["gad7_score", "gad7_category"]))
    g = {f.estimand: f for f in no_gad.to_findings("nhis")}
    assert not g["or_back_pain_any_gad7_moderate_plus"].measured
    assert g["or_back_pain_obesity"].measured  # C7 still estimated
    help_like = pd.DataFrame({"source": "help", "weight": 1.0, "psu": np.arange(30).astype(str)})
    h = anxiety_and_pain(help_like)
    hf = h.to_findings("help")
    assert hf and not any(f.measured for f in hf)
    evaluate_claims(hf)
    assert "not measured" in h.summary()


def test_figures(pain_result):
    fig = figures.predicted_probabilities(pain_result)
    assert fig.axes[0].get_xlabel() == "GAD-7 category"
    fig2 = figures.odds_ratios(pain_result)
    assert fig2.axes[0].get_xscale() == "log"
