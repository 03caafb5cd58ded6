"""analysis.evidence.meta against R metafor 3.8.1 (values committed in tests/reference/meta_reference.json,
written by tests/reference/make_meta.R; R is never run here)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from analysis.evidence import meta

matplotlib.use("Agg")

REFERENCE = json.loads((Path(__file__).parent / "reference" / "meta_reference.json").read_text())
QUANTITIES = [
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pval",
    "tau2",
    "se_tau2",
    "I2",
    "H2",
    "Q",
    "Q_pval",
    "pi_low",
    "pi_high",
]
CASES = [
    (ds["name"], fit_name, ds, fit)
    for ds in REFERENCE["datasets"]
    for fit_name, fit in ds["fits"].items()
]


def _close(got: float, ref: float, rtol: float = 1e-6) -> bool:
    if ref == 0:
        return abs(got) < 1e-12
    return abs(got - ref) / abs(ref) <= rtol


@pytest.mark.parametrize(
    ("dataset", "fit_name", "ds", "fit"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_matches_metafor(dataset, fit_name, ds, fit):
    res = meta.random_effects(ds["yi"], ds["vi"], method=fit["method"], test=fit["test"])
    bad = {
        q: (getattr(res, q), fit[q])
        for q in QUANTITIES
        if fit.get(q) is not None and not _close(getattr(res, q), fit[q])
    }
    assert not bad, f"{dataset} {fit_name}: (ours, metafor) differ beyond 1e-6 relative: {bad}"
    assert res.k == fit["k"] and res.Q_df == fit["Q_df"]


def test_reference_covers_both_estimators_and_tests():
    fits = {(f["method"], f["test"]) for ds in REFERENCE["datasets"] for f in ds["fits"].values()}
    assert fits == {("DL", "z"), ("DL", "knha"), ("REML", "z"), ("REML", "knha")}
    assert len(REFERENCE["datasets"]) >= 2


def test_log_risk_ratio_matches_escalc_on_bcg():
    ds = next(d for d in REFERENCE["datasets"] if d["name"] == "dat.bcg")
    c = ds["counts"]
    got = [
        meta.log_risk_ratio(a, n1, b, n2)
        for a, n1, b, n2 in zip(
            c["events_treat"], c["n_treat"], c["events_ctrl"], c["n_ctrl"], strict=True
        )
    ]
    np.testing.assert_allclose([g[0] for g in got], ds["yi"], rtol=1e-10)
    np.testing.assert_allclose([g[1] for g in got], ds["vi"], rtol=1e-10)


def test_log_risk_ratio_zero_cell_adds_half():
    yi, vi = meta.log_risk_ratio(0, 10, 5, 10)
    assert yi == pytest.approx(np.log(0.5 / 11) - np.log(5.5 / 11))
    assert vi == pytest.approx(1 / 0.5 - 1 / 11 + 1 / 5.5 - 1 / 11)


def test_ratio_ci_round_trip():
    yi, vi = meta.log_ratio_from_ci(0.8, 0.71, 0.89)
    assert yi == pytest.approx(np.log(0.8))
    z = 1.959963984540054
    assert np.sqrt(vi) == pytest.approx((np.log(0.89) - np.log(0.71)) / (2 * z))
    res = meta.random_effects([yi, yi], [vi, vi], measure="RR")
    assert res.reported()["estimate"] == pytest.approx(0.8)


def test_difference_from_arm_cis_splits_shared_control():
    d1, v1 = meta.difference_from_arm_cis(9.4, 7.4, 11.4, 10.9, 8.9, 12.9)
    d2, v2 = meta.difference_from_arm_cis(9.4, 7.4, 11.4, 10.9, 8.9, 12.9, shared_control=2)
    se_arm = 2.0 / 1.959963984540054
    assert d1 == pytest.approx(-1.5)
    assert v1 == pytest.approx(2 * se_arm**2)
    assert v2 == pytest.approx(3 * se_arm**2)


def test_result_objects_summary_and_frame():
    ds = REFERENCE["datasets"][0]
    res = meta.random_effects(
        ds["yi"], ds["vi"], method="REML", measure="RR", labels=[f"t{i}" for i in range(13)]
    )
    text = res.summary()
    assert "tau^2" in text and "REML" in text and "prediction interval" in text and "RR" in text
    frame = res.to_frame()
    assert frame.shape[0] == 1
    assert frame.loc[0, "reported_estimate"] == pytest.approx(np.exp(res.estimate))
    studies = res.study_frame()
    assert list(studies["study"])[:2] == ["t0", "t1"]
    assert studies["weight_pct"].sum() == pytest.approx(100)


def test_forest_plot_returns_figure_with_rows_diamond_and_pi():
    ds = REFERENCE["datasets"][1]
    res = meta.random_effects(ds["yi"], ds["vi"], labels=[f"s{i}" for i in range(len(ds["yi"]))])
    fig = meta.forest_plot(res, title="normand")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[: len(ds["yi"])] == [f"s{i}" for i in range(len(ds["yi"]))]
    assert ticks[-1].startswith("Pooled")
    assert len(ax.patches) == 1  # the diamond
    pi_lines = [c for c in ax.collections if c.get_label() == "prediction interval"]
    assert pi_lines, "prediction interval line missing"
    seg = pi_lines[0].get_segments()[0]
    assert seg[0][0] == pytest.approx(res.pi_low) and seg[1][0] == pytest.approx(res.pi_high)
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("bad", [[0.1], []])
def test_fewer_than_two_studies_is_an_error(bad):
    with pytest.raises(meta.MetaAnalysisError, match="at least 2 studies"):
        meta.random_effects(bad, [0.1] * len(bad))


@pytest.mark.parametrize("vi", [[0.1, 0.0], [0.1, -0.2], [0.1, float("nan")]])
def test_non_positive_variances_are_an_error(vi):
    with pytest.raises(meta.MetaAnalysisError, match="variances must be positive"):
        meta.random_effects([0.1, 0.2], vi)


def test_bad_method_and_lengths():
    with pytest.raises(meta.MetaAnalysisError, match="method"):
        meta.random_effects([0.1, 0.2], [0.1, 0.1], method="PM")
    with pytest.raises(meta.MetaAnalysisError, match="equal length"):
        meta.random_effects([0.1, 0.2], [0.1])
    with pytest.raises(meta.MetaAnalysisError, match="positive"):
        meta.log_ratio_from_ci(0.0, 0.5, 1.2)


def test_bucher_indirect_comparison():
    """d_AB = d_AC - d_BC with variances added (Bucher 1997), on a worked example."""
    from analysis.evidence.meta import MetaAnalysisError, bucher, se_from_ci

    se_a, se_b = se_from_ci(-10.98, -3.61), se_from_ci(-13.33, 13.33)
    ic = bucher(-7.29, se_a, 0.0, se_b)
    z = 1.959963984540054
    assert ic.estimate == pytest.approx(-7.29)
    assert ic.se == pytest.approx((se_a**2 + se_b**2) ** 0.5)
    assert (ic.ci_low, ic.ci_high) == pytest.approx((-7.29 - z * ic.se, -7.29 + z * ic.se))
    assert ic.ci_high - ic.ci_low > (13.33 * 2)  # wider than either input
    with pytest.raises(MetaAnalysisError, match="se_bc must be a positive number"):
        bucher(1.0, 1.0, 0.0, 0.0)
