"""The mediation formula's numerical pieces: model columns, weighted fits and the effects.

`analysis.models.mediation` estimates natural direct and indirect effects with these, once on
the full sample and once per bootstrap replicate; they are kept apart so that the estimator's
arithmetic can be read (and tested) without the specification, result and findings around it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

EFFECTS = (
    "natural_direct_effect",
    "natural_indirect_effect",
    "total_effect",
    "proportion_mediated",
)
OUTCOME_MODELS = ("linear", "logistic")
GH_NODES = 24  # Gauss-Hermite nodes integrating a logistic outcome over the mediator


class MediationError(ValueError):
    """The mediation inputs are unusable; the message names the column and the problem."""


def exposure_indicator(s: pd.Series, name: str, at_least: float | None) -> np.ndarray:
    if at_least is not None:
        x = numeric_column(s, name)
        a = (x >= at_least).astype(float)
        what = f"'{name}' >= {at_least:g}"
    else:
        if s.dtype == bool or str(s.dtype) == "boolean":
            a = s.astype(bool).to_numpy().astype(float)
        else:
            a = numeric_column(s, name)
            if not np.isin(a, (0.0, 1.0)).all():
                raise MediationError(
                    f"exposure column '{name}' must be binary (bool or 0/1), or give "
                    "exposure_at_least to dichotomise a score"
                )
        what = f"'{name}'"
    n1 = int(a.sum())
    if n1 == 0 or n1 == len(a):
        level = "exposed" if n1 else "unexposed"
        raise MediationError(
            f"exposure column '{name}': every complete case is {level} ({what}); the exposure "
            "needs both levels"
        )
    return a


def numeric_column(s: pd.Series, name: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise MediationError(f"column '{name}' must be numeric, got dtype {s.dtype}")
    return s.to_numpy(dtype="float64", na_value=np.nan)


def outcome_column(s: pd.Series, name: str, model: str) -> tuple[np.ndarray, str]:
    if model not in (*OUTCOME_MODELS, "auto"):
        raise MediationError(f"outcome_model must be 'auto', 'linear' or 'logistic', got {model!r}")
    is_bool = pd.api.types.is_bool_dtype(s)
    y = s.astype(float).to_numpy() if is_bool else numeric_column(s, name)
    binary = np.isin(y, (0.0, 1.0)).all()
    if model == "auto":
        model = "logistic" if binary else "linear"
    if model == "logistic" and not binary:
        raise MediationError(f"outcome column '{name}' must be 0/1 or bool for a logistic model")
    if np.unique(y).size < 2:
        raise MediationError(f"outcome column '{name}' has a single value among complete cases")
    return y, model


def covariate_matrix(df: pd.DataFrame, covariates: tuple[str, ...]):
    blocks, names = [], []
    for col in covariates:
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            blocks.append(s.astype(float).to_numpy()[:, None])
            names.append(col)
        elif pd.api.types.is_numeric_dtype(s):
            blocks.append(s.to_numpy(dtype="float64")[:, None])
            names.append(col)
        else:  # categorical / string: treatment coding, first observed level as reference
            cat = s.astype("category").cat.remove_unused_categories()
            if len(cat.cat.categories) < 2:
                continue  # constant among complete cases: nothing to adjust for
            d = pd.get_dummies(cat, prefix=col, prefix_sep="=", drop_first=True, dtype=float)
            blocks.append(d.to_numpy())
            names += list(d.columns)
    c = np.hstack(blocks) if blocks else np.empty((len(df), 0))
    return c, names


def outcome_design(a, m, c, interaction: bool) -> np.ndarray:
    cols = [np.ones_like(a), a, m] + ([a * m] if interaction else [])
    return np.column_stack([*cols, c])


def check_rank(x: np.ndarray, names: list[str], which: str) -> None:
    rank = np.linalg.matrix_rank(x)
    if rank < x.shape[1]:
        raise MediationError(
            f"{which} model: design matrix is rank-deficient ({rank} < {x.shape[1]} columns "
            f"{names}); a covariate is constant or collinear"
        )


def wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    xw = x * w[:, None]
    return np.linalg.solve(xw.T @ x, xw.T @ y)


def weighted_sigma(resid: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt(np.sum(w * resid**2) / np.sum(w)))


def logistic_newton(x, y, w, start, tol=1e-10, max_iter=50) -> np.ndarray:
    """Weighted logistic MLE by Newton-Raphson from ``start`` (the full-sample fit)."""
    beta = np.array(start, dtype=float)
    for _ in range(max_iter):
        p = special.expit(x @ beta)
        grad = x.T @ (w * (y - p))
        hess = (x * (w * p * (1 - p))[:, None]).T @ x
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            return beta
    raise np.linalg.LinAlgError("logistic Newton iterations did not converge")


_GH_X, _GH_W = np.polynomial.hermite.hermgauss(GH_NODES)


def expit_outer(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """expit(v_i + s_j) for every row i and node j, as 1 / (1 + e^-v_i e^-s_j): n + 24
    exponentials instead of n x 24, which were most of the bootstrap's time. Equal to
    ``expit(v[:, None] + s)`` within a few ulp; an overflow that would give inf x 0 falls back
    to it."""
    with np.errstate(over="ignore"):
        ev, es = np.exp(-v), np.exp(-s)
    if (np.isinf(ev).any() and not es.all()) or (np.isinf(es).any() and not ev.all()):
        eta = np.add.outer(v, s)
        return special.expit(eta, out=eta)
    e = np.multiply.outer(ev, es)
    e += 1.0
    return np.reciprocal(e, out=e)


def natural_effects(beta, sigma, theta, c, w, outcome_model, interaction) -> np.ndarray:
    """NDE, NIE, TE and proportion mediated from the two models' coefficients."""
    b0, ba, bc = beta[0], beta[1], beta[2:]
    keep = w > 0  # rows a bootstrap replicate leaves out add nothing: skip them
    if not keep.all():
        c, w = c[keep], w[keep]
    k = 4 if interaction else 3
    t0, ta, tm = theta[0], theta[1], theta[2]
    tam = theta[3] if interaction else 0.0
    tc = theta[k:]
    cb = c @ bc if c.shape[1] else 0.0
    ct = c @ tc if c.shape[1] else 0.0
    wsum = w.sum()

    def q(a_out: float, a_med: float) -> float:
        mu = b0 + ba * a_med + cb  # E[M(a_med) | C]
        base = t0 + ta * a_out + ct
        slope = tm + tam * a_out
        if outcome_model == "linear":
            return float(np.sum(w * (base + slope * mu)) / wsum)
        # integrate expit(base + slope*m) over m ~ N(mu, sigma^2)
        p = expit_outer(base + slope * mu, slope * np.sqrt(2.0) * sigma * _GH_X) @ _GH_W
        return float(np.sum(w * (p / np.sqrt(np.pi))) / wsum)

    q00, q10, q11 = q(0, 0), q(1, 0), q(1, 1)
    nde, nie, te = q10 - q00, q11 - q10, q11 - q00
    pm = nie / te if te != 0 else np.nan
    return np.array([nde, nie, te, pm])
