"""Speed of the survey core on 1 million rows (100 strata x 2 PSUs), against R survey.

Times each task in Python (median of several runs, design already built) and, when
``Rscript`` with the survey package is on the PATH, the same estimate in R on the same data
(written to a temporary CSV; only the estimation is timed, with ``system.time``), prints both,
their ratio and the largest relative difference between the two estimates and SEs.

    .venv/bin/python benchmarks/bench_survey.py [--rows 1000000] [--no-r]

A task is a name, a Python callable taking the design, and the R expression computing the
same with the design ``d``; the regression tasks are added in `regression_tasks()`.
Targets (issue 3): a proportion with its SE under 0.2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.survey import SurveyDesign

N_STRATA, PSU_PER_STRATUM = 100, 2


@dataclass
class Task:
    name: str
    python: Callable[[SurveyDesign], object]  # returns an object with .to_frame()
    r_expression: str  # R expression on the design `d`, returning a svystat/svyby-like object
    target_seconds: float | None = None


def estimate_tasks() -> list[Task]:
    return [
        Task(
            "proportion with SE",
            lambda d: d.proportion("pain"),
            "svymean(~pain, d)",
            target_seconds=0.2,
        ),
        Task(
            "domain proportion (female)",
            lambda d: d.proportion("pain", domain="female"),
            "svymean(~pain, subset(d, female == 1))",
        ),
        Task(
            "domain proportions by 4 age groups",
            lambda d: d.proportion("pain", by="agegroup"),
            "svyby(~pain, ~agegroup, d, svymean)",
        ),
    ]


def regression_tasks() -> list[Task]:
    """Design-based logistic regression with 3 covariates (the regression half of issue 3).

    To be filled by the regression work: return e.g.
    ``[Task("logistic regression, 3 covariates", lambda d: <svyglm equivalent>,
    "svyglm(pain ~ age + female + anxiety, d, family = quasibinomial())", target_seconds=...)]``
    """
    return []


def make_data(n_rows: int, seed: int = 20261124) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_psu = N_STRATA * PSU_PER_STRATUM
    psu_index = np.sort(rng.integers(0, n_psu, n_rows))
    psu_effect = rng.normal(0, 0.3, n_psu)[psu_index]
    age = rng.integers(18, 86, n_rows)
    female = rng.random(n_rows) < 0.52
    anxiety = rng.poisson(1.2, n_rows)
    eta = -1.2 + 0.015 * (age - 50) + 0.2 * female + 0.3 * anxiety + psu_effect
    return pd.DataFrame(
        {
            "stratum": psu_index // PSU_PER_STRATUM + 1,
            "psu": psu_index % PSU_PER_STRATUM + 1,
            "weight": np.round(rng.uniform(50, 500, n_rows) * (1 + female), 2),
            "pain": (rng.random(n_rows) < 1 / (1 + np.exp(-eta))).astype(np.int64),
            "female": female.astype(np.int64),
            "agegroup": np.digitize(age, [35, 50, 65]) + 1,
            "age": age,
            "anxiety": anxiety,
        }
    )


def time_python(task: Task, design: SurveyDesign, repeats: int = 7) -> tuple[float, pd.DataFrame]:
    result = task.python(design)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = task.python(design)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result.to_frame()


R_TEMPLATE = """
suppressMessages(library(survey))
x <- data.table::fread("{csv}", data.table = FALSE)
d <- svydesign(ids = ~psu, strata = ~stratum, weights = ~weight, nest = TRUE, data = x)
tasks <- list({tasks})
for (name in names(tasks)) {{
  expr <- tasks[[name]]
  elapsed <- numeric({repeats})
  for (i in seq_along(elapsed)) elapsed[i] <- system.time(res <- eval(expr))[["elapsed"]]
  est <- coef(res)
  se <- if (inherits(res, "svyglm")) sqrt(diag(vcov(res))) else SE(res)
  cat(sprintf("TIME\\t%s\\t%.6f\\n", name, median(elapsed)))
  cat(sprintf("VALUE\\t%s\\t%.17g\\t%.17g\\n", name, est, as.numeric(se)), sep = "")
}}
"""


def time_r(tasks: list[Task], data: pd.DataFrame, repeats: int = 3) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bench.csv"
        data.to_csv(csv, index=False)
        listing = ",\n  ".join(f"{t.name!r} = quote({t.r_expression})" for t in tasks)
        script = Path(tmp) / "bench.R"
        script.write_text(R_TEMPLATE.format(csv=csv, tasks=listing, repeats=repeats))
        run = subprocess.run(["Rscript", str(script)], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"R benchmark failed:\n{run.stderr[-2000:]}")
        out = run.stdout
    results: dict[str, dict] = {t.name: {"values": []} for t in tasks}
    for line in out.splitlines():
        kind, name, *rest = line.split("\t")
        if kind == "TIME":
            results[name]["seconds"] = float(rest[0])
        elif kind == "VALUE":
            results[name]["values"].append((float(rest[0]), float(rest[1])))
    return results


def max_relative_difference(frame: pd.DataFrame, r_values: list[tuple[float, float]]) -> float:
    py = frame[["estimate", "se"]].to_numpy(dtype=float)
    r = np.asarray(r_values, dtype=float)
    if py.shape != r.shape:
        return float("nan")
    return float(np.max(np.abs(py - r) / np.abs(r)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-r", action="store_true", help="skip the R comparison")
    args = parser.parse_args()

    tasks = estimate_tasks() + regression_tasks()
    data = make_data(args.rows)
    start = time.perf_counter()
    design = SurveyDesign(data, weight="weight", strata="stratum", psu="psu", nest=True)
    build = time.perf_counter() - start
    print(f"bench_survey: {args.rows:,} rows, {N_STRATA} strata x {PSU_PER_STRATUM} PSUs")
    print(f"  building the design (once): {build:.3f} s")

    r_results = {}
    if args.no_r or shutil.which("Rscript") is None:
        print("  R: not run (" + ("--no-r" if args.no_r else "Rscript not on PATH") + ")")
    else:
        r_results = time_r(tasks, data)

    header = f"  {'task':<36} {'python s':>9} {'R s':>9} {'R/python':>9} {'max rel diff':>13}"
    print(header)
    for task in tasks:
        seconds, frame = time_python(task, design)
        line = f"  {task.name:<36} {seconds:>9.4f}"
        if task.name in r_results:
            r = r_results[task.name]
            diff = max_relative_difference(frame, r["values"])
            line += f" {r['seconds']:>9.3f} {r['seconds'] / seconds:>8.0f}x {diff:>13.1e}"
        if task.target_seconds is not None:
            verdict = "meets" if seconds < task.target_seconds else "MISSES"
            line += f"   ({verdict} target < {task.target_seconds} s)"
        print(line)


if __name__ == "__main__":
    main()
