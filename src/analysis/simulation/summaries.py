"""Summaries of a simulation study: bias, SEs and coverage per estimand; verdict shares;
the null world's false-positive rates. Plain functions of the replicate tables, so that a
summary can be recomputed from the CSV files of any run.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
from scipy import stats

from analysis.claims.verdicts import SUPPORTED
from analysis.core.io import parse_yaml

Z95 = float(stats.norm.ppf(0.975))  # model SE = CI half-width / Z95


def load_spec() -> dict:
    """``resources/simulation.yaml``: defaults, claims judged and estimands tracked."""
    text = resources.files("analysis.resources").joinpath("simulation.yaml").read_text()
    return parse_yaml(text)


def summarise_estimates(replicates: pd.DataFrame, spec: dict | None = None) -> pd.DataFrame:
    """Bias, empirical and model SE, coverage and null-exclusion rate per scenario x estimand.

    Ratios are judged on the log scale (bias of log estimate; SEs of the log). The model SE
    is read off each CI's width (half-width / 1.96 on the analysis scale). Coverage carries
    its Monte-Carlo SE; ``coverage_ok`` is False when a consistent estimator's coverage is
    more than ``coverage_tolerance_mc_se`` Monte-Carlo SEs from 0.95.
    """
    spec = spec or load_spec()
    meta = {e["key"]: e for e in spec["estimands"]}
    tol = float(spec["coverage_tolerance_mc_se"])
    out = []
    for (scenario, key), g in replicates.groupby(["scenario", "estimand"], sort=False):
        m = meta.get(key, {"scale": "identity", "label": key, "claim": "", "expected": ""})
        log = m["scale"] == "log"

        def tr(x, log=log):
            return np.log(np.asarray(x, dtype=float)) if log else np.asarray(x, dtype=float)

        est, lo, hi = tr(g["estimate"]), tr(g["ci_low"]), tr(g["ci_high"])
        truth = float(tr(g["truth"]).mean())
        r = len(g)
        covered = (g["ci_low"] <= g["truth"]) & (g["truth"] <= g["ci_high"])
        cov = float(covered.mean())
        cov_se = math.sqrt(max(cov * (1 - cov), 0.25 / r) / r)  # floor: never a zero SE
        null = m.get("no_effect")
        if null is None:
            excluded = math.nan
        else:
            excluded = float(((g["ci_low"] > null) | (g["ci_high"] < null)).mean())
        bias = float(est.mean() - truth)
        emp_se = float(est.std(ddof=1)) if r > 1 else math.nan
        row = {
            "scenario": scenario,
            "estimand": key,
            "label": m["label"],
            "claim": m["claim"],
            "expected": m["expected"],
            "scale": m["scale"],
            "replicates": r,
            "truth": float(np.exp(truth)) if log else truth,
            "mean_estimate": float(np.exp(est.mean())) if log else float(est.mean()),
            "bias": bias,
            "bias_mc_se": emp_se / math.sqrt(r) if r > 1 else math.nan,
            "empirical_se": emp_se,
            "model_se": float(((hi - lo) / (2 * Z95)).mean()),
            "rmse": float(math.sqrt(((est - truth) ** 2).mean())),
            "coverage": cov,
            "coverage_mc_se": cov_se,
            "null_excluded_rate": excluded,
        }
        row["se_ratio"] = row["model_se"] / emp_se if emp_se and emp_se > 0 else math.nan
        row["coverage_ok"] = (
            bool(abs(cov - 0.95) <= tol * cov_se) if m["expected"] == "consistent" else None
        )
        out.append(row)
    return pd.DataFrame(out)


def summarise_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Share of replicates with each verdict, per scenario and claim."""
    if verdicts.empty:
        return pd.DataFrame(columns=["scenario", "claim", "verdict", "replicates", "share"])
    long = verdicts.melt(
        id_vars=["scenario", "replicate"], var_name="claim", value_name="verdict"
    ).dropna(subset=["verdict"])
    counts = long.groupby(["scenario", "claim", "verdict"]).size().rename("count").reset_index()
    totals = long.groupby(["scenario", "claim"]).size().rename("replicates").reset_index()
    t = counts.merge(totals, on=["scenario", "claim"])
    t["share"] = t["count"] / t["replicates"]
    return t.drop(columns="count").sort_values(["scenario", "claim", "verdict"], ignore_index=True)


def false_positive_rates(verdicts: pd.DataFrame, spec: dict | None = None) -> pd.DataFrame:
    """Null world: share of replicates in which each claim's rule says "supported"."""
    spec = spec or load_spec()
    null = verdicts[verdicts["scenario"] == "null"]
    rows = []
    for cid in spec["null_world_claims"]:
        if cid not in null.columns or null.empty:
            continue
        hits = (null[cid] == SUPPORTED).to_numpy()
        r = len(hits)
        rate = float(hits.mean())
        # exact one-sided 95% upper bound (Clopper-Pearson) on the true rate
        k = int(hits.sum())
        upper = float(stats.beta.ppf(0.95, k + 1, r - k)) if k < r else 1.0
        rows.append(
            {
                "claim": cid,
                "replicates": r,
                "supported": k,
                "false_positive_rate": rate,
                "upper_95": upper,
            }
        )
    return pd.DataFrame(rows)
