"""HELP baseline odds ratio (C1): often vs rarely nervous, chronic low back pain. Recovers a
known odds ratio, equals the cross-product ratio when crude, and runs on the real HELP study."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.data.schema import NotMeasuredError
from analysis.models import help_baseline
from analysis.models.evalue import evalue

LEVELS = [
    "none of the time",
    "a little of the time",
    "some of the time",
    "a good bit of the time",
    "most of the time",
    "all of the time",
]


def baseline_sample(n=6000, odds_ratio=2.0, seed=2, with_follow_up=True):
    """Often (most/all of the time) nervous multiplies the odds by ``odds_ratio``; older age
    and female sex raise the odds and go with nervousness, so the crude OR is confounded."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 60, n)
    female = rng.random(n) < 0.3
    step = np.clip(np.round(2.5 + 0.05 * (age - 39) + 1.0 * female + rng.normal(0, 1.6, n)), 0, 5)
    step = step.astype(int)
    lp = -2.5 + math.log(odds_ratio) * (step >= 4) + 0.04 * (age - 39) + 0.7 * female
    lp += 0.3 * (step == 2)  # the middle answers differ, but are left out of the comparison
    pain = rng.random(n) < 1 / (1 + np.exp(-lp))
    d = pd.DataFrame(
        {
            "respondent_id": [str(i) for i in range(n)],
            "wave": 0,
            "age": age,
            "sex": np.where(female, "female", "male"),
            "chronic_low_back_pain_6m": pd.array(pain, dtype="boolean"),
            "sf36_nervous_frequency": pd.Categorical.from_codes(step, LEVELS, ordered=True),
            "source": "help",
        }
    )
    if with_follow_up:  # follow-up waves must be ignored: all "often", none with pain
        later = d.head(500).assign(wave=6, chronic_low_back_pain_6m=False)
        later["sf36_nervous_frequency"] = pd.Categorical(
            ["all of the time"] * 500, LEVELS, ordered=True
        )
        d = pd.concat([d, later], ignore_index=True)
    return d


def test_adjusted_odds_ratio_recovers_the_truth_and_crude_is_confounded():
    res = help_baseline.nervousness_chronic_low_back_pain(baseline_sample())
    adj = res.table.loc["adjusted for age and sex"]
    crude = res.table.loc["crude"]
    assert abs(adj["log_or"] - math.log(2.0)) < 3 * adj["se_log"]
    assert crude["log_or"] > adj["log_or"] + 0.05
    assert res.n + res.n_middle == 6000


def test_crude_odds_ratio_is_the_cross_product_ratio():
    res = help_baseline.nervousness_chronic_low_back_pain(baseline_sample(n=800, seed=5))
    c = res.counts
    cross = (c.loc["often nervous", "chronic low back pain"] * c.loc["rarely nervous", "none"]) / (
        c.loc["often nervous", "none"] * c.loc["rarely nervous", "chronic low back pain"]
    )
    assert res.table.loc["crude", "odds_ratio"] == pytest.approx(cross, rel=1e-8)
    a, b = c.loc["often nervous"], c.loc["rarely nervous"]
    woolf = math.sqrt(sum(1 / v for v in (*a, *b)))
    assert res.table.loc["crude", "se_log"] == pytest.approx(woolf, rel=1e-6)


def test_finding_carries_the_registry_measure_and_the_evalue():
    res = help_baseline.nervousness_chronic_low_back_pain(baseline_sample())
    (f,) = res.to_findings(notebook="02_comorbidity")
    assert (f.claim_id, f.estimand, f.measure, f.null_value) == (
        "C1",
        help_baseline.ESTIMAND,
        "odds ratio",
        1.0,
    )
    ev = evalue(f.estimate, f.ci_low, f.ci_high, measure="odds ratio", rare=res.rare)
    assert f.extra["evalue_point"] == pytest.approx(ev.point)
    assert f.extra["evalue_ci"] == pytest.approx(ev.ci)


def test_missing_column_level_and_empty_cell_are_errors_in_words():
    d = baseline_sample(n=300, with_follow_up=False)
    with pytest.raises(NotMeasuredError, match="chronic_low_back_pain_6m"):
        help_baseline.nervousness_chronic_low_back_pain(
            d.drop(columns=["chronic_low_back_pain_6m"])
        )
    five = d.assign(sf36_nervous_frequency=d["sf36_nervous_frequency"].astype(str))
    with pytest.raises(TypeError, match="ordered categorical"):
        help_baseline.nervousness_chronic_low_back_pain(five)
    no_pain_often = d.copy()
    often = d["sf36_nervous_frequency"].isin(help_baseline.OFTEN)
    no_pain_often.loc[often, "chronic_low_back_pain_6m"] = False
    with pytest.raises(ValueError, match="often nervous / chronic low back pain"):
        help_baseline.nervousness_chronic_low_back_pain(no_pain_often)


def test_help_study_gives_a_finite_c1_odds_ratio():
    from analysis.core.findings import estimand_info
    from analysis.data.help import load_help

    res = help_baseline.nervousness_chronic_low_back_pain(load_help())
    assert 250 < res.n < 470 and res.n + res.n_middle == 470
    (f,) = res.to_findings()
    info = estimand_info(help_baseline.ESTIMAND)
    assert (f.claim_id, f.measure, f.null_value) == (info.claim_id, info.measure, info.null)
    assert f.source in info.sources
    assert np.isfinite([f.estimate, f.ci_low, f.ci_high, f.extra["evalue_point"]]).all()
    assert 0 < f.ci_low < f.estimate < f.ci_high
    assert "left out" in res.summary()
