"""The figures in docs/simulation.md are those of the committed reference run in
data/simulation/, as scripts/make_docs_tables.py writes them (none typed by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_docs_tables.py"


@pytest.fixture(scope="module")
def docs_tables():
    spec = importlib.util.spec_from_file_location("make_docs_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulation_page_shows_the_committed_reference_run(docs_tables):
    committed = docs_tables.DOC.read_text()
    expected = docs_tables.updated(committed, docs_tables.render())
    if committed != expected:
        pytest.fail(
            "docs/simulation.md differs from data/simulation/: run "
            f"`{docs_tables.COMMAND}` and commit docs/simulation.md"
        )


def test_every_tracked_estimand_and_claim_is_in_the_tables(docs_tables):
    block = docs_tables.render()
    for row in docs_tables.read_rows(docs_tables.SIMULATION_DIR / "estimates.csv"):
        assert f"| {row['label']} |" in block, row["label"]
    for row in docs_tables.read_rows(docs_tables.SIMULATION_DIR / "false_positives.csv"):
        assert f"| {row['claim']} | {row['replicates']} | {row['supported']} |" in block


def test_a_page_without_markers_is_refused(docs_tables):
    with pytest.raises(ValueError, match="generated:simulation:start"):
        docs_tables.updated("# no markers here\n", docs_tables.render())
