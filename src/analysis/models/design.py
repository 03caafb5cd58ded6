"""The survey design and model columns the association analyses (C1, C3, C4, C7) share.

Every analysis uses ONE design over all rows: subgroups are domains (weights outside are
zero), never subsets, so every stratum and PSU stays in the variance (R ``svyby`` /
``subset(design)`` semantics).

Design from a tidy frame: ``weight``, ``stratum`` and ``psu`` with ``nest=True`` (NHIS PSU
codes repeat across strata). The lonely-PSU policy defaults to ``"adjust"`` (R's
``survey.lonely.psu = "adjust"``): a domain analysis or a pooled/filtered file can leave a
stratum with one PSU, and 'adjust' keeps its contribution (centred at the grand mean,
conservative) rather than failing or silently dropping it. A HELP-like frame (weight 1, no
stratum, PSU = person) becomes an unstratified person-clustered design.

Definitions (who counts as chronic back pain, BMI groups, reference levels, registry keys)
live in ``resources/associations.yaml``, one measure set per way the surveys asked about pain
and anxiety (`choose_measure_set`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from analysis.core.io import parse_yaml
from analysis.survey.design import SurveyDesign


class AssociationError(ValueError):
    """The inputs cannot be analysed as specified; the message names the column."""


@lru_cache(maxsize=1)
def load_spec() -> dict:
    """The definitions in ``resources/associations.yaml``."""
    text = resources.files("analysis.resources").joinpath("associations.yaml").read_text()
    return parse_yaml(text)


def survey_design(
    data: pd.DataFrame, *, lonely_psu: str = "adjust", label: str | None = None
) -> SurveyDesign:
    """The design of a tidy frame: weight, stratum, psu (nest=True); absent ones are omitted."""
    if "weight" not in data.columns:
        raise AssociationError("tidy frame: column 'weight' is missing (expected weights > 0)")
    if label is None and "source" in data.columns and len(data):
        label = str(data["source"].iloc[0])
    return SurveyDesign(
        data,
        weight="weight",
        strata="stratum" if "stratum" in data.columns else None,
        psu="psu" if "psu" in data.columns else None,
        nest=True,
        lonely_psu=lonely_psu,
        label=label,
    )


def redesign(design: SurveyDesign, frame: pd.DataFrame) -> SurveyDesign:
    """A design over ``frame`` (the design's data with derived columns added) with the
    settings of ``design``: its columns, nesting, lonely-PSU policy and label."""
    return SurveyDesign(
        frame,
        weight=design.weight_column,
        strata=design.strata_column,
        psu=design.psu_column,
        nest=design.nest,
        lonely_psu=design.lonely_psu,
        label=design.label,
    )


def frame_and_rebuild(design_or_frame, lonely_psu: str):
    """(copy of the data, function building a design over a frame with the same settings).

    An analysis adds its derived columns to the copy, then builds the design over it.
    """
    if isinstance(design_or_frame, SurveyDesign):
        d = design_or_frame
        return d.data.copy(), lambda frame: redesign(d, frame)
    if not isinstance(design_or_frame, pd.DataFrame):
        raise AssociationError(
            f"expected a tidy DataFrame or a SurveyDesign, got {type(design_or_frame).__name__}"
        )
    return design_or_frame.copy(), lambda frame: survey_design(frame, lonely_psu=lonely_psu)


def source_of(df: pd.DataFrame) -> str:
    """The data source a tidy frame comes from ('unknown' without a source column)."""
    return str(df["source"].iloc[0]) if "source" in df.columns and len(df) else "unknown"


def as_float(s: pd.Series) -> pd.Series:
    """A column as float64, NA (of any nullable dtype) as NaN."""
    return pd.to_numeric(s.astype("object").where(s.notna(), np.nan), errors="coerce").astype(
        "float64"
    )


def categorical(values: pd.Series, categories, reference=None) -> pd.Series:
    """A categorical with the reference level first and unused levels dropped."""
    cats = list(categories)
    if reference is not None:
        cats = [reference] + [c for c in cats if c != reference]
    obj = values.astype("object").where(values.notna(), None)
    out = pd.Series(pd.Categorical(obj, categories=cats), index=values.index)
    return out.cat.remove_unused_categories()


def choose_measure_set(analysis: str, measures) -> tuple[dict, list[dict]]:
    """(the first measure set of ``analysis`` for which ``measures(set)`` is true, else the
    first set; the other sets). ``analysis``: 'comorbidity' or 'anxiety_pain'."""
    section = load_spec()[analysis]
    first = {k: v for k, v in section.items() if k != "other_measure_sets"}
    sets = [first, *section.get("other_measure_sets", [])]
    chosen = next((s for s in sets if measures(s)), sets[0])
    return chosen, [s for s in sets if s is not chosen]


def model_measure_set(df: pd.DataFrame) -> tuple[dict, list[dict]]:
    """The ``anxiety_pain`` measure set of a tidy frame: the first whose outcome it measures."""
    return choose_measure_set("anxiety_pain", lambda s: s["outcome"] in df.columns)


def relabel(values: pd.Series, levels: dict[str, list]) -> pd.Series:
    """Each value renamed to the level that lists it (``{level: [values]}``); others NaN."""
    mapping = {v: level for level, values_of in levels.items() for v in values_of}
    return values.astype("object").map(mapping)


def prepare_model_columns(
    df: pd.DataFrame, measures: dict
) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Add the model's derived columns for one measure set of ``anxiety_pain``; return
    (frame, covariate terms used, absent covariates).

    ``back_pain_any``: the outcome as 0/1 (a severity: any level but ``no_pain_level``); the
    exposure as a categorical ``<exposure_term>`` (reference first), its step
    ``<exposure_term>_step`` (0, 1, ...) and, if the set has one, its collapsed version.
    """
    spec = load_spec()["anxiety_pain"]
    out = df.copy()
    outcome = measures["outcome"]
    if outcome in out.columns:
        y = out[outcome]
        if "no_pain_level" in measures:
            out["back_pain_any"] = (
                (y != measures["no_pain_level"])
                .astype("float64")
                .where(y.notna().to_numpy(), np.nan)
            )
        else:
            out["back_pain_any"] = as_float(y)
    if measures["exposure"] in out.columns:
        g = out[measures["exposure"]]
        term, levels = measures["exposure_term"], measures["exposure_levels"]
        reference = next(iter(levels))
        out[term] = categorical(relabel(g, levels), list(levels), reference)
        step = relabel(g, levels).map({lv: i for i, lv in enumerate(levels)})
        out[f"{term}_step"] = pd.to_numeric(step, errors="coerce").astype("float64")
        if "collapsed" in measures:
            c = measures["collapsed"]
            out[c["term"]] = categorical(relabel(g, c["levels"]), list(c["levels"]), reference)
    used: list[str] = []
    absent: dict[str, str] = {}
    for name, cov in measures["covariates"].items():
        col = cov["column"]
        if col not in out.columns:
            absent[name] = col
            continue
        term = cov["term"]
        if name == "age":
            out[term] = as_float(out[col])
        elif name == "sex":
            out[term] = categorical(out[col], ["female", "male"], cov["reference"])
        elif name == "bmi":
            bmi = as_float(out[col])
            lab = pd.Series(None, index=out.index, dtype="object")
            for g in spec["bmi_groups"]:
                lab[(bmi >= g["low"]) & (bmi < float(g["high"]))] = g["label"]
            out[term] = categorical(lab, [g["label"] for g in spec["bmi_groups"]])
        elif name == "depression":
            s = as_float(out[col])
            out[term] = s
            if "depression_at_least" in measures:
                at_least = measures["depression_at_least"]
                out["phq8_ge10"] = (s >= at_least).astype("float64").where(s.notna())
        elif name == "activity":
            levels = ["inactive", "insufficiently active", "active"]
            out[term] = categorical(out[col], levels, cov["reference"])
        used.append(term)
    return out, used, absent
