"""`painanx run`: execute the notebooks with papermill, incrementally, and build the site.

Each notebook runs once per data source into ``reports/<source>/`` (its executed ``.ipynb``
and an HTML page), in the dependency order declared in ``resources/notebooks.yaml``,
independent notebooks in parallel. A notebook re-runs only when its fingerprint changed: the
sha256 of its source cells, its parameters, the library code (``src/analysis/**/*.py`` and
resources), the installed package versions, its input files and its dependencies'
fingerprints. Fingerprints live in ``reports/manifest.json`` (written atomically).

After the notebooks, the claims step reads every ``reports/**/findings/*.json`` and, when
``analysis.claims.verdicts.evaluate_claims`` exists, writes its verdicts to ``reports/claims.json``
and ``claims.csv``; then ``reports/index.html`` (the claims dashboard) is written.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analysis.core import paths
from analysis.core import provenance
from analysis.core.io import sha256_file, write_text_atomic
from analysis.data.registry import SourceSpec, parse_source_specs, resolve_inputs, source_specs

PLAN_YAML = Path(__file__).resolve().parents[1] / "resources" / "notebooks.yaml"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
KERNEL_ARGUMENTS = [
    "--IPKernelApp.log_level=ERROR"
]  # keep kernel start-up chatter off the terminal
DEFAULT_CELL_TIMEOUT_S = 1800
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Statuses of one notebook x source in a build.
RAN, CACHED, FAILED, SKIPPED, NOT_APPLICABLE, MISSING, NOT_SELECTED = (
    "ran",
    "cached",
    "failed",
    "skipped",
    "not applicable",
    "missing",
    "not selected",
)


class PlanError(ValueError):
    """notebooks.yaml is malformed (the message names the file and the key)."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook as declared in notebooks.yaml."""

    name: str
    title: str
    sources: tuple[str, ...]
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    declared: bool = True
    inputs: tuple[str, ...] = ()  # project-relative globs of files the notebook reads

    def input_files(self, root: Path) -> list[Path]:
        """The files matching ``inputs`` under ``root``, sorted (hashed into the fingerprint)."""
        return sorted({p for pattern in self.inputs for p in root.glob(pattern) if p.is_file()})

    def reason_not_applicable(self, source: str) -> str:
        return self.not_applicable.get(source) or f"not declared for the {source} source"


@dataclass
class Plan:
    """Sources and notebooks (in dependency order) for a build."""

    sources: dict[str, SourceSpec]
    notebooks: list[NotebookSpec]
    path: Path
    warnings: list[str] = field(default_factory=list)

    def notebook(self, name: str) -> NotebookSpec:
        for nb in self.notebooks:
            if nb.name == name:
                return nb
        raise KeyError(name)


def _topological(notebooks: list[NotebookSpec], where: str) -> list[NotebookSpec]:
    by_name = {nb.name: nb for nb in notebooks}
    order: list[NotebookSpec] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise PlanError(f"{where}: dependency cycle {' -> '.join((*chain, name))}")
        state[name] = 1
        for dep in by_name[name].depends_on:
            visit(dep, (*chain, name))
        state[name] = 2
        order.append(by_name[name])

    for nb in notebooks:  # declared order, dependencies first
        visit(nb.name, ())
    return order


def load_plan(
    plan_path: str | os.PathLike[str] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    sources_path: str | os.PathLike[str] | None = None,
) -> Plan:
    """Read notebooks.yaml (and sources.yaml, unless the plan file has its own ``sources:``).

    Notebook files in ``notebooks_dir`` that the plan does not list are added (on the respondent-data
    sources, no dependencies) with a warning, so a new notebook is never silently ignored.
    """
    plan_path = Path(plan_path) if plan_path else PLAN_YAML
    where = str(plan_path)
    try:
        raw = yaml.safe_load(plan_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PlanError(f"{where}: not valid YAML ({exc})") from None
    try:
        specs = (
            parse_source_specs(raw["sources"], where)
            if "sources" in raw
            else source_specs(sources_path)
        )
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    entries = raw.get("notebooks")
    if not isinstance(entries, list):
        raise PlanError(f"{where}: 'notebooks' must be a list of notebook entries")
    allowed = {"name", "title", "sources", "not_applicable", "depends_on", "inputs"}
    notebooks: list[NotebookSpec] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise PlanError(f"{where}: notebooks[{i}] must be a mapping with a 'name'")
        unknown = set(entry) - allowed
        if unknown:
            raise PlanError(f"{where}: notebook {entry['name']!r}: unknown keys {sorted(unknown)}")
        srcs = tuple(entry.get("sources") or ())
        na = dict(entry.get("not_applicable") or {})
        for s in (*srcs, *na):
            if s not in specs:
                raise PlanError(
                    f"{where}: notebook {entry['name']!r} names unknown source {s!r}; known: {sorted(specs)}"
                )
        notebooks.append(
            NotebookSpec(
                name=str(entry["name"]),
                title=str(entry.get("title") or entry["name"]),
                sources=srcs,
                not_applicable=na,
                depends_on=tuple(entry.get("depends_on") or ()),
                inputs=tuple(str(x) for x in entry.get("inputs") or ()),
            )
        )
    names = [nb.name for nb in notebooks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PlanError(f"{where}: notebooks listed twice: {dupes}")
    for nb in notebooks:
        for dep in nb.depends_on:
            if dep not in names:
                raise PlanError(
                    f"{where}: notebook {nb.name!r} depends on unknown notebook {dep!r}"
                )
    warnings: list[str] = []
    if notebooks_dir is not None and Path(notebooks_dir).is_dir():
        for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
            if path.stem not in names:
                srcs = tuple(name for name, spec in specs.items() if spec.respondent_data)
                notebooks.append(NotebookSpec(path.stem, path.stem, srcs, declared=False))
                warnings.append(
                    f"{path.name} is not listed in {plan_path.name}; it runs on {', '.join(srcs)} "
                    f"with no dependencies. Declare it there."
                )
    return Plan(specs, _topological(notebooks, where), plan_path, warnings)


# --------------------------------------------------------------------------- results


@dataclass
class NotebookRun:
    """What happened to one notebook on one data source in this build."""

    notebook: str
    source: str
    title: str
    status: str
    reason: str = ""
    duration_s: float | None = None
    error: dict | None = None
    fingerprint: str | None = None
    page: str | None = None  # relative to reports/
    executed: str | None = None  # relative to reports/
    depends_on: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)
    started_at: float | None = None  # epoch seconds, for runs executed in this build
    finished_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.source}/{self.notebook}"

    def describe_error(self) -> str:
        if not self.error:
            return ""
        e = self.error
        where = ""
        if e.get("cell") is not None:
            where = f" at cell {e['cell']}"
            if e.get("execution_count"):
                where += f" (In [{e['execution_count']}])"
        msg = f"{e.get('ename', 'Error')}: {e.get('evalue', '')}".rstrip(": ")
        return f"{self.key} failed{where}: {msg}"


@dataclass
class BuildResult:
    """Outcome of `build`: one NotebookRun per notebook x source, and the claims step."""

    runs: list[NotebookRun]
    reports_dir: Path
    duration_s: float
    claims_evaluated: bool = False
    errors: list[str] = field(default_factory=list)  # build-level errors (claims step, sources)
    messages: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[NotebookRun]:
        return [r for r in self.runs if r.status == FAILED]

    @property
    def exit_code(self) -> int:
        return 1 if (self.failed or self.errors) else 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.runs)

    def to_frame(self):
        import pandas as pd

        cols = ["source", "notebook", "status", "reason", "duration_s", "page", "error"]
        rows = [
            {**{c: getattr(r, c) for c in cols if c != "error"}, "error": r.describe_error()}
            for r in self.runs
        ]
        return pd.DataFrame(rows, columns=cols)

    def summary(self) -> str:
        lines = [f"{'notebook':<44} {'status':<15} {'time':>8}"]
        for r in self.runs:
            if r.status in (NOT_APPLICABLE, NOT_SELECTED):
                continue
            t = f"{r.duration_s:6.1f} s" if r.status in (RAN, FAILED) and r.duration_s else ""
            status = f"{r.status}*" if r.status == SKIPPED else r.status
            lines.append(f"{r.key:<44} {status:<15} {t:>8}")
        executed = sum(r.duration_s or 0 for r in self.runs if r.status in (RAN, FAILED))
        lines.append(
            f"{self.count(RAN)} ran, {self.count(CACHED)} up to date, {self.count(FAILED)} failed, "
            f"{self.count(SKIPPED) + self.count(MISSING)} skipped; notebooks {executed:.1f} s, "
            f"build {self.duration_s:.1f} s wall"
        )
        for r in self.runs:
            if r.status == SKIPPED and r.reason:
                lines.append(f"  * {r.key}: {r.reason}")
        missing = sorted({r.notebook for r in self.runs if r.status == MISSING})
        if missing:
            lines.append(f"  * not written yet (listed in the plan): {', '.join(missing)}")
        for r in self.failed:
            lines.append(f"  FAILED {r.describe_error()}")
        lines.extend(f"  ERROR {e}" for e in self.errors)
        return "\n".join(lines)


# --------------------------------------------------------------------------- manifest


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"version": MANIFEST_VERSION, "tasks": {}, "file_hashes": {}}
    if data.get("version") != MANIFEST_VERSION:
        return {"version": MANIFEST_VERSION, "tasks": {}, "file_hashes": {}}
    data.setdefault("tasks", {})
    data.setdefault("file_hashes", {})
    return data


def _write_manifest(path: Path, manifest: dict) -> None:
    write_text_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _file_sha256(path: Path, cache: dict) -> str:
    """sha256 of a file, reusing the cached value while its size and mtime are unchanged."""
    st = path.stat()
    key = str(path.resolve())
    hit = cache.get(key)
    if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return hit[2]
    digest = sha256_file(path)
    cache[key] = [st.st_size, st.st_mtime_ns, digest]
    return digest


# --------------------------------------------------------------------------- execution


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


def _kernel_manager_class(log_file):
    """A kernel manager for one notebook run.

    The kernel talks over Unix sockets in the temp folder (IPC), not TCP ports: ports are picked
    by binding and releasing them, which races when many kernels start at once (parallel runs,
    parallel tests) and kills a kernel now and then. Its own stdout/stderr (start-up and shutdown
    chatter, crash messages) go to ``log_file`` instead of the terminal.
    """
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    use_ipc = os.name == "posix"

    class _PainanxKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc" if use_ipc else "tcp"

        @default("ip")
        def _default_ip(self):
            if self.transport == "ipc":
                return os.path.join(
                    tempfile.gettempdir(), f"painanx-kernel-{uuid.uuid4().hex[:16]}"
                )
            return super()._ip_default()

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stdout"] = kw["stderr"] = log_file
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return _PainanxKernelManager


@dataclass
class _Task:
    spec: NotebookSpec
    source: SourceSpec
    run: NotebookRun
    input_nb: Path
    out_dir: Path
    provenance: dict


def _execute_task(task: _Task, *, notebooks_dir: Path, kernel_name: str, cell_timeout: int) -> None:
    """Run one notebook with papermill and export its page. Fills task.run (thread-safe: own files)."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from analysis.build import site

    run = task.run
    name = task.spec.name
    task.out_dir.mkdir(parents=True, exist_ok=True)
    final_nb = task.out_dir / f"{name}.ipynb"
    partial_nb = task.out_dir / f".{name}.partial.ipynb"
    html = task.out_dir / f"{name}.html"
    # A re-run must not leave the previous run's findings behind if it fails.
    (task.out_dir / "findings" / f"{name}.json").unlink(missing_ok=True)
    partial_nb.unlink(missing_ok=True)

    started = time.perf_counter()
    run.started_at = time.time()
    error: dict | None = None
    kernel_log = tempfile.TemporaryFile(mode="w+b")
    try:
        papermill.execute_notebook(
            str(task.input_nb),
            str(partial_nb),
            parameters=run.parameters,
            kernel_name=kernel_name,
            progress_bar=False,
            request_save_on_cell_execute=True,
            start_timeout=120,
            execution_timeout=cell_timeout,
            kernel_manager_class=_kernel_manager_class(kernel_log),
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
        kernel_log.seek(0)
        error = {
            "cell": None,
            "execution_count": None,
            "ename": type(exc).__name__,
            "evalue": _strip_ansi(str(exc)).strip()[:2000],
            "traceback": "kernel output:\n" + kernel_log.read().decode("utf-8", "replace")[-4000:],
        }
    finally:
        kernel_log.close()

    if partial_nb.exists() and partial_nb.stat().st_size > 0:
        os.replace(partial_nb, final_nb)  # kept on failure too: the executed-so-far notebook
        nb = nbformat.read(str(final_nb), as_version=4)
    else:
        partial_nb.unlink(missing_ok=True)
        final_nb.unlink(missing_ok=True)  # never show a stale notebook from an earlier build
        nb = nbformat.v4.new_notebook()

    run.duration_s = time.perf_counter() - started
    task.provenance["built_at"] = provenance.now_utc()
    task.provenance["duration_s"] = run.duration_s
    try:
        title = site.notebook_title(nb, task.spec.title)
        page = site.render_notebook_page(
            nb,
            title=title,
            source_label=task.source.label,
            synthetic=task.source.synthetic,
            provenance=task.provenance,
            notebook_file=final_nb.name if final_nb.exists() else "",
            error=error,
        )
        write_text_atomic(html, page)
    except Exception as exc:
        if error is None:
            error = {
                "cell": None,
                "execution_count": None,
                "ename": type(exc).__name__,
                "evalue": f"page export failed: {exc}",
                "traceback": "",
            }
    run.duration_s = time.perf_counter() - started
    run.finished_at = time.time()
    run.error = error
    run.status = FAILED if error else RAN
    run.page = f"{task.run.source}/{name}.html" if html.exists() else None
    run.executed = f"{task.run.source}/{name}.ipynb" if final_nb.exists() else None


# --------------------------------------------------------------------------- the build


def _normalise_only(only: Iterable[str] | None, plan: Plan) -> set[str] | None:
    if not only:
        return None
    known = [nb.name for nb in plan.notebooks]
    chosen: set[str] = set()
    for item in only:
        name = Path(item).stem if item.endswith(".ipynb") else Path(item).name
        matches = [n for n in known if n == name] or [n for n in known if n.startswith(name)]
        if len(matches) != 1:
            raise PlanError(
                f"--only {item!r} matches {matches or 'no notebook'}; known notebooks: {known}"
            )
        chosen.add(matches[0])
    # add dependencies (they only run when out of date)
    frontier = list(chosen)
    while frontier:
        for dep in plan.notebook(frontier.pop()).depends_on:
            if dep not in chosen:
                chosen.add(dep)
                frontier.append(dep)
    return chosen


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


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
    code_roots: Iterable[str | os.PathLike[str]] | None = None,
    kernel_name: str = "python3",
    cell_timeout: int = DEFAULT_CELL_TIMEOUT_S,
    claims_hook: Callable | None | str = "auto",
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> BuildResult:
    """Execute the notebooks that are out of date, then the claims step, then the index.

    ``sources=None`` builds the default sources (those marked ``default: always``, plus
    ``when_available`` ones whose input files exist). ``only`` limits the build to the named
    notebooks (and their dependencies). ``claims_hook``: "auto" uses
    ``analysis.claims.verdicts.evaluate_claims`` when it exists; None disables verdicts; or a callable.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    root = Path(project_root) if project_root else paths.project_root()
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else paths.notebooks_dir()
    reports_dir = Path(reports_dir) if reports_dir else paths.reports_dir()
    reports_dir.mkdir(parents=True, exist_ok=True)
    say = echo or (lambda msg: tqdm.write(msg, file=sys.stderr))
    jobs = max(1, int(jobs))

    plan = load_plan(plan_path, notebooks_dir)
    messages = list(plan.warnings)
    errors: list[str] = []
    for w in plan.warnings:
        say(f"warning: {w}")

    manifest_path = reports_dir / MANIFEST_NAME
    manifest = _read_manifest(manifest_path)
    hash_cache = manifest["file_hashes"]

    # which sources
    explicit = sources is not None
    if explicit:
        wanted = []
        for s in sources:
            wanted.extend(x.strip() for x in str(s).split(",") if x.strip())
        unknown = [s for s in wanted if s not in plan.sources]
        if unknown:
            raise PlanError(f"unknown data source(s) {unknown}; known: {sorted(plan.sources)}")
    else:
        wanted = [name for name, spec in plan.sources.items() if spec.default != "never"]
    source_inputs: dict[str, list[Path]] = {}
    unavailable: dict[str, str] = {}
    for name, spec in plan.sources.items():
        files = resolve_inputs(spec, years if "years" in spec.accepts else None, root)
        source_inputs[name] = files
        if spec.requires_inputs and not files:
            unavailable[name] = spec.fetch_hint or f"the {name} input files are absent"
    selected = [
        s
        for s in wanted
        if explicit
        or plan.sources[s].default == "always"
        or (plan.sources[s].default == "when_available" and s not in unavailable)
    ]
    for s in selected:
        if s in unavailable:
            errors.append(f"data source {s!r} was requested but is not available: {unavailable[s]}")

    only_names = _normalise_only(only, plan)
    lib_hash = provenance.library_code_hash(code_roots)
    versions = provenance.package_versions()
    git = provenance.git_info(root)

    # one NotebookRun per notebook x source, in dependency order
    runs: list[NotebookRun] = []
    tasks: dict[str, _Task] = {}
    fingerprints: dict[str, str] = {}
    stale: list[str] = []
    for spec in plan.notebooks:
        input_nb = notebooks_dir / f"{spec.name}.ipynb"
        nb_hash = provenance.notebook_source_hash(input_nb) if input_nb.is_file() else None
        for source_name in selected:
            source = plan.sources[source_name]
            run = NotebookRun(spec.name, source_name, spec.title, NOT_SELECTED)
            runs.append(run)
            if source_name not in spec.sources:
                run.status, run.reason = NOT_APPLICABLE, spec.reason_not_applicable(source_name)
                continue
            if only_names is not None and spec.name not in only_names:
                continue
            if nb_hash is None:
                run.status, run.reason = (
                    MISSING,
                    f"{input_nb.name} is not in {notebooks_dir.name}/ yet",
                )
                continue
            if source_name in unavailable:
                run.status, run.reason = SKIPPED, unavailable[source_name]
                continue
            out_dir = reports_dir / source_name
            params = _parameters(source, source_name, out_dir, years, seed, n, scenario)
            params_for_hash = {**params, "output_dir": source_name}
            deps = tuple(
                f"{source_name}/{d}"
                for d in spec.depends_on
                if source_name in plan.notebook(d).sources
            )
            inputs = [
                {
                    "path": _relative(p, root),
                    "sha256": _file_sha256(p, hash_cache),
                    "bytes": p.stat().st_size,
                }
                for p in [*source_inputs[source_name], *spec.input_files(root)]
            ]
            fp = provenance.sha256_json(
                {
                    "v": MANIFEST_VERSION,
                    "notebook": nb_hash,
                    "parameters": params_for_hash,
                    "library": lib_hash,
                    "packages": versions,
                    "inputs": [(i["path"], i["sha256"]) for i in inputs],
                    "deps": [fingerprints.get(d) for d in deps],
                    "kernel": kernel_name,
                }
            )
            fingerprints[run.key] = fp
            run.fingerprint, run.parameters, run.depends_on = fp, params, deps
            prov = {
                "source": {
                    "name": source_name,
                    "label": source.label,
                    "evidence": source.evidence,
                    "note": source.provenance_note,
                },
                "inputs": inputs,
                "parameters": params_for_hash | {"output_dir": _relative(out_dir, root)},
                "notebook": {"path": _relative(input_nb, root), "sha256": nb_hash},
                "library_sha256": lib_hash,
                "packages": versions,
                "git": git,
                "built_at": None,
                "duration_s": None,
            }
            tasks[run.key] = _Task(spec, source, run, input_nb, out_dir, prov)
            previous = manifest["tasks"].get(run.key, {})
            up_to_date = (
                not force
                and previous.get("fingerprint") == fp
                and previous.get("status") == "ok"
                and (reports_dir / (previous.get("page") or "-")).is_file()
                and (reports_dir / (previous.get("executed") or "-")).is_file()
            )
            if up_to_date:
                run.status, run.reason = CACHED, "up to date"
                run.duration_s = previous.get("duration_s")
                run.page, run.executed = previous.get("page"), previous.get("executed")
            else:
                stale.append(run.key)

    # execute, dependencies first, independent notebooks in parallel
    by_key = {r.key: r for r in runs}
    if stale:
        cached = sum(r.status == CACHED for r in runs)
        say(
            f"painanx run: {len(stale)} notebook(s) to run, {cached} up to date, {jobs} in parallel"
        )
    bar = tqdm(
        total=len(stale),
        desc="notebooks",
        unit="nb",
        disable=not progress or not stale,
        file=sys.stderr,
        leave=False,
    )
    pending = list(stale)
    running: dict[Future, str] = {}
    with (
        _kernel_threads(jobs),
        ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="painanx-nb") as pool,
    ):
        while pending or running:
            for key in list(pending):
                run = by_key[key]
                dep_runs = [by_key[d] for d in run.depends_on if d in by_key]
                blocked = [d for d in dep_runs if d.status in (FAILED, SKIPPED, MISSING)]
                if blocked:
                    d = blocked[0]
                    run.status = SKIPPED
                    outcome = "failed" if d.status == FAILED else "did not build"
                    run.reason = f"depends on {d.notebook}, which {outcome}"
                    pending.remove(key)
                    bar.update(1)
                    manifest["tasks"].pop(key, None)
                    continue
                if any(d.key in pending or d.key in running.values() for d in dep_runs):
                    continue
                if len(running) >= jobs:
                    break
                pending.remove(key)
                fut = pool.submit(
                    _execute_task,
                    tasks[key],
                    notebooks_dir=notebooks_dir,
                    kernel_name=kernel_name,
                    cell_timeout=cell_timeout,
                )
                running[fut] = key
                bar.set_postfix_str(", ".join(sorted(running.values())), refresh=True)
            if not running:
                for key in pending:  # cannot happen with a valid plan; never spin forever
                    by_key[key].status = SKIPPED
                    by_key[key].reason = "its dependencies could not be scheduled"
                pending.clear()
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                key = running.pop(fut)
                run = by_key[key]
                try:
                    fut.result()
                except Exception as exc:  # a bug in the runner itself: report, keep going
                    run.status = FAILED
                    run.error = {
                        "cell": None,
                        "execution_count": None,
                        "ename": type(exc).__name__,
                        "evalue": str(exc),
                        "traceback": "",
                    }
                bar.update(1)
                if run.status == RAN:
                    say(f"  ok      {key:<44} {run.duration_s:6.1f} s")
                else:
                    say(f"  FAILED  {key:<44} {run.duration_s or 0:6.1f} s  {run.describe_error()}")
                    if run.executed:
                        say(
                            f"          executed-so-far notebook kept: {_relative(reports_dir / run.executed, root)}"
                        )
                manifest["tasks"][key] = {
                    "status": "ok" if run.status == RAN else "failed",
                    "fingerprint": run.fingerprint if run.status == RAN else None,
                    "title": run.title,
                    "page": run.page,
                    "executed": run.executed,
                    "duration_s": run.duration_s,
                    "built_at": tasks[key].provenance["built_at"],
                    "error": run.error,
                }
                _write_manifest(manifest_path, manifest)
            bar.set_postfix_str(", ".join(sorted(running.values())), refresh=True)
    bar.close()

    # claims step, then the index
    claims = run_claims_step(reports_dir, claims_hook)
    if claims["error"]:
        errors.append(f"claims step: {claims['error']}")
        say(f"ERROR claims step: {claims['error']}")
    manifest["last_build"] = {"built_at": provenance.now_utc(), "library_sha256": lib_hash}
    _write_manifest(manifest_path, manifest)
    result = BuildResult(
        runs,
        reports_dir,
        0.0,
        claims_evaluated=claims["evaluated"],
        errors=errors,
        messages=messages,
    )
    write_index(
        result,
        plan,
        manifest,
        claims,
        unavailable,
        selected,
        site_provenance={
            "source": None,
            "packages": versions,
            "git": git,
            "library_sha256": lib_hash,
            "built_at": manifest["last_build"]["built_at"],
            "duration_s": None,
        },
    )
    result.duration_s = time.perf_counter() - t_start
    return result


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _kernel_threads(jobs: int):
    """Kernels run ``jobs`` at a time: give each a share of the CPUs for its numeric libraries
    (BLAS threads), so parallel notebooks do not oversubscribe the machine. A value the user
    set is kept. Kernels inherit this process's environment when they start."""
    share = max(1, len(os.sched_getaffinity(0)) // max(1, jobs))
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    for v in _THREAD_VARS:
        os.environ.setdefault(v, str(share))
    try:
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


def _parameters(
    source: SourceSpec, name: str, out_dir: Path, years, seed, n, scenario
) -> dict[str, Any]:
    params: dict[str, Any] = {"data_source": name}
    params.update(source.parameters)
    overrides = {"years": years, "seed": seed, "n": n, "scenario": scenario}
    for key in source.accepts:
        if overrides.get(key) is not None:
            params[key] = list(overrides[key]) if key == "years" else overrides[key]
    params["output_dir"] = str(out_dir.resolve())
    return params


# --------------------------------------------------------------------------- claims + index


def _discover_claims_hook() -> Callable | None:
    try:
        module = importlib.import_module("analysis.claims.verdicts")
    except ModuleNotFoundError as exc:
        if exc.name == "analysis.claims.verdicts":
            return None
        raise
    return getattr(module, "evaluate_claims", None)


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


def run_claims_step(
    reports_dir: str | os.PathLike[str], claims_hook: Callable | None | str = "auto"
) -> dict:
    """Read all findings, evaluate the claims when a hook exists; write findings/claims JSON and CSV.

    Returns {"evaluated", "verdicts", "findings" (dicts), "error"}.
    """
    from analysis.build import site
    from analysis.core.findings import read_findings

    reports_dir = Path(reports_dir)
    out: dict[str, Any] = {"evaluated": False, "verdicts": [], "findings": [], "error": None}
    paths_ = sorted(reports_dir.glob("**/findings/*.json"))
    try:
        findings = read_findings(paths_)
    except ValueError as exc:
        out["error"] = str(exc)
        findings = []
    out["findings"] = [f.to_dict() for f in findings]
    site.write_csv(reports_dir / "findings.csv", out["findings"], FINDINGS_CSV_COLUMNS)
    try:
        hook = _discover_claims_hook() if claims_hook == "auto" else claims_hook
    except Exception as exc:  # analysis.claims.verdicts exists but fails to import
        hook, out["error"] = None, f"analysis.claims.verdicts failed to import: {type(exc).__name__}: {exc}"
    if hook is not None and out["error"] is None:
        try:
            out["verdicts"] = site.validate_verdicts(hook(findings))
            out["evaluated"] = True
        except Exception as exc:
            out["error"] = f"evaluate_claims raised {type(exc).__name__}: {exc}"
    if out["evaluated"]:
        claims_rows = out["verdicts"]
    else:  # one pending entry per claim that has findings, same keys as a verdict
        claims_rows = [
            {
                "claim_id": g["claim_id"],
                "sentence": "",
                "verdict": None,
                "key_finding": None,
                "sources": sorted({f["source"] for f in g["findings"]}),
                "caveats": [],
                "notebook": None,
                "pending": True,
            }
            for g in site.group_findings_by_claim(out["findings"], reports_dir)
        ]
    write_text_atomic(
        reports_dir / "claims.json", json.dumps(claims_rows, indent=2, default=str) + "\n"
    )
    site.write_csv(
        reports_dir / "claims.csv", site.verdict_csv_rows(claims_rows), site.CLAIMS_CSV_COLUMNS
    )
    return out


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


def _error_text(error: Mapping | None) -> str:
    if not error:
        return ""
    return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".rstrip(": ")


def _index_row(
    name: str, nb: NotebookSpec, run: NotebookRun | None, prev: dict, unavailable
) -> dict:
    """One row of the page list: this build's outcome, else the manifest's (an earlier build)."""
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
    elif run is not None and run.status in (SKIPPED, MISSING):
        row.update(status="missing" if run.status == MISSING else "skipped", reason=run.reason)
    elif prev:
        row.update(
            status=prev.get("status", "not built"),
            reason="from an earlier build",
            duration_s=prev.get("duration_s"),
            page=prev.get("page"),
            executed=prev.get("executed"),
            built_at=prev.get("built_at"),
            error=prev.get("error"),
        )
    elif name in unavailable:
        row["reason"] = unavailable[name]
    return row


def write_index(
    result: BuildResult,
    plan: Plan,
    manifest: dict,
    claims: dict,
    unavailable: Mapping[str, str],
    selected: list[str],
    site_provenance: dict,
) -> Path:
    """Write reports/index.html and build_status.csv from this build and the manifest."""
    from analysis.build import site

    reports_dir = result.reports_dir
    by_key = {r.key: r for r in result.runs}
    sections, status_rows, failures = [], [], []
    for name, spec in plan.sources.items():
        if spec.default == "never" and name not in selected:
            continue
        rows = []
        for nb in plan.notebooks:
            if name not in nb.sources:
                continue
            key = f"{name}/{nb.name}"
            row = _index_row(name, nb, by_key.get(key), manifest["tasks"].get(key, {}), unavailable)
            for link in ("page", "executed"):  # only link what exists
                if row[link] and not (reports_dir / row[link]).is_file():
                    row[link] = None
            if row["status"] == "failed" and row["error"]:
                e = row["error"]
                failures.append(
                    {
                        "source": name,
                        "notebook": nb.name,
                        "page": row["page"],
                        "notebook_file": row["executed"],
                        "cell": e.get("cell"),
                        "execution_count": e.get("execution_count"),
                        "ename": e.get("ename"),
                        "evalue": e.get("evalue"),
                    }
                )
            row["error"] = _error_text(row["error"])
            rows.append(row)
        status_rows.extend(rows)
        if name in unavailable and all(r["status"] == "not built" for r in rows):
            rows = []  # the fetch hint says it all
        sections.append(
            {
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
        )
    site.write_csv(reports_dir / "build_status.csv", status_rows, BUILD_STATUS_COLUMNS)
    n_ok = sum(r["status"] == "ok" for r in status_rows)
    n_failed = sum(r["status"] == "failed" for r in status_rows)
    summary = {
        "pages": len(status_rows),
        "ok": n_ok,
        "failed": n_failed,
        "skipped": len(status_rows) - n_ok - n_failed,
        "ran": result.count(RAN),
        "cached": result.count(CACHED),
    }
    claims_ctx = {
        "evaluated": claims["evaluated"],
        "verdicts": site.prepare_verdicts_for_index(claims["verdicts"], reports_dir)
        if claims["evaluated"]
        else [],
        "groups": []
        if claims["evaluated"]
        else site.group_findings_by_claim(claims["findings"], reports_dir),
        "error": claims["error"],
    }
    html = site.render_index(
        summary=summary,
        failures=failures,
        messages=[*result.messages, *result.errors],
        claims=claims_ctx,
        sources=sections,
        provenance=site_provenance,
        built_at=site_provenance["built_at"],
    )
    return write_text_atomic(reports_dir / "index.html", html)


def manifest_entries(reports_dir: str | os.PathLike[str]) -> dict[str, dict]:
    """The manifest's per-notebook entries (for tools and tests)."""
    return _read_manifest(Path(reports_dir) / MANIFEST_NAME)["tasks"]


__all__ = [
    "BuildResult",
    "NotebookRun",
    "NotebookSpec",
    "Plan",
    "PlanError",
    "build",
    "load_plan",
    "manifest_entries",
    "run_claims_step",
    "write_index",
]
