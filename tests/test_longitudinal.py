"""Within-person (fixed-effects) analysis: recovers a known within effect, equals OLS with
person dummies, and runs on the real HELP study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.data.schema import NotMeasuredError
from analysis.models import figures
from analysis.models import within_person as longitudinal

LEVELS = [
    "none of the time",
    "a little of the time",
    "some of the time",
    "a good bit of the time",
    "most of the time",
    "all of the time",
]


def simulated_panel(n_people=600, within_effect=-3.0, between_confounding=-8.0, seed=1):
    """People differ in a stable trait that raises nervousness AND lowers the pain score."""
    rng = np.random.default_rng(seed)
    trait = rng.normal(size=n_people)
    rows = []
    for i in range(n_people):
        for wave in (0, 6, 12, 18):
            step = int(np.clip(np.round(1.5 + 1.2 * trait[i] + rng.normal()), 0, 5))
            pain = 60 + within_effect * step + between_confounding * trait[i] + rng.normal(0, 8)
            pain += {0: 0, 6: 3, 12: 4, 18: 5}[wave]
            rows.append((str(i), wave, pain, LEVELS[step]))
    d = pd.DataFrame(rows, columns=["respondent_id", "wave", "sf36_bodily_pain", "lv"])
    d["sf36_nervous_frequency"] = pd.Categorical(d.pop("lv"), categories=LEVELS, ordered=True)
    d["source"] = "help"
    return d


def test_fixed_effects_recover_the_within_effect_and_pooled_is_confounded():
    res = longitudinal.within_person_pain_nervousness(simulated_panel())
    within = res.table.loc["within person (fixed effects)"]
    pooled = res.table.loc["pooled"]
    assert abs(within["estimate"] - (-3.0)) < 3 * within["se"]
    # the stable trait pushes the pooled slope well below the within slope
    assert pooled["estimate"] < within["estimate"] - 5 * pooled["se"]


def test_point_estimate_equals_ols_with_person_dummies():
    d = simulated_panel(n_people=80, seed=3)
    res = longitudinal.within_person_pain_nervousness(d)
    x = pd.get_dummies(d[["respondent_id", "wave"]].astype(str), drop_first=False, dtype=float)
    x = x.drop(columns=["wave_0"])
    x["step"] = d["sf36_nervous_frequency"].cat.codes.astype(float)
    dummies_fit = sm.OLS(d["sf36_bodily_pain"], x).fit()
    assert res.table.loc["within person (fixed effects)", "estimate"] == pytest.approx(
        dummies_fit.params["step"], abs=1e-8
    )


def test_help_study_gives_a_registry_finding():
    from analysis.claims.verdicts import evaluate_claims
    from analysis.data.help import load_help

    res = longitudinal.within_person_pain_nervousness(load_help())
    assert res.n_people > 300 and res.n_observations > 900
    (finding,) = res.to_findings()
    assert finding.estimand == longitudinal.ESTIMAND and finding.source == "help"
    assert finding.ci_low < finding.estimate < finding.ci_high
    verdict = {v.claim_id: v for v in evaluate_claims([finding])}["C3"]
    assert verdict.verdict != "insufficient evidence"  # HELP is evidence for C3
    assert "within-person" in res.summary() or "people" in res.summary()


def test_within_between_figure():
    import matplotlib.pyplot as plt

    fig = figures.within_between(simulated_panel(n_people=30))
    assert [ax.get_title() for ax in fig.axes] == [
        "Between and within people (pooled)",
        "Within people",
    ]
    plt.close(fig)


def test_not_measured_and_wrong_type():
    d = simulated_panel(n_people=10)
    with pytest.raises(NotMeasuredError, match="sf36_bodily_pain"):
        longitudinal.within_person_pain_nervousness(d.drop(columns=["sf36_bodily_pain"]))
    d["sf36_nervous_frequency"] = d["sf36_nervous_frequency"].astype(str)
    with pytest.raises(TypeError, match="sf36_nervous_frequency"):
        longitudinal.within_person_pain_nervousness(d)


def dynamic_panel(
    n_people=800, now=-3.0, previous=0.0, cesd_on_pain=0.0, cesd_on_nervous=0.0, seed=1
):
    """Five waves; nervousness has a stable part and a part carried from wave to wave.
    ``now``/``previous``: pain points per step of this / the previous wave's nervousness;
    a time-varying depression score (CES-D) can raise nervousness and lower the pain score."""
    rng = np.random.default_rng(seed)
    trait = rng.normal(size=n_people)
    rows = []
    for i in range(n_people):
        carried, prev_step = 0.0, None
        for wave in (0, 6, 12, 18, 24):
            depressed = rng.normal(0, 6)
            carried = 0.5 * carried + rng.normal()
            latent = 2 + trait[i] + carried + cesd_on_nervous * depressed
            step = int(np.clip(np.round(latent), 0, 5))
            pain = 60 + now * step - 8 * trait[i] + wave / 6 + rng.normal(0, 8)
            pain += cesd_on_pain * depressed + (
                previous * prev_step if prev_step is not None else 0
            )
            rows.append((str(i), wave, pain, LEVELS[step], 16 + 8 * trait[i] + depressed))
            prev_step = step
    d = pd.DataFrame(
        rows, columns=["respondent_id", "wave", "sf36_bodily_pain", "lv", "cesd_score"]
    )
    d["sf36_nervous_frequency"] = pd.Categorical(d.pop("lv"), categories=LEVELS, ordered=True)
    d["source"] = "help"
    return d


def test_cesd_adjustment_removes_confounding_by_depression():
    # depression raises nervousness and lowers the pain score: the unadjusted slope is too steep
    d = dynamic_panel(now=-1.0, cesd_on_pain=-0.5, cesd_on_nervous=0.15)
    res = longitudinal.cesd_adjusted_pain_nervousness(d)
    adjusted = res.table.loc["nervousness step, CES-D adjusted"]
    unadjusted = res.table.loc["nervousness step, unadjusted (same person-waves)"]
    assert abs(adjusted["estimate"] - (-1.0)) < 3 * adjusted["se"]
    assert abs(res.table.loc["CES-D point (same model)", "estimate"] - (-0.5)) < 0.1
    assert unadjusted["estimate"] < adjusted["estimate"] - 5 * adjusted["se"]
    (finding,) = res.to_findings()
    assert finding.estimand == longitudinal.CESD_ADJUSTED
    assert finding.estimate == pytest.approx(adjusted["estimate"])


def test_cesd_adjusted_equals_ols_with_person_dummies():
    d = dynamic_panel(n_people=60, now=-1.0, cesd_on_pain=-0.5, cesd_on_nervous=0.15, seed=4)
    res = longitudinal.cesd_adjusted_pain_nervousness(d)
    x = pd.get_dummies(d[["respondent_id", "wave"]].astype(str), dtype=float)
    x = x.drop(columns=["wave_0"])
    x["step"] = d["sf36_nervous_frequency"].cat.codes.astype(float)
    x["cesd_score"] = d["cesd_score"]
    dummies_fit = sm.OLS(d["sf36_bodily_pain"], x).fit()
    assert res.table.iloc[0]["estimate"] == pytest.approx(dummies_fit.params["step"], abs=1e-8)


def test_previous_wave_slope_is_zero_when_the_effect_is_contemporaneous():
    res = longitudinal.previous_nervousness_pain(dynamic_panel(now=-3.0, previous=0.0))
    lagged = res.table.loc["previous wave's nervousness step"]
    now = res.table.loc["this wave's nervousness step (same model)"]
    assert abs(lagged["estimate"]) < 3 * lagged["se"]
    assert abs(now["estimate"] - (-3.0)) < 3 * now["se"]


def test_previous_wave_slope_recovers_a_lagged_effect():
    res = longitudinal.previous_nervousness_pain(dynamic_panel(now=0.0, previous=-2.0, seed=2))
    lagged = res.table.loc["previous wave's nervousness step"]
    assert abs(lagged["estimate"] - (-2.0)) < 3 * lagged["se"]
    assert lagged["ci_high"] < 0


def test_previous_wave_is_the_previous_interview_across_gaps():
    d = pd.DataFrame(
        {
            "respondent_id": ["a", "a", "a", "a", "b", "b", "b"],
            "wave": [0, 18, 24, 12, 0, 6, 12],
            "sf36_bodily_pain": [50.0, 40.0, 45.0, np.nan, 70.0, 60.0, 65.0],
            "sf36_nervous_frequency": pd.Categorical(
                [LEVELS[k] for k in (1, 3, 2, 4, 0, 5, 2)], categories=LEVELS, ordered=True
            ),
        }
    )
    lagged = longitudinal.lagged_person_waves(d)
    a = lagged[lagged["person"] == "a"].set_index("wave")
    # a was seen at 0, 12 (pain missing: gives only its nervousness), 18 and 24
    assert list(a.index) == [18, 24]
    assert a.loc[18, "previous_step"] == 4 and a.loc[18, "lag_months"] == 6
    assert a.loc[24, "previous_step"] == 3 and a.loc[24, "lag_months"] == 6
    b = lagged[lagged["person"] == "b"].set_index("wave")
    assert list(b["previous_step"]) == [0, 5]
    gapped = longitudinal.lagged_person_waves(d[d["wave"] != 12])
    assert gapped.set_index(["person", "wave"]).loc[("a", 18), "lag_months"] == 18
    assert "b" not in set(gapped["person"])  # one lagged person-wave: no within-person change


def test_sensitivity_needs_cesd():
    d = dynamic_panel(n_people=10).drop(columns=["cesd_score"])
    with pytest.raises(NotMeasuredError, match="cesd_score"):
        longitudinal.sensitivity_findings(d)


def test_help_study_gives_the_sensitivity_findings_c3_reads():
    from analysis.claims.verdicts import evaluate_claims
    from analysis.core.findings import estimand_info
    from analysis.data.help import load_help

    df = load_help()
    results = longitudinal.sensitivity_analyses(df)
    findings = [f for r in results for f in r.to_findings(notebook="03_anxiety_and_pain")]
    assert [f.estimand for f in findings] == [
        longitudinal.CESD_ADJUSTED,
        longitudinal.PREVIOUS_NERVOUSNESS,
    ]
    for f in findings:
        info = estimand_info(f.estimand)
        assert (f.claim_id, f.measure, f.null_value) == (info.claim_id, info.measure, info.null)
        assert f.source in info.sources
        assert np.isfinite([f.estimate, f.ci_low, f.ci_high]).all()
        assert f.ci_low < f.estimate < f.ci_high
    cesd, lagged = results
    assert cesd.n_people > 300 and lagged.n_people > 250
    assert set(lagged.details) <= {"6", "12", "18", "24"} and "12" in lagged.details
    assert "months" in lagged.summary()
    main = longitudinal.within_person_pain_nervousness(df).to_findings()
    verdict = {v.claim_id: v for v in evaluate_claims(main + findings)}["C3"]
    checked = {r["estimand"]: r["text"] for r in verdict.robustness}
    assert set(checked) == {longitudinal.CESD_ADJUSTED, longitudinal.PREVIOUS_NERVOUSNESS}
    assert not any("no finding" in text for text in checked.values())
