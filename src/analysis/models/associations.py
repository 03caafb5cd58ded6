"""Comorbidity of anxiety and chronic back pain (C1) and anxiety-pain models (C3, C7).

Both analyses take a tidy frame (or a `SurveyDesign` over one) and use ONE design over all
rows: subgroups are domains (weights outside are zero), never subsets, so every stratum and
PSU stays in the variance (R ``svyby`` / ``subset(design)`` semantics).

* `comorbidity` (C1): weighted prevalence of GAD-7 >= 10 and of anxious feelings daily or
  weekly among adults with vs without chronic back pain; prevalence ratios with a
  delta-method CI on the log scale and an E-value.
* `anxiety_and_pain` (C3, C7): design-based logistic models (quasibinomial ``svyglm``) of any
  back pain on the GAD-7 category adjusted for age, sex, BMI group, depression (PHQ-8 score)
  and physical activity (PHQ-8 >= 10 in place of the score for the depression OR); the dose-response Wald test over the anxiety levels and the 1-df
  trend (odds ratio per category step); the proportional-odds model (``svyolr``) of the four
  severity levels; standardised predicted probabilities by GAD-7 category; E-values.

Definitions (who counts as chronic back pain, BMI groups, reference levels, registry keys)
live in ``resources/associations.yaml``.

Design from a tidy frame: ``weight``, ``stratum`` and ``psu`` with ``nest=True`` (NHIS PSU
codes repeat across strata). The lonely-PSU policy defaults to ``"adjust"`` (R's
``survey.lonely.psu = "adjust"``): a domain analysis or a pooled/filtered file can leave a
stratum with one PSU, and 'adjust' keeps its contribution (centred at the grand mean,
conservative) rather than failing or silently dropping it. A HELP-like frame (weight 1, no
stratum, PSU = person) becomes an unstratified person-clustered design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml
from scipy import stats
from scipy.special import expit

from analysis.core.findings import Finding
from analysis.data.schema import NotMeasuredError, require_measured
from analysis.models.evalue import evalue
from analysis.survey.design import SurveyDesign
from analysis.survey.ordinal import SurveyOrdinalResult, svyolr
from analysis.survey.regression import SurveyGLMResult, WaldTestResult, svyglm

DESIGN_TEXT = "cross-sectional survey"
SYNTHETIC_CAVEAT = "Synthetic data: validates the pipeline against known truth; not evidence."
GAD7_LEVELS = ("none", "mild", "moderate", "severe")


class AssociationError(ValueError):
    """The inputs cannot be analysed as specified; the message names the column."""


@lru_cache(maxsize=1)
def load_spec() -> dict:
    """The definitions in ``resources/associations.yaml``."""
    text = resources.files("analysis.resources").joinpath("associations.yaml").read_text()
    return yaml.safe_load(text)


def _registry_estimand(key: str):
    from analysis.claims.verdicts import load_registry

    est = load_registry().estimands.get(key)
    if est is None:
        raise AssociationError(f"associations.yaml: estimand '{key}' is not in the claims registry")
    return est


# --------------------------------------------------------------------------- design


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


def _frame_and_rebuild(design_or_frame, lonely_psu: str):
    """(copy of the data, function building a design over a frame with the same settings)."""
    if isinstance(design_or_frame, SurveyDesign):
        d = design_or_frame

        def build(frame):
            return SurveyDesign(
                frame,
                weight=d.weight_column,
                strata=d.strata_column,
                psu=d.psu_column,
                nest=d.nest,
                lonely_psu=d.lonely_psu,
                label=d.label,
            )

        return d.data.copy(), build
    if not isinstance(design_or_frame, pd.DataFrame):
        raise AssociationError(
            f"expected a tidy DataFrame or a SurveyDesign, got {type(design_or_frame).__name__}"
        )
    return design_or_frame.copy(), lambda frame: survey_design(frame, lonely_psu=lonely_psu)


def _source(df: pd.DataFrame) -> str:
    return str(df["source"].iloc[0]) if "source" in df.columns and len(df) else "unknown"


def _float(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype("object").where(s.notna(), np.nan), errors="coerce").astype(
        "float64"
    )


def _categorical(values: pd.Series, categories, reference=None) -> pd.Series:
    """A categorical with the reference level first and unused levels dropped."""
    cats = list(categories)
    if reference is not None:
        cats = [reference] + [c for c in cats if c != reference]
    obj = values.astype("object").where(values.notna(), None)
    out = pd.Series(pd.Categorical(obj, categories=cats), index=values.index)
    return out.cat.remove_unused_categories()


def _not_measured(
    key: str, claim_id: str, source: str, column: str, notebook: str, label: str | None = None
) -> Finding:
    est = _registry_estimand(key)
    return Finding(
        claim_id=claim_id,
        estimand=key,
        label=label or f"{key}: not measured in {source}",
        source=source,
        estimate=None,
        measure=est.measure,
        null_value=est.null,
        design=DESIGN_TEXT,
        measured=False,
        caveats=[f"'{column}' is not measured in source '{source}'."],
        notebook=notebook,
        extra={"missing_column": column},
    )


def _allowed(key: str, source: str) -> bool:
    return source in _registry_estimand(key).sources


def _base_caveats(source: str) -> list[str]:
    out = ["Cross-sectional: co-occurrence, not which came first."]
    if source == "synthetic":
        out.insert(0, SYNTHETIC_CAVEAT)
    return out


# --------------------------------------------------------------------------- C1


@dataclass
class ComorbidityResult:
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

    def __str__(self) -> str:
        return self.summary()

    def to_findings(
        self,
        source: str | None = None,
        notebook: str = "02_comorbidity",
        truth: dict[str, float] | None = None,
    ) -> list[Finding]:
        """C1 findings with the registry's keys; measured=False where a column is absent.

        An estimand whose registry entry does not list this source (e.g. the weekly-anxiety
        keys are NHIS-only) is shown in the tables but not written as a finding.
        """
        source = source or self.source
        truth = truth or {}
        spec = load_spec()["comorbidity"]
        cid = spec["claim_id"]
        caveats = _base_caveats(source) + ([self.exposure_caveat] if self.exposure_caveat else [])
        out: list[Finding] = []
        for o in spec["outcomes"]:
            keys = (o["prevalence_key"], o["ratio_key"])
            if o["name"] in self.missing:
                out += [
                    _not_measured(k, cid, source, self.missing[o["name"]], notebook) for k in keys
                ]
                continue
            row = self.table.loc[o["name"]]
            common = dict(
                claim_id=cid, source=source, n=self.n, design=DESIGN_TEXT, notebook=notebook
            )
            extra = {
                "exposure": self.exposure_rule,
                "p_unexposed": float(row["p_unexposed"]),
                "level": self.level,
            }
            if _allowed(keys[0], source):
                out.append(
                    Finding(
                        estimand=keys[0],
                        label=f"{o['label']} among adults with chronic back pain",
                        estimate=float(row["p_exposed"]),
                        ci_low=float(row["p_exposed_ci_low"]),
                        ci_high=float(row["p_exposed_ci_high"]),
                        measure=_registry_estimand(keys[0]).measure,
                        null_value=None,
                        truth=truth.get(keys[0]),
                        caveats=list(caveats),
                        extra={**extra, "se": float(row["p_exposed_se"]), "ci": "logit"},
                        **common,
                    )
                )
            if _allowed(keys[1], source):
                out.append(
                    Finding(
                        estimand=keys[1],
                        label=f"{o['label']}: chronic back pain vs none (prevalence ratio)",
                        estimate=float(row["prevalence_ratio"]),
                        ci_low=float(row["pr_ci_low"]),
                        ci_high=float(row["pr_ci_high"]),
                        measure=_registry_estimand(keys[1]).measure,
                        null_value=1.0,
                        truth=truth.get(keys[1]),
                        caveats=list(caveats),
                        extra={
                            **extra,
                            "se_log": float(row["pr_se_log"]),
                            "evalue_point": float(row["evalue_point"]),
                            "evalue_ci": float(row["evalue_ci"]),
                        },
                        **common,
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
    df, build = _frame_and_rebuild(design_or_frame, lonely_psu)
    spec = load_spec()["comorbidity"]
    source = _source(df)
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
            flag = _float(src) >= o["at_least"]
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


def comorbidity_figure(result: ComorbidityResult, ax=None):
    """Bar chart: prevalence with 95% CIs in each group, one pair of bars per outcome."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    spec = load_spec()["comorbidity"]
    t = result.table
    if t.empty:
        ax.text(0.5, 0.5, "not measured in this source", ha="center", va="center")
        ax.set_axis_off()
        return ax.figure
    long = []
    for _, r in t.iterrows():
        for grp, key in (
            (spec["exposed_label"], "p_exposed"),
            (spec["unexposed_label"], "p_unexposed"),
        ):
            long.append(
                {
                    "outcome": r["label"],
                    "group": grp,
                    "p": 100 * r[key],
                    "lo": 100 * r[f"{key}_ci_low"],
                    "hi": 100 * r[f"{key}_ci_high"],
                }
            )
    long = pd.DataFrame(long)
    outcomes = list(dict.fromkeys(long["outcome"]))
    groups = list(dict.fromkeys(long["group"]))
    width = 0.8 / len(groups)
    colors = sns.color_palette(n_colors=len(groups))
    for j, grp in enumerate(groups):
        sub = long[long["group"] == grp].set_index("outcome").loc[outcomes]
        x = np.arange(len(outcomes)) + (j - (len(groups) - 1) / 2) * width
        ax.bar(x, sub["p"], width=width, color=colors[j], label=grp)
        ax.errorbar(
            x,
            sub["p"],
            yerr=[sub["p"] - sub["lo"], sub["hi"] - sub["p"]],
            fmt="none",
            color="black",
            capsize=4,
        )
    ax.set_xticks(np.arange(len(outcomes)), outcomes)
    ax.legend()
    ax.set_ylabel("weighted prevalence, % (95% CI)")
    ax.set_xlabel("")
    ax.set_title(f"Anxiety with vs without chronic back pain ({result.source})")
    return ax.figure


# --------------------------------------------------------------------------- C3 / C7


def prepare_model_columns(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Add the model's derived columns; return (frame, covariate terms used, absent covariates)."""
    spec = load_spec()["anxiety_pain"]
    out = df.copy()
    if spec["outcome"] in out.columns:
        sev = out[spec["outcome"]]
        out["back_pain_any"] = (
            (sev != spec["no_pain_level"]).astype("float64").where(sev.notna().to_numpy(), np.nan)
        )
    if spec["exposure"] in out.columns:
        g = out[spec["exposure"]]
        out["gad7"] = _categorical(g, GAD7_LEVELS, "none")
        step = g.astype("object").map({lv: i for i, lv in enumerate(GAD7_LEVELS)})
        out["gad7_step"] = pd.to_numeric(step, errors="coerce").astype("float64")
        three = g.astype("object").map(
            {"none": "none", "mild": "mild", "moderate": "moderate+", "severe": "moderate+"}
        )
        out["gad7_3"] = _categorical(three, ["none", "mild", "moderate+"], "none")
    used: list[str] = []
    absent: dict[str, str] = {}
    for name, cov in spec["covariates"].items():
        col = cov["column"]
        if col not in out.columns:
            absent[name] = col
            continue
        term = cov["term"]
        if name == "age":
            out[term] = _float(out[col])
        elif name == "sex":
            out[term] = _categorical(out[col], ["female", "male"], cov["reference"])
        elif name == "bmi":
            bmi = _float(out[col])
            lab = pd.Series(None, index=out.index, dtype="object")
            for g in spec["bmi_groups"]:
                lab[(bmi >= g["low"]) & (bmi < float(g["high"]))] = g["label"]
            out[term] = _categorical(lab, [g["label"] for g in spec["bmi_groups"]])
        elif name == "depression":
            s = _float(out[col])
            out[term] = s
            out["phq8_ge10"] = (s >= spec["depression_at_least"]).astype("float64").where(s.notna())
        elif name == "activity":
            levels = ["inactive", "insufficiently active", "active"]
            out[term] = _categorical(out[col], levels, cov["reference"])
        used.append(term)
    return out, used, absent


def _coef(fit, term: str, level: str) -> str:
    names = list(fit.params.index)
    for cand in (f"{term}[T.{level}]", f"{term}[{level}]"):
        if cand in names:
            return cand
    raise AssociationError(f"model {fit.formula!r}: no coefficient for {term} = {level!r}")


@dataclass
class RatioEstimate:
    """One odds ratio with CI, p-value and E-value (common outcome: RR ~ sqrt(OR))."""

    name: str
    label: str
    model: str
    log_estimate: float
    se: float
    df: float
    level: float = 0.95
    rare: bool = False

    @property
    def estimate(self) -> float:
        return math.exp(self.log_estimate)

    def ci(self) -> tuple[float, float]:
        q = stats.t.ppf(0.5 + self.level / 2, self.df)
        return (
            math.exp(self.log_estimate - q * self.se),
            math.exp(self.log_estimate + q * self.se),
        )

    @property
    def p_value(self) -> float:
        return float(2 * stats.t.sf(abs(self.log_estimate / self.se), self.df))

    def evalue(self):
        lo, hi = self.ci()
        return evalue(self.estimate, lo, hi, measure="odds ratio", rare=self.rare)

    def row(self) -> dict:
        lo, hi = self.ci()
        ev = self.evalue()
        return {
            "label": self.label,
            "model": self.model,
            "odds_ratio": self.estimate,
            "ci_low": lo,
            "ci_high": hi,
            "log_or": self.log_estimate,
            "se_log": self.se,
            "p_value": self.p_value,
            "evalue_point": ev.point,
            "evalue_ci": ev.ci,
        }


@dataclass
class AnxietyPainResult:
    """Adjusted logistic and ordinal models of back pain on anxiety; the C3/C7 estimates."""

    source: str
    n: int
    covariates: list[str]
    absent: dict[str, str]  # covariate name -> absent column
    missing_required: str | None  # outcome or exposure column absent (no C3 estimates)
    logistic: SurveyGLMResult | None = None  # GAD-7 category (4 levels)
    logistic_collapsed: SurveyGLMResult | None = None  # none / mild / moderate+
    logistic_trend: SurveyGLMResult | None = None  # GAD-7 step 0..3
    logistic_depression: SurveyGLMResult | None = None  # PHQ-8 >= 10 in place of the score
    ordinal: SurveyOrdinalResult | None = None
    ordinal_trend: SurveyOrdinalResult | None = None
    dose_response: WaldTestResult | None = None  # logistic, 3 df
    ordinal_dose_response: WaldTestResult | None = None
    estimates: dict[str, RatioEstimate] = field(default_factory=dict)
    predicted: pd.DataFrame = field(default_factory=pd.DataFrame)
    level: float = 0.95

    def to_frame(self) -> pd.DataFrame:
        """The main ratio estimates: OR, CI, p, E-value (point and CI limit)."""
        if not self.estimates:
            return pd.DataFrame()
        t = pd.DataFrame.from_dict({k: v.row() for k, v in self.estimates.items()}, orient="index")
        t.index.name = "estimate"
        return t

    def caveats(self, source: str) -> list[str]:
        out = _base_caveats(source) + [
            "Residual confounding may remain after adjustment.",
            "Adjusting for depression (PHQ-8) removes the part of the anxiety association shared "
            "with depression, which may itself lie on the path from anxiety to pain.",
        ]
        for name, col in self.absent.items():
            out.append(f"Not adjusted for {name}: '{col}' is not measured in this source.")
        return out

    def summary(self) -> str:
        lines = [
            f"Back pain and anxiety: design-based models (source {self.source}, n = {self.n})",
            f"Adjusted for: {', '.join(self.covariates) or 'nothing'}"
            + (f"; not measured: {', '.join(self.absent)}" if self.absent else ""),
        ]
        if self.missing_required:
            lines.append(f"Not estimable: '{self.missing_required}' is not measured.")
        if self.dose_response is not None:
            lines.append(
                f"Dose-response (logistic, all GAD-7 levels = 0): F = {self.dose_response.F:.2f} "
                f"on {self.dose_response.df} and {self.dose_response.ddf:g} df, "
                f"p = {self.dose_response.p_value:.3g}"
            )
        if self.ordinal_dose_response is not None:
            w = self.ordinal_dose_response
            lines.append(
                f"Dose-response (ordinal): F = {w.F:.2f} on {w.df} and {w.ddf:g} df, "
                f"p = {w.p_value:.3g}"
            )
        t = self.to_frame()
        if not t.empty:
            lines.append(
                t[
                    ["odds_ratio", "ci_low", "ci_high", "p_value", "evalue_point", "evalue_ci"]
                ].to_string(float_format=lambda v: f"{v:.3g}")
            )
        if not self.predicted.empty:
            lines.append("Standardised predicted probability of any back pain by GAD-7 category:")
            lines.append(self.predicted.to_string(float_format=lambda v: f"{v:.3f}"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_findings(
        self,
        source: str | None = None,
        notebook: str = "03_anxiety_and_pain",
        truth: dict[str, float] | None = None,
    ) -> list[Finding]:
        """C3 and C7 findings with the registry's keys; measured=False where not estimable."""
        source = source or self.source
        truth = truth or {}
        spec = load_spec()["anxiety_pain"]
        keys = spec["estimands"]
        claim = {
            "gad7_moderate_plus": spec["claims"]["anxiety"],
            "trend": spec["claims"]["anxiety"],
            "phq8_moderate_plus": spec["claims"]["anxiety"],
            "obesity": spec["claims"]["lifestyle"],
            "inactive": spec["claims"]["lifestyle"],
        }
        missing_col = {
            "gad7_moderate_plus": self.missing_required or spec["exposure"],
            "trend": self.missing_required or spec["exposure"],
            "phq8_moderate_plus": self.absent.get("depression"),
            "obesity": self.absent.get("bmi"),
            "inactive": self.absent.get("activity"),
        }
        caveats = self.caveats(source)
        out: list[Finding] = []
        for name, cid in claim.items():
            key = keys[name]
            est = self.estimates.get(name)
            if est is None:
                col = missing_col[name] or self.missing_required or "unknown"
                out.append(_not_measured(key, cid, source, col, notebook))
                continue
            if not _allowed(key, source):
                continue
            lo, hi = est.ci()
            ev = est.evalue()
            out.append(
                Finding(
                    claim_id=cid,
                    estimand=key,
                    label=est.label,
                    source=source,
                    estimate=est.estimate,
                    ci_low=lo,
                    ci_high=hi,
                    measure=_registry_estimand(key).measure,
                    null_value=1.0,
                    n=self.n,
                    design=DESIGN_TEXT,
                    caveats=list(caveats),
                    notebook=notebook,
                    truth=truth.get(key),
                    extra={
                        "model": est.model,
                        "se_log": est.se,
                        "p_value": est.p_value,
                        "evalue_point": ev.point,
                        "evalue_ci": ev.ci,
                        "covariates": list(self.covariates),
                    },
                )
            )
        pkey = keys["predicted"]
        if self.predicted.empty:
            out.append(
                _not_measured(
                    pkey, claim["trend"], source, self.missing_required or "unknown", notebook
                )
            )
        elif _allowed(pkey, source):
            for lv, r in self.predicted.iterrows():
                out.append(
                    Finding(
                        claim_id=claim["trend"],
                        estimand=pkey,
                        label=f"Predicted probability of any back pain, GAD-7 {lv}",
                        source=source,
                        estimate=float(r["probability"]),
                        ci_low=float(r["ci_low"]),
                        ci_high=float(r["ci_high"]),
                        measure=_registry_estimand(pkey).measure,
                        null_value=None,
                        n=self.n,
                        design=DESIGN_TEXT,
                        caveats=list(caveats),
                        notebook=notebook,
                        truth=truth.get(f"{pkey}[{lv}]"),
                        extra={"gad7_category": str(lv), "se": float(r["std_error"])},
                    )
                )
        return out


def standardised_probabilities(
    fit: SurveyGLMResult, data: pd.DataFrame, weights: np.ndarray, term: str, level: float = 0.95
) -> pd.DataFrame:
    """Weighted average predicted probability with every row set to each level of ``term``.

    Marginal standardisation over the weighted covariate distribution of the fitted rows;
    the delta-method SE treats that distribution as fixed (as ``predict.svyglm`` treats the
    profile). The CI is formed on the logit scale with the model's residual df.
    """
    b = fit.params.to_numpy()
    V = fit.cov_params.to_numpy()
    q = stats.t.ppf(0.5 + level / 2, fit.df_resid)
    w = weights / weights.sum()
    rows = {}
    for lv in data[term].cat.categories:
        nd = data.copy()
        nd[term] = pd.Categorical([lv] * len(nd), categories=data[term].cat.categories)
        X = fit.spec.get_model_matrix(nd, na_action="raise").to_numpy(dtype="float64")
        p = expit(X @ b)
        est = float(w @ p)
        g = (w * p * (1 - p)) @ X
        se = float(np.sqrt(g @ V @ g))
        se_logit = se / (est * (1 - est))
        lg = math.log(est / (1 - est))
        rows[lv] = {
            "probability": est,
            "std_error": se,
            "ci_low": float(expit(lg - q * se_logit)),
            "ci_high": float(expit(lg + q * se_logit)),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "gad7_category"
    return out


def anxiety_and_pain(
    design_or_frame, *, lonely_psu: str = "adjust", level: float = 0.95
) -> AnxietyPainResult:
    """C3/C7: adjusted logistic and ordinal models of back pain on GAD-7 category.

    Any back pain (severity != 'not at all') ~ GAD-7 category (none ref.) + age + sex + BMI
    group (normal ref.) + PHQ-8 >= 10 + activity (active ref.), quasibinomial ``svyglm``:

    * ``gad7_moderate_plus``: the same model with GAD-7 collapsed to none/mild/moderate+;
    * dose-response: Wald F test of the three GAD-7 coefficients (4-level model);
    * trend (registry: ordinal-model trend): ``svyolr`` of the 4 severity levels with the
      GAD-7 step (0..3) as a number; exp(beta) = cumulative odds ratio per step. The
      logistic per-step OR is reported beside it (``trend_logistic``);
    * ``obesity`` (BMI >= 30 vs 18.5-25), ``inactive`` (vs active) from the 4-level logistic
      model; ``phq8_moderate_plus`` from the same model with PHQ-8 >= 10 in place of the
      PHQ-8 score (depression enters the other models as the score, per point: a >= 10
      indicator leaves residual confounding, see ``associations.yaml``).

    An absent covariate is left out (each finding says so); an absent outcome leaves
    everything unestimated; an absent GAD-7 leaves C3 unestimated but C7 is still fitted.
    """
    df, build = _frame_and_rebuild(design_or_frame, lonely_psu)
    spec = load_spec()["anxiety_pain"]
    source = _source(df)
    df, used, absent = prepare_model_columns(df)
    res = AnxietyPainResult(source, len(df), used, absent, None, level=level)
    if spec["outcome"] not in df.columns:
        res.missing_required = spec["outcome"]
        return res
    design = build(df)
    rare = bool(spec["outcome_is_rare"])
    has_gad = spec["exposure"] in df.columns
    if not has_gad:
        res.missing_required = spec["exposure"]
    rhs = " + ".join(used)

    def formula(exposure: str | None) -> str:
        parts = [p for p in (exposure, rhs) if p]
        return "back_pain_any ~ " + (" + ".join(parts) if parts else "1")

    fit = svyglm(formula("gad7" if has_gad else None), design, family="quasibinomial")
    res.logistic = fit

    def ratio(name, label, model, f, coef):
        return RatioEstimate(
            name, label, model, float(f.params[coef]), float(f.bse[coef]), f.df_resid, level, rare
        )

    if "depression" not in absent:
        dep_term = spec["covariates"]["depression"]["term"]
        swapped = ["phq8_ge10" if t == dep_term else t for t in used]
        dep_rhs = " + ".join((["gad7"] if has_gad else []) + swapped)
        res.logistic_depression = svyglm(
            f"back_pain_any ~ {dep_rhs}", design, family="quasibinomial"
        )
        res.estimates["phq8_moderate_plus"] = ratio(
            "phq8_moderate_plus",
            "Any back pain: PHQ-8 >= 10 vs < 10 (adjusted OR)",
            "logistic",
            res.logistic_depression,
            "phq8_ge10",
        )
    if "bmi" not in absent and "obese" in df["bmi_group"].cat.categories:
        res.estimates["obesity"] = ratio(
            "obesity",
            "Any back pain: BMI >= 30 vs 18.5-25 (adjusted OR)",
            "logistic",
            fit,
            _coef(fit, "bmi_group", "obese"),
        )
    if "activity" not in absent and "inactive" in df["activity"].cat.categories:
        res.estimates["inactive"] = ratio(
            "inactive",
            "Any back pain: inactive vs active (adjusted OR)",
            "logistic",
            fit,
            _coef(fit, "activity", "inactive"),
        )
    if not has_gad:
        return res
    res.dose_response = fit.wald_test("gad7")
    collapsed = svyglm(formula("gad7_3"), design, family="quasibinomial")
    res.logistic_collapsed = collapsed
    res.estimates["gad7_moderate_plus"] = ratio(
        "gad7_moderate_plus",
        "Any back pain: GAD-7 moderate/severe vs none (adjusted OR)",
        "logistic",
        collapsed,
        _coef(collapsed, "gad7_3", "moderate+"),
    )
    for lv in GAD7_LEVELS[1:]:
        if lv in df["gad7"].cat.categories:
            res.estimates[f"gad7_{lv}"] = ratio(
                f"gad7_{lv}",
                f"Any back pain: GAD-7 {lv} vs none (adjusted OR)",
                "logistic",
                fit,
                _coef(fit, "gad7", lv),
            )
    trend = svyglm(formula("gad7_step"), design, family="quasibinomial")
    res.logistic_trend = trend
    res.estimates["trend_logistic"] = ratio(
        "trend_logistic",
        "Any back pain: OR per GAD-7 category step (logistic trend)",
        "logistic",
        trend,
        "gad7_step",
    )
    ord_rhs = " + ".join(["gad7_step", *used])
    res.ordinal_trend = svyolr(f"{spec['outcome']} ~ {ord_rhs}", design)
    res.estimates["trend"] = ratio(
        "trend",
        "Worse back pain: cumulative OR per GAD-7 category step (ordinal trend)",
        "ordinal",
        res.ordinal_trend,
        "gad7_step",
    )
    res.ordinal = svyolr(f"{spec['outcome']} ~ " + " + ".join(["gad7", *used]), design)
    res.ordinal_dose_response = res.ordinal.wald_test("gad7")
    cols = ["back_pain_any", "gad7", *used]
    mask = df[cols].notna().all(axis=1).to_numpy()
    res.predicted = standardised_probabilities(
        fit, df.loc[mask, cols], design.weights[mask], "gad7", level
    )
    return res


def predicted_probability_figure(result: AnxietyPainResult, ax=None):
    """Standardised probability of any back pain by GAD-7 category, with 95% CIs."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    p = result.predicted
    if p.empty:
        ax.text(0.5, 0.5, "not measured in this source", ha="center", va="center")
        ax.set_axis_off()
        return ax.figure
    x = np.arange(len(p))
    sns.pointplot(x=list(p.index), y=100 * p["probability"], ax=ax, linestyle="none")
    ax.errorbar(
        x,
        100 * p["probability"],
        yerr=[100 * (p["probability"] - p["ci_low"]), 100 * (p["ci_high"] - p["probability"])],
        fmt="none",
        color="black",
        capsize=4,
    )
    ax.set_xlabel("GAD-7 category")
    ax.set_ylabel("any back pain, % (standardised, 95% CI)")
    ax.set_title(f"Predicted back pain by anxiety level ({result.source})")
    return ax.figure


def odds_ratio_figure(result: AnxietyPainResult, ax=None):
    """Forest plot of the main adjusted odds ratios (log scale) with their CIs."""
    import matplotlib.pyplot as plt

    t = result.to_frame()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 * max(len(t), 2) + 1))
    if t.empty:
        ax.text(0.5, 0.5, "not measured in this source", ha="center", va="center")
        ax.set_axis_off()
        return ax.figure
    y = np.arange(len(t))[::-1]
    ax.errorbar(
        t["odds_ratio"],
        y,
        xerr=[t["odds_ratio"] - t["ci_low"], t["ci_high"] - t["odds_ratio"]],
        fmt="o",
        color="black",
        capsize=3,
    )
    ax.axvline(1, color="grey", linestyle="--")
    ax.set_xscale("log")
    ticks = [v for v in (0.5, 0.75, 1, 1.5, 2, 3, 5, 10) if t["ci_low"].min() / 1.2 <= v]
    ticks = [v for v in ticks if v <= t["ci_high"].max() * 1.2]
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_yticks(y, t["label"])
    ax.set_xlabel("odds ratio (95% CI, log scale)")
    return ax.figure


__all__ = [
    "AnxietyPainResult",
    "AssociationError",
    "ComorbidityResult",
    "RatioEstimate",
    "anxiety_and_pain",
    "chronic_back_pain",
    "comorbidity",
    "comorbidity_figure",
    "odds_ratio_figure",
    "predicted_probability_figure",
    "prepare_model_columns",
    "standardised_probabilities",
    "survey_design",
]
