"""Recode an NHIS Sample Adult CSV (2017, 2019-2024) into the tidy respondent schema.

Everything year-specific comes from the codebook (``resources/nhis_codebook.yaml``): which
columns to read, their codes and missing codes, and how each tidy column is derived. Only the
needed columns are read, as text, and converted column by column so that a bad value is
reported with the file, the year and the column. A tidy column the year does not measure is
absent from the frame (``NHISCodebook.require_measured`` says why), never filled with NaN.
Finding, preparing, pooling and loading the files is `analysis.data.nhis.prepare`.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.data import schema
from analysis.data.nhis.codebook import NHISCodebook, SourceVariable, nhis_codebook
from analysis.data.nhis.fetch import check_archive, find_member

__all__ = [
    "NHISDataError",
    "RecodeReport",
    "RecodeResult",
    "read_nhis_file",
    "recode_nhis",
]


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


# ---- reading ----------------------------------------------------------------------------


def _csv_bytes(path: Path, year: int, book: NHISCodebook, where: str) -> bytes:
    """The CSV's bytes: plain, gzip-compressed (``.gz``) or the year's member of a zip archive.

    A truncated or corrupt archive or gzip stream is an `NHISDataError` naming the file.
    """
    try:
        suffix = path.suffix.lower()
        if suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                check_archive(zf, where)
                return zf.read(find_member(zf, book.file_names(year)["member"], where))
        if suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise NHISDataError(
            where, year, None, f"the file is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from None


def _check_complete(data: bytes, n_columns: int, where: str, year: int) -> None:
    """Refuse a file whose last line has fewer fields than its header (cut off mid-line)."""
    last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    fields = next(csv.reader([last.decode("utf-8", errors="replace")]), [])
    if len(fields) < n_columns:
        raise NHISDataError(
            where,
            year,
            None,
            f"its last line has {len(fields)} of the header's {n_columns} fields: the file is "
            "truncated",
        )


def read_nhis_file(
    path: str | Path, year: int, book: NHISCodebook | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Read the columns the codebook needs for ``year`` (as text); return (frame, notes).

    Raises `NHISDataError` for an empty, truncated or corrupt file, a file with no rows,
    missing required columns (all named), or a file whose SRVY_YR is another year.
    """
    book = book or nhis_codebook()
    book.require_year(year)
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise NHISDataError(where, year, None, "no such file")
    if path.stat().st_size == 0:
        raise NHISDataError(where, year, None, "the file is empty (0 bytes)")

    data = _csv_bytes(path, year, book, where)
    try:
        header = pd.read_csv(io.BytesIO(data), nrows=0).columns
    except pd.errors.EmptyDataError:
        raise NHISDataError(where, year, None, "the file is empty (no header line)") from None
    header = [c.strip() for c in header]
    _check_complete(data, len(header), where, year)
    notes: list[str] = []
    wanted, missing = [], []
    for name in book.needed_sources(year):
        var = book.variables[name]
        if name in header:
            wanted.append(name)
        elif var.required_in(year):
            missing.append(name)
        elif var.optional and year in var.optional:
            notes.append(f"{name} is not in this file: {var.optional[year]}")
        else:
            notes.append(f"{name} (uncertain in {year}) is not in this file: not measured")
    if missing:
        other = _guess_year(header, book)
        hint = f"; its columns look like the {other} layout" if other else ""
        refs = sorted({r for name in missing for r in book.variables[name].refs})
        which = "column missing" if len(missing) == 1 else f"{len(missing)} columns missing"
        raise NHISDataError(
            where,
            year,
            ", ".join(missing),
            f"{which}; the codebook expects {'it' if len(missing) == 1 else 'them'} in {year} "
            f"({', '.join(refs)}){hint}",
        )
    for name, var in book.variables.items():
        if year in var.absent and name in header:
            notes.append(f"{name} is in the file although the codebook lists it as absent")
    frame = pd.read_csv(
        io.BytesIO(data),
        usecols=lambda c: c.strip() in wanted,
        dtype="string",
        keep_default_na=False,
        na_filter=False,
    )
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
        empty = pd.Series(False, index=text.index)
        return _Parsed(stripped, empty, empty, {"valid": n, "blank": 0})

    values = _numbers(text, var, where, year)
    blank = values.isna()
    missing = values.isin(list(var.missing))
    if var.kind == "code":
        valid = values.isin(list(var.codes))
    elif var.kind == "continuous":  # a range, plus special codes (e.g. 95 never)
        valid = values.between(var.valid["min"], var.valid["max"]) | values.isin(list(var.codes))
        valid &= ~missing
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
            + (f" or codes {sorted(var.codes)}" if var.codes else "")
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

    if "SRVY_YR" in parsed:
        years_in_file = {int(v) for v in parsed["SRVY_YR"].value.dropna().unique()}
        if years_in_file != {year}:
            raise NHISDataError(
                where,
                year,
                "SRVY_YR",
                f"the file says survey year(s) {sorted(years_in_file)}, but it was given as "
                f"{year} (wrong year's file?)",
            )

    out: dict[str, pd.Series] = {"source": pd.Series("nhis", index=raw.index, dtype="string")}
    measured, not_measured = {}, {}
    skip_counts: dict[str, int] = {}
    for column in book.derived:
        status, reason = book.column_status(column, year)
        sources = book.sources_of(column, year)
        absent = [s for s in sources if s not in parsed]
        if status is None or absent:
            not_measured[column] = reason or _absent_reason(book, absent, year)
            continue
        spec = book.spec(column, year)
        values = _derive(column, spec, sources, parsed, year, raw.index, skip_counts, book)
        out[column] = values.astype(book.dtype(column))
        measured[column] = status
    ids = out["respondent_id"]
    if ids.duplicated().any():
        raise NHISDataError(
            where,
            year,
            "+".join(book.sources_of("respondent_id", year)),
            f"duplicated identifiers, e.g. {list(ids[ids.duplicated()][:3])}",
        )

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
        var = book.variables[name]
        if var.universe and var.universe["variable"] in parsed:
            gate = var.in_universe(parsed[var.universe["variable"]].value)
            blank_inside = int((p.blank & gate).sum())
            if blank_inside:
                notes.append(f"{name}: {blank_inside:,} blank(s) inside its universe -> missing")
    report = RecodeReport(year, where, len(frame), counts, measured, not_measured, notes)
    return RecodeResult(year, frame, report)


def _absent_reason(book: NHISCodebook, absent: list[str], year: int) -> str:
    reasons = [
        f"{name}: {book.variables[name].optional[year]}"
        for name in absent
        if year in (book.variables[name].optional or {})
    ]
    return "; ".join(reasons) or "an uncertain source column is not in this file"


def _derive(
    column: str,
    spec: dict[str, Any],
    sources: list[str],
    parsed: dict[str, _Parsed],
    year: int,
    index: pd.Index,
    skip_counts: dict[str, int],
    book: NHISCodebook,
) -> pd.Series:
    kind = spec["kind"]
    if kind == "file_year":
        return pd.Series(float(year), index=index)
    if kind == "score_at_least":
        score_spec = book.spec(spec["score"], year)
        score = _item_sum(score_spec, sources, parsed)
        return (score >= spec["at_least"]).astype("boolean")
    if kind == "aerobic_guideline":
        return _aerobic_guideline(spec, parsed)
    if kind == "any_of":
        return _any_of(spec, sources, parsed)
    first = parsed[sources[0]]
    if kind == "copy":
        return first.value
    if kind == "scaled":
        return first.value * float(spec["factor"])
    if kind == "year_prefixed_id":
        parts = [parsed[s].value.astype(str) for s in sources]
        if spec.get("strip_leading_zeros"):
            parts = [p.where(~p.str.isdigit(), p.str.lstrip("0").replace("", "0")) for p in parts]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + "-" + part
        return (f"{year}-" + joined).astype("string")
    if kind == "design_code":
        return first.value.astype("int64").astype(str).astype("string")
    if kind == "category":
        mapping = {int(k): v for k, v in spec["map"].items()}
        values = first.value.map(lambda v: mapping.get(int(v)) if pd.notna(v) else None)
        if "skip" in spec:
            values = values.mask(
                _skipped(column, spec, first, parsed, skip_counts), spec["skip"]["value"]
            )
        if "precedence" in spec:
            rule = spec["precedence"]
            gate = parsed[rule["source"]].value
            values = values.mask(gate.isin(rule["codes"]), rule["value"]).where(gate.notna())
        return values.astype(object).where(values.notna(), None)
    if kind == "boolean":
        out = pd.Series(pd.NA, index=first.value.index, dtype="boolean")
        out[first.value.isin(spec["true_codes"])] = True
        out[first.value.isin(spec["false_codes"])] = False
        if "skip" in spec:
            out[_skipped(column, spec, first, parsed, skip_counts)] = bool(spec["skip"]["value"])
        return out
    if kind == "bmi_from_inches_pounds":
        height, weight = parsed[spec["height"]].value, parsed[spec["weight"]].value
        return 703.0 * weight / height**2
    if kind == "item_sum":
        return _item_sum(spec, sources, parsed)
    raise ValueError(f"nhis_codebook.yaml: {column}: unknown kind {kind}")


def _skipped(
    column: str,
    spec: dict[str, Any],
    first: _Parsed,
    parsed: dict[str, _Parsed],
    skip_counts: dict[str, int],
) -> pd.Series:
    """Blank answers outside the question's universe (filled with the skip value)."""
    rule = spec["skip"]
    fill = first.blank & parsed[rule["source"]].value.isin(rule["codes"])
    skip_counts[column] = int(fill.sum())
    return fill


def _item_sum(spec: dict[str, Any], sources: list[str], parsed: dict[str, _Parsed]) -> pd.Series:
    """Sum of the items' points, only where every item is answered (no imputation)."""
    points = {int(k): v for k, v in spec["points"].items()}
    items = pd.DataFrame({s: parsed[s].value.map(points) for s in sources})
    total = items.sum(axis=1, min_count=len(sources))
    return total.where(items.notna().all(axis=1)).astype("Int64")


def _any_of(spec: dict[str, Any], sources: list[str], parsed: dict[str, _Parsed]) -> pd.Series:
    """True if any source has a true code; false if all have a false code; else missing."""
    values = pd.DataFrame({s: parsed[s].value for s in sources})
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[values.isin(spec["false_codes"]).all(axis=1)] = False
    out[values.isin(spec["true_codes"]).any(axis=1)] = True
    return out


def _aerobic_guideline(spec: dict[str, Any], parsed: dict[str, _Parsed]) -> pd.Series:
    """Leisure-time aerobic activity against the guideline, from frequency and duration.

    Moderate-equivalent minutes per week: moderate sessions x minutes + 2 x vigorous sessions
    x minutes. A 'never'/'unable' frequency counts as no activity of that intensity.
    """
    weekly, none = {}, {}
    for intensity in ("moderate", "vigorous"):
        times = parsed[spec[intensity]["times_per_week"]].value
        minutes = parsed[spec[intensity]["minutes"]].value
        none[intensity] = times.isin(spec["none_codes"])
        # "less than once a week" (0) and never/unable are 0 minutes a week whatever the duration
        weekly[intensity] = (times * minutes).where((times != 0) & ~none[intensity], 0.0)
    equivalent = weekly["moderate"] + 2 * weekly["vigorous"]
    known_part = weekly["moderate"].fillna(0) + 2 * weekly["vigorous"].fillna(0)
    out = pd.Series(None, index=equivalent.index, dtype=object)
    out[equivalent.notna()] = "insufficiently active"
    out[none["moderate"] & none["vigorous"]] = "inactive"
    out[known_part >= spec["active_minutes"]] = "active"
    return out


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
