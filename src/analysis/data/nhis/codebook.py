"""The NHIS adult-file codebook (``resources/nhis_codebook.yaml``) as an object.

It answers, for 2017 and every year 2019-2024: which NCHS columns exist, with which codes and
missing codes, how each tidy column is derived, and which tidy columns are measured (and why
the others are not). The recoder, the fixture writer and ``painanx data nhis-measures`` all read it, so a
layout change is a data edit, not a code edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from analysis.core.io import parse_yaml
from analysis.data import schema

__all__ = [
    "NHISCodebook",
    "NotMeasuredInYear",
    "SourceVariable",
    "STATUS_ORDER",
    "nhis_codebook",
]

# weakest first: a derived column is as sure as its least sure source
STATUS_ORDER = ("uncertain", "reported", "verified")
REQUIRED_STATUSES = ("reported", "verified")


class NotMeasuredInYear(LookupError):
    """A tidy column is not measured in an NHIS year (absent by design, with the reason)."""

    def __init__(self, column: str, year: int, reason: str):
        self.column, self.year, self.reason = column, year, reason
        super().__init__(f"'{column}' is not measured in NHIS {year}: {reason}")


@dataclass(frozen=True)
class SourceVariable:
    """One NCHS column: kind, codes, missing codes and per-year availability."""

    name: str
    kind: str  # integer | float | text | continuous | code
    label: str
    codes: dict[int, str]
    missing: dict[int, str]
    valid: dict[str, float]
    years: dict[int, str]  # year -> verified | reported | uncertain
    absent: dict[int, str]  # year -> reason
    refs: tuple[str, ...]
    universe: dict[str, Any] | None = None
    top_code: dict[int, str] | None = None
    optional: dict[int, str] | None = None  # year -> why a right file may lack it

    def status(self, year: int) -> str | None:
        return self.years.get(year)

    def required_in(self, year: int) -> bool:
        return self.years.get(year) in REQUIRED_STATUSES and year not in (self.optional or {})

    def in_universe(self, gate: pd.Series) -> pd.Series:
        """Rows asked the question, from the values of the gating variable."""
        if "between" in self.universe:
            low, high = self.universe["between"]
            return gate.between(low, high)
        return gate.isin(self.universe["codes"])

    @property
    def is_numeric(self) -> bool:
        return self.kind != "text"


class NHISCodebook:
    """Parsed codebook with per-year lookups."""

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.years: tuple[int, ...] = tuple(int(y) for y in raw["years"])
        self.references: dict[str, str] = {
            k: " ".join(v.split()) for k, v in raw["references"].items()
        }
        missing_sets = {
            name: {int(k): v for k, v in codes.items()}
            for name, codes in raw["missing_sets"].items()
        }
        self.variables: dict[str, SourceVariable] = {}
        for name, spec in raw["variables"].items():
            self.variables[name] = self._variable(name, spec, missing_sets)
        self.item_sets: dict[str, list[str]] = {}
        for set_name, spec in raw["item_sets"].items():
            names = []
            for item, wording in spec["items"].items():
                item_spec = {k: v for k, v in spec.items() if k not in ("items", "label_prefix")}
                item_spec["label"] = spec.get("label_prefix", "") + wording
                self.variables[item] = self._variable(item, item_spec, missing_sets)
                names.append(item)
            self.item_sets[set_name] = names
        self.derived: dict[str, dict[str, Any]] = raw["derived"]
        self.filler_columns: dict[str, dict[str, Any]] = raw.get("filler_columns", {})
        self._check()

    # ---- construction -------------------------------------------------------------
    def _variable(self, name: str, spec: dict[str, Any], missing_sets) -> SourceVariable:
        for ref in spec.get("refs", []):
            if ref not in self.references:
                raise ValueError(
                    f"nhis_codebook.yaml: variable {name} cites unknown reference {ref}"
                )
        missing = missing_sets[spec["missing"]] if "missing" in spec else {}
        return SourceVariable(
            name=name,
            kind=spec["kind"],
            label=spec["label"],
            codes={int(k): str(v) for k, v in spec.get("codes", {}).items()},
            missing=missing,
            valid=dict(spec.get("valid", {})),
            years={int(y): s for y, s in spec["years"].items()},
            absent={int(y): r for y, r in spec.get("absent", {}).items()},
            refs=tuple(spec.get("refs", [])),
            universe=spec.get("universe"),
            top_code={int(k): v for k, v in spec.get("top_code", {}).items()} or None,
            optional={int(y): " ".join(r.split()) for y, r in spec.get("optional", {}).items()}
            or None,
        )

    def _check(self) -> None:
        """Fail early on an inconsistent codebook edit (names the entry)."""
        for var in self.variables.values():
            for year, status in var.years.items():
                if status not in STATUS_ORDER:
                    raise ValueError(f"nhis_codebook.yaml: {var.name} {year}: bad status {status}")
                if year in var.absent:
                    raise ValueError(
                        f"nhis_codebook.yaml: {var.name} {year} both present and absent"
                    )
            overlap = set(var.codes) & set(var.missing)
            if overlap:
                raise ValueError(
                    f"nhis_codebook.yaml: {var.name} codes {overlap} also missing codes"
                )
        specs = schema.column_specs()
        for column, spec in self.derived.items():
            if not spec.get("extra") and column not in specs:
                raise ValueError(f"nhis_codebook.yaml: derived '{column}' is not a schema column")
            odd = set(spec.get("in_year", {})) - set(self.years)
            if odd:
                raise ValueError(f"nhis_codebook.yaml: {column}: in_year for unknown years {odd}")
            for year in self.years:
                year_spec = self.spec(column, year)
                for source in self.sources_of(column, year) + self.checked_by(column, year):
                    if source not in self.variables:
                        raise ValueError(f"nhis_codebook.yaml: {column} uses unknown {source}")
                if year_spec["kind"] == "category":
                    unknown = set(year_spec["map"].values()) - set(self.levels(column))
                    if unknown:
                        raise ValueError(
                            f"nhis_codebook.yaml: {column} ({year}) maps to unknown levels "
                            f"{unknown}"
                        )

    # ---- lookups ----------------------------------------------------------------------
    def file_names(self, year: int) -> dict[str, Any]:
        self.require_year(year)
        return dict(self.raw["files"][year])

    def require_year(self, year: int) -> None:
        if year not in self.years:
            raise ValueError(f"NHIS year {year} is not supported; supported: {list(self.years)}")

    def spec(self, column: str, year: int) -> dict[str, Any]:
        """How a tidy column is derived in a year: its rule with that year's ``in_year`` keys."""
        base = self.derived[column]
        merged = {k: v for k, v in base.items() if k != "in_year"}
        merged.update(base.get("in_year", {}).get(year, {}))
        return merged

    def sources_of(self, column: str, year: int) -> list[str]:
        """The NCHS columns a tidy column is derived from in a year."""
        spec = self.spec(column, year)
        kind = spec["kind"]
        if kind == "file_year":
            return []
        if kind == "bmi_from_inches_pounds":
            return [spec["height"], spec["weight"]]
        if kind == "aerobic_guideline":
            return [
                spec[k][part]
                for k in ("moderate", "vigorous")
                for part in ("times_per_week", "minutes")
            ]
        if kind == "item_sum":
            return list(self.item_sets[spec["item_set"]])
        if kind == "score_at_least":
            return self.sources_of(spec["score"], year)
        source = spec["source"]
        if isinstance(source, dict):
            source = source[year]
        names = list(source) if isinstance(source, list) else [source]
        for rule in ("skip", "precedence"):
            if rule in spec:
                names.append(spec[rule]["source"])
        return names

    def checked_by(self, column: str, year: int) -> list[str]:
        """NCHS columns read only to check a tidy column (e.g. SRVY_YR for the file's year)."""
        check = self.spec(column, year).get("check")
        return [check] if check else []

    def levels(self, column: str) -> list[str]:
        spec = self.derived[column]
        if spec.get("extra"):
            return list(spec["levels"])
        return list(schema.column_specs()[column].levels)

    def dtype(self, column: str) -> Any:
        spec = self.derived[column]
        if spec.get("extra"):
            if spec["kind"] == "category":
                return pd.CategoricalDtype(spec["levels"], ordered=bool(spec.get("ordered")))
            return {"boolean": "boolean", "any_of": "boolean", "copy": "float64"}[spec["kind"]]
        return schema.column_specs()[column].pandas_dtype

    def column_status(self, column: str, year: int) -> tuple[str | None, str]:
        """(weakest status of its sources, reason it is not measured or '')."""
        statuses: list[str] = []
        reasons: dict[str, list[str]] = {}  # reason -> source columns it applies to
        for source in self.sources_of(column, year):
            var = self.variables[source]
            status = var.status(year)
            if status is None:
                reason = var.absent.get(year, "not in the codebook for this year")
                reasons.setdefault(reason, []).append(source)
            else:
                statuses.append(status)
        if reasons:
            parts = []
            for reason, names in reasons.items():
                label = ", ".join(names) if len(names) <= 2 else f"{names[0]}..{names[-1]}"
                parts.append(f"{label}: {reason}")
            return None, "; ".join(parts)
        if not statuses:  # the year the file was given as
            return "verified", ""
        return min(statuses, key=STATUS_ORDER.index), ""

    def measured(self, year: int) -> dict[str, str]:
        """Tidy columns measured in a year -> verified | reported | uncertain."""
        self.require_year(year)
        out = {}
        for column in self.derived:
            status, _ = self.column_status(column, year)
            if status is not None:
                out[column] = status
        return out

    def require_measured(self, column: str, year: int) -> None:
        """Raise `NotMeasuredInYear` with the codebook's reason if a column is absent."""
        self.require_year(year)
        status, reason = self.column_status(column, year)
        if status is None:
            raise NotMeasuredInYear(column, year, reason)

    def needed_sources(self, year: int) -> list[str]:
        """Every NCHS column the recoder reads for a year (measured tidy columns only)."""
        names: list[str] = []
        for column in self.measured(year):
            names.extend(self.sources_of(column, year) + self.checked_by(column, year))
        return list(dict.fromkeys(names))

    def expected_size(self, year: int) -> dict[str, float] | None:
        """The documented rows and weight total of the year's full file (None if unknown)."""
        return self.file_names(year).get("expected")

    def measured_table(self) -> pd.DataFrame:
        """Tidy column x year: status where measured, 'not measured: reason' where not."""
        rows = {}
        for column in self.derived:
            row = {}
            for year in self.years:
                status, reason = self.column_status(column, year)
                row[year] = status if status else f"not measured: {reason}"
            rows[column] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "tidy column"
        return table

    def summary(self) -> str:
        table = self.measured_table()
        lines = ["NHIS adult files: tidy columns measured per year", ""]
        width = max(len(c) for c in table.index) + 1
        lines.append(" " * (width + 2) + "  ".join(f"{y:<10}" for y in self.years))
        for column, row in table.iterrows():
            cells = [(v if not v.startswith("not measured") else "-") for v in row]
            lines.append(f"  {column:<{width}}" + "  ".join(f"{c:<10}" for c in cells))
        lines += [
            "",
            "verified = NCHS input program for that year; reported = public analyses of that",
            "year's file; uncertain = used if present; '-' = not measured (see measured_table()).",
        ]
        for var in self.variables.values():
            for year, reason in (var.optional or {}).items():
                lines.append(f"{year}, {var.name}: {reason}")
        return "\n".join(lines)


@lru_cache(maxsize=1)
def nhis_codebook() -> NHISCodebook:
    text = resources.files("analysis.resources").joinpath("nhis_codebook.yaml").read_text()
    return NHISCodebook(parse_yaml(text))
