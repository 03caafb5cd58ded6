"""Notebooks whose source lacks a column they need (``needs`` in notebooks.yaml) are not run:
the build writes their findings (measured: false) and a one-line page without a kernel."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from analysis.build import runner
from analysis.build.fingerprint import manifest_entries
from analysis.build.not_measured import findings_function
from analysis.build.plan import PLAN_YAML, PlanError, load_plan
from analysis.build.results import error_outside_cells
from analysis.core import paths
from analysis.data import load
from analysis.data.registry import source_measures, source_specs
from analysis.data.schema import column_specs

MEDIATION, BENZO = "04_mediation", "05_benzodiazepines_in_surveys"
DESIGN = {name for name, spec in column_specs().items() if spec.group == "design"}
NOT_RUN = {f"help/{MEDIATION}", f"nhis/{MEDIATION}", f"nhis/{BENZO}"}  # in the default build
NOTICE_04 = "Not run: NHIS 2017 does not measure muscle tension, pain intensity or gad7 score"
NOTICE_05 = "Not run: NHIS 2017 does not measure benzodiazepine use or anxiety medication"


# --------------------------------------------------------------------------- the data layer


@pytest.mark.parametrize(
    "source, kwargs",
    [("synthetic", {"n": 500}), ("help", {}), ("nhis", {"years": [2017]})],
)
def test_a_sources_measures_are_its_loaded_frames_columns(source, kwargs):
    """Read from the codebook alone, they are what the loader gives (design columns aside)."""
    measured = source_measures(source_specs()[source], kwargs.get("years"))
    frame = load(source, **kwargs)
    assert measured - DESIGN == set(frame.columns) - DESIGN


def test_nhis_gains_anxiety_medication_in_2019_and_published_declares_none():
    nhis = source_specs()["nhis"]
    assert "anxiety_medication" not in source_measures(nhis, [2017])
    assert "anxiety_medication" in source_measures(nhis, [2019])
    assert "anxiety_medication" in source_measures(nhis, [2017, 2019])  # pooled: any year
    assert source_measures(source_specs()["published"]) is None


# --------------------------------------------------------------------------- notebooks.yaml


def _plan_with(tmp_path: Path, notebook: str, needs) -> Path:
    raw = yaml.safe_load(PLAN_YAML.read_text())
    entry = next(nb for nb in raw["notebooks"] if nb["name"] == notebook)
    entry["needs"] = needs
    path = tmp_path / "notebooks.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "needs, message",
    [
        (["muscle_tension"], r"needs must be a mapping with the keys \['columns', 'findings'\]"),
        (
            {"columns": ["muscle_tension", "tension"], "findings": "analysis.models.mediation:f"},
            r"needs\.columns: 'tension' is not a measure column of the tidy schema",
        ),
        (
            {"columns": ["weight"], "findings": "analysis.models.mediation:f"},
            r"needs\.columns: 'weight' is not a measure column",  # design: always there
        ),
        ({"columns": [], "findings": "m:f"}, r"needs\.columns must be a non-empty list"),
        (
            {"columns": [[]], "findings": "m:f"},
            r"needs\.columns: \[\] must be a column name or a list",
        ),
        (
            {"columns": ["muscle_tension"], "findings": "analysis.models.mediation"},
            r"needs\.findings must be 'module:function'",
        ),
    ],
)
def test_a_bad_needs_entry_names_the_file_the_notebook_and_the_key(tmp_path, needs, message):
    path = _plan_with(tmp_path, MEDIATION, needs)
    with pytest.raises(PlanError, match=rf"notebooks\.yaml: notebook '04_mediation': {message}"):
        load_plan(path)


def test_a_findings_function_that_does_not_exist_is_named(tmp_path):
    needs = {"columns": ["muscle_tension"], "findings": "analysis.models.mediation:nope"}
    path = _plan_with(tmp_path, MEDIATION, needs)
    spec = load_plan(path).notebook(MEDIATION)
    with pytest.raises(PlanError, match=r"notebooks\.yaml: notebook '04_mediation': needs\.find"):
        findings_function(spec, path)


def test_the_declared_findings_functions_exist():
    plan = load_plan()
    declared = [nb for nb in plan.notebooks if nb.needs]
    assert {nb.name for nb in declared} == {MEDIATION, BENZO}
    for nb in declared:
        assert callable(findings_function(nb, plan.path))


# --------------------------------------------------------------------------- the build


def _two_notebook_plan(tmp_path: Path, *, with_needs: bool) -> tuple[Path, Path]:
    """notebooks.yaml with 04 (HELP, NHIS) and 05 (NHIS) alone, and a folder holding them."""
    raw = yaml.safe_load(PLAN_YAML.read_text())
    entries = [nb for nb in raw["notebooks"] if nb["name"] in (MEDIATION, BENZO)]
    for nb in entries:
        nb.pop("depends_on")
        nb["sources"] = [s for s in nb["sources"] if s != "synthetic"]
        if not with_needs:
            nb.pop("needs")
    plan = tmp_path / f"plan_{'needs' if with_needs else 'plain'}.yaml"
    plan.write_text(yaml.safe_dump({"notebooks": entries}))
    nbdir = tmp_path / "nbs"
    if not nbdir.is_dir():
        nbdir.mkdir()
        for name in (MEDIATION, BENZO):
            shutil.copy(paths.notebooks_dir() / f"{name}.ipynb", nbdir)
    return plan, nbdir


@pytest.fixture
def no_kernels(monkeypatch):
    """Every notebook the build would run, by key; none runs (no kernel, no papermill)."""
    calls = []

    def fake_execute(task, **kwargs):
        calls.append(task.run.key)
        task.run.status = "failed"
        task.run.error = error_outside_cells("NoKernel", "this test starts no kernel")

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    return calls


def test_a_pair_whose_source_lacks_a_need_is_not_run_and_says_so(tmp_path, no_kernels):
    root = tmp_path / "project"
    (root / "data" / "nhis").mkdir(parents=True)
    (root / "data" / "nhis" / "nhis_adult_2017.parquet").write_bytes(b"never read")
    plan, nbdir = _two_notebook_plan(tmp_path, with_needs=True)
    reports = tmp_path / "reports"

    def build(**kwargs):
        return runner.build(
            notebooks_dir=nbdir,
            reports_dir=reports,
            plan_path=plan,
            project_root=root,
            sources=["help", "nhis"],
            claims_hook=None,
            progress=False,
            echo=lambda msg: None,
            **kwargs,
        )

    first = build()
    assert no_kernels == []
    statuses = {r.key: r.status for r in first.runs if r.status != "not applicable"}
    assert statuses == dict.fromkeys(NOT_RUN, "not measured")
    assert first.exit_code == 0
    for key in statuses:
        assert not (reports / f"{key}.ipynb").exists()
        findings = json.loads((reports / f"{key.replace('/', '/findings/')}.json").read_text())
        assert findings and not any(f["measured"] for f in findings)
    page = (reports / "nhis" / f"{BENZO}.html").read_text()
    assert NOTICE_05 + ", which this notebook needs." in page
    assert "data/nhis/nhis_adult_2017.parquet" in page  # the provenance of the data it lacks
    index = (reports / "index.html").read_text()
    assert NOTICE_04 in index and "not run: not measured" in index
    rows = {r["notebook"] + "@" + r["source"]: r for r in csv.DictReader(
        (reports / "build_status.csv").open())}  # fmt: skip
    assert rows[f"{BENZO}@nhis"]["status"] == "not measured"
    assert rows[f"{BENZO}@nhis"]["reason"].startswith(NOTICE_05)
    assert rows[f"{BENZO}@nhis"]["page"] == f"nhis/{BENZO}.html"
    assert "3 not run (not measured)" in first.summary()

    # nothing changed: up to date, still not run, the notice kept
    second = build()
    assert no_kernels == []
    again = next(r for r in second.runs if r.key == f"nhis/{MEDIATION}")
    assert again.status == "not measured" and again.reason.startswith(NOTICE_04) and again.current
    entry = manifest_entries(reports)[f"nhis/{BENZO}"]
    assert entry["status"] == "ok" and entry["fingerprint"] and entry["executed"] is None

    # the source gains the measure (NHIS 2019 asks about anxiety medication): 05 runs
    processed = root / "data" / "processed"
    processed.mkdir()
    (processed / "nhis_adult_2019.parquet").write_bytes(b"never read either")
    third = build(years=[2019])
    assert no_kernels == [f"nhis/{BENZO}"]
    assert next(r for r in third.runs if r.key == f"nhis/{MEDIATION}").status == "not measured"
    assert (
        "NHIS 2019 does not measure muscle tension"
        in (reports / "nhis" / f"{MEDIATION}.html").read_text()
    )


@pytest.mark.slow
def test_the_findings_written_without_a_kernel_are_the_notebooks(tmp_path):
    """The same notebooks run in kernels on the same sources write the same bytes."""
    out = {}
    for with_needs in (False, True):
        plan, nbdir = _two_notebook_plan(tmp_path, with_needs=with_needs)
        reports = tmp_path / f"reports_{with_needs}"
        result = runner.build(
            notebooks_dir=nbdir,
            reports_dir=reports,
            plan_path=plan,
            sources=["help", "nhis"],
            years=[2017],
            claims_hook=None,
            progress=False,
            echo=lambda msg: None,
        )
        assert result.exit_code == 0, result.summary()
        out[with_needs] = reports
        ran = {r.key for r in result.runs if r.status == "ran"}
        assert ran == (set() if with_needs else NOT_RUN)
    for key in NOT_RUN:
        key = key.replace("/", "/findings/")
        kernel = (out[False] / f"{key}.json").read_bytes()
        assert (out[True] / f"{key}.json").read_bytes() == kernel
