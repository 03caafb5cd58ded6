"""The tidy respondent schema shared by every data source.

The column list, units and codes live in ``resources/schema.yaml`` (data, not
code); this module turns it into a pandera schema, validates frames against it
and lets analyses tell "not measured in this source" apart from missing data.

Besides each column's type and range, the schema rejects infinite floats (an infinite
weight would otherwise reach the survey estimators) and a repeated ``respondent_id``
within one source and survey year (and wave, for panels): the ``unique_key`` of the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from analysis.core.io import parse_yaml

__all__ = [
    "ColumnSpec",
    "NotMeasuredError",
    "SchemaValidationError",
    "column_specs",
    "empty_frame",
    "is_measured",
    "measured_columns",
    "pandera_schema",
    "require_measured",
    "categorical_dtype",
    "unique_key",
    "validate",
]

_PANDAS_DTYPES = {"float": "float64", "int": "Int64", "bool": "boolean", "str": "string"}
_UNIQUE_CHECK = "unique_key"


class SchemaValidationError(ValueError):
    """A frame does not follow the tidy schema; the message names source, column and rule."""


class NotMeasuredError(LookupError):
    """The analysis needs a column that this source does not measure (absent by design)."""

    def __init__(self, column: str, source: str):
        self.column = column
        self.source = source
        super().__init__(f"'{column}' is not measured in source '{source}'")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    group: str
    dtype: str
    required: bool
    description: str
    levels: tuple[str, ...] = ()
    ordered: bool = True
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: float | None = None
    cutpoints: tuple[float, ...] = ()

    @property
    def pandas_dtype(self) -> Any:
        if self.dtype == "category":
            return pd.CategoricalDtype(list(self.levels), ordered=self.ordered)
        return _PANDAS_DTYPES[self.dtype]


@lru_cache(maxsize=1)
def _declaration() -> dict[str, Any]:
    text = resources.files("analysis.resources").joinpath("schema.yaml").read_text()
    return parse_yaml(text)


@lru_cache(maxsize=1)
def column_specs() -> dict[str, ColumnSpec]:
    """All schema columns in declaration order, read from ``schema.yaml``."""
    raw = _declaration()["columns"]
    specs = {}
    for name, c in raw.items():
        specs[name] = ColumnSpec(
            name=name,
            group=c["group"],
            dtype=c["dtype"],
            required=bool(c["required"]),
            description=c["description"],
            levels=tuple(c.get("levels", ())),
            ordered=bool(c.get("ordered", True)),
            unit=c.get("unit"),
            minimum=c.get("min"),
            maximum=c.get("max"),
            min_exclusive=c.get("min_exclusive"),
            cutpoints=tuple(c.get("cutpoints", ())),
        )
    return specs


def unique_key() -> tuple[str, ...]:
    """The columns that identify a row (``unique_key`` in ``schema.yaml``): source, survey
    year, respondent and, for panels, wave."""
    return tuple(_declaration()["unique_key"])


def categorical_dtype(column: str) -> pd.CategoricalDtype:
    """The pandas categorical dtype (with its ordered levels) of a schema column."""
    spec = column_specs()[column]
    if spec.dtype != "category":
        raise KeyError(f"schema column '{column}' is not categorical")
    return spec.pandas_dtype


def _checks(spec: ColumnSpec) -> list[pa.Check]:
    checks = []
    if spec.minimum is not None:
        checks.append(pa.Check.ge(spec.minimum))
    if spec.maximum is not None:
        checks.append(pa.Check.le(spec.maximum))
    if spec.min_exclusive is not None:
        checks.append(pa.Check.gt(spec.min_exclusive))
    if spec.dtype == "float":
        checks.append(pa.Check(lambda values: ~np.isinf(values), name="finite (not inf)"))
    return checks


def _rows_with_unique_key(df: pd.DataFrame) -> pd.Series:
    """True for each row whose key (the `unique_key` columns this frame has) no other row has."""
    key = [c for c in unique_key() if c in df.columns]
    if "respondent_id" not in key:  # the missing required column is reported on its own
        return pd.Series(True, index=df.index)
    return ~df.duplicated(key, keep=False)


@lru_cache(maxsize=1)
def pandera_schema() -> pa.DataFrameSchema:
    """The pandera schema. Design columns may not be missing; measured items may (non-response)."""
    cols = {}
    for spec in column_specs().values():
        cols[spec.name] = pa.Column(
            spec.pandas_dtype,
            checks=_checks(spec),
            nullable=spec.group != "design" or spec.name == "wave",
            required=spec.required,
            description=spec.description,
            title=spec.unit,
        )
    return pa.DataFrameSchema(
        cols,
        checks=[pa.Check(_rows_with_unique_key, name=_UNIQUE_CHECK)],
        strict=False,
        coerce=False,
        name="tidy respondent schema",
    )


def validate(df: pd.DataFrame, *, where: str | None = None) -> pd.DataFrame:
    """Validate a frame against the schema; raise `SchemaValidationError` naming every failure.

    ``where`` names the file or source in the message (for example a Parquet path).
    """
    try:
        return pandera_schema().validate(df, lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        label = where or _source_label(df)
        raise SchemaValidationError(_describe(exc, label)) from None


def _source_label(df: pd.DataFrame) -> str:
    if "source" in df.columns and len(df):
        return f"source '{df['source'].iloc[0]}'"
    return "frame"


def _rows(labels: pd.Series) -> str:
    """' (rows 3, 17, 40 and 12 more)': the index labels of the failing rows."""
    found = list(dict.fromkeys(v for v in labels.tolist() if not pd.isna(v)))
    if not found:
        return ""
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f" (rows {', '.join(str(v) for v in found[:5])}{more})"


def _describe(exc: Exception, label: str) -> str:
    cases = getattr(exc, "failure_cases", None)
    if cases is None or len(cases) == 0:
        return f"{label}: {exc}"
    lines = [f"{label} does not follow the tidy respondent schema:"]
    is_key = cases["check"] == _UNIQUE_CHECK
    for (column, check), group in cases[~is_key].groupby(
        ["column", "check"], dropna=False, sort=False
    ):
        examples = ", ".join(repr(v) for v in group["failure_case"].head(3).tolist())
        col = column if isinstance(column, str) else "<frame>"
        expected = ""
        if isinstance(column, str) and column in column_specs():
            spec = column_specs()[column]
            expected = f" (expected {spec.dtype}"
            if spec.levels:
                expected += f" with levels {list(spec.levels)}"
            expected += ")"
        lines.append(
            f"  column '{col}'{expected}: failed {check} in {len(group)} row(s)"
            f"{_rows(group['index'])}, e.g. {examples}"
        )
    if is_key.any():  # a frame-wide check: pandera lists every column of each repeated row
        ids = cases[is_key & (cases["column"] == "respondent_id")]
        within = [c for c in unique_key() if c != "respondent_id" and c in set(cases["column"])]
        examples = ", ".join(repr(v) for v in ids["failure_case"].drop_duplicates().head(3))
        lines.append(
            f"  column 'respondent_id' (expected unique within {' + '.join(within)}): repeated "
            f"in {len(ids)} row(s){_rows(ids['index'])}, e.g. {examples}"
        )
    return "\n".join(lines)


def measured_columns(df: pd.DataFrame) -> list[str]:
    """Schema columns present in this frame, i.e. measured by its source."""
    return [c for c in column_specs() if c in df.columns]


def is_measured(df: pd.DataFrame, column: str) -> bool:
    return column in df.columns


def require_measured(df: pd.DataFrame, *columns: str) -> None:
    """Raise `NotMeasuredError` for the first column this source does not measure."""
    for column in columns:
        if column not in df.columns:
            source = str(df["source"].iloc[0]) if "source" in df.columns and len(df) else "unknown"
            raise NotMeasuredError(column, source)


def empty_frame(columns: list[str] | None = None) -> pd.DataFrame:
    """An empty frame with schema dtypes (all columns, or the ones named)."""
    specs = column_specs()
    names = columns or list(specs)
    return pd.DataFrame({n: pd.Series(dtype=specs[n].pandas_dtype) for n in names})


def gad7_category(score: pd.Series) -> pd.Series:
    """GAD-7 total to its severity category with the cut-points declared in the schema."""
    return _categorise(score, "gad7_category")


def phq8_category(score: pd.Series) -> pd.Series:
    """PHQ-8 total to its severity category with the cut-points declared in the schema."""
    return _categorise(score, "phq8_category")


def _categorise(score: pd.Series, column: str) -> pd.Series:
    spec = column_specs()[column]
    bins = [-float("inf"), *spec.cutpoints, float("inf")]
    out = pd.cut(score.astype("float64"), bins=bins, right=False, labels=list(spec.levels))
    return out.astype(spec.pandas_dtype)
