"""Comorbidity of anxiety and chronic back pain (C1).

Weighted prevalence of GAD-7 >= 10 and of anxious feelings daily or weekly among adults with
vs without chronic back pain, the two groups as domains of one design (`design`);
prevalence ratios with a delta-method CI on the log scale and an E-value. Who counts as
chronic back pain, and the registry keys, are in ``resources/associations.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.core.findings import Finding
from analysis.data.schema import NotMeasuredError, require_measured
from analysis.models.association_result import AssociationResult, FindingWriter, base_caveats
from analysis.models.design import as_float, frame_and_rebuild, load_spec, source_of
from analysis.models.evalue import evalue


@dataclass
class ComorbidityResult(AssociationResult):
    """Prevalence of anxiety among adults with vs without chronic back pain, and their ratio."""

    source: str
    exposure_rule: str | None
    exposure_caveat: str | None
    table: pd.DataFrame  # one row per outcome (see to_frame)
    missing: dict[str, str]  # outcome name -> the column not measured
    n: int
    level: float = 0.95
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Per outcome: prevalence (with logit CI) in each group, prevalence ratio, E-value."""
        return self.table.copy()

    def summary(self) -> str:
        lines = [
            f"Anxiety among adults with vs without chronic back pain (source {self.source}, "
            f"n = {self.n}; design-based, one design, groups as domains)",
            f"Chronic back pain defined as: {self.exposure_rule or 'not measured'}",
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
        lines.extend(self.notes)
        return "\n".join(lines)

    def caveats(self, source: str) -> list[str]:
        return base_caveats(source) + ([self.exposure_caveat] if self.exposure_caveat else [])

    def _findings(self, writer: FindingWriter) -> list[Finding]:
        spec = load_spec()["comorbidity"]
        cid = spec["claim_id"]
        out: list[Finding] = []
        for o in spec["outcomes"]:
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
                        f"{o['label']} among adults with chronic back pain",
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
                        f"{o['label']}: chronic back pain vs none (prevalence ratio)",
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
        return out


def chronic_back_pain(df: pd.DataFrame) -> tuple[pd.Series | None, str | None, str | None]:
    """Chronic back pain (boolean with NA) by the first rule whose columns are measured.

    Rules (``associations.yaml``): chronic pain AND any back pain (NHIS); chronic pain of any
    site when no back-pain item exists; back pain 'a lot' when no pain-frequency item exists.
    Returns (series, rule name, caveat) or (None, None, None) when nothing is measured.
    """
    for rule in load_spec()["comorbidity"]["exposure_rules"]:
        if all(c in df.columns for c in rule["columns"]):
            cols = rule["columns"]
            if cols == ["chronic_pain", "back_pain_severity"]:
                chronic = df["chronic_pain"].astype("boolean")
                back = df["back_pain_severity"]
                back_any = (back != "not at all").astype("boolean").mask(back.isna())
                value = chronic & back_any
            elif cols == ["chronic_pain"]:
                value = df["chronic_pain"].astype("boolean")
            else:
                sev = df["back_pain_severity"]
                value = (sev == "a lot").astype("boolean").mask(sev.isna())
            return value, rule["name"], rule.get("caveat")
    return None, None, None


def comorbidity(
    design_or_frame, *, lonely_psu: str = "adjust", level: float = 0.95
) -> ComorbidityResult:
    """C1: anxiety prevalence with vs without chronic back pain, and prevalence ratios."""
    df, build = frame_and_rebuild(design_or_frame, lonely_psu)
    spec = load_spec()["comorbidity"]
    source = source_of(df)
    exposure, rule, caveat = chronic_back_pain(df)
    missing: dict[str, str] = {}
    if exposure is None:
        for o in spec["outcomes"]:
            missing[o["name"]] = "chronic_pain"
        return ComorbidityResult(source, None, None, pd.DataFrame(), missing, len(df), level)
    yes, no = spec["exposed_label"], spec["unexposed_label"]
    df["_chronic_back_pain"] = pd.Series(
        np.where(exposure.fillna(False).to_numpy(dtype=bool), yes, no), index=df.index
    ).where(exposure.notna().to_numpy(), None)
    outcomes = []
    for o in spec["outcomes"]:
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
        by = design.proportion(o["name"], by="_chronic_back_pain")
        frame = by.to_frame(level)
        pr = by.prevalence_ratio(yes, no)
        lo, hi = pr.ci(level)
        ev = evalue(pr.ratio, lo, hi, measure="prevalence ratio")
        ex, un = (
            frame.loc[frame["_chronic_back_pain"] == yes].iloc[0],
            frame.loc[frame["_chronic_back_pain"] == no].iloc[0],
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
    return ComorbidityResult(source, rule, caveat, table, missing, len(df), level)
