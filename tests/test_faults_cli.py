"""Faults of the command line and its outputs: nothing stale, nothing half-written.

Each case interrupts or breaks a command (an exception or Ctrl-C between the writes of files
that belong together, a folder where a file should go, a file where a folder should be, a
refused rename, a lost connection) and checks that the files there before are intact, that
no temporary file is left, and that the user reads one line with exit code 1 (``--debug``
shows the traceback). The schema's rules on infinite weights and repeated ids are here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests
from typer.testing import CliRunner

import analysis.claims.verdicts
import analysis.cli.run_commands
import analysis.core.io
import analysis.data.help
import analysis.data.nhis.fetch
import analysis.data.nhis.prepare
import analysis.simulation.study
from analysis.cli import app
from analysis.core.io import atomic_paths, check_writable
from analysis.data import schema
from analysis.data import synthetic as synth
from analysis.models import synthetic_truth
from analysis.simulation.study import SimulationResult
from analysis.simulation.summaries import load_spec

runner = CliRunner()


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
    result = runner.invoke(app, synth_args(old_pair / "synthetic.parquet"))
    assert result.exit_code != 0
    assert written and written[0].n == 300  # the new sample was written before the interruption
    assert contents(old_pair) == before  # old pair intact, no temporary file left


def test_synth_rename_refused_midway_keeps_the_old_pair(old_pair, monkeypatch):
    """The sample is renamed into place, then the truth's rename fails: the sample is put back."""
    before = contents(old_pair)
    refuse_rename_onto(monkeypatch, "synthetic.truth.json")
    result = runner.invoke(app, synth_args(old_pair / "synthetic.parquet"))
    one_line_error(result, "synthetic.truth.json", "Permission denied")
    assert contents(old_pair) == before


def test_synth_replaces_both_files_with_a_matching_pair(old_pair):
    result = runner.invoke(app, synth_args(old_pair / "synthetic.parquet"))
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
    result = runner.invoke(app, synth_args(tmp_path / "d.parquet"))
    line = one_line_error(result, str(tmp_path / folder))
    assert "is a folder" in line and "give the path of a file" in line
    assert calls == []
    assert [p.name for p in tmp_path.iterdir()] == [folder]


def test_synth_below_a_file_fails_in_one_line_before_any_work(tmp_path, monkeypatch):
    """A path under a regular file cannot be written, even by root (unlike a chmod'ed folder)."""
    (tmp_path / "somefile").write_text("not a folder")
    calls = forbid(monkeypatch, synth, "generate_to_parquet")
    result = runner.invoke(app, synth_args(tmp_path / "somefile" / "out.parquet"))
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
    result = runner.invoke(app, synth_args(tmp_path / "out.parquet"))
    line = one_line_error(result, f"{tmp_path}: Read-only file system", "writable disk")
    assert "tmpk3x9q1" not in line  # the folder is named, not the probe's temporary file
    assert calls == []


def test_synth_bad_parameter_makes_no_folder(tmp_path):
    result = runner.invoke(
        app, synth_args(tmp_path / "new" / "s.parquet", "--set", "obesity_prevalence=2")
    )
    assert result.exit_code == 2 and "obesity_prevalence" in result.output
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    result = runner.invoke(app, ["--debug", *synth_args(tmp_path / "d.parquet")])
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
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "sim"), "--no-progress"])
    one_line_error(result, str(tmp_path / "sim"), "is a file")
    assert calls == []


# ------------------------------------------------------------------ the other commands --


def test_claims_pair_survives_a_refused_rename(tmp_path, monkeypatch):
    (tmp_path / "claims.json").write_text("[]  earlier verdicts\n")
    (tmp_path / "claims.csv").write_text("claim_id\nearlier\n")
    before = contents(tmp_path)
    refuse_rename_onto(monkeypatch, "claims.csv")
    result = runner.invoke(app, ["claims", "--reports", str(tmp_path)])
    one_line_error(result, "claims.csv", "Permission denied")
    assert contents(tmp_path) == before


def test_claims_into_a_folder_fails_in_one_line_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "claims.csv").mkdir()
    calls = forbid(monkeypatch, analysis.claims.verdicts, "evaluate_claims")
    result = runner.invoke(app, ["claims", "--reports", str(tmp_path)])
    one_line_error(result, "claims.csv", "is a folder")
    assert calls == []


def test_prepare_help_into_a_folder_fails_before_loading(tmp_path, monkeypatch):
    (tmp_path / "help.parquet").mkdir()
    calls = forbid(monkeypatch, analysis.data.help, "load_help")
    result = runner.invoke(
        app, ["data", "prepare", "help", "--out", str(tmp_path / "help.parquet")]
    )
    one_line_error(result, "help.parquet", "is a folder")
    assert calls == []


def test_prepare_nhis_into_a_file_fails_before_recoding(tmp_path, monkeypatch):
    (tmp_path / "processed").write_text("a file")
    calls = forbid(monkeypatch, analysis.data.nhis.prepare, "prepare_nhis")
    result = runner.invoke(
        app,
        ["data", "prepare", "nhis", "--years", "2019", "--out-dir", str(tmp_path / "processed")],
    )
    one_line_error(result, "processed", "is a file")
    assert calls == []


def test_fetch_nhis_into_a_file_fails_before_downloading(tmp_path, monkeypatch):
    (tmp_path / "raw").write_text("a file")
    calls = forbid(monkeypatch, analysis.data.nhis.fetch, "fetch_nhis_year")
    result = runner.invoke(
        app, ["data", "fetch", "nhis", "--years", "2019", "--cache-dir", str(tmp_path / "raw")]
    )
    one_line_error(result, "raw", "is a file")
    assert calls == []


def test_a_lost_connection_is_one_line_naming_the_url(tmp_path, monkeypatch):
    url = "https://ftp.cdc.gov/pub/Health_Statistics/NCHS/adult19csv.zip"

    def offline(*args, **kwargs):
        raise requests.ConnectionError("Max retries exceeded", request=requests.Request("GET", url))

    monkeypatch.setattr(analysis.data.nhis.fetch, "fetch_nhis_year", offline)
    result = runner.invoke(
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

    monkeypatch.setattr(analysis.cli.run_commands, "build", build)
    line = one_line_error(runner.invoke(app, ["run", "-q"]), "index.html")
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
