"""Design-based generalised linear models, numerically equal to R ``survey::svyglm``.

`svyglm` fits a weighted GLM (the sampling weights are the prior weights) and replaces the
model-based covariance by the Taylor-linearisation sandwich of R's ``svy.varcoef``::

    V = A⁻¹ · Var_design(Σ U_i) · A⁻¹

with ``U_i = w_i x_i (y_i − μ_i) μ'(η_i) / v(μ_i)`` the weighted score of row i, ``A = X'WX``
the weighted information (IRLS working weights) and ``Var_design`` the with-replacement
variance of a total from `SurveyDesign.total_covariance`. Tests and confidence intervals use
R's residual degrees of freedom, ``degf(design) + 1 − (number of coefficients)``, with t
quantiles (R's ``summary.svyglm`` and ``confint.svyglm``, method "Wald").

Subsets follow R exactly. A ``domain=`` model is R's ``svyglm(..., design = subset(des, ...))``
and rows with a missing model variable are dropped as R's ``na.action`` drops them: the
rows leave the fit, but every stratum and PSU of the design stays in the variance (a PSU with
no fitted rows contributes a zero total). Only two quantities depend on which rows are left,
as in R: the design df (PSUs minus strata *among the fitted rows*, R's ``degf`` of the
subset design), and, under the 'average' lonely-PSU policy, the number of strata averaged
over.

The coefficients come from iteratively reweighted least squares (Fisher scoring) in numpy,
for the three families R users fit with svyglm here (gaussian/identity, binomial/logit,
Poisson/log). statsmodels' ``GLM`` gives the same estimates and model-based covariance (checked
in the tests) but is ~10× slower on a million rows, since it solves each weighted
least-squares step by a pseudo-inverse of the whole design matrix; here each step solves the
p × p normal equations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
from formulaic import Formula, model_matrix
from formulaic.errors import DataMismatchWarning
from scipy import stats
from scipy.special import expit
from statsmodels.genmod import families

from analysis.survey.design import SurveyDesign, SurveyDesignError
from analysis.survey.estimates import t_quantile

FAMILIES = ("gaussian", "quasibinomial", "binomial", "quasipoisson", "poisson")


class SurveyModelError(ValueError):
    """The model cannot be fitted as specified (bad formula, outcome, domain or collinearity)."""


# ---------------------------------------------------------------------------- model frames
@dataclass
class ModelFrame:
    """Design matrix of the fitted rows, and where those rows sit in the design."""

    y: np.ndarray | None
    X: np.ndarray
    columns: list[str]
    term_slices: dict[str, slice]
    rows: np.ndarray  # positions of the fitted rows in design.data
    n_domain: int  # rows in the domain before dropping missing values
    spec: object  # formulaic ModelSpec of the right-hand side (for predictions)
    outcome: str


def domain_mask(design: SurveyDesign, domain) -> np.ndarray:
    """Boolean mask of the domain: None (everyone), a column name or a boolean array.

    Missing values count as outside the domain, as in R's ``subset()``.
    """
    n = design.n_obs
    if domain is None:
        return np.ones(n, dtype=bool)
    if isinstance(domain, str):
        if domain not in design.data.columns:
            raise SurveyModelError(f"domain column '{domain}' is not in the data of {design.label}")
        values = design.data[domain]
        name = f"column '{domain}'"
    else:
        values = domain
        name = "domain mask"
    if isinstance(values, pd.Series):
        if isinstance(domain, pd.Series) and not values.index.equals(design.data.index):
            raise SurveyModelError("domain mask: its index does not match the design's data")
        if not pd.api.types.is_bool_dtype(values.dtype):
            raise SurveyModelError(f"{name}: expected booleans, got dtype {values.dtype}")
        values = values.astype("boolean").fillna(False).to_numpy(dtype=bool)
    else:
        values = np.asarray(values)
        if values.dtype != bool:
            raise SurveyModelError(f"{name}: expected booleans, got dtype {values.dtype}")
    if values.shape != (n,):
        raise SurveyModelError(f"{name}: has {values.shape[0]} values, the design has {n} rows")
    if not values.any():
        raise SurveyModelError(f"{name}: the domain has no observations")
    return values


def build_model_frame(
    formula: str, design: SurveyDesign, domain=None, *, outcome_required: bool = True
) -> ModelFrame:
    """Evaluate ``formula`` on the domain rows of the design, dropping rows with missing values.

    As in R, the formula is evaluated on the domain only (so a factor level absent from the
    domain is absent from the model), then incomplete rows are dropped.
    """
    mask = domain_mask(design, domain)
    data = design.data
    if not data.index.equals(pd.RangeIndex(len(data))):  # row labels = positions below
        data = data.reset_index(drop=True)
    sub = data if mask.all() else data.loc[mask]
    try:
        sub = _strings_as_categories(formula, sub)
        mm = model_matrix(formula, sub, na_action="drop")
    except Exception as exc:  # formulaic raises several exception types; name the formula
        raise SurveyModelError(
            f"formula '{formula}' cannot be evaluated on {design.label}: {exc}"
        ) from None
    if hasattr(mm, "rhs"):
        lhs, rhs = mm.lhs, mm.rhs
    elif outcome_required:
        raise SurveyModelError(f"formula '{formula}' has no outcome (left-hand side)")
    else:
        lhs, rhs = None, mm
    if len(rhs) == 0:
        raise SurveyModelError(
            f"formula '{formula}': no complete rows in the domain of {design.label}"
        )
    y = None
    outcome = formula.split("~")[0].strip()
    if lhs is not None:
        if lhs.shape[1] != 1:
            raise SurveyModelError(
                f"formula '{formula}': the outcome must be one numeric column (0/1 for a "
                f"binary outcome), got columns {list(lhs.columns)}"
            )
        y = lhs.iloc[:, 0].to_numpy(dtype="float64")
    spec = rhs.model_spec
    term_slices = {str(t): s for t, s in spec.term_slices.items()}
    return ModelFrame(
        y=y,
        X=np.asfortranarray(rhs.to_numpy(dtype="float64")),
        columns=[str(c) for c in rhs.columns],
        term_slices=term_slices,
        rows=rhs.index.to_numpy(dtype=np.int64),
        n_domain=int(mask.sum()),
        spec=spec,
        outcome=outcome,
    )


def _strings_as_categories(formula: str, data: pd.DataFrame) -> pd.DataFrame:
    """Text columns (the schema's "string" dtype) used in the formula become categorical.

    formulaic treats object and categorical columns as factors but passes pandas' "string"
    dtype through as text; as a category (levels sorted, as R's ``factor``) it is a factor.
    """
    used = [v for v in Formula(formula).required_variables if v in data.columns]
    text = {
        v: data[v].astype("category")
        for v in used
        if pd.api.types.is_string_dtype(data[v].dtype)
        and not isinstance(data[v].dtype, pd.CategoricalDtype)
    }
    return data.assign(**text) if text else data


def profile_matrix(spec, formula: str, newdata: pd.DataFrame) -> pd.DataFrame:
    """Design matrix of covariate profiles, encoded as in the fit (same levels, same columns)."""
    try:
        with warnings.catch_warnings():  # an unseen level would silently become NaN
            warnings.simplefilter("error", DataMismatchWarning)
            data = _strings_as_categories(formula, newdata)
            return spec.get_model_matrix(data, na_action="raise")
    except Exception as exc:
        raise SurveyModelError(
            f"covariate profiles cannot be encoded for '{formula}': {exc}"
        ) from None


def check_full_rank(X: np.ndarray, columns: list[str], formula: str) -> None:
    """Raise a clear error naming the aliased columns (R would report NA coefficients).

    Works on the p × p cross-product, scaled to unit diagonal (cheap for large n).
    """
    gram = np.einsum("ij,ik->jk", X, X)
    norms = np.sqrt(np.diag(gram))
    if X.shape[0] < X.shape[1] or np.any(norms == 0):
        bad = [c for c, v in zip(columns, norms == 0, strict=True) if v] or columns
    else:
        _, r, piv = scipy.linalg.qr(gram / np.outer(norms, norms), pivoting=True)
        d = np.abs(np.diag(r))
        bad = [columns[i] for i in piv[d < 1e-12 * d[0]]]
    if bad:
        raise SurveyModelError(
            f"formula '{formula}': the design matrix is rank deficient "
            f"(aliased column(s): {bad}); drop or merge them "
            "(e.g. a factor level with no observations in the domain)"
        )


# ---------------------------------------------------------------------------- variance
@dataclass(frozen=True)
class FittedRowsDesign:
    """What R's subset design says about the fitted rows: its df and 'average' rescaling."""

    df: int
    n_psu: int
    n_strata: int
    average_factor: float  # multiplies total_covariance under lonely_psu='average'


def fitted_rows_design(design: SurveyDesign, rows: np.ndarray) -> FittedRowsDesign:
    """R's ``degf`` of ``design[rows, ]`` and the stratum count R averages lonely strata over."""
    psu_present = np.bincount(design._psu_of_row[rows], minlength=design.n_psu) > 0
    strata_present = np.bincount(
        design._stratum_of_psu[psu_present], minlength=design.n_strata
    ).astype(bool)
    n_psu = int(psu_present.sum())
    n_strata = int(strata_present.sum())
    factor = 1.0
    n_lonely = len(design._lonely_strata)
    if design.lonely_psu == "average" and n_lonely:
        lonely_present = int(strata_present[design._lonely_strata].sum())
        n_ok = n_strata - lonely_present
        if n_ok == 0:
            raise SurveyDesignError(
                f"{design.label}: every stratum left in the model has a single PSU; "
                "lonely_psu='average' has nothing to average"
            )
        factor = (n_strata / n_ok) / (design.n_strata / (design.n_strata - n_lonely))
    return FittedRowsDesign(n_psu - n_strata, n_psu, n_strata, factor)


def sandwich_covariance(
    design: SurveyDesign,
    rows: np.ndarray,
    scores: np.ndarray,
    bread: np.ndarray,
    sub: FittedRowsDesign,
) -> np.ndarray:
    """``bread · Var_design(Σ scores) · bread``: the design covariance of an M-estimator.

    ``scores`` are the weighted estimating-function values of the fitted rows and ``bread``
    the inverse information (symmetric). R computes ``svyrecvar(scores %*% bread)``; the
    design variance is a quadratic form in the scores, so the bread can be applied to the
    p × p result instead of to every row (the same number, without an n × p product).
    """
    if len(rows) == design.n_obs:  # rows are sorted positions: all of them, in order
        full = scores
    else:
        full = np.zeros((design.n_obs, scores.shape[1]))
        full[rows] = scores
    meat = design.total_covariance(full) * sub.average_factor
    v = bread @ meat @ bread
    return (v + v.T) / 2


# ---------------------------------------------------------------------------- IRLS
@dataclass(frozen=True)
class GLMFamily:
    """Mean-variance family with its canonical link, as R's ``family`` objects define them.

    Only canonical links are offered (v(μ) = μ'(η)), which `irls` relies on.
    """

    name: str
    link: str

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        if self.link == "logit":
            return np.log(mu / (1 - mu))
        return np.log(mu) if self.link == "log" else mu

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        if self.link == "logit":
            return expit(eta)
        return np.exp(eta) if self.link == "log" else eta

    def mu_eta(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """dμ/dη."""
        if self.link == "logit":
            return mu * (1 - mu)
        return mu if self.link == "log" else np.ones_like(mu)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        if self.link == "logit":
            return mu * (1 - mu)
        return mu if self.link == "log" else np.ones_like(mu)

    def start(self, y: np.ndarray) -> np.ndarray:
        """R's ``family$initialize`` starting means (unit prior weights)."""
        if self.link == "logit":
            return (y + 0.5) / 2
        return y + 0.1 if self.link == "log" else y.copy()

    def valid(self, mu: np.ndarray) -> bool:
        """The means are finite and in range (min/max propagate NaN, which fails the test)."""
        lo, hi = mu.min(), mu.max()
        if self.link == "logit":
            return bool(lo > 0 and hi < 1)
        if self.link == "log":
            return bool(lo > 0 and np.isfinite(hi))
        return bool(np.isfinite(lo) and np.isfinite(hi))

    @property
    def statsmodels_family(self):
        """The same family in statsmodels (used to cross-check the fit in the tests)."""
        if self.link == "logit":
            return families.Binomial()
        return families.Poisson() if self.link == "log" else families.Gaussian()


def glm_family(name: str) -> GLMFamily:
    if name not in FAMILIES:
        raise SurveyModelError(f"family must be one of {FAMILIES}, got {name!r}")
    if name == "gaussian":
        return GLMFamily(name, "identity")
    return GLMFamily(name, "logit" if name.endswith("binomial") else "log")


def _check_outcome(y: np.ndarray, family: str, outcome: str) -> None:
    if family in ("binomial", "quasibinomial"):
        bad = int(((y < 0) | (y > 1)).sum())
        if bad:
            raise SurveyModelError(
                f"outcome '{outcome}': {bad} value(s) outside [0, 1]; family '{family}' needs "
                "a 0/1 (or proportion) outcome"
            )
    elif family in ("poisson", "quasipoisson"):
        bad = int((y < 0).sum())
        if bad:
            raise SurveyModelError(
                f"outcome '{outcome}': {bad} negative value(s); family '{family}' needs y >= 0"
            )


@dataclass
class IRLSFit:
    params: np.ndarray
    mu: np.ndarray
    working_weights: np.ndarray  # prior · μ'(η)² / v(μ) = prior · μ'(η) (canonical links)
    score_factor: np.ndarray  # prior · (y − μ) μ'(η) / v(μ) = prior · (y − μ): score = X · this
    iterations: int
    converged: bool


def weighted_gram(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X' diag(w) X with single-threaded einsum (see `irls`), one triangle only."""
    p = X.shape[1]
    gram = np.empty((p, p))
    for j in range(p):
        row = np.einsum("i,ij->j", X[:, j] * w, X[:, j:])
        gram[j, j:] = row
        gram[j:, j] = row
    return gram


def irls(
    X: np.ndarray,
    y: np.ndarray,
    prior_weights: np.ndarray,
    family: GLMFamily,
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> IRLSFit:
    """Fisher scoring (= Newton, canonical links) for a weighted GLM, to full convergence.

    Each step is β ← β + (X'WX)⁻¹ X'u with working weights W = prior · μ'(η) and score
    factors u = prior · (y − μ) (the canonical-link forms of prior·μ'²/v and prior·(y−μ)μ'/v).
    It starts from R's ``family$initialize`` means; a step that leaves the valid range of the
    mean is halved, as R's ``glm.fit`` does. Newton converges quadratically (relative steps
    run e.g. 2e-1, 4e-3, 4e-6, 2e-12, each ≈ c·previous²), so it stops when the largest
    relative step δ is below ``tol``, or when the next one, predicted as c·δ² with c estimated
    from the last two steps, is below ``tol``/100: the coefficients are then within ~1e-10
    (relative) of the maximum.

    The n-row products use numpy's single-threaded ``einsum`` loops rather than BLAS: as fast
    here (the work is memory-bound) and unaffected by other jobs competing for the cores.
    """
    mu = family.start(y)
    eta = family.linkfun(mu)
    # first step: weighted least squares on R's working response at the starting means
    dmu = family.mu_eta(eta, mu)
    w = prior_weights * dmu
    beta = np.linalg.solve(weighted_gram(X, w), np.einsum("ij,i->j", X, w * (eta + (y - mu) / dmu)))
    eta = np.einsum("ij,j->i", X, beta)
    mu = family.linkinv(eta)
    converged = False
    it, previous = 1, None
    while not converged and it < max_iter:
        it += 1
        w = prior_weights * family.mu_eta(eta, mu)
        score = np.einsum("ij,i->j", X, prior_weights * (y - mu))
        step = np.linalg.solve(weighted_gram(X, w), score)
        for _ in range(30):  # step halving if the mean leaves its valid range
            eta_new = np.einsum("ij,j->i", X, beta + step)
            mu_new = family.linkinv(eta_new)
            if family.valid(mu_new):
                break
            step = step / 2
        beta, eta, mu = beta + step, eta_new, mu_new
        size = float(np.max(np.abs(step) / (np.abs(beta) + 1e-3)))
        predicted_next = size**3 / previous**2 if previous and size < 1e-3 else np.inf
        converged = size < tol or predicted_next < tol * 1e-2
        previous = size
    w = prior_weights * family.mu_eta(eta, mu)
    return IRLSFit(beta, mu, w, prior_weights * (y - mu), it, converged)


# ---------------------------------------------------------------------------- results
@dataclass
class WaldTestResult:
    """A design-based Wald F test of several coefficients (R ``regTermTest``, method "Wald")."""

    label: str
    chisq: float
    df: int  # numerator df: number of constraints
    ddf: float  # denominator df: the model's residual df
    columns: list[str]

    @property
    def F(self) -> float:
        return self.chisq / self.df

    @property
    def p_value(self) -> float:
        if not np.isfinite(self.ddf):
            return float(stats.chi2.sf(self.chisq, self.df))
        return float(stats.f.sf(self.F, self.df, self.ddf)) if self.ddf > 0 else np.nan

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "test": self.label,
                    "F": self.F,
                    "df": self.df,
                    "ddf": self.ddf,
                    "p_value": self.p_value,
                    "chisq": self.chisq,
                }
            ]
        ).set_index("test")

    def summary(self) -> str:
        return (
            f"Design-based Wald test (R regTermTest, method 'Wald') for {self.label}\n"
            f"  coefficients: {', '.join(self.columns)}\n"
            f"  F = {self.F:.4f} on {self.df} and {self.ddf:g} df: p = {self.p_value:.4g}"
        )

    def __str__(self) -> str:
        return self.summary()


@dataclass
class ContrastResult:
    """A linear combination of coefficients with its design-based SE (R ``svycontrast``)."""

    label: str
    estimate: float
    std_error: float
    df_resid: float
    weights: dict[str, float]
    exp_meaningful: bool = False

    @property
    def t(self) -> float:
        return self.estimate / self.std_error

    @property
    def p_value(self) -> float:
        return float(2 * stats.t.sf(abs(self.t), self.df_resid)) if self.df_resid > 0 else np.nan

    def wald_test(self) -> WaldTestResult:
        """The same contrast as a 1-df F test (F = t²)."""
        return WaldTestResult(self.label, self.t**2, 1, self.df_resid, list(self.weights))

    def conf_int(self, level: float = 0.95) -> tuple[float, float]:
        q = t_quantile(level, self.df_resid)
        return self.estimate - q * self.std_error, self.estimate + q * self.std_error

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        lo, hi = self.conf_int(level)
        row = {
            "estimate": self.estimate,
            "std_error": self.std_error,
            "t": self.t,
            "p_value": self.p_value,
            "ci_low": lo,
            "ci_high": hi,
        }
        if self.exp_meaningful:
            row |= {"exp_estimate": np.exp(self.estimate), "exp_ci_low": np.exp(lo)}
            row |= {"exp_ci_high": np.exp(hi)}
        return pd.DataFrame([row], index=pd.Index([self.label], name="contrast"))

    def summary(self) -> str:
        return f"Contrast {self.label}\n" + self.to_frame().to_string()

    def __str__(self) -> str:
        return self.summary()


@dataclass
class DesignBasedFit:
    """Coefficients with a design-based covariance: what GLM and ordinal results share."""

    formula: str
    params: pd.Series
    cov_params: pd.DataFrame
    df_resid: float
    design: SurveyDesign = field(repr=False)
    fitted_design: FittedRowsDesign
    n_fitted: int
    n_domain: int
    term_slices: dict[str, slice]
    domain_label: str | None
    exp_label: str | None  # "odds ratio", "ratio", ... when exp(coef) is meaningful

    # --------------------------------------------------------------- coefficient table
    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.cov_params.to_numpy())), index=self.params.index)

    @property
    def tvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        if self.df_resid <= 0:
            return pd.Series(np.nan, index=self.params.index)
        return pd.Series(
            2 * stats.t.sf(np.abs(self.tvalues.to_numpy()), self.df_resid),
            index=self.params.index,
        )

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals with t quantiles on the residual df (R ``confint.svyglm``)."""
        q = t_quantile(level, self.df_resid)
        se = self.bse
        return pd.DataFrame({"ci_low": self.params - q * se, "ci_high": self.params + q * se})

    def _exp_rows(self) -> pd.Index:
        return self.params.index

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        """One row per coefficient: estimate, SE, t, p, CI and, where meaningful, exp(·)."""
        ci = self.conf_int(level)
        out = pd.DataFrame(
            {
                "estimate": self.params,
                "std_error": self.bse,
                "t": self.tvalues,
                "p_value": self.pvalues,
                "ci_low": ci["ci_low"],
                "ci_high": ci["ci_high"],
            }
        )
        if self.exp_label:
            keep = out.index.isin(self._exp_rows())
            for col, src in (
                ("exp_estimate", "estimate"),
                ("exp_ci_low", "ci_low"),
                ("exp_ci_high", "ci_high"),
            ):
                out[col] = np.where(keep, np.exp(out[src]), np.nan)
        out.index.name = "term"
        return out

    # --------------------------------------------------------------- tests and contrasts
    def _columns_for_terms(self, terms) -> list[str]:
        if isinstance(terms, str):
            terms = [terms]
        names = list(self.params.index)
        cols: list[str] = []
        for term in terms:
            if term in self.term_slices:
                cols += names[self.term_slices[term]]
            elif term in names:
                cols.append(term)
            else:
                raise SurveyModelError(
                    f"term '{term}' is not in the model {self.formula!r}; terms are "
                    f"{list(self.term_slices)}, coefficients {names}"
                )
        return list(dict.fromkeys(cols))

    def _contrast_matrix(self, contrast) -> tuple[np.ndarray, list[str]]:
        names = list(self.params.index)
        if isinstance(contrast, dict):
            contrast = [contrast]
        if isinstance(contrast, list | tuple) and contrast and isinstance(contrast[0], dict):
            L = np.zeros((len(contrast), len(names)))
            for i, row in enumerate(contrast):
                for name, wgt in row.items():
                    if name not in names:
                        raise SurveyModelError(
                            f"contrast: '{name}' is not a coefficient; coefficients are {names}"
                        )
                    L[i, names.index(name)] = wgt
        else:
            L = np.atleast_2d(np.asarray(contrast, dtype="float64"))
            if L.shape[1] != len(names):
                raise SurveyModelError(
                    f"contrast matrix has {L.shape[1]} columns, the model {len(names)} coefficients"
                )
        used = [n for n, c in zip(names, np.any(L != 0, axis=0), strict=True) if c]
        return L, used

    def wald_test(self, terms=None, *, contrast=None, null=None) -> WaldTestResult:
        """Joint Wald F test, as R's ``regTermTest(model, ~terms)`` (method "Wald").

        ``terms``: one formula term (e.g. ``"C(anxiety)"``: all its coefficients) or several,
        or coefficient names. ``contrast``: instead, a matrix (k × p) or a list of
        {coefficient: weight} dicts for k linear constraints ``L β = null``.
        F = β'V⁻¹β / k on (k, residual df) degrees of freedom.
        """
        b = self.params.to_numpy()
        V = self.cov_params.to_numpy()
        if (terms is None) == (contrast is None):
            raise SurveyModelError("wald_test: give either terms or contrast")
        if terms is not None:
            cols = self._columns_for_terms(terms)
            idx = [list(self.params.index).index(c) for c in cols]
            L = np.zeros((len(idx), len(b)))
            L[np.arange(len(idx)), idx] = 1.0
            label = terms if isinstance(terms, str) else " + ".join(terms)
        else:
            L, cols = self._contrast_matrix(contrast)
            label = "contrast"
        diff = L @ b - (0.0 if null is None else np.asarray(null, dtype="float64"))
        chisq = float(diff @ np.linalg.solve(L @ V @ L.T, diff))
        return WaldTestResult(label, chisq, L.shape[0], self.df_resid, cols)

    def contrast(
        self, weights: dict[str, float], label: str = "contrast", *, exponentiate: bool = False
    ) -> ContrastResult:
        """A linear combination Σ c_j β_j with its design-based SE (R ``svycontrast``).

        ``exponentiate``: also report exp(·), meaningful for a difference of two log odds (or
        log ratios) and for `linear_trend`, not for arbitrary combinations.
        """
        L, _ = self._contrast_matrix(weights)
        est = float(L[0] @ self.params.to_numpy())
        se = float(np.sqrt(L[0] @ self.cov_params.to_numpy() @ L[0]))
        exp_ok = exponentiate and bool(self.exp_label)
        return ContrastResult(label, est, se, self.df_resid, dict(weights), exp_meaningful=exp_ok)

    def linear_trend(self, term: str, scores=None, label: str | None = None) -> ContrastResult:
        """1-df test for a linear trend across the levels of a categorical term.

        The estimate is the least-squares slope of the level effects (reference level = 0)
        on the level ``scores`` (default 0, 1, …, K−1, one per level, reference first):
        weights (s_k − s̄)/Σ(s_j − s̄)². If the effects are linear in the score it is the
        effect of one score step (log odds ratio per level for a logistic model), so exp(·)
        is reported where the link makes it a ratio. Its t² is the Wald F of the trend.
        """
        if term not in self.term_slices:
            raise SurveyModelError(
                f"linear_trend: '{term}' is not a term of {self.formula!r}; terms are "
                f"{list(self.term_slices)}"
            )
        cols = list(self.params.index[self.term_slices[term]])
        k = len(cols) + 1
        s = np.arange(k, dtype="float64") if scores is None else np.asarray(scores, float)
        if s.shape != (k,):
            raise SurveyModelError(
                f"linear_trend: '{term}' has {k} levels (reference included), got "
                f"{s.shape[0]} scores"
            )
        c = (s - s.mean()) / np.sum((s - s.mean()) ** 2)
        return self.contrast(
            dict(zip(cols, c[1:], strict=True)),
            label or f"linear trend across {term}",
            exponentiate=True,
        )

    # --------------------------------------------------------------- text
    def _header(self, level: float) -> list[str]:
        raise NotImplementedError

    def summary(self, level: float = 0.95) -> str:
        """The model, the design and the coefficient table, as text."""
        rule = "=" * 78
        return "\n".join([*self._header(level), rule, self._table_text(level), rule])

    def __str__(self) -> str:
        return self.summary()

    def _design_lines(self) -> list[str]:
        fd = self.fitted_design
        lines = [f"Design ({self.design.label}): {self.design.info}"]
        where = f"domain {self.domain_label}: " if self.domain_label else ""
        dropped = self.n_domain - self.n_fitted
        lines.append(
            f"Fitted rows: {where}{self.n_fitted} of {self.design.n_obs}"
            + (f" ({dropped} dropped for missing values)" if dropped else "")
            + f"; {fd.n_psu} PSUs in {fd.n_strata} strata, design df {fd.df}, "
            f"residual df {self.df_resid:g}"
        )
        return lines

    def _table_text(self, level: float = 0.95) -> str:
        lo, hi = f"[{(1 - level) / 2:g}", f"{(1 + level) / 2:g}]"
        tab = self.to_frame(level).rename(
            columns={
                "estimate": "coef",
                "std_error": "std err",
                "p_value": "P>|t|",
                "ci_low": lo,
                "ci_high": hi,
                "exp_estimate": self.exp_label or "exp(coef)",
                "exp_ci_low": lo,
                "exp_ci_high": hi,
            }
        )
        tab.index.name = None
        return tab.to_string(float_format=lambda v: f"{v:.4g}", na_rep="")


@dataclass
class SurveyGLMResult(DesignBasedFit):
    """A fitted design-based GLM. ``summary()`` prints it; ``to_frame()`` gives the table."""

    family: str = "gaussian"
    link: str = "identity"
    iterations: int = 0
    converged: bool = True
    model_based_cov: pd.DataFrame | None = None  # A⁻¹ (R's naive.cov; for design effects)
    spec: object = field(default=None, repr=False)

    def _header(self, level: float) -> list[str]:
        return [
            "Design-based GLM (R survey::svyglm equivalent)",
            f"Formula: {self.formula}    family: {self.family}, link: {self.link}",
            *self._design_lines(),
            "Standard errors: Taylor linearisation (sandwich); t tests and "
            f"{100 * level:g}% CIs on the residual df.",
        ]

    def predict(
        self, newdata: pd.DataFrame, *, type: str = "response", level: float = 0.95
    ) -> pd.DataFrame:
        """Predictions at covariate profiles with delta-method SEs (R ``predict.svyglm``).

        ``type='response'``: the mean (a probability for a binary outcome) and its SE
        μ'(η)·SE(η); ``'link'``: the linear predictor. The interval is computed on the link
        scale with the residual-df t quantile and transformed, so it stays in range.
        """
        if type not in ("response", "link"):
            raise SurveyModelError(f"predict: type must be 'response' or 'link', got {type!r}")
        X = profile_matrix(self.spec, self.formula, newdata).to_numpy(dtype="float64")
        fam = glm_family(self.family)
        b = self.params.to_numpy()
        V = self.cov_params.to_numpy()
        eta = X @ b
        se_eta = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
        q = t_quantile(level, self.df_resid)
        lo, hi = eta - q * se_eta, eta + q * se_eta
        if type == "link":
            est, se = eta, se_eta
        else:
            est = fam.linkinv(eta)
            se = np.abs(fam.mu_eta(eta, est)) * se_eta
            lo, hi = fam.linkinv(lo), fam.linkinv(hi)
        return pd.DataFrame(
            {"estimate": est, "std_error": se, "ci_low": lo, "ci_high": hi},
            index=newdata.index,
        )


_EXP_LABELS = {"logit": "odds ratio", "log": "ratio"}


def svyglm(
    formula: str,
    design: SurveyDesign,
    *,
    family: str = "gaussian",
    domain=None,
    domain_label: str | None = None,
) -> SurveyGLMResult:
    """Fit a design-based GLM, as R's ``svyglm(formula, design, family=...)``.

    Parameters
    ----------
    formula : Wilkinson formula (formulaic syntax), e.g.
        ``"pain_any ~ C(anxiety) + age + female + bmi"``; ``C(x)`` makes ``x`` categorical
        (first level is the reference, as R's ``factor``).
    design : the `SurveyDesign`.
    family : 'gaussian' (identity link, R's default), 'quasibinomial' or 'binomial' (logit;
        odds ratios), 'quasipoisson' or 'poisson' (log; prevalence ratios for a 0/1 outcome).
        The quasi- and plain families give identical estimates and design-based SEs.
    domain : the subpopulation (a boolean mask or the name of a boolean column): R's
        ``design = subset(des, ...)``; the full design structure is kept for the variance.
    """
    fam = glm_family(family)
    frame = build_model_frame(formula, design, domain)
    _check_outcome(frame.y, family, frame.outcome)
    check_full_rank(frame.X, frame.columns, formula)
    w = design.weights[frame.rows]
    w = w / w.mean()  # R rescales the weights to mean 1; estimates and SEs do not depend on it
    fit = irls(frame.X, frame.y, w, fam)
    if not fit.converged:
        warnings.warn(
            f"svyglm '{formula}': IRLS did not converge in {fit.iterations} iterations",
            RuntimeWarning,
            stacklevel=2,
        )
    a_inv = np.linalg.inv(weighted_gram(frame.X, fit.working_weights))
    a_inv = (a_inv + a_inv.T) / 2
    scores = frame.X * fit.score_factor[:, None]
    sub = fitted_rows_design(design, frame.rows)
    cov = sandwich_covariance(design, frame.rows, scores, a_inv, sub)
    names = frame.columns
    link = fam.link
    return SurveyGLMResult(
        formula=formula,
        params=pd.Series(fit.params, index=names),
        cov_params=pd.DataFrame(cov, index=names, columns=names),
        df_resid=sub.df + 1 - len(names),
        design=design,
        fitted_design=sub,
        n_fitted=len(frame.rows),
        n_domain=frame.n_domain,
        term_slices=frame.term_slices,
        domain_label=describe_domain(domain, domain_label),
        exp_label=_EXP_LABELS.get(link),
        family=family,
        link=link,
        iterations=fit.iterations,
        converged=fit.converged,
        model_based_cov=pd.DataFrame(a_inv, index=names, columns=names),
        spec=frame.spec,
    )


def describe_domain(domain, label: str | None) -> str | None:
    """How a result names its domain: the given label, the column name quoted, or (mask)."""
    if label is not None:
        return label
    if domain is None:
        return None
    return f"'{domain}'" if isinstance(domain, str) else "(mask)"
