"""Published NCHS 2019 figures: the mapping to tidy indicators, and (with real data) the check.

The reproduction needs the real 2019 adult file, which is not on the build machines (no
internet; see ../shared/README.md). It runs where the file is present under ../shared/data/ or
data/raw/ and skips, saying so, where it is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.core import paths
from analysis.data import schema
from analysis.data.nhis.fixtures import write_fixture_csv
from analysis.data.nhis.prepare import find_year_file, prepare_year
from analysis.models.published_figures import (
    compare_with_published,
    design_estimator,
    figure_targets,
    published_figures,
)

# The design-based estimator (analysis.survey, which matches R `survey`): estimator(frame,
# indicator, domain) -> (percent, standard_error_in_points).
DESIGN_ESTIMATOR = design_estimator


def real_2019_file():
    root = paths.project_root()
    return find_year_file(2019, [root.parent / "shared" / "data", paths.raw_dir()])


@pytest.fixture(scope="module")
def fixture_2019(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nhis2019")
    path = write_fixture_csv(2019, folder / "adult19.csv", n=400, seed=19)
    return prepare_year(2019, path, write=False).frame


def test_published_figures_are_the_shared_ones_with_citations():
    ours = published_figures(2019)
    shared_path = paths.project_root().parent / "shared" / "reference" / "published_figures.csv"
    assert len(ours) == 10 and ours["source"].str.len().min() > 10
    assert set(ours["tidy_column"]) <= set(schema.column_specs()) | {"pain_frequency_3m"}
    assert len(published_figures(2017)) == 3  # NCHS Data Brief 325 (tests/test_nhis_2017.py)
    if shared_path.exists():  # copies must match the shared reference exactly
        shared = pd.read_csv(shared_path).set_index("figure_id")
        for row in published_figures().itertuples():
            assert row.percent == shared.loc[row.figure_id, "percent"]
            assert row.source == shared.loc[row.figure_id, "source"]
            assert row.definition == shared.loc[row.figure_id, "definition"]
    assert ours.set_index("figure_id").loc["nhsr213_anxiety_any_total", "percent"] == 15.6


def test_targets_map_figures_to_indicator_and_domain(fixture_2019):
    plan = figure_targets(fixture_2019, 2019)
    by_id = {t.figure_id: t for t in plan.targets}
    f = fixture_2019

    back = by_id["db415_back_pain_women"]
    indicator, domain = back.indicator(f), back.domain(f)
    sev = f["back_pain_severity"].astype(object)
    assert (indicator[sev == "not at all"] == 0).all()
    assert (indicator[sev.isin(["a little", "a lot", "somewhere in between"])] == 1).all()
    assert indicator[sev.isna()].isna().all() and sev.isna().any()
    assert (domain == (f["sex"].astype(object) == "female")).all()

    mild = by_id["db378_anxiety_mild"]
    cat = f["gad7_category"].astype(object)
    assert (mild.indicator(f)[cat == "mild"] == 1).all()
    assert (mild.indicator(f)[cat.isin(["none", "moderate", "severe"])] == 0).all()
    assert mild.domain(f).all()

    table = plan.to_frame()
    assert list(table["figure_id"]) == list(published_figures(2019)["figure_id"])
    assert (table["n_known"] <= table["n_domain"]).all() and (table["n_known"] > 0).all()
    assert "db415_back_pain_total" in plan.summary()


def test_targets_refuse_a_frame_that_does_not_measure_the_indicator(fixture_2019):
    with pytest.raises(schema.NotMeasuredError, match="back_pain_severity"):
        figure_targets(fixture_2019.drop(columns=["back_pain_severity"]), 2019)


def test_comparison_logic_with_a_stand_in_estimator(fixture_2019):
    """Plumbing only: a stand-in that returns the published value (+ an offset) by figure.

    It checks the tolerance rules (0.1 pp; 0.02 for SEs); it is not an estimate of anything.
    """
    published = published_figures(2019).set_index("figure_id")
    targets = {t.figure_id: t for t in figure_targets(fixture_2019).targets}

    def stand_in(offset, se_offset):
        def estimator(frame, indicator, domain):
            for fid, t in targets.items():
                if indicator.equals(t.indicator(frame)) and domain.equals(t.domain(frame)):
                    row = published.loc[fid]
                    se = row["standard_error"] if pd.notna(row["standard_error"]) else np.nan
                    return row["percent"] + offset, se + se_offset
            raise AssertionError("unknown target")

        return estimator

    assert compare_with_published(fixture_2019, stand_in(0.05, 0.01)).all_within_tolerance
    result = compare_with_published(fixture_2019, stand_in(0.0, 0.03))
    assert not result.all_within_tolerance
    missed = set(result.to_frame().query("not within_tolerance")["figure_id"])
    assert missed == set(published[published["standard_error"].notna()].index)
    assert not compare_with_published(fixture_2019, stand_in(0.2, 0.0)).all_within_tolerance
    assert "MISS" in compare_with_published(fixture_2019, stand_in(-0.2, 0.0)).summary()


def test_reproduces_published_2019_figures():
    path = real_2019_file()
    if path is None:
        pytest.skip(
            "real NHIS 2019 adult file (adult19.csv or adult19csv.zip) is not under "
            "../shared/data/ or data/raw/ on this machine (no internet here; see "
            "../shared/README.md); run `painanx data fetch nhis --years 2019` where it can be"
        )
    frame = prepare_year(2019, path, write=False).frame
    plan = figure_targets(frame, 2019)
    assert len(frame) > 30_000  # the 2019 sample adult file has about 32,000 adults
    assert (plan.to_frame()["n_known"] > 10_000).all()
    result = compare_with_published(frame, DESIGN_ESTIMATOR, 2019)
    assert result.all_within_tolerance, result.summary()


def test_design_estimator_on_fixture_matches_a_direct_computation(fixture_2019):
    """The wired estimator gives the weighted share and the with-replacement PSU SE."""
    plan = figure_targets(fixture_2019, 2019)
    target = plan.targets[0]
    y = target.indicator(fixture_2019)
    dom = target.domain(fixture_2019).fillna(False).to_numpy(bool)
    pct, se = design_estimator(fixture_2019, y, target.domain(fixture_2019))
    known = dom & y.notna().to_numpy()
    w = fixture_2019["weight"].to_numpy() * known
    yy = np.nan_to_num(y.to_numpy(dtype=float))
    p = (w * yy).sum() / w.sum()
    assert pct == pytest.approx(100 * p, rel=1e-12)
    # linearised SE: PSU totals of w*(y-p)/sum(w), centred within strata, n_h/(n_h-1)
    z = pd.DataFrame(
        {"s": fixture_2019["stratum"], "u": fixture_2019["psu"], "v": w * (yy - p) / w.sum()}
    )
    totals = z.groupby(["s", "u"])["v"].sum().reset_index()
    var = 0.0
    for _, g in totals.groupby("s"):
        n_h = len(g)
        var += n_h / (n_h - 1) * ((g["v"] - g["v"].mean()) ** 2).sum()
    assert se == pytest.approx(100 * np.sqrt(var), rel=1e-9)
