"""NHIS fetch against a local HTTP server on 127.0.0.1: success, integrity and failure modes.

In every failure case the cache must be exactly as before (no partial or temporary files).
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.data.nhis import fetch as nhis_fetch
from analysis.data.nhis.fetch import (
    ChecksumMismatchError,
    HostNotAllowedError,
    NHISFetchError,
    Registry,
    UnsafeArchiveError,
    fetch_nhis_year,
    nhis_registry,
)
from analysis.data.nhis.fixtures import write_fixture_zip
from analysis.data.nhis.prepare import prepare_nhis, prepare_year


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        entry = self.server.routes.get(self.path)
        if entry is None:
            self.send_error(404, "Not Found")
            return
        body, mode = entry
        self.server.hits.append(self.path)
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", body.decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.hits = {}, []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/nhis"
    finally:
        httpd.shutdown()
        httpd.server_close()


def archive_bytes(year: int, tmp_path: Path, **kwargs) -> bytes:
    path = write_fixture_zip(year, tmp_path / f"src{year}.zip", n=30, seed=year, **kwargs)
    return path.read_bytes()


def registry(base_url: str, year: int, sha256: str | None, size: int | None = None) -> Registry:
    return Registry(
        base_url=base_url,
        env_var="PAINANX_TEST_NO_SUCH_VAR",
        lock_file="unused",
        archives={year: {"sha256": sha256, "bytes": size, "source": None}},
    )


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    return folder, tmp_path / "lock.json"


def fetch(year, cache, base, reg, **kwargs):
    folder, lock = cache
    return fetch_nhis_year(
        year,
        cache_dir=folder,
        lock_path=lock,
        base_url=base,
        registry=reg,
        progress=False,
        timeout=(5.0, 5.0),
        **kwargs,
    )


def test_registry_has_every_year_and_https_default():
    reg = nhis_registry()
    assert reg.base_url.startswith("https://ftp.cdc.gov/")
    assert set(reg.archives) == {2017, 2019, 2020, 2021, 2022, 2023, 2024}
    for entry in reg.archives.values():
        assert entry["sha256"] is None or len(entry["sha256"]) == 64
        assert entry["source"] in reg.sources


def test_success_with_known_checksum(server, cache, tmp_path):
    httpd, base = server
    body = archive_bytes(2019, tmp_path)
    httpd.routes["/nhis/2019/adult19csv.zip"] = (body, "ok")
    reg = registry(base, 2019, hashlib.sha256(body).hexdigest(), len(body))
    result = fetch(2019, cache, base, reg)
    folder, lock = cache
    assert files_under(folder) == ["2019", "2019/adult19.csv", "2019/adult19csv.zip"]
    assert result.archive_path.read_bytes() == body
    assert result.checksum_source == "registry" and not result.reused
    # the registry knew the archive's checksum; the lock records the extracted CSV's
    recorded = json.loads(lock.read_text())["2019"]
    assert recorded["member"] == "adult19.csv"
    assert recorded["member_sha256"] == hashlib.sha256(result.csv_path.read_bytes()).hexdigest()
    frame = prepare_year(2019, result.csv_path, write=False).frame
    assert len(frame) == 30
    # second run: verified from the cache, no download (the route is gone)
    httpd.routes.clear()
    again = fetch(2019, cache, base, reg)
    assert again.reused and again.sha256 == result.sha256
    assert "already cached" in again.summary()


def test_first_download_records_checksum_then_verifies(server, cache, tmp_path):
    httpd, base = server
    body = archive_bytes(2023, tmp_path)
    httpd.routes["/nhis/2023/adult23csv.zip"] = (body, "ok")
    reg = registry(base, 2023, None)
    result = fetch(2023, cache, base, reg)
    folder, lock = cache
    assert result.checksum_source.startswith("recorded")
    recorded = json.loads(lock.read_text())["2023"]
    assert recorded["sha256"] == hashlib.sha256(body).hexdigest() and recorded["bytes"] == len(body)
    # a later download with different bytes is refused by the lock, and the cache is untouched
    before = {p: (folder / p).read_bytes() for p in files_under(folder) if (folder / p).is_file()}
    (folder / "2023" / "adult23csv.zip").write_bytes(b"stale")  # force a re-download
    httpd.routes["/nhis/2023/adult23csv.zip"] = (body[:-1] + b"x", "ok")
    with pytest.raises(ChecksumMismatchError, match="lock file"):
        fetch(2023, cache, base, reg)
    assert (folder / "2023" / "adult23.csv").read_bytes() == before["2023/adult23.csv"]
    assert files_under(folder) == ["2023", "2023/adult23.csv", "2023/adult23csv.zip"]


def test_checksum_mismatch_caches_nothing(server, cache, tmp_path):
    httpd, base = server
    body = archive_bytes(2021, tmp_path)
    httpd.routes["/nhis/2021/adult21csv.zip"] = (body, "ok")
    reg = registry(base, 2021, "0" * 64)
    with pytest.raises(ChecksumMismatchError, match="sha256 of .* expects 0000"):
        fetch(2021, cache, base, reg)
    assert files_under(cache[0]) == [] and not cache[1].exists()


def test_size_mismatch_caches_nothing(server, cache, tmp_path):
    httpd, base = server
    body = archive_bytes(2021, tmp_path)
    httpd.routes["/nhis/2021/adult21csv.zip"] = (body, "ok")
    reg = registry(base, 2021, hashlib.sha256(body).hexdigest(), len(body) + 1)
    with pytest.raises(ChecksumMismatchError, match="bytes"):
        fetch(2021, cache, base, reg)
    assert files_under(cache[0]) == []


def test_truncated_transfer_caches_nothing(server, cache, tmp_path):
    httpd, base = server
    body = archive_bytes(2020, tmp_path)
    httpd.routes["/nhis/2020/adult20csv.zip"] = (body, "truncate")
    with pytest.raises(NHISFetchError, match="interrupted|truncated"):
        fetch(2020, cache, base, registry(base, 2020, None))
    assert files_under(cache[0]) == [] and not cache[1].exists()


def test_http_404_caches_nothing(server, cache):
    _, base = server
    with pytest.raises(NHISFetchError, match="HTTP 404") as info:
        fetch(2022, cache, base, registry(base, 2022, None))
    assert "--from-file" in str(info.value)
    assert files_under(cache[0]) == []


@pytest.mark.parametrize(
    "member, why",
    [
        ("../evil.txt", "path traversal"),
        ("/tmp/evil.txt", "absolute path"),
        ("link", "symbolic link"),
    ],
)
def test_malicious_archive_is_refused(server, cache, tmp_path, member, why):
    httpd, base = server
    fixture = write_fixture_zip(2019, tmp_path / "ok.zip", n=10)
    buffer = io.BytesIO()
    with zipfile.ZipFile(fixture) as good, zipfile.ZipFile(buffer, "w") as bad:
        for info in good.infolist():
            bad.writestr(info, good.read(info))
        evil = zipfile.ZipInfo(member)
        if why == "symbolic link":
            evil.external_attr = (stat.S_IFLNK | 0o777) << 16
            bad.writestr(evil, "/etc/passwd")
        else:
            bad.writestr(evil, b"pwned")
    body = buffer.getvalue()
    httpd.routes["/nhis/2019/adult19csv.zip"] = (body, "ok")
    with pytest.raises(UnsafeArchiveError, match=why):
        fetch(2019, cache, base, registry(base, 2019, hashlib.sha256(body).hexdigest()))
    assert files_under(cache[0]) == [] and not cache[1].exists()
    assert not (tmp_path / "evil.txt").exists() and not (cache[0].parent / "evil.txt").exists()


def test_archive_without_the_csv_or_not_a_zip(server, cache, tmp_path):
    httpd, base = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "no data here")
    httpd.routes["/nhis/2024/adult24csv.zip"] = (buffer.getvalue(), "ok")
    with pytest.raises(UnsafeArchiveError, match="adult24.csv"):
        fetch(2024, cache, base, registry(base, 2024, None))
    httpd.routes["/nhis/2024/adult24csv.zip"] = (b"<html>moved</html>", "ok")
    with pytest.raises(UnsafeArchiveError, match="not a zip"):
        fetch(2024, cache, base, registry(base, 2024, None))
    assert files_under(cache[0]) == []


def test_offline_error_explains_from_file(cache):
    base = "http://127.0.0.1:9/nhis"  # discard port: connection refused
    with pytest.raises(NHISFetchError) as info:
        fetch(2019, cache, base, registry(base, 2019, None))
    message = str(info.value)
    assert "offline" in message and "--from-file /path/to/adult19csv.zip" in message
    assert files_under(cache[0]) == []


def test_from_file_is_verified_like_a_download(cache, tmp_path):
    source = write_fixture_zip(2019, tmp_path / "downloads" / "adult19csv.zip", n=12)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(ChecksumMismatchError):
        fetch(2019, cache, "http://127.0.0.1:9", registry("x", 2019, "f" * 64), from_file=source)
    assert files_under(cache[0]) == []
    result = fetch(2019, cache, "http://127.0.0.1:9", registry("x", 2019, digest), from_file=source)
    assert result.csv_path.exists() and result.sha256 == digest
    assert len(pd.read_csv(result.csv_path)) == 12
    with pytest.raises(NHISFetchError, match="no such file"):
        fetch(2019, cache, "x", registry("x", 2019, digest), from_file=tmp_path / "nope.zip")


def test_base_url_from_environment(monkeypatch):
    from analysis.data.nhis.fetch import archive_url

    monkeypatch.setenv(nhis_registry().env_var, "http://127.0.0.1:8000/mirror/")
    assert archive_url(2021) == "http://127.0.0.1:8000/mirror/2021/adult21csv.zip"
    assert archive_url(2021, "http://other") == "http://other/2021/adult21csv.zip"
    monkeypatch.delenv(nhis_registry().env_var)
    assert archive_url(2021).startswith(
        "https://ftp.cdc.gov/pub/Health_Statistics/NCHS/Datasets/NHIS/2021/"
    )


# ---- the extracted CSV is checked on reuse; downloads reach allowed hosts only -------------


def fetched_2019(server, cache, tmp_path):
    """A verified fetch of a 2019 fixture; returns (result, registry, archive bytes, CSV bytes)."""
    httpd, base = server
    body = archive_bytes(2019, tmp_path)
    httpd.routes["/nhis/2019/adult19csv.zip"] = (body, "ok")
    reg = registry(base, 2019, hashlib.sha256(body).hexdigest())
    result = fetch(2019, cache, base, reg)
    httpd.routes.clear()  # from here on, nothing can be downloaded again
    return result, reg, body, result.csv_path.read_bytes()


def test_fetch_reextracts_a_tampered_csv_beside_its_verified_archive(server, cache, tmp_path):
    result, reg, body, csv = fetched_2019(server, cache, tmp_path)
    lock_before = cache[1].read_text()
    result.csv_path.write_bytes(csv.replace(b"\n", b"\n9", 1))  # one value changed
    again = fetch(2019, cache, server[1], reg)
    assert again.reused and again.reextracted and "re-extracted" in again.summary()
    assert result.csv_path.read_bytes() == csv and result.archive_path.read_bytes() == body
    assert files_under(cache[0]) == ["2019", "2019/adult19.csv", "2019/adult19csv.zip"]
    assert (
        json.loads(cache[1].read_text())["2019"]["member_sha256"]
        == (json.loads(lock_before)["2019"]["member_sha256"])
    )
    # untouched: reused as it is, nothing re-extracted
    assert not fetch(2019, cache, server[1], reg).reextracted


def test_prepare_reextracts_or_refuses_a_tampered_csv(server, cache, tmp_path, monkeypatch):
    result, reg, body, csv = fetched_2019(server, cache, tmp_path)
    monkeypatch.setattr(nhis_fetch, "nhis_registry", lambda: reg)
    out = tmp_path / "processed"
    result.csv_path.write_bytes(csv.replace(b"\n", b"\n9", 1))
    (done,), _ = prepare_nhis([2019], raw_dirs=[cache[0]], out_dir=out, lock_path=cache[1])
    assert result.csv_path.read_bytes() == csv  # re-extracted before it was read
    assert len(done.frame) == 30 and done.path.is_file()
    # no verified archive left to re-extract from: refused, the CSV and the output untouched
    written = done.path.read_bytes()
    result.archive_path.unlink()
    tampered = csv.replace(b"\n", b"\n9", 1)
    result.csv_path.write_bytes(tampered)
    with pytest.raises(NHISFetchError, match=r"adult19\.csv: sha256 .* recorded in .*lock"):
        prepare_nhis([2019], raw_dirs=[cache[0]], out_dir=out, lock_path=cache[1])
    assert result.csv_path.read_bytes() == tampered and done.path.read_bytes() == written
    assert files_under(out) == ["nhis_adult_2019.parquet"]


def test_prepare_records_the_csv_of_a_cache_fetched_before_it_was_recorded(
    server, cache, tmp_path, monkeypatch
):
    result, reg, _, csv = fetched_2019(server, cache, tmp_path)
    monkeypatch.setattr(nhis_fetch, "nhis_registry", lambda: reg)
    old = json.loads(cache[1].read_text())
    del old["2019"]["member_sha256"]  # a lock written before members were recorded
    cache[1].write_text(json.dumps(old))
    result.csv_path.write_bytes(b"tampered")
    prepare_nhis([2019], raw_dirs=[cache[0]], out_dir=tmp_path / "out", lock_path=cache[1])
    assert result.csv_path.read_bytes() == csv
    recorded = json.loads(cache[1].read_text())["2019"]["member_sha256"]
    assert recorded == hashlib.sha256(csv).hexdigest()


def test_a_changed_known_copy_is_refused(tmp_path):
    copy = tmp_path / "shared" / "nhis" / "2017" / "nhis2017_adult_merged.csv.gz"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"not the shared 2017 file")
    out = tmp_path / "out"
    with pytest.raises(ChecksumMismatchError, match="nhis2017_adult_merged.csv.gz: sha256"):
        prepare_nhis([2017], raw_dirs=[tmp_path / "shared"], out_dir=out, progress=False)
    assert files_under(out) == [] and copy.read_bytes() == b"not the shared 2017 file"


def test_a_redirect_to_another_host_is_refused(server, cache, tmp_path):
    httpd, base = server
    port = httpd.server_address[1]
    body = archive_bytes(2019, tmp_path)
    httpd.routes["/nhis/2019/adult19csv.zip"] = (
        f"http://localhost:{port}/x.zip".encode(),
        "redirect",
    )
    httpd.routes["/x.zip"] = (body, "ok")
    reg = registry(base, 2019, hashlib.sha256(body).hexdigest())
    with pytest.raises(HostNotAllowedError, match="host 'localhost' is not allowed") as info:
        fetch(2019, cache, base, reg)
    assert len(str(info.value).splitlines()) == 1
    assert httpd.hits == ["/nhis/2019/adult19csv.zip"]  # the other host was never asked
    assert files_under(cache[0]) == [] and not cache[1].exists()
    # a redirect on the same host is followed
    httpd.routes["/nhis/2019/adult19csv.zip"] = (b"/x.zip", "redirect")
    assert fetch(2019, cache, base, reg).archive_path.read_bytes() == body


def test_a_host_outside_the_allow_list_needs_the_explicit_option(monkeypatch):
    reg = Registry(
        "https://ftp.cdc.gov/nhis", "PAINANX_TEST_NO_SUCH_VAR", "unused", {}, {}, ("ftp.cdc.gov",)
    )
    assert reg.hosts() == ("ftp.cdc.gov",)
    with pytest.raises(HostNotAllowedError, match="'mirror.example' is not allowed"):
        nhis_fetch.check_download_url("https://mirror.example/a.zip", reg.hosts())
    assert nhis_fetch.base_url_override(None, reg) is None
    monkeypatch.setenv("PAINANX_TEST_NO_SUCH_VAR", "https://mirror.example")
    assert (
        nhis_fetch.base_url_override(None, reg) == "PAINANX_TEST_NO_SUCH_VAR=https://mirror.example"
    )


def test_cli_refuses_file_urls_and_notes_an_override(server, tmp_path, monkeypatch):
    httpd, base = server
    body = archive_bytes(2019, tmp_path)
    httpd.routes["/nhis/2019/adult19csv.zip"] = (body, "ok")
    monkeypatch.setattr(
        nhis_fetch, "nhis_registry", lambda: registry("https://ftp.cdc.gov/x", 2019, None)
    )
    monkeypatch.setenv("PAINANX_HOME", str(tmp_path / "project"))
    raw = tmp_path / "project" / "data" / "raw"
    fetch_args = ["data", "fetch", "nhis", "--years", "2019", "--no-progress", "--base-url"]
    result = CliRunner().invoke(app, [*fetch_args, "file:///tmp"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "file:// URLs are not fetched" in result.output and "--from-file" in result.output
    assert files_under(raw) == []
    result = CliRunner().invoke(app, [*fetch_args, base])
    assert result.exit_code == 0, result.output
    assert f"note: downloading from {base} (--base-url {base})" in result.output
    assert (raw / "nhis" / "2019" / "adult19csv.zip").read_bytes() == body
