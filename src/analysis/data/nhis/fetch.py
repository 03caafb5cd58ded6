"""Download, verify and safely unpack the NHIS Sample Adult CSV archives.

One call per year (`fetch_nhis_year`) streams ``{base_url}/{year}/adultYYcsv.zip`` into a
temporary file beside the cache (with a tqdm progress bar and timeouts), checks its size and
sha256 against the registry (``resources/nhis_registry.yaml``) or, where the registry does not
know the year, against the lock file written by the first download (trust on first use). Only a
verified archive whose members are all safe (no absolute paths, no ``..``, no symlinks) is
renamed into the cache, together with its CSV, whose sha256 goes into the lock file; a cached
CSV that no longer has it is re-extracted from the verified archive (`check_cached_member`,
also used by `prepare`). Any failure leaves the cache as it was.

Downloads reach only the hosts allowed in the registry (``allowed_hosts``, redirects included)
and only over http(s); ``--base-url`` (or the environment variable) is the explicit way to
another host (`base_url_override` says when it is in use).

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
from urllib.parse import urljoin, urlsplit

import requests
from tqdm.auto import tqdm

from analysis.core import paths
from analysis.core.io import parse_yaml, sha256_file, write_text_atomic
from analysis.data.nhis.codebook import nhis_codebook

__all__ = [
    "ChecksumMismatchError",
    "FetchResult",
    "HostNotAllowedError",
    "NHISFetchError",
    "Registry",
    "UnsafeArchiveError",
    "archive_url",
    "base_url_override",
    "check_archive",
    "check_cached_member",
    "check_download_url",
    "check_known_file",
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
MAX_REDIRECTS = 5
REGISTRY_FILE = "src/analysis/resources/nhis_registry.yaml"


class NHISFetchError(RuntimeError):
    """Fetching an NHIS archive failed; nothing was added to the cache."""


class ChecksumMismatchError(NHISFetchError):
    """The archive's sha256 (or size) differs from the registry or the lock file."""


class UnsafeArchiveError(NHISFetchError):
    """The archive contains a member that could escape the cache directory (or no CSV)."""


class HostNotAllowedError(NHISFetchError):
    """A download (or a redirect) would reach a host or scheme the registry does not allow."""


@dataclass(frozen=True)
class Registry:
    base_url: str
    env_var: str
    lock_file: str
    archives: dict[int, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)
    allowed_hosts: tuple[str, ...] = ()
    known_files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def expected(self, year: int) -> dict[str, Any]:
        return self.archives.get(year, {"sha256": None, "bytes": None, "source": None})

    def hosts(self) -> tuple[str, ...]:
        """The allowed hosts: ``allowed_hosts`` and the host of ``base_url``."""
        own = (urlsplit(self.base_url).hostname or "").lower()
        return tuple(dict.fromkeys([*(h.lower() for h in self.allowed_hosts), own]))


@lru_cache(maxsize=1)
def nhis_registry() -> Registry:
    text = resources.files("analysis.resources").joinpath("nhis_registry.yaml").read_text()
    raw = parse_yaml(text)
    return Registry(
        base_url=raw["base_url"].rstrip("/"),
        env_var=raw["env_var"],
        lock_file=raw["lock_file"],
        archives={int(y): dict(v) for y, v in raw["archives"].items()},
        sources={k: " ".join(v.split()) for k, v in raw.get("sources", {}).items()},
        allowed_hosts=tuple(raw.get("allowed_hosts", ())),
        known_files={k: dict(v) for k, v in raw.get("known_files", {}).items()},
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
    reextracted: bool = False  # the cached CSV differed from its recorded sha256: re-extracted

    def summary(self) -> str:
        how = "already cached" if self.reused else "fetched"
        if self.reextracted:
            how += " (CSV re-extracted from the verified archive: it was missing or changed)"
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


def base_url_override(base_url: str | None = None, registry: Registry | None = None) -> str | None:
    """How the download location was overridden ('--base-url URL' or 'VAR=URL'), or None."""
    registry = registry or nhis_registry()
    if base_url:  # the option wins over the environment, as in `resolve_base_url`
        return f"--base-url {base_url}"
    if os.environ.get(registry.env_var):
        return f"{registry.env_var}={os.environ[registry.env_var]}"
    return None


def check_download_url(url: str, allowed: Iterable[str], *, what: str = "download") -> None:
    """Refuse a URL that is not http(s) or whose host is not in ``allowed``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        raise HostNotAllowedError(
            f"{what} {url}: file:// URLs are not fetched; for a local archive use "
            "--from-file /path/to/ARCHIVE.zip (it is verified exactly like a download)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostNotAllowedError(
            f"{what} {url}: only http:// and https:// URLs are fetched (or use --from-file)"
        )
    host = parts.hostname.lower()
    if host not in set(allowed):
        raise HostNotAllowedError(
            f"{what} {url}: host {host!r} is not allowed (allowed_hosts in {REGISTRY_FILE}: "
            f"{', '.join(allowed)}); pass --base-url to choose another location explicitly"
        )


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
    lock[str(year)] = {**lock.get(str(year), {}), **entry}
    write_text_atomic(lock_path, json.dumps(lock, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expected_archive(
    year: int, registry: Registry, lock_entry: dict[str, Any] | None
) -> tuple[str | None, int | None, str]:
    """(sha256, bytes, where it comes from) the year's archive must have."""
    expected = registry.expected(year)
    if expected.get("sha256"):
        return expected["sha256"].lower(), expected.get("bytes"), "registry"
    if lock_entry and lock_entry.get("sha256"):
        return lock_entry["sha256"].lower(), lock_entry.get("bytes"), "lock file"
    return None, None, "recorded now (first download)"


def _recorded_member(lock_entry: dict[str, Any] | None, archive_sha: str | None) -> str | None:
    """The member's sha256 in the lock, if recorded for this very archive."""
    if not lock_entry or not lock_entry.get("member_sha256"):
        return None
    if archive_sha and lock_entry.get("sha256", "").lower() != archive_sha:
        return None
    return lock_entry["member_sha256"].lower()


def _reextract(
    year: int, archive_path: Path, csv_path: Path, archive_sha: str, lock_path: Path
) -> str:
    """Write the member again from the verified archive (atomically) and record its sha256."""
    member = nhis_codebook().file_names(year)["member"]
    fd, tmp = tempfile.mkstemp(prefix=f".{csv_path.name}.", suffix=".part", dir=csv_path.parent)
    os.close(fd)
    try:
        extract_member(archive_path, member, Path(tmp), where=f"NHIS {year} archive {archive_path}")
        digest = sha256_file(Path(tmp))
        os.replace(tmp, csv_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _record_lock(
        lock_path,
        year,
        {"sha256": archive_sha, "member": member, "member_sha256": digest, "recorded": _now()},
    )
    return digest


def check_cached_member(
    year: int,
    csv_path: Path,
    *,
    lock_path: Path | None = None,
    registry: Registry | None = None,
) -> bool:
    """Make sure a cached CSV is the one extracted from its verified archive.

    The CSV matches the sha256 recorded in the lock: kept. Otherwise (changed, or no record
    yet), and the archive beside it verifies: re-extracted from it and recorded; returns True.
    A CSV that differs from its record with no verified archive beside it is refused; one with
    neither record nor verified archive was placed by hand and is read as it is.
    """
    registry = registry or nhis_registry()
    lock_path = Path(lock_path) if lock_path else default_lock_path()
    names = nhis_codebook().file_names(year)
    entry = _read_lock(lock_path).get(str(year))
    want, _, source = _expected_archive(year, registry, entry)
    recorded = _recorded_member(entry, want)
    actual = sha256_file(csv_path) if csv_path.is_file() else None
    if recorded and actual == recorded:
        return False
    archive_path = csv_path.parent / names["archive"]
    if want and archive_path.is_file() and sha256_file(archive_path) == want:
        _reextract(year, archive_path, csv_path, want, lock_path)
        return True
    if recorded is None and actual is not None:
        return False
    raise NHISFetchError(
        f"{csv_path}: sha256 {actual or '(file missing)'} differs from {recorded}, recorded in "
        f"{lock_path} when it was extracted from {names['archive']}, and there is no verified "
        f"archive beside it to extract it again from (the {source} expects sha256 {want}). "
        f"Run `painanx data fetch nhis --years {year}` again, or prepare a file you trust with "
        "--from-file."
    )


def check_known_file(path: Path, registry: Registry | None = None) -> None:
    """Refuse a known, not fetched copy (``known_files`` in the registry) that has changed."""
    registry = registry or nhis_registry()
    known = registry.known_files.get(Path(path).name.lower())
    if not known or not known.get("sha256"):
        return
    actual = sha256_file(Path(path))
    if actual != known["sha256"].lower():
        where = registry.sources.get(known.get("source"), "")
        raise ChecksumMismatchError(
            f"{path}: sha256 is {actual}, but known_files in {REGISTRY_FILE} expects "
            f"{known['sha256']}" + (f" ({where})" if where else "") + "; the copy has changed: "
            "restore it, or prepare a file you trust with --from-file."
        )


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


def _get_following_allowed_redirects(
    url: str,
    allowed: tuple[str, ...],
    year: int,
    archive: str,
    timeout: tuple[float, float],
    session: requests.Session | None,
) -> requests.Response:
    """GET ``url``, following redirects by hand so that each hop's host is checked first."""
    getter = session or requests
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_download_url(current, allowed, what=f"NHIS {year}: {url} leads to")
        try:
            response = getter.get(current, stream=True, timeout=timeout, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NHISFetchError(
                _offline_message(year, current, archive, type(exc).__name__)
            ) from None
        if not response.is_redirect:
            return response
        response.close()
        current = urljoin(current, response.headers["Location"])
    raise NHISFetchError(f"NHIS {year}: {url} redirects more than {MAX_REDIRECTS} times")


def _download(
    url: str,
    year: int,
    archive: str,
    dst: Path,
    timeout: tuple[float, float],
    progress: bool,
    session: requests.Session | None,
    allowed: tuple[str, ...],
) -> tuple[str, int]:
    response = _get_following_allowed_redirects(url, allowed, year, archive, timeout, session)
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
    override = base_url_override(base_url, registry)
    allowed = registry.hosts()
    if override:  # the explicit way out: the chosen location's host is allowed too
        allowed = (*allowed, (urlsplit(url).hostname or "").lower())
    if from_file is None:
        check_download_url(url, allowed, what=f"NHIS {year}: download")

    expected = registry.expected(year)
    lock_entry = _read_lock(lock_path).get(str(year))
    want, want_bytes, source = _expected_archive(year, registry, lock_entry)

    if from_file is None and archive_path.is_file() and want:
        if sha256_file(archive_path) == want:
            repaired = check_cached_member(year, csv_path, lock_path=lock_path, registry=registry)
            return FetchResult(
                year,
                url,
                archive_path,
                csv_path,
                want,
                archive_path.stat().st_size,
                source,
                reused=True,
                reextracted=repaired,
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
                url, year, names["archive"], tmp_zip, timeout, progress, session, allowed
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
        member_sha = sha256_file(tmp_csv)
        os.replace(tmp_csv, csv_path)
        os.replace(tmp_zip, archive_path)
        entry = {
            "archive": names["archive"],
            "sha256": digest,
            "bytes": size,
            "url": url,
            "origin": origin if from_file is not None else "download",
            "member": names["member"],
            "member_sha256": member_sha,
            "recorded": _now(),
        }
        _record_lock(lock_path, year, entry)
    return FetchResult(year, url, archive_path, csv_path, digest, size, source, reused=False)


def fetch_nhis(years: Iterable[int], **kwargs: Any) -> list[FetchResult]:
    """`fetch_nhis_year` for several years, stopping at the first failure."""
    return [fetch_nhis_year(int(y), **kwargs) for y in years]
