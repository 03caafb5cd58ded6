"""Safe file output (write to temporary files beside the targets, then rename), and YAML input.

A crash, a Ctrl-C or a bad input never leaves a half-written file, never destroys the file
that was there before, and never leaves files that belong together (a sample and its truth,
the tables of one simulation) from two different runs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    import pandas as pd

# mkstemp creates files readable by the owner only; give outputs the usual permissions instead
# (what open() would give under the process umask), so reports can be served and shared.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK

Key = TypeVar("Key", bound=Hashable)

# libyaml's parser reads the packaged resource files ~10x faster than PyYAML's pure-Python one
# (to the same objects; a test compares them), and every notebook parses several of them.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise an OSError as one about ``path`` (the target, not a temporary name)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _make_folder(folder: Path) -> None:
    with _naming(folder):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file stands where the folder should be
            raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder") from None


def _temp_beside(target: Path) -> Path:
    _make_folder(target.parent)
    with _naming(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.chmod(tmp, _FILE_MODE)
    return Path(tmp)


def _keep_previous(target: Path) -> Path | None:
    """A second name for the file now at ``target`` (None if there is none), to restore it."""
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(target))
    if not target.exists():
        return None
    backup = target.with_name(f".{target.name}.{secrets.token_hex(4)}.previous")
    with _naming(target):
        try:
            os.link(target, backup)
        except OSError:  # no hard links on this file system
            shutil.copy2(target, backup)
    return backup


def _replace_together(temps: Mapping[Key, Path], targets: Mapping[Key, Path]) -> None:
    """Rename every temporary file onto its target; if one rename fails (or is interrupted),
    put back the files already replaced, so the previous set stays whole."""
    previous: dict[Key, Path | None] = {}
    done: list[Key] = []
    try:
        for key, tmp in temps.items():
            target = targets[key]
            previous[key] = _keep_previous(target) if len(temps) > 1 else None
            with _naming(target):
                os.replace(tmp, target)
            done.append(key)
    except BaseException:
        for key in reversed(done):
            backup = previous[key]
            if backup is None:
                targets[key].unlink(missing_ok=True)
            else:
                os.replace(backup, targets[key])
        raise
    finally:
        for backup in previous.values():
            if backup is not None:
                backup.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_paths(targets: Mapping[Key, str | os.PathLike[str]]) -> Iterator[dict[Key, Path]]:
    """Temporary paths for files that belong together, renamed onto ``targets`` (same keys)
    only when the block succeeds and every one is written: all of them, or none.

    A failure or a Ctrl-C in the block removes the temporary files and leaves the previous
    files as they were; a rename that fails midway is undone.
    """
    final = {key: Path(target) for key, target in targets.items()}
    temps: dict[Key, Path] = {}
    try:
        for key, target in final.items():
            temps[key] = _temp_beside(target)
        yield dict(temps)
        _replace_together(temps, final)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target on success."""
    with atomic_paths({"file": target}) as temps:
        yield temps["file"]


def check_writable(target: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """Raise now the OSError that writing ``target`` (a file, or a ``folder``) would raise at
    the end of a long job: a folder where the file should be, a file on the way to it, a
    folder this process may not write in. Creates nothing."""
    target = Path(target)
    if not folder and target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(target))
    if folder and target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(target))
    existing = target if folder else target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"{existing} is a file, so no folder can be made in it", str(target)
        )
    with _naming(existing), tempfile.TemporaryFile(dir=existing):
        pass
    return target


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_parquet_atomic(df: pd.DataFrame, target: str | os.PathLike[str]) -> Path:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(target)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def frame_content_hash(df: pd.DataFrame) -> str:
    """A hash of a frame's content (values, column names, dtypes), independent of file format."""
    import pandas as pd  # lazily: the build writes files with this module and never needs pandas

    h = hashlib.sha256()
    h.update(repr([(c, str(t)) for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, with libyaml's parser when PyYAML has it (same objects, faster).

    For the files the package ships; files people edit by hand keep ``yaml.safe_load``, whose
    error messages show the offending line.
    """
    return yaml.load(text, Loader=_SAFE_LOADER)
