"""Benchmark: a design-based logistic regression on 1 million rows, against R's svyglm.

Builds 1,000,000 rows in 100 strata × 2 PSUs (a PSU random effect, unequal weights) with a
binary outcome and 3 covariates, and times ``svyglm(y ~ x1 + x2 + x3, family=
'quasibinomial')`` from formula to design-based covariance. When ``Rscript`` (with the
``survey`` package) is on the PATH, the same data go to R in the same run, and
``system.time(svyglm(...); vcov(...))`` is timed there (R's default convergence settings);
one more R fit run to full convergence (not timed) gives the SEs compared with ours.

Run:  .venv/bin/python benchmarks/bench_regression.py   [--rows N] [--repeats K]
Synthetic data: this measures speed and agreement only; it is not evidence of anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.survey import SurveyDesign, svyglm, svyolr

FORMULA = "y ~ x1 + x2 + x3"

R_SCRIPT = r"""
suppressMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
repeats <- as.integer(args[3])
des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~w, nest = TRUE, data = d)
times <- numeric(repeats)
for (i in seq_len(repeats)) {
  times[i] <- system.time({
    fit <- svyglm(y ~ x1 + x2 + x3, design = des, family = quasibinomial())
    v <- vcov(fit)
  })[["elapsed"]]
}
tight <- svyglm(y ~ x1 + x2 + x3, design = des, family = quasibinomial(),
                control = glm.control(epsilon = 1e-14, maxit = 100))
jsonlite::write_json(list(times = times, se_default = unname(SE(fit)),
                          se_tight = unname(SE(tight)), coef_tight = unname(coef(tight))),
                     args[2], digits = NA)
"""


def make_data(n_rows: int, seed: int = 20261124) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_strata, n_psu = 100, 2
    psu_id = np.sort(rng.integers(0, n_strata * n_psu, n_rows))
    stratum, psu = psu_id // n_psu, psu_id % n_psu + 1
    psu_effect = rng.normal(0, 0.3, n_strata * n_psu)[psu_id]
    x = rng.normal(size=(n_rows, 3)) + 0.5 * psu_effect[:, None]
    eta = -0.8 + x @ np.array([0.4, -0.25, 0.1]) + psu_effect
    y = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-eta))).astype(np.int8)
    w = np.round(rng.uniform(50, 500, n_rows) * (1 + (stratum % 3)), 2)
    return pd.DataFrame(
        {"stratum": stratum, "psu": psu, "w": w, "y": y, "x1": x[:, 0], "x2": x[:, 1]}
        | {"x3": x[:, 2]}
    )


def time_python(design: SurveyDesign, repeats: int):
    times = []
    fit = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = svyglm(FORMULA, design, family="quasibinomial")
        times.append(time.perf_counter() - t0)
    return fit, times


def run_r(data: pd.DataFrame, repeats: int) -> dict | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        print("Rscript not found: R comparison skipped")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, out, script = Path(tmp, "d.csv"), Path(tmp, "r.json"), Path(tmp, "bench.R")
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        proc = subprocess.run(
            [rscript, str(script), str(csv), str(out), str(repeats)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"R failed, comparison skipped:\n{proc.stderr[-2000:]}")
            return None
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--r-repeats", type=int, default=3)
    args = parser.parse_args()

    data = make_data(args.rows)
    t0 = time.perf_counter()
    design = SurveyDesign(data, weight="w", strata="stratum", psu="psu", nest=True)
    t_design = time.perf_counter() - t0
    print(f"bench_regression: {args.rows:,} rows, 100 strata x 2 PSUs, logistic {FORMULA!r}")
    print(
        f"  machine load (1-min average) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"  design construction (once, not in the fit time): {t_design:.3f} s")
    fit, times = time_python(design, args.repeats)
    py_min, py_med = min(times), float(np.median(times))
    print(
        f"  python svyglm (formula -> coefficients -> design covariance): "
        f"min {py_min:.3f} s, median {py_med:.3f} s over {args.repeats} runs"
    )
    data_ord = data.assign(y4=np.digitize(data["x1"] + data["y"], [-0.5, 0.5, 1.5]))
    design_ord = SurveyDesign(data_ord, weight="w", strata="stratum", psu="psu", nest=True)
    t0 = time.perf_counter()
    svyolr("y4 ~ x1 + x2 + x3", design_ord)
    print(f"  python svyolr, 4-level outcome, same design: {time.perf_counter() - t0:.3f} s")

    r = run_r(data, args.r_repeats)
    if r is None:
        return
    r_times = r["times"] if isinstance(r["times"], list) else [r["times"]]
    r_min, r_med = min(r_times), float(np.median(r_times))
    se = fit.bse.to_numpy()
    se_tight, se_default = np.asarray(r["se_tight"]), np.asarray(r["se_default"])
    print(
        f"  R survey svyglm + vcov (system.time, default controls): min {r_min:.3f} s, "
        f"median {r_med:.3f} s over {len(r_times)} runs"
    )
    print(
        f"  speed-up (R / python): {r_min / py_min:.1f}x on minima, {r_med / py_med:.1f}x on medians"
    )
    print(
        f"  SEs vs R run to convergence: max abs diff {np.max(np.abs(se - se_tight)):.3g}, "
        f"max rel diff {np.max(np.abs(se / se_tight - 1)):.3g}"
    )
    print(
        f"  SEs vs R with default glm.control (stops one IRLS step early): max abs diff "
        f"{np.max(np.abs(se - se_default)):.3g}, max rel diff "
        f"{np.max(np.abs(se / se_default - 1)):.3g}"
    )
    print(f"  machine load at end: {os.getloadavg()[0]:.2f} (timings are unreliable above ~1)")
    coef_diff = np.max(np.abs(fit.params.to_numpy() / np.asarray(r["coef_tight"]) - 1))
    print(f"  coefficients vs R run to convergence: max rel diff {coef_diff:.3g}")


if __name__ == "__main__":
    main()
