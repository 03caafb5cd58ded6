"""Rao-Wu-Yue rescaling bootstrap: R's variance formula exactly, linearisation SE approximately."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.survey.bootstrap import (
    bootstrap_psu_factors,
    bootstrap_weight_columns,
    bootstrap_weights,
    replicate_variance,
)
from analysis.survey.design import SurveyDesign, SurveyDesignError

REF = Path(__file__).parent / "reference"


def _api() -> pd.DataFrame:
    api = pd.read_csv(REF / "data" / "apistrat.csv")
    api["row"] = np.arange(len(api))
    return api


def _nhanes() -> pd.DataFrame:
    nh = pd.read_csv(REF / "data" / "nhanes.csv")
    nh["female"] = (nh["RIAGENDR"] == 2).astype(float)
    return nh


def _design(name: str) -> tuple[SurveyDesign, str]:
    if name == "apistrat":
        return SurveyDesign(_api(), weight="pw", strata="stype", psu="row"), "api00"
    d = SurveyDesign(_nhanes(), weight="WTMEC2YR", strata="SDMVSTRA", psu="SDMVPSU", nest=True)
    return d, "female"


def _row_factors_from_file(design: SurveyDesign, name: str) -> np.ndarray:
    f = pd.read_csv(REF / f"bootstrap_factors_{name}.csv")
    key = f["stratum"].astype(str) + "|" + f["psu"].astype(str)
    d = design.data
    row_key = d[design.strata_column].astype(str) + "|" + d[design.psu_column].astype(str)
    idx = pd.Index(key).get_indexer(row_key)
    assert (idx >= 0).all()
    return f.filter(like="rep").to_numpy()[idx]


@pytest.mark.parametrize("name", ["apistrat", "nhanes"])
def test_replicate_se_matches_r_svrepdesign(name):
    """Fixed replicate factors: mean and total SEs equal R's svrepdesign to 1e-6 relative."""
    design, var = _design(name)
    y = design.data[var].to_numpy(float)
    reps = design.weights[:, None] * _row_factors_from_file(design, name)
    ref = pd.read_csv(REF / "bootstrap_reference.csv").query("design == @name")
    full = {
        "mean": np.sum(design.weights * y) / design.weights.sum(),
        "total": np.sum(design.weights * y),
    }
    thetas = {"mean": (reps * y[:, None]).sum(0) / reps.sum(0), "total": (reps * y[:, None]).sum(0)}
    for _, r in ref.iterrows():
        stat = r["statistic"]
        assert full[stat] == pytest.approx(r["estimate"], rel=1e-10)
        se = np.sqrt(replicate_variance(thetas[stat]))
        se_mse = np.sqrt(replicate_variance(thetas[stat], full[stat], mse=True))
        assert se == pytest.approx(r["se"], rel=1e-6)
        assert se_mse == pytest.approx(r["se_mse"], rel=1e-6)


@pytest.mark.parametrize("name", ["apistrat", "nhanes"])
def test_bootstrap_se_close_to_linearisation(name):
    """Many replicates: the bootstrap SE of a weighted mean is within 5% of the Taylor SE."""
    design, var = _design(name)
    y = design.data[var].to_numpy(float)
    w = design.weights
    mean = np.sum(w * y) / w.sum()
    se_lin = np.sqrt(design.total_covariance(w * (y - mean) / w.sum()))
    reps = bootstrap_weights(design, replicates=2000, seed=11)
    thetas = (reps * y[:, None]).sum(0) / reps.sum(0)
    se_boot = np.sqrt(replicate_variance(thetas))
    # Monte-Carlo SE of an SE from B=2000 replicates is about 1/sqrt(2B) = 1.6%
    assert se_boot == pytest.approx(se_lin, rel=0.05)


def test_factors_structure_and_determinism():
    design, _ = _design("nhanes")
    a = bootstrap_psu_factors(design, 40, seed=3)
    b = bootstrap_psu_factors(design, 40, seed=3)
    c = bootstrap_psu_factors(design, 40, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    n_h = design._psu_per_stratum[design._stratum_of_psu]
    # each stratum draws n_h - 1 PSUs: factors sum to n_h within a stratum, every replicate
    sums = np.zeros((design.n_strata, 40))
    np.add.at(sums, design._stratum_of_psu, a)
    np.testing.assert_allclose(sums, np.repeat(design._psu_per_stratum[:, None], 40, 1))
    # factor = m * n_h/(n_h-1) with m an integer count
    m = a * (n_h - 1)[:, None] / n_h[:, None]
    np.testing.assert_allclose(m, np.round(m))
    w = bootstrap_weights(design, 40, seed=3)
    np.testing.assert_allclose(w, design.weights[:, None] * a[design._psu_of_row])


def test_weight_columns_are_the_weight_matrix_columns_bit_for_bit():
    design, _ = _design("nhanes")
    full = bootstrap_weights(design, 40, seed=3)
    rows = np.arange(design.n_obs) % 3 != 0
    columns = list(bootstrap_weight_columns(design, 40, seed=3, rows=rows))
    assert len(columns) == 40
    # identical numbers (not merely close): fits on them must not move in the last digit
    np.testing.assert_array_equal(np.column_stack(columns), full[rows])
    np.testing.assert_array_equal(next(bootstrap_weight_columns(design, 40, seed=3)), full[:, 0])


def _lonely(policy: str) -> SurveyDesign:
    df = pd.read_csv(REF / "data" / "lonely_design.csv")
    return SurveyDesign(
        df, weight="weight", strata="stratum", psu="psu", nest=True, lonely_psu=policy
    )


def test_lonely_strata_keep_weight_under_certainty():
    design = _lonely("certainty")
    f = bootstrap_psu_factors(design, 30, seed=1)
    lonely_psus = np.isin(design._stratum_of_psu, design._lonely_strata)
    assert lonely_psus.sum() == 5
    np.testing.assert_array_equal(f[lonely_psus], 1.0)
    assert np.isfinite(f).all()


@pytest.mark.parametrize("policy", ["adjust", "average"])
def test_lonely_strata_without_bootstrap_counterpart_raise(policy):
    with pytest.raises(SurveyDesignError, match="'stratum'.*single PSU.*certainty"):
        bootstrap_psu_factors(_lonely(policy), 30, seed=1)


def test_bad_replicate_count():
    design, _ = _design("apistrat")
    with pytest.raises(ValueError, match="replicates"):
        bootstrap_weights(design, replicates=1)


def test_replicate_variance_drops_failed_replicates_like_r():
    thetas = np.array([1.0, 2.0, np.nan, 4.0])
    # R: scale stays 1/(B-1) with B = 4; the mean is over the finite replicates
    expected = np.sum((np.array([1.0, 2.0, 4.0]) - 7 / 3) ** 2) / 3
    assert replicate_variance(thetas) == pytest.approx(expected)
