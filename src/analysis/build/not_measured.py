"""Notebooks not run on a source that lacks a column they need (``needs`` in notebooks.yaml).

The source's codebook says which tidy columns its frame has (`source_measures`, no data
loaded). Where a column the notebook needs is lacking, the notebook would find nothing: the
build writes, without a kernel, the findings the notebook writes in that case (measured:
false), from the library function ``needs.findings`` names, and a page saying so in one line.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from analysis.build import site
from analysis.build.execute import NotebookTask
from analysis.build.fingerprint import Manifest
from analysis.build.plan import NotebookSpec, PlanError
from analysis.build.results import FAILED, NOT_MEASURED, error_outside_cells
from analysis.core import provenance
from analysis.core.findings import write_findings
from analysis.core.io import write_text_atomic
from analysis.data.registry import SourceSpec, source_measures


@dataclass(frozen=True)
class Lacking:
    """What a source lacks of a notebook's needs, and the one line that says so."""

    measured: frozenset[str]  # the tidy columns the source's frame has
    unmet: tuple[tuple[str, ...], ...]  # the needs it lacks (each: alternatives)
    notice: str


def lacking_measures(
    spec: NotebookSpec, source: SourceSpec, years: list[int] | None
) -> Lacking | None:
    """What ``source`` (in these years) lacks of the notebook's needs; None when it has them
    all, or when the notebook or the source declares nothing to tell."""
    if spec.needs is None:
        return None
    measured = source_measures(source, years)
    if measured is None:
        return None
    unmet = tuple(spec.needs.unmet(measured))
    if not unmet:
        return None
    return Lacking(measured, unmet, not_measured_notice(source, years, unmet))


def not_measured_notice(
    source: SourceSpec, years: Iterable[int] | None, unmet: Iterable[tuple[str, ...]]
) -> str:
    """'Not run: NHIS 2017 does not measure muscle tension, which this notebook needs.'"""
    who = source.short_label or source.label
    if years and "years" in source.accepts:
        who += " " + ", ".join(str(y) for y in years)
    names = [column.replace("_", " ") for alternatives in unmet for column in alternatives]
    what = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"Not run: {who} does not measure {what}, which this notebook needs."


def write_not_measured(
    tasks: Mapping[str, tuple[NotebookTask, Lacking]],
    manifest: Manifest,
    reports_dir: Path,
    plan_path: Path,
    say: Callable[[str], None],
) -> None:
    """For each notebook x source not run: its findings, its page and its manifest record."""
    for key, (task, lacking) in tasks.items():
        manifest.forget(key)
        _write_one(task, lacking, plan_path)
        run = task.run
        if run.status == FAILED:
            say(f"  FAILED  {key:<44} {run.describe_error()}")
        else:
            say(f"  not run {key:<44} {lacking.notice}")
        manifest.record(run, task.provenance["built_at"], reports_dir)
        manifest.save()


def _write_one(task: NotebookTask, lacking: Lacking, plan_path: Path) -> None:
    run, name = task.run, task.spec.name
    started = time.perf_counter()
    findings = task.out_dir / "findings" / f"{name}.json"
    findings.unlink(missing_ok=True)  # as before a run: a failure leaves none behind
    # an earlier run's executed notebook is not this build's
    (task.out_dir / f"{name}.ipynb").unlink(missing_ok=True)
    run.executed, run.page, run.current = None, None, False
    try:
        make_findings = findings_function(task.spec, plan_path)
        write_findings(
            make_findings(
                task.source.name,
                lacking.measured,
                notebook=name,
                years=run.parameters.get("years"),
            ),
            findings,
        )
    except Exception as exc:  # a bug in the declared function: report it as a run's error
        findings.unlink(missing_ok=True)
        run.status, run.reason = FAILED, lacking.notice
        run.error = error_outside_cells(type(exc).__name__, str(exc))
        return
    run.duration_s = time.perf_counter() - started
    task.provenance["built_at"] = provenance.now_utc()
    task.provenance["duration_s"] = run.duration_s
    page = site.render_not_measured_page(
        title=task.spec.title,
        source_label=task.source.label,
        synthetic=task.source.synthetic,
        provenance=task.provenance,
        notice=lacking.notice,
    )
    write_text_atomic(task.out_dir / f"{name}.html", page)
    run.status, run.reason = NOT_MEASURED, lacking.notice
    run.page = f"{run.source}/{name}.html"
    run.current = True


def import_findings_functions(
    tasks: Mapping[str, tuple[NotebookTask, Lacking]], plan_path: Path
) -> None:
    """Import the modules of the findings functions `write_not_measured` will call."""
    for task, _ in tasks.values():
        findings_function(task.spec, plan_path)


def findings_function(spec: NotebookSpec, plan_path: Path) -> Callable[..., list]:
    """The function ``needs.findings`` names, imported; `PlanError` naming the file, the
    notebook and the key when it cannot be."""
    target = spec.needs.findings
    module_name, _, func_name = target.partition(":")
    where = f"{plan_path}: notebook {spec.name!r}: needs.findings {target!r}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PlanError(f"{where}: no module {exc.name!r}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise PlanError(f"{where}: {module_name} has no function {func_name!r}")
    return func
