"""Design-based means, proportions, totals and ratios, overall and in domains (R ``svymean`` & co).

Every estimator here is the weighted estimator of R's ``survey`` package with its
Taylor-linearised variance: it computes the estimate and its weighted influence scores, and the
design (`SurveyDesign.psu_total_covariance`) supplies their with-replacement variance. Results
agree with R ``survey`` 4.1.1 to 1e-6 relative (``tests/test_survey_estimates.py``).

Conventions, each R's:

* Missing values are R's ``na.rm=TRUE``: a row whose analysed value is missing leaves the
  domain, the design keeps it (its PSU and stratum still count). The count is reported.
* Domains (``by=``, ``domain=``) never drop rows: weights outside the domain are zero.
  Domain estimates and their covariance are R's ``svyby(..., covmat=TRUE)``.
* Confidence intervals use t quantiles on the degrees of freedom of the whole design
  (PSUs minus strata; R ``confint(est, df=degf(design))``); proportions also get R's
  ``svyciprop(method="logit")`` interval.
* Design effects are R's ``deff=TRUE`` (against simple random sampling without replacement
  of the same size from a population of the estimated size) and ``deff="replace"`` (with
  replacement).
* Under the 'average' lonely-PSU policy R counts, for a domain, only the strata that hold
  rows of the domain; the covariance between domains (``svyby(covmat=TRUE)``) counts the strata
  of the whole design. Both are reproduced: ``se`` of a domain is R's ``svyby`` SE column,
  ``covariance`` (used for differences and ratios) is R's ``vcov(svyby(...))``. Under the other
  policies the two agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats

from analysis.survey.errors import EmptyDomainError, SurveyDesignError

__all__ = [
    "DomainEstimates",
    "Estimate",
    "EstimatesMixin",
    "PrevalenceRatio",
    "t_quantile",
]


class DesignLike(Protocol):
    """What the estimators need of a design (`analysis.survey.design.SurveyDesign` provides it).

    Declared here, not imported, so that the design can carry the estimators as methods
    (`EstimatesMixin`) without the two modules importing each other.
    """

    data: pd.DataFrame
    weights: np.ndarray
    label: str | None
    lonely_psu: str
    n_obs: int
    n_psu: int
    n_strata: int

    @property
    def df(self) -> int: ...

    @property
    def psu_of_row(self) -> np.ndarray: ...

    @property
    def stratum_of_row(self) -> np.ndarray: ...

    def strata_with_rows(self, rows: np.ndarray) -> np.ndarray: ...

    def psu_total_covariance(self, z: np.ndarray, *, strata_present=None) -> np.ndarray: ...

    def average_policy_factor(self, strata_present=None) -> float: ...


def t_quantile(level: float, df: float) -> float:
    """Two-sided t quantile for a ``level`` interval on ``df`` degrees of freedom."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    if not df > 0:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, df))


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------- results
def _terms_frame(
    estimate: np.ndarray,
    se: np.ndarray,
    df: int,
    level: float,
    statistic: str,
) -> pd.DataFrame:
    t = t_quantile(level, df)
    frame = pd.DataFrame(
        {"estimate": estimate, "se": se, "ci_low": estimate - t * se, "ci_high": estimate + t * se}
    )
    if statistic == "proportion":
        low, high = _logit_interval(estimate, se, t)
        frame["logit_ci_low"] = low
        frame["logit_ci_high"] = high
    return frame


def _logit_interval(p: np.ndarray, se: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """R's ``svyciprop(method="logit")``: a Wald interval for logit(p), mapped back.

    The SE of logit(p) is SE(p) / (p (1 - p)) (exact for the influence function of the
    intercept of R's intercept-only quasibinomial ``svyglm``). Undefined (NaN) when p is 0 or 1.
    """
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logit = np.log(p / (1 - p))
        se_logit = np.asarray(se) / (p * (1 - p))
        ok = (p > 0) & (p < 1)
        low = np.where(ok, _expit(logit - t * se_logit), np.nan)
        high = np.where(ok, _expit(logit + t * se_logit), np.nan)
    return low, high


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(float_format=lambda v: f"{v:.6g}")


@dataclass
class Estimate:
    """One or several design-based estimates (e.g. the proportion in each level) with their
    covariance, degrees of freedom and design effects.

    ``estimate``, ``se``, ``deff`` are arrays over ``terms``; ``value``/``std_error`` give
    the single number when there is one term.
    """

    statistic: str  # "mean", "proportion", "total", "ratio", "difference", "contrast"
    variable: str
    terms: tuple[str, ...]
    estimate: np.ndarray
    covariance: np.ndarray
    df: int
    n_obs: int | None = None  # rows that entered the estimate
    population: float | None = None  # estimated population size (sum of their weights)
    deff: np.ndarray | None = None  # R deff=TRUE
    deff_replace: np.ndarray | None = None  # R deff="replace"
    domain: str | None = None  # description of the domain, None for the whole population
    n_missing: int = 0  # rows of the domain left out because the variable is missing
    design: str = ""
    notes: tuple[str, ...] = ()

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def _single(self, values: np.ndarray) -> float:
        if len(self.terms) != 1:
            raise ValueError(
                f"this {self.statistic} has {len(self.terms)} terms {list(self.terms)}; "
                "use .to_frame() or .estimate"
            )
        return float(values[0])

    @property
    def value(self) -> float:
        """The estimate, when there is a single term."""
        return self._single(self.estimate)

    @property
    def std_error(self) -> float:
        """The standard error, when there is a single term."""
        return self._single(self.se)

    def ci(self, level: float = 0.95, method: str = "wald") -> pd.DataFrame:
        """Confidence interval per term: 'wald' (estimate ± t SE) or 'logit' (proportions)."""
        frame = self.to_frame(level)
        if method == "wald":
            return frame[["ci_low", "ci_high"]]
        if method == "logit":
            if self.statistic != "proportion":
                raise ValueError(f"the logit interval is for proportions, not a {self.statistic}")
            return frame[["logit_ci_low", "logit_ci_high"]].set_axis(["ci_low", "ci_high"], axis=1)
        raise ValueError(f"method must be 'wald' or 'logit', got {method!r}")

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        """One row per term: estimate, se, t-based CI on the design df, (logit CI), deffs, n."""
        frame = _terms_frame(self.estimate, self.se, self.df, level, self.statistic)
        frame.index = pd.Index(self.terms, name="term")
        frame["df"] = self.df
        if self.deff is not None:
            frame["deff"] = self.deff
            frame["deff_replace"] = self.deff_replace
        if self.n_obs is not None:
            frame["n_obs"] = self.n_obs
            frame["population"] = self.population
        return frame

    def summary(self, level: float = 0.95) -> str:
        lines = [
            f"Design-based {self.statistic} of {self.variable}"
            + (f" in domain {self.domain}" if self.domain else ""),
            f"  design: {self.design}; df {self.df}; {int(level * 100)}% CI with t quantiles",
        ]
        if self.n_obs is not None:
            lines.append(
                f"  {self.n_obs} observations (estimated population {self.population:,.1f})"
                + (f"; {self.n_missing} with missing value left out" if self.n_missing else "")
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(_table(self.to_frame(level)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


@dataclass
class PrevalenceRatio:
    """Ratio of two domain proportions (or means), with a delta-method CI on the log scale.

    ``se_log`` is the SE of log(ratio) (R ``svycontrast(by, quote(log(`a`/`b`)))`` on
    ``svyby(..., covmat=TRUE)``); the CI is exp(log ratio ± t SE) with t on the design df.
    """

    variable: str
    term: str
    by: tuple[str, ...]
    numerator: tuple
    denominator: tuple
    p_numerator: float
    p_denominator: float
    log_ratio: float
    se_log: float
    df: int
    design: str = ""
    statistic: str = "proportion"

    @property
    def ratio(self) -> float:
        return float(np.exp(self.log_ratio))

    @property
    def se(self) -> float:
        """SE of the ratio itself (delta method; R ``svycontrast(by, quote(`a`/`b`))``)."""
        return self.ratio * self.se_log

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        t = t_quantile(level, self.df)
        return (
            float(np.exp(self.log_ratio - t * self.se_log)),
            float(np.exp(self.log_ratio + t * self.se_log)),
        )

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        low, high = self.ci(level)
        return pd.DataFrame(
            {
                "numerator": [_key_label(self.by, self.numerator)],
                "denominator": [_key_label(self.by, self.denominator)],
                "p_numerator": [self.p_numerator],
                "p_denominator": [self.p_denominator],
                "ratio": [self.ratio],
                "log_ratio": [self.log_ratio],
                "se_log": [self.se_log],
                "ci_low": [low],
                "ci_high": [high],
                "df": [self.df],
            },
            index=pd.Index([self.term], name="term"),
        )

    def summary(self, level: float = 0.95) -> str:
        low, high = self.ci(level)
        name = "Prevalence ratio" if self.statistic == "proportion" else "Ratio of means"
        return "\n".join(
            [
                f"{name} of {self.term}: {_key_label(self.by, self.numerator)} vs "
                f"{_key_label(self.by, self.denominator)}",
                f"  design: {self.design}; df {self.df}; delta method on the log scale",
                f"  {self.p_numerator:.6g} / {self.p_denominator:.6g} = {self.ratio:.6g}  "
                f"({int(level * 100)}% CI {low:.6g} to {high:.6g}; SE(log) {self.se_log:.6g})",
            ]
        )

    def __str__(self) -> str:
        return self.summary()


def _key_label(by: Sequence[str], key: tuple) -> str:
    return ", ".join(f"{b}={v}" for b, v in zip(by, key, strict=True))


@dataclass
class DomainEstimates:
    """Estimates in each domain (R ``svyby``), computed with the full design.

    ``estimate``, ``variance``, ``deff`` are (domains x terms); ``covariance`` is the
    covariance of all of them, domain-major (index ``d * n_terms + j``), as R's
    ``vcov(svyby(..., covmat=TRUE))``. ``domains`` holds the value of each ``by`` variable.
    """

    statistic: str
    variable: str
    terms: tuple[str, ...]
    by: tuple[str, ...]
    domains: pd.DataFrame
    estimate: np.ndarray
    variance: np.ndarray
    covariance: np.ndarray
    df: int
    n_obs: np.ndarray
    population: np.ndarray
    deff: np.ndarray
    deff_replace: np.ndarray
    n_missing: int = 0
    n_no_domain: int = 0  # rows outside every domain (a by variable missing, or domain=)
    scope: str | None = None
    design: str = ""
    notes: tuple[str, ...] = ()
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {
            tuple(row): i for i, row in enumerate(self.domains.itertuples(index=False, name=None))
        }

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def keys(self) -> list[tuple]:
        return list(self._index)

    def _domain(self, key) -> int:
        k = tuple(key) if isinstance(key, tuple) else (key,)
        if k not in self._index:
            label = _key_label(self.by, k) if len(k) == len(self.by) else repr(k)
            raise KeyError(f"no domain {label}; domains of {list(self.by)}: {self.keys[:20]}")
        return self._index[k]

    def _term(self, term: str | None) -> int:
        if term is None:
            if len(self.terms) == 1:
                return 0
            raise ValueError(f"several terms {list(self.terms)}: choose one with term=")
        if term not in self.terms:
            raise KeyError(f"no term {term!r}; terms: {list(self.terms)}")
        return self.terms.index(term)

    def __getitem__(self, key) -> Estimate:
        """The estimate of one domain, as an `Estimate` (with R's svyby SE for that domain)."""
        d = self._domain(key)
        k = len(self.terms)
        block = self.covariance[d * k : (d + 1) * k, d * k : (d + 1) * k]
        # the domain's own variance (differs from the covariance block only under 'average')
        block = _rescale(block, self.variance[d])
        return Estimate(
            statistic=self.statistic,
            variable=self.variable,
            terms=self.terms,
            estimate=self.estimate[d].copy(),
            covariance=block,
            df=self.df,
            n_obs=int(self.n_obs[d]),
            population=float(self.population[d]),
            deff=self.deff[d].copy(),
            deff_replace=self.deff_replace[d].copy(),
            domain=_key_label(self.by, self.keys[d]),
            design=self.design,
        )

    def contrast(self, coefficients: Mapping[Hashable, float], term: str | None = None) -> Estimate:
        """A linear combination of domain estimates, e.g. ``{"a": 1, "b": -1}``
        (R ``svycontrast`` on ``svyby(..., covmat=TRUE)``)."""
        j = self._term(term)
        k = len(self.terms)
        c = np.zeros(len(self.estimate) * k)
        for key, coef in coefficients.items():
            c[self._domain(key) * k + j] = coef
        value = float(c @ self.estimate.reshape(-1))
        variance = float(c @ self.covariance @ c)
        label = " ".join(
            f"{coef:+g}*[{_key_label(self.by, self.keys[self._domain(key)])}]"
            for key, coef in coefficients.items()
        )
        return Estimate(
            statistic="contrast",
            variable=f"{self.terms[j]}",
            terms=(label,),
            estimate=np.array([value]),
            covariance=np.array([[variance]]),
            df=self.df,
            design=self.design,
        )

    def difference(self, a, b, term: str | None = None) -> Estimate:
        """Estimate in domain ``a`` minus estimate in domain ``b``, with its design-based SE."""
        est = self.contrast({a: 1.0, b: -1.0}, term)
        ka, kb = self.keys[self._domain(a)], self.keys[self._domain(b)]
        est.statistic = f"difference of {self.statistic}s"
        est.terms = (f"{_key_label(self.by, ka)} minus {_key_label(self.by, kb)}",)
        return est

    def prevalence_ratio(self, numerator, denominator, term: str | None = None) -> PrevalenceRatio:
        """Ratio of the estimates of two domains, delta method on the log scale."""
        if self.statistic not in ("proportion", "mean"):
            raise ValueError(f"a prevalence ratio compares proportions, not {self.statistic}s")
        j = self._term(term)
        k = len(self.terms)
        a, b = self._domain(numerator), self._domain(denominator)
        pa, pb = float(self.estimate[a, j]), float(self.estimate[b, j])
        if not (pa > 0 and pb > 0):
            raise ValueError(
                f"a ratio on the log scale needs positive estimates; {self.terms[j]} is {pa:.6g} "
                f"in {_key_label(self.by, self.keys[a])} and {pb:.6g} in "
                f"{_key_label(self.by, self.keys[b])}"
            )
        ia, ib = a * k + j, b * k + j
        v = self.covariance
        var_log = v[ia, ia] / pa**2 + v[ib, ib] / pb**2 - 2 * v[ia, ib] / (pa * pb)
        return PrevalenceRatio(
            variable=self.variable,
            term=self.terms[j],
            by=self.by,
            numerator=self.keys[a],
            denominator=self.keys[b],
            p_numerator=pa,
            p_denominator=pb,
            log_ratio=float(np.log(pa / pb)),
            se_log=float(np.sqrt(var_log)),
            df=self.df,
            design=self.design,
            statistic=self.statistic,
        )

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        """One row per domain and term: by values, term, estimate, se, CIs, deffs, n."""
        n_dom, k = self.estimate.shape
        frame = _terms_frame(
            self.estimate.reshape(-1), self.se.reshape(-1), self.df, level, self.statistic
        )
        keys = self.domains.loc[self.domains.index.repeat(k)].reset_index(drop=True)
        frame.insert(0, "term", list(self.terms) * n_dom)
        frame = pd.concat([keys, frame], axis=1)
        frame["df"] = self.df
        frame["deff"] = self.deff.reshape(-1)
        frame["deff_replace"] = self.deff_replace.reshape(-1)
        frame["n_obs"] = np.repeat(self.n_obs, k)
        frame["population"] = np.repeat(self.population, k)
        return frame

    def summary(self, level: float = 0.95) -> str:
        lines = [
            f"Design-based {self.statistic} of {self.variable} by {', '.join(self.by)}"
            + (f" within {self.scope}" if self.scope else ""),
            f"  design: {self.design}; df {self.df}; {int(level * 100)}% CI with t quantiles",
            f"  {len(self.estimate)} domains, {int(self.n_obs.sum())} observations"
            + (f"; {self.n_missing} with missing value left out" if self.n_missing else "")
            + (f"; {self.n_no_domain} rows in no domain" if self.n_no_domain else ""),
        ]
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(_table(self.to_frame(level).set_index(list(self.by) + ["term"])))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ------------------------------------------------------------------------------- input handling
@dataclass
class _Variable:
    """An analysed variable as an (n x k) float matrix; rows with a missing value hold 0."""

    label: str
    values: np.ndarray
    missing: np.ndarray
    terms: tuple[str, ...]
    proportion: bool = False


def _column(design: DesignLike, name, role: str = "variable") -> pd.Series:
    if not isinstance(name, Hashable) or name not in design.data.columns:
        shown = ", ".join(map(str, list(design.data.columns)[:12]))
        raise SurveyDesignError(
            f"{role} column {name!r} is not in the data of design '{design.label}' "
            f"(columns: {shown}{', ...' if design.data.shape[1] > 12 else ''})"
        )
    return design.data[name]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(s.dtype) or (
        pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)
    )


def _numeric(design: DesignLike, name, role: str = "variable") -> _Variable:
    s = _column(design, name, role)
    if not _is_numeric(s):
        raise SurveyDesignError(
            f"{role} column '{name}' is {s.dtype}, not numeric; use proportion() for the share "
            "in each level of a categorical variable"
        )
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(values)
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        raise SurveyDesignError(f"{role} column '{name}': {n_inf} infinite value(s)")
    values = np.where(missing, 0.0, values)
    return _Variable(str(name), values[:, None], missing, (str(name),))


def _levels(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return list(s.cat.categories)
    return sorted(pd.unique(s.dropna()).tolist())


def _indicators(design: DesignLike, name, s: pd.Series) -> _Variable:
    """One 0/1 column per level (R ``svymean(~factor(x))``)."""
    levels = _levels(s)
    missing = s.isna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
    else:
        codes = pd.Categorical(s, categories=levels).codes
    values = np.zeros((len(s), len(levels)))
    ok = codes >= 0
    values[np.flatnonzero(ok), codes[ok]] = 1.0
    return _Variable(str(name), values, missing, tuple(str(v) for v in levels), proportion=True)


def _proportion_variable(design: DesignLike, name, level) -> _Variable:
    s = _column(design, name)
    missing = s.isna().to_numpy()
    if level is not None:
        allowed = _levels(s)
        if level not in allowed:
            raise SurveyDesignError(
                f"column '{name}' has no value {level!r} (values: {allowed[:12]})"
            )
        values = np.where(missing, False, (s == level).to_numpy(dtype=bool, na_value=False))
        return _Variable(
            f"{name}={level}", values.astype(float)[:, None], missing, (f"{name}={level}",), True
        )
    if _is_numeric(s):
        var = _numeric(design, name)
        x = var.values[:, 0]
        bad = ~var.missing & (x != 0) & (x != 1)
        n_bad = int(bad.sum())
        if n_bad:
            examples = sorted(set(x[bad].tolist()))[:5]
            raise SurveyDesignError(
                f"proportion: column '{name}' is not binary: {n_bad} value(s) other than 0/1 "
                f"(e.g. {examples}); pass level=... for the share equal to one value, or make "
                "the column categorical for the share in each level"
            )
        var.proportion = True
        return var
    return _indicators(design, name, s)


def _total_variable(design: DesignLike, name) -> _Variable:
    s = _column(design, name)
    if _is_numeric(s):
        return _numeric(design, name)
    return _indicators(design, name, s)  # R svytotal(~factor(x)): estimated count per level


@dataclass
class _Domains:
    codes: np.ndarray  # domain of each row, -1 outside every domain
    keys: pd.DataFrame | None  # by values of each domain (None: one domain, no by)
    by: tuple[str, ...]
    scope: np.ndarray  # rows of the analysed (sub)population (domain= mask; all rows if None)
    scope_label: str | None


def _mask(design: DesignLike, domain) -> tuple[np.ndarray, str]:
    n = design.n_obs
    if isinstance(domain, str):
        s = _column(design, domain, "domain")
        label = domain
    elif isinstance(domain, tuple) and len(domain) == 2:
        column, value = domain
        s = _column(design, column, "domain")
        label = f"{column}={value}"
        if not (s == value).any():
            raise EmptyDomainError(
                f"domain '{label}' has no observations: no row of column '{column}' equals "
                f"{value!r} (values: {_levels(s)[:12]})"
            )
        s = s == value
    else:
        s = domain
        name = getattr(domain, "name", None)
        label = f"{name} (mask)" if name is not None else "mask"
        if isinstance(s, pd.Series):
            if not s.index.equals(design.data.index):
                s = s.reindex(design.data.index)
        else:
            s = pd.Series(np.asarray(s), index=design.data.index)
        if len(s) != n:
            raise SurveyDesignError(f"domain mask has {len(s)} values, the design has {n} rows")
    if not (pd.api.types.is_bool_dtype(s.dtype) or s.dropna().isin([0, 1]).all()):
        raise SurveyDesignError(
            f"domain '{label}' must be boolean (True inside the domain); got {s.dtype}"
        )
    mask = s.fillna(False).to_numpy(dtype=bool)
    if not mask.any():
        raise EmptyDomainError(f"domain '{label}' has no observations (0 of {n} rows)")
    return mask, str(label)


def _domains(design: DesignLike, by, domain) -> _Domains:
    n = design.n_obs
    if domain is not None:
        scope, scope_label = _mask(design, domain)
    else:
        scope, scope_label = np.ones(n, dtype=bool), None
    if by is None:
        return _Domains(np.where(scope, 0, -1), None, (), scope, scope_label)
    by_names = (by,) if isinstance(by, str) else tuple(by)
    if not by_names:
        raise SurveyDesignError("by= needs at least one column")
    codes = np.zeros(n, dtype=np.int64)
    any_missing = ~scope
    level_lists = []
    for name in by_names:
        s = _column(design, name, "by")
        levels = _levels(s)
        c = pd.Categorical(s, categories=levels).codes.astype(np.int64)
        any_missing = any_missing | (c < 0)
        codes = codes * max(len(levels), 1) + np.maximum(c, 0)
        level_lists.append(levels)
    present, compact = np.unique(codes[~any_missing], return_inverse=True)
    out = np.full(n, -1, dtype=np.int64)
    out[~any_missing] = compact
    if not len(present):
        raise EmptyDomainError(
            f"by {list(by_names)}: no row has a value of every by variable"
            + (f" inside domain '{scope_label}'" if scope_label else "")
        )
    # decode the mixed-radix codes of the present domains into by values
    keys = {}
    rest = present.copy()
    for name, levels in zip(reversed(by_names), reversed(level_lists), strict=True):
        m = max(len(levels), 1)
        keys[name] = [levels[i] for i in rest % m]
        rest = rest // m
    frame = pd.DataFrame({name: keys[name] for name in by_names})
    return _Domains(out, frame, by_names, scope, scope_label)


# ------------------------------------------------------------------------------------ the engine
def _group_sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Column sums of ``values`` (m x k) within each group code (n_groups x k)."""
    return np.column_stack(
        [
            np.bincount(codes, weights=values[:, j], minlength=n_groups)
            for j in range(values.shape[1])
        ]
    )


def _estimate(
    design: DesignLike,
    statistic: str,
    var: _Variable,
    domains: _Domains,
    denominator: _Variable | None = None,
):
    """Estimates, per-domain variances, their joint covariance and design effects."""
    n_dom = 1 if domains.keys is None else len(domains.keys)
    missing = var.missing if denominator is None else (var.missing | denominator.missing)
    in_domain = domains.codes >= 0
    usable = in_domain & ~missing
    rows = np.flatnonzero(usable)
    c = domains.codes[rows]
    w = design.weights[rows]
    x = var.values[rows]
    k = x.shape[1]
    pop = np.bincount(c, weights=w, minlength=n_dom)
    n_obs = np.bincount(c, minlength=n_dom)
    if (n_obs == 0).any():
        empty = np.flatnonzero(n_obs == 0)
        n_rows = np.bincount(domains.codes[in_domain], minlength=n_dom)
        where = (
            f"domain '{domains.scope_label}'"
            if domains.keys is None
            else f"{len(empty)} domain(s) of {list(domains.by)} (e.g. "
            + _key_label(domains.by, tuple(domains.keys.iloc[empty[0]]))
            + ")"
        )
        raise EmptyDomainError(
            f"{where}: no observation with a non-missing '{var.label}'"
            + (f" and '{denominator.label}'" if denominator is not None else "")
            + f" ({int(n_rows[empty[0]])} row(s), all missing)"
        )
    sums = _group_sums(c, w[:, None] * x, n_dom)
    if statistic == "ratio":
        d = denominator.values[rows, 0]
        den = np.bincount(c, weights=w * d, minlength=n_dom)
        if (den == 0).any():
            raise SurveyDesignError(
                f"ratio: the weighted total of '{denominator.label}' is 0 in "
                f"{int((den == 0).sum())} domain(s)"
            )
        theta = sums / den[:, None]
        lin = (x - theta[c] * d[:, None]) / den[c][:, None]  # R: (y - R x) / X
        scores = w[:, None] * lin
        centred = lin - _group_sums(c, w[:, None] * lin, n_dom)[c] / pop[c][:, None]
    else:
        means = sums / pop[:, None]
        centred = x - means[c]
        if statistic == "total":
            theta = sums
            scores = w[:, None] * x
        else:
            theta = means
            scores = w[:, None] * centred / pop[c][:, None]
    # PSU-by-domain totals of the scores: (n_psu x n_dom*k), domain-major columns
    n_psu = design.n_psu
    cell = design.psu_of_row[rows] * n_dom + c
    z = np.stack(
        [
            np.bincount(cell, weights=scores[:, j], minlength=n_psu * n_dom).reshape(n_psu, n_dom)
            for j in range(k)
        ],
        axis=2,
    ).reshape(n_psu, n_dom * k)
    covariance = design.psu_total_covariance(
        z, strata_present=design.strata_with_rows(domains.scope & ~missing)
    )
    variance = np.diag(covariance).reshape(n_dom, k).copy()
    if design.lonely_psu == "average":  # R counts, per domain, only its own strata
        base = design.average_policy_factor(design.strata_with_rows(domains.scope & ~missing))
        stratum = design.stratum_of_row[rows]
        has = np.zeros((n_dom, design.n_strata), dtype=bool)
        has[c, stratum] = True
        own = np.array([design.average_policy_factor(has[i]) for i in range(n_dom)])
        if base != 1.0 or (own != 1.0).any():
            variance = variance / base * own[:, None]
    # design effects (R deff=TRUE and deff="replace")
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = _group_sums(c, w[:, None] * centred**2, n_dom) / pop[:, None]
        s2 = s2 * (n_obs / (n_obs - 1))[:, None]  # Kish's n-1 divisor, as R's svyvar
        n_col, pop_col = n_obs[:, None].astype(float), pop[:, None]
        vsrs_replace = s2 / n_col
        vsrs = s2 * (pop_col - n_col) / (pop_col * n_col)
        if statistic != "mean" and statistic != "proportion":
            vsrs_replace = vsrs_replace * pop_col**2
            vsrs = vsrs * pop_col**2
        deff_replace = variance / vsrs_replace
        deff = variance / vsrs
    small = pop < n_obs
    if small.any():
        warnings.warn(
            f"{int(small.sum())} domain(s) with an estimated population smaller than the sample "
            "(are the weights scaled to the population?): deff (without replacement) is NaN",
            UserWarning,
            stacklevel=3,
        )
        deff[small] = np.nan
    n_missing = int((in_domain & missing).sum())
    return theta, variance, covariance, n_obs, pop, deff, deff_replace, n_missing


def _run(design: DesignLike, statistic: str, var: _Variable, by, domain, denominator=None):
    domains = _domains(design, by, domain)
    theta, variance, covariance, n_obs, pop, deff, deff_replace, n_missing = _estimate(
        design, statistic, var, domains, denominator
    )
    label = var.label if denominator is None else f"{var.label}/{denominator.label}"
    terms = var.terms if denominator is None else (label,)
    if domains.keys is None:
        return Estimate(
            statistic=statistic,
            variable=label,
            terms=terms,
            estimate=theta[0],
            covariance=_rescale(covariance, variance[0]),
            df=design.df,
            n_obs=int(n_obs[0]),
            population=float(pop[0]),
            deff=deff[0],
            deff_replace=deff_replace[0],
            domain=domains.scope_label,
            n_missing=n_missing,
            design=design.label,
        )
    n_no_domain = int((domains.codes < 0).sum() - (~domains.scope).sum())
    return DomainEstimates(
        statistic=statistic,
        variable=label,
        terms=terms,
        by=domains.by,
        domains=domains.keys,
        estimate=theta,
        variance=variance,
        covariance=covariance,
        df=design.df,
        n_obs=n_obs,
        population=pop,
        deff=deff,
        deff_replace=deff_replace,
        n_missing=n_missing,
        n_no_domain=n_no_domain,
        scope=domains.scope_label,
        design=design.label,
    )


def _rescale(covariance: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Covariance with its diagonal set to ``variance`` (correlations kept)."""
    diag = np.diag(covariance)
    scale = np.where(diag > 0, np.sqrt(variance / np.where(diag > 0, diag, 1.0)), 1.0)
    return covariance * np.outer(scale, scale)


# ------------------------------------------------------------------------------------ the mixin
class EstimatesMixin:
    """Estimators as methods of `SurveyDesign`: ``design.proportion("chronic_pain", by="sex")``.

    Each takes ``by=`` (a column or list of columns: one estimate per domain, a
    `DomainEstimates`) and ``domain=`` (the estimate in one subpopulation, using the full
    design): a boolean column name, a ``(column, value)`` pair, or a boolean mask over the
    rows. Without ``by`` the result is an `Estimate`.
    """

    def mean(self, variable: str, *, by=None, domain=None) -> Estimate | DomainEstimates:
        """Weighted mean of a numeric (or boolean) column (R ``svymean``)."""
        return _run(self, "mean", _numeric(self, variable), by, domain)

    def proportion(
        self, variable: str, *, level=None, by=None, domain=None
    ) -> Estimate | DomainEstimates:
        """Weighted proportion (R ``svymean`` of an indicator or factor).

        A boolean or 0/1 column gives the share of True/1; ``level=v`` the share equal to
        ``v``; a categorical/text column the share in each level. Any other numeric column
        is an error (it is not a proportion).
        """
        return _run(self, "proportion", _proportion_variable(self, variable, level), by, domain)

    def total(self, variable: str, *, by=None, domain=None) -> Estimate | DomainEstimates:
        """Weighted total (R ``svytotal``); for a categorical column, the count in each level."""
        return _run(self, "total", _total_variable(self, variable), by, domain)

    def ratio(
        self, numerator: str, denominator: str, *, by=None, domain=None
    ) -> Estimate | DomainEstimates:
        """Ratio of two weighted totals (R ``svyratio``); rows missing either are left out."""
        return _run(
            self,
            "ratio",
            _numeric(self, numerator, "numerator"),
            by,
            domain,
            denominator=_numeric(self, denominator, "denominator"),
        )

    def prevalence_ratio(
        self, variable: str, *, by: str, numerator, denominator, level=None, domain=None
    ) -> PrevalenceRatio:
        """Proportion of ``variable`` in domain ``numerator`` of ``by`` over that in
        ``denominator`` (delta method on the log scale)."""
        est = self.proportion(variable, level=level, by=by, domain=domain)
        return est.prevalence_ratio(numerator, denominator)
