"""`painanx run`: execution order, failures, incremental rebuilds and the claims hook.

Runs the small fixture notebooks in tests/fixtures/notebooks/ (a passing one, a failing one,
one depending on the failure, one writing a finding + table + seaborn figure, one using
published evidence only) into temporary report folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path

import nbformat
import pytest
import yaml
from site_fixtures import FIXTURES, PLAN, fake_verdicts
from typer.testing import CliRunner

from analysis.build import runner
from analysis.build.claims_step import run_claims_step
from analysis.build.fingerprint import manifest_entries
from analysis.build.plan import PlanError, load_plan
from analysis.claims.registry import VERDICTS
from analysis.cli import app


def _run(result, key):
    return next(r for r in result.runs if r.key == key)


def test_every_notebook_runs_once_per_applicable_source(full_build):
    statuses = {r.key: r.status for r in full_build.runs}
    assert statuses["synthetic/passing"] == "ran"
    assert statuses["help/passing"] == "ran"
    assert statuses["synthetic/findings_figure"] == "ran"
    assert statuses["help/findings_figure"] == "ran"
    assert statuses["published/published_only"] == "ran"
    assert statuses["help/failing"] == "not applicable"
    assert "only runs on synthetic" in _run(full_build, "help/failing").reason
    assert statuses["synthetic/published_only"] == "not applicable"
    # NHIS inputs absent: the source is not part of the default build
    assert not any(r.source == "nhis" for r in full_build.runs)
    reports = full_build.reports_dir
    for key in ("synthetic/passing", "help/findings_figure", "published/published_only"):
        assert (reports / f"{key}.html").is_file()
        assert (reports / f"{key}.ipynb").is_file()


def test_parameters_reach_the_notebook(full_build):
    nb = nbformat.read(full_build.reports_dir / "help" / "passing.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "data_source=help n=None seed=2019 years=None" in printed
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert str((full_build.reports_dir / "help").resolve()) in injected.source


def test_failing_notebook_is_reported_kept_and_does_not_stop_the_others(full_build):
    failed = _run(full_build, "synthetic/failing")
    assert failed.status == "failed"
    assert failed.error["cell"] == 4  # 1-based cell of the source notebook
    assert failed.error["ename"] == "ValueError"
    assert "deliberate failure" in failed.error["evalue"]
    assert full_build.exit_code == 1
    assert "synthetic/failing failed at cell 4" in full_build.summary()
    # the executed-so-far notebook is kept: it has the output of the cell before the failure
    kept = nbformat.read(full_build.reports_dir / "synthetic" / "failing.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in kept.cells for o in c.get("outputs", []))
    assert "before the failure" in outputs and "never reached" not in outputs
    # the dependent notebook is skipped with a reason; independent ones built
    after = _run(full_build, "synthetic/after_failing")
    assert after.status == "skipped" and "failing" in after.reason
    assert _run(full_build, "synthetic/findings_figure").status == "ran"


def test_index_shows_the_failure_with_cell_and_exception(full_build):
    html = (full_build.reports_dir / "index.html").read_text()
    assert "synthetic/failing" in html
    assert "cell 4" in html and "ValueError" in html and "deliberate failure" in html
    page = (full_build.reports_dir / "synthetic" / "failing.html").read_text()
    assert "This notebook failed" in page and 'id="failed-cell"' in page


def test_dependencies_run_first_and_independent_notebooks_in_parallel(full_build):
    passing = _run(full_build, "synthetic/passing")
    dependent = _run(full_build, "synthetic/findings_figure")
    assert dependent.started_at >= passing.finished_at
    other = _run(full_build, "help/passing")
    # with jobs=2 the two independent 'passing' runs overlap in time
    assert other.started_at < passing.finished_at and passing.started_at < other.finished_at


def test_claims_step_writes_verdicts_and_tables(full_build):
    reports = full_build.reports_dir
    claims = json.loads((reports / "claims.json").read_text())
    assert [c["claim_id"] for c in claims] == ["C1"]
    assert claims[0]["verdict"] in VERDICTS
    assert claims[0]["key_finding"]["source"] == "help"
    csv_text = (reports / "claims.csv").read_text().splitlines()
    assert csv_text[0].startswith("claim_id,sentence,verdict,key_label")
    assert (
        "partly supported" in csv_text[1] and "cross-sectional; residual confounding" in csv_text[1]
    )
    findings_csv = (reports / "findings.csv").read_text()
    assert findings_csv.count("fixture_ratio") == 2  # synthetic + help
    status_csv = (reports / "build_status.csv").read_text()
    assert "synthetic,failing,Failing fixture,failed" in status_csv
    html = (reports / "index.html").read_text()
    assert "verdict-partly-supported" in html
    assert 'href="help/findings_figure.html"' in html
    assert "1.50" in html and "1.20 to 1.90" in html  # key number with its CI


def test_table_csv_written_beside_the_page(full_build):
    csv_path = full_build.reports_dir / "synthetic" / "tables" / "fixture_summary.csv"
    assert csv_path.read_text().startswith("index,x")
    page = (full_build.reports_dir / "synthetic" / "findings_figure.html").read_text()
    assert 'href="tables/fixture_summary.csv"' in page


def test_manifest_is_valid_json_with_fingerprints(full_build):
    entries = manifest_entries(full_build.reports_dir)
    assert entries["synthetic/passing"]["status"] == "ok"
    assert len(entries["synthetic/passing"]["fingerprint"]) == 64
    assert entries["synthetic/failing"]["status"] == "failed"
    assert entries["synthetic/failing"]["fingerprint"] is None  # a failure always re-runs


# --------------------------------------------------------------------------- incremental


@pytest.fixture
def small_project(tmp_path):
    """A copy of two fixture notebooks, a plan using them, an input file and a code folder."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for name in ("passing", "published_only"):
        shutil.copy(FIXTURES / f"{name}.ipynb", nbdir)
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"] = [
        {"name": "passing", "sources": ["synthetic", "help"]},
        {"name": "published_only", "sources": ["published"]},
    ]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "help.csv").write_text("id,pain\n1,3\n")
    code = tmp_path / "code"
    (code / "resources").mkdir(parents=True)
    (code / "module.py").write_text("X = 1\n")

    def build(**kwargs):
        kwargs.setdefault("claims_hook", None)
        return runner.build(
            notebooks_dir=nbdir,
            reports_dir=tmp_path / "reports",
            plan_path=tmp_path / "plan.yaml",
            project_root=tmp_path,
            code_roots=[code],
            progress=False,
            echo=lambda msg: None,
            **kwargs,
        )

    return types.SimpleNamespace(root=tmp_path, nbdir=nbdir, code=code, build=build)


def _statuses(result):
    return {r.key: r.status for r in result.runs if r.status in ("ran", "cached", "failed")}


def test_rebuild_reruns_only_what_changed(small_project):
    p = small_project
    first = p.build()
    assert set(_statuses(first).values()) == {"ran"} and len(_statuses(first)) == 3
    assert first.exit_code == 0

    # nothing changed: nothing runs, the pages stay
    second = p.build()
    assert set(_statuses(second).values()) == {"cached"}

    # the notebook's source changed: it re-runs on every source, the other notebook does not
    nb = nbformat.read(p.nbdir / "passing.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('a new cell')"))
    nbformat.write(nb, p.nbdir / "passing.ipynb")
    third = p.build()
    assert _statuses(third) == {
        "synthetic/passing": "ran",
        "help/passing": "ran",
        "published/published_only": "cached",
    }

    # outputs alone (e.g. a notebook saved after running it in JupyterLab) change nothing
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="a new cell\n")]
    nbformat.write(nb, p.nbdir / "passing.ipynb")
    assert set(_statuses(p.build()).values()) == {"cached"}

    # the input data of one source changed: only that source's page re-runs
    (p.root / "data" / "help.csv").write_text("id,pain\n1,4\n")
    fourth = p.build()
    assert _statuses(fourth)["help/passing"] == "ran"
    assert _statuses(fourth)["synthetic/passing"] == "cached"

    # a parameter only the synthetic source accepts changed
    fifth = p.build(n=50)
    assert _statuses(fifth) == {
        "synthetic/passing": "ran",
        "help/passing": "cached",
        "published/published_only": "cached",
    }
    page = (p.root / "reports" / "synthetic" / "passing.html").read_text()
    assert "n=50" in page

    # the library code changed: everything re-runs
    (p.code / "module.py").write_text("X = 2\n")
    sixth = p.build(n=50)
    assert set(_statuses(sixth).values()) == {"ran"}


def test_deleted_page_force_and_only(small_project):
    p = small_project
    p.build()
    (p.root / "reports" / "help" / "passing.html").unlink()
    rebuilt = p.build()
    assert _statuses(rebuilt) == {
        "synthetic/passing": "cached",
        "help/passing": "ran",
        "published/published_only": "cached",
    }
    forced = p.build(force=True, only=["publ"])
    assert _statuses(forced) == {"published/published_only": "ran"}
    not_selected = [r.key for r in forced.runs if r.status == "not selected"]
    assert "synthetic/passing" in not_selected
    # pages from earlier builds stay listed on the index
    assert 'href="synthetic/passing.html"' in (p.root / "reports" / "index.html").read_text()


# Libraries a no-change `painanx run` must not import: loading them took most of its second.
HEAVY_LIBRARIES = (
    "pandas",
    "numpy",
    "scipy",
    "pandera",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "nbformat",
    "nbconvert",
    "papermill",
)
# `painanx run` in a new process that writes the modules it imported to $MODULES_FILE
RUN_AND_LIST_MODULES = (
    "import atexit, os, sys\n"
    "atexit.register(lambda: open(os.environ['MODULES_FILE'], 'w').write('\\n'.join(sys.modules)))\n"
    "from analysis.cli import main\n"
    "main()\n"
)


def test_a_no_change_run_imports_no_heavy_library(tmp_path):
    """After a build, `painanx run` with nothing out of date checks the fingerprints, judges the
    claims (the real rules, on a real finding) and writes the index without loading pandas,
    numpy, the statistics or the notebook stack."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    shutil.copy(FIXTURES / "findings_figure.ipynb", nbdir)
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"] = [{"name": "findings_figure", "sources": ["synthetic", "help"]}]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "help.csv").write_text("id,pain\n1,3\n")
    modules_file = tmp_path / "modules.txt"
    env = {**os.environ, "PAINANX_HOME": str(tmp_path), "MODULES_FILE": str(modules_file)}

    def painanx_run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", RUN_AND_LIST_MODULES, "run", "--quiet",
             "--plan", str(tmp_path / "plan.yaml"),
             "--notebooks-dir", str(nbdir),
             "--reports-dir", str(tmp_path / "reports")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    first = painanx_run()
    assert first.returncode == 0 and "2 ran" in first.stdout, first.stdout + first.stderr
    # the list is complete: the build that ran notebooks did load their stack
    assert {"papermill", "nbconvert"} <= set(modules_file.read_text().split())
    second = painanx_run()
    assert second.returncode == 0 and "0 ran, 2 up to date" in second.stdout, second.stderr
    modules = set(modules_file.read_text().split())
    # the no-change run did check, judge and write: the rules ran on the finding
    assert {"analysis.build.runner", "analysis.claims.verdicts"} <= modules
    claims = json.loads((tmp_path / "reports" / "claims.json").read_text())
    assert any(c["claim_id"] == "C1" and c["verdict"] for c in claims)
    loaded = sorted({m.split(".")[0] for m in modules} & set(HEAVY_LIBRARIES))
    assert not loaded, f"a no-change `painanx run` imported {loaded}"


def test_pending_verdicts_group_findings_by_claim(tmp_path):
    result = runner.build(
        notebooks_dir=FIXTURES,
        reports_dir=tmp_path / "reports",
        plan_path=PLAN,
        project_root=tmp_path,
        sources=["synthetic"],
        only=["findings_figure"],
        claims_hook=None,
        progress=False,
        echo=lambda msg: None,
    )
    assert result.exit_code == 0 and not result.claims_evaluated
    claims = json.loads((tmp_path / "reports" / "claims.json").read_text())
    assert claims == [
        {
            "claim_id": "C1",
            "sentence": "",
            "verdict": None,
            "key_finding": None,
            "sources": ["synthetic"],
            "caveats": [],
            "notebook": None,
            "pending": True,
        }
    ]
    html = (tmp_path / "reports" / "index.html").read_text()
    assert "verdict pending" in html and "Fixture ratio (PR)" in html
    assert "(validation only)" in html


def test_bad_verdicts_fail_the_claims_step(tmp_path):
    reports = _with_findings(tmp_path / "reports")
    files = [reports / "help" / "findings" / "nb.json"]
    outcome = run_claims_step(
        reports, files, lambda findings: [{"claim_id": "C1", "verdict": "probably"}]
    )
    assert outcome.evaluated is False
    assert "missing keys" in outcome.error
    outcome = run_claims_step(reports, files, fake_verdicts)
    assert outcome.evaluated and outcome.verdicts[0]["verdict"] == "partly supported"


def _with_findings(reports: Path) -> Path:
    from analysis.core.findings import Finding, write_findings

    write_findings(
        [
            Finding("C1", "x", "X ratio", "help", 2.0, 1.5, 2.5, "odds ratio", 1.0),
            Finding("C1", "x", "X ratio", "synthetic", 2.0, 1.5, 2.5, "odds ratio", 1.0),
        ],
        reports / "help" / "findings" / "nb.json",
    )
    return reports


def test_requested_source_without_inputs_is_an_error(tmp_path):
    result = runner.build(
        notebooks_dir=FIXTURES,
        reports_dir=tmp_path / "reports",
        plan_path=PLAN,
        project_root=tmp_path,
        sources=["nhis"],
        claims_hook=None,
        progress=False,
        echo=lambda msg: None,
    )
    assert result.exit_code == 1
    assert "fetch them with the NHIS command" in result.errors[0]
    assert _run(result, "nhis/passing").status == "skipped"
    html = (tmp_path / "reports" / "index.html").read_text()
    assert "fetch them with the NHIS command" in html


def test_nhis_pages_appear_when_its_files_exist(tmp_path):
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    (processed / "nhis_adult_2019.parquet").write_bytes(b"fixture")
    (processed / "nhis_adult_2022.parquet").write_bytes(b"fixture 2")
    result = runner.build(
        notebooks_dir=FIXTURES,
        reports_dir=tmp_path / "reports",
        plan_path=PLAN,
        project_root=tmp_path,
        only=["passing"],
        years=[2022],
        claims_hook=None,
        progress=False,
        echo=lambda msg: None,
    )
    assert _run(result, "nhis/passing").status == "ran"
    page = (tmp_path / "reports" / "nhis" / "passing.html").read_text()
    assert "data/processed/nhis_adult_2022.parquet" in page
    assert "nhis_adult_2019" not in page  # only the requested year is an input
    assert "years=[2022]" in page


def test_plan_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "plan.yaml"
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"][0]["depends_on"] = ["nope"]
    bad.write_text(yaml.safe_dump(plan))
    with pytest.raises(
        PlanError, match=r"plan\.yaml.*'passing' depends on unknown notebook 'nope'"
    ):
        load_plan(bad)
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"][0]["depends_on"] = ["findings_figure"]  # findings_figure depends on passing
    bad.write_text(yaml.safe_dump(plan))
    with pytest.raises(PlanError, match="dependency cycle"):
        load_plan(bad)
    plan = yaml.safe_load(PLAN.read_text())
    plan["notebooks"][0]["sources"] = ["synthetic", "mars"]
    bad.write_text(yaml.safe_dump(plan))
    with pytest.raises(PlanError, match="unknown source 'mars'"):
        load_plan(bad)


def test_unlisted_notebook_runs_with_a_warning(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    shutil.copy(FIXTURES / "passing.ipynb", nbdir / "99_extra.ipynb")
    plan = load_plan(PLAN, nbdir)
    extra = plan.notebook("99_extra")
    assert extra.sources == ("synthetic", "help", "nhis") and not extra.declared
    assert any("99_extra.ipynb is not listed" in w for w in plan.warnings)


def test_package_plan_declares_the_project_notebooks():
    plan = load_plan()
    names = [nb.name for nb in plan.notebooks]
    assert names[0] == "01_data_overview"
    assert plan.notebook("06_treatment_evidence").sources == ("published",)
    assert plan.sources["synthetic"].synthetic and not plan.sources["help"].synthetic
    assert plan.sources["nhis"].default == "when_available"


def test_cli_reports_failure_and_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINANX_HOME", str(tmp_path))
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--notebooks-dir", str(FIXTURES),
            "--reports-dir", str(tmp_path / "reports"),
            "--plan", str(PLAN),
            "--data", "synthetic",
            "--only", "failing",
            "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "synthetic/failing failed at cell 4 (In [4]): ValueError" in result.output
    assert (tmp_path / "reports" / "index.html").is_file()


def test_cli_rejects_unknown_notebook_and_bad_years(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "--plan", str(PLAN), "--reports-dir", str(tmp_path), "--only", "zzz"]
    )
    assert result.exit_code == 2 and "matches no notebook" in result.output
    result = CliRunner().invoke(app, ["run", "--years", "2019-20x"])
    assert result.exit_code == 2 and "not a year" in result.output


def test_parse_years():
    from analysis.cli.run_commands import parse_years

    assert parse_years(["2019,2022", "2020-2021"]) == [2019, 2020, 2021, 2022]
    assert parse_years(None) is None


def _synth_missing() -> str | None:
    try:
        import analysis.data.synthetic.world  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "analysis.data.synthetic.world":
            return "analysis.data.synthetic.world (the synthetic world, issue 2) is not in this checkout yet"
        raise
    return None


@pytest.mark.slow
@pytest.mark.skipif(_synth_missing() is not None, reason=str(_synth_missing()))
def test_data_overview_notebook_builds_on_the_synthetic_world(tmp_path):
    result = runner.build(
        reports_dir=tmp_path / "reports",
        sources=["synthetic"],
        only=["01_data_overview"],
        n=2000,
        claims_hook=None,
        progress=False,
        echo=lambda msg: None,
    )
    run = _run(result, "synthetic/01_data_overview")
    assert run.status == "ran", run.describe_error()
    out = tmp_path / "reports" / "synthetic"
    for table in ("01_sample", "01_weights", "01_missingness"):
        assert (out / "tables" / f"{table}.csv").is_file()
    page = (out / "01_data_overview.html").read_text()
    assert "Synthetic data: validates the pipeline, not evidence" in page
    assert 'alt="Age of respondents (synthetic' in page


def test_a_notebooks_declared_inputs_trigger_its_rebuild(small_project):
    """notebooks.yaml `inputs` (e.g. 07's simulation results): a changed file re-runs it alone."""
    p = small_project
    plan = yaml.safe_load((p.root / "plan.yaml").read_text())
    plan["notebooks"][1]["inputs"] = ["results/*.csv"]
    (p.root / "plan.yaml").write_text(yaml.safe_dump(plan))
    (p.root / "results").mkdir()
    (p.root / "results" / "run.csv").write_text("a\n1\n")
    first = p.build()
    assert first.exit_code == 0
    assert set(_statuses(p.build()).values()) == {"cached"}
    (p.root / "results" / "run.csv").write_text("a\n2\n")
    again = _statuses(p.build())
    assert again == {
        "synthetic/passing": "cached",
        "help/passing": "cached",
        "published/published_only": "ran",
    }
    # the page's provenance lists the input with its checksum
    page = (p.root / "reports" / "published" / "published_only.html").read_text()
    assert "results/run.csv" in page


def test_the_format_checkers_the_build_skips_are_unused_by_nbformat():
    """`painanx run` keeps jsonschema from building rfc3987-syntax's grammars (0.7 s): safe
    only while nbformat, the build's jsonschema user, asks for no "format" in its schemas.
    After the skip, nbformat still validates (and rejects) notebooks."""

    def format_keywords(node) -> list[str]:  # "format": "<name>" (a property named format is not)
        if isinstance(node, list):
            return [f for item in node for f in format_keywords(item)]
        if not isinstance(node, dict):
            return []
        own = [node["format"]] if isinstance(node.get("format"), str) else []
        return own + [f for value in node.values() for f in format_keywords(value)]

    schemas = sorted(Path(nbformat.__file__).parent.glob("v*/*.schema.json"))
    assert len(schemas) > 5
    for schema in schemas:
        assert format_keywords(json.loads(schema.read_text(encoding="utf-8"))) == [], schema.name
    code = (
        "import sys\n"
        "from analysis.build.execute import skip_unused_dev_tools\n"
        "skip_unused_dev_tools()\n"
        "import nbformat\n"
        "nbformat.validate(nbformat.v4.new_notebook())\n"
        "bad = nbformat.v4.new_notebook(); bad.cells = [{'cell_type': 'nonsense'}]\n"
        "try:\n"
        "    nbformat.validate(bad)\n"
        "except nbformat.ValidationError:\n"
        "    print('rejected', sys.modules.get('rfc3987_syntax'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "rejected None\n"


def test_a_notebook_holds_a_job_slot_while_it_runs_and_exports_after_letting_go(monkeypatch):
    """Pages are exported outside the build's job slots, so the next notebook runs meanwhile;
    one still waiting for a slot when the build is stopped does not start."""
    from analysis.build import execute

    slots = threading.Semaphore(1)
    held = {}

    def run(task, *args):
        held["while running"] = not slots.acquire(blocking=False)
        return "notebook", None, 0.0

    def export(task, nb, error, started):
        free = slots.acquire(blocking=False)
        if free:
            slots.release()
        held["while exporting"] = not free

    monkeypatch.setattr(execute, "_run", run)
    monkeypatch.setattr(execute, "_export", export)
    task = types.SimpleNamespace(run=types.SimpleNamespace(status=None, reason=None))
    options = dict(notebooks_dir=Path("."), kernel_name="python3", slots=slots)
    execute.execute_notebook(task, **options)
    assert held == {"while running": True, "while exporting": False}

    held.clear()
    stopped = types.SimpleNamespace(stopping=True, kernels_stopped=False)
    execute.execute_notebook(task, stop=stopped, **options)
    assert held == {} and task.run.status == runner.INTERRUPTED
    assert task.run.reason.startswith("not started")


def test_kernels_of_painanx_run_load_no_hypothesis_plugins():
    """pandera imports hypothesis wherever it is installed, and hypothesis then runs its
    plugins' hooks (trio's, in the dev environment): `painanx run` sets HYPOTHESIS_NO_PLUGINS
    for its kernels, so none runs."""
    code = (
        "import os, sys\n"
        "from analysis.build.execute import skip_unused_dev_tools\n"
        "if sys.argv[1] == 'skip':\n"
        "    skip_unused_dev_tools()\n"
        "    os.execv(sys.executable, [sys.executable, '-c', {probe!r}])  # as a kernel, its child\n"
        "exec({probe!r})\n"
    )
    probe = (
        "import importlib.metadata, sys\n"
        "import pandera.backends.pandas.builtin_checks\n"
        "plugins = [e.value for e in importlib.metadata.entry_points(group='hypothesis')]\n"
        "print(bool(plugins), sorted(m for m in sys.modules if m.split('.')[0] == 'trio')[:1])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_NO_PLUGINS"}

    def run(mode: str) -> str:
        args = [sys.executable, "-c", code.format(probe=probe), mode]
        return subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout

    assert run("skip") in ("True []\n", "False []\n")
    if run("skip") == "True []\n":  # a plugin is installed: without the skip, it runs
        assert run("no-skip") != "True []\n"
