"""The claims step of a build: this build's findings in, the article's claims judged out.

Reads the findings files it is given (the runner gives those of the notebooks that ran
successfully in this build or were verified up to date by their fingerprint), writes them to
``findings.csv``, applies the claims' rules (`analysis.claims.verdicts.evaluate_claims`) and
writes the verdicts to ``claims.json`` and ``claims.csv``, the three files as one set. Without
verdicts (no rule given, or the rules failed) each claim with findings is listed as pending.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.build import site
from analysis.build.fingerprint import findings_path
from analysis.build.workspace import write_texts_together
from analysis.claims import verdicts
from analysis.core.findings import Finding, read_findings

FINDINGS_CSV_COLUMNS = (
    "claim_id",
    "estimand",
    "label",
    "source",
    "estimate",
    "ci_low",
    "ci_high",
    "measure",
    "null_value",
    "n",
    "design",
    "measured",
    "caveats",
    "notebook",
    "truth",
)


@dataclass
class ClaimsOutcome:
    """What the claims step found: the findings, the verdicts (when evaluated), or its error."""

    evaluated: bool = False
    verdicts: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    error: str | None = None


def run_claims_step(
    reports_dir: str | os.PathLike[str],
    findings_files: Iterable[Path],
    claims_hook: Callable | None = verdicts.evaluate_claims,
) -> ClaimsOutcome:
    """Read ``findings_files``, evaluate the claims with ``claims_hook`` (None: leave them
    pending); write findings.csv, claims.json and claims.csv together."""
    reports_dir = Path(reports_dir)
    outcome = ClaimsOutcome()
    findings = _read_findings(sorted(findings_files), outcome)
    if claims_hook is not None and outcome.error is None:
        try:
            outcome.verdicts = site.validate_verdicts(claims_hook(findings))
            outcome.evaluated = True
        except Exception as exc:
            outcome.error = f"evaluate_claims raised {type(exc).__name__}: {exc}"
    rows = outcome.verdicts if outcome.evaluated else _pending_claims(outcome, reports_dir)
    write_texts_together(
        {
            reports_dir / "findings.csv": site.csv_text(outcome.findings, FINDINGS_CSV_COLUMNS),
            reports_dir / "claims.json": json.dumps(rows, indent=2, default=str) + "\n",
            reports_dir / "claims.csv": site.csv_text(
                site.verdict_csv_rows(rows), site.CLAIMS_CSV_COLUMNS
            ),
        }
    )
    return outcome


def _read_findings(paths: list[Path], outcome: ClaimsOutcome) -> list[Finding]:
    """The findings in ``paths``, also kept as dicts on ``outcome``; an unreadable file is the
    step's error (and leaves no findings)."""
    try:
        findings = read_findings(paths)
    except ValueError as exc:
        outcome.error = str(exc)
        findings = []
    outcome.findings = [f.to_dict() for f in findings]
    return findings


def _pending_claims(outcome: ClaimsOutcome, reports_dir: Path) -> list[dict]:
    """One pending entry per claim that has findings, with the same keys as a verdict."""
    return [
        {
            "claim_id": group["claim_id"],
            "sentence": "",
            "verdict": None,
            "key_finding": None,
            "sources": sorted({f["source"] for f in group["findings"]}),
            "caveats": [],
            "notebook": None,
            "pending": True,
        }
        for group in site.group_findings_by_claim(outcome.findings, reports_dir)
    ]


def judged_findings_files(reports_dir: Path) -> list[Path]:
    """The findings files the last build's claims step judged (read back from its findings.csv),
    so that `painanx claims` agrees with the dashboard; every findings file when there is no
    findings.csv (a folder assembled by hand)."""
    table = reports_dir / "findings.csv"
    if not table.is_file():
        return sorted(reports_dir.glob("*/findings/*.json"))
    with table.open(newline="", encoding="utf-8") as fh:
        pairs = {(row["source"], row["notebook"]) for row in csv.DictReader(fh)}
    paths = (reports_dir / findings_path(source, notebook) for source, notebook in pairs)
    return sorted(p for p in paths if p.is_file())
