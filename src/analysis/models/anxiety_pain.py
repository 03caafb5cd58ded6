"""Anxiety and back pain (C3, C7): design-based models of back pain on the GAD-7 category.

Design-based logistic models (quasibinomial ``svyglm``) of any back pain on the GAD-7
category adjusted for age, sex, BMI group, depression (PHQ-8 score) and physical activity
(PHQ-8 >= 10 in place of the score for the depression OR); the dose-response Wald test over
the anxiety levels and the 1-df trend (odds ratio per category step); the proportional-odds
model (``svyolr``) of the four severity levels; standardised predicted probabilities by GAD-7
category; E-values. One design over all rows (`design`); reference levels, BMI groups and
registry keys are in ``resources/associations.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from analysis.core.findings import Finding
from analysis.models.association_result import AssociationResult, FindingWriter, base_caveats
from analysis.models.design import (
    GAD7_LEVELS,
    AssociationError,
    frame_and_rebuild,
    load_spec,
    prepare_model_columns,
    source_of,
)
from analysis.models.evalue import evalue
from analysis.survey.ordinal import SurveyOrdinalResult, svyolr
from analysis.survey.regression import SurveyGLMResult, WaldTestResult, svyglm


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
class AnxietyPainResult(AssociationResult):
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
        out = base_caveats(source) + [
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

    def _findings(self, writer: FindingWriter) -> list[Finding]:
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
        out: list[Finding] = []
        for name, cid in claim.items():
            key = keys[name]
            est = self.estimates.get(name)
            if est is None:
                col = missing_col[name] or self.missing_required or "unknown"
                out.append(writer.not_measured(key, cid, col))
                continue
            if not writer.allowed(key):
                continue
            ev = est.evalue()
            out.append(
                writer.estimate(
                    key,
                    cid,
                    est.label,
                    est.estimate,
                    est.ci(),
                    null_value=1.0,
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
                writer.not_measured(pkey, claim["trend"], self.missing_required or "unknown")
            )
        elif writer.allowed(pkey):
            for lv, r in self.predicted.iterrows():
                out.append(
                    writer.estimate(
                        pkey,
                        claim["trend"],
                        f"Predicted probability of any back pain, GAD-7 {lv}",
                        float(r["probability"]),
                        (float(r["ci_low"]), float(r["ci_high"])),
                        null_value=None,
                        extra={"gad7_category": str(lv), "se": float(r["std_error"])},
                        truth_key=f"{pkey}[{lv}]",
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
    df, build = frame_and_rebuild(design_or_frame, lonely_psu)
    spec = load_spec()["anxiety_pain"]
    source = source_of(df)
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
    lifestyle = (  # C7: (estimate, covariate, model term, its level vs the reference, label)
        ("obesity", "bmi", "bmi_group", "obese", "BMI >= 30 vs 18.5-25"),
        ("inactive", "activity", "activity", "inactive", "inactive vs active"),
    )
    for name, covariate, term, exposed, label in lifestyle:
        if covariate not in absent and exposed in df[term].cat.categories:
            res.estimates[name] = ratio(
                name,
                f"Any back pain: {label} (adjusted OR)",
                "logistic",
                fit,
                _coef(fit, term, exposed),
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
