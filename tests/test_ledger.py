"""The verdict ledger: the default build's verdicts must be the recorded ones, every change is
recorded with a real reason, and the ledger file is validated like every other data file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from site_fixtures import masked_pages
from typer.testing import CliRunner

from analysis.claims.ledger import (
    LedgerError,
    check_reason,
    diff,
    ledger_path,
    load_ledger,
    mismatch_message,
    record,
    snapshot,
    write_ledger,
)
from analysis.claims.registry import load_registry
from analysis.claims.verdicts import collect_findings, evaluate_claims
from analysis.cli import app
from analysis.core.findings import Finding, write_findings

ROOT = Path(__file__).resolve().parents[1]
REG = load_registry()


def F(key, est, lo=None, hi=None, source="published") -> Finding:
    e = REG.estimands[key]
    return Finding(
        claim_id=e.claim_id, estimand=key, label=key, source=source, estimate=est, ci_low=lo,
        ci_high=hi, measure=e.measure, null_value=e.null, design="RCT",
    )  # fmt: skip


C4_NULL = [F("benzodiazepine_vs_placebo_pain", -3.0, -9.0, 3.0)]
C4_GOOD = [F("benzodiazepine_vs_placebo_pain", -15.0, -20.0, -12.0)]


@pytest.fixture(scope="module")
def default_build(tmp_path_factory) -> Path:
    """The default build (what `make report` builds), into a scratch reports folder."""
    out = tmp_path_factory.mktemp("reports")
    proc = subprocess.run(
        [sys.executable, "-c", "from analysis.cli import main; main()", "run", "-q",
         "--reports-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_default_build_verdicts_are_the_recorded_ones(default_build):
    """CI's guard: a code, rule or evidence change that moves a verdict or a certainty fails
    here until `painanx claims record --reason ...` records it."""
    verdicts = evaluate_claims(collect_findings(default_build), REG)
    ledger = load_ledger()
    assert ledger, f"{ledger_path()} is missing or empty"
    changes = diff(ledger, verdicts, REG)
    assert not changes, mismatch_message(changes)
    assert set(ledger) == {c.id for c in REG.claims}


def test_no_page_of_the_default_build_shows_a_warning_or_an_error(default_build):
    """What readers see is the analysis: a library's warning (such as tqdm's "IProgress not
    found" when ipywidgets is missing) or a traceback in a cell is a fault of the build."""
    shown = [
        f"{executed.relative_to(default_build)}: {''.join(output.get('text', ''))[:200]}"
        for executed in sorted(default_build.glob("*/*.ipynb"))
        for cell in json.loads(executed.read_text())["cells"]
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr" or output.get("output_type") == "error"
    ]
    assert list(default_build.glob("*/*.ipynb")), "the default build executed no notebook"
    assert not shown, "\n".join(shown)


def test_the_default_pages_are_the_same_with_kernels_forked_or_started_cold(default_build):
    """The default build's kernels are forked from a template that imported the libraries
    once; started cold instead (--no-warm-kernels), every page is the same, build times aside.
    The fixture notebooks' version of this test: tests/test_faults.py."""
    forked = masked_pages(default_build)
    proc = subprocess.run(
        [sys.executable, "-c", "from analysis.cli import main; main()", "run", "-q", "--force",
         "--no-warm-kernels", "--reports-dir", str(default_build)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cold = masked_pages(default_build)
    assert list(cold) == list(forked)
    for name, text in forked.items():
        assert cold[name] == text, f"{name} differs between forked and cold kernels"


def test_every_recorded_change_has_a_real_reason():
    for rec in load_ledger().values():
        for entry in (rec.current, *rec.history):
            check_reason(entry.reason)
        dates = [e.date for e in (rec.current, *rec.history)]
        assert dates == sorted(dates, reverse=True), f"{rec.claim_id}: history not newest first"


def test_a_flipped_verdict_fails_naming_claim_verdicts_findings_and_command():
    ledger = record({}, diff({}, evaluate_claims(C4_NULL, REG), REG), "first verdicts of C4 here",
                    date="2026-01-01")  # fmt: skip
    assert diff(ledger, evaluate_claims(C4_NULL, REG), REG) == []
    changes = diff(ledger, evaluate_claims(C4_GOOD, REG), REG)
    assert [c.claim_id for c in changes] == ["C4"]
    msg = mismatch_message(changes)
    assert "C4: was not supported (" in msg and "now supported (" in msg
    assert "+ benzodiazepine_vs_placebo_pain (published): -15 [-20, -12]" in msg
    assert "- benzodiazepine_vs_placebo_pain (published): -3 [-9, 3]" in msg
    assert 'painanx claims record --reason "' in msg


def test_a_hand_edited_ledger_fails_too():
    ledger = record({}, diff({}, evaluate_claims(C4_NULL, REG), REG), "first verdicts of C4 here",
                    date="2026-01-01")  # fmt: skip
    edited = {"C4": ledger["C4"]}
    edited["C4"].current = snapshot(
        evaluate_claims(C4_GOOD, REG)[3], REG, date="2026-01-02", reason="hand edit to supported"
    )
    changes = [c for c in diff(edited, evaluate_claims(C4_NULL, REG), REG) if c.claim_id == "C4"]
    assert [(c.old.verdict, c.new.verdict) for c in changes] == [("supported", "not supported")]


def test_record_moves_the_old_verdict_to_history_and_keeps_the_reason():
    first = record({}, diff({}, evaluate_claims(C4_NULL, REG), REG), "first verdicts of C4 here",
                   date="2026-01-01")  # fmt: skip
    second = record(first, diff(first, evaluate_claims(C4_GOOD, REG), REG),
                    "a larger trial of diazepam was added", date="2026-02-01")  # fmt: skip
    rec = second["C4"]
    assert (rec.current.verdict, rec.current.date) == ("supported", "2026-02-01")
    assert rec.current.reason == "a larger trial of diazepam was added"
    assert [h.verdict for h in rec.history] == ["not supported"]
    assert rec.published == "2026-01-01"
    (old, new), = rec.changes()  # fmt: skip
    assert (old.verdict, new.verdict) == ("not supported", "supported")
    assert first["C4"].history == []  # the earlier ledger object is untouched


@pytest.mark.parametrize("reason", ["", "   ", "update", "TODO", "tbd.", "fix it", "changes"])
def test_empty_and_placeholder_reasons_are_refused(reason):
    changes = diff({}, evaluate_claims(C4_NULL, REG), REG)
    with pytest.raises(LedgerError, match="--reason"):
        record({}, changes, reason)


def test_nothing_to_record_is_refused():
    ledger = record({}, diff({}, evaluate_claims(C4_NULL, REG), REG), "first verdicts of C4 here")
    with pytest.raises(LedgerError, match="nothing to record"):
        record(ledger, diff(ledger, evaluate_claims(C4_NULL, REG), REG), "a real reason here too")


def test_ledger_round_trips_and_bad_files_name_claim_and_field(tmp_path):
    ledger = record({}, diff({}, evaluate_claims(C4_NULL, REG), REG), "first verdicts of C4 here",
                    date="2026-01-01")  # fmt: skip
    path = write_ledger(ledger, tmp_path / "verdicts.yaml")
    assert load_ledger(path)["C4"].current == ledger["C4"].current
    raw = yaml.safe_load(path.read_text())
    raw["claims"]["C4"]["current"]["date"] = "yesterday"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(LedgerError, match=r"verdicts.yaml: claim C4: current: field 'date'"):
        load_ledger(path)
    del raw["claims"]["C4"]["current"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(LedgerError, match="claim C4: field 'current' is required"):
        load_ledger(path)


def test_cli_diff_and_record(tmp_path):
    write_findings(C4_NULL, tmp_path / "published" / "findings" / "06_x.json")
    ledger = tmp_path / "verdicts.yaml"
    runner = CliRunner()
    args = ["--reports", str(tmp_path), "--ledger", str(ledger)]
    result = runner.invoke(app, ["claims", "diff", *args])
    assert result.exit_code == 1 and "C4: was no entry, now not supported" in result.output
    result = runner.invoke(app, ["claims", "record", *args, "--reason", "update"])
    assert result.exit_code == 2 and "placeholder" in result.output and not ledger.exists()
    result = runner.invoke(
        app, ["claims", "record", *args, "--claim", "C4", "--reason", "first verdict of C4 here"]
    )
    assert result.exit_code == 0, result.output
    assert set(load_ledger(ledger)) == {"C4"}
    result = runner.invoke(app, ["claims", "diff", *args])
    assert "C4" not in result.output  # recorded; the other claims still differ


def test_every_registry_estimand_is_produced_by_the_default_build(default_build):
    """No orphan: each estimand is written by some notebook for some source, measured or as a
    named gap (a source that cannot measure it, or a study not curated yet)."""
    produced = {f.estimand for f in collect_findings(default_build)}
    orphans = sorted(set(REG.estimands) - produced)
    assert not orphans, f"estimands no notebook produces (produce them or remove them): {orphans}"
