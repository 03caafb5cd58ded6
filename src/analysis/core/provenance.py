"""Where a page came from: package versions, git commit, content hashes of code and inputs.

Printed on every report page so a reader can tell exactly what produced a number, and
used by the runner to decide what must be rebuilt (content hashes, not timestamps).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import analysis

# Packages whose versions are shown on every page (those that shape the numbers and pages).
REPORTED_PACKAGES = (
    "painanx",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "pandera",
    "matplotlib",
    "seaborn",
    "pyarrow",
    "papermill",
    "nbconvert",
    "ipykernel",
    "jinja2",
)


def package_versions(packages: Iterable[str] = REPORTED_PACKAGES) -> dict[str, str]:
    """Installed versions (python first); "not installed" for a missing package."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_info(root: str | os.PathLike[str]) -> dict[str, object]:
    """Commit, branch and whether the work tree has uncommitted changes; None values outside git."""

    def run(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": run("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj) -> str:
    """Hash of a JSON-able object, independent of key order."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


def source_hash(
    sources: Iterable[ModuleType | str | os.PathLike[str]], patterns: Iterable[str] = ("**/*.py",)
) -> str:
    """One sha256 over the code of modules, files and folders (relative path + content), so a
    cache keyed on it goes stale whenever that code changes.

    A package or a folder contributes its files matching ``patterns`` (caches skipped), a
    module or a file itself.
    """
    patterns = tuple(patterns)
    h = hashlib.sha256()
    for source in sources:
        for rel, path in _source_files(source, patterns):
            h.update(rel.encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _source_files(
    source: ModuleType | str | os.PathLike[str], patterns: tuple[str, ...]
) -> list[tuple[str, Path]]:
    """(name relative to the source, path) of the files a source stands for, in sorted order."""
    path = Path(source.__file__) if isinstance(source, ModuleType) else Path(source)
    if isinstance(source, ModuleType) and path.name == "__init__.py":
        path = path.parent  # a package: its folder
    if not path.is_dir():
        return [(path.name, path)]
    files: set[Path] = set()
    for pattern in patterns:
        files.update(p for p in path.glob(pattern) if p.is_file())
    out = []
    for file in sorted(files):
        rel = file.relative_to(path).as_posix()
        if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")) or "/." in f"/{rel}":
            continue
        out.append((rel, file))
    return out


def library_code_hash(code_roots: Iterable[str | os.PathLike[str]] | None = None) -> str:
    """Hash of the library: every .py file and every resource file under the package."""
    roots = list(code_roots) if code_roots is not None else [Path(analysis.__file__).parent]
    return source_hash(roots, patterns=("**/*.py", "resources/**/*"))


def notebook_source_hash(path: str | os.PathLike[str]) -> str:
    """Hash of what a notebook does (cell types and sources), ignoring outputs and metadata."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in nb.get("cells", [])]
    kernel = (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    return sha256_json({"cells": cells, "kernel": kernel})
