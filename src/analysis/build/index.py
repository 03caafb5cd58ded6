"""The build's front page, ``reports/index.html``, and its table ``build_status.csv``.

Every page of the plan is listed: from this build when it ran or was up to date, else as an
earlier build left it (from the manifest), so a partial build (``--only``, one source) keeps
the rest of the site reachable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from analysis.build import site
from analysis.build.claims_step import ClaimsOutcome
from analysis.build.fingerprint import Manifest
from analysis.build.plan import NotebookSpec, Plan, SourceSelection
from analysis.build.results import (
    CACHED,
    FAILED,
    INTERRUPTED,
    MISSING,
    NOT_MEASURED,
    RAN,
    SKIPPED,
    BuildResult,
    NotebookRun,
    error_text,
)
from analysis.build.workspace import write_texts_together
from analysis.claims.ledger import ClaimHistory, load_ledger
from analysis.data.registry import SourceSpec

BUILD_STATUS_COLUMNS = (
    "source",
    "notebook",
    "title",
    "status",
    "reason",
    "duration_s",
    "built_at",
    "page",
    "error",
)


def write_index(
    result: BuildResult,
    plan: Plan,
    manifest: Manifest,
    claims: ClaimsOutcome,
    selection: SourceSelection,
    site_provenance: dict,
) -> Path:
    """Write reports/index.html and build_status.csv from this build and the manifest."""
    reports_dir = result.reports_dir
    by_key = {r.key: r for r in result.runs}
    ledger = load_ledger()  # the cards' update lines and the updates page
    sections, status_rows, failures = [], [], []
    for name, spec in plan.sources.items():
        if spec.default == "never" and name not in selection.selected:
            continue
        rows = [
            _index_row(name, nb, by_key.get(f"{name}/{nb.name}"), manifest, selection, reports_dir)
            for nb in plan.notebooks
            if name in nb.sources
        ]
        failures.extend(_failure(row) for row in rows if row["status"] == "failed" and row["error"])
        for row in rows:
            row["error"] = error_text(row["error"])
        status_rows.extend(rows)
        sections.append(_source_section(name, spec, rows, plan, selection.unavailable))
    html = site.render_index(
        summary=_summary(status_rows, result),
        failures=failures,
        messages=[*result.messages, *result.errors],
        claims=_claims_context(claims, reports_dir, ledger),
        sources=sections,
        provenance=site_provenance,
        built_at=site_provenance["built_at"],
    )
    index = reports_dir / "index.html"
    updates = site.render_updates(ledger, site_provenance, site_provenance["built_at"])
    write_texts_together(
        {
            reports_dir / "build_status.csv": site.csv_text(status_rows, BUILD_STATUS_COLUMNS),
            reports_dir / "updates.html": updates,
            index: html,
        }
    )
    return index


def _index_row(
    name: str,
    nb: NotebookSpec,
    run: NotebookRun | None,
    manifest: Manifest,
    selection: SourceSelection,
    reports_dir: Path,
) -> dict:
    """One row of the page list: this build's outcome, else the manifest's (an earlier build).
    Links only to files that exist."""
    prev = manifest.entry(f"{name}/{nb.name}")
    row = {
        "source": name,
        "notebook": nb.name,
        "title": nb.title,
        "status": "not built",
        "reason": "",
        "duration_s": None,
        "built_at": None,
        "page": None,
        "executed": None,
        "error": None,
    }
    if run is not None and run.status in (RAN, CACHED, FAILED):
        row.update(
            status="failed" if run.status == FAILED else "ok",
            reason="re-run in this build" if run.status == RAN else "",
            duration_s=run.duration_s,
            page=run.page,
            executed=run.executed,
            built_at=prev.get("built_at"),
            error=run.error,
        )
    elif run is not None and run.status == NOT_MEASURED:
        row.update(
            status="not measured",
            reason=run.reason,
            duration_s=run.duration_s,
            page=run.page,
            built_at=prev.get("built_at"),
        )
    elif run is not None and run.status in (SKIPPED, MISSING, INTERRUPTED):
        status = {SKIPPED: "skipped", MISSING: "missing", INTERRUPTED: "interrupted"}[run.status]
        row.update(status=status, reason=run.reason)
    elif prev:
        row.update(
            status="not measured" if prev.get("not_measured") else prev.get("status", "not built"),
            reason=prev.get("not_measured") or _earlier_build_reason(run, prev),
            duration_s=prev.get("duration_s"),
            page=prev.get("page"),
            executed=prev.get("executed"),
            built_at=prev.get("built_at"),
            error=prev.get("error"),
        )
    elif name in selection.unavailable:
        row["reason"] = selection.unavailable[name]
    for link in ("page", "executed"):
        if row[link] and not (reports_dir / row[link]).is_file():
            row[link] = None
    return row


def _earlier_build_reason(run: NotebookRun | None, prev: Mapping) -> str:
    """Why a page from an earlier build is shown, and whether its findings count."""
    if run is not None and run.current:
        return "from an earlier build, still up to date"
    if prev.get("findings"):
        return "from an earlier build, not up to date: its findings are left out of the verdicts"
    return "from an earlier build"


def _failure(row: dict) -> dict:
    """A failed page as the index's list of failures shows it (where and what was raised)."""
    e = row["error"]
    return {
        "source": row["source"],
        "notebook": row["notebook"],
        "page": row["page"],
        "notebook_file": row["executed"],
        "cell": e.get("cell"),
        "execution_count": e.get("execution_count"),
        "ename": e.get("ename"),
        "evalue": e.get("evalue"),
    }


def _source_section(
    name: str, spec: SourceSpec, rows: list[dict], plan: Plan, unavailable: Mapping[str, str]
) -> dict:
    """One source's part of the page list."""
    if name in unavailable and all(r["status"] == "not built" for r in rows):
        rows = []  # the fetch hint says it all
    return {
        "name": name,
        "label": spec.label,
        "evidence": spec.evidence,
        "available": name not in unavailable,
        "unavailable_reason": unavailable.get(name, ""),
        "rows": rows,
        "not_applicable": [
            f"{nb.name} ({nb.not_applicable[name]})"
            for nb in plan.notebooks
            if name not in nb.sources and name in nb.not_applicable
        ],
    }


def _summary(status_rows: list[dict], result: BuildResult) -> dict:
    n_ok = sum(r["status"] == "ok" for r in status_rows)
    n_failed = sum(r["status"] == "failed" for r in status_rows)
    n_not_measured = sum(r["status"] == "not measured" for r in status_rows)
    return {
        "pages": len(status_rows),
        "ok": n_ok,
        "failed": n_failed,
        "not_measured": n_not_measured,
        "skipped": len(status_rows) - n_ok - n_failed - n_not_measured,
        "ran": result.count(RAN),
        "cached": result.count(CACHED),
    }


def _claims_context(
    claims: ClaimsOutcome, reports_dir: Path, ledger: Mapping[str, ClaimHistory]
) -> dict:
    """The claims dashboard: verdicts when evaluated, else the findings grouped by claim."""
    return {
        "evaluated": claims.evaluated,
        "verdicts": site.prepare_verdicts_for_index(claims.verdicts, reports_dir, ledger)
        if claims.evaluated
        else [],
        "groups": []
        if claims.evaluated
        else site.group_findings_by_claim(claims.findings, reports_dir),
        "error": claims.error,
    }
