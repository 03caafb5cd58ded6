"""Direct standardisation (e.g. age adjustment) of a design-based mean or proportion.

R's ``svystandardize(design, by=, over=, population=, excluding.missing=~y)`` followed by
``svymean(~y, .)`` or ``svyby(~y, ~over, ., svymean)``: the respondents with a known value of
the variable are post-stratified to cells ``by x over`` whose totals are the standard share
of each ``by`` group times the estimated size of the ``over`` group, so that the estimate is
the standard-weighted average of the ``by``-group estimates. The variance is that of the
post-stratified design: the influence scores are made to sum to zero within every cell before
the design's with-replacement variance (R's ``svyrecvar`` with ``postStrata``). Agrees with R
``survey`` 4.1.1 to 1e-6 (``tests/test_survey_standardize.py``).

NCHS age-adjusts its published NHIS percentages this way (2000 US standard population).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd

from analysis.survey.design import SurveyDesign
from analysis.survey.errors import EmptyDomainError, SurveyDesignError
from analysis.survey.estimates import DomainEstimates, Estimate

__all__ = ["direct_standardize"]


def direct_standardize(
    design: SurveyDesign,
    variable: str,
    *,
    by: str,
    population: Mapping[Hashable, float],
    over: str | None = None,
    level: Hashable | None = None,
) -> Estimate | DomainEstimates:
    """Mean (or proportion) of ``variable`` standardised to ``population`` over ``by`` groups.

    ``population`` maps each level of ``by`` to its count (or share) in the standard
    population; ``over`` gives one standardised estimate per level of that column (all rows
    when None). ``level`` makes the variable the indicator ``variable == level``. Rows with a
    missing value of the variable are left out before standardising (R's
    ``excluding.missing``); they keep their PSU and stratum. Returns an `Estimate`, or a
    `DomainEstimates` with ``over``.
    """
    if design.lonely_psu == "average":
        raise SurveyDesignError(
            "direct_standardize does not implement the 'average' lonely-PSU policy; use "
            "'adjust', 'certainty', 'remove' or 'fail'"
        )
    y, label, statistic = _analysed(design, variable, level)
    included = ~np.isnan(y)
    if not included.any():
        raise EmptyDomainError(f"'{label}' is missing in every row of design '{design.label}'")
    g_codes, g_levels = _groups(design, by, included, "by")
    shares = _shares(population, g_levels, by)
    if over is None:
        o_codes, o_levels = np.where(included, 0, -1), np.array([None], dtype=object)
    else:
        o_codes, o_levels = _groups(design, over, included, "over")
    n_g, n_o = len(g_levels), len(o_levels)

    # post-strata: cells by x over, with totals share(by) x estimated size of the over group
    w0 = np.where(included, design.weights, 0.0)
    rows = np.flatnonzero(included)
    cell = o_codes[rows] * n_g + g_codes[rows]
    cell_w0 = np.bincount(cell, weights=w0[rows], minlength=n_g * n_o)
    over_w0 = np.bincount(o_codes[rows], weights=w0[rows], minlength=n_o)
    cell_total = np.outer(over_w0, shares).reshape(-1)
    present = cell_w0 > 0
    g_factor = np.divide(cell_total, cell_w0, out=np.zeros_like(cell_total), where=present)
    w = np.zeros(design.n_obs)
    w[rows] = w0[rows] * g_factor[cell]

    # estimates and influence scores (R svymean), one column per over group
    o = o_codes[rows]
    psum = np.bincount(o, weights=w[rows], minlength=n_o)
    means = np.bincount(o, weights=w[rows] * y[rows], minlength=n_o) / psum
    scores = np.zeros((design.n_obs, n_o))
    scores[rows, o] = (y[rows] - means[o]) * w[rows] / psum[o]
    # post-stratification: scores sum to zero within each cell (R svyrecvar, postStrata)
    cell_sums = np.bincount(cell, weights=scores[rows, o], minlength=n_g * n_o)
    cell_means = np.divide(cell_sums, cell_total, out=np.zeros_like(cell_sums), where=present)
    scores[rows, o] -= cell_means[cell] * w[rows]
    covariance = design.psu_total_covariance(design.psu_totals(scores))

    df = _df(design, included)
    n_obs = np.bincount(o, minlength=n_o)
    absent = [
        f"{by}={g_levels[c % n_g]}" + ("" if over is None else f" in {over}={o_levels[c // n_g]}")
        for c in np.flatnonzero(~present)
    ]
    notes = [f"directly standardised over {by} to shares {_shares_text(g_levels, shares)}"]
    if absent:
        notes.append(
            f"no observation in {', '.join(absent)}: the standard is renormalised over the "
            "other groups there (R: postStratify partial=TRUE)"
        )
    n_missing = int((~included).sum())
    if over is None:
        return Estimate(
            statistic=statistic,
            variable=label,
            terms=(label,),
            estimate=means.copy(),
            covariance=covariance,
            df=df,
            n_obs=int(n_obs[0]),
            population=float(psum[0]),
            n_missing=n_missing,
            design=design.label,
            notes=tuple(notes),
        )
    nan = np.full((n_o, 1), np.nan)
    return DomainEstimates(
        statistic=statistic,
        variable=label,
        terms=(label,),
        by=(over,),
        domains=pd.DataFrame({over: list(o_levels)}),
        estimate=means[:, None],
        variance=np.diag(covariance)[:, None].copy(),
        covariance=covariance,
        df=df,
        n_obs=n_obs,
        population=psum,
        deff=nan,
        deff_replace=nan.copy(),
        n_missing=n_missing,
        design=design.label,
        notes=tuple(notes),
    )


def _analysed(design: SurveyDesign, variable: str, level) -> tuple[np.ndarray, str, str]:
    """The variable as floats with NaN for missing; its label; mean or proportion."""
    if variable not in design.data.columns:
        raise SurveyDesignError(f"variable column '{variable}' is not in the data")
    s = design.data[variable]
    if level is not None:
        missing = s.isna().to_numpy()
        hit = (s == level).to_numpy(dtype=bool, na_value=False)
        if not hit.any() and level not in set(s.dropna().unique()):
            raise SurveyDesignError(f"column '{variable}' has no value {level!r}")
        return np.where(missing, np.nan, hit.astype(float)), f"{variable}={level}", "proportion"
    if isinstance(s.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype)
    ):
        raise SurveyDesignError(
            f"column '{variable}' is {s.dtype}, not numeric; pass level= for the share equal to "
            "one of its values"
        )
    y = s.to_numpy(dtype="float64", na_value=np.nan)
    if np.isinf(y).any():
        raise SurveyDesignError(f"column '{variable}': {int(np.isinf(y).sum())} infinite value(s)")
    known = y[~np.isnan(y)]
    binary = pd.api.types.is_bool_dtype(s.dtype) or np.isin(known, (0.0, 1.0)).all()
    return y, variable, "proportion" if binary else "mean"


def _groups(
    design: SurveyDesign, column: str, included: np.ndarray, role: str
) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 outside ``included``) and sorted levels of a grouping column."""
    if column not in design.data.columns:
        raise SurveyDesignError(f"{role} column '{column}' is not in the data")
    s = design.data[column]
    n_missing = int((s.isna().to_numpy() & included).sum())
    if n_missing:
        raise SurveyDesignError(
            f"{role} column '{column}': {n_missing} row(s) with a known analysed value have no "
            f"{column}; standardisation needs it for every such row"
        )
    kept = s[included]
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = [c for c in s.cat.categories if (kept == c).any()]
    else:
        levels = sorted(pd.unique(kept).tolist())
    codes = np.full(len(s), -1, dtype=np.int64)
    codes[included] = pd.Categorical(kept, categories=levels).codes
    return codes, np.array(levels, dtype=object)


def _shares(population: Mapping[Hashable, float], levels: np.ndarray, by: str) -> np.ndarray:
    """Standard shares aligned with ``levels``; every level must be given, and nothing else."""
    given = dict(population)
    missing = [lv for lv in levels if lv not in given]
    extra = [k for k in given if k not in set(levels)]
    if missing or extra:
        raise SurveyDesignError(
            f"population must give a count for each level of '{by}' present in the data "
            f"({list(levels)}); missing {missing}, not in the data {extra}"
        )
    counts = np.array([float(given[lv]) for lv in levels])
    if not (np.isfinite(counts).all() and (counts > 0).all()):
        raise SurveyDesignError(f"population counts must be positive numbers, got {given}")
    return counts / counts.sum()


def _shares_text(levels: np.ndarray, shares: np.ndarray) -> str:
    return ", ".join(f"{lv}: {s:.6g}" for lv, s in zip(levels, shares, strict=True))


def _df(design: SurveyDesign, included: np.ndarray) -> int:
    """PSUs minus strata among the rows analysed (R's ``degf`` after excluding.missing)."""
    psus = np.unique(design.psu_of_row[included])
    strata = np.unique(design.stratum_of_row[included])
    return int(len(psus) - len(strata))
