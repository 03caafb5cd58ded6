"""``painanx run``: execute the notebooks and build the HTML site."""

from __future__ import annotations

from analysis.cli import app  # noqa: F401
