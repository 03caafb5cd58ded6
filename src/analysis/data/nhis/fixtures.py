"""Small synthetic files in the CSV layout of each NHIS year (2017, 2019-2024), from the codebook.

For tests and demonstrations only: the values are random draws, never evidence. Each file has
the columns the codebook lists for that year (names, codes, missing codes, blanks for skipped
questions, plain unpadded numbers, as in the NCHS CSVs) plus a few columns the pipeline does
not use. Column order is not significant: the reader selects columns by name.

Conventions a test can rely on:
- with ``every_missing_code=True`` each missing-value code of each column occurs at least once
  (in the question's universe, for gated questions);
- skipped questions are blank (e.g. PAIBACK3M_A when PAIFRQ3M_A is 1 or a missing code);
- columns with special codes besides a range (e.g. VIGFREQW 95 never) take them in about a
  third of the rows;
- GADCAT_A / PHQCAT_A equal the category of the item sum when all items are answered, and 8
  (not ascertained) otherwise (a fixture convention, not NCHS's rule).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.core.io import atomic_path
from analysis.data import schema
from analysis.data.nhis.codebook import NHISCodebook, SourceVariable, nhis_codebook

__all__ = ["fixture_frame", "write_fixture_csv", "write_fixture_zip"]

_RECODES = {"GADCAT_A": ("gad7", schema.gad7_category), "PHQCAT_A": ("phq8", schema.phq8_category)}


def fixture_frame(
    year: int,
    n: int = 240,
    seed: int = 0,
    *,
    every_missing_code: bool = True,
    include_uncertain: bool = True,
    book: NHISCodebook | None = None,
) -> pd.DataFrame:
    """A frame of text values (as written to the CSV) for one NHIS year."""
    book = book or nhis_codebook()
    book.require_year(year)
    rng = np.random.default_rng(seed)
    present = {
        name: var
        for name, var in book.variables.items()
        if var.status(year) and (include_uncertain or var.required_in(year))
    }
    cols: dict[str, list[str]] = {}
    for name, spec in book.filler_columns.items():
        cols[name] = [str(v) for v in rng.choice(spec["codes"], n)]
    if "SRVY_YR" in present:
        cols["SRVY_YR"] = [str(year)] * n
    households = rng.choice(999_999, n, replace=False)
    id_sources = book.sources_of("respondent_id", year)
    if id_sources == ["HHX"]:
        cols["HHX"] = [f"H{v:06d}" for v in households]
    else:  # 2017: HHX, FMX, FPX as NCHS writes them (zero-padded digits)
        cols["HHX"] = [f"{v:06d}" for v in households]
        cols["FMX"] = [f"{v:02d}" for v in rng.integers(1, 3, n)]
        cols["FPX"] = [f"{v:02d}" for v in rng.integers(1, 4, n)]
    weight = book.sources_of("weight", year)[0]
    cols[weight] = [f"{w:.3f}" for w in rng.uniform(300, 30_000, n)]
    index = np.arange(n)
    cols["PSTRAT"] = [str(100 + s) for s in index % 12]
    cols["PPSU"] = [str(1 + p) for p in (index // 12) % 2]

    gated = [v for v in present.values() if v.universe and v.universe["variable"] in present]
    ordinary = [v for v in present.values() if v.name not in cols and not v.universe]
    ordinary = [v for v in ordinary if v.name not in _RECODES]
    slot = 0
    for var in ordinary:
        values = _valid_values(var, rng, n)
        if every_missing_code:
            for code in var.missing:
                values[(slot * 7 + 3) % n] = float(code)
                slot += 1
        cols[var.name] = _text(values)
    for var in gated:
        gate = pd.to_numeric(pd.Series(cols[var.universe["variable"]]), errors="coerce")
        inside = np.flatnonzero(var.in_universe(gate).to_numpy())
        values = np.full(n, np.nan)
        values[inside] = _valid_values(var, rng, len(inside))
        if every_missing_code:
            for j, code in enumerate(var.missing):
                values[inside[(j * 5 + 1) % len(inside)]] = float(code)
        cols[var.name] = _text(values)
    for recode, (item_set, categorise) in _RECODES.items():
        if recode in present:
            items = pd.DataFrame(
                {i: pd.to_numeric(pd.Series(cols[i])) for i in book.item_sets[item_set]}
            )
            answered = items.isin([1, 2, 3, 4]).all(axis=1)
            score = (items - 1).sum(axis=1).where(answered)
            category = categorise(score).cat.codes + 1  # 1..4, 0 for missing
            values = np.where(answered, category, 8).astype(float)
            cols[recode] = _text(values)
    frame = pd.DataFrame(cols)
    design = ["SRVY_YR", *id_sources, weight, "PSTRAT", "PPSU"]
    first = list(book.filler_columns) + [c for c in design if c in cols]
    return frame[first + [c for c in frame.columns if c not in first]]


def _valid_values(var: SourceVariable, rng: np.random.Generator, n: int) -> np.ndarray:
    if var.kind == "code":
        codes = sorted(var.codes)
        weights = np.linspace(2.0, 1.0, len(codes))  # earlier codes a little more common
        return rng.choice(codes, n, p=weights / weights.sum()).astype(float)
    if var.kind == "continuous":
        values = rng.integers(int(var.valid["min"]), int(var.valid["max"]) + 1, n).astype(float)
        if var.codes:  # special codes (e.g. 95 never) in about a third of the rows
            special = rng.random(n) < 1 / 3
            values[special] = rng.choice(sorted(var.codes), int(special.sum()))
        return values
    raise ValueError(f"no fixture generator for {var.name} ({var.kind})")


def _text(values: np.ndarray) -> list[str]:
    return ["" if np.isnan(v) else str(int(v)) for v in values]


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def write_fixture_csv(
    year: int, path: str | Path, *, frame: pd.DataFrame | None = None, n: int = 240, seed: int = 0
) -> Path:
    """Write a fixture CSV (``frame`` if given, else `fixture_frame`) atomically."""
    frame = fixture_frame(year, n=n, seed=seed) if frame is None else frame
    with atomic_path(path) as tmp:
        tmp.write_bytes(_csv_bytes(frame))
    return Path(path)


def write_fixture_zip(
    year: int,
    path: str | Path,
    *,
    frame: pd.DataFrame | None = None,
    n: int = 240,
    seed: int = 0,
    extra_members: Mapping[str, bytes] | None = None,
) -> Path:
    """Write the year's archive (e.g. ``adult19csv.zip`` holding ``adult19.csv``)."""
    frame = fixture_frame(year, n=n, seed=seed) if frame is None else frame
    member = nhis_codebook().file_names(year)["member"]
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(member, _csv_bytes(frame))
            for name, data in (extra_members or {}).items():
                zf.writestr(name, data)
    return Path(path)
