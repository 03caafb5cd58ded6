"""Fault injection for `painanx run`: findings of notebooks that did not build, Ctrl-C (once,
twice), a killed build, two builds at once, bad options, files written as a set, and two
identical builds.

Each test builds a small project in a temporary folder (notebooks written here, a plan using
the fixture sources of tests/fixtures/notebooks/notebooks.yaml) and checks that nothing an
earlier build made was lost and that nothing partial was left. The Ctrl-C tests run
`painanx run` as a subprocess around a notebook that waits for a file the test creates; every
wait is bounded by WAIT_S and ordered by files and messages, never by sleeping.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill.engines
import papermill.execute
import psutil
import pyarrow.parquet as pq
import pytest
import requests
import yaml
from site_fixtures import PLAN, fake_verdicts, masked_pages
from typer.testing import CliRunner

import analysis.build.runner
import analysis.claims.verdicts
import analysis.core.io
import analysis.data.help
import analysis.data.nhis.fetch
import analysis.data.nhis.prepare
import analysis.simulation.study
from analysis.build import runner
from analysis.build.execute import INJECTED_TAG
from analysis.build.fingerprint import manifest_entries
from analysis.build.interrupt import FIRST_MESSAGE, SECOND_MESSAGE
from analysis.build.workspace import LOCK_NAME, build_lock, write_texts_together
from analysis.cli import app
from analysis.core.io import atomic_paths, check_writable
from analysis.data import schema
from analysis.data import synthetic as synth
from analysis.data.help import load_help
from analysis.data.nhis.fixtures import write_fixture_csv
from analysis.models import figures, synthetic_truth
from analysis.simulation.study import SimulationResult
from analysis.simulation.summaries import load_spec

WAIT_S = 180  # the longest any step may take, even on a loaded 2-core machine
PARAMETERS = """\
data_source = "synthetic"
years = None
seed = 2019
n = 100
scenario = "literature"
output_dir = "reports/synthetic"
"""
# Waits until the test creates $PAINANX_TEST_SIGNALS/release; says it started (with its pid).
SLEEPER = """\
import os, pathlib, time
signals = pathlib.Path(os.environ["PAINANX_TEST_SIGNALS"])
(signals / "started.tmp").write_text(str(os.getpid()))
(signals / "started.tmp").rename(signals / "started")
deadline = time.monotonic() + 600
while not (signals / "release").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("released")
"""
WRITE_FINDING = """\
from analysis import data as sources
from analysis.core.findings import Finding, write_findings
out = sources.prepare_output_dir(output_dir)
write_findings(
    [Finding("C1", "fixture_ratio", "Fixture ratio (PR)", data_source, 1.5, 1.2, 1.9,
             "prevalence ratio", 1.0)],
    out / "findings" / "finding.json",
)
"""
READ_NHIS = """\
from analysis import data as sources
if data_source == "nhis":
    frame = sources.load("nhis", years=years)
    print(len(frame), "NHIS adults")
"""
PRINT = 'print("data_source", data_source)'


def write_notebook(path: Path, title: str, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}"),
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        *(nbformat.v4.new_code_cell(c) for c in cells),
    ]
    nbformat.write(nb, path)


class Project:
    """A project folder with its own notebooks, plan, data and reports."""

    def __init__(self, root: Path):
        self.root = root
        self.notebooks = root / "notebooks"
        self.reports = root / "reports"
        self.signals = root / "signals"
        self.plan_path = root / "plan.yaml"
        # the temporary and runtime folder of `start`ed builds: a killed build's kernel leaves
        # its sockets there (a short path: socket names are limited to ~100 characters)
        self.scratch = Path(tempfile.mkdtemp(prefix="painanx-test-"))
        for folder in (self.notebooks, self.signals, root / "data"):
            folder.mkdir()
        (root / "data" / "help.csv").write_text("id,pain\n1,3\n")

    def plan(self, sources: list[str], **notebooks: tuple[str, list[str], list[str]]) -> None:
        """Notebooks as name=(code, sources, depends_on), in that order; the plan's sources
        are the fixture plan's ``sources`` (others dropped)."""
        fixture = yaml.safe_load(PLAN.read_text())
        plan = {"sources": {s: fixture["sources"][s] for s in sources}, "notebooks": []}
        for name, (code, on, depends_on) in notebooks.items():
            write_notebook(self.notebooks / f"{name}.ipynb", name.replace("_", " ").title(), code)
            plan["notebooks"].append({"name": name, "sources": on, "depends_on": depends_on})
        self.plan_path.write_text(yaml.safe_dump(plan))

    def build(self, **kwargs):
        kwargs.setdefault("claims_hook", None)
        kwargs.setdefault("echo", lambda msg: None)
        return runner.build(
            notebooks_dir=self.notebooks,
            reports_dir=self.reports,
            plan_path=self.plan_path,
            project_root=self.root,
            progress=False,
            **kwargs,
        )

    def cli_args(self, *extra: str) -> list[str]:
        return [
            "run",
            "--plan", str(self.plan_path),
            "--notebooks-dir", str(self.notebooks),
            "--reports-dir", str(self.reports),
            "--quiet",
            *extra,
        ]  # fmt: skip

    def start(self, *extra: str) -> subprocess.Popen:
        """`painanx run` in a new process; its output goes to files (read with `stderr`)."""
        env = {**os.environ, "PAINANX_HOME": str(self.root)}
        env["PAINANX_TEST_SIGNALS"] = str(self.signals)
        env["TMPDIR"] = env["JUPYTER_RUNTIME_DIR"] = str(self.scratch)
        command = [sys.executable, "-c", "from analysis.cli import main; main()"]
        return subprocess.Popen(
            [*command, *self.cli_args(*extra)],
            cwd=self.root,
            env=env,
            stdout=open(self.root / "stdout.txt", "wb"),
            stderr=open(self.root / "stderr.txt", "wb"),
        )

    def output(self) -> str:
        return (self.root / "stdout.txt").read_text() + (self.root / "stderr.txt").read_text()

    def wait_for(self, condition, what: str, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if process.poll() is not None:
                pytest.fail(
                    f"painanx run ended ({process.returncode}) before {what}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"no {what} within {WAIT_S} s:\n{self.output()}")
            time.sleep(0.05)

    def started_kernel(self, process: subprocess.Popen) -> int:
        """Wait until the sleeper runs; the pid of its kernel."""
        self.wait_for((self.signals / "started").exists, "sleeper start", process)
        return int((self.signals / "started").read_text())

    def release(self) -> None:
        (self.signals / "release").write_text("go")

    def hold(self) -> None:
        for name in ("release", "started"):
            (self.signals / name).unlink(missing_ok=True)

    def pages(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.reports).as_posix(): p.read_bytes()
            for p in sorted(self.reports.rglob("*"))
            if p.is_file()
        }

    def leftovers(self) -> list[str]:
        return sorted(
            p.relative_to(self.reports).as_posix()
            for p in self.reports.rglob("*")
            if p.name.endswith((".partial.ipynb", ".tmp"))
        )

    def status(self) -> dict[str, str]:
        rows = csv.DictReader(io.StringIO((self.reports / "build_status.csv").read_text()))
        return {f"{r['source']}/{r['notebook']}": r["status"] for r in rows}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Iterator[Project]:
    monkeypatch.setenv("PAINANX_HOME", str(tmp_path))
    monkeypatch.setenv("PAINANX_TEST_SIGNALS", str(tmp_path / "signals"))
    project = Project(tmp_path)
    yield project
    shutil.rmtree(project.scratch, ignore_errors=True)


@pytest.fixture
def sleeper_project(project) -> Project:
    """A sleeper on the synthetic source and a notebook writing a finding on HELP, built once
    (the sleeper released), so each test starts from a complete site."""
    project.plan(
        ["synthetic", "help"],
        sleeper=(SLEEPER, ["synthetic"], []),
        finding=(WRITE_FINDING, ["help"], []),
    )
    project.release()
    assert project.build().exit_code == 0
    project.hold()
    return project


def _outcomes(result) -> dict[str, str]:
    """What happened to each notebook this build was asked to build."""
    return {r.key: r.status for r in result.runs if r.status != "not applicable"}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --------------------------------------------------------------------------- Ctrl-C, lock


def test_first_ctrl_c_lets_running_notebooks_finish_records_them_and_exits_130(sleeper_project):
    p = sleeper_project
    earlier = p.pages()
    build = p.start("--force", "--jobs", "1")
    p.started_kernel(build)

    # meanwhile a second build of the same reports folder is refused, naming lock and holder
    second = CliRunner().invoke(app, p.cli_args())
    assert second.exit_code == 1
    assert f"pid {build.pid}" in second.output and LOCK_NAME in second.output

    build.send_signal(signal.SIGINT)
    p.wait_for(lambda: "stopping after the running notebooks" in p.output(), "message", build)
    p.release()
    assert build.wait(timeout=WAIT_S) == 130, p.output()
    assert FIRST_MESSAGE in p.output()

    # what was running finished and is recorded; what had not started did not start
    entries = manifest_entries(p.reports)
    assert entries["synthetic/sleeper"]["status"] == "ok"
    assert p.status() == {"synthetic/sleeper": "ok", "help/finding": "interrupted"}
    index = (p.reports / "index.html").read_text()
    assert "stopped by Ctrl-C" in index and "stopped (Ctrl-C)" in index
    # the earlier build's record and page of the notebook that did not start are kept
    assert entries["help/finding"]["status"] == "ok"
    assert (p.reports / "help" / "finding.html").read_bytes() == earlier["help/finding.html"]
    assert set(earlier) <= set(p.pages())
    assert p.leftovers() == []
    # its findings are still up to date: they stay in the verdicts' input
    assert "fixture_ratio" in (p.reports / "findings.csv").read_text()


def test_second_ctrl_c_stops_the_kernels_at_once_and_leaves_no_partial_file(sleeper_project):
    p = sleeper_project
    earlier = p.pages()
    build = p.start("--force", "--jobs", "1")
    kernel = p.started_kernel(build)
    p.wait_for(
        lambda: (p.reports / "synthetic" / ".sleeper.partial.ipynb").exists(), "partial", build
    )
    build.send_signal(signal.SIGINT)
    p.wait_for(lambda: FIRST_MESSAGE in p.output(), "first message", build)
    build.send_signal(signal.SIGINT)
    assert build.wait(timeout=WAIT_S) == 130, p.output()
    assert SECOND_MESSAGE in p.output() and "Traceback" not in p.output()
    assert _gone(kernel)  # the sleeper was never released: its kernel was stopped

    assert p.leftovers() == []
    entries = manifest_entries(p.reports)
    assert "synthetic/sleeper" not in entries  # a stopped run is not recorded: it re-runs
    assert entries["help/finding"]["status"] == "ok"
    assert p.status() == {"synthetic/sleeper": "interrupted", "help/finding": "interrupted"}
    assert "stopped by Ctrl-C while running" in (p.reports / "index.html").read_text()
    assert set(earlier) <= set(p.pages())  # the earlier pages are still there

    p.release()
    again = p.build()
    assert _outcomes(again) == {
        "synthetic/sleeper": "ran",
        "help/finding": "cached",
    }


def test_a_killed_build_leaves_partial_files_that_the_next_build_removes(sleeper_project):
    p = sleeper_project
    build = p.start("--force", "--jobs", "1")
    kernel = p.started_kernel(build)
    partial = p.reports / "synthetic" / ".sleeper.partial.ipynb"
    p.wait_for(partial.exists, "partial notebook", build)
    build.kill()  # no chance to clean up
    build.wait(timeout=WAIT_S)
    # the orphaned kernel, in a session of its own (it may already have noticed and quit)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(kernel, signal.SIGKILL)
    stale_tmp = p.reports / ".claims.json.x1y2z3.tmp"
    stale_tmp.write_text("half")
    assert p.leftovers() == [".claims.json.x1y2z3.tmp", "synthetic/.sleeper.partial.ipynb"]

    p.release()
    messages: list[str] = []
    again = p.build(echo=messages.append)  # the lock died with the killed build
    assert p.leftovers() == []
    assert any("synthetic/.sleeper.partial.ipynb" in m for m in messages)
    # the killed run had dropped its record when it started: it runs again
    assert _outcomes(again) == {
        "synthetic/sleeper": "ran",
        "help/finding": "cached",
    }


def test_a_build_waits_for_no_one_when_the_lock_is_held(project):
    project.plan(["help"], quick=(PRINT, ["help"], []))
    project.reports.mkdir()
    with build_lock(project.reports):
        result = CliRunner().invoke(app, project.cli_args())
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if "did not start" in ln)
    assert f"pid {os.getpid()}" in line and str(project.reports / LOCK_NAME) in line
    assert sorted(p.name for p in project.reports.iterdir()) == [LOCK_NAME]


# --------------------------------------------------------------------------- stale findings


def _nhis_2019(project: Project) -> Path:
    """An NHIS 2019 fixture recoded by `painanx data prepare nhis` into data/processed/."""
    raw = project.root / "data" / "raw" / "nhis" / "2019"
    write_fixture_csv(2019, raw / "adult19.csv", n=120, seed=2019)
    prepared = CliRunner().invoke(
        app, ["data", "prepare", "nhis", "--years", "2019", "--no-progress"]
    )
    assert prepared.exit_code == 0, prepared.output
    return project.root / "data" / "processed" / "nhis_adult_2019.parquet"


def _claim_sources(project: Project) -> list[str]:
    return json.loads((project.reports / "claims.json").read_text())[0]["sources"]


def test_findings_of_notebooks_that_did_not_build_do_not_reach_the_verdicts(project):
    parquet = _nhis_2019(project)
    project.plan(
        ["synthetic", "help", "nhis"],
        overview=(READ_NHIS, ["help", "nhis"], []),
        finding=(WRITE_FINDING, ["help", "nhis"], ["overview"]),
    )
    first = project.build(claims_hook=fake_verdicts)
    assert first.exit_code == 0, first.summary()
    assert _claim_sources(project) == ["help", "nhis"]
    nhis_findings = project.reports / "nhis" / "findings" / "finding.json"
    assert nhis_findings.is_file()

    # the processed file is damaged: the overview fails, the finding is skipped, and its
    # findings from the first build no longer count
    parquet.write_bytes(parquet.read_bytes()[:500])
    damaged = project.build(claims_hook=fake_verdicts)
    assert {k: v for k, v in _outcomes(damaged).items() if k.startswith("nhis/")} == {
        "nhis/overview": "failed",
        "nhis/finding": "skipped",
    }
    assert _claim_sources(project) == ["help"]
    assert not nhis_findings.exists()
    assert "nhis" not in (project.reports / "findings.csv").read_text()

    # the file is gone: the default build leaves NHIS out, and so do the verdicts
    parquet.unlink()
    gone = project.build(claims_hook=fake_verdicts)
    assert gone.exit_code == 0 and _claim_sources(project) == ["help"]
    index = (project.reports / "index.html").read_text()
    assert "Sources used: help<" in index and "Sources used: help, nhis" not in index
    assert "NHIS fixture files are absent" in index
    assert (project.reports / "help" / "finding.html").is_file()  # nothing else was lost
    assert project.leftovers() == []


def test_findings_of_a_source_left_out_are_ignored_and_count_again_when_it_is_back(project):
    parquet = _nhis_2019(project)
    project.plan(
        ["synthetic", "help", "nhis"],
        overview=(READ_NHIS, ["help", "nhis"], []),
        finding=(WRITE_FINDING, ["help", "nhis"], ["overview"]),
    )
    project.build(claims_hook=fake_verdicts)
    kept = parquet.read_bytes()
    parquet.unlink()
    without = project.build(claims_hook=fake_verdicts)
    assert without.exit_code == 0 and _claim_sources(project) == ["help"]
    # the page and findings of the successful NHIS run stay on disk, and the index says why
    # they are not used
    assert (project.reports / "nhis" / "findings" / "finding.json").is_file()
    assert "nhis/findings/finding.json" in (project.reports / "index.html").read_text()

    parquet.write_bytes(kept)
    back = project.build(claims_hook=fake_verdicts)
    assert {k: v for k, v in _outcomes(back).items() if k.startswith("nhis/")} == {
        "nhis/overview": "cached",
        "nhis/finding": "cached",
    }
    assert _claim_sources(project) == ["help", "nhis"]


def test_only_counts_the_findings_of_notebooks_verified_up_to_date(project):
    project.plan(
        ["synthetic", "help"],
        overview=(PRINT, ["help"], []),
        finding=(WRITE_FINDING, ["help"], []),
    )
    project.build(claims_hook=fake_verdicts)
    assert _claim_sources(project) == ["help"]
    # --only another notebook: the finding is still up to date and counts
    project.build(claims_hook=fake_verdicts, only=["overview"], force=True)
    assert _claim_sources(project) == ["help"]
    # its notebook changed and was not re-run: its findings are left out
    write_notebook(project.notebooks / "finding.ipynb", "Finding", WRITE_FINDING, PRINT)
    project.build(claims_hook=fake_verdicts, only=["overview"])
    assert json.loads((project.reports / "claims.json").read_text()) == []
    assert "help/findings/finding.json" in (project.reports / "index.html").read_text()


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("--scenario", "bogus", "literature, null"),
        ("--years", "2015", "2019, 2020, 2021, 2022, 2023, 2024"),
        ("--data", "mars", "synthetic, help, nhis, published"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(project, option, value, accepted):
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--plan", str(PLAN),
            "--notebooks-dir", str(project.notebooks),
            "--reports-dir", str(project.reports),
            option, value,
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    line = next(ln for ln in result.output.splitlines() if f"'{option}'" in ln)
    assert repr(value) in line or value in line
    assert accepted in line
    assert not project.reports.exists()


# --------------------------------------------------------------------------- sets of files


def test_files_written_together_are_all_replaced_or_none(tmp_path):
    first, second = tmp_path / "claims.json", tmp_path / "claims.csv"
    write_texts_together({first: "[1]\n", second: "a\n1\n"})
    with pytest.raises(TypeError):
        write_texts_together({first: "[2]\n", second: None})  # the second write fails
    assert first.read_text() == "[1]\n" and second.read_text() == "a\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.csv", "claims.json"]


def test_a_build_stopped_in_the_claims_step_leaves_the_earlier_set_whole(project):
    project.plan(["help"], finding=(WRITE_FINDING, ["help"], []))
    project.build(claims_hook=fake_verdicts)
    earlier = project.pages()

    def interrupted(findings):
        raise KeyboardInterrupt  # Ctrl-C pressed a third time, in the middle of the step

    with pytest.raises(KeyboardInterrupt):
        project.build(claims_hook=interrupted)
    after = project.pages()
    for name in ("claims.json", "claims.csv", "findings.csv", "index.html", "build_status.csv"):
        assert after[name] == earlier[name]
    assert manifest_entries(project.reports)["help/finding"]["status"] == "ok"
    assert project.leftovers() == []
    assert project.build(claims_hook=fake_verdicts).exit_code == 0  # the lock was released


# --------------------------------------------------------------------------- determinism


def test_identical_builds_give_identical_pages_with_or_without_warm_kernels(project):
    fixtures = Path(PLAN).parent
    for name in ("passing", "findings_figure", "published_only"):
        (project.notebooks / f"{name}.ipynb").write_bytes((fixtures / f"{name}.ipynb").read_bytes())
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"] = [nb for nb in plan["notebooks"] if "fail" not in nb["name"]]
    project.plan_path.write_text(yaml.safe_dump(plan))
    # the first build starts each kernel cold, the second takes them from the warm pool
    assert project.build(claims_hook=fake_verdicts, warm_kernels=False).exit_code == 0
    first = masked_pages(project.reports)
    assert 'src="data:image/png;base64,' in first["synthetic/findings_figure.html"]
    shutil.rmtree(project.reports)
    assert project.build(claims_hook=fake_verdicts).exit_code == 0
    second = masked_pages(project.reports)
    assert list(second) == list(first)
    for name, text in first.items():
        assert second[name] == text, f"{name} differs between two identical builds"


def test_a_kernel_that_dies_keeps_the_cells_before_and_saves_twice_not_per_cell(
    project, monkeypatch
):
    saves = []
    write = papermill.engines.write_ipynb
    monkeypatch.setattr(
        papermill.engines, "write_ipynb", lambda nb, path: (saves.append(path), write(nb, path))
    )
    project.plan(["help"], dies=("", ["help"], []))
    write_notebook(
        project.notebooks / "dies.ipynb",
        "Dies",
        'print("before the death")',
        'print("the last words", flush=True)\nimport os, time\ntime.sleep(0.5)\nos._exit(3)',
        'print("never reached")',
    )
    result = project.build()
    run = next(r for r in result.runs if r.key == "help/dies")
    assert run.status == "failed" and "DeadKernelError" in run.error["ename"]
    kept = nbformat.read(project.reports / "help" / "dies.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in kept.cells for o in c.get("outputs", []))
    assert "before the death" in printed and "the last words" in printed
    assert "never reached" not in printed
    # saved as the run started and when it ended, not at each of its 5 cells' start and end
    assert len(saves) == 2 and all(path.endswith(".dies.partial.ipynb") for path in saves)


def test_a_notebook_that_runs_through_is_written_once_at_its_start_and_once_at_its_end(
    project, monkeypatch
):
    """papermill's engine saves as the run starts; papermill writes the finished notebook,
    already made the same every build: no second save at the end, no read back and rewrite."""
    written = []
    for module in (papermill.engines, papermill.execute):
        write = module.write_ipynb
        monkeypatch.setattr(
            module,
            "write_ipynb",
            lambda nb, path, _write=write, _name=module.__name__: (
                written.append((_name, path)),
                _write(nb, path),
            ),
        )
    project.plan(["help"], fine=('print("fine")', ["help"], []))
    assert project.build().exit_code == 0
    assert [name for name, _ in written] == ["papermill.engines", "papermill.execute"]
    kept = nbformat.read(project.reports / "help" / "fine.ipynb", as_version=4)
    injected = [c for c in kept.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert [c.id for c in injected] == [INJECTED_TAG]  # the same every build


def test_printed_output_is_one_block_however_the_kernel_sends_it(project):
    printing = 'import time\nprint("first", flush=True)\ntime.sleep(0.5)\nprint("second")'
    project.plan(["help"], printer=(printing, ["help"], []))
    assert project.build().exit_code == 0
    nb = nbformat.read(project.reports / "help" / "printer.ipynb", as_version=4)
    assert nb.cells[-1].outputs == [
        nbformat.v4.new_output("stream", name="stdout", text="first\nsecond\n")
    ]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert [c.id for c in injected] == ["injected-parameters"]


def test_the_within_between_figure_is_the_same_every_time():
    import matplotlib.pyplot as plt

    frame = load_help()
    images = []
    for _ in range(2):
        fig = figures.within_between(frame)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=60)
        plt.close(fig)
        images.append(buffer.getvalue())
    assert images[0] == images[1]


# ---------------------------------------------------------------------- the CLI: pairs, one-line errors, schema
# Faults of the command line and its outputs: nothing stale, nothing half-written.
#
# Each case interrupts or breaks a command (an exception or Ctrl-C between the writes of files
# that belong together, a folder where a file should go, a file where a folder should be, a
# refused rename, a lost connection) and checks that the files there before are intact, that
# no temporary file is left, and that the user reads one line with exit code 1 (``--debug``
# shows the traceback). The schema's rules on infinite weights and repeated ids are here too.

cli = CliRunner()


def contents(folder: Path) -> dict[str, bytes]:
    """Every file in a folder (temporary ones included) with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line_error(result, *names: str) -> str:
    """The command failed with exit code 1 and one line (no traceback) naming ``names``."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "--debug" in lines[0]
    for name in names:
        assert name in lines[0]
    return lines[0]


def forbid(monkeypatch, target, name: str) -> list:
    """Replace ``target.name`` by a recorder, to assert the work never started."""
    calls: list = []
    monkeypatch.setattr(target, name, lambda *a, **k: calls.append(a) or pytest.fail(name))
    return calls


def refuse_rename_onto(monkeypatch, name: str) -> None:
    """os.replace of a temporary file onto ``name`` fails as on a read-only folder."""
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == name and str(src).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", str(src), None, str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


# ----------------------------------------------------------------- data synth: the pair --


@pytest.fixture
def old_pair(tmp_path) -> Path:
    """A sample and its truth from an earlier run."""
    (tmp_path / "synthetic.parquet").write_bytes(b"earlier sample")
    (tmp_path / "synthetic.truth.json").write_text('{"earlier": "truth"}')
    return tmp_path


def synth_args(out: Path, *extra: str) -> list[str]:
    return [
        "data",
        "synth",
        "--n",
        "300",
        "--seed",
        "5",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_synth_interrupted_before_the_truth_keeps_the_old_pair(old_pair, monkeypatch, interruption):
    before = contents(old_pair)
    written = []
    real_generate = synth.generate_to_parquet

    def generate(path, **kwargs):  # the new sample is complete (at a temporary name) ...
        written.append(real_generate(path, **kwargs))
        return written[-1]

    def truth(*args, **kwargs):  # ... when the truth computation is interrupted
        raise interruption("interrupted between the sample and its truth")

    monkeypatch.setattr(synth, "generate_to_parquet", generate)
    monkeypatch.setattr(synthetic_truth, "true_estimands", truth)
    result = cli.invoke(app, synth_args(old_pair / "synthetic.parquet"))
    assert result.exit_code != 0
    assert written and written[0].n == 300  # the new sample was written before the interruption
    assert contents(old_pair) == before  # old pair intact, no temporary file left


def test_synth_rename_refused_midway_keeps_the_old_pair(old_pair, monkeypatch):
    """The sample is renamed into place, then the truth's rename fails: the sample is put back."""
    before = contents(old_pair)
    refuse_rename_onto(monkeypatch, "synthetic.truth.json")
    result = cli.invoke(app, synth_args(old_pair / "synthetic.parquet"))
    one_line_error(result, "synthetic.truth.json", "Permission denied")
    assert contents(old_pair) == before


def test_synth_replaces_both_files_with_a_matching_pair(old_pair):
    result = cli.invoke(app, synth_args(old_pair / "synthetic.parquet"))
    assert result.exit_code == 0, result.output
    assert sorted(contents(old_pair)) == ["synthetic.parquet", "synthetic.truth.json"]
    meta = pq.read_schema(old_pair / "synthetic.parquet").metadata[b"painanx.synthetic"]
    truth = json.loads((old_pair / "synthetic.truth.json").read_text())
    assert json.loads(meta)["params_hash"] == truth["params_hash"]
    assert f"wrote 300 rows to {old_pair / 'synthetic.parquet'}" in result.output


@pytest.mark.parametrize("folder", ["d.parquet", "d.truth.json"])
def test_synth_into_a_folder_fails_in_one_line_before_any_work(tmp_path, monkeypatch, folder):
    (tmp_path / folder).mkdir()
    calls = forbid(monkeypatch, synth, "generate_to_parquet")
    result = cli.invoke(app, synth_args(tmp_path / "d.parquet"))
    line = one_line_error(result, str(tmp_path / folder))
    assert "is a folder" in line and "give the path of a file" in line
    assert calls == []
    assert [p.name for p in tmp_path.iterdir()] == [folder]


def test_synth_below_a_file_fails_in_one_line_before_any_work(tmp_path, monkeypatch):
    """A path under a regular file cannot be written, even by root (unlike a chmod'ed folder)."""
    (tmp_path / "somefile").write_text("not a folder")
    calls = forbid(monkeypatch, synth, "generate_to_parquet")
    result = cli.invoke(app, synth_args(tmp_path / "somefile" / "out.parquet"))
    line = one_line_error(result, "somefile")
    assert "is a file" in line and "choose another path" in line
    assert calls == []
    assert contents(tmp_path) == {"somefile": b"not a folder"}


def test_synth_into_a_read_only_folder_fails_in_one_line_before_any_work(tmp_path, monkeypatch):
    """Root writes through chmod, so the refusal is the one a read-only disk gives."""

    def refused(*args, dir=None, **kwargs):
        raise OSError(30, "Read-only file system", str(Path(dir) / "tmpk3x9q1"))

    monkeypatch.setattr(analysis.core.io.tempfile, "TemporaryFile", refused)
    calls = forbid(monkeypatch, synth, "generate_to_parquet")
    result = cli.invoke(app, synth_args(tmp_path / "out.parquet"))
    line = one_line_error(result, f"{tmp_path}: Read-only file system", "writable disk")
    assert "tmpk3x9q1" not in line  # the folder is named, not the probe's temporary file
    assert calls == []


def test_synth_bad_parameter_makes_no_folder(tmp_path):
    result = cli.invoke(
        app, synth_args(tmp_path / "new" / "s.parquet", "--set", "obesity_prevalence=2")
    )
    assert result.exit_code == 2 and "obesity_prevalence" in result.output
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    result = cli.invoke(app, ["--debug", *synth_args(tmp_path / "d.parquet")])
    assert isinstance(result.exception, IsADirectoryError)
    assert result.exit_code != 0


@pytest.mark.parametrize(
    ("debug", "traceback"), [([], False), (["--debug"], True), (["PAINANX_DEBUG"], True)]
)
def test_the_installed_command_prints_one_line_or_the_traceback(tmp_path, debug, traceback):
    (tmp_path / "d.parquet").mkdir()
    env = {**os.environ, "PAINANX_DEBUG": "1" if debug == ["PAINANX_DEBUG"] else ""}
    args = [a for a in debug if a.startswith("--")]
    done = subprocess.run(
        [sys.executable, "-c", "from analysis.cli import main; main()", *args]
        + synth_args(tmp_path / "d.parquet"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert ("Traceback" in done.stderr) is traceback
    assert ("IsADirectoryError" in done.stderr) is traceback
    if not traceback:
        assert done.stderr.strip().count("\n") == 0 and "d.parquet: is a folder" in done.stderr


# ------------------------------------------------------------------ simulation outputs --


def small_result(run: int) -> SimulationResult:
    """Simulation result number ``run`` from constructed replicates (no Dask run needed);
    every file of two different runs differs."""
    spec = load_spec()
    replicates = pd.DataFrame(
        {
            "scenario": "literature",
            "replicate": range(4),
            "estimand": "or_back_pain_obesity",
            "estimate": [1.9 + run, 2.1 + run, 2.0 + run, 2.2 + run],
            "ci_low": 1.5,
            "ci_high": 2.5 + run,
            "truth": 2.0,
        }
    )
    verdict = ["not supported", "supported"][run % 2]
    verdicts = pd.DataFrame(
        {"scenario": "null", "replicate": range(4), **dict.fromkeys(spec["claims"], verdict)}
    )
    return SimulationResult(replicates, verdicts, settings={"run": run})


@pytest.mark.parametrize("refused", list(SimulationResult.FILES.values()))
def test_simulation_files_are_replaced_together_or_not_at_all(tmp_path, monkeypatch, refused):
    folder = tmp_path / "sim"
    small_result(0).write(folder)
    before = contents(folder)
    refuse_rename_onto(monkeypatch, refused)
    with pytest.raises(PermissionError, match=refused):
        small_result(1).write(folder)
    assert contents(folder) == before  # every earlier file back, nothing partial left
    monkeypatch.undo()
    small_result(1).write(folder)
    after = contents(folder)
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in before)  # the runs differ in every file


def test_simulate_into_a_file_fails_in_one_line_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "sim").write_text("a file")
    calls = forbid(monkeypatch, analysis.simulation.study, "run_simulation")
    result = cli.invoke(app, ["simulate", "--out", str(tmp_path / "sim"), "--no-progress"])
    one_line_error(result, str(tmp_path / "sim"), "is a file")
    assert calls == []


# ------------------------------------------------------------------ the other commands --


def test_claims_pair_survives_a_refused_rename(tmp_path, monkeypatch):
    (tmp_path / "claims.json").write_text("[]  earlier verdicts\n")
    (tmp_path / "claims.csv").write_text("claim_id\nearlier\n")
    before = contents(tmp_path)
    refuse_rename_onto(monkeypatch, "claims.csv")
    result = cli.invoke(app, ["claims", "--reports", str(tmp_path)])
    one_line_error(result, "claims.csv", "Permission denied")
    assert contents(tmp_path) == before


def test_claims_into_a_folder_fails_in_one_line_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "claims.csv").mkdir()
    calls = forbid(monkeypatch, analysis.claims.verdicts, "evaluate_claims")
    result = cli.invoke(app, ["claims", "--reports", str(tmp_path)])
    one_line_error(result, "claims.csv", "is a folder")
    assert calls == []


def test_prepare_help_into_a_folder_fails_before_loading(tmp_path, monkeypatch):
    (tmp_path / "help.parquet").mkdir()
    calls = forbid(monkeypatch, analysis.data.help, "load_help")
    result = cli.invoke(app, ["data", "prepare", "help", "--out", str(tmp_path / "help.parquet")])
    one_line_error(result, "help.parquet", "is a folder")
    assert calls == []


def test_prepare_nhis_into_a_file_fails_before_recoding(tmp_path, monkeypatch):
    (tmp_path / "processed").write_text("a file")
    calls = forbid(monkeypatch, analysis.data.nhis.prepare, "prepare_nhis")
    result = cli.invoke(
        app,
        ["data", "prepare", "nhis", "--years", "2019", "--out-dir", str(tmp_path / "processed")],
    )
    one_line_error(result, "processed", "is a file")
    assert calls == []


def test_fetch_nhis_into_a_file_fails_before_downloading(tmp_path, monkeypatch):
    (tmp_path / "raw").write_text("a file")
    calls = forbid(monkeypatch, analysis.data.nhis.fetch, "fetch_nhis_year")
    result = cli.invoke(
        app, ["data", "fetch", "nhis", "--years", "2019", "--cache-dir", str(tmp_path / "raw")]
    )
    one_line_error(result, "raw", "is a file")
    assert calls == []


def test_a_lost_connection_is_one_line_naming_the_url(tmp_path, monkeypatch):
    url = "https://ftp.cdc.gov/pub/Health_Statistics/NCHS/adult19csv.zip"

    def offline(*args, **kwargs):
        raise requests.ConnectionError("Max retries exceeded", request=requests.Request("GET", url))

    monkeypatch.setattr(analysis.data.nhis.fetch, "fetch_nhis_year", offline)
    result = cli.invoke(
        app,
        [
            "data",
            "fetch",
            "nhis",
            "--years",
            "2019",
            "--cache-dir",
            str(tmp_path / "raw"),
            "--lock-file",
            str(tmp_path / "lock.json"),
        ],
    )
    line = one_line_error(result, url, "ConnectionError")
    assert "check the network connection" in line


def test_run_gets_the_same_one_line_errors_without_code_of_its_own(tmp_path, monkeypatch):
    """The handling sits on the root command, so `painanx run` has it too."""

    def build(**kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "reports" / "index.html"))

    monkeypatch.setattr(analysis.build.runner, "build", build)  # run imports it when it runs
    line = one_line_error(cli.invoke(app, ["run", "-q"]), "index.html")
    assert "free some space" in line


# --------------------------------------------------------------------- the I/O helpers --


def test_atomic_paths_roll_back_a_ctrl_c_between_renames(tmp_path, monkeypatch):
    (tmp_path / "a.json").write_text("old a")
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == "b.csv" and str(src).endswith(".tmp"):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with (
        pytest.raises(KeyboardInterrupt),
        atomic_paths({"a": tmp_path / "a.json", "b": tmp_path / "b.csv"}) as tmp,
    ):
        tmp["a"].write_text("new a")
        tmp["b"].write_text("new b")
    assert contents(tmp_path) == {"a.json": b"old a"}  # a restored, b never created


def test_check_writable_creates_nothing(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.parquet"
    assert check_writable(target) == target
    assert check_writable(tmp_path / "new", folder=True) == tmp_path / "new"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- schema --


def frame(ids: list[str], years: list[int] | None = None, **columns) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "source": pd.Series(["help"] * n, dtype="string"),
            "survey_year": pd.Series(years or [2019] * n, dtype="Int64"),
            "respondent_id": pd.Series(ids, dtype="string"),
            "weight": np.ones(n),
            "stratum": pd.Series(["1"] * n, dtype="string"),
            "psu": pd.Series(ids, dtype="string"),
            "age": np.full(n, 40.0),
            "sex": pd.Categorical(["female"] * n, categories=["female", "male"]),
            **columns,
        }
    )


def test_schema_rejects_an_infinite_weight_naming_column_and_rows():
    df = frame(["a", "b", "c", "d"])
    df.loc[[1, 3], "weight"] = np.inf
    with pytest.raises(schema.SchemaValidationError) as err:
        schema.validate(df)
    assert "column 'weight'" in str(err.value) and "(rows 1, 3)" in str(err.value)
    assert "inf" in str(err.value)


def test_schema_rejects_a_repeated_respondent_within_a_source_and_year():
    with pytest.raises(schema.SchemaValidationError) as err:
        schema.validate(frame(["a", "b", "a"]))
    message = str(err.value)
    assert "column 'respondent_id'" in message and "(rows 0, 2)" in message
    assert "source + survey_year" in message and "'a'" in message
    schema.validate(frame(["a", "b", "a"], years=[2019, 2019, 2020]))  # another year: fine


def test_schema_allows_a_panel_id_across_waves_but_not_within_one():
    waves = pd.Series([0, 6, 0], dtype="Int64")
    schema.validate(frame(["a", "a", "b"], wave=waves))
    with pytest.raises(schema.SchemaValidationError, match=r"survey_year \+ wave.*rows 1, 2"):
        schema.validate(frame(["a", "b", "b"], wave=pd.Series([0, 6, 6], dtype="Int64")))
