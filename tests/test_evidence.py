"""data/evidence/studies.csv: schema errors name row and field; pooling and findings."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from analysis.core.findings import read_findings, write_findings
from analysis.evidence import meta
from analysis.evidence import studies as ev


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(ev.studies_path(), dtype=str, keep_default_na=False)


def _error(raw: pd.DataFrame, row: int, field: str, value: str) -> ev.EvidenceValidationError:
    bad = raw.copy()
    bad.loc[row - 1, field] = value
    with pytest.raises(ev.EvidenceValidationError) as info:
        ev.validate_studies(bad, "studies.csv")
    return info.value


def test_committed_table_is_valid_and_broad(studies):
    assert len(studies) >= 40
    verified = studies[studies["verified"] == "yes"]
    for claim in ("C1", "C4", "C5", "C6", "C7", "C8"):
        assert (verified["claim_id"] == claim).any(), f"no verified row for {claim}"
    assert verified["where_read"].str.len().min() > 10
    assert studies["study_id"].is_unique


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("year", "twenty", "expected an integer"),
        ("n", "12.5", "expected an integer"),
        ("estimate", "abc", "expected a number"),
        ("citation", "", "required but empty"),
        ("claim_id", "C99", "must be one of"),
        ("verified", "maybe", "must be one of"),
        ("direction", "up", "must be one of"),
        ("pool_group", "not_a_declared_group", "must be one of"),
        ("ids", "isbn:123", "does not match"),
    ],
)
def test_bad_cell_names_row_and_field(raw, field, value, message):
    err = _error(raw, 3, field, value)
    assert any(r == 3 and f == field and message in m for r, f, m in err.problems), err.problems
    assert "row 3 (line 4)" in str(err) and f"field '{field}'" in str(err)


def test_official_document_url_is_an_identifier(raw):
    """A regulator's or guideline body's page has no DOI/PMID: its https URL stands in."""
    row = int(raw.index[raw["verified"] == "yes"][0]) + 1
    ok = raw.copy()
    ok.loc[row - 1, "ids"] = "url:https://www.nice.org.uk/guidance/ng59; pmid:12973146"
    assert ev.validate_studies(ok, "studies.csv").loc[row - 1, "ids"].startswith("url:")
    err = _error(raw, row, "ids", "url:www.nice.org.uk/guidance/ng59")
    assert any(r == row and f == "ids" and "does not match" in m for r, f, m in err.problems)


def test_ci_not_containing_estimate(raw):
    row = int(raw.index[raw["study_id"] == "vantulder2003_adverse_events"][0]) + 1
    err = _error(raw, row, "estimate", "2.5")
    assert (row, "estimate", "2.5 lies outside its CI [1.14, 1.98]") in err.problems


def test_missing_where_read_on_verified_row(raw):
    row = int(raw.index[raw["verified"] == "yes"][0]) + 1
    err = _error(raw, row, "where_read", "")
    assert any(r == row and f == "where_read" for r, f, _ in err.problems)


def test_unverified_row_cannot_be_pooled(raw):
    row = int(raw.index[raw["study_id"] == "friedman2019_tizanidine_rmdq"][0]) + 1
    err = _error(raw, row, "pool_group", "C4_relaxant_addon_rmdq_1wk")
    assert any(r == row and f == "pool_group" and "only verified" in m for r, f, m in err.problems)


def test_missing_column_and_negative_ratio(raw):
    with pytest.raises(
        ev.EvidenceValidationError, match="field 'note': required column is missing"
    ):
        ev.validate_studies(raw.drop(columns=["note"]), "studies.csv")
    row = int(raw.index[raw["study_id"] == "shiri2010_obesity_lbp_12mo"][0]) + 1
    err = _error(raw, row, "ci_low", "-1")
    assert any(r == row and f == "ci_low" and "must be positive" in m for r, f, m in err.problems)


def test_load_from_file_names_the_file(tmp_path, raw):
    bad = raw.copy()
    bad.loc[0, "year"] = "19xx"
    path = tmp_path / "studies.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(
        ev.EvidenceValidationError, match=r"(?s)studies\.csv: .*row 1 \(line 2\), field 'year'"
    ):
        ev.load_studies(path)
    with pytest.raises(FileNotFoundError):
        ev.load_studies(tmp_path / "absent.csv")


def test_counts_rows_give_escalc_risk_ratio(studies):
    eff = ev.effect_sizes(studies).set_index("study_id")
    yi, vi = meta.log_risk_ratio(18, 57, 12, 55)
    assert eff.loc["friedman2017_diazepam_modsev_1wk", "yi"] == pytest.approx(yi)
    assert eff.loc["friedman2017_diazepam_modsev_1wk", "estimate_shown"] == pytest.approx(
        (18 / 57) / (12 / 55)
    )


def test_pool_groups_fit_and_are_consistent(studies):
    pooled = ev.pool(studies)
    assert set(pooled) == set(ev.schema()["pool_groups"])
    c4 = pooled["C4_relaxant_addon_rmdq_1wk"]
    assert c4.reml.k == 5 and "friedman2019_tizanidine_rmdq" not in c4.study_ids
    # hand check of the fixed-weight pooled mean when tau^2 = 0
    eff = ev.effect_sizes(studies).set_index("study_id").loc[list(c4.study_ids)]
    if c4.reml.tau2 == 0:
        w = 1 / eff["vi"].to_numpy()
        assert c4.reml.estimate == pytest.approx(np.sum(w * eff["yi"].to_numpy()) / w.sum())
    assert c4.n_total == 112 + 240 + 320  # multi-arm trials counted once
    assert "Sensitivity (DL)" in c4.summary()
    assert c4.to_frame().shape[0] == 2


def test_findings_from_studies(studies, tmp_path):
    findings = ev.evidence_findings(studies)
    pooled_keys = {f.estimand for f in findings if f.estimand.startswith("pooled_")}
    assert pooled_keys == {f"pooled_{k}" for k in ev.schema()["pool_groups"]}
    unverified = set(studies.loc[studies["verified"] == "no", "study_id"])
    assert not any(f.extra.get("study_id") in unverified for f in findings)
    assert all(f.source == "published" for f in findings)
    claims = {f.claim_id for f in findings}
    assert {"C1", "C4", "C5", "C6", "C7", "C8"} <= claims
    path = write_findings(findings, tmp_path / "findings" / "06_treatment_evidence.json")
    back = read_findings([path])
    assert len(back) == len(findings)
    assert {f.notebook for f in back} == {"06_treatment_evidence"}  # named by the file
    assert json.loads(path.read_text())[0]["source"] == "published"


def test_evidence_table_shows_computed_figures(studies):
    table = ev.evidence_table(studies)
    row = table.set_index("study_id").loc["friedman2017_diazepam_rmdq"]
    assert row["estimate_source"] == "computed (arm_cis)"
    assert row["estimate_shown"] == pytest.approx(0.0)
    assert list(table["claim_id"]) == sorted(table["claim_id"])
    assert io.StringIO(table.to_csv()).getvalue()


def test_plot_course_returns_figure(studies):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = ev.plot_course(studies)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "mean pain (0-100)"
    assert len(ax.get_lines()) >= 2  # acute and persistent cohorts
    plt.close(fig)


def test_reading_notes_take_every_number_from_the_rows(studies):
    """Notebook 06's sentences: numbers from the verified rows, and they follow a change."""
    from analysis.evidence import narrative

    text = narrative.course_reading(studies)
    row = studies.set_index("study_id").loc["henschke2008_recovered_12mo"]
    assert f"{row['estimate']:g}% were completely recovered at twelve months" in text
    changed = studies.copy()
    changed.loc[changed["study_id"] == "henschke2008_recovered_12mo", "estimate"] = 61.0
    assert "61% were completely recovered" in narrative.course_reading(changed)
    pooled = ev.pool(studies)
    reading = narrative.pooled_reading(pooled)
    for g in pooled.values():
        assert (
            f"{g.reml.estimate:.2f} (95% CI {g.reml.ci_low:.2f} to {g.reml.ci_high:.2f}" in reading
        )
    assert narrative.course_reading(studies.iloc[0:0]).startswith("No verified row")
