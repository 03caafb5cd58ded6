"""Random-effects meta-analysis that reproduces R metafor's ``rma()`` and ``predict()``.

Two estimators of the between-study variance tau^2:

- ``"DL"`` (DerSimonian-Laird): the moment estimate and Q come from statsmodels'
  ``combine_effects``, which gives metafor's values (checked in the tests) except that
  it does not truncate a negative estimate at zero; that truncation is applied here.
- ``"REML"``: statsmodels has no REML estimator, so it is solved here with
  metafor's own algorithm (Fisher scoring on the restricted likelihood), iterated
  to convergence rather than stopped at metafor's default 1e-5 step.

Heterogeneity follows metafor's definitions: Q with its chi-square p-value,
I^2 = tau^2 / (tau^2 + typical within-study variance) and H^2, and the standard
error of tau^2 where metafor reports one. The pooled estimate has a z-based
(Wald) CI, metafor's default, or optionally the Knapp-Hartung t-based CI
(``test="knha"``). The prediction interval is metafor's ``predict()``:
estimate +/- crit * sqrt(SE^2 + tau^2), crit from the normal or, with
Knapp-Hartung, the t distribution with k - 1 degrees of freedom.

Effect sizes on a ratio scale are pooled on the log scale; the helpers below
turn reported ratio CIs or 2x2 counts into log effects with variances, and the
result's ``transform`` brings them back.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

__all__ = [
    "MetaAnalysisError",
    "MetaResult",
    "random_effects",
    "reml_tau2",
    "se_from_ci",
    "log_ratio_from_ci",
    "log_risk_ratio",
    "difference_from_arm_cis",
    "forest_plot",
    "RATIO_MEASURES",
]

RATIO_MEASURES = ("RR", "OR", "HR")


class MetaAnalysisError(ValueError):
    """The inputs cannot be meta-analysed (too few studies, bad variances, ...)."""


def _z_crit(level: float) -> float:
    return float(stats.norm.ppf(1 - (1 - level / 100) / 2))


# --------------------------------------------------------------------------------------------
# Effect-size helpers
# --------------------------------------------------------------------------------------------


def se_from_ci(ci_low: float, ci_high: float, level: float = 95.0) -> float:
    """Standard error implied by a symmetric (Wald) confidence interval on the analysis scale."""
    if not ci_high > ci_low:
        raise MetaAnalysisError(f"CI upper bound {ci_high} is not above lower bound {ci_low}")
    return (ci_high - ci_low) / (2 * _z_crit(level))


@dataclass(frozen=True)
class IndirectComparison:
    """A vs B through their common comparator C (Bucher 1997): d_AB = d_AC - d_BC."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float


def bucher(
    d_ac: float, se_ac: float, d_bc: float, se_bc: float, level: float = 95.0
) -> IndirectComparison:
    """Adjusted indirect comparison of A and B, each trialled against C (Bucher et al., J Clin
    Epidemiol 1997): the difference of the two effects, with the variances added, since the
    two sets of trials are independent. Valid only when A and B were trialled in similar
    people with similar controls; the caller says so in the finding's caveats."""
    for name, v in (("se_ac", se_ac), ("se_bc", se_bc)):
        if not (v > 0 and np.isfinite(v)):
            raise MetaAnalysisError(f"{name} must be a positive number, got {v!r}")
    d = d_ac - d_bc
    se = float(np.hypot(se_ac, se_bc))
    z = _z_crit(level)
    return IndirectComparison(d, se, d - z * se, d + z * se)


def log_ratio_from_ci(
    estimate: float, ci_low: float, ci_high: float, level: float = 95.0
) -> tuple[float, float]:
    """A reported ratio (RR/OR/HR) with its CI -> (log ratio, variance of the log ratio)."""
    if min(estimate, ci_low, ci_high) <= 0:
        raise MetaAnalysisError(
            f"ratio and its CI must be positive to take logs, got {estimate} ({ci_low}, {ci_high})"
        )
    se = se_from_ci(np.log(ci_low), np.log(ci_high), level)
    return float(np.log(estimate)), float(se**2)


def log_risk_ratio(
    events_treat: float, n_treat: float, events_ctrl: float, n_ctrl: float
) -> tuple[float, float]:
    """Log risk ratio and its large-sample variance from a 2x2 table (metafor ``escalc("RR")``).

    As in metafor's default (``add=1/2, to="only0"``), 0.5 is added to every cell of a
    table that has a zero cell.
    """
    a, n1, c, n2 = (float(x) for x in (events_treat, n_treat, events_ctrl, n_ctrl))
    if not (0 <= a <= n1 and 0 <= c <= n2 and n1 > 0 and n2 > 0):
        raise MetaAnalysisError(f"2x2 counts must satisfy 0 <= events <= n: {a}/{n1} vs {c}/{n2}")
    b, d = n1 - a, n2 - c
    if min(a, b, c, d) == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
        n1, n2 = a + b, c + d
    yi = np.log(a / n1) - np.log(c / n2)
    vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
    return float(yi), float(vi)


def difference_from_arm_cis(
    mean_treat: float,
    lo_treat: float,
    hi_treat: float,
    mean_ctrl: float,
    lo_ctrl: float,
    hi_ctrl: float,
    level: float = 95.0,
    shared_control: int = 1,
) -> tuple[float, float]:
    """Between-arm mean difference and its variance from each arm's mean and CI.

    The arms are independent, so the variances add. A control arm shared by
    ``shared_control`` comparisons of one trial has its variance multiplied by that
    number (the Cochrane Handbook's "split the shared group" approach), so the
    trial's placebo arm is not counted several times at full weight.
    """
    if shared_control < 1:
        raise MetaAnalysisError(f"shared_control must be >= 1, got {shared_control}")
    se_t = se_from_ci(lo_treat, hi_treat, level)
    se_c = se_from_ci(lo_ctrl, hi_ctrl, level)
    return float(mean_treat - mean_ctrl), float(se_t**2 + shared_control * se_c**2)


# --------------------------------------------------------------------------------------------
# tau^2 estimators
# --------------------------------------------------------------------------------------------


def _p_matrix(w: np.ndarray) -> np.ndarray:
    """P = W - W 1 (1'W1)^-1 1'W for an intercept-only model."""
    return np.diag(w) - np.outer(w, w) / w.sum()


def reml_tau2(
    yi: np.ndarray, vi: np.ndarray, tol: float = 1e-12, max_iter: int = 10_000
) -> tuple[float, int]:
    """REML estimate of tau^2 by Fisher scoring (metafor's algorithm), truncated at 0.

    Returns (tau2, iterations). Starts from the Hedges (HE) estimate as metafor does;
    a step that would go below zero is halved until it does not.
    """
    k = len(yi)
    # Hedges estimator as starting value (metafor's default start for REML)
    tau2 = max(0.0, float(np.var(yi, ddof=1) - vi.mean()))
    for it in range(1, max_iter + 1):
        w = 1 / (vi + tau2)
        p = _p_matrix(w)
        py = p @ yi
        step = (py @ py - np.trace(p)) / np.sum(p * p)
        while tau2 + step < 0:
            step /= 2
            if abs(step) < tol:
                break
        new = max(0.0, tau2 + step)
        if abs(new - tau2) < tol * max(1.0, tau2):
            return new, it
        tau2 = new
    raise MetaAnalysisError(f"REML did not converge in {max_iter} iterations (k = {k})")


# --------------------------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaResult:
    """A fitted random-effects model: pooled estimate, heterogeneity and prediction interval."""

    method: str
    test: str
    level: float
    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    stat: float
    pval: float
    tau2: float
    se_tau2: float | None
    I2: float
    H2: float
    Q: float
    Q_df: int
    Q_pval: float
    pi_low: float
    pi_high: float
    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)  # percent, as metafor's weights()
    labels: tuple[str, ...] = ()
    measure: str = ""  # "RR", "OR", "HR" -> pooled on the log scale; else identity
    iterations: int = 0

    @property
    def log_scale(self) -> bool:
        return self.measure in RATIO_MEASURES

    @property
    def tau(self) -> float:
        return float(np.sqrt(self.tau2))

    def transform(self, x):
        """Back to the reporting scale: exp() for ratio measures, identity otherwise."""
        return np.exp(x) if self.log_scale else x

    def reported(self) -> dict[str, float]:
        """Estimate, CI and prediction interval on the reporting scale."""
        t = self.transform
        return {
            "estimate": float(t(self.estimate)),
            "ci_low": float(t(self.ci_low)),
            "ci_high": float(t(self.ci_high)),
            "pi_low": float(t(self.pi_low)),
            "pi_high": float(t(self.pi_high)),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row with every quantity (analysis scale), plus the reporting-scale estimate and CI."""
        row = {
            "method": self.method,
            "test": self.test,
            "k": self.k,
            "measure": self.measure,
            "estimate": self.estimate,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "stat": self.stat,
            "pval": self.pval,
            "tau2": self.tau2,
            "se_tau2": self.se_tau2,
            "I2": self.I2,
            "H2": self.H2,
            "Q": self.Q,
            "Q_df": self.Q_df,
            "Q_pval": self.Q_pval,
            "pi_low": self.pi_low,
            "pi_high": self.pi_high,
        }
        row.update({f"reported_{k}": v for k, v in self.reported().items()})
        return pd.DataFrame([row])

    def study_frame(self) -> pd.DataFrame:
        """Per-study effects with CIs (reporting scale) and their random-effects weights (%)."""
        z = _z_crit(self.level)
        se = np.sqrt(self.vi)
        labels = self.labels or tuple(f"study {i + 1}" for i in range(self.k))
        return pd.DataFrame(
            {
                "study": list(labels),
                "yi": self.yi,
                "vi": self.vi,
                "estimate": self.transform(self.yi),
                "ci_low": self.transform(self.yi - z * se),
                "ci_high": self.transform(self.yi + z * se),
                "weight_pct": self.weights,
            }
        )

    def summary(self) -> str:
        """A readable report in the spirit of metafor's print method."""
        test = "Knapp-Hartung t" if self.test == "knha" else "z"
        scale = " (log scale)" if self.log_scale else ""
        se_tau2 = "" if self.se_tau2 is None else f" (SE = {self.se_tau2:.4f})"
        rep = self.reported()
        lines = [
            f"Random-effects meta-analysis (k = {self.k}; tau^2 estimator: {self.method}; "
            f"test: {test})",
            "",
            f"tau^2 (estimated amount of total heterogeneity): {self.tau2:.4f}{se_tau2}",
            f"tau (square root of estimated tau^2 value):      {self.tau:.4f}",
            f"I^2 (total heterogeneity / total variability):   {self.I2:.2f}%",
            f"H^2 (total variability / sampling variability):  {self.H2:.2f}",
            "",
            f"Test for heterogeneity: Q(df = {self.Q_df}) = {self.Q:.4f}, p = {self.Q_pval:.4g}",
            "",
            f"Model results{scale}:",
            f"  estimate = {self.estimate:.4f}, SE = {self.se:.4f}, "
            f"{'t' if self.test == 'knha' else 'z'} = {self.stat:.4f}, p = {self.pval:.4g}",
            f"  {self.level:g}% CI: [{self.ci_low:.4f}, {self.ci_high:.4f}]   "
            f"{self.level:g}% prediction interval: [{self.pi_low:.4f}, {self.pi_high:.4f}]",
        ]
        if self.log_scale:
            lines += [
                "",
                f"Back-transformed ({self.measure}): {rep['estimate']:.3f} "
                f"[{rep['ci_low']:.3f}, {rep['ci_high']:.3f}], prediction interval "
                f"[{rep['pi_low']:.3f}, {rep['pi_high']:.3f}]",
            ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _validate(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    if yi.ndim != 1 or vi.ndim != 1 or len(yi) != len(vi):
        raise MetaAnalysisError(
            f"effects and variances must be 1-D and of equal length, got {yi.shape} and {vi.shape}"
        )
    if len(yi) < 2:
        raise MetaAnalysisError(
            f"a random-effects meta-analysis needs at least 2 studies, got {len(yi)}"
        )
    if not np.all(np.isfinite(yi)):
        raise MetaAnalysisError(f"effects must be finite numbers, got {yi.tolist()}")
    bad = [i for i, v in enumerate(vi) if not (np.isfinite(v) and v > 0)]
    if bad:
        raise MetaAnalysisError(
            "sampling variances must be positive and finite; bad at position(s) "
            f"{bad}: {[vi[i] for i in bad]}"
        )
    return yi, vi


def random_effects(
    yi: Sequence[float],
    vi: Sequence[float],
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    labels: Sequence[str] | None = None,
    measure: str = "",
) -> MetaResult:
    """Fit metafor's ``rma(yi, vi, method=method, test=test)`` and ``predict()``.

    ``yi`` are effects on the analysis scale (log ratios for RR/OR/HR), ``vi`` their
    sampling variances. ``method`` is "DL" or "REML"; ``test`` is "z" (default, as
    metafor) or "knha" (Knapp-Hartung).
    """
    method = method.upper()
    if method not in ("DL", "REML"):
        raise MetaAnalysisError(f"method must be 'DL' or 'REML', got {method!r}")
    if test not in ("z", "knha"):
        raise MetaAnalysisError(f"test must be 'z' or 'knha', got {test!r}")
    if not 0 < level < 100:
        raise MetaAnalysisError(f"level is a percentage in (0, 100), got {level}")
    yi, vi = _validate(yi, vi)
    if labels is not None and len(labels) != len(yi):
        raise MetaAnalysisError(f"{len(labels)} labels for {len(yi)} studies")
    k = len(yi)
    df = k - 1

    # Fixed-effect quantities (Q, typical within-study variance): shared by both estimators.
    w_fe = 1 / vi
    p_fe = _p_matrix(w_fe)
    tr_p_fe = float(np.trace(p_fe))
    mu_fe = float(np.sum(w_fe * yi) / w_fe.sum())
    q = float(np.sum(w_fe * (yi - mu_fe) ** 2))
    iterations = 0

    if method == "DL":
        with np.errstate(invalid="ignore"):  # its own SE of a negative tau^2 is NaN; unused
            res = combine_effects(yi, vi, method_re="dl", use_t=False, alpha=1 - level / 100)
        # statsmodels 0.15 leaves the moment estimate negative when Q < k - 1; metafor (and
        # DerSimonian-Laird) truncate it at zero, so the weights below use the truncated value.
        tau2 = max(0.0, float(res.tau2))
        q = float(res.q)
        # metafor's SE of the DL estimate (Rukhin et al. variance of the MM estimator)
        se_tau2 = float(
            np.sqrt((2 * df + 4 * tau2 * tr_p_fe + 2 * tau2**2 * np.sum(p_fe * p_fe)) / tr_p_fe**2)
        )
    else:
        tau2, iterations = reml_tau2(yi, vi)
        p_re = _p_matrix(1 / (vi + tau2))
        se_tau2 = float(np.sqrt(2 / np.sum(p_re * p_re)))

    w = 1 / (vi + tau2)
    estimate = float(np.sum(w * yi) / w.sum())
    se = float(np.sqrt(1 / w.sum()))
    if test == "knha":
        s2 = float(np.sum(w * (yi - estimate) ** 2) / df)
        se = float(np.sqrt(s2 / w.sum()))
        crit = float(stats.t.ppf(1 - (1 - level / 100) / 2, df))
        stat = estimate / se
        pval = float(2 * stats.t.sf(abs(stat), df))
    else:
        crit = _z_crit(level)
        stat = estimate / se
        pval = float(2 * stats.norm.sf(abs(stat)))

    vt = df / tr_p_fe  # typical within-study variance (metafor)
    i2 = 100 * tau2 / (vt + tau2)
    h2 = (vt + tau2) / vt
    pi_half = crit * np.sqrt(se**2 + tau2)
    return MetaResult(
        method=method,
        test=test,
        level=level,
        k=k,
        estimate=estimate,
        se=se,
        ci_low=estimate - crit * se,
        ci_high=estimate + crit * se,
        stat=float(stat),
        pval=pval,
        tau2=tau2,
        se_tau2=se_tau2,
        I2=float(i2),
        H2=float(h2),
        Q=q,
        Q_df=df,
        Q_pval=float(stats.chi2.sf(q, df)),
        pi_low=float(estimate - pi_half),
        pi_high=float(estimate + pi_half),
        yi=yi,
        vi=vi,
        weights=100 * w / w.sum(),
        labels=tuple(labels) if labels is not None else (),
        measure=measure,
        iterations=iterations,
    )


# --------------------------------------------------------------------------------------------
# Forest plot
# --------------------------------------------------------------------------------------------


def forest_plot(
    result: MetaResult,
    title: str = "",
    xlabel: str | None = None,
    null_value: float | None = None,
    ax=None,
):
    """Forest plot: one row per study (square sized by weight, CI line), the pooled
    diamond, and the prediction interval as a line through the diamond. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    studies = result.study_frame()
    rep = result.reported()
    n = len(studies)
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 1.6 + 0.45 * (n + 2)))
    else:
        fig = ax.figure
    ys = np.arange(n, 0, -1) + 1.0
    sizes = 30 + 270 * studies["weight_pct"].to_numpy() / 100
    ax.hlines(ys, studies["ci_low"], studies["ci_high"], color="0.25", lw=1.2)
    ax.scatter(studies["estimate"], ys, s=sizes, marker="s", color="0.2", zorder=3)
    # pooled diamond at y = 0.5, prediction interval as a thin line
    y0 = 0.5
    ax.hlines(
        y0, rep["pi_low"], rep["pi_high"], color="tab:blue", lw=1.5, label="prediction interval"
    )
    diamond = Polygon(
        [
            (rep["ci_low"], y0),
            (rep["estimate"], y0 + 0.3),
            (rep["ci_high"], y0),
            (rep["estimate"], y0 - 0.3),
        ],
        closed=True,
        color="tab:red",
        zorder=4,
        label=f"pooled ({result.method})",
    )
    ax.add_patch(diamond)
    if null_value is None:
        null_value = 1.0 if result.log_scale else 0.0
    ax.axvline(null_value, color="0.5", ls="--", lw=1)
    ax.set_yticks(list(ys) + [y0])
    ax.set_yticklabels(list(studies["study"]) + [f"Pooled (k = {result.k})"])
    ax.set_ylim(-0.3, n + 1.7)
    if result.log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or (result.measure or "effect"))
    heading = (
        f"{result.method}: {rep['estimate']:.2f} [{rep['ci_low']:.2f}, {rep['ci_high']:.2f}]; "
        f"tau² = {result.tau2:.3g}, I² = {result.I2:.0f}%"
    )
    wrapped = textwrap.fill(title, 60) if title else ""
    ax.set_title(f"{wrapped}\n{heading}" if title else heading, fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
