"""Mediation formula with the design bootstrap: truth recovery on a simulated survey design.

The data are simulated here from known structural equations in a stratified, clustered
population with unequal weights; the true NDE/NIE come from the mediation formula applied
to the known parameters (closed form for a linear outcome, a large Monte-Carlo population for
a logistic one).
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from analysis.claims.verdicts import evaluate_claims
from analysis.data.schema import NotMeasuredError
from analysis.models import figures
from analysis.models.mediation import (
    EFFECTS,
    MediationError,
    c2_findings,
    estimate_mediation,
)
from analysis.models.mediation_gformula import expit_outer, logistic_newton, wls
from analysis.models.unmeasured import load_mediation_spec, mediation_not_measured
from analysis.survey.design import SurveyDesign

N_STRATA, PSU_PER_STRATUM, ROWS_PER_PSU = 12, 6, 50
STRATUM_SIZE = 1000.0 * (1 + np.arange(N_STRATA))  # population sizes -> unequal weights
STRATUM_X_MEAN = 0.3 * (np.arange(N_STRATA) - 5.5)
M_COEF = dict(const=2.0, x=0.5, female=0.3)  # plus beta_a * A
U_SD, V_SD = 0.3, 0.3  # PSU random intercepts in mediator and (linear) outcome
LIN = dict(const=1.0, a=0.4, m=0.6, am=0.2, x=0.4, female=0.2)
LOGIT = dict(const=-1.5, a=0.4, m=0.3, am=0.1, x=0.3, female=0.2)


def simulate(
    beta_a: float,
    outcome: str,
    seed: int,
    exposure_psu_sd: float = 0.0,
    u_sd: float = U_SD,
    psu_per_stratum: int = PSU_PER_STRATUM,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_h = psu_per_stratum * ROWS_PER_PSU
    h = np.repeat(np.arange(N_STRATA), n_h)
    psu = np.repeat(np.arange(N_STRATA * psu_per_stratum), ROWS_PER_PSU)
    n = len(h)
    x = rng.normal(STRATUM_X_MEAN[h], 1.0)
    female = rng.random(n) < 0.5
    z = rng.normal(0, exposure_psu_sd, psu.max() + 1)[psu]
    a = (rng.random(n) < expit(-1 + 0.5 * x + z)).astype(float)
    u = rng.normal(0, u_sd, psu.max() + 1)[psu]
    m = M_COEF["const"] + beta_a * a + M_COEF["x"] * x + M_COEF["female"] * female + u
    m = m + rng.normal(0, 1, n)
    p = LIN if outcome == "linear" else LOGIT
    eta = p["const"] + p["a"] * a + p["m"] * m + p["am"] * a * m + p["x"] * x + p["female"] * female
    if outcome == "linear":
        y = eta + rng.normal(0, V_SD, psu.max() + 1)[psu] + rng.normal(0, 1, n)
    else:
        y = (rng.random(n) < expit(eta)).astype(float)
    return pd.DataFrame(
        {
            "stratum": h,
            "psu": psu,
            "weight": (STRATUM_SIZE / n_h)[h],
            "anxious": a,
            "tension": m,
            "pain": y,
            "x": x,
            "sex": pd.Series(np.where(female, "female", "male"), dtype="string"),
        }
    )


def truth(beta_a: float, outcome: str) -> dict[str, float]:
    share = STRATUM_SIZE / STRATUM_SIZE.sum()
    ex = float(share @ STRATUM_X_MEAN)
    if outcome == "linear":
        em0 = M_COEF["const"] + M_COEF["x"] * ex + M_COEF["female"] * 0.5
        nde = LIN["a"] + LIN["am"] * em0
        nie = beta_a * (LIN["m"] + LIN["am"])
        return {"natural_direct_effect": nde, "natural_indirect_effect": nie}
    rng = np.random.default_rng(12345)
    n = 2_000_000
    h = rng.choice(N_STRATA, n, p=share)
    x = rng.normal(STRATUM_X_MEAN[h], 1.0)
    f = rng.random(n) < 0.5
    e = rng.normal(0, np.sqrt(1 + U_SD**2), n)
    p = LOGIT

    def q(a_out, a_med):
        m = M_COEF["const"] + beta_a * a_med + M_COEF["x"] * x + M_COEF["female"] * f + e
        eta = p["const"] + p["a"] * a_out + (p["m"] + p["am"] * a_out) * m
        return float(np.mean(expit(eta + p["x"] * x + p["female"] * f)))

    q00, q10, q11 = q(0, 0), q(1, 0), q(1, 1)
    return {"natural_direct_effect": q10 - q00, "natural_indirect_effect": q11 - q10}


def design_of(df: pd.DataFrame) -> SurveyDesign:
    return SurveyDesign(df, weight="weight", strata="stratum", psu="psu", label="simulated")


def run(df, **kw):
    args = dict(
        exposure="anxious",
        mediator="tension",
        outcome="pain",
        covariates=("x", "sex"),
        replicates=100,
        seed=7,
        progress=False,
    )
    args.update(kw)
    return estimate_mediation(design_of(df), **args)


@pytest.mark.parametrize("outcome", ["linear", "logistic"])
def test_recovers_true_natural_effects(outcome):
    df = simulate(beta_a=1.5, outcome=outcome, seed=1)
    res = run(df)
    assert res.outcome_model == outcome
    true = truth(1.5, outcome)
    f = res.to_frame()
    for effect, value in true.items():
        est, se = f.loc[effect, "estimate"], f.loc[effect, "se"]
        assert abs(est - value) < 4 * se, (effect, est, value, se)
    # NIE is clearly positive here and the decomposition adds up
    assert f.loc["natural_indirect_effect", "ci_low"] > 0
    te = f.loc["natural_direct_effect", "estimate"] + f.loc["natural_indirect_effect", "estimate"]
    assert f.loc["total_effect", "estimate"] == pytest.approx(te)
    assert f.loc["proportion_mediated", "estimate"] == pytest.approx(
        f.loc["natural_indirect_effect", "estimate"] / te
    )


def test_linear_effects_are_precise_in_a_large_sample():
    """50 PSUs per stratum (30,000 rows): NIE and NDE within 0.04 of the truth."""
    df = simulate(beta_a=1.5, outcome="linear", seed=2, psu_per_stratum=50)
    res = run(df, replicates=20)
    true = truth(1.5, "linear")
    assert true["natural_indirect_effect"] == pytest.approx(1.2)
    for effect, value in true.items():
        assert res.estimates[effect] == pytest.approx(value, abs=0.04)


@pytest.mark.parametrize("outcome", ["linear", "logistic"])
def test_null_mediator_path_ci_covers_zero(outcome):
    df = simulate(beta_a=0.0, outcome=outcome, seed=3)
    res = run(df)
    for method in ("normal", "percentile"):
        ci = res.confint(method).loc["natural_indirect_effect"]
        assert ci.ci_low < 0 < ci.ci_high, (method, ci)


@pytest.mark.slow
def test_bootstrap_se_matches_sampling_variability():
    """Clustered exposure and mediator: the design-bootstrap SE of the NIE agrees with its SD
    over repeated samples (within 25%), while treating rows as PSUs understates it."""
    kw = dict(beta_a=1.5, outcome="linear", exposure_psu_sd=1.0, u_sd=1.0)
    nie = [
        run(simulate(seed=100 + r, **kw), replicates=2).estimates["natural_indirect_effect"]
        for r in range(120)
    ]
    sd = np.std(nie, ddof=1)
    boot = np.mean([run(simulate(seed=s, **kw), replicates=200, seed=s).se.iloc[1] for s in (1, 2)])
    naive_df = simulate(seed=1, **kw)
    naive = run(naive_df.assign(psu=np.arange(len(naive_df))), replicates=200).se.iloc[1]
    print(f"NIE: sampling SD {sd:.4f}, design-bootstrap SE {boot:.4f}, rows-as-PSUs SE {naive:.4f}")
    assert boot == pytest.approx(sd, rel=0.25), (boot, sd)
    assert naive < 0.8 * sd, (naive, sd)


def test_deterministic_for_a_seed():
    df = simulate(beta_a=1.0, outcome="linear", seed=5)
    a = run(df, replicates=30, seed=9)
    b = run(df, replicates=30, seed=9)
    c = run(df, replicates=30, seed=10)
    pd.testing.assert_frame_equal(a.replicate_estimates, b.replicate_estimates)
    assert not np.allclose(a.replicate_estimates, c.replicate_estimates)
    pd.testing.assert_series_equal(a.estimates, c.estimates)


def test_numpy_refits_equal_statsmodels():
    df = simulate(beta_a=1.0, outcome="logistic", seed=6)
    x = sm.add_constant(np.column_stack([df.anxious, df.tension, df.x]))
    x_med = sm.add_constant(np.column_stack([df.anxious, df.x]))
    w = df.weight.to_numpy() * np.random.default_rng(0).uniform(0.5, 2, len(df))
    freq = sm.GLM(df.pain, x, family=sm.families.Binomial(), freq_weights=w).fit().params
    var = sm.GLM(df.pain, x, family=sm.families.Binomial(), var_weights=w).fit().params
    # freq_weights and var_weights give the same weighted point estimates
    np.testing.assert_allclose(freq, var, rtol=1e-8)
    mine = logistic_newton(x, df.pain.to_numpy(), w, start=np.zeros(x.shape[1]))
    np.testing.assert_allclose(mine, freq, rtol=1e-7, atol=1e-10)
    expected = sm.WLS(df.tension, x_med, weights=w).fit().params
    np.testing.assert_allclose(wls(x_med, df.tension.to_numpy(), w), expected, rtol=1e-10)


def test_missing_values_are_a_domain():
    df = simulate(beta_a=1.0, outcome="linear", seed=8)
    holed = df.copy()
    holed.loc[::10, "tension"] = np.nan
    res = run(holed, replicates=10)
    assert res.n == len(df) - len(df[::10]) and res.n_excluded == len(df[::10])
    ref = run(df.drop(index=df.index[::10]), replicates=10)
    pd.testing.assert_series_equal(res.estimates, ref.estimates)


def test_summary_and_frame():
    res = run(simulate(beta_a=1.0, outcome="linear", seed=9), replicates=20)
    text = res.summary()
    assert "natural_indirect_effect" in text and "subbootstrap" in text
    f = res.to_frame()
    assert list(f.index) == list(EFFECTS)
    assert (f["ci_low"] < f["estimate"]).all() and (f["estimate"] < f["ci_high"]).all()


def test_effects_figure():
    import matplotlib.pyplot as plt

    res = run(simulate(beta_a=1.0, outcome="linear", seed=9), replicates=20)
    truth = pd.Series({"natural_direct_effect": 0.5, "natural_indirect_effect": 0.4})
    fig = figures.mediation_effects(res, truth=truth)
    ax = fig.axes[0]
    rows = {t.get_position()[1]: t.get_text() for t in ax.get_yticklabels()}
    top_down = [rows[y] for y in sorted(rows, reverse=True)]
    assert top_down == ["direct (NDE)", "indirect via tension (NIE)", "total"]
    assert len(ax.get_legend().get_texts()) == 2  # estimate and truth
    plt.close(fig)


# --------------------------------------------------------------------------- registry / C2


def schema_like(df: pd.DataFrame) -> pd.DataFrame:
    """The simulated frame under the schema's column names, as the C2 spec expects."""
    rng = np.random.default_rng(0)
    n = len(df)
    gad7 = np.where(df.anxious > 0, rng.integers(10, 22, n), rng.integers(0, 10, n))
    return df.rename(columns={"tension": "muscle_tension", "pain": "pain_intensity"}).assign(
        gad7_score=pd.array(gad7, dtype="Int64"),
        age=rng.uniform(18, 85, n),
        bmi=rng.normal(28, 5, n),
        phq8_score=pd.array(rng.integers(0, 25, n), dtype="Int64"),
        physical_activity=pd.Categorical(
            rng.choice(["inactive", "insufficiently active", "active"], n),
            categories=["inactive", "insufficiently active", "active"],
            ordered=True,
        ),
        source="synthetic",
    )


def test_c2_findings_match_the_registry():
    df = schema_like(simulate(beta_a=1.5, outcome="linear", seed=10))
    res, findings = c2_findings(
        design_of(df),
        source="synthetic",
        truth={"natural_indirect_effect": 1.2},
        replicates=20,
        progress=False,
    )
    spec = load_mediation_spec()
    assert res is not None and res.exposure_label == spec.exposure_label
    keys = [f.estimand for f in findings]
    assert keys == ["natural_indirect_effect_tension", "proportion_mediated_tension"]
    nie = findings[0]
    assert nie.measure == "mean difference" and nie.null_value == 0 and nie.truth == 1.2
    assert nie.estimate == pytest.approx(res.estimates["natural_indirect_effect"])
    assert nie.ci_low < nie.estimate < nie.ci_high
    assert any("Synthetic" in c for c in nie.caveats)
    verdicts = evaluate_claims(findings)  # raises if a measure or source is wrong
    c2 = next(v for v in verdicts if v.claim_id == "C2")
    assert c2.verdict == "insufficient evidence"  # synthetic findings are never evidence


def test_not_measured_source_gives_insufficient_evidence():
    df = schema_like(simulate(beta_a=1.5, outcome="linear", seed=11)).drop(columns="muscle_tension")
    df["source"] = "nhis"
    res, findings = c2_findings(design_of(df), source="nhis")
    assert res is None
    assert all(not f.measured and f.estimate is None for f in findings)
    assert "muscle_tension" in findings[0].caveats[0]
    assert findings == mediation_not_measured("nhis")
    c2 = next(v for v in evaluate_claims(findings) if v.claim_id == "C2")
    assert c2.verdict == "insufficient evidence"


def test_risk_difference_result_refuses_the_mean_difference_estimand():
    res = run(simulate(beta_a=1.0, outcome="logistic", seed=12), replicates=10)
    with pytest.raises(MediationError, match="mean difference"):
        res.to_findings(source="synthetic")


def test_bad_inputs_name_the_column():
    df = simulate(beta_a=1.0, outcome="linear", seed=13)
    with pytest.raises(NotMeasuredError, match="'bmi'"):
        run(df, covariates=("x", "bmi"))
    with pytest.raises(MediationError, match="'anxious'.*both levels"):
        run(df.assign(anxious=1.0))
    with pytest.raises(MediationError, match="'x'.*binary"):
        run(df, exposure="x")
    with pytest.raises(MediationError, match="'sex' must be numeric"):
        run(df, mediator="sex")
    with pytest.raises(MediationError, match="'tension' must be 0/1"):
        run(df, outcome="tension", outcome_model="logistic")
    with pytest.raises(MediationError, match="ci_method"):
        run(df, ci_method="bca")


def test_the_logistic_integrand_equals_expit_including_overflow():
    """expit_outer (1 / (1 + e^-v e^-s), the bootstrap's fast path) equals scipy's expit of
    v_i + s_j within a few ulp, and falls back to it where e^-v e^-s would be inf x 0."""
    rng = np.random.default_rng(3)
    v, s = rng.normal(0, 4, 2000), rng.normal(0, 3, 24)
    np.testing.assert_allclose(expit_outer(v, s), expit(np.add.outer(v, s)), rtol=1e-14, atol=0)
    extreme = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    got = expit_outer(extreme, extreme)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expit(np.add.outer(extreme, extreme)), rtol=1e-14, atol=0)
