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
