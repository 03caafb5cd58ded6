"""Figures of a simulation study: CI coverage, error around the truth, verdict shares.

Each takes a `SimulationResult` (``analysis.simulation.study``) and returns its figure, drawn
on ``ax`` when one is given.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from analysis.claims.registry import VERDICTS
from analysis.simulation.study import SimulationResult


def coverage(result: SimulationResult, ax=None):
    """Coverage of each 95% CI by scenario, with Monte-Carlo error bars and the 95% line."""
    est = result.estimates
    labels = list(dict.fromkeys(est["label"]))
    scenarios = list(dict.fromkeys(est["scenario"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.5))
    offsets = np.linspace(-0.15, 0.15, len(scenarios)) if len(scenarios) > 1 else [0.0]
    for k, (scenario, off) in enumerate(zip(scenarios, offsets, strict=True)):
        e = est[est["scenario"] == scenario].set_index("label").reindex(labels)
        y = np.arange(len(labels)) + off
        ax.errorbar(
            e["coverage"],
            y,
            xerr=1.96 * e["coverage_mc_se"],
            fmt="o",
            color=f"C{k}",
            label=scenario,
            capsize=2,
        )
    ax.axvline(0.95, color="black", lw=1, ls="--", label="nominal 95%")
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("coverage of the 95% CI (share of samples whose CI holds the truth)")
    ax.set_xlim(-0.02, 1.02)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize="small")
    ax.set_title(f"CI coverage over {result.settings['replicates']} samples per scenario")
    ax.figure.tight_layout()
    return ax.figure


def errors(result: SimulationResult, ax=None):
    """Distribution of estimate minus truth (log scale for ratios) per estimand and scenario."""
    spec = {e["key"]: e for e in result.spec["estimands"]}
    r = result.replicates.copy()
    log = r["estimand"].map(lambda k: spec.get(k, {}).get("scale") == "log").to_numpy(bool)
    r["error"] = r["estimate"] - r["truth"]
    r.loc[log, "error"] = np.log(r.loc[log, "estimate"] / r.loc[log, "truth"])
    r["label"] = r["estimand"].map(lambda k: spec.get(k, {}).get("label", k))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * r["label"].nunique() + 1.5))
    sns.boxplot(data=r, x="error", y="label", hue="scenario", ax=ax, fliersize=1.5, linewidth=0.8)
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel("estimate - truth (log OR / log PR for ratios; risk or prevalence otherwise)")
    ax.set_ylabel("")
    ax.set_title("Sampling error around the truth: centred on 0 = unbiased")
    ax.figure.tight_layout()
    return ax.figure


def verdicts(result: SimulationResult, ax=None):
    """Share of samples with each verdict, per claim and scenario (stacked bars)."""
    shares = result.verdict_shares
    wide = shares.pivot_table(
        index=["scenario", "claim"], columns="verdict", values="share", fill_value=0.0
    )
    order = [v for v in VERDICTS if v in wide.columns]
    wide = wide[order]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.4 * len(wide) + 1.5))
    left = np.zeros(len(wide))
    colors = {
        "supported": "#1b7837",
        "partly supported": "#a6dba0",
        "not supported": "#bababa",
        "contradicted": "#c2a5cf",
        "insufficient evidence": "#f0f0f0",
    }
    y = np.arange(len(wide))
    for verdict in order:
        ax.barh(y, wide[verdict], left=left, color=colors.get(verdict), label=verdict)
        left += wide[verdict].to_numpy()
    ax.set_yticks(y, [f"{s}: {c}" for s, c in wide.index])
    ax.invert_yaxis()
    ax.set_xlabel("share of samples")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize="small")
    ax.set_title("What the fixed rules say, sample by sample")
    ax.figure.tight_layout()
    return ax.figure
