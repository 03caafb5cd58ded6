"""The R reference datasets (tests/reference/data, written by make_survey_data.R) and the
design each one is analysed with, shared by the survey tests that compare with R."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

REFERENCE = Path(__file__).parent / "reference"

DESIGNS = {
    "apistrat": {"weight": "pw", "strata": "stype"},
    "apiclus1": {"weight": "pw", "psu": "dnum"},
    "nhanes": {"weight": "WTMEC2YR", "strata": "SDMVSTRA", "psu": "SDMVPSU", "nest": True},
    "lonely_design": {"weight": "weight", "strata": "stratum", "psu": "psu", "nest": True},
}


@functools.cache
def data(name: str) -> pd.DataFrame:
    """One reference dataset, read once (callers copy before changing it)."""
    return pd.read_csv(REFERENCE / "data" / f"{name}.csv")
