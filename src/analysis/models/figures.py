"""The figures of the models' results (notebooks 02-05): estimates with their confidence
intervals, drawn by one error-bar helper, as bars, points or forest rows.

Each function takes a result (or a frame) and returns the matplotlib Figure; the ones with an
``ax`` argument draw into it when given. A source that does not measure what a figure needs
gets a panel that says so, marked (``NOT_MEASURED``) so that `analysis.build.display.show`
prints one line instead of an empty figure.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.models.anxiety_pain import AnxietyPainResult
from analysis.models.benzodiazepines import BenzodiazepineResult
from analysis.models.comorbidity import ComorbidityResult
from analysis.models.mediation import EFFECTS, MediationResult
from analysis.models.within_person import person_waves

# --------------------------------------------------------------------------- shared pieces


def _axes(ax, figsize: tuple[float, float]):
    """``ax``, or the axes of a new figure of ``figsize``."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


NOT_MEASURED = "painanx_not_measured"  # attribute on an Axes: nothing to draw here


def _not_measured(ax):
    ax.text(0.5, 0.5, "not measured in this source", ha="center", va="center")
    ax.set_axis_off()
    setattr(ax, NOT_MEASURED, True)
    return ax.figure


def _interval_bars(ax, at, estimate, low, high, *, values_on: str, **style):
    """Estimates at positions ``at`` with bars from ``low`` to ``high`` (none when ``low`` is
    None); ``values_on`` is the axis of the values: 'y' for columns, 'x' for forest rows."""
    err = None if low is None else [np.atleast_1d(estimate - low), np.atleast_1d(high - estimate)]
    if values_on == "x":
        return ax.errorbar(estimate, at, xerr=err, **style)
    return ax.errorbar(at, estimate, yerr=err, **style)


def _forest(
    ax, estimate, low, high, labels, *, null: float, null_line: dict, row_styles=None, **style
):
    """Forest rows, top-down: each estimate with its CI bar, a grey line at the null value, the
    row labels. Returns the rows' y positions.

    ``row_styles`` (one dict per row) draws each row in its own style; a row whose ``low`` is
    None is a bare point (a known truth has no interval).
    """
    y = np.arange(len(labels))[::-1]
    if row_styles is None:
        _interval_bars(ax, y, estimate, low, high, values_on="x", **style)
    else:
        for i, own in enumerate(row_styles):
            _interval_bars(ax, y[i], estimate[i], low[i], high[i], values_on="x", **style, **own)
    ax.axvline(null, color="grey", **null_line)
    ax.set_yticks(y, labels)
    return y


# --------------------------------------------------------------------------- C1


def comorbidity(result: ComorbidityResult, ax=None):
    """Bar chart: prevalence with 95% CIs in each group, one pair of bars per outcome."""
    ax = _axes(ax, (7, 4))
    measures = result.measures
    t = result.table
    if t.empty:
        return _not_measured(ax)
    long = []
    for _, r in t.iterrows():
        for grp, key in (
            (measures["exposed_label"], "p_exposed"),
            (measures["unexposed_label"], "p_unexposed"),
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
    ax.set_xticks(np.arange(len(outcomes)), [textwrap.fill(o, 24) for o in outcomes])
    ax.set_ylim(0, 1.3 * long["hi"].max())  # room for the legend above the bars
    ax.legend(loc="upper right")
    ax.set_ylabel("weighted prevalence, % (95% CI)")
    ax.set_xlabel("")
    ax.set_title(f"{measures['title']} ({result.source})")
    return ax.figure


# --------------------------------------------------------------------------- C3 / C7


def predicted_probabilities(result: AnxietyPainResult, ax=None):
    """Standardised probability of back pain by anxiety level (GAD-7 category, or how often
    nervous), with 95% CIs."""
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
    measures = result.measures
    ax.set_xlabel(measures["exposure_axis"])
    ax.set_ylabel(f"{measures['outcome_label']}, % (standardised, 95% CI)")
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


def within_between(frame: pd.DataFrame, seed: int = 2019):
    """Mean bodily pain by nervousness level: across people, and within people (deviations
    from each person's own mean), so a reader sees both comparisons side by side. ``seed``
    fixes seaborn's bootstrap of the confidence bands: the same data, the same figure."""
    d = person_waves(frame)
    d["pain_within"] = d["pain"] - d.groupby("person")["pain"].transform("mean")
    d["step_within"] = d["step"] - d.groupby("person")["step"].transform("mean")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sns.pointplot(data=d, x="step", y="pain", ax=axes[0], errorbar=("ci", 95), seed=seed)
    axes[0].set(
        xlabel="nervousness (0 = none ... 5 = all of the time)",
        ylabel="SF-36 bodily pain (higher = less pain)",
        title="Between and within people (pooled)",
    )
    sns.regplot(
        data=d,
        x="step_within",
        y="pain_within",
        ax=axes[1],
        scatter_kws={"s": 6, "alpha": 0.3},
        seed=seed,
    )
    axes[1].set(
        xlabel="nervousness, change from own mean",
        ylabel="bodily pain, change from own mean",
        title="Within people",
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- C2


def mediation_effects(result: MediationResult, truth: pd.Series | None = None):
    """Direct, indirect and total effects with their CIs (and the truth, where known)."""
    f = result.to_frame().loc[list(EFFECTS[:3])]
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    y = _forest(
        ax,
        f["estimate"],
        f["ci_low"],
        f["ci_high"],
        ["direct (NDE)", "indirect via tension (NIE)", "total"],
        null=0,
        null_line={"lw": 0.8},
        fmt="o",
        color="C0",
        capsize=4,
        label=f"estimate ({100 * result.level:g}% CI)",
    )
    if truth is not None:
        ax.scatter(truth.reindex(f.index), y, marker="x", color="C3", zorder=3, label="truth")
    ax.set_xlabel(f"{result.outcome}: {result.scale}")
    ax.set_title(f"{result.exposure_label}, mediator {result.mediator}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- C4


def benzodiazepine_comparison(result: BenzodiazepineResult):
    """Naive and adjusted odds ratios with CIs, and the true effect where known (log axis)."""
    f = result.to_frame()
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    colours = {"naive": "C1", "adjusted": "C0", "truth": "C3"}
    truth = [name == "truth" for name in f.index]
    _forest(
        ax,
        list(f["odds_ratio"]),
        [None if t else lo for t, lo in zip(truth, f["ci_low"], strict=True)],
        list(f["ci_high"]),
        [f"{m} ({r.odds_ratio:.2f})" for m, r in f.iterrows()],
        null=1,
        null_line={"lw": 0.8},
        row_styles=[
            {
                "fmt": "x" if t else "o",
                "color": colours.get(name, "C0"),
                "markersize": 9 if t else 6,
            }
            for name, t in zip(f.index, truth, strict=True)
        ],
        capsize=4,
    )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(f"odds ratio of any back pain, {result.drug_label} users vs non-users")
    ax.set_title(f"Confounding by indication ({result.source})", fontsize=10)
    fig.tight_layout()
    return fig
