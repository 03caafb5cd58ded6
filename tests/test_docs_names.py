"""Every `analysis.*` name the README and docs/ mention exists, so a move or rename that
forgets the prose fails here instead of misleading a newcomer."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NAME = re.compile(r"\banalysis(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_modules_and_functions_exist(page):
    names = sorted(set(NAME.findall(page.read_text(encoding="utf-8"))))
    missing = [n for n in names if not _resolves(n)]
    assert not missing, f"{page.relative_to(ROOT)} names what the code no longer has: {missing}"
