"""The figures of the models' results (notebooks 02-03): estimates with their confidence
intervals, drawn by one error-bar helper, as bars, points or forest rows.

Each function takes a result (or a frame) and returns the matplotlib Figure; the ones with an
``ax`` argument draw into it when given. A source that does not measure what a figure needs
gets a blank panel that says so.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.models.anxiety_pain import AnxietyPainResult
from analysis.models.comorbidity import ComorbidityResult
from analysis.models.design import load_spec

# --------------------------------------------------------------------------- shared pieces


def _axes(ax, figsize: tuple[float, float]):
    """``ax``, or the axes of a new figure of ``figsize``."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _not_measured(ax):
    ax.text(0.5, 0.5, "not measured in this source", ha="center", va="center")
    ax.set_axis_off()
    return ax.figure


def _interval_bars(ax, at, estimate, low, high, *, values_on: str, **style):
    """Estimates at positions ``at`` with bars from ``low`` to ``high``; ``values_on`` is the
    axis of the values: 'y' for columns, 'x' for forest rows."""
    err = [np.atleast_1d(estimate - low), np.atleast_1d(high - estimate)]
    if values_on == "x":
        return ax.errorbar(estimate, at, xerr=err, **style)
    return ax.errorbar(at, estimate, yerr=err, **style)


def _forest(ax, estimate, low, high, labels, *, null: float, null_line: dict, **style):
    """Forest rows, top-down: each estimate with its CI bar, a grey line at the null value, the
    row labels. Returns the rows' y positions."""
    y = np.arange(len(labels))[::-1]
    _interval_bars(ax, y, estimate, low, high, values_on="x", **style)
    ax.axvline(null, color="grey", **null_line)
    ax.set_yticks(y, labels)
    return y


# --------------------------------------------------------------------------- C1


def comorbidity(result: ComorbidityResult, ax=None):
    """Bar chart: prevalence with 95% CIs in each group, one pair of bars per outcome."""
    ax = _axes(ax, (7, 4))
    spec = load_spec()["comorbidity"]
    t = result.table
    if t.empty:
        return _not_measured(ax)
    long = []
    for _, r in t.iterrows():
        for grp, key in (
            (spec["exposed_label"], "p_exposed"),
            (spec["unexposed_label"], "p_unexposed"),
        ):
            long.append(
                {
                    "outcome": r["label"],
                    "group": grp,
                    "p": 100 * r[key],
                    "lo": 100 * r[f"{key}_ci_low"],
                    "hi": 100 * r[f"{key}_ci_high"],
                }
            )
    long = pd.DataFrame(long)
    outcomes = list(dict.fromkeys(long["outcome"]))
    groups = list(dict.fromkeys(long["group"]))
    width = 0.8 / len(groups)
    colors = sns.color_palette(n_colors=len(groups))
    for j, grp in enumerate(groups):
        sub = long[long["group"] == grp].set_index("outcome").loc[outcomes]
        x = np.arange(len(outcomes)) + (j - (len(groups) - 1) / 2) * width
        ax.bar(x, sub["p"], width=width, color=colors[j], label=grp)
        _interval_bars(
            ax,
            x,
            sub["p"],
            sub["lo"],
            sub["hi"],
            values_on="y",
            fmt="none",
            color="black",
            capsize=4,
        )
    ax.set_xticks(np.arange(len(outcomes)), outcomes)
    ax.legend()
    ax.set_ylabel("weighted prevalence, % (95% CI)")
    ax.set_xlabel("")
    ax.set_title(f"Anxiety with vs without chronic back pain ({result.source})")
    return ax.figure


# --------------------------------------------------------------------------- C3 / C7


def predicted_probabilities(result: AnxietyPainResult, ax=None):
    """Standardised probability of any back pain by GAD-7 category, with 95% CIs."""
    ax = _axes(ax, (6, 4))
    p = result.predicted
    if p.empty:
        return _not_measured(ax)
    x = np.arange(len(p))
    sns.pointplot(x=list(p.index), y=100 * p["probability"], ax=ax, linestyle="none")
    _interval_bars(
        ax,
        x,
        100 * p["probability"],
        100 * p["ci_low"],
        100 * p["ci_high"],
        values_on="y",
        fmt="none",
        color="black",
        capsize=4,
    )
    ax.set_xlabel("GAD-7 category")
    ax.set_ylabel("any back pain, % (standardised, 95% CI)")
    ax.set_title(f"Predicted back pain by anxiety level ({result.source})")
    return ax.figure


def odds_ratios(result: AnxietyPainResult, ax=None):
    """Forest plot of the main adjusted odds ratios (log scale) with their CIs."""
    t = result.to_frame()
    ax = _axes(ax, (7, 0.5 * max(len(t), 2) + 1))
    if t.empty:
        return _not_measured(ax)
    _forest(
        ax,
        t["odds_ratio"],
        t["ci_low"],
        t["ci_high"],
        t["label"],
        null=1,
        null_line={"linestyle": "--"},
        fmt="o",
        color="black",
        capsize=3,
    )
    ax.set_xscale("log")
    ticks = [v for v in (0.5, 0.75, 1, 1.5, 2, 3, 5, 10) if t["ci_low"].min() / 1.2 <= v]
    ticks = [v for v in ticks if v <= t["ci_high"].max() * 1.2]
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("odds ratio (95% CI, log scale)")
    return ax.figure
