"""``painanx data ...``: make, fetch and prepare data sources."""

from __future__ import annotations

from analysis.cli import data_app  # noqa: F401  (commands are added below by each data source)
