"""`painanx run`: execute the notebooks with papermill, incrementally, and build the site.

Each notebook runs once per data source into ``reports/<source>/`` (its executed ``.ipynb``
and an HTML page), in the dependency order declared in ``resources/notebooks.yaml``,
independent notebooks in parallel, and only when its fingerprint changed (fingerprint.py).
Then the claims step (claims_step.py) judges the claims on this build's findings and the
index page (index.py) lists every page and verdict. This module puts those steps in order.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from analysis.build.claims_step import run_claims_step
from analysis.build.execute import (
    DEFAULT_CELL_TIMEOUT_S,
    NotebookTask,
    execute_notebook,
    kernel_threads,
)
from analysis.build.fingerprint import (
    MANIFEST_NAME,
    Manifest,
    findings_path,
    input_records,
    notebook_fingerprint,
    project_relative,
)
from analysis.build.index import write_index
from analysis.build.interrupt import StopRequests
from analysis.build.kernel_template import KernelTemplate
from analysis.build.kernels import (
    PRELOADED_MODULES,
    KernelPool,
    kernel_template,
    modules_imported_by,
)
from analysis.build.not_measured import (
    Lacking,
    import_findings_functions,
    lacking_measures,
    write_not_measured,
)
from analysis.build.plan import (
    NotebookSpec,
    Plan,
    SourceSelection,
    check_options,
    load_plan,
    select_notebooks,
    select_sources,
)
from analysis.build.results import (
    CACHED,
    FAILED,
    INTERRUPTED,
    MISSING,
    NOT_APPLICABLE,
    NOT_MEASURED,
    NOT_SELECTED,
    RAN,
    SKIPPED,
    BuildResult,
    NotebookRun,
    error_outside_cells,
)
from analysis.build.workspace import build_lock, remove_leftovers
from analysis.claims import verdicts
from analysis.core import paths, provenance
from analysis.data.registry import SourceSpec


@dataclass(frozen=True)
class _Settings:
    """`build`'s arguments, resolved, and what identifies the code the pages are built with."""

    root: Path
    notebooks_dir: Path
    reports_dir: Path
    overrides: Mapping[str, Any]  # years, seed, n, scenario as given; None keeps the source's
    kernel_name: str
    cell_timeout: int
    jobs: int
    force: bool
    warm_kernels: bool
    library_sha256: str
    packages: dict[str, str]
    git: dict[str, object]


def build(
    *,
    notebooks_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    plan_path: str | os.PathLike[str] | None = None,
    project_root: str | os.PathLike[str] | None = None,
    sources: Iterable[str] | None = None,
    years: list[int] | None = None,
    seed: int | None = None,
    n: int | None = None,
    scenario: str | None = None,
    only: Iterable[str] | None = None,
    jobs: int = 2,
    force: bool = False,
    warm_kernels: bool = True,
    code_roots: Iterable[str | os.PathLike[str]] | None = None,
    kernel_name: str = "python3",
    cell_timeout: int = DEFAULT_CELL_TIMEOUT_S,
    claims_hook: Callable | None = verdicts.evaluate_claims,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> BuildResult:
    """Execute the notebooks that are out of date, then the claims step, then the index.

    ``sources=None`` builds the default sources (those marked ``default: always``, plus
    ``when_available`` ones whose input files exist). ``only`` limits the build to the named
    notebooks (and their dependencies). ``claims_hook`` judges the claims on the findings;
    None leaves them pending. ``warm_kernels`` starts the kernels ahead of their notebooks
    with the heavy libraries imported (kernels.py); the pages are the same without.
    """
    started = time.perf_counter()
    root = Path(project_root) if project_root else paths.project_root()
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else paths.notebooks_dir()
    reports_dir = Path(reports_dir) if reports_dir else paths.reports_dir()
    say = echo or _write_above_progress_bar

    # every option is checked before anything is written
    plan = load_plan(plan_path, notebooks_dir)
    check_options(years, scenario)
    selection = select_sources(plan, sources, years, root)
    only_names = select_notebooks(plan, only)

    with build_lock(reports_dir), StopRequests(say) as stop:
        for leftover in remove_leftovers(reports_dir, plan.sources):
            say(f"removed {project_relative(leftover, root)}, left by a stopped build")
        for warning in plan.warnings:
            say(f"warning: {warning}")
        manifest = Manifest(reports_dir / MANIFEST_NAME)
        jobs = max(1, int(jobs))
        preload = _preloads(plan, notebooks_dir)
        with (
            kernel_threads(jobs),  # before any kernel: they inherit the setting
            # first: its imports are the longest step before a notebook can start
            _kernel_template(kernel_name, warm_kernels, preload) as template,
            ThreadPoolExecutor(max_workers=1) as beside,
        ):
            settings = _Settings(
                root=root,
                notebooks_dir=notebooks_dir,
                reports_dir=reports_dir,
                overrides={"years": years, "seed": seed, "n": n, "scenario": scenario},
                kernel_name=kernel_name,
                cell_timeout=cell_timeout,
                jobs=jobs,
                force=force,
                warm_kernels=warm_kernels,
                library_sha256=provenance.library_code_hash(code_roots),
                packages=provenance.package_versions(),
                git=provenance.git_info(root),
            )
            runs, to_run, not_measured = _plan_runs(plan, selection, only_names, settings, manifest)
            if not to_run and template is not None:
                template.close()  # nothing to run: it stops at once
            # the analyses' modules the findings of the notebooks not run need, imported once
            # the last notebooks have started, when the build has CPU to spare (leaving the
            # block waits for it; an error is reported when the findings are written)
            _run_notebooks(
                runs, to_run, settings, manifest, stop, progress=progress, say=say,
                template=template, preload=preload,
                on_all_started=lambda: beside.submit(
                    import_findings_functions, not_measured, plan.path
                ),
            )  # fmt: skip
        write_not_measured(not_measured, manifest, reports_dir, plan.path, say)

        messages = list(plan.warnings)
        current, left_out = _this_builds_findings(runs, reports_dir, manifest, say)
        if left_out:
            messages.append(
                "Left out of the verdicts (their notebooks are not up to date in this build): "
                + ", ".join(left_out)
            )
        claims = run_claims_step(reports_dir, current, claims_hook)
        errors = list(selection.errors)
        if claims.error:
            errors.append(f"claims step: {claims.error}")
            say(f"ERROR claims step: {claims.error}")
        if stop.stopping:
            messages.append(
                "This build was stopped by Ctrl-C: the notebooks marked 'stopped' did not run. "
                "Run `painanx run` again to finish it."
            )
        built_at = manifest.record_build(settings.library_sha256)
        manifest.save()
        result = BuildResult(
            runs,
            reports_dir,
            0.0,
            claims_evaluated=claims.evaluated,
            errors=errors,
            messages=messages,
            interrupted=stop.stopping,
        )
        write_index(result, plan, manifest, claims, selection, _site_provenance(settings, built_at))
    result.duration_s = time.perf_counter() - started
    return result


def _this_builds_findings(
    runs: list[NotebookRun], reports_dir: Path, manifest: Manifest, say: Callable[[str], None]
) -> tuple[list[Path], list[str]]:
    """The findings files the claims step judges (those of current runs), and the others that
    stay on disk but are left out (as reports/-relative names).

    Files the manifest does not vouch for are deleted first: of notebooks that failed, were
    stopped, were skipped after a failed dependency, or were never built by a build. Findings
    of successful earlier runs stay, as their pages do, and count again once up to date.
    """
    for path in sorted(reports_dir.glob("*/findings/*.json")):
        if not manifest.vouches_for(f"{path.parent.parent.name}/{path.stem}"):
            path.unlink(missing_ok=True)
            say(f"removed {path.relative_to(reports_dir)}: no successful run of it is recorded")
    current = [reports_dir / findings_path(r.source, r.notebook) for r in runs if r.current]
    current = [p for p in current if p.is_file()]
    left_out = sorted(
        p.relative_to(reports_dir).as_posix()
        for p in reports_dir.glob("*/findings/*.json")
        if p not in current
    )
    return current, left_out


def _write_above_progress_bar(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


# --------------------------------------------------------------------------- what to run


def _plan_runs(
    plan: Plan,
    selection: SourceSelection,
    only_names: set[str] | None,
    settings: _Settings,
    manifest: Manifest,
) -> tuple[list[NotebookRun], dict[str, NotebookTask], dict[str, tuple[NotebookTask, Lacking]]]:
    """One NotebookRun per notebook x source, in dependency order, and a task for each one
    that is out of date (by key, in that order): to run, or, where the source lacks a column
    the notebook needs, to write its findings without running it.

    Runs this build does not select (``--only``, ``--data``) on sources that are available
    are fingerprinted too: one that is still up to date keeps its findings in the verdicts.
    """
    runs: dict[str, NotebookRun] = {}
    to_run: dict[str, NotebookTask] = {}
    not_measured: dict[str, tuple[NotebookTask, Lacking]] = {}
    not_selected = [
        s for s in plan.sources if s not in selection.selected and s not in selection.unavailable
    ]
    for spec in plan.notebooks:
        input_nb = settings.notebooks_dir / f"{spec.name}.ipynb"
        nb_sha256 = provenance.notebook_source_hash(input_nb) if input_nb.is_file() else None
        for source_name in [*selection.selected, *not_selected]:
            run = NotebookRun(spec.name, source_name, spec.title, NOT_SELECTED)
            runs[run.key] = run
            if source_name in selection.selected:
                not_run = _reason_not_to_run(spec, source_name, only_names, input_nb, selection)
                if not_run:
                    run.status, run.reason = not_run
            elif source_name not in spec.sources:
                run.status = NOT_APPLICABLE
                run.reason = spec.reason_not_applicable(source_name)
            if run.status != NOT_SELECTED or not input_nb.is_file():
                continue
            run.depends_on = tuple(
                f"{source_name}/{d}"
                for d in spec.depends_on
                if source_name in plan.notebook(d).sources
            )
            task = _prepare_task(
                run,
                spec,
                plan.sources[source_name],
                nb_sha256,
                [*selection.inputs[source_name], *spec.input_files(settings.root)],
                [runs[d].fingerprint for d in run.depends_on],
                settings,
                manifest,
            )
            is_current = manifest.is_current(run.key, run.fingerprint, settings.reports_dir)
            selected = source_name in selection.selected and (
                only_names is None or spec.name in only_names
            )
            run.current = is_current  # until it runs (again) in this build
            if selected and (settings.force or not is_current):
                years = run.parameters.get("years")
                lacking = lacking_measures(spec, plan.sources[source_name], years)
                if lacking is None:
                    to_run[run.key] = task
                else:
                    not_measured[run.key] = (task, lacking)
            elif selected:
                previous = manifest.entry(run.key)
                run.status, run.reason = CACHED, "up to date"
                if previous.get("not_measured"):
                    run.status, run.reason = NOT_MEASURED, previous["not_measured"]
                run.duration_s = previous.get("duration_s")
                run.page, run.executed = previous.get("page"), previous.get("executed")
    return list(runs.values()), to_run, not_measured


def _reason_not_to_run(
    spec: NotebookSpec,
    source_name: str,
    only_names: set[str] | None,
    input_nb: Path,
    selection: SourceSelection,
) -> tuple[str, str] | None:
    """(status, reason) of a notebook x source this build does not run; None if it may run."""
    if source_name not in spec.sources:
        return NOT_APPLICABLE, spec.reason_not_applicable(source_name)
    if only_names is not None and spec.name not in only_names:
        return NOT_SELECTED, ""
    if not input_nb.is_file():
        return MISSING, f"{input_nb.name} is not in {input_nb.parent.name}/ yet"
    if source_name in selection.unavailable:
        return SKIPPED, selection.unavailable[source_name]
    return None


def _prepare_task(
    run: NotebookRun,
    spec: NotebookSpec,
    source: SourceSpec,
    nb_sha256: str,
    input_files: list[Path],
    dependency_fingerprints: list[str | None],
    settings: _Settings,
    manifest: Manifest,
) -> NotebookTask:
    """Fill in a run's parameters and fingerprint; its task carries the provenance shown on
    its page."""
    root = settings.root
    input_nb = settings.notebooks_dir / f"{spec.name}.ipynb"
    out_dir = settings.reports_dir / source.name
    run.parameters = _parameters(source, out_dir, settings.overrides)
    parameters_for_hash = {**run.parameters, "output_dir": source.name}
    inputs = input_records(input_files, root, manifest)
    run.fingerprint = notebook_fingerprint(
        notebook_sha256=nb_sha256,
        parameters=parameters_for_hash,
        library_sha256=settings.library_sha256,
        packages=settings.packages,
        inputs=inputs,
        dependencies=dependency_fingerprints,
        kernel_name=settings.kernel_name,
    )
    page_provenance = {
        "source": {
            "name": source.name,
            "label": source.label,
            "evidence": source.evidence,
            "note": source.provenance_note,
        },
        "inputs": inputs,
        "parameters": parameters_for_hash | {"output_dir": project_relative(out_dir, root)},
        "notebook": {"path": project_relative(input_nb, root), "sha256": nb_sha256},
        "library_sha256": settings.library_sha256,
        "packages": settings.packages,
        "git": settings.git,
        "built_at": None,
        "duration_s": None,
    }
    return NotebookTask(spec, source, run, input_nb, out_dir, page_provenance)


def _parameters(source: SourceSpec, out_dir: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters on a source: the source's, with the overrides it accepts."""
    params: dict[str, Any] = {"data_source": source.name}
    params.update(source.parameters)
    for key in source.accepts:
        if overrides.get(key) is not None:
            params[key] = list(overrides[key]) if key == "years" else overrides[key]
    params["output_dir"] = str(out_dir.resolve())
    return params


# --------------------------------------------------------------------------- running them


def _run_notebooks(
    runs: list[NotebookRun],
    to_run: dict[str, NotebookTask],
    settings: _Settings,
    manifest: Manifest,
    stop: StopRequests,
    *,
    progress: bool,
    say: Callable[[str], None],
    template: KernelTemplate | None = None,
    preload: tuple[str, ...] = PRELOADED_MODULES,
    on_all_started: Callable[[], object] | None = None,
) -> None:
    """Run the out-of-date notebooks, dependencies first, up to ``jobs`` at a time (their pages
    exported outside those slots), their kernels forked from ``template`` (or importing
    ``preload`` as they start); call ``on_all_started`` once every notebook has been handed to
    a worker. A run whose
    dependency failed or did not build is skipped. A run's record is dropped from the manifest
    when it starts and written when it ends, so the manifest only lists completed runs. After
    a Ctrl-C nothing new starts."""
    if not to_run:
        return
    jobs = settings.jobs
    by_key = {r.key: r for r in runs}
    cached = sum(r.status == CACHED for r in runs)
    say(f"painanx run: {len(to_run)} notebook(s) to run, {cached} up to date, {jobs} in parallel")
    pending = list(to_run)
    running: dict[Future, str] = {}
    with (
        tqdm(
            total=len(to_run),
            desc="notebooks",
            unit="nb",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        ) as bar,
        _kernel_pool(settings, len(to_run), template, preload) as kernels,
        # one more thread than jobs: a notebook waits for a slot while a finished one exports
        # its page, and starts as soon as that one's kernel is done
        ThreadPoolExecutor(max_workers=jobs + 1, thread_name_prefix="painanx-nb") as pool,
    ):
        slots = threading.Semaphore(jobs)
        # a run's record leaves the manifest as it starts (in its thread), and comes back when it
        # ends; one that never started keeps its record
        manifest_lock = threading.Lock()

        def started(key: str) -> None:
            with manifest_lock:
                manifest.forget(key)
                manifest.save()

        while pending or running:
            if stop.stopping:  # what did not start keeps its earlier outputs (and currency)
                for key in pending:
                    by_key[key].status = INTERRUPTED
                    by_key[key].reason = "not started: the build was stopped by Ctrl-C"
                pending.clear()
            for key in list(pending):
                run = by_key[key]
                dependencies = [by_key[d] for d in run.depends_on if d in by_key]
                if _skip_after_failed_dependency(run, dependencies):
                    pending.remove(key)
                    bar.update(1)
                    with manifest_lock:
                        manifest.forget(key)
                    continue
                if any(d.key in pending or d.key in running.values() for d in dependencies):
                    continue
                if len(running) > jobs:
                    break
                pending.remove(key)
                future = pool.submit(
                    execute_notebook,
                    to_run[key],
                    notebooks_dir=settings.notebooks_dir,
                    kernel_name=settings.kernel_name,
                    cell_timeout=settings.cell_timeout,
                    stop=stop,
                    kernels=kernels,
                    slots=slots,
                    on_start=functools.partial(started, key),
                )
                running[future] = key
                bar.set_postfix_str(", ".join(sorted(running.values())), refresh=True)
            if not pending and on_all_started is not None:
                on_all_started()
                on_all_started = None
            if not running:
                for key in pending:  # cannot happen with a valid plan; never spin forever
                    by_key[key].status, by_key[key].current = SKIPPED, False
                    by_key[key].reason = "its dependencies could not be scheduled"
                pending.clear()
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                task = to_run[running.pop(future)]
                bar.update(1)
                with manifest_lock:
                    _record_outcome(future, task, settings, manifest, say)
            bar.set_postfix_str(", ".join(sorted(running.values())), refresh=True)


def _preloads(plan: Plan, notebooks_dir: Path) -> tuple[str, ...]:
    """What warm kernels import ahead: the usual heavy modules, whatever the plan's notebooks
    import (read from their code cells, nothing imported) and the modules of the loaders that
    `analysis.data.load` imports when a notebook loads its source."""
    files = [notebooks_dir / f"{nb.name}.ipynb" for nb in plan.notebooks]
    imported = modules_imported_by([f for f in files if f.is_file()])
    loaders = [spec.loader_module for spec in plan.sources.values() if spec.loader_module]
    return tuple(dict.fromkeys((*PRELOADED_MODULES, *imported, *loaders)))


@contextlib.contextmanager
def _kernel_template(kernel_name: str, warm_kernels: bool, preload: tuple[str, ...]):
    """The kernels' template, launched now so that its imports overlap the planning (stopped
    at the end of the block, at once if it never served); None without warm kernels."""
    template = kernel_template(kernel_name, preload) if warm_kernels else None
    if template is None:
        yield None
        return
    template.launch()
    try:
        yield template
    finally:
        template.close()


def _kernel_pool(
    settings: _Settings, count: int, template: KernelTemplate | None, preload: tuple[str, ...]
) -> contextlib.AbstractContextManager:
    """The pool of warm kernels for ``count`` notebooks, one started ahead per job (a forked
    kernel holds ~30 MB of its own until its notebook runs), forked from ``template``; shut down when the
    block ends: after the runs, on an error or a Ctrl-C; or no pool."""
    if not settings.warm_kernels:
        return contextlib.nullcontext()
    return KernelPool(
        kernel_name=settings.kernel_name,
        cwd=settings.notebooks_dir,
        count=count,
        size=settings.jobs,
        preload=preload,
        template=template,
    )


def _skip_after_failed_dependency(run: NotebookRun, dependencies: list[NotebookRun]) -> bool:
    """Mark ``run`` skipped when one of its dependencies failed or did not build."""
    blocked = [d for d in dependencies if d.status in (FAILED, SKIPPED, MISSING, INTERRUPTED)]
    if not blocked:
        return False
    outcome = "failed" if blocked[0].status == FAILED else "did not build"
    run.status, run.reason = SKIPPED, f"depends on {blocked[0].notebook}, which {outcome}"
    run.current = False
    return True


def _record_outcome(
    future: Future,
    task: NotebookTask,
    settings: _Settings,
    manifest: Manifest,
    say: Callable[[str], None],
) -> None:
    """Report a finished run on the terminal and save it in the manifest (a run stopped by
    Ctrl-C is not recorded)."""
    run = task.run
    try:
        future.result()
    except Exception as exc:  # a bug in the runner itself: report, keep going
        run.status, run.current = FAILED, False
        run.error = error_outside_cells(type(exc).__name__, str(exc))
    if run.status == INTERRUPTED:
        say(f"  stopped {run.key:<44} {run.duration_s or 0:6.1f} s")
        return
    if run.status == RAN:
        say(f"  ok      {run.key:<44} {run.duration_s:6.1f} s")
    else:
        say(f"  FAILED  {run.key:<44} {run.duration_s or 0:6.1f} s  {run.describe_error()}")
        if run.executed:
            kept = project_relative(settings.reports_dir / run.executed, settings.root)
            say(f"          executed-so-far notebook kept: {kept}")
    manifest.record(run, task.provenance["built_at"], settings.reports_dir)
    manifest.save()


def _site_provenance(settings: _Settings, built_at: str) -> dict:
    """The provenance shown on the index page: the code, not one source's data."""
    return {
        "source": None,
        "packages": settings.packages,
        "git": settings.git,
        "library_sha256": settings.library_sha256,
        "built_at": built_at,
        "duration_s": None,
    }
