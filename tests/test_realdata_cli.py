"""`painanx data fetch|prepare ...` and `painanx data nhis-measures` end to end (local server)."""

from __future__ import annotations

import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from analysis.cli import app
from analysis.cli.realdata_commands import parse_years
from analysis.data.nhis import fetch as nhis_fetch
from analysis.data.nhis.fetch import Registry
from analysis.data.nhis.fixtures import write_fixture_zip

runner = CliRunner()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local mirror of the NCHS folder layout serving fixture archives for 2019 and 2020."""
    root = tmp_path / "mirror"
    for year in (2019, 2020):
        write_fixture_zip(year, root / str(year) / f"adult{year % 100}csv.zip", n=25, seed=year)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    # the registry's real NCHS checksums would (rightly) reject fixture archives
    monkeypatch.setattr(
        nhis_fetch,
        "nhis_registry",
        lambda: Registry(
            f"http://127.0.0.1:{httpd.server_address[1]}",
            "PAINANX_NHIS_BASE_URL",
            "data/nhis_sha256.lock.json",
            {},
            {},
        ),
    )
    monkeypatch.setenv("PAINANX_HOME", str(tmp_path / "project"))
    yield root
    httpd.shutdown()
    httpd.server_close()


def test_fetch_then_prepare_nhis(mirror, tmp_path):
    project = tmp_path / "project"
    result = runner.invoke(
        app, ["data", "fetch", "nhis", "--years", "2019", "2020", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "recorded in the lock file" in result.output
    expected = hashlib.sha256((mirror / "2019" / "adult19csv.zip").read_bytes()).hexdigest()
    assert expected in result.output
    assert (project / "data" / "raw" / "nhis" / "2020" / "adult20.csv").exists()
    assert (project / "data" / "nhis_sha256.lock.json").exists()

    again = runner.invoke(app, ["data", "fetch", "nhis", "--years", "2019", "--no-progress"])
    assert again.exit_code == 0 and "already cached" in again.output

    result = runner.invoke(
        app, ["data", "prepare", "nhis", "--years", "2019-2020", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    processed = project / "data" / "processed"
    pooled = pd.read_parquet(processed / "nhis_adult_pooled_2019_2020.parquet")
    assert len(pooled) == 50 and "dropped back_pain_severity" in result.output
    assert len(pd.read_parquet(processed / "nhis_adult_2019.parquet")) == 25


def test_fetch_errors_exit_nonzero_and_leave_nothing(mirror, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    result = runner.invoke(
        app, ["data", "fetch", "nhis", "--years", "2021", "--from-file", str(bad), "--no-progress"]
    )
    assert result.exit_code == 1 and "not a zip archive" in result.output
    assert not (tmp_path / "project" / "data" / "raw" / "nhis").exists()
    result = runner.invoke(app, ["data", "fetch", "nhis", "--years", "2022", "--no-progress"])
    assert result.exit_code == 1 and "HTTP 404" in result.output
    result = runner.invoke(
        app, ["data", "fetch", "nhis", "--years", "2019", "2020", "--from-file", str(bad)]
    )
    assert result.exit_code == 2 and "exactly one year" in result.output


def test_prepare_help_and_measures(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINANX_HOME", str(tmp_path))
    result = runner.invoke(app, ["data", "prepare", "help"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "data" / "processed" / "help.parquet")
    assert len(frame) == 1472 and "470 people" in result.output
    result = runner.invoke(app, ["data", "nhis-measures"])
    assert result.exit_code == 0 and "back_pain_severity" in result.output
    result = runner.invoke(app, ["data", "nhis-measures", "--year", "2024"])
    assert "chronic_pain" in result.output and "no pain block in the 2024 program" in result.output


def test_parse_years():
    assert parse_years(["2019", "2021-2022"]) == [2019, 2021, 2022]
    assert parse_years(["2019,2020"]) == [2019, 2020]
    assert parse_years(["all"]) == [2017, 2019, 2020, 2021, 2022, 2023, 2024]
    assert parse_years(["2017-2020"]) == [2017, 2019, 2020]  # no NHIS 2018 here
    with pytest.raises(typer.BadParameter, match="unsupported"):
        parse_years(["2018"])
    with pytest.raises(typer.BadParameter, match="at least one year"):
        parse_years([])
