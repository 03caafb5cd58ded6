"""Census fits of the synthetic world: the estimators' regressions fitted to the population.

The regressors of every census fit are discrete, so a fit depends on the population only
through sums over cells of the regressors (`Cells`): fitting to the cell sums gives exactly
the fit to every person, at a tiny cost. Each fit returns its coefficients with a
Monte-Carlo SE (from the within-cell spread of the Rao-Blackwellised outcome) and the
reference SE of the same estimator at n = 30,000. Two sets of cells: the registry's
adjusted odds ratios (`TERMS`) and notebook 03's model (`analysis.models.associations`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from analysis.models.design import load_spec
from analysis.survey.ordinal import fit_proportional_odds

REFERENCE_N = 30_000
LEVELS = ("mild", "moderate", "severe")
# The regressors of the census fits (reference levels: GAD-7 none, active, 18-29, women).
TERMS = (
    "gad7_mild",
    "gad7_moderate",
    "gad7_severe",
    "obese",
    "insufficiently_active",
    "inactive",
    "age_30_44",
    "age_45_64",
    "age_65_plus",
    "male",
    "phq8_score",
)
FORMULA = (
    "back_pain_any ~ C(gad7_category, Treatment('none')) + obese"
    " + C(physical_activity, Treatment('active')) + C(age_group, Treatment('18-29'))"
    " + C(sex, Treatment('female')) + phq8_score"
)
PO_FORMULA = (
    FORMULA.replace("back_pain_any", "back_pain_severity", 1) + "  (no intercept; 3 cut-points)"
)

# The registry's fits have cells of (GAD-7 category, obesity, activity, age group, sex, PHQ-8).
_CELL_SHAPE = (4, 2, 3, 4, 2, 25)
N_CELLS = int(np.prod(_CELL_SHAPE))


def cell_codes(d: dict[str, np.ndarray]) -> np.ndarray:
    """The registry fits' cell of each person of a population draw."""
    return np.ravel_multi_index(
        (
            d["gad7_cat"],
            d["obese"].astype(np.int8),
            d["activity"],
            d["age_group"],
            (~d["female"]).astype(np.int8),
            d["phq8"],
        ),
        _CELL_SHAPE,
    )


def _cell_design() -> np.ndarray:
    """The regressors (TERMS) of every cell, in cell-code order; (N_CELLS, len(TERMS))."""
    gcat, obese, act, g, male, phq = (a.ravel() for a in np.indices(_CELL_SHAPE))
    cols = [
        gcat == 1,
        gcat == 2,
        gcat == 3,
        obese,
        act == 1,
        act == 0,
        g == 1,
        g == 2,
        g == 3,
        male,
        phq,
    ]
    return np.column_stack(cols).astype(np.float64)


class Cells:
    """Per-cell sums: count, outcome probability sums and cross-products."""

    def __init__(self, n_cells: int = N_CELLS) -> None:
        self.n_cells = n_cells
        self.n = np.zeros(n_cells)
        self.y = np.zeros(n_cells)  # sum of P(any back pain)
        self.yy = np.zeros(n_cells)  # sum of its square
        self.P = np.zeros((n_cells, 4))  # sum of P(severity = j)
        self.PP = np.zeros((n_cells, 4, 4))  # sum of P_i P_i'

    def add(self, code: np.ndarray, y: np.ndarray, P: np.ndarray) -> None:
        def total(w: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(code, weights=w, minlength=self.n_cells)

        self.n += total()
        self.y += total(y)
        self.yy += total(y * y)
        for j in range(4):
            self.P[:, j] += total(P[:, j])
            for k in range(j, 4):
                self.PP[:, j, k] += total(P[:, j] * P[:, k])
                self.PP[:, k, j] = self.PP[:, j, k]


def _census_logistic(cells: Cells, exog: np.ndarray):
    """Census logistic fit to cell sums: (beta, Monte-Carlo SE, reference SE at n=30,000)."""
    keep = cells.n > 0
    n_c, y_c, yy_c = cells.n[keep], cells.y[keep], cells.yy[keep]
    exog = exog[keep]
    fit = GLM(y_c / n_c, exog, family=families.Binomial(), var_weights=n_c).fit(
        tol=1e-13, maxiter=100
    )
    beta = fit.params
    mu = special.expit(exog @ beta)
    n = n_c.sum()
    # sandwich pieces per person, summed within cells: sum (y - mu)^2 = yy - 2 mu y + n mu^2
    resid2 = yy_c - 2 * mu * y_c + n_c * mu**2
    bread = np.linalg.inv((exog * (n_c * mu * (1 - mu))[:, None]).T @ exog / n)
    meat_mc = (exog * resid2[:, None]).T @ exog / n
    meat_ref = (exog * (y_c - yy_c + resid2)[:, None]).T @ exog / n  # 0/1 outcome instead
    se_mc = np.sqrt(np.diag(bread @ meat_mc @ bread) / n)
    se_ref = np.sqrt(np.diag(bread @ meat_ref @ bread) / REFERENCE_N)
    return beta, se_mc, se_ref


def logistic_truths(cells: Cells, values: dict, mc: dict, ref: dict) -> None:
    """Census logistic regression of any back pain, fitted to the cell sums."""
    exog = np.column_stack([np.ones(N_CELLS), _cell_design()])
    beta, se_mc, se_ref = _census_logistic(cells, exog)
    for i, term in enumerate(TERMS, start=1):
        key = f"or_back_pain_any_{term}"
        values[key] = float(math.exp(beta[i]))
        mc[key] = values[key] * float(se_mc[i])
        ref[key] = values[key] * float(se_ref[i])


def _po_terms(X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Category probabilities (n, 4) and d log pi_j / d theta per category (n, 4, k+3) of
    the cumulative-logit model P(Y <= j) = expit(cut_j - x'beta)."""
    n, k = X.shape
    beta, cuts = theta[:k], theta[k:]
    cdf = special.expit(cuts[None, :] - (X @ beta)[:, None])  # (n, 3)
    dens = cdf * (1 - cdf)
    pi = np.diff(np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], axis=1), axis=1)
    pi = np.clip(pi, 1e-300, None)
    f_up = np.concatenate([dens, np.zeros((n, 1))], axis=1)  # density at the upper cut of j
    f_lo = np.concatenate([np.zeros((n, 1)), dens], axis=1)  # density at the lower cut of j
    grad = np.zeros((n, 4, k + 3))
    grad[:, :, :k] = -((f_up - f_lo) / pi)[:, :, None] * X[:, None, :]
    for j in range(3):
        grad[:, j, k + j] += f_up[:, j] / pi[:, j]
        grad[:, j + 1, k + j] -= f_lo[:, j + 1] / pi[:, j + 1]
    return pi, grad


def _weighted_cross(w: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """sum_nj w_nj g_nj g_nj' for w (n, J) and grad (n, J, p), as one matrix product."""
    g = grad.reshape(-1, grad.shape[2])
    return (g * w.reshape(-1, 1)).T @ g


def _census_po(cells: Cells, X: np.ndarray):
    """Census proportional-odds fit to cell sums: (theta, MC SE, reference SE at n=30,000)."""
    keep = cells.n > 0
    X = X[keep]
    n_c, P_c, PP_c = cells.n[keep], cells.P[keep], cells.PP[keep]
    # the survey fitter maximises sum_ij P_ij log pi_ij with one weighted row per (cell, level)
    rows, level = np.nonzero(P_c > 0)
    fit = fit_proportional_odds(X[rows], level, P_c[rows, level], q=3)
    theta = np.concatenate([fit.beta, fit.zeta])
    pi, grad = _po_terms(X, theta)
    n = n_c.sum()
    bread = np.linalg.inv(_weighted_cross(n_c[:, None] * pi, grad) / n)
    # per-person score s_i = sum_j P_ij g_cj, so sum_i s_i s_i' = G_c' (sum_i P_i P_i') G_c
    pp_grad = np.matmul(PP_c, grad)  # (n, 4, p): sum_k PP_jk g_kq
    meat_mc = grad.reshape(-1, grad.shape[2]).T @ pp_grad.reshape(-1, grad.shape[2]) / n
    meat_ref = _weighted_cross(P_c, grad) / n  # 0/1 outcome instead
    se_mc = np.sqrt(np.diag(bread @ meat_mc @ bread) / n)
    se_ref = np.sqrt(np.diag(bread @ meat_ref @ bread) / REFERENCE_N)
    return theta, se_mc, se_ref


def ordinal_truths(cells: Cells, values: dict, mc: dict, ref: dict) -> None:
    """Census proportional-odds regression of back-pain severity, fitted to the cell sums."""
    theta, se_mc, se_ref = _census_po(cells, _cell_design())
    for i, term in enumerate(TERMS):
        key = f"po_or_back_pain_{term}"
        values[key] = float(math.exp(theta[i]))
        mc[key] = values[key] * float(se_mc[i])
        ref[key] = values[key] * float(se_ref[i])


# ------------------------------------------------------- notebook 03 model truths --
# Notebook 03 (analysis.models.anxiety_pain.anxiety_and_pain) adjusts for age in years, sex, BMI
# group, depression (PHQ-8 score; PHQ-8 >= 10 in the depression model) and activity: its
# regressors are discrete too (integer ages 18-85), so its census fits are again fits to
# cell sums, over these cells.
_AGE_MIN, _AGE_MAX = 18, 85
# GAD-7 category, BMI group, activity, age, male, PHQ-8 score
_NB_SHAPE = (4, 4, 3, _AGE_MAX - _AGE_MIN + 1, 2, 25)
N_NB_CELLS = int(np.prod(_NB_SHAPE))


def notebook_spec() -> dict:
    """The parts of ``associations.yaml`` that define notebook 03's model (and C1's cut)."""
    spec = load_spec()["anxiety_pain"]
    return {
        "bmi_groups": [[g["label"], float(g["low"]), float(g["high"])] for g in spec["bmi_groups"]],
        "depression_at_least": float(spec["depression_at_least"]),
        "depression_term": spec["covariates"]["depression"]["term"],
    }


def nb_cell_codes(d: dict[str, np.ndarray], nb: dict) -> np.ndarray:
    """Notebook 03's cell of each person of a population draw (``nb``: `notebook_spec`)."""
    bmi_group = np.full(d["bmi"].shape[0], -1, dtype=np.int64)
    for i, (_, low, high) in enumerate(nb["bmi_groups"]):
        bmi_group[(d["bmi"] >= low) & (d["bmi"] < high)] = i
    if (bmi_group < 0).any():
        raise ValueError("associations.yaml: bmi_groups do not cover every BMI of the world")
    return np.ravel_multi_index(
        (
            d["gad7_cat"],
            bmi_group,
            d["activity"],
            d["age"].astype(np.int64) - _AGE_MIN,
            (~d["female"]).astype(np.int8),
            d["phq8"],
        ),
        _NB_SHAPE,
    )


def _nb_design(
    nb: dict, exposure: str, gad7_set: int | None = None, depression: str = "phq8_score"
) -> tuple[np.ndarray, list]:
    """Regressors of notebook 03's model for every cell (no intercept), and their names.

    ``exposure``: "four" (GAD-7 category, none ref.), "collapsed" (none/mild/moderate+) or
    "step" (0-3 as a number). ``gad7_set`` fixes every cell's category (standardisation).
    ``depression``: the term nb['depression'] names for the model ("phq8_score" per point,
    or "phq8_ge10" for the depression model).
    """
    gcat, bmi, act, age, male, phq = (a.ravel() for a in np.indices(_NB_SHAPE))
    if gad7_set is not None:
        gcat = np.full_like(gcat, gad7_set)
    if exposure == "four":
        cols = {"gad7_mild": gcat == 1, "gad7_moderate": gcat == 2, "gad7_severe": gcat == 3}
    elif exposure == "collapsed":
        cols = {"gad7_mild": gcat == 1, "gad7_moderate_plus": gcat >= 2}
    else:
        cols = {"gad7_step": gcat}
    cols["age"] = age + _AGE_MIN
    cols["male"] = male
    for i, (label, _, _) in enumerate(nb["bmi_groups"][1:], start=1):  # first = reference
        cols[f"bmi_{label}"] = bmi == i
    if depression == "phq8_score":
        cols["phq8_score"] = phq
    elif depression == "phq8_ge10":
        cols["phq8_moderate_plus"] = phq >= nb["depression_at_least"]
    else:
        raise ValueError(f"associations.yaml: depression term {depression!r} has no truth model")
    cols["inactive"] = act == 0
    cols["insufficiently_active"] = act == 1
    return np.column_stack(list(cols.values())).astype(np.float64), list(cols)


def notebook_truths(cells: Cells, nb: dict, values: dict, mc: dict, ref: dict) -> None:
    """Census values of notebook 03's estimates, under the claims registry's keys."""

    def put(key: str, coef: float, se_m: float, se_r: float) -> None:
        values[key] = float(math.exp(coef))
        mc[key] = values[key] * float(se_m)
        ref[key] = values[key] * float(se_r)

    one = np.ones((N_NB_CELLS, 1))
    X, names = _nb_design(nb, "four", depression="phq8_ge10")
    beta, se_m, se_r = _census_logistic(cells, np.hstack([one, X]))
    i = names.index("phq8_moderate_plus") + 1
    put("or_back_pain_any_phq8_moderate_plus", beta[i], se_m[i], se_r[i])
    X, names = _nb_design(nb, "four", depression=nb["depression_term"])
    beta, se_m, se_r = _census_logistic(cells, np.hstack([one, X]))
    for key, term in (("or_back_pain_obesity", "bmi_obese"), ("or_back_pain_inactive", "inactive")):
        i = names.index(term) + 1
        put(key, beta[i], se_m[i], se_r[i])
    # standardised probabilities: the population average with everyone set to each level
    share = cells.n / cells.n.sum()
    for lv, label in enumerate(("none", *LEVELS)):
        Xs, _ = _nb_design(nb, "four", gad7_set=lv, depression=nb["depression_term"])
        prob = special.expit(np.hstack([one, Xs]) @ beta)
        values[f"predicted_probability_back_pain_by_gad7_category[{label}]"] = float(share @ prob)
    X, names = _nb_design(nb, "collapsed", depression=nb["depression_term"])
    beta, se_m, se_r = _census_logistic(cells, np.hstack([one, X]))
    i = names.index("gad7_moderate_plus") + 1
    put("or_back_pain_any_gad7_moderate_plus", beta[i], se_m[i], se_r[i])
    X, names = _nb_design(nb, "step", depression=nb["depression_term"])
    theta, se_m, se_r = _census_po(cells, X)
    put("trend_gad7_category_back_pain", theta[0], se_m[0], se_r[0])
