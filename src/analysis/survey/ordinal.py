"""Design-based proportional-odds (ordinal logistic) model, equal to R ``survey::svyolr``.

The model, in R's (``MASS::polr``) convention, for an outcome with ordered levels 1..K::

    logit P(Y ≤ k | x) = ζ_k − x'β,     k = 1..K−1,   ζ_1 < … < ζ_{K−1}

so a positive β moves people towards the higher levels; exp(β) is the common odds ratio of
being above any cut-point. statsmodels' ``OrderedModel`` uses the same sign convention but
has no sampling weights, so the weighted log-likelihood Σ w_i log P(Y = y_i | x_i) is
maximised here by Newton's method with its analytic gradient and Hessian (n-row products in
single-threaded ``einsum``, as in `analysis.survey.regression.irls`). The design-based
covariance is R's: the per-row scores times the inverse Hessian, through
`SurveyDesign.total_covariance` (R: ``svyrecvar(gmini %*% solve(H))``), with the
residual df R's ``svyolr`` reports: ``degf(design) − length(β)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from analysis.survey.design import SurveyDesign
from analysis.survey.estimates import t_quantile
from analysis.survey.regression import (
    DesignBasedFit,
    SurveyModelError,
    build_model_frame,
    check_full_rank,
    describe_domain,
    domain_mask,
    fitted_rows_design,
    profile_matrix,
    sandwich_covariance,
    weighted_gram,
)


def _ordered_codes(values: pd.Series, outcome: str) -> tuple[np.ndarray, list]:
    """Codes 0..K−1 of an ordered outcome: categorical order, else sorted values (R factor)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = list(values.cat.categories)
        codes = values.cat.codes.to_numpy()
        present = np.unique(codes[codes >= 0])
        # R's factor() of a subset keeps unused levels of a factor; polr then fails on an empty
        # level. Here empty levels are dropped so that the cut-points are estimable.
        levels = [levels[i] for i in present]
        codes = np.searchsorted(present, codes)
    elif pd.api.types.is_string_dtype(values):  # text (object columns are inspected)
        raise SurveyModelError(
            f"outcome '{outcome}' is text: make it an ordered categorical (e.g. "
            f"analysis.data.schema.categorical_dtype('{outcome}')) so the order of its levels is "
            "explicit, not alphabetical"
        )
    else:
        levels = sorted(pd.unique(values.dropna()))
        codes = pd.Categorical(values, categories=levels).codes
    if len(levels) < 3:
        raise SurveyModelError(
            f"outcome '{outcome}': an ordinal model needs 3 or more levels, got {levels}"
        )
    return np.asarray(codes, dtype=np.int64), levels


@dataclass
class OrdinalFit:
    beta: np.ndarray
    zeta: np.ndarray
    scores: np.ndarray  # n × (p + q): w_i ∂ log P(y_i)/∂θ
    hessian: np.ndarray  # of −Σ w log P, in (β, ζ)
    loglik: float
    iterations: int


def _pieces(X, y, w, beta, zeta, *, derivatives: bool = True):
    """Weighted log-likelihood; with ``derivatives``, also the per-row weighted scores
    (n × (p + q)) and the Hessian of −Σ w log P in θ = (β, ζ).

    Row i has log P_i = log(F(a_i) − F(b_i)) with a_i = u_i·θ, b_i = l_i·θ, where
    u_i = (−x_i, e_{y_i}) and l_i = (−x_i, e_{y_i − 1}) (the top and bottom levels have no upper
    or lower cut-point: F = 1 or 0 there). Then ∇ log P = (f(a) u − f(b) l) / P and
    ∇² log P = (f'(a) u u' − f'(b) l l') / P − ∇ log P ∇ log P'.
    """
    n, p = X.shape
    q = len(zeta)
    eta = np.einsum("ij,j->i", X, beta)
    cut = np.concatenate([[-np.inf], zeta, [np.inf]])
    Fa = expit(cut[y + 1] - eta)  # upper: ζ_y − η   (y is 0-based)
    Fb = expit(cut[y] - eta)  # lower: ζ_{y−1} − η
    prob = Fa - Fb
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = float(np.einsum("i,i->", w, np.log(prob)))
    if not derivatives:
        return loglik, None, None
    fa, fb = Fa * (1 - Fa), Fb * (1 - Fb)
    dfa, dfb = fa * (1 - 2 * Fa), fb * (1 - 2 * Fb)
    levels = np.arange(q)
    up = y[:, None] == levels  # ζ_k is row i's upper cut-point
    lo = y[:, None] - 1 == levels  # ζ_k is row i's lower cut-point
    S = np.empty((n, p + q), order="F")
    S[:, :p] = X * (-(fa - fb) / prob)[:, None]
    S[:, p:] = up * (fa / prob)[:, None] - lo * (fb / prob)[:, None]
    ca, cb = w * dfa / prob, w * dfb / prob
    C = lo * cb[:, None] - up * ca[:, None]  # the ζ-parts of f'(a) u u' − f'(b) l l', times x
    Sw = S * w[:, None]
    H = -np.einsum("ij,ik->jk", Sw, S)
    H[:p, :p] += weighted_gram(X, ca - cb)
    cross = np.einsum("ij,ik->jk", X, C)
    H[:p, p:] += cross
    H[p:, :p] += cross.T
    H[p:, p:] -= np.diag(C.sum(axis=0))
    return loglik, Sw, -H


def fit_proportional_odds(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, q: int, *, tol: float = 1e-8, max_iter: int = 200
) -> OrdinalFit:
    """Newton–Raphson with step halving for the weighted proportional-odds likelihood.

    Starts from β = 0 and the weighted marginal cumulative logits; a step is halved until
    the cut-points stay ordered and the likelihood does not fall; stops when the largest
    relative step is below ``tol`` (quadratic convergence: the remaining error is O(tol²)).
    """
    p = X.shape[1]
    X = np.asfortranarray(X)
    y = np.asarray(y, dtype=np.int64)
    cum = np.cumsum(np.bincount(y, weights=w, minlength=q + 1))[:q] / w.sum()
    theta = np.concatenate([np.zeros(p), np.log(cum / (1 - cum))])
    loglik, S, H = _pieces(X, y, w, theta[:p], theta[p:])
    for it in range(1, max_iter + 1):
        step = np.linalg.solve(H, S.sum(axis=0))
        for _ in range(40):
            new = theta + step
            if np.all(np.diff(new[p:]) > 0):
                ll_new = _pieces(X, y, w, new[:p], new[p:], derivatives=False)[0]
                if np.isfinite(ll_new) and ll_new >= loglik - 1e-12 * abs(loglik):
                    break
            step = step / 2
        else:
            raise SurveyModelError("proportional-odds fit: no step improves the likelihood")
        theta = new
        loglik, S, H = _pieces(X, y, w, theta[:p], theta[p:])
        if np.max(np.abs(step) / (np.abs(theta) + 1e-3)) < tol:
            return OrdinalFit(theta[:p], theta[p:], S, H, loglik, it)
    raise SurveyModelError(f"proportional-odds fit did not converge in {max_iter} iterations")


@dataclass
class SurveyOrdinalResult(DesignBasedFit):
    """A fitted design-based proportional-odds model (R ``svyolr``), logit link.

    ``params`` holds β (the covariate effects) then the cut-points ζ named ``"1|2"``, ``"2|3"``…
    as R prints them; exp(β) are cumulative odds ratios.
    """

    levels: list = field(default_factory=list)
    n_beta: int = 0
    iterations: int = 0
    loglik: float = np.nan
    spec: object = field(default=None, repr=False)

    @property
    def beta(self) -> pd.Series:
        return self.params.iloc[: self.n_beta]

    @property
    def zeta(self) -> pd.Series:
        return self.params.iloc[self.n_beta :]

    def _exp_rows(self) -> pd.Index:
        return self.params.index[: self.n_beta]

    def _header(self, level: float) -> list[str]:
        return [
            "Design-based proportional-odds model (R survey::svyolr equivalent), logit link",
            f"Formula: {self.formula}    levels: {' < '.join(str(v) for v in self.levels)}",
            "Model: logit P(Y <= k) = zeta_k - x'beta (beta > 0: towards higher levels; "
            "exp(beta) = cumulative odds ratio)",
            *self._design_lines(),
            "Standard errors: Taylor linearisation (sandwich); t tests and "
            f"{100 * level:g}% CIs on the residual df (design df - number of betas).",
        ]

    def predict_proba(self, newdata: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
        """Probability of each outcome level at covariate profiles, with delta-method SEs.

        One row per (profile, level): ``profile`` (the row label of ``newdata``), ``level``,
        ``probability``, ``std_error`` and a t interval on the residual df, clipped to [0, 1].
        Verified against R's ``svycontrast`` of the same expressions.
        """
        Xn = profile_matrix(self.spec, self.formula, newdata)
        Xn = Xn.drop(columns=["Intercept"], errors="ignore").to_numpy(dtype="float64")
        p = self.n_beta
        beta = self.params.to_numpy()[:p]
        zeta = self.params.to_numpy()[p:]
        V = self.cov_params.to_numpy()
        q = len(zeta)
        q_t = t_quantile(level, self.df_resid)
        rows = []
        for i, label in enumerate(newdata.index):
            eta = Xn[i] @ beta
            cdf = np.concatenate([[0.0], expit(zeta - eta), [1.0]])
            dens = np.concatenate([[0.0], cdf[1:-1] * (1 - cdf[1:-1]), [0.0]])
            for k in range(q + 1):
                prob = cdf[k + 1] - cdf[k]
                grad = np.zeros(p + q)
                grad[:p] = -Xn[i] * (dens[k + 1] - dens[k])
                if k < q:
                    grad[p + k] += dens[k + 1]
                if k > 0:
                    grad[p + k - 1] -= dens[k]
                se = float(np.sqrt(grad @ V @ grad))
                rows.append(
                    {
                        "profile": label,
                        "level": self.levels[k],
                        "probability": prob,
                        "std_error": se,
                        "ci_low": max(prob - q_t * se, 0.0),
                        "ci_high": min(prob + q_t * se, 1.0),
                    }
                )
        return pd.DataFrame(rows)


def svyolr(
    formula: str, design: SurveyDesign, *, domain=None, domain_label: str | None = None
) -> SurveyOrdinalResult:
    """Fit a design-based proportional-odds model, as R's ``svyolr(factor(y) ~ ..., design)``.

    ``formula``: the left-hand side is one column holding the ordered outcome (an ordered
    pandas Categorical, or values whose sorted order is the order, as R's ``factor``); the
    right-hand side as in `svyglm` (an intercept is implied and absorbed by the cut-points).
    ``domain``: a boolean mask or column, as in `svyglm`.
    """
    if "~" not in formula:
        raise SurveyModelError(f"formula '{formula}' has no outcome (left-hand side)")
    lhs, rhs = (part.strip() for part in formula.split("~", 1))
    if lhs not in design.data.columns:
        raise SurveyModelError(
            f"formula '{formula}': the outcome must be a column of the data; '{lhs}' is not"
        )
    # drop rows with a missing outcome first (R's na.omit on the model frame)
    has_outcome = design.data[lhs].notna().to_numpy()
    mask = domain_mask(design, domain) & has_outcome
    frame = build_model_frame(rhs, design, mask, outcome_required=False)
    n_domain = int(domain_mask(design, domain).sum())
    codes, levels = _ordered_codes(design.data[lhs].iloc[frame.rows], lhs)
    if "Intercept" not in frame.columns:
        raise SurveyModelError(f"formula '{formula}': an intercept is needed (R assumes one)")
    keep = [i for i, c in enumerate(frame.columns) if c != "Intercept"]
    check_full_rank(frame.X, frame.columns, formula)
    X = frame.X[:, keep]
    names = [frame.columns[i] for i in keep]
    w = design.weights[frame.rows]
    q = len(levels) - 1
    fit = fit_proportional_odds(X, codes, w, q)
    h_inv = np.linalg.inv(fit.hessian)
    h_inv = (h_inv + h_inv.T) / 2
    sub = fitted_rows_design(design, frame.rows)
    cov = sandwich_covariance(design, frame.rows, fit.scores, h_inv, sub)
    zeta_names = [f"{levels[k]}|{levels[k + 1]}" for k in range(q)]
    all_names = names + zeta_names
    shift = {t: slice(s.start - 1, s.stop - 1) for t, s in frame.term_slices.items() if t != "1"}
    return SurveyOrdinalResult(
        formula=formula,
        params=pd.Series(np.concatenate([fit.beta, fit.zeta]), index=all_names),
        cov_params=pd.DataFrame(cov, index=all_names, columns=all_names),
        df_resid=sub.df - len(names),
        design=design,
        fitted_design=sub,
        n_fitted=len(frame.rows),
        n_domain=n_domain,
        term_slices=shift,
        domain_label=describe_domain(domain, domain_label),
        exp_label="cum. odds ratio",
        levels=levels,
        n_beta=len(names),
        iterations=fit.iterations,
        loglik=fit.loglik,
        spec=frame.spec,
    )


__all__ = ["SurveyOrdinalResult", "fit_proportional_odds", "svyolr"]
