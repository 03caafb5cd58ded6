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
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml
from site_fixtures import PLAN, fake_verdicts
from typer.testing import CliRunner

from analysis.build import runner
from analysis.build.fingerprint import manifest_entries
from analysis.build.interrupt import FIRST_MESSAGE, SECOND_MESSAGE
from analysis.build.workspace import LOCK_NAME, build_lock, write_texts_together
from analysis.cli import app
from analysis.data.help import load_help
from analysis.data.nhis.fixtures import write_fixture_csv
from analysis.models import figures

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
    assert first.exit_code == 0 and _claim_sources(project) == ["help", "nhis"]
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

_MASKS = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
    (re.compile(r'(class="[^"]*\bduration\b[^"]*">)[^<]*'), r"\1<duration>"),
)


def _masked_pages(reports: Path) -> dict[str, str]:
    pages = {}
    for page in sorted(reports.rglob("*.html")):
        text = page.read_text()
        for pattern, replacement in _MASKS:
            text = pattern.sub(replacement, text)
        pages[page.relative_to(reports).as_posix()] = text
    return pages


def test_identical_builds_give_identical_pages(project):
    fixtures = Path(PLAN).parent
    for name in ("passing", "findings_figure", "published_only"):
        (project.notebooks / f"{name}.ipynb").write_bytes((fixtures / f"{name}.ipynb").read_bytes())
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"] = [nb for nb in plan["notebooks"] if "fail" not in nb["name"]]
    project.plan_path.write_text(yaml.safe_dump(plan))
    assert project.build(claims_hook=fake_verdicts).exit_code == 0
    first = _masked_pages(project.reports)
    assert 'src="data:image/png;base64,' in first["synthetic/findings_figure.html"]
    shutil.rmtree(project.reports)
    assert project.build(claims_hook=fake_verdicts).exit_code == 0
    second = _masked_pages(project.reports)
    assert list(second) == list(first)
    for name, text in first.items():
        assert second[name] == text, f"{name} differs between two identical builds"


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
