"""Anxiety and back pain (C3, C7): design-based models of back pain on how anxious adults are.

One design over all rows (`design`); what counts as back pain and as anxiety depends on how
the source asked (``resources/associations.yaml``, one measure set per way of asking; the
set's ``models`` says which of the two model families below is fitted):

* ``gad7`` (NHIS 2019 on, the synthetic world): quasibinomial ``svyglm`` of any back pain on
  the GAD-7 category adjusted for age, sex, BMI group, depression (PHQ-8 score) and physical
  activity (PHQ-8 >= 10 in place of the score for the depression OR); the dose-response Wald
  test and the 1-df trend (OR per category step); the proportional-odds model (``svyolr``) of
  the four severity levels; standardised predicted probabilities by GAD-7 category.
* ``nervousness`` (NHIS 2017): the same logistic model of low back pain in the past 3 months
  on the K6 nervousness item (none, a little, some, most or all of the time), the depression
  proxy (sad, hopeless or worthless most/all of the time) in place of the PHQ-8; the
  dose-response test, each level vs none, the trend (nervousness as a step 0..3) and the
  depressed-mood OR from the same model. The outcome is yes/no: no ordinal model.

Both: obesity and inactivity ORs (C7) from the main model, E-values for every OR.
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
    AssociationError,
    frame_and_rebuild,
    load_spec,
    model_measure_set,
    prepare_model_columns,
    source_of,
)
from analysis.models.evalue import evalue
from analysis.survey.design import SurveyDesign
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
    measures: dict  # the measure set analysed (associations.yaml)
    n: int
    covariates: list[str]
    absent: dict[str, str]  # covariate name -> absent column
    missing_required: str | None  # outcome or exposure column absent (no C3 estimates)
    not_analysed: list[tuple[dict, str]]  # the other measure sets, each with a column it lacks
    logistic: SurveyGLMResult | None = None  # anxiety category (GAD-7 or nervousness)
    logistic_collapsed: SurveyGLMResult | None = None  # none / mild / moderate+
    logistic_trend: SurveyGLMResult | None = None  # anxiety as a step 0, 1, 2, ...
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
            self.measures["depression_caveat"],
            *self.measures["caveats"],
        ]
        for name, col in self.absent.items():
            out.append(f"Not adjusted for {name}: '{col}' is not measured in this source.")
        return out

    def summary(self) -> str:
        m = self.measures
        lines = [
            f"{m['outcome_label'].capitalize()} and {m['exposure_label']}: design-based models "
            f"(source {self.source}, n = {self.n})",
            f"Measures: {m['measures']}",
            f"Adjusted for: {', '.join(self.covariates) or 'nothing'}"
            + (f"; not measured: {', '.join(self.absent)}" if self.absent else ""),
        ]
        if self.missing_required:
            lines.append(f"Not estimable: '{self.missing_required}' is not measured.")
        for measures, col in self.not_analysed:
            lines.append(f"Not analysed: {measures['name']} ('{col}' absent)")
        if self.dose_response is not None:
            lines.append(
                f"Dose-response (logistic, all {m['exposure_label']} levels = 0): "
                f"F = {self.dose_response.F:.2f} "
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
            lines.append(
                f"Standardised predicted probability of {m['outcome_label']} by "
                f"{m['exposure_label']}:"
            )
            lines.append(self.predicted.to_string(float_format=lambda v: f"{v:.3f}"))
        return "\n".join(lines)

    def _findings(self, writer: FindingWriter) -> list[Finding]:
        m = self.measures
        out: list[Finding] = []
        for name, spec in m["estimands"].items():
            key, cid = spec["key"], spec["claim"]
            est = self.estimates.get(name)
            if est is None:
                if spec["needs"] == "exposure":
                    col = self.missing_required or m["exposure"]
                else:
                    col = self.absent.get(spec["needs"]) or self.missing_required or "unknown"
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
        predicted = m["predicted"]
        if predicted is not None:
            pkey, cid = predicted["key"], predicted["claim"]
            if self.predicted.empty:
                out.append(writer.not_measured(pkey, cid, self.missing_required or "unknown"))
            elif writer.allowed(pkey):
                for lv, r in self.predicted.iterrows():
                    out.append(
                        writer.estimate(
                            pkey,
                            cid,
                            f"Predicted probability of {m['outcome_label']}, "
                            f"{m['exposure_label']} {lv}",
                            float(r["probability"]),
                            (float(r["ci_low"]), float(r["ci_high"])),
                            null_value=None,
                            extra={m["exposure"]: str(lv), "se": float(r["std_error"])},
                            truth_key=f"{pkey}[{lv}]",
                        )
                    )
        for measures, col in self.not_analysed:
            for spec in [*measures["estimands"].values(), measures["predicted"]]:
                if spec is not None and writer.allowed(spec["key"]):
                    out.append(writer.not_measured(spec["key"], spec["claim"], col))
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
    out.index.name = term
    return out


@dataclass
class _ModelRun:
    """What the model families share while fitting one measure set: the frame with the
    model columns, the design, the adjustment terms, and the result being filled."""

    res: AnxietyPainResult
    df: pd.DataFrame
    design: SurveyDesign
    used: list[str]
    rare: bool

    @property
    def measures(self) -> dict:
        return self.res.measures

    @property
    def outcome(self) -> str:
        """The outcome's label at the start of an estimate's label."""
        return self.measures["outcome_label"].capitalize()

    def formula(self, exposure: str | None, covariates: list[str] | None = None) -> str:
        covariates = self.used if covariates is None else covariates
        parts = [p for p in (exposure, " + ".join(covariates)) if p]
        return "back_pain_any ~ " + (" + ".join(parts) if parts else "1")

    def logistic(self, exposure: str | None, covariates: list[str] | None = None):
        return svyglm(self.formula(exposure, covariates), self.design, family="quasibinomial")

    def ratio(self, name, label, model, fit, coef) -> RatioEstimate:
        return RatioEstimate(
            name,
            label,
            model,
            float(fit.params[coef]),
            float(fit.bse[coef]),
            fit.df_resid,
            self.res.level,
            self.rare,
        )

    def lifestyle(self, fit) -> None:
        """C7: obesity and inactivity ORs from the main model."""
        contrasts = (  # (estimate, covariate, model term, its level vs the reference, label)
            ("obesity", "bmi", "bmi_group", "obese", "BMI >= 30 vs 18.5-25"),
            ("inactive", "activity", "activity", "inactive", "inactive vs active"),
        )
        for name, covariate, term, exposed, label in contrasts:
            if covariate not in self.res.absent and exposed in self.df[term].cat.categories:
                self.res.estimates[name] = self.ratio(
                    name,
                    f"{self.outcome}: {label} (adjusted OR)",
                    "logistic",
                    fit,
                    _coef(fit, term, exposed),
                )

    def levels(self, fit) -> None:
        """Each anxiety level vs the reference, from the main model."""
        term, levels = self.measures["exposure_term"], list(self.measures["exposure_levels"])
        for lv in levels[1:]:
            if lv in self.df[term].cat.categories:
                name = f"{term}_{lv.replace(' ', '_')}"
                self.res.estimates[name] = self.ratio(
                    name,
                    f"{self.outcome}: {self.measures['exposure_label']} {lv} vs {levels[0]} "
                    "(adjusted OR)",
                    "logistic",
                    fit,
                    _coef(fit, term, lv),
                )

    def predicted(self, fit) -> None:
        term = self.measures["exposure_term"]
        cols = ["back_pain_any", term, *self.used]
        mask = self.df[cols].notna().all(axis=1).to_numpy()
        weights = self.design.weights[mask]
        p = standardised_probabilities(fit, self.df.loc[mask, cols], weights, term, self.res.level)
        p.index.name = self.measures["exposure"]
        self.res.predicted = p


def _gad7_models(run: _ModelRun, has_exposure: bool) -> None:
    """GAD-7 category and back pain severity (see the module docstring)."""
    res, m = run.res, run.measures
    term = m["exposure_term"]
    fit = run.logistic(term if has_exposure else None)
    res.logistic = fit
    if "depression" not in res.absent:
        dep_term = m["covariates"]["depression"]["term"]
        swapped = ["phq8_ge10" if t == dep_term else t for t in run.used]
        res.logistic_depression = run.logistic(term if has_exposure else None, swapped)
        res.estimates["phq8_moderate_plus"] = run.ratio(
            "phq8_moderate_plus",
            f"{run.outcome}: PHQ-8 >= {m['depression_at_least']} vs < "
            f"{m['depression_at_least']} (adjusted OR)",
            "logistic",
            res.logistic_depression,
            "phq8_ge10",
        )
    run.lifestyle(fit)
    if not has_exposure:
        return
    res.dose_response = fit.wald_test(term)
    collapsed_term = m["collapsed"]["term"]
    collapsed = run.logistic(collapsed_term)
    res.logistic_collapsed = collapsed
    res.estimates["gad7_moderate_plus"] = run.ratio(
        "gad7_moderate_plus",
        f"{run.outcome}: GAD-7 moderate/severe vs none (adjusted OR)",
        "logistic",
        collapsed,
        _coef(collapsed, collapsed_term, "moderate+"),
    )
    run.levels(fit)
    res.logistic_trend = run.logistic(f"{term}_step")
    res.estimates["trend_logistic"] = run.ratio(
        "trend_logistic",
        f"{run.outcome}: OR per GAD-7 category step (logistic trend)",
        "logistic",
        res.logistic_trend,
        f"{term}_step",
    )
    outcome = m["outcome"]
    res.ordinal_trend = svyolr(
        f"{outcome} ~ " + " + ".join([f"{term}_step", *run.used]), run.design
    )
    res.estimates["trend"] = run.ratio(
        "trend",
        "Worse back pain: cumulative OR per GAD-7 category step (ordinal trend)",
        "ordinal",
        res.ordinal_trend,
        f"{term}_step",
    )
    res.ordinal = svyolr(f"{outcome} ~ " + " + ".join([term, *run.used]), run.design)
    res.ordinal_dose_response = res.ordinal.wald_test(term)
    run.predicted(fit)


def _nervousness_models(run: _ModelRun, has_exposure: bool) -> None:
    """K6 nervousness and low back pain, NHIS 2017 (see the module docstring)."""
    res, m = run.res, run.measures
    term = m["exposure_term"]
    fit = run.logistic(term if has_exposure else None)
    res.logistic = fit
    if "depression" not in res.absent:
        res.estimates["depressed_mood"] = run.ratio(
            "depressed_mood",
            f"{run.outcome}: sad, hopeless or worthless most or all of the time vs less often "
            "(adjusted OR)",
            "logistic",
            fit,
            m["covariates"]["depression"]["term"],
        )
    run.lifestyle(fit)
    if not has_exposure:
        return
    res.dose_response = fit.wald_test(term)
    run.levels(fit)
    res.logistic_trend = run.logistic(f"{term}_step")
    steps = ", ".join(m["exposure_levels"])
    res.estimates["trend"] = run.ratio(
        "trend",
        f"{run.outcome}: OR per step of {m['exposure_label']} ({steps}; logistic trend)",
        "logistic",
        res.logistic_trend,
        f"{term}_step",
    )
    run.predicted(fit)


MODEL_FAMILIES = {"gad7": _gad7_models, "nervousness": _nervousness_models}


def anxiety_and_pain(
    design_or_frame, *, lonely_psu: str = "adjust", level: float = 0.95
) -> AnxietyPainResult:
    """C3/C7: adjusted design-based models of back pain on anxiety, for the first measure set
    whose outcome the source measures (``associations.yaml``; module docstring).

    GAD-7 set: any back pain (severity != 'not at all') ~ GAD-7 category (none ref.) + age +
    sex + BMI group (normal ref.) + PHQ-8 score + activity (active ref.), quasibinomial
    ``svyglm``:

    * ``gad7_moderate_plus``: the same model with GAD-7 collapsed to none/mild/moderate+;
    * dose-response: Wald F test of the three GAD-7 coefficients (4-level model);
    * trend (registry: ordinal-model trend): ``svyolr`` of the 4 severity levels with the
      GAD-7 step (0..3) as a number; exp(beta) = cumulative odds ratio per step. The
      logistic per-step OR is reported beside it (``trend_logistic``);
    * ``obesity`` (BMI >= 30 vs 18.5-25), ``inactive`` (vs active) from the 4-level logistic
      model; ``phq8_moderate_plus`` from the same model with PHQ-8 >= 10 in place of the
      PHQ-8 score (depression enters the other models as the score, per point: a >= 10
      indicator leaves residual confounding, see ``associations.yaml``).

    NHIS 2017 set: low back pain (3 months) ~ nervousness (none ref., a little, some, most or
    all) + age + sex + BMI group + depressed mood (yes/no) + activity; each level vs none
    (``nervous_most_or_all`` is the registry's), the trend with nervousness as a step 0..3,
    and ``depressed_mood``, ``obesity``, ``inactive`` from the main model.

    An absent covariate is left out (each finding says so); an absent outcome leaves
    everything unestimated; an absent anxiety item leaves C3 unestimated but C7 is still
    fitted. The keys of the other measure sets are "not measured" where the registry expects
    them from the source.
    """
    df, build = frame_and_rebuild(design_or_frame, lonely_psu)
    measures, others = model_measure_set(df)
    not_analysed = [(s, s["outcome"]) for s in others if s["outcome"] not in df.columns]
    source = source_of(df)
    df, used, absent = prepare_model_columns(df, measures)
    res = AnxietyPainResult(
        source, measures, len(df), used, absent, None, not_analysed, level=level
    )
    if measures["outcome"] not in df.columns:
        res.missing_required = measures["outcome"]
        return res
    has_exposure = measures["exposure"] in df.columns
    if not has_exposure:
        res.missing_required = measures["exposure"]
    rare = bool(load_spec()["anxiety_pain"]["outcome_is_rare"])
    run = _ModelRun(res, df, build(df), used, rare)
    MODEL_FAMILIES[measures["models"]](run, has_exposure)
    return res
