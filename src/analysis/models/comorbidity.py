"""Comorbidity of anxiety and back pain (C1).

Weighted prevalence of anxiety among adults with vs without back pain, the two groups as
domains of one design (`design`); prevalence ratios with a delta-method CI on the log scale
and an E-value. What counts as back pain and as anxiety depends on how the source asked
(``resources/associations.yaml``, one measure set per way of asking): chronic back pain and
the GAD-7 (NHIS 2019 on, the synthetic world), or low back pain in the past 3 months and the
K6 nervousness item and distress score (NHIS 2017); each set has its own registry keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.core.findings import Finding
from analysis.data.schema import NotMeasuredError, require_measured
from analysis.models.association_result import AssociationResult, FindingWriter, base_caveats
from analysis.models.design import (
    as_float,
    choose_measure_set,
    frame_and_rebuild,
    load_spec,
    source_of,
)
from analysis.models.evalue import evalue


@dataclass
class ComorbidityResult(AssociationResult):
    """Prevalence of anxiety among adults with vs without back pain, and their ratio."""

    source: str
    measures: dict  # the measure set analysed (associations.yaml)
    exposure_rule: str | None
    exposure_caveat: str | None
    table: pd.DataFrame  # one row per outcome (see to_frame)
    missing: dict[str, str]  # outcome name -> the column not measured
    n: int
    not_analysed: list[tuple[dict, str]]  # the other measure sets, each with a column it lacks
    level: float = 0.95
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Per outcome: prevalence (with logit CI) in each group, prevalence ratio, E-value."""
        return self.table.copy()

    def summary(self) -> str:
        lines = [
            f"{self.measures['title']} (source {self.source}, n = {self.n}; design-based, one "
            "design, groups as domains)",
            f"Measures: {self.measures['measures']}",
            f"Back pain group: {self.exposure_rule or 'not measured'}",
        ]
        if self.exposure_caveat:
            lines.append(f"Caveat: {self.exposure_caveat}")
        for _name, row in self.table.iterrows():
            lines.append(
                f"  {row['label']}: {100 * row['p_exposed']:.1f}% "
                f"[{100 * row['p_exposed_ci_low']:.1f}, {100 * row['p_exposed_ci_high']:.1f}] vs "
                f"{100 * row['p_unexposed']:.1f}% "
                f"[{100 * row['p_unexposed_ci_low']:.1f}, {100 * row['p_unexposed_ci_high']:.1f}]"
                f"; PR {row['prevalence_ratio']:.2f} [{row['pr_ci_low']:.2f}, "
                f"{row['pr_ci_high']:.2f}], E-value {row['evalue_point']:.2f} "
                f"(CI {row['evalue_ci']:.2f})"
            )
        for name, col in self.missing.items():
            lines.append(f"  {name}: not measured in this source ('{col}' absent)")
        for measures, col in self.not_analysed:
            lines.append(f"  Not analysed: {measures['name']} ('{col}' absent)")
        lines.extend(self.notes)
        return "\n".join(lines)

    def caveats(self, source: str) -> list[str]:
        own = [self.exposure_caveat] if self.exposure_caveat else []
        return base_caveats(source) + own + list(self.measures["caveats"])

    def _findings(self, writer: FindingWriter) -> list[Finding]:
        cid = load_spec()["comorbidity"]["claim_id"]
        exposed = self.measures["exposed_label"]
        out: list[Finding] = []
        for o in self.measures["outcomes"]:
            keys = (o["prevalence_key"], o["ratio_key"])
            if o["name"] in self.missing:
                out += [writer.not_measured(k, cid, self.missing[o["name"]]) for k in keys]
                continue
            row = self.table.loc[o["name"]]
            extra = {
                "exposure": self.exposure_rule,
                "p_unexposed": float(row["p_unexposed"]),
                "level": self.level,
            }
            if writer.allowed(keys[0]):
                out.append(
                    writer.estimate(
                        keys[0],
                        cid,
                        f"{o['label']} among adults with {exposed}",
                        float(row["p_exposed"]),
                        (float(row["p_exposed_ci_low"]), float(row["p_exposed_ci_high"])),
                        null_value=None,
                        extra={**extra, "se": float(row["p_exposed_se"]), "ci": "logit"},
                    )
                )
            if writer.allowed(keys[1]):
                out.append(
                    writer.estimate(
                        keys[1],
                        cid,
                        f"{o['label']}: {exposed} vs none (prevalence ratio)",
                        float(row["prevalence_ratio"]),
                        (float(row["pr_ci_low"]), float(row["pr_ci_high"])),
                        null_value=1.0,
                        extra={
                            **extra,
                            "se_log": float(row["pr_se_log"]),
                            "evalue_point": float(row["evalue_point"]),
                            "evalue_ci": float(row["evalue_ci"]),
                        },
                    )
                )
        for measures, col in self.not_analysed:
            for o in measures["outcomes"]:
                for key in (o["prevalence_key"], o["ratio_key"]):
                    if writer.allowed(key):
                        out.append(writer.not_measured(key, cid, col))
        return out


def _condition(values: pd.Series, condition: dict) -> pd.Series:
    """One condition of an exposure rule, boolean with NA where the answer is missing."""
    if condition.get("is_true"):
        return values.astype("boolean")
    flag = values.isin(condition["in"]) if "in" in condition else ~values.isin(condition["not_in"])
    return flag.astype("boolean").mask(values.isna())


def rule_columns(rule: dict) -> list[str]:
    """The columns an exposure rule reads."""
    return [c["column"] for c in rule["conditions"]]


def back_pain_exposure(
    df: pd.DataFrame, measures: dict
) -> tuple[pd.Series | None, str | None, str | None]:
    """Back pain (boolean with NA) by the set's first exposure rule whose columns are measured.

    Rules of the GAD-7 set (``associations.yaml``): chronic pain AND any back pain (NHIS);
    chronic pain of any site when no back-pain item exists; back pain 'a lot' when no
    pain-frequency item exists. The NHIS 2017 set: low back pain in the past 3 months.
    Returns (series, rule name, caveat) or (None, None, None) when nothing is measured.
    """
    for rule in measures["exposure_rules"]:
        if all(c in df.columns for c in rule_columns(rule)):
            value = None
            for condition in rule["conditions"]:
                flag = _condition(df[condition["column"]], condition)
                value = flag if value is None else value & flag
            return value, rule["name"], rule.get("caveat")
    return None, None, None


def comorbidity(
    design_or_frame, *, lonely_psu: str = "adjust", level: float = 0.95
) -> ComorbidityResult:
    """C1: anxiety prevalence with vs without back pain, and prevalence ratios, for the first
    measure set whose back-pain exposure the source measures."""
    df, build = frame_and_rebuild(design_or_frame, lonely_psu)
    source = source_of(df)
    measures, others = choose_measure_set(
        "comorbidity", lambda s: back_pain_exposure(df, s)[0] is not None
    )
    not_analysed = [
        (s, next(c for c in rule_columns(s["exposure_rules"][0]) if c not in df.columns))
        for s in others
        if back_pain_exposure(df, s)[0] is None
    ]
    exposure, rule, caveat = back_pain_exposure(df, measures)
    missing: dict[str, str] = {}
    if exposure is None:
        column = rule_columns(measures["exposure_rules"][0])[0]
        for o in measures["outcomes"]:
            missing[o["name"]] = column
        return ComorbidityResult(
            source, measures, None, None, pd.DataFrame(), missing, len(df), not_analysed, level
        )
    yes, no = measures["exposed_label"], measures["unexposed_label"]
    df["_exposure"] = pd.Series(
        np.where(exposure.fillna(False).to_numpy(dtype=bool), yes, no), index=df.index
    ).where(exposure.notna().to_numpy(), None)
    outcomes = []
    for o in measures["outcomes"]:
        try:
            require_measured(df, o["column"])
        except NotMeasuredError:
            missing[o["name"]] = o["column"]
            continue
        src = df[o["column"]]
        if "at_least" in o:
            flag = as_float(src) >= o["at_least"]
        else:
            flag = src.isin(o["levels"])
        df[o["name"]] = flag.astype("float64").where(src.notna().to_numpy(), np.nan)
        outcomes.append(o)
    design = build(df)
    rows = {}
    for o in outcomes:
        by = design.proportion(o["name"], by="_exposure")
        frame = by.to_frame(level)
        pr = by.prevalence_ratio(yes, no)
        lo, hi = pr.ci(level)
        ev = evalue(pr.ratio, lo, hi, measure="prevalence ratio")
        ex, un = (
            frame.loc[frame["_exposure"] == yes].iloc[0],
            frame.loc[frame["_exposure"] == no].iloc[0],
        )
        rows[o["name"]] = {
            "label": o["label"],
            "p_exposed": ex["estimate"],
            "p_exposed_se": ex["se"],
            "p_exposed_ci_low": ex["logit_ci_low"],
            "p_exposed_ci_high": ex["logit_ci_high"],
            "p_unexposed": un["estimate"],
            "p_unexposed_se": un["se"],
            "p_unexposed_ci_low": un["logit_ci_low"],
            "p_unexposed_ci_high": un["logit_ci_high"],
            "prevalence_ratio": pr.ratio,
            "pr_se_log": pr.se_log,
            "pr_ci_low": lo,
            "pr_ci_high": hi,
            "evalue_point": ev.point,
            "evalue_ci": ev.ci,
            "df": pr.df,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "outcome"
    return ComorbidityResult(
        source, measures, rule, caveat, table, missing, len(df), not_analysed, level
    )
