"""The reports folder as one build's workspace.

- `build_lock`: one build at a time per reports folder; a second one stops at once and names
  the lock file and the pid holding it (it does not wait: a build can take minutes).
- `remove_leftovers`: partial notebooks and temporary files that a build stopped hard (killed,
  power cut) left behind; every build starts by removing them.
- `write_texts_together`: files that belong together (claims.json + claims.csv + findings.csv,
  index.html + build_status.csv) are all written under temporary names first, then renamed:
  a failure leaves the earlier set whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from analysis.core.io import atomic_path

LOCK_NAME = ".painanx-run.lock"
# what a stopped build can leave: papermill's notebook in progress, and atomic_path's temporaries
LEFTOVER_PATTERNS = (".*.partial.ipynb", ".*.tmp")


class BuildLocked(RuntimeError):
    """Another build holds the reports folder's lock."""


@contextlib.contextmanager
def build_lock(reports_dir: Path) -> Iterator[Path]:
    """Hold ``reports_dir/.painanx-run.lock`` (an flock, released by the system even when the
    process is killed) for the duration of a build; `BuildLocked` when another build holds it.

    The file stays after the build (removing it would let two builds lock different files).
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise BuildLocked(
                f"another `painanx run` (pid {holder}) is building {reports_dir}; this build "
                f"did not start. Wait for it to finish, or stop it. Lock file: {path}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(reports_dir: Path, source_names: Iterable[str]) -> list[Path]:
    """Delete partial notebooks and temporary files in the reports folder and its source
    folders (call it while holding `build_lock`); returns what was removed."""
    folders = [(reports_dir, False)] + [(reports_dir / s, True) for s in source_names]
    removed = []
    for folder, recursive in folders:
        if not folder.is_dir():
            continue
        for pattern in LEFTOVER_PATTERNS:
            for path in folder.rglob(pattern) if recursive else folder.glob(pattern):
                if path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return sorted(removed)


def write_texts_together(texts: Mapping[Path, str]) -> None:
    """Write several text files as a set: each to a temporary name beside it, then all
    renamed. Should one write fail, none of the files is replaced."""
    with contextlib.ExitStack() as stack:
        for path, text in texts.items():
            stack.enter_context(atomic_path(path)).write_text(text, encoding="utf-8")
