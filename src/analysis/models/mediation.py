"""Natural direct and indirect effects by the mediation formula, with a design bootstrap (C2).

Models (both fitted with the survey weights; point estimates only):

* mediator  M = b0 + bA*A + bC'C + e            weighted linear model (e ~ N(0, s^2) is used
  only to integrate a logistic outcome model over the mediator);
* outcome   linear:   E[Y] = t0 + tA*A + tM*M + tAM*A*M + tC'C        (mean differences)
            logistic: logit P(Y=1) = same linear predictor             (risk differences)

The mediation formula (g-computation; Pearl 2001, VanderWeele 2015) standardised over the
weighted covariate distribution of the analysed sample gives the mean potential outcome
``Q(a, a') = E[Y(a, M(a'))]``, and with a=1 (exposed), a'=0:

* natural direct effect   NDE = Q(1, 0) - Q(0, 0)   (pure direct effect)
* natural indirect effect NIE = Q(1, 1) - Q(1, 0)   (total indirect effect)
* total effect            TE  = Q(1, 1) - Q(0, 0) = NDE + NIE; proportion mediated NIE/TE.

For a linear outcome Q needs only E[M(a')|C] (no distributional assumption); for a logistic
outcome the mediator density is integrated by Gauss-Hermite quadrature.

Uncertainty: the Rao-Wu-Yue rescaling bootstrap (`analysis.survey.bootstrap`), PSUs
resampled within strata; every replicate refits both models with its replicate weights
(closed-form weighted least squares, and Newton steps from the full-sample logistic fit) and
recomputes the effects. Default CI: normal, estimate +/- z * bootstrap SE, with the SE as R's
``svrepdesign`` computes it (deviations around the replicate mean, scale 1/(B-1)). Why not
percentile: with the ~200 replicates a notebook can afford, a 95% percentile interval rests
on the 5 most extreme replicates in each tail, while the SE uses all of them; and it is the
interval R reports for replicate designs. Percentile limits are reported beside it.

Rows with a missing value in any model column are excluded as a domain: their weight is
zero in every replicate, and strata/PSUs keep their full-design counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.regression.linear_model import WLS
from tqdm.auto import tqdm

from analysis.core.findings import Finding
from analysis.data.schema import require_measured
from analysis.models import mediation_gformula as gformula
from analysis.models.design import redesign
from analysis.models.mediation_gformula import EFFECTS, MediationError
from analysis.models.unmeasured import (
    MediationSpec,
    load_mediation_spec,
    mediation_not_measured,
    registry_measure,
)
from analysis.survey.bootstrap import bootstrap_weight_columns, replicate_variance
from analysis.survey.design import SurveyDesign

CI_METHODS = ("normal", "percentile")


# --------------------------------------------------------------------------- result


@dataclass
class MediationResult:
    """Effects of the exposure on the outcome, split into direct and through-the-mediator parts."""

    estimates: pd.Series  # EFFECTS -> full-sample estimate
    replicate_estimates: pd.DataFrame  # B x EFFECTS
    exposure_label: str
    mediator: str
    outcome: str
    outcome_model: str
    scale: str  # "mean difference" | "risk difference"
    covariates: tuple[str, ...]
    n: int
    n_excluded: int
    replicates: int
    seed: int | None
    ci_method: str
    level: float
    design_label: str
    mediator_params: pd.Series
    outcome_params: pd.Series
    mediator_sigma: float
    spec: MediationSpec | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def se(self) -> pd.Series:
        return pd.Series(
            {
                k: np.sqrt(replicate_variance(self.replicate_estimates[k].to_numpy()))
                for k in EFFECTS
            }
        )

    def confint(self, method: str | None = None, level: float | None = None) -> pd.DataFrame:
        method = method or self.ci_method
        level = self.level if level is None else level
        if method not in CI_METHODS:
            raise ValueError(f"ci method must be one of {CI_METHODS}, got {method!r}")
        alpha = 1 - level
        if method == "normal":
            z = stats.norm.ppf(1 - alpha / 2)
            low, high = self.estimates - z * self.se, self.estimates + z * self.se
        else:
            reps = self.replicate_estimates
            low = reps.quantile(alpha / 2)
            high = reps.quantile(1 - alpha / 2)
        return pd.DataFrame({"ci_low": low, "ci_high": high}).loc[list(EFFECTS)]

    def to_frame(self) -> pd.DataFrame:
        ci = self.confint()
        pct = self.confint("percentile")
        out = pd.DataFrame(
            {
                "estimate": self.estimates,
                "se": self.se,
                "ci_low": ci["ci_low"],
                "ci_high": ci["ci_high"],
                "pct_low": pct["ci_low"],
                "pct_high": pct["ci_high"],
            }
        ).loc[list(EFFECTS)]
        out["scale"] = [self.scale] * 3 + ["proportion"]
        out.index.name = "effect"
        return out

    def summary(self) -> str:
        f = self.to_frame()
        lvl = f"{100 * self.level:g}%"
        lines = [
            f"Causal mediation (mediation formula), design: {self.design_label}",
            f"  exposure: {self.exposure_label}; mediator: {self.mediator}; "
            f"outcome: {self.outcome} ({self.outcome_model} model, {self.scale})",
            f"  covariates: {', '.join(self.covariates) or '(none)'}",
            f"  n = {self.n} complete cases ({self.n_excluded} excluded as a domain); "
            f"{self.replicates} subbootstrap replicates (seed {self.seed}); "
            f"{lvl} CI: {self.ci_method}",
            "",
            f"  {'effect':<26}{'estimate':>10}{'SE':>10}{'CI low':>10}{'CI high':>10}"
            f"{'pct low':>10}{'pct high':>10}",
        ]
        for name, r in f.iterrows():
            lines.append(
                f"  {name:<26}{r.estimate:>10.4f}{r.se:>10.4f}{r.ci_low:>10.4f}"
                f"{r.ci_high:>10.4f}{r.pct_low:>10.4f}{r.pct_high:>10.4f}"
            )
        lines += [
            "",
            f"  mediator model: {self.mediator} ~ exposure + covariates "
            f"(exposure coef {self.mediator_params['exposure']:.4f}, "
            f"residual SD {self.mediator_sigma:.4f})",
            "  Assumes no unmeasured exposure-mediator, mediator-outcome or exposure-outcome "
            "confounding, and no mediator-outcome confounder affected by the exposure.",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_findings(
        self,
        *,
        source: str,
        notebook: str = "",
        truth: dict[str, float] | None = None,
        caveats: list[str] | None = None,
    ) -> list[Finding]:
        """The registry's C2 findings: the NIE (primary) and the proportion mediated (context).

        ``truth`` (synthetic world only) maps effect names (e.g. 'natural_indirect_effect') to
        their true values.
        """
        spec = self.spec or load_mediation_spec()
        expected = registry_measure(spec.nie_key)
        if expected is not None and expected.lower() != self.scale:
            raise MediationError(
                f"registry estimand '{spec.nie_key}' expects measure '{expected}', this result is "
                f"on the {self.scale} scale (outcome '{self.outcome}', {self.outcome_model} model)"
            )
        frame = self.to_frame()
        truth = truth or {}
        common = dict(
            claim_id=spec.claim_id,
            source=source,
            n=self.n,
            design="cross-sectional survey",
            notebook=notebook,
            caveats=_caveats(source) + list(caveats or []),
        )
        extra = {
            "ci_method": self.ci_method,
            "level": self.level,
            "replicates": self.replicates,
            "seed": self.seed,
            "bootstrap": "Rao-Wu-Yue rescaling (R subbootstrap), PSUs within strata",
            "outcome_model": self.outcome_model,
            "covariates": list(self.covariates),
            "natural_direct_effect": float(frame.loc["natural_direct_effect", "estimate"]),
            "total_effect": float(frame.loc["total_effect", "estimate"]),
        }
        nie = frame.loc["natural_indirect_effect"]
        pm = frame.loc["proportion_mediated"]
        return [
            Finding(
                estimand=spec.nie_key,
                label=f"Natural indirect effect of {self.exposure_label} on {self.outcome} "
                f"through {self.mediator} ({self.scale})",
                estimate=float(nie.estimate),
                ci_low=float(nie.ci_low),
                ci_high=float(nie.ci_high),
                measure=self.scale,
                null_value=0.0,
                truth=truth.get("natural_indirect_effect"),
                extra={**extra, "se": float(nie.se)},
                **common,
            ),
            Finding(
                estimand=spec.proportion_key,
                label=f"Proportion of the effect of {self.exposure_label} on {self.outcome} "
                f"mediated by {self.mediator}",
                estimate=float(pm.estimate),
                ci_low=float(pm.ci_low),
                ci_high=float(pm.ci_high),
                measure="proportion",
                null_value=None,
                truth=truth.get("proportion_mediated"),
                extra={**extra, "se": float(pm.se)},
                **common,
            ),
        ]


def _caveats(source: str) -> list[str]:
    out = [
        "Cross-sectional: exposure, mediator and outcome are measured at the same time.",
        "Mediation needs no unmeasured confounding of anxiety-tension, tension-pain and "
        "anxiety-pain, and no tension-pain confounder caused by anxiety.",
    ]
    if source == "synthetic":
        out.insert(0, "Synthetic data: validates the pipeline against known truth; not evidence.")
    return out


def c2_findings(
    design: SurveyDesign,
    *,
    source: str,
    notebook: str = "",
    truth: dict[str, float] | None = None,
    **kwargs,
) -> tuple[MediationResult | None, list[Finding]]:
    """Run the registry's C2 mediation on a design, or report 'not measured' for the source.

    Returns (result or None, findings). Keyword arguments go to `estimate_mediation`.
    """
    spec = load_mediation_spec()
    missing = spec.first_unmeasured(design.data.columns)
    if missing is not None:
        return None, mediation_not_measured(source, column=missing, notebook=notebook, spec=spec)
    result = estimate_mediation_spec(design, spec, **kwargs)
    return result, result.to_findings(source=source, notebook=notebook, truth=truth)


def estimate_mediation_spec(design: SurveyDesign, spec: MediationSpec, **kwargs) -> MediationResult:
    """`estimate_mediation` with the columns and settings of a `MediationSpec`."""
    args = dict(
        exposure=spec.exposure,
        mediator=spec.mediator,
        outcome=spec.outcome,
        covariates=spec.covariates,
        exposure_at_least=spec.exposure_at_least,
        exposure_label=spec.exposure_label,
        outcome_model=spec.outcome_model,
        interaction=spec.interaction,
        replicates=spec.replicates,
        ci_method=spec.ci_method,
        level=spec.level,
    )
    args.update(kwargs)
    result = estimate_mediation(design, **args)
    result.spec = spec
    return result


# --------------------------------------------------------------------------- estimation


def estimate_mediation(
    design: SurveyDesign,
    *,
    exposure: str,
    mediator: str,
    outcome: str,
    covariates: tuple[str, ...] | list[str] = (),
    exposure_at_least: float | None = None,
    exposure_label: str | None = None,
    outcome_model: str = "auto",
    interaction: bool = True,
    replicates: int = 200,
    seed: int | None = 0,
    ci_method: str = "normal",
    level: float = 0.95,
    progress: bool = True,
) -> MediationResult:
    """Natural direct/indirect effects of a binary exposure through a continuous mediator.

    exposure : a binary column (bool or 0/1), or a numeric score dichotomised at
        ``exposure_at_least`` (exposed when score >= it).
    outcome_model : 'linear' (continuous outcome, mean differences), 'logistic' (binary 0/1
        or bool outcome, risk differences) or 'auto' (logistic for a binary column).
    replicates, seed : subbootstrap replicates and the seed that makes them reproducible.
    """
    if ci_method not in CI_METHODS:
        raise MediationError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}")
    if not 0 < level < 1:
        raise MediationError(f"level must be in (0, 1), got {level!r}")
    df = design.data
    covariates = tuple(covariates)
    for col in (exposure, mediator, outcome, *covariates):
        require_measured(df, col)
    used = [exposure, mediator, outcome, *covariates]
    complete = ~df[used].isna().any(axis=1).to_numpy()
    if not complete.any():
        raise MediationError(f"no row has all of the columns {used} observed")
    sub = df.loc[complete]

    a = gformula.exposure_indicator(sub[exposure], exposure, exposure_at_least)
    m = gformula.numeric_column(sub[mediator], mediator)
    y, outcome_model = gformula.outcome_column(sub[outcome], outcome, outcome_model)
    c, c_names = gformula.covariate_matrix(sub, covariates)
    w = design.weights[complete]

    x_med = np.column_stack([np.ones_like(a), a, c])
    med_names = ["const", "exposure", *c_names]
    out_names = ["const", "exposure", "mediator"] + (["exposure:mediator"] if interaction else [])
    out_names += c_names

    # full-sample fits with statsmodels (weighted point estimates)
    med_fit = WLS(m, x_med, weights=w).fit()
    beta = np.asarray(med_fit.params)
    x_out = gformula.outcome_design(a, m, c, interaction)
    if outcome_model == "linear":
        theta = np.asarray(WLS(y, x_out, weights=w).fit().params)
    else:
        glm = GLM(y, x_out, family=families.Binomial(), freq_weights=w).fit()
        theta = np.asarray(glm.params)
    gformula.check_rank(x_med, med_names, "mediator")
    gformula.check_rank(x_out, out_names, "outcome")
    sigma = gformula.weighted_sigma(m - x_med @ beta, w)
    full = gformula.natural_effects(beta, sigma, theta, c, w, outcome_model, interaction)

    # design bootstrap
    rep_w = bootstrap_weight_columns(design, replicates, seed, rows=complete)
    reps = np.full((replicates, len(EFFECTS)), np.nan)
    n_failed = 0
    for b, wb in enumerate(
        tqdm(rep_w, total=replicates, desc="mediation bootstrap", disable=not progress, leave=False)
    ):
        # the rows a replicate leaves out (weight 0) add nothing to its fits: skip them
        kept = np.flatnonzero(wb)
        xm_b, xo_b, m_b, y_b, c_b, wb = (
            x_med[kept],
            x_out[kept],
            m[kept],
            y[kept],
            c[kept],
            wb[kept],
        )
        try:
            beta_b = gformula.wls(xm_b, m_b, wb)
            sigma_b = gformula.weighted_sigma(m_b - xm_b @ beta_b, wb)
            if outcome_model == "linear":
                theta_b = gformula.wls(xo_b, y_b, wb)
            else:
                theta_b = gformula.logistic_newton(xo_b, y_b, wb, start=theta)
            reps[b] = gformula.natural_effects(
                beta_b, sigma_b, theta_b, c_b, wb, outcome_model, interaction
            )
        except np.linalg.LinAlgError:
            n_failed += 1
    notes = []
    if n_failed:
        notes.append(f"{n_failed} replicate fit(s) failed and were dropped (R's na.action)")
    return MediationResult(
        estimates=pd.Series(full, index=list(EFFECTS)),
        replicate_estimates=pd.DataFrame(reps, columns=list(EFFECTS)),
        exposure_label=exposure_label
        or (f"{exposure} >= {exposure_at_least:g}" if exposure_at_least is not None else exposure),
        mediator=mediator,
        outcome=outcome,
        outcome_model=outcome_model,
        scale="mean difference" if outcome_model == "linear" else "risk difference",
        covariates=covariates,
        n=int(complete.sum()),
        n_excluded=int((~complete).sum()),
        replicates=int(replicates),
        seed=seed,
        ci_method=ci_method,
        level=level,
        design_label=design.label,
        mediator_params=pd.Series(beta, index=med_names),
        outcome_params=pd.Series(theta, index=out_names),
        mediator_sigma=float(sigma),
        notes=notes,
    )


# --------------------------------------------------------------------------- synthetic truth check

TRUTH_KEYS = {
    "natural_direct_effect": "nde_moderate_or_worse_vs_none",
    "natural_indirect_effect": "nie_moderate_or_worse_vs_none",
    "total_effect": "te_moderate_or_worse_vs_none",
}


def synthetic_truth_check(
    design: SurveyDesign, truth: dict[str, float], **kwargs
) -> tuple[MediationResult, pd.DataFrame]:
    """Re-estimate the mediation on the estimand the synthetic world's truth is defined for.

    The world's truth (``nie/nde/te_moderate_or_worse_vs_none``) is on the risk-difference
    scale of ANY back pain, GAD-7 moderate-or-worse vs none (mild excluded as a domain). The
    registry's C2 estimand (pain intensity, GAD-7 >= 10 vs < 10) has no closed-form truth, so
    this check validates the estimator rather than the C2 number. Keyword arguments go to
    `estimate_mediation`. Returns (result, table of estimate, CI, truth, covered).
    """
    spec = load_mediation_spec()
    df = design.data.copy()
    gad = df["gad7_score"].astype("float64")
    df["_gad7_moderate_plus_vs_none"] = np.where(gad >= 10, 1.0, np.where(gad < 5, 0.0, np.nan))
    sev = df["back_pain_severity"]
    df["back_pain_any"] = (sev != "not at all").astype("float64").where(sev.notna())
    d = redesign(design, df)
    args = dict(
        exposure="_gad7_moderate_plus_vs_none",
        exposure_label="GAD-7 >= 10 vs < 5 (mild excluded)",
        mediator=spec.mediator,
        outcome="back_pain_any",
        outcome_model="logistic",
        covariates=spec.covariates,
        interaction=spec.interaction,
    )
    args.update(kwargs)
    result = estimate_mediation(d, **args)
    table = result.to_frame().loc[list(TRUTH_KEYS), ["estimate", "ci_low", "ci_high"]]
    table["truth"] = [truth.get(TRUTH_KEYS[k], np.nan) for k in table.index]
    table["covered"] = (table["ci_low"] <= table["truth"]) & (table["truth"] <= table["ci_high"])
    return result, table
