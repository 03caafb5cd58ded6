"""Recode an NHIS Sample Adult CSV (2019-2024) into the tidy respondent schema.

Everything year-specific comes from the codebook (``resources/nhis_codebook.yaml``): which
columns to read, their codes and missing codes, and how each tidy column is derived. Only the
needed columns are read, as text, and converted column by column so that a bad value is
reported with the file, the year and the column. A tidy column the year does not measure is
absent from the frame (``NHISCodebook.require_measured`` says why), never filled with NaN.

Pooling several years divides the weights by the number of years and, by default, makes strata
and PSUs distinct per year (``YEAR-PSTRAT``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from analysis.core import paths
from analysis.core.io import write_parquet_atomic
from analysis.data import schema
from analysis.data.nhis.codebook import NHISCodebook, SourceVariable, nhis_codebook
from analysis.data.nhis.fetch import check_archive, default_cache_dir, find_member

__all__ = [
    "DESIGN_LABELS",
    "NHISDataError",
    "PooledResult",
    "RecodeReport",
    "RecodeResult",
    "default_raw_dirs",
    "find_year_file",
    "pool_years",
    "pooled_path",
    "prepare_nhis",
    "prepare_year",
    "processed_path",
    "read_nhis_file",
    "recode_nhis",
]

# per_year: strata/PSUs made distinct per year (YEAR-code), treating years as independent
# samples; as_released: NCHS's public codes kept as they are across years.
DESIGN_LABELS = ("per_year", "as_released")


class NHISDataError(ValueError):
    """An NHIS file does not match the codebook; the message names file, year and column."""

    def __init__(self, where: str, year: int, column: str | None, problem: str):
        self.where, self.year, self.column = where, year, column
        col = f", column {column}" if column else ""
        super().__init__(f"{where} (NHIS {year}{col}): {problem}")


@dataclass
class RecodeReport:
    """Counts behind one recode: valid values, each missing code, blanks and skip fills."""

    year: int
    where: str
    n_rows: int
    counts: pd.DataFrame  # one row per source column
    measured: dict[str, str]  # tidy column -> verified | reported | uncertain
    not_measured: dict[str, str]  # tidy column -> reason
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.counts.copy()

    def summary(self) -> str:
        lines = [f"NHIS {self.year}: {self.n_rows:,} sample adults from {self.where}"]
        lines.append(f"  measured ({len(self.measured)}): " + ", ".join(self.measured))
        for column, reason in self.not_measured.items():
            lines.append(f"  not measured in {self.year}: {column} ({reason})")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass
class RecodeResult:
    year: int
    frame: pd.DataFrame
    report: RecodeReport
    path: Path | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.frame

    def summary(self) -> str:
        where = f"\n  written to {self.path}" if self.path else ""
        return self.report.summary() + where


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


# ---- reading ----------------------------------------------------------------------------


def _open_csv(path: Path, year: int, book: NHISCodebook):
    """A binary handle on the CSV, directly or inside the year's zip archive (checked)."""
    if path.suffix.lower() == ".zip":
        zf = zipfile.ZipFile(path)
        check_archive(zf, str(path))
        info = find_member(zf, book.file_names(year)["member"], str(path))
        return zf, zf.open(info)
    return None, open(path, "rb")


def read_nhis_file(
    path: str | Path, year: int, book: NHISCodebook | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Read the columns the codebook needs for ``year`` (as text); return (frame, notes).

    Raises `NHISDataError` for an empty file, a file with no rows, a missing required
    column, or a file whose SRVY_YR is another year.
    """
    book = book or nhis_codebook()
    book.require_year(year)
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise NHISDataError(where, year, None, "no such file")
    if path.stat().st_size == 0:
        raise NHISDataError(where, year, None, "the file is empty (0 bytes)")

    zf, handle = _open_csv(path, year, book)
    try:
        try:
            header = pd.read_csv(handle, nrows=0).columns
        except pd.errors.EmptyDataError:
            raise NHISDataError(where, year, None, "the file is empty (no header line)") from None
        header = [c.strip() for c in header]
        notes: list[str] = []
        wanted = []
        for name in book.needed_sources(year):
            var = book.variables[name]
            if name in header:
                wanted.append(name)
            elif var.required_in(year):
                other = _guess_year(header, book)
                hint = f"; its columns look like the {other} layout" if other else ""
                raise NHISDataError(
                    where,
                    year,
                    name,
                    f"column missing; the codebook expects it in {year} ({var.status(year)}: "
                    f"{', '.join(var.refs)}){hint}",
                )
            else:
                notes.append(f"{name} (uncertain in {year}) is not in this file: not measured")
        for name, var in book.variables.items():
            if year in var.absent and name in header:
                notes.append(f"{name} is in the file although the codebook lists it as absent")
        if zf is not None:
            handle.close()
            handle = zf.open(find_member(zf, book.file_names(year)["member"], where))
        else:
            handle.seek(0)
        frame = pd.read_csv(
            handle,
            usecols=lambda c: c.strip() in wanted,
            dtype="string",
            keep_default_na=False,
            na_filter=False,
        )
    finally:
        handle.close()
        if zf is not None:
            zf.close()
    frame.columns = [c.strip() for c in frame.columns]
    if frame.empty:
        raise NHISDataError(where, year, None, "the file has a header but no data rows")
    return frame, notes


def _guess_year(header: list[str], book: NHISCodebook) -> int | None:
    """The codebook year whose required columns this header matches best (for messages)."""
    present = set(header)
    best, best_score = None, -1.0
    for year in book.years:
        required = [v.name for v in book.variables.values() if v.required_in(year)]
        absent = [v.name for v in book.variables.values() if year in v.absent]
        score = sum(n in present for n in required) / max(len(required), 1) - sum(
            n in present for n in absent
        ) / max(len(absent), 1)
        if score > best_score:
            best, best_score = year, score
    return best


# ---- parsing one column -------------------------------------------------------------------


def _numbers(text: pd.Series, var: SourceVariable, where: str, year: int) -> pd.Series:
    """Text -> float (blank -> NaN); non-numbers raise naming the column."""
    stripped = text.str.strip()
    values = pd.to_numeric(stripped.where(stripped != ""), errors="coerce")
    bad = stripped[(stripped != "") & values.isna()]
    if len(bad):
        raise NHISDataError(
            where, year, var.name, f"non-numeric values, e.g. {sorted(set(bad))[:5]}"
        )
    return values.astype("float64")


@dataclass
class _Parsed:
    value: pd.Series  # valid values (float), NaN otherwise
    blank: pd.Series  # bool
    missing: pd.Series  # bool: a missing-value code
    counts: dict[str, Any]


def _parse(text: pd.Series, var: SourceVariable, where: str, year: int) -> _Parsed:
    n = len(text)
    if var.kind == "text":
        stripped = text.str.strip()
        blank = stripped == ""
        if blank.any():
            raise NHISDataError(where, year, var.name, f"{int(blank.sum())} blank identifier(s)")
        dup = stripped.duplicated()
        if dup.any():
            raise NHISDataError(
                where, year, var.name, f"duplicated identifiers, e.g. {list(stripped[dup][:3])}"
            )
        empty = pd.Series(False, index=text.index)
        return _Parsed(stripped, empty, empty, {"valid": n, "blank": 0})

    values = _numbers(text, var, where, year)
    blank = values.isna()
    missing = values.isin(list(var.missing))
    if var.kind == "code":
        valid = values.isin(list(var.codes))
    elif var.kind == "continuous":
        valid = values.between(var.valid["min"], var.valid["max"]) & ~missing
    elif var.kind in ("integer", "float"):
        valid = ~blank
        if "min_exclusive" in var.valid:
            valid &= values > var.valid["min_exclusive"]
        if var.kind == "integer":
            valid &= values.where(~blank, 0) % 1 == 0
        if not valid.all():
            bad = text[~valid].head(5).tolist()
            raise NHISDataError(
                where, year, var.name, f"blank or invalid design/year values, e.g. {bad}"
            )
    else:  # pragma: no cover - guarded by the codebook check
        raise ValueError(var.kind)
    unknown = ~(valid | missing | blank)
    if unknown.any():
        examples = [int(v) if v.is_integer() else v for v in sorted(set(values[unknown]))[:5]]
        expected = (
            f"codes {sorted(var.codes)}"
            if var.kind == "code"
            else f"{var.valid.get('min')}-{var.valid.get('max')}"
        )
        raise NHISDataError(
            where,
            year,
            var.name,
            f"{int(unknown.sum())} value(s) not in the codebook, e.g. {examples}; expected "
            f"{expected} or missing codes {sorted(var.missing)}",
        )
    counts: dict[str, Any] = {"valid": int(valid.sum()), "blank": int(blank.sum())}
    for code, label in var.missing.items():
        counts[f"{code} {label}"] = int((values == code).sum())
    return _Parsed(values.where(valid), blank, missing, counts)


# ---- recoding -----------------------------------------------------------------------------


def recode_nhis(
    raw: pd.DataFrame,
    year: int,
    *,
    where: str = "frame",
    book: NHISCodebook | None = None,
    notes: list[str] | None = None,
) -> RecodeResult:
    """Apply the codebook to raw NHIS columns (text) of one year; validate the result."""
    book = book or nhis_codebook()
    book.require_year(year)
    notes = list(notes or [])
    parsed: dict[str, _Parsed] = {}
    for name in raw.columns:
        if name in book.variables:
            parsed[name] = _parse(raw[name], book.variables[name], where, year)

    years_in_file = {int(v) for v in parsed["SRVY_YR"].value.dropna().unique()}
    if years_in_file != {year}:
        raise NHISDataError(
            where,
            year,
            "SRVY_YR",
            f"the file says survey year(s) {sorted(years_in_file)}, but it was given as {year} "
            f"(wrong year's file?)",
        )

    out: dict[str, pd.Series] = {"source": pd.Series("nhis", index=raw.index, dtype="string")}
    measured, not_measured = {}, {}
    skip_counts: dict[str, int] = {}
    for column, spec in book.derived.items():
        status, reason = book.column_status(column, year)
        sources = book.sources_of(column, year)
        if status is None or not all(s in parsed for s in sources):
            not_measured[column] = reason or "an uncertain source column is not in this file"
            continue
        values = _derive(column, spec, sources, parsed, year, skip_counts)
        out[column] = values.astype(book.dtype(column))
        measured[column] = status

    for column, spec in book.derived.items():
        score = spec.get("check_score")
        if score and column in out and score in out:
            _check_category(out[column], out[score], column, score, where, year)

    frame = pd.DataFrame(out)
    ordered = [c for c in schema.column_specs() if c in frame.columns]
    extras = [c for c in book.derived if book.derived[c].get("extra") and c in frame.columns]
    frame = schema.validate(frame[ordered + extras].reset_index(drop=True), where=where)

    counts = pd.DataFrame.from_dict({k: v.counts for k, v in parsed.items()}, orient="index")
    counts = counts.fillna(0).astype("int64")
    counts.insert(0, "status", [book.variables[k].status(year) for k in counts.index])
    counts.index.name = "source column"
    for column, n in skip_counts.items():
        notes.append(f"{column}: {n:,} skipped answers filled from the skip pattern")
    for name, p in parsed.items():
        universe = book.variables[name].universe
        if universe and universe["variable"] in parsed:
            gate = parsed[universe["variable"]].value.isin(universe["codes"])
            blank_inside = int((p.blank & gate).sum())
            if blank_inside:
                notes.append(f"{name}: {blank_inside:,} blank(s) inside its universe -> missing")
    report = RecodeReport(year, where, len(frame), counts, measured, not_measured, notes)
    return RecodeResult(year, frame, report)


def _derive(
    column: str,
    spec: dict[str, Any],
    sources: list[str],
    parsed: dict[str, _Parsed],
    year: int,
    skip_counts: dict[str, int],
) -> pd.Series:
    kind = spec["kind"]
    first = parsed[sources[0]]
    if kind == "copy":
        return first.value
    if kind == "year_prefixed_id":
        return (f"{year}-" + first.value.astype(str)).astype("string")
    if kind == "design_code":
        return first.value.astype("int64").astype(str).astype("string")
    if kind == "category":
        mapping = {int(k): v for k, v in spec["map"].items()}
        values = first.value.map(lambda v: mapping.get(int(v)) if pd.notna(v) else None)
        if "skip" in spec:
            rule = spec["skip"]
            gate = parsed[rule["source"]].value.isin(rule["codes"])
            fill = first.blank & gate
            values = values.mask(fill, rule["value"])
            skip_counts[column] = int(fill.sum())
        return values.astype(object).where(values.notna(), None)
    if kind == "boolean":
        out = pd.Series(pd.NA, index=first.value.index, dtype="boolean")
        out[first.value.isin(spec["true_codes"])] = True
        out[first.value.isin(spec["false_codes"])] = False
        return out
    if kind == "bmi_from_inches_pounds":
        height, weight = parsed[spec["height"]].value, parsed[spec["weight"]].value
        return 703.0 * weight / height**2
    if kind == "item_sum":
        points = {int(k): v for k, v in spec["points"].items()}
        items = pd.DataFrame({s: parsed[s].value.map(points) for s in sources})
        total = items.sum(axis=1, min_count=len(sources))
        return total.where(items.notna().all(axis=1)).astype("Int64")
    raise ValueError(f"nhis_codebook.yaml: {column}: unknown kind {kind}")


_CATEGORISERS = {"gad7_category": schema.gad7_category, "phq8_category": schema.phq8_category}


def _check_category(
    category: pd.Series, score: pd.Series, column: str, score_column: str, where: str, year: int
) -> None:
    from_score = _CATEGORISERS[column](score)
    both = category.notna() & score.notna()
    differ = both & (category.astype(object) != from_score.astype(object))
    if differ.any():
        raise NHISDataError(
            where,
            year,
            column,
            f"{int(differ.sum())} of {int(both.sum())} rows disagree with the category of "
            f"{score_column} (cut-points {schema.column_specs()[column].cutpoints}); the NCHS "
            f"recode and the item sum should agree when all items are answered",
        )


# ---- files ----------------------------------------------------------------------------------


def processed_path(year: int, out_dir: Path | None = None) -> Path:
    return (Path(out_dir) if out_dir else paths.processed_dir()) / f"nhis_adult_{year}.parquet"


def pooled_path(years: Iterable[int], out_dir: Path | None = None) -> Path:
    label = "_".join(str(y) for y in sorted(years))
    return (
        Path(out_dir) if out_dir else paths.processed_dir()
    ) / f"nhis_adult_pooled_{label}.parquet"


def find_year_file(year: int, search_dirs: Iterable[Path]) -> Path | None:
    """The year's CSV (preferred) or archive in the first directory that has it.

    Looks in ``DIR``, ``DIR/YEAR``, ``DIR/nhis`` and ``DIR/nhis/YEAR`` for the codebook's
    member name (``adult19.csv``) or archive name (``adult19csv.zip``), case-insensitively.
    """
    names = nhis_codebook().file_names(year)
    targets = {names["member"].lower(), names["archive"].lower()}
    for base in search_dirs:
        base = Path(base)
        for folder in (base, base / str(year), base / "nhis", base / "nhis" / str(year)):
            if not folder.is_dir():
                continue
            found = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
            for target in (names["member"].lower(), names["archive"].lower()):
                if target in targets and target in found:
                    return found[target]
    return None


def default_raw_dirs() -> list[Path]:
    """Where `prepare_nhis` looks by default: the fetch cache, then ``../shared/data``."""
    return [default_cache_dir(), paths.project_root().parent / "shared" / "data"]


def prepare_year(
    year: int, source: str | Path, *, out_dir: Path | None = None, write: bool = True
) -> RecodeResult:
    """Read one year's CSV (or archive), recode it, validate, and write the Parquet file."""
    book = nhis_codebook()
    raw, notes = read_nhis_file(source, year, book)
    result = recode_nhis(raw, year, where=str(source), book=book, notes=notes)
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


def prepare_nhis(
    years: Iterable[int],
    *,
    raw_dirs: Iterable[Path] | None = None,
    out_dir: Path | None = None,
    pool: bool = True,
    design_labels: str = "per_year",
    progress: bool = True,
) -> tuple[list[RecodeResult], PooledResult | None]:
    """Prepare each year from the fetched files (and the pooled file for 2+ years)."""
    years = sorted({int(y) for y in years})
    raw_dirs = list(raw_dirs) if raw_dirs else default_raw_dirs()
    results = []
    for year in tqdm(years, desc="NHIS recode", disable=not progress or len(years) < 2):
        source = find_year_file(year, raw_dirs)
        if source is None:
            names = nhis_codebook().file_names(year)
            raise FileNotFoundError(
                f"NHIS {year}: neither {names['member']} nor {names['archive']} found in "
                f"{[str(d) for d in raw_dirs]}; run `painanx data fetch nhis --years {year}` first"
            )
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
    """The prepared NHIS tidy frame for ``years`` (all prepared years when None).

    Reads ``data/processed/nhis_adult_YEAR.parquet`` (written by `prepare_nhis`), validates
    it, and pools several years with `pool_years` (weights divided by the number of years).
    """
    folder = Path(out_dir) if out_dir else paths.processed_dir()
    if years is None:
        found = sorted(folder.glob("nhis_adult_[0-9][0-9][0-9][0-9].parquet"))
        years = [int(p.stem.rsplit("_", 1)[1]) for p in found]
    years = sorted({int(y) for y in years})
    if not years:
        raise FileNotFoundError(
            f"no prepared NHIS files (nhis_adult_YEAR.parquet) in {folder}; run "
            "`painanx data fetch nhis --years 2019` and `painanx data prepare nhis --years 2019`"
        )
    frames = {}
    for year in years:
        path = processed_path(year, folder)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: NHIS {year} has not been prepared; run "
                f"`painanx data prepare nhis --years {year}` after fetching it"
            )
        frames[year] = schema.validate(pd.read_parquet(path), where=str(path))
    if len(years) == 1:
        return frames[years[0]]
    return pool_years(frames, design_labels=design_labels).frame
