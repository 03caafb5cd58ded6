"""Find, prepare, pool and load the NHIS adult files (tidy Parquet, one file per year).

`prepare_year` reads one year's file (CSV, gzip or the NCHS zip archive), recodes it with
`analysis.data.nhis.recode`, checks a full file against its documented size and writes
``data/processed/nhis_adult_YEAR.parquet``. `load_nhis` reads the prepared years, or the tidy
2017 extract committed with the code (``data/nhis/``) when 2017 has not been prepared here.

Pooling several years divides the weights by the number of years and, by default, makes strata
and PSUs distinct per year (``YEAR-PSTRAT``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analysis.core import paths
from analysis.core.io import write_parquet_atomic
from analysis.data import schema
from analysis.data.nhis.codebook import NHISCodebook, nhis_codebook
from analysis.data.nhis.fetch import check_cached_member, check_known_file, default_cache_dir
from analysis.data.nhis.recode import NHISDataError, RecodeResult, read_nhis_file, recode_nhis

__all__ = [
    "DESIGN_LABELS",
    "PooledResult",
    "check_size",
    "checked_year_file",
    "default_raw_dirs",
    "embedded_dir",
    "file_names_of",
    "find_year_file",
    "load_nhis",
    "pool_years",
    "pooled_path",
    "prepare_nhis",
    "prepare_year",
    "processed_path",
]

# per_year: strata/PSUs made distinct per year (YEAR-code), treating years as independent
# samples; as_released: NCHS's public codes kept as they are across years.
DESIGN_LABELS = ("per_year", "as_released")


@dataclass
class PooledResult:
    years: tuple[int, ...]
    frame: pd.DataFrame
    dropped: dict[str, list[int]]  # column -> years that measure it (not all pooled years)
    design_labels: str
    path: Path | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.frame

    def summary(self) -> str:
        lines = [
            f"NHIS pooled {', '.join(map(str, self.years))}: {len(self.frame):,} sample adults; "
            f"weights divided by {len(self.years)}; strata/PSUs {self.design_labels}"
        ]
        for column, years in self.dropped.items():
            lines.append(f"  dropped {column}: measured only in {years}")
        if self.path:
            lines.append(f"  written to {self.path}")
        return "\n".join(lines)


# ---- files ----------------------------------------------------------------------------------


def processed_path(year: int, out_dir: Path | None = None) -> Path:
    return (Path(out_dir) if out_dir else paths.processed_dir()) / f"nhis_adult_{year}.parquet"


def pooled_path(years: Iterable[int], out_dir: Path | None = None) -> Path:
    label = "_".join(str(y) for y in sorted(years))
    return (
        Path(out_dir) if out_dir else paths.processed_dir()
    ) / f"nhis_adult_pooled_{label}.parquet"


def embedded_dir() -> Path:
    """The tidy extracts committed with the code (``data/nhis/``): NHIS 2017, the default."""
    return paths.data_dir() / "nhis"


def file_names_of(year: int) -> list[str]:
    """Names the year's file goes by, in order of preference: CSV, archive, other copies."""
    names = nhis_codebook().file_names(year)
    return [names["member"], names["archive"], *names.get("other_names", [])]


def find_year_file(year: int, search_dirs: Iterable[Path]) -> Path | None:
    """The year's file in the first directory that has it (CSV preferred, then archive).

    Looks in ``DIR``, ``DIR/YEAR``, ``DIR/nhis`` and ``DIR/nhis/YEAR`` for the codebook's
    member name (``adult19.csv``), archive name (``adult19csv.zip``) or other names (e.g. the
    shared copy of 2017, ``nhis2017_adult_merged.csv.gz``), case-insensitively.
    """
    targets = [name.lower() for name in file_names_of(year)]
    for base in search_dirs:
        base = Path(base)
        for folder in (base, base / str(year), base / "nhis", base / "nhis" / str(year)):
            if not folder.is_dir():
                continue
            found = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
            for target in targets:
                if target in found:
                    return found[target]
    return None


def default_raw_dirs() -> list[Path]:
    """Where `prepare_nhis` looks by default: the fetch cache, then ``../shared/data``."""
    return [default_cache_dir(), paths.project_root().parent / "shared" / "data"]


def check_size(result: RecodeResult, where: str, book: NHISCodebook | None = None) -> None:
    """Refuse a frame far from the documented size of the year's full file (rows, weights).

    A truncated file, a subset or another year's file shows up here; years without a
    documented size in the codebook are not checked.
    """
    book = book or nhis_codebook()
    year, frame = result.year, result.frame
    expected = book.expected_size(year)
    if not expected:
        return
    tolerance = float(expected["tolerance"])
    rows, total = len(frame), float(frame["weight"].sum())
    weight = book.sources_of("weight", year)[0]
    problems = []
    if abs(rows / expected["rows"] - 1) > tolerance:
        problems.append(f"{rows:,} rows; the full {year} file has {int(expected['rows']):,}")
    if abs(total / float(expected["weight_total"]) - 1) > tolerance:
        problems.append(
            f"{weight} sums to {total / 1e6:,.1f} million; the documented total is "
            f"{float(expected['weight_total']) / 1e6:,.1f} million"
        )
    if problems:
        raise NHISDataError(
            where,
            year,
            None,
            "; ".join(problems)
            + f" (more than {tolerance:.0%} off: a truncated file, a subset or another year's "
            "file?)",
        )
    result.report.notes.append(
        f"size as documented: {rows:,} rows, {weight} total {total:,.0f} "
        f"(documented {int(expected['rows']):,} and {float(expected['weight_total']) / 1e6:,.1f} "
        "million)"
    )


def prepare_year(
    year: int,
    source: str | Path,
    *,
    out_dir: Path | None = None,
    write: bool = True,
    full_file: bool = True,
) -> RecodeResult:
    """Read one year's CSV (or archive), recode it, validate, and write the Parquet file.

    ``full_file``: the source is the whole NCHS file, so its rows and weight total must be
    those documented (`check_size`); False for excerpts and test fixtures.
    """
    book = nhis_codebook()
    raw, notes = read_nhis_file(source, year, book)
    result = recode_nhis(raw, year, where=str(source), book=book, notes=notes)
    if full_file:
        check_size(result, str(source), book)
    if write:
        target = processed_path(year, out_dir)
        schema.validate(result.frame, where=str(target))
        result.path = write_parquet_atomic(result.frame, target)
    return result


def pool_years(
    frames: Mapping[int, pd.DataFrame], *, design_labels: str = "per_year"
) -> PooledResult:
    """Stack years: weights / number of years; strata and PSUs distinct per year by default.

    Only columns measured in every pooled year are kept (the others are listed in
    ``dropped``), so a pooled column is never missing by design in some years.
    """
    if design_labels not in DESIGN_LABELS:
        raise ValueError(f"design_labels must be one of {DESIGN_LABELS}, got {design_labels!r}")
    if len(frames) < 2:
        raise ValueError("pooling needs at least two years")
    years = tuple(sorted(frames))
    n = len(years)
    columns = [c for c in frames[years[0]].columns if all(c in frames[y].columns for y in years)]
    every = {c for y in years for c in frames[y].columns}
    dropped = {
        c: [y for y in years if c in frames[y].columns] for c in sorted(every - set(columns))
    }
    parts = []
    for year in years:
        part = frames[year][columns].copy()
        part["weight"] = part["weight"] / n
        if design_labels == "per_year":
            for col in ("stratum", "psu"):
                part[col] = (f"{year}-" + part[col].astype(str)).astype("string")
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame = schema.validate(frame, where=f"NHIS pooled {years}")
    return PooledResult(years, frame, dropped, design_labels)


def checked_year_file(year: int, source: Path, lock_path: Path | None = None) -> Path:
    """``source`` once its checksum is checked: a fetched CSV against the lock file (re-extracted
    from its verified archive if it changed), a known copy against the registry."""
    if source.name.lower() == nhis_codebook().file_names(year)["member"].lower():
        check_cached_member(year, source, lock_path=lock_path)
    else:
        check_known_file(source)
    return source


def prepare_nhis(
    years: Iterable[int],
    *,
    raw_dirs: Iterable[Path] | None = None,
    out_dir: Path | None = None,
    pool: bool = True,
    design_labels: str = "per_year",
    progress: bool = True,
    lock_path: Path | None = None,
) -> tuple[list[RecodeResult], PooledResult | None]:
    """Prepare each year from the fetched files (and the pooled file for 2+ years).

    A fetched CSV is read only if it still has the sha256 recorded in ``lock_path`` (default:
    the project's lock file) when it was extracted; see `checked_year_file`.
    """
    years = sorted({int(y) for y in years})
    raw_dirs = list(raw_dirs) if raw_dirs else default_raw_dirs()
    results = []
    for year in tqdm(years, desc="NHIS recode", disable=not progress or len(years) < 2):
        source = find_year_file(year, raw_dirs)
        if source is None:
            raise FileNotFoundError(
                f"NHIS {year}: none of {file_names_of(year)} found in "
                f"{[str(d) for d in raw_dirs]}; run `painanx data fetch nhis --years {year}` first"
            )
        source = checked_year_file(year, source, lock_path)
        results.append(prepare_year(year, source, out_dir=out_dir))
    pooled = None
    if pool and len(years) > 1:
        pooled = pool_years({r.year: r.frame for r in results}, design_labels=design_labels)
        target = pooled_path(years, out_dir)
        pooled.path = write_parquet_atomic(pooled.frame, target)
    return results, pooled


def load_nhis(
    years: Iterable[int] | None = None,
    *,
    out_dir: Path | None = None,
    design_labels: str = "per_year",
) -> pd.DataFrame:
    """The prepared NHIS tidy frame for ``years`` (every year found when None).

    Reads ``nhis_adult_YEAR.parquet`` from ``out_dir``, else from ``data/processed`` (written
    by `prepare_nhis`) or, for a year not prepared there, from the extract committed with the
    code (`embedded_dir`: 2017); validates it, and pools several years with `pool_years`
    (weights divided by the number of years).
    """
    folders = [Path(out_dir)] if out_dir else [paths.processed_dir(), embedded_dir()]
    if years is None:
        found = [p for f in folders for p in f.glob("nhis_adult_[0-9][0-9][0-9][0-9].parquet")]
        years = [int(p.stem.rsplit("_", 1)[1]) for p in found]
    years = sorted({int(y) for y in years})
    if not years:
        raise FileNotFoundError(
            f"no prepared NHIS files (nhis_adult_YEAR.parquet) in {[str(f) for f in folders]}; "
            "run `painanx data fetch nhis --years 2019` and `painanx data prepare nhis --years 2019`"
        )
    frames = {}
    for year in years:
        path = next((p for p in (processed_path(year, f) for f in folders) if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"{processed_path(year, folders[0])}: NHIS {year} has not been prepared; run "
                f"`painanx data prepare nhis --years {year}` after fetching it"
            )
        frames[year] = schema.validate(pd.read_parquet(path), where=str(path))
    if len(years) == 1:
        return frames[years[0]]
    return pool_years(frames, design_labels=design_labels).frame
