"""Published NCHS figures and the tidy indicator + domain each one corresponds to.

``resources/published_figures.csv`` holds the figures (copied from
``../shared/reference/published_figures.csv`` with their citations) and, per figure, the tidy
column, the levels counted as "yes", the domain (e.g. ``sex = female``) and the tolerances.
`figure_targets` turns a prepared tidy frame into those indicators and domains;
`compare_with_published` asks a design-based estimator for each and compares. The estimator is
a parameter on purpose: it must be the project's survey core (`analysis.survey`), which
reproduces R ``survey``; nothing here computes a design-based number itself.

Denominators: adults with a known value of the indicator in the domain (refused, not
ascertained and don't know are excluded), as in the NCHS reports. Age-adjusted figures carry
their standard population (``age_standard``: age groups and weights) and are estimated by
direct standardisation (`analysis.survey.direct_standardize`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from analysis.data import schema
from analysis.survey import SurveyDesign, direct_standardize

__all__ = [
    "Estimator",
    "FigureTarget",
    "ValidationPlan",
    "ValidationResult",
    "age_groups",
    "compare_with_published",
    "design_estimator",
    "figure_targets",
    "published_figures",
]

# estimator(frame, indicator 0/1 with NaN for unknown, domain mask[, age_standard=...]) ->
# (percent, standard error in percentage points), design-based over the frame's
# weight/stratum/psu columns; age_standard is passed only for age-adjusted figures.
Estimator = Callable[..., tuple[float, float]]

# an age group ("18-44", "65+") and its weight in the standard population
AgeStandard = tuple[tuple[str, float], ...]


def published_figures(year: int | None = None) -> pd.DataFrame:
    """The published figures with citations and their tidy mapping (optionally one year)."""
    with resources.files("analysis.resources").joinpath("published_figures.csv").open() as fh:
        table = pd.read_csv(fh, dtype={"domain_column": "string", "domain_value": "string"})
    if year is not None:
        table = table[table["year"] == year].reset_index(drop=True)
    return table


@dataclass(frozen=True)
class FigureTarget:
    """One published figure and how to compute it from the tidy frame."""

    figure_id: str
    year: int
    percent: float
    standard_error: float | None
    tidy_column: str
    positive_levels: tuple[str, ...]
    domain_column: str | None
    domain_value: str | None
    tolerance_percent_points: float
    tolerance_standard_error: float
    source: str
    note: str
    age_standard: AgeStandard | None = None

    @property
    def indicator_label(self) -> str:
        return f"{self.tidy_column} in {{{', '.join(map(str, self.positive_levels))}}}"

    @property
    def domain_label(self) -> str:
        return (
            "all adults"
            if not self.domain_column
            else f"{self.domain_column} = {self.domain_value}"
        )

    def indicator(self, frame: pd.DataFrame) -> pd.Series:
        """1.0 if the tidy value is one of the positive levels, 0.0 if another, NaN if unknown."""
        values = frame[self.tidy_column]
        known = values.notna()
        hit = values.astype(object).isin(self.positive_levels)
        return hit.astype("float64").where(known)

    def domain(self, frame: pd.DataFrame) -> pd.Series:
        if not self.domain_column:
            return pd.Series(True, index=frame.index)
        return (frame[self.domain_column].astype(object) == self.domain_value).fillna(False)

    @property
    def adjustment(self) -> str:
        if not self.age_standard:
            return "crude"
        return "age-adjusted (" + ", ".join(f"{g}: {w:g}" for g, w in self.age_standard) + ")"


@dataclass
class ValidationPlan:
    """Targets resolved against one prepared frame (counts only; no estimates)."""

    year: int
    targets: list[FigureTarget]
    frame: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for t in self.targets:
            indicator, domain = t.indicator(self.frame), t.domain(self.frame)
            rows.append(
                {
                    "figure_id": t.figure_id,
                    "published_percent": t.percent,
                    "published_se": t.standard_error,
                    "indicator": t.indicator_label,
                    "domain": t.domain_label,
                    "n_domain": int(domain.sum()),
                    "n_known": int((domain & indicator.notna()).sum()),
                    "adjustment": t.adjustment,
                    "note": t.note,
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [f"NHIS {self.year}: {len(self.targets)} published figures to reproduce"]
        for row in self.to_frame().itertuples():
            se = f", SE {row.published_se}" if pd.notna(row.published_se) else ""
            adjusted = "" if row.adjustment == "crude" else f", {row.adjustment}"
            lines.append(
                f"  {row.figure_id:<28} {row.published_percent:5.1f}%{se}  "
                f"{row.indicator} | {row.domain} (n known {row.n_known:,}{adjusted})"
            )
        return "\n".join(lines)


def figure_targets(frame: pd.DataFrame, year: int = 2019) -> ValidationPlan:
    """Map each published figure of ``year`` to its indicator and domain in ``frame``.

    Raises `analysis.data.schema.NotMeasuredError` if the frame lacks a needed column, and
    ValueError if a positive level is not a level of that column (a mapping typo).
    """
    table = published_figures(year)
    if table.empty:
        raise ValueError(f"no published figures for {year} in published_figures.csv")
    targets = []
    for row in table.itertuples():
        levels = tuple(s.strip() for s in row.positive_levels.split(";"))
        domain_column = row.domain_column if pd.notna(row.domain_column) else None
        age_standard = _age_standard(row.age_standard) if pd.notna(row.age_standard) else None
        needed = [row.tidy_column] + ([domain_column] if domain_column else [])
        needed += ["age"] if age_standard else []
        schema.require_measured(frame, *needed)
        column = frame[row.tidy_column]
        if isinstance(column.dtype, pd.CategoricalDtype):
            unknown = set(levels) - set(column.cat.categories)
            if unknown:
                raise ValueError(f"{row.figure_id}: {unknown} are not levels of {row.tidy_column}")
        elif pd.api.types.is_bool_dtype(column.dtype):
            truth = {"True": True, "False": False}
            if not set(levels) <= set(truth):
                raise ValueError(f"{row.figure_id}: {row.tidy_column} is yes/no; levels {levels}")
            levels = tuple(truth[level] for level in levels)
        se = float(row.standard_error) if pd.notna(row.standard_error) else None
        targets.append(
            FigureTarget(
                figure_id=row.figure_id,
                year=int(row.year),
                percent=float(row.percent),
                standard_error=se,
                tidy_column=row.tidy_column,
                positive_levels=levels,
                domain_column=domain_column,
                domain_value=row.domain_value if domain_column else None,
                tolerance_percent_points=float(row.tolerance_percent_points),
                tolerance_standard_error=float(row.tolerance_standard_error),
                source=row.source,
                note=row.mapping_note if isinstance(row.mapping_note, str) else "",
                age_standard=age_standard,
            )
        )
    return ValidationPlan(year, targets, frame)


def _age_standard(text: str) -> AgeStandard:
    """'18-44:0.530537;45-64:0.299196;65+:0.170268' -> ((group, weight), ...)."""
    pairs = []
    for part in text.split(";"):
        group, weight = part.split(":")
        pairs.append((group.strip(), float(weight)))
    return tuple(pairs)


def age_groups(age: pd.Series, standard: AgeStandard) -> pd.Series:
    """The standard's age group of each age ('18-44' is 18 to 44, '65+' is 65 or older)."""
    out = pd.Series(None, index=age.index, dtype=object)
    for group, _ in standard:
        low, _, high = group.replace("+", "-").partition("-")
        upper = float(high) if high else np.inf
        out[(age >= float(low)) & (age <= upper)] = group
    uncovered = age.notna() & out.isna()
    if uncovered.any():
        raise ValueError(
            f"{int(uncovered.sum())} age(s) outside the standard's groups "
            f"{[g for g, _ in standard]}, e.g. {sorted(age[uncovered].unique())[:5]}"
        )
    return out


@dataclass
class ValidationResult:
    table: pd.DataFrame

    @property
    def all_within_tolerance(self) -> bool:
        return bool(self.table["within_tolerance"].all())

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        lines = ["Published figure vs design-based estimate"]
        for r in self.table.itertuples():
            flag = "ok  " if r.within_tolerance else "MISS"
            se = (
                ""
                if pd.isna(r.published_se)
                else f" SE {r.estimate_se:.2f} vs {r.published_se:.2f}"
            )
            lines.append(
                f"  [{flag}] {r.figure_id:<28} {r.estimate:6.2f}% vs {r.published_percent:5.1f}% "
                f"(diff {r.difference:+.2f} pp){se}"
            )
        return "\n".join(lines)


def compare_with_published(
    frame: pd.DataFrame, estimator: Estimator, year: int = 2019
) -> ValidationResult:
    """Estimate every figure with ``estimator`` and compare with the published value.

    Within tolerance: |estimate - published| <= tolerance (0.1 pp) and, where a standard error
    is published, |SE - published SE| <= tolerance (0.02).
    """
    plan = figure_targets(frame, year)
    rows = []
    for t in plan.targets:
        adjust = {"age_standard": t.age_standard} if t.age_standard else {}
        estimate, se = estimator(frame, t.indicator(frame), t.domain(frame), **adjust)
        difference = estimate - t.percent
        ok = abs(difference) <= t.tolerance_percent_points + 1e-9
        se_difference = math.nan
        if t.standard_error is not None:
            se_difference = se - t.standard_error
            ok = ok and abs(se_difference) <= t.tolerance_standard_error + 1e-9
        rows.append(
            {
                "figure_id": t.figure_id,
                "published_percent": t.percent,
                "estimate": estimate,
                "difference": difference,
                "published_se": t.standard_error,
                "estimate_se": se,
                "se_difference": se_difference,
                "within_tolerance": ok,
            }
        )
    return ValidationResult(pd.DataFrame(rows))


def design_estimator(
    frame: pd.DataFrame,
    indicator: pd.Series,
    domain: pd.Series,
    age_standard: AgeStandard | None = None,
):
    """The design-based estimator of a published NHIS percentage and its SE, in points.

    Uses the full NHIS design (weights, strata, PSUs nested in strata) carried by the tidy
    frame; the domain is estimated on the full design (R ``svyby``/``subset``), and unknown
    answers (NaN indicator) are left out of the denominator as NCHS does. With
    ``age_standard`` the percentage is directly age-standardised within the domain (R
    ``svystandardize(by=~age group, over=~domain, excluding.missing=~indicator)``).
    """
    data = pd.DataFrame(
        {
            "weight": frame["weight"].to_numpy(),
            "stratum": frame["stratum"].to_numpy(),
            "psu": frame["psu"].to_numpy(),
            "indicator": pd.to_numeric(indicator, errors="coerce").to_numpy(dtype=float),
            "in_domain": domain.fillna(False).to_numpy(dtype=bool),
        }
    )
    design = SurveyDesign(data, weight="weight", strata="stratum", psu="psu", nest=True)
    if not age_standard:
        est = design.proportion("indicator", domain="in_domain")
        return 100.0 * float(est.value), 100.0 * float(est.std_error)
    data["age_group"] = age_groups(frame["age"].reset_index(drop=True), age_standard).to_numpy()
    standard = dict(age_standard)
    if data["in_domain"].all():
        est = direct_standardize(design, "indicator", by="age_group", population=standard)
    else:
        est = direct_standardize(
            design, "indicator", by="age_group", population=standard, over="in_domain"
        )[True]
    return 100.0 * float(est.value), 100.0 * float(est.std_error)
