"""Running one notebook on one data source: papermill in a kernel of its own, then its HTML page.

Runs are made to go side by side in threads: each writes only its own files, its kernel talks
over its own Unix sockets, and the numeric libraries share the CPUs (`kernel_threads`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.build import site
from analysis.build.interrupt import StopRequests
from analysis.build.kernels import KernelPool, PooledKernel, kernel_manager_class
from analysis.build.plan import NotebookSpec
from analysis.build.results import FAILED, INTERRUPTED, RAN, NotebookRun, error_outside_cells
from analysis.core import provenance
from analysis.core.io import write_text_atomic
from analysis.data.registry import SourceSpec

# What the dev environment installs that costs every build time and that no build uses:
# - jsonschema registers its 'iri' format checkers when rfc3987-syntax is installed (JupyterLab
#   brings it in) and builds that package's Lark grammars as it does: ~0.7 s of CPU. The build's
#   only jsonschema user is nbformat, whose schemas use no "format" at all (tests/test_runner.py
#   checks).
# - hypothesis (a test tool; pandera imports it whenever it is installed, in every kernel) runs
#   the hooks other packages register as its plugins when imported: trio's imports trio and
#   collects garbage, ~0.2 s before the first notebook can start. No notebook uses hypothesis.
UNUSED_FORMAT_CHECKERS = ("rfc3987_syntax",)
NO_HYPOTHESIS_PLUGINS = {"HYPOTHESIS_NO_PLUGINS": "1"}


def skip_unused_dev_tools() -> None:
    """Keep jsonschema from loading format checkers, and hypothesis from loading plugins, that
    the build never uses. For a command's process and the kernels it starts only (`painanx
    run`), before nbformat is imported: in that process, ``import rfc3987_syntax`` then fails,
    as it does where the package is not installed, and its kernels, started or forked, all
    have HYPOTHESIS_NO_PLUGINS set (an environment variable someone else set is kept)."""
    if "jsonschema" not in sys.modules:
        for name in UNUSED_FORMAT_CHECKERS:
            sys.modules.setdefault(name, None)
    for name, value in NO_HYPOTHESIS_PLUGINS.items():
        os.environ.setdefault(name, value)


DEFAULT_CELL_TIMEOUT_S = 1800
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
INJECTED_TAG = "injected-parameters"  # papermill's tag of the cell it adds


@dataclass
class NotebookTask:
    """One notebook to run on one source: where it is, where its outputs go, its provenance."""

    spec: NotebookSpec
    source: SourceSpec
    run: NotebookRun
    input_nb: Path
    out_dir: Path
    provenance: dict


@contextlib.contextmanager
def kernel_threads(jobs: int):
    """Kernels run ``jobs`` at a time: give each a share of the CPUs for its numeric libraries
    (BLAS threads), so parallel notebooks do not oversubscribe the machine. A value the user
    set is kept. Kernels inherit this process's environment when they start."""
    share = max(1, len(os.sched_getaffinity(0)) // max(1, jobs))
    saved = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    for v in THREAD_VARIABLES:
        os.environ.setdefault(v, str(share))
    try:
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


PAPERMILL_ENGINE = "painanx"


@functools.cache
def register_papermill_engine() -> str:
    """Register (once) and name papermill's nbclient engine, saving the executed notebook when
    the run starts and ends (also when the kernel dies) and every 30 s of a long cell, but not
    at the start and end of every cell as papermill does: those ~40 saves per notebook (a deep
    copy, a schema validation and a JSON dump each, images included) cost the build more CPU
    than exporting its pages."""
    # papermill is heavy: imported only when a notebook runs (as in `_papermill`)
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    class _SavingAtTheEndsManager(NotebookExecutionManager):
        in_cell_event = False
        saving = True

        def save(self, **kwargs):
            if self.saving and not self.in_cell_event:
                super().save(**kwargs)

        def cell_start(self, *args, **kwargs):
            self.in_cell_event = True
            try:
                return super().cell_start(*args, **kwargs)
            finally:
                self.in_cell_event = False

        def cell_complete(self, *args, **kwargs):
            self.in_cell_event = True
            try:
                return super().cell_complete(*args, **kwargs)
            finally:
                self.in_cell_event = False

    class _Engine(NBClientEngine):
        @classmethod
        def execute_notebook(
            cls,
            nb,
            kernel_name,
            output_path=None,
            progress_bar=True,
            log_output=False,
            autosave_cell_every=30,
            **kwargs,
        ):  # papermill's Engine.execute_notebook, with the manager above
            nb_man = _SavingAtTheEndsManager(
                nb,
                output_path=output_path,
                progress_bar=progress_bar,
                log_output=log_output,
                autosave_cell_every=autosave_cell_every,
            )
            nb_man.notebook_start()
            ran_through = False
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
                ran_through = True
            finally:
                nb_man.cleanup_pbar()
                # saved here when the kernel died or timed out; papermill itself writes a
                # notebook that ran through as soon as this returns
                nb_man.saving = not ran_through
                nb_man.notebook_complete()
            _same_every_build(nb_man.nb)
            return nb_man.nb

    papermill_engines.register(PAPERMILL_ENGINE, _Engine)
    return PAPERMILL_ENGINE


def execute_notebook(
    task: NotebookTask,
    *,
    notebooks_dir: Path,
    kernel_name: str,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT_S,
    stop: StopRequests | None = None,
    kernels: KernelPool | None = None,
    slots: threading.Semaphore | None = None,
    on_start: Callable[[], object] | None = None,
) -> None:
    """Run one notebook with papermill and export its page; fills ``task.run``.

    With ``kernels``, the notebook runs in a kernel the pool started ahead (and shuts down
    after); without, papermill starts one. With ``slots``, the notebook runs only while it
    holds one (the build's jobs: notebooks running at once); its page is exported after it
    has let go of it, while the next notebook runs. A notebook still waiting for a slot when
    the build is stopped (Ctrl-C) does not start. ``on_start`` is called as it starts.

    A failed run keeps its executed-so-far notebook and still gets a page showing the error,
    but no findings. A run stopped by a second Ctrl-C (``stop``) is marked interrupted: it
    leaves no findings and no partial notebook, and the earlier page and notebook as they were.
    """
    run = task.run
    with slots if slots is not None else contextlib.nullcontext():
        if stop is not None and stop.stopping:
            run.status, run.reason = INTERRUPTED, "not started: the build was stopped by Ctrl-C"
            return
        if on_start is not None:
            on_start()
        ran = _run(task, notebooks_dir, kernel_name, cell_timeout, stop, kernels)
    if ran is not None:
        _export(task, *ran)


def _outputs(task: NotebookTask) -> tuple[Path, Path, Path]:
    """Where a run writes: the executed notebook, its page and its findings."""
    name = task.spec.name
    return (
        task.out_dir / f"{name}.ipynb",
        task.out_dir / f"{name}.html",
        task.out_dir / "findings" / f"{name}.json",
    )


def _run(
    task: NotebookTask,
    notebooks_dir: Path,
    kernel_name: str,
    cell_timeout: int,
    stop: StopRequests | None,
    kernels: KernelPool | None,
):
    """The part of `execute_notebook` that needs a kernel: (notebook, error, started), or None
    when the run was stopped."""
    run = task.run
    task.out_dir.mkdir(parents=True, exist_ok=True)
    final_nb, _, findings = _outputs(task)
    # A re-run must not leave the previous run's findings behind if it fails.
    findings.unlink(missing_ok=True)

    started = time.perf_counter()
    run.started_at = time.time()
    run.current = False
    try:
        nb, error = _papermill(
            task, final_nb, notebooks_dir, kernel_name, cell_timeout, stop, kernels
        )
    finally:
        if stop is not None:
            stop.run_finished(run.key)
    run.duration_s = time.perf_counter() - started
    if stop is not None and stop.kernels_stopped:
        findings.unlink(missing_ok=True)
        run.status, run.reason = INTERRUPTED, "stopped by Ctrl-C while running"
        run.finished_at = time.time()
        return None
    return nb, error, started


def _export(task: NotebookTask, nb, error: dict | None, started: float) -> None:
    """Export the page of a run notebook and fill in the rest of ``task.run``."""
    run = task.run
    name = task.spec.name
    final_nb, html, findings = _outputs(task)
    task.provenance["built_at"] = provenance.now_utc()
    task.provenance["duration_s"] = run.duration_s
    export_error = _export_page(task, nb, final_nb, html, error)
    error = error or export_error
    run.duration_s = time.perf_counter() - started
    run.finished_at = time.time()
    run.error = error
    run.status = FAILED if error else RAN
    run.current = not error
    if error:
        findings.unlink(missing_ok=True)
    run.page = f"{run.source}/{name}.html" if html.exists() else None
    run.executed = f"{run.source}/{name}.ipynb" if final_nb.exists() else None


def _papermill(
    task: NotebookTask,
    final_nb: Path,
    notebooks_dir: Path,
    kernel_name: str,
    cell_timeout: int,
    stop: StopRequests | None,
    kernels: KernelPool | None,
):
    """Execute the notebook into ``final_nb`` (kept on failure: the executed-so-far notebook;
    removed when nothing was written, so no stale notebook from an earlier build is shown).
    Returns the executed notebook and the error, if any. When the run was stopped (a second
    Ctrl-C), its partial notebook is removed and ``final_nb`` is left as it was."""
    # papermill starts up slowly (~1 s): imported only when a notebook actually runs, so a
    # rebuild with nothing to run stays quick
    import nbformat  # lazily, like papermill: it loads jsonschema's format checkers (~0.7 s)
    import papermill
    from papermill.exceptions import PapermillExecutionError

    partial_nb = final_nb.with_name(f".{final_nb.stem}.partial.ipynb")
    partial_nb.unlink(missing_ok=True)
    error: dict | None = None
    ran_through = None  # the notebook papermill returns: what it wrote last
    kernel: PooledKernel | None = None
    kernel_log = tempfile.TemporaryFile(mode="w+b")
    on_launch = (lambda group: stop.kernel_started(task.run.key, group)) if stop else None
    try:
        if kernels is not None:
            site.notebook_exporter()  # made while the first kernel may still be starting
            kernel = kernels.take()
            if on_launch is not None and kernel.process_group:
                on_launch(kernel.process_group)
            kernel_choice = {"km": kernel.manager}
        else:
            kernel_choice = {"kernel_manager_class": kernel_manager_class(kernel_log, on_launch)}
        ran_through = papermill.execute_notebook(
            str(task.input_nb),
            str(partial_nb),
            parameters=task.run.parameters,
            kernel_name=kernel_name,
            progress_bar=False,
            request_save_on_cell_execute=True,
            engine_name=register_papermill_engine(),
            start_timeout=120,
            execution_timeout=cell_timeout,
            **kernel_choice,
            # the kernel's working directory, as in JupyterLab (papermill's cwd= uses os.chdir,
            # which is not safe with parallel runs)
            resources={"metadata": {"path": str(notebooks_dir)}},
        )
    except PapermillExecutionError as exc:
        error = {
            "cell": _source_cell_number(task.input_nb, exc.cell_index),
            "execution_count": exc.exec_count,
            "ename": exc.ename,
            "evalue": _strip_ansi(str(exc.evalue)),
            "traceback": _strip_ansi("\n".join(exc.traceback or []))[-4000:],
        }
    except Exception as exc:  # kernel died, timeout, unreadable notebook, ...
        log = kernel.log_file if kernel is not None else kernel_log
        log.seek(0)
        error = error_outside_cells(
            type(exc).__name__,
            _strip_ansi(str(exc)).strip()[:2000],
            "kernel output:\n" + log.read().decode("utf-8", "replace")[-4000:],
        )
    finally:
        kernel_log.close()
        if kernel is not None:
            kernels.release(kernel)
        if stop is not None and stop.kernels_stopped:
            partial_nb.unlink(missing_ok=True)
    if stop is not None and stop.kernels_stopped:
        return nbformat.v4.new_notebook(), error
    if ran_through is not None:  # written by papermill, already the same every build
        os.replace(partial_nb, final_nb)
        return ran_through, error
    if partial_nb.exists() and partial_nb.stat().st_size > 0:  # after an error
        nb = nbformat.read(str(partial_nb), as_version=4)
        _same_every_build(nb)
        nbformat.write(nb, str(partial_nb))
        os.replace(partial_nb, final_nb)
        return nb, error
    partial_nb.unlink(missing_ok=True)
    final_nb.unlink(missing_ok=True)
    return nbformat.v4.new_notebook(), error


def _same_every_build(nb) -> None:
    """Remove what varies between two runs of the same notebook: papermill gives the cell it
    injects a random id (a fixed one here), and the kernel splits a cell's printed output into
    stream messages as timing goes (adjacent ones are joined, as JupyterLab shows them)."""
    for cell in nb.cells:
        if INJECTED_TAG in cell.get("metadata", {}).get("tags", []):
            cell["id"] = INJECTED_TAG
        outputs = []
        for output in cell.get("outputs", []):
            previous = outputs[-1] if outputs else None
            if (
                output.get("output_type") == "stream"
                and previous is not None
                and previous.get("output_type") == "stream"
                and previous.get("name") == output.get("name")
            ):
                previous["text"] += output["text"]
            else:
                outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs


def _export_page(
    task: NotebookTask, nb, final_nb: Path, html: Path, error: dict | None
) -> dict | None:
    """Write the notebook's HTML page (showing ``error``, if any); returns the export's own error."""
    try:
        page = site.render_notebook_page(
            nb,
            title=site.notebook_title(nb, task.spec.title),
            source_label=task.source.label,
            synthetic=task.source.synthetic,
            provenance=task.provenance,
            notebook_file=final_nb.name if final_nb.exists() else "",
            error=error,
        )
        write_text_atomic(html, page)
    except Exception as exc:
        return error_outside_cells(type(exc).__name__, f"page export failed: {exc}")
    return None


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _source_cell_number(source_nb: Path, executed_index: int) -> int | None:
    """1-based cell number in the source notebook for a cell index of the executed notebook
    (papermill inserts one 'injected-parameters' cell after the parameters cell)."""
    try:
        cells = json.loads(source_nb.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, json.JSONDecodeError):
        return None
    params_at = next(
        (i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])),
        -1,
    )
    injected_at = params_at + 1
    if executed_index == injected_at:
        return None
    return executed_index + (0 if executed_index < injected_at else -1) + 1
