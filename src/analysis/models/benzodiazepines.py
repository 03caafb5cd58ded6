"""Benzodiazepines and back pain in survey data (C4): confounding by indication.

People take benzodiazepines (or other anxiety medication) BECAUSE they are anxious, and
anxiety goes with back pain; in the synthetic world, back pain itself also raises the chance
of a prescription. A survey association of the drug with back pain therefore mixes any drug
effect with the reasons for taking it. This module fits two design-based logistic models
(quasibinomial ``svyglm``, Taylor-linearised SEs, as R ``survey``) of ANY back pain:

* naive:    back_pain_any ~ drug
* adjusted: back_pain_any ~ drug + GAD-7 category + age + sex + BMI group + PHQ-8 >= 10
            + activity (the covariates of notebook 03; an absent one is left out and named)

The drug is ``benzodiazepine_use`` (synthetic world) or ``anxiety_medication`` (NHIS). In
the synthetic world the true structural effect of benzodiazepine use is known
(``benzodiazepine_effect_log_or`` in the world's truth, a shift of the latent back-pain
severity) and the naive and adjusted odds ratios can be set beside it. Even the adjusted
estimate is not a treatment effect: adjustment cannot remove pain-driven prescribing, and
only randomized trials answer C4. The registry key ``or_back_pain_anxiety_medication`` is
context, never evidence of benefit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.core.findings import Finding, estimand_info
from analysis.models.design import model_measure_set, prepare_model_columns, survey_design
from analysis.models.unmeasured import (
    C4_CLAIM,
    C4_ESTIMAND,
    DRUG_COLUMNS,
    medication_not_measured,
    no_drug_item_reason_in,
)
from analysis.survey.design import SurveyDesign
from analysis.survey.regression import svyglm

ESTIMAND, CLAIM = C4_ESTIMAND, C4_CLAIM
_LABELS = {
    "benzodiazepine_use": "benzodiazepine",
    "anxiety_medication": "anxiety medication",
}


@dataclass
class DrugOR:
    """One odds ratio of any back pain for drug users vs non-users."""

    model: str  # "naive" | "adjusted"
    log_or: float
    se: float
    df_resid: float
    level: float = 0.95

    @property
    def odds_ratio(self) -> float:
        return float(np.exp(self.log_or))

    def ci(self) -> tuple[float, float]:
        from scipy import stats

        q = stats.t.ppf(0.5 + self.level / 2, self.df_resid) if self.df_resid > 0 else np.nan
        return float(np.exp(self.log_or - q * self.se)), float(np.exp(self.log_or + q * self.se))


@dataclass
class BenzodiazepineResult:
    """Naive and adjusted odds ratios of back pain for the drug, with the truth where known."""

    source: str
    drug: str | None
    n: int
    covariates: list[str]
    absent: dict[str, str]
    naive: DrugOR | None = None
    adjusted: DrugOR | None = None
    true_log_or: float | None = None  # synthetic world: the structural effect
    true_crude_or: float | None = None  # synthetic world: census crude OR
    level: float = 0.95
    fits: dict = field(default_factory=dict, repr=False)
    why_not_measured: str = ""  # the survey's reason, where it gives one

    @property
    def measured(self) -> bool:
        return self.drug is not None and self.naive is not None

    @property
    def drug_label(self) -> str:
        return _LABELS.get(self.drug or "", "anxiety medication")

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for est in (self.naive, self.adjusted):
            if est is None:
                continue
            lo, hi = est.ci()
            rows.append(
                {"model": est.model, "odds_ratio": est.odds_ratio, "ci_low": lo, "ci_high": hi}
            )
        if self.true_log_or is not None:
            t = float(np.exp(self.true_log_or))
            rows.append({"model": "truth", "odds_ratio": t, "ci_low": t, "ci_high": t})
        return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()

    def summary(self) -> str:
        if not self.measured:
            return (
                f"{self.why_not_measured or self.not_measured_text()}: "
                "the drug-back pain association cannot be estimated."
            )
        lvl = f"{100 * self.level:g}%"
        lines = [
            f"Any back pain vs {self.drug_label} use ('{self.drug}'), source '{self.source}', "
            f"n = {self.n:,}; design-based logistic models",
            f"  adjusted for: {', '.join(self.covariates) or '(nothing)'}",
        ]
        if self.absent:
            lines.append(f"  not measured, left out: {', '.join(self.absent)}")
        for name, r in self.to_frame().iterrows():
            lines.append(
                f"  {name:<9} OR {r.odds_ratio:6.2f}  ({lvl} CI {r.ci_low:.2f}-{r.ci_high:.2f})"
                if name != "truth"
                else f"  {name:<9} OR {r.odds_ratio:6.2f}  (structural effect in the world)"
            )
        if self.true_log_or is not None:
            lines.append(
                f"  distance from truth (|log OR - true log OR|): naive "
                f"{self.distance('naive'):.3f}, adjusted {self.distance('adjusted'):.3f}"
            )
        lines.append(
            "  Confounded by indication: users take the drug because of anxiety (and pain); "
            "no survey model answers whether it relieves pain."
        )
        return "\n".join(lines)

    def not_measured_text(self) -> str:
        return f"Source '{self.source}' measures none of {list(DRUG_COLUMNS)}"

    def distance(self, model: str) -> float:
        est = getattr(self, model)
        if est is None or self.true_log_or is None:
            return float("nan")
        return abs(est.log_or - self.true_log_or)

    def __str__(self) -> str:
        return self.summary()

    def to_findings(self, *, notebook: str = "") -> list[Finding]:
        """The registry's C4 context key for a source the registry allows it from (else [])."""
        est = estimand_info(ESTIMAND)
        if est is None or (est.sources and self.source not in est.sources):
            return []
        caveats = [
            "Confounded by indication: people take anxiety medication because of anxiety and "
            "pain; this odds ratio is never evidence of benefit or harm.",
            "Cross-sectional: medication use and back pain are measured at the same time.",
        ]
        if self.source == "synthetic":
            caveats.insert(0, "Synthetic data: validates the pipeline against known truth.")
        if self.absent:
            caveats.append(f"Covariates not measured, left out: {', '.join(self.absent)}.")
        if not self.measured:
            return medication_not_measured(self.source, self.why_not_measured, notebook=notebook)
        lo, hi = self.adjusted.ci()
        nlo, nhi = self.naive.ci()
        return [
            Finding(
                claim_id=CLAIM,
                estimand=ESTIMAND,
                label=f"Any back pain: {self.drug_label} users vs non-users (adjusted OR)",
                source=self.source,
                estimate=self.adjusted.odds_ratio,
                ci_low=lo,
                ci_high=hi,
                measure=est.measure,
                null_value=1.0,
                n=self.n,
                design="cross-sectional survey",
                caveats=caveats,
                notebook=notebook,
                truth=None if self.true_log_or is None else float(np.exp(self.true_log_or)),
                extra={
                    "drug_column": self.drug,
                    "covariates": list(self.covariates),
                    "naive_odds_ratio": self.naive.odds_ratio,
                    "naive_ci_low": nlo,
                    "naive_ci_high": nhi,
                    "true_crude_odds_ratio": self.true_crude_or,
                },
            )
        ]


def no_drug_item_reason(df: pd.DataFrame) -> str:
    """Why an NHIS frame has no anxiety-medication item, in the codebook's words for each of
    its survey years ('' for other sources, or when the codebook gives no reason)."""
    if "source" not in df.columns or not len(df) or "survey_year" not in df.columns:
        return ""
    years = [int(y) for y in df["survey_year"].dropna().unique()]
    return no_drug_item_reason_in(str(df["source"].iloc[0]), years)


def drug_column(df: pd.DataFrame) -> str | None:
    """The drug indicator the source measures: benzodiazepine use first, else anxiety medication."""
    for col in DRUG_COLUMNS:
        if col in df.columns and df[col].notna().any():
            return col
    return None


def benzodiazepines_and_pain(
    design_or_frame,
    *,
    drug: str | None = None,
    truth: dict[str, float] | None = None,
    lonely_psu: str = "adjust",
    level: float = 0.95,
) -> BenzodiazepineResult:
    """Naive and adjusted design-based odds ratios of any back pain for the drug (see module doc).

    ``truth`` (synthetic world): the world's truth dict; its ``benzodiazepine_effect_log_or``
    is the true effect (only meaningful for ``benzodiazepine_use``).
    """
    if isinstance(design_or_frame, SurveyDesign):
        df = design_or_frame.data
    else:
        df = design_or_frame
    source = str(df["source"].iloc[0]) if "source" in df.columns and len(df) else "unknown"
    drug = drug or drug_column(df)
    truth = truth or {}
    measures, _ = model_measure_set(df)
    out, used, absent = prepare_model_columns(df, measures)
    res = BenzodiazepineResult(source, drug, len(df), [], absent, level=level)
    if drug is None or drug not in df.columns or "back_pain_any" not in out.columns:
        res.drug = None
        res.why_not_measured = "" if drug else no_drug_item_reason(df)
        return res
    out["drug"] = out[drug].astype("float64")
    anxiety = measures["exposure_term"]
    terms = ([anxiety] if anxiety in out.columns else []) + used
    res.covariates = terms
    # one analysed domain for both models: rows with every model column observed
    need = ["back_pain_any", "drug", *terms]
    out["_complete"] = out[need].notna().all(axis=1)
    res.n = int(out["_complete"].sum())
    design = survey_design(out, lonely_psu=lonely_psu)
    for model, rhs in (("naive", "drug"), ("adjusted", " + ".join(["drug", *terms]))):
        fit = svyglm(f"back_pain_any ~ {rhs}", design, family="quasibinomial", domain="_complete")
        res.fits[model] = fit
        setattr(
            res,
            model,
            DrugOR(model, float(fit.params["drug"]), float(fit.bse["drug"]), fit.df_resid, level),
        )
    if drug == "benzodiazepine_use" and "benzodiazepine_effect_log_or" in truth:
        res.true_log_or = float(truth["benzodiazepine_effect_log_or"])
        res.true_crude_or = truth.get("benzodiazepine_crude_or_back_pain_any")
    return res
