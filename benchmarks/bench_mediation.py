"""Speed of the C2 mediation with its design bootstrap on a 30,000-row survey.

Prints wall time for B=200 subbootstrap replicates (linear and logistic outcome models), the
replicate-weight matrix alone, and the per-replicate cost relative to the full-sample fit.
Synthetic data: timing only, never evidence.  Run: .venv/bin/python benchmarks/bench_mediation.py
"""

import time

import numpy as np
import pandas as pd
from scipy.special import expit

from analysis.models.mediation import estimate_mediation
from analysis.survey.bootstrap import bootstrap_weights
from analysis.survey.design import SurveyDesign

N_STRATA, PSU_PER_STRATUM, ROWS_PER_PSU, B = 50, 10, 60, 200


def survey(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = N_STRATA * PSU_PER_STRATUM * ROWS_PER_PSU
    h = np.repeat(np.arange(N_STRATA), PSU_PER_STRATUM * ROWS_PER_PSU)
    psu = np.repeat(np.arange(N_STRATA * PSU_PER_STRATUM), ROWS_PER_PSU)
    x = rng.normal(size=(n, 4))
    a = (rng.random(n) < expit(-1 + x[:, 0])).astype(float)
    m = 3 + 1.2 * a + x @ [0.3, 0.2, 0.1, 0.0] + rng.normal(0, 0.5, psu.max() + 1)[psu]
    m = m + rng.normal(size=n)
    eta = -2 + 0.3 * a + 0.4 * m + 0.1 * a * m + x @ [0.2, 0.1, 0.0, 0.1]
    df = pd.DataFrame(x, columns=["c1", "c2", "c3", "c4"])
    df["sex"] = rng.choice(["female", "male"], n)
    df["activity"] = rng.choice(["inactive", "insufficiently active", "active"], n)
    return df.assign(
        stratum=h,
        psu=psu,
        weight=rng.uniform(500, 5000, n),
        anxious=a,
        tension=m,
        pain=eta + rng.normal(size=n),
        any_pain=(rng.random(n) < expit(eta)).astype(float),
    )


def main() -> None:
    df = survey()
    design = SurveyDesign(df, weight="weight", strata="stratum", psu="psu")
    print(f"{len(df)} rows, {design.n_strata} strata, {design.n_psu} PSUs, B = {B}")
    t = time.perf_counter()
    bootstrap_weights(design, B, seed=1)
    print(f"replicate weights (n x B):          {time.perf_counter() - t:6.2f} s")
    for outcome in ("pain", "any_pain"):
        kw = dict(
            exposure="anxious",
            mediator="tension",
            outcome=outcome,
            covariates=("c1", "c2", "c3", "c4", "sex", "activity"),
            seed=1,
            progress=False,
        )
        t = time.perf_counter()
        estimate_mediation(design, replicates=2, **kw)
        t_base = time.perf_counter() - t
        t = time.perf_counter()
        res = estimate_mediation(design, replicates=B, **kw)
        t_full = time.perf_counter() - t
        per_rep = (t_full - t_base) / (B - 2)
        print(
            f"{res.outcome_model:<8} outcome: {t_full:6.2f} s total for B={B}; "
            f"{1000 * per_rep:6.1f} ms per replicate; replicate / full fit ratio "
            f"{per_rep / t_base:5.2f}"
        )


if __name__ == "__main__":
    main()
