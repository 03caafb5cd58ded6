"""C4 in surveys: confounding by indication in the synthetic world (true benzodiazepine effect known)."""

import numpy as np
import pytest

from analysis.data import synthetic as synth
from analysis.models import benzodiazepines as bz
from analysis.models import figures, synthetic_truth


@pytest.fixture(scope="module")
def world():
    return synth.generate(n=20000, seed=7)


@pytest.fixture(scope="module")
def truth(world):
    return synthetic_truth.true_estimands(world.model, progress=False).values


@pytest.fixture(scope="module")
def result(world, truth):
    return bz.benzodiazepines_and_pain(world.data, truth=truth)


def test_naive_exceeds_adjusted_and_adjusted_is_closer_to_truth(result):
    assert result.drug == "benzodiazepine_use"
    assert result.true_log_or is not None
    assert result.naive.odds_ratio > result.adjusted.odds_ratio
    assert result.distance("adjusted") < result.distance("naive")
    # the naive estimate is far from the truth: confounding by indication
    assert result.distance("naive") > 0.3


def test_frame_and_findings(result):
    f = result.to_frame()
    assert list(f.index) == ["naive", "adjusted", "truth"]
    assert (f["ci_low"] <= f["odds_ratio"]).all() and (f["odds_ratio"] <= f["ci_high"]).all()
    (finding,) = result.to_findings()
    assert finding.estimand == bz.ESTIMAND and finding.measure == "odds ratio"
    assert finding.estimate == pytest.approx(result.adjusted.odds_ratio)
    assert finding.truth == pytest.approx(np.exp(result.true_log_or))
    assert finding.extra["naive_odds_ratio"] == pytest.approx(result.naive.odds_ratio)


def test_anxiety_medication_used_when_no_benzodiazepine_column(world, truth):
    df = world.data.drop(columns=["benzodiazepine_use"]).copy()
    df["source"] = "nhis"
    res = bz.benzodiazepines_and_pain(df, truth=truth)
    assert res.drug == "anxiety_medication" and res.true_log_or is None
    (finding,) = res.to_findings()
    assert finding.source == "nhis" and finding.measured and finding.truth is None


def test_not_measured(world):
    df = world.data.drop(columns=["benzodiazepine_use", "anxiety_medication"]).copy()
    df["source"] = "nhis"
    res = bz.benzodiazepines_and_pain(df)
    assert not res.measured
    (finding,) = res.to_findings()
    assert finding.measured is False and finding.estimate is None
    assert "cannot be estimated" in res.summary()


def test_figure(result):
    import matplotlib.pyplot as plt

    fig = figures.benzodiazepine_comparison(result)
    assert len(fig.axes) == 1
    plt.close(fig)
