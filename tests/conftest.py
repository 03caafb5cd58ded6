"""Fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from site_fixtures import FIXTURES, PLAN, fake_verdicts

from analysis.build import runner
from analysis.evidence.studies import load_studies

REFERENCE_DATA = Path(__file__).parent / "reference" / "data"


@pytest.fixture(scope="session")
def full_build(tmp_path_factory):
    """The fixture notebooks built once (jobs=2) with the stand-in claims hook: the runner
    tests read the build, the browser tests open its pages."""
    root = tmp_path_factory.mktemp("project")
    (root / "data").mkdir()
    (root / "data" / "help.csv").write_text("id,pain\n1,3\n")
    return runner.build(
        notebooks_dir=FIXTURES,
        reports_dir=root / "reports",
        plan_path=PLAN,
        project_root=root,
        jobs=2,
        claims_hook=fake_verdicts,
        progress=False,
        echo=lambda msg: None,
    )


@pytest.fixture(scope="module")
def studies() -> pd.DataFrame:
    """The committed table of published study results, validated."""
    return load_studies()


@pytest.fixture(scope="module")
def lonely() -> pd.DataFrame:
    """The R reference design with lonely PSUs (tests/reference/data/lonely_design.csv)."""
    return pd.read_csv(REFERENCE_DATA / "lonely_design.csv")
