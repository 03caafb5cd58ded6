"""Where things live: the project root and its data/report folders.

The root is ``$PAINANX_HOME`` when set, else the nearest folder above the current
directory holding a ``pyproject.toml`` of the painanx project, else the source tree
this package was installed from (editable install).
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_project_root(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    return pyproject.is_file() and 'name = "painanx"' in pyproject.read_text(errors="ignore")


def project_root() -> Path:
    env = os.environ.get("PAINANX_HOME")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if _is_project_root(candidate):
            return candidate
    source_tree = Path(__file__).resolve().parents[3]
    if _is_project_root(source_tree):
        return source_tree
    return here


def data_dir() -> Path:
    return project_root() / "data"


def raw_dir() -> Path:
    return data_dir() / "raw"


def processed_dir() -> Path:
    return data_dir() / "processed"


def evidence_dir() -> Path:
    return data_dir() / "evidence"


def reports_dir() -> Path:
    return project_root() / "reports"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"
