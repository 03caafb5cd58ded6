"""Download, verify and safely unpack the NHIS Sample Adult CSV archives.

One call per year (`fetch_nhis_year`) streams ``{base_url}/{year}/adultYYcsv.zip`` into a
temporary file beside the cache (with a tqdm progress bar and timeouts), checks its size and
sha256 against the registry (``resources/nhis_registry.yaml``) or, where the registry does not
know the year, against the lock file written by the first download (trust on first use). Only a
verified archive whose members are all safe (no absolute paths, no ``..``, no symlinks) is
renamed into the cache, together with its CSV. Any failure leaves the cache as it was.

Offline machines: download the archive elsewhere and pass it with ``from_file`` (CLI:
``--from-file PATH``); it goes through the same checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml
from tqdm.auto import tqdm

from analysis.core import paths
from analysis.core.io import sha256_file, write_text_atomic
from analysis.data.nhis.codebook import nhis_codebook

__all__ = [
    "ChecksumMismatchError",
    "FetchResult",
    "NHISFetchError",
    "Registry",
    "UnsafeArchiveError",
    "archive_url",
    "check_archive",
    "default_cache_dir",
    "default_lock_path",
    "extract_member",
    "fetch_nhis",
    "fetch_nhis_year",
    "find_member",
    "nhis_registry",
    "resolve_base_url",
]

CHUNK = 1 << 16
MAX_MEMBER_BYTES = 4 * 1024**3  # a real adult CSV is ~30 MB; refuse zip bombs
DEFAULT_TIMEOUT = (15.0, 120.0)  # (connect, read) seconds


class NHISFetchError(RuntimeError):
    """Fetching an NHIS archive failed; nothing was added to the cache."""


class ChecksumMismatchError(NHISFetchError):
    """The archive's sha256 (or size) differs from the registry or the lock file."""


class UnsafeArchiveError(NHISFetchError):
    """The archive contains a member that could escape the cache directory (or no CSV)."""


@dataclass(frozen=True)
class Registry:
    base_url: str
    env_var: str
    lock_file: str
    archives: dict[int, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)

    def expected(self, year: int) -> dict[str, Any]:
        return self.archives.get(year, {"sha256": None, "bytes": None, "source": None})


@lru_cache(maxsize=1)
def nhis_registry() -> Registry:
    text = resources.files("analysis.resources").joinpath("nhis_registry.yaml").read_text()
    raw = yaml.safe_load(text)
    return Registry(
        base_url=raw["base_url"].rstrip("/"),
        env_var=raw["env_var"],
        lock_file=raw["lock_file"],
        archives={int(y): dict(v) for y, v in raw["archives"].items()},
        sources={k: " ".join(v.split()) for k, v in raw.get("sources", {}).items()},
    )


@dataclass
class FetchResult:
    """What one fetch did: where the verified files are and how they were verified."""

    year: int
    url: str
    archive_path: Path
    csv_path: Path
    sha256: str
    bytes: int
    checksum_source: str  # "registry" | "lock file" | "recorded now (first download)"
    reused: bool  # True: the cached archive already verified, nothing downloaded

    def summary(self) -> str:
        how = "already cached" if self.reused else "fetched"
        return (
            f"NHIS {self.year}: {how}, {self.bytes:,} bytes, sha256 {self.sha256} "
            f"({self.checksum_source}) -> {self.csv_path}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["archive_path"], out["csv_path"] = str(self.archive_path), str(self.csv_path)
        return out


# ---- locations -------------------------------------------------------------------------


def default_cache_dir() -> Path:
    return paths.raw_dir() / "nhis"


def default_lock_path() -> Path:
    return paths.project_root() / nhis_registry().lock_file


def resolve_base_url(base_url: str | None = None, registry: Registry | None = None) -> str:
    """Option, else the environment variable, else the NCHS location in the registry."""
    registry = registry or nhis_registry()
    chosen = base_url or os.environ.get(registry.env_var) or registry.base_url
    return chosen.rstrip("/")


def archive_url(year: int, base_url: str | None = None, registry: Registry | None = None) -> str:
    names = nhis_codebook().file_names(year)
    return f"{resolve_base_url(base_url, registry)}/{year}/{names['archive']}"


# ---- archive safety -----------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def check_archive(zf: zipfile.ZipFile, where: str) -> None:
    """Refuse archives with absolute paths, ``..`` components, symlinks or odd names."""
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        problem = None
        if "\x00" in name:
            problem = "a NUL byte in its name"
        elif name.startswith("/") or _DRIVE.match(name):
            problem = "an absolute path"
        elif any(part == ".." for part in name.split("/")):
            problem = "a '..' path component (path traversal)"
        elif stat.S_ISLNK(info.external_attr >> 16):
            problem = "a symbolic link"
        if problem:
            raise UnsafeArchiveError(
                f"{where}: refusing archive member {info.filename!r}: it has {problem}"
            )


def find_member(zf: zipfile.ZipFile, expected: str, where: str) -> zipfile.ZipInfo:
    """The expected CSV member (case-insensitive, at any folder depth, exactly one)."""
    matches = [
        i
        for i in zf.infolist()
        if not i.is_dir()
        and i.filename.replace("\\", "/").rsplit("/", 1)[-1].lower() == expected.lower()
    ]
    if len(matches) != 1:
        names = [i.filename for i in zf.infolist()][:10]
        raise UnsafeArchiveError(
            f"{where}: expected exactly one member named {expected!r}, found {len(matches)} "
            f"(members: {names})"
        )
    return matches[0]


def extract_member(archive: Path, member: str, target: Path, where: str | None = None) -> Path:
    """Check the whole archive, then write one member to ``target`` atomically.

    The member name is never used as a path, so nothing can be written outside ``target``.
    """
    where = where or str(archive)
    with zipfile.ZipFile(archive) as zf:
        check_archive(zf, where)
        info = find_member(zf, member, where)
        if info.file_size > MAX_MEMBER_BYTES:
            raise UnsafeArchiveError(
                f"{where}: member {info.filename!r} claims {info.file_size} bytes"
            )
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            written = 0
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                for block in iter(lambda: src.read(CHUNK), b""):
                    written += len(block)
                    if written > MAX_MEMBER_BYTES:
                        raise UnsafeArchiveError(f"{where}: member {info.filename!r} is too large")
                    out.write(block)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


# ---- lock file ----------------------------------------------------------------------------


def _read_lock(lock_path: Path) -> dict[str, Any]:
    if not lock_path.exists():
        return {}
    try:
        return json.loads(lock_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NHISFetchError(f"{lock_path}: not valid JSON ({exc}); fix or delete it") from None


def _record_lock(lock_path: Path, year: int, entry: dict[str, Any]) -> None:
    lock = _read_lock(lock_path)
    lock[str(year)] = entry
    write_text_atomic(lock_path, json.dumps(lock, indent=2, sort_keys=True) + "\n")


# ---- fetching -------------------------------------------------------------------------------


@contextmanager
def _staging(year_dir: Path) -> Iterator[list[Path]]:
    """Temp files registered in the yielded list are removed on exit; so are created dirs."""
    created = [d for d in (year_dir.parent, year_dir) if not d.exists()]
    year_dir.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        yield temps
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        for d in reversed(created):
            try:
                d.rmdir()  # only if still empty (i.e. the fetch failed)
            except OSError:
                pass


def _temp_in(directory: Path, name: str, temps: list[Path]) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.close(fd)
    path = Path(tmp)
    temps.append(path)
    return path


def _copy_hashing(
    chunks: Iterable[bytes], dst: Path, total: int | None, desc: str, progress: bool
) -> tuple[str, int]:
    """Write chunks to ``dst`` with a progress bar; return (sha256, bytes)."""
    digest, size = hashlib.sha256(), 0
    with (
        open(dst, "wb") as out,
        tqdm(
            total=total or None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        for block in chunks:
            out.write(block)
            digest.update(block)
            size += len(block)
            bar.update(len(block))
    return digest.hexdigest(), size


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as src:
        yield from iter(lambda: src.read(CHUNK), b"")


def _offline_message(year: int, url: str, archive: str, reason: str) -> str:
    return (
        f"Could not download NHIS {year} from {url} ({reason}).\n"
        f"If this machine is offline: download {archive} from {url} on a machine with internet\n"
        f"access (NCHS: https://www.cdc.gov/nchs/nhis/ , data files for {year}), copy it here and run\n"
        f"  painanx data fetch nhis --years {year} --from-file /path/to/{archive}\n"
        f"It is verified exactly like a download."
    )


def _download(
    url: str,
    year: int,
    archive: str,
    dst: Path,
    timeout: tuple[float, float],
    progress: bool,
    session: requests.Session | None,
) -> tuple[str, int]:
    getter = session or requests
    try:
        response = getter.get(url, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NHISFetchError(_offline_message(year, url, archive, type(exc).__name__)) from None
    with response:
        if response.status_code != 200:
            raise NHISFetchError(
                f"NHIS {year}: {url} answered HTTP {response.status_code} {response.reason}. "
                f"The file name or base URL may have changed (registry: "
                f"src/analysis/resources/nhis_registry.yaml; option --base-url); or place the "
                f"archive by hand with --from-file."
            )
        declared = response.headers.get("Content-Length")
        encoded = response.headers.get("Content-Encoding", "identity") != "identity"
        # with a content encoding, Content-Length counts encoded bytes: no size check then
        total = int(declared) if declared and declared.isdigit() and not encoded else None
        try:
            chunks = response.iter_content(chunk_size=CHUNK)
            digest, size = _copy_hashing(chunks, dst, total, f"NHIS {year}", progress)
        except (requests.RequestException, OSError) as exc:  # connection lost, read timeout
            raise NHISFetchError(
                f"NHIS {year}: the transfer from {url} was interrupted ({type(exc).__name__}: "
                f"{exc}); nothing was cached. Try again, or use --from-file."
            ) from None
    if total is not None and size != total:
        raise NHISFetchError(
            f"NHIS {year}: truncated transfer from {url}: received {size:,} of {total:,} bytes; "
            f"nothing was cached. Try again, or use --from-file."
        )
    return digest, size


def fetch_nhis_year(
    year: int,
    *,
    cache_dir: Path | None = None,
    base_url: str | None = None,
    lock_path: Path | None = None,
    from_file: Path | None = None,
    registry: Registry | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    progress: bool = True,
    session: requests.Session | None = None,
) -> FetchResult:
    """Fetch (or import with ``from_file``), verify and unpack one year's adult archive."""
    book = nhis_codebook()
    book.require_year(year)
    registry = registry or nhis_registry()
    names = book.file_names(year)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    lock_path = Path(lock_path) if lock_path else default_lock_path()
    year_dir = cache_dir / str(year)
    archive_path, csv_path = year_dir / names["archive"], year_dir / names["member"]
    url = archive_url(year, base_url, registry)

    expected = registry.expected(year)
    lock_entry = _read_lock(lock_path).get(str(year))
    if expected.get("sha256"):
        want, want_bytes, source = expected["sha256"].lower(), expected.get("bytes"), "registry"
    elif lock_entry:
        want, want_bytes, source = (
            lock_entry["sha256"].lower(),
            lock_entry.get("bytes"),
            "lock file",
        )
    else:
        want, want_bytes, source = None, None, "recorded now (first download)"

    if from_file is None and archive_path.exists() and csv_path.exists() and want:
        if sha256_file(archive_path) == want:
            return FetchResult(
                year,
                url,
                archive_path,
                csv_path,
                want,
                archive_path.stat().st_size,
                source,
                reused=True,
            )

    with _staging(year_dir) as temps:
        tmp_zip = _temp_in(year_dir, names["archive"], temps)
        if from_file is not None:
            from_file = Path(from_file)
            if not from_file.is_file():
                raise NHISFetchError(f"--from-file {from_file}: no such file")
            digest, size = _copy_hashing(
                _file_chunks(from_file),
                tmp_zip,
                from_file.stat().st_size,
                f"NHIS {year} (local)",
                progress,
            )
            origin = str(from_file)
        else:
            digest, size = _download(
                url, year, names["archive"], tmp_zip, timeout, progress, session
            )
            origin = url

        if want_bytes is not None and size != int(want_bytes):
            raise ChecksumMismatchError(
                f"NHIS {year}: {origin} is {size:,} bytes; the {source} expects {int(want_bytes):,}. "
                f"Nothing was cached."
            )
        if want is not None and digest != want:
            hint = (
                registry.sources.get(expected.get("source"), "")
                if source == "registry"
                else f"recorded in {lock_path}"
            )
            raise ChecksumMismatchError(
                f"NHIS {year}: sha256 of {origin} is {digest}, but the {source} expects {want}"
                + (f" ({hint})" if hint else "")
                + ". Nothing was cached. If NCHS re-released the file, verify it independently "
                "and update src/analysis/resources/nhis_registry.yaml (or the lock file)."
            )
        if not zipfile.is_zipfile(tmp_zip):
            raise UnsafeArchiveError(f"NHIS {year}: {origin} is not a zip archive")
        tmp_csv = _temp_in(year_dir, names["member"], temps)
        extract_member(tmp_zip, names["member"], tmp_csv, where=f"NHIS {year} archive {origin}")
        os.replace(tmp_csv, csv_path)
        os.replace(tmp_zip, archive_path)
        if want is None:
            _record_lock(
                lock_path,
                year,
                {
                    "archive": names["archive"],
                    "sha256": digest,
                    "bytes": size,
                    "url": url,
                    "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "origin": origin if from_file is not None else "download",
                },
            )
    return FetchResult(year, url, archive_path, csv_path, digest, size, source, reused=False)


def fetch_nhis(years: Iterable[int], **kwargs: Any) -> list[FetchResult]:
    """`fetch_nhis_year` for several years, stopping at the first failure."""
    return [fetch_nhis_year(int(y), **kwargs) for y in years]
