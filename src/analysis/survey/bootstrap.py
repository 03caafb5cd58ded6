"""Design-aware bootstrap: Rao-Wu-Yue rescaling bootstrap replicate weights.

Within each stratum h with n_h PSUs, each replicate draws n_h - 1 PSUs with replacement
and rescales the weights of PSU i by ``n_h / (n_h - 1) * m_hi`` (m_hi = times PSU i was
drawn). This is R ``survey``'s ``as.svrepdesign(type="subbootstrap")`` (``subbootweights``):
for a linear statistic the expected replicate variance equals the with-replacement
linearisation variance, so replicate variance needs no further rescaling beyond
R's ``scale = 1/(B - 1)``.

Variance from replicates follows R's ``svrVar`` with its defaults for this design
(``scale = 1/(B-1)``, ``rscales = 1``, ``mse = getOption("survey.replicates.mse")`` = FALSE):
squared deviations around the MEAN of the replicate estimates. ``mse=True`` centres on the
full-sample estimate instead, as R does with ``mse=TRUE``.

Lonely strata (one PSU) cannot be resampled (R's ``subbootstratum`` would divide by zero).
Under the design's lonely-PSU policy 'certainty' or 'remove' they keep their full-sample
weight in every replicate, so they add no variance, as in the linearisation for those
policies. Policies 'adjust' and 'average' have no bootstrap counterpart: an error says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from analysis.survey.design import SurveyDesign, SurveyDesignError


def bootstrap_psu_factors(design: SurveyDesign, replicates: int, seed: int | None) -> np.ndarray:
    """Rescaling factors per PSU and replicate (n_psu x B): ``n_h/(n_h-1) * m_hi``.

    Deterministic for a seed (numpy ``default_rng``); strata are drawn in code order.
    """
    if int(replicates) != replicates or replicates < 2:
        raise ValueError(f"replicates must be an integer >= 2, got {replicates!r}")
    replicates = int(replicates)
    counts = design._psu_per_stratum
    lonely = counts == 1
    if lonely.any() and design.lonely_psu not in ("certainty", "remove"):
        examples = ", ".join(repr(s) for s in design.stratum_labels[np.flatnonzero(lonely)][:5])
        raise SurveyDesignError(
            f"stratum column '{design.strata_column}': {int(lonely.sum())} stratum/strata with "
            f"a single PSU (e.g. {examples}) cannot be bootstrapped under lonely_psu="
            f"'{design.lonely_psu}'; use lonely_psu='certainty' or 'remove' (the lonely PSU "
            "keeps its weight in every replicate) or collapse strata"
        )
    rng = np.random.default_rng(seed)
    factors = np.ones((design.n_psu, replicates))
    # PSUs of each stratum, in PSU-code order
    order = np.argsort(design._stratum_of_psu, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for h, n_h in enumerate(counts):
        if n_h < 2:
            continue
        members = order[starts[h] : starts[h + 1]]
        draws = rng.integers(0, n_h, size=(replicates, n_h - 1))
        # m[b, i] = times PSU i was drawn in replicate b
        m = np.zeros((replicates, n_h))
        np.add.at(m, (np.repeat(np.arange(replicates), n_h - 1), draws.ravel()), 1.0)
        factors[members, :] = m.T * (n_h / (n_h - 1))
    return factors


def bootstrap_weights(
    design: SurveyDesign, replicates: int = 200, seed: int | None = 0
) -> np.ndarray:
    """Replicate weights (n x B): full-sample weight times its PSU's rescaling factor.

    R equivalent: ``as.svrepdesign(design, type="subbootstrap", replicates=B)`` (with
    combined weights). Drawn per PSU, then indexed to rows.
    """
    factors = bootstrap_psu_factors(design, replicates, seed)
    return design.weights[:, None] * factors[design._psu_of_row]


def bootstrap_weight_columns(
    design: SurveyDesign,
    replicates: int = 200,
    seed: int | None = 0,
    rows: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """The columns of `bootstrap_weights`, one replicate at a time, for the rows where the
    boolean mask ``rows`` is true (all rows when None).

    The same draws and the same products as `bootstrap_weights(...)[rows]`, so fits on them give
    identical numbers; but one contiguous vector per replicate instead of an n x B matrix (48 MB
    for 30,000 rows and 200 replicates) read column by column.
    """
    factors = np.ascontiguousarray(bootstrap_psu_factors(design, replicates, seed).T)
    psu_of_row, weights = design.psu_of_row, design.weights
    if rows is not None:
        psu_of_row, weights = psu_of_row[rows], weights[rows]
    return (weights * factors[b][psu_of_row] for b in range(factors.shape[0]))


def replicate_variance(
    replicate_estimates: np.ndarray,
    estimate: np.ndarray | float | None = None,
    *,
    mse: bool = False,
) -> np.ndarray | float:
    """Variance (or covariance matrix) of an estimate from its bootstrap replicates.

    ``replicate_estimates`` is (B,) or (B x p). R's ``svrVar`` for subbootstrap designs:
    ``1/(B-1) * sum((theta_b - centre)^2)`` with centre = mean of replicates (``mse=False``,
    R's default) or the full-sample ``estimate`` (``mse=True``). Replicates that are NaN
    (a fit that failed) are dropped, as R's ``na.action`` does, with B counting all replicates.
    """
    thetas = np.asarray(replicate_estimates, dtype="float64")
    vector = thetas.ndim == 1
    if vector:
        thetas = thetas[:, None]
    n_rep = thetas.shape[0]
    if n_rep < 2:
        raise ValueError("need at least 2 replicate estimates")
    ok = np.all(np.isfinite(thetas), axis=1)
    if not ok.any():
        raise ValueError("every replicate estimate is NaN or infinite")
    thetas = thetas[ok]
    if mse:
        if estimate is None:
            raise ValueError("mse=True needs the full-sample estimate")
        centre = np.atleast_1d(np.asarray(estimate, dtype="float64"))
    else:
        centre = thetas.mean(axis=0)
    dev = thetas - centre
    v = dev.T @ dev / (n_rep - 1)
    return float(v[0, 0]) if vector else v
