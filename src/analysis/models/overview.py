"""Descriptive tables and figures for the data-overview notebook (01_data_overview).

Plain descriptions of a tidy frame: how many people, what the weights look like, what is
missing, which pain and anxiety measures it has. No inference here; design-based estimates
live in the survey core.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.data.schema import column_specs, is_measured

# the schema groups of the measures the claims are about
MEASURE_GROUPS = ("pain", "anxiety", "distress", "depression")


def sample_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Sample size and design facts of a tidy frame, as a two-column table (quantity, value)."""
    rows: list[tuple[str, object]] = [("rows", len(df))]
    if "respondent_id" in df:
        rows.append(("respondents", int(df["respondent_id"].nunique())))
    if "survey_year" in df:
        years = sorted(int(y) for y in df["survey_year"].dropna().unique())
        rows.append(("survey years", ", ".join(map(str, years)) or "–"))
    if "wave" in df:
        rows.append(("waves", int(df["wave"].nunique())))
    if "stratum" in df:
        rows.append(("strata", int(df["stratum"].nunique())))
    if "psu" in df:
        # PSU labels may repeat across strata: count (stratum, psu) pairs
        keys = [c for c in ("stratum", "psu") if c in df]
        rows.append(("PSUs", len(df[keys].drop_duplicates())))
    rows.append(("columns", df.shape[1]))
    return pd.DataFrame(rows, columns=["quantity", "value"]).astype({"value": "string"})


def weight_summary(df: pd.DataFrame, weight: str = "weight") -> pd.DataFrame:
    """Distribution of the survey weights and the design effect due to unequal weighting (Kish)."""
    if weight not in df:
        raise KeyError(f"column {weight!r} not in frame (columns: {list(df.columns)})")
    w = df[weight].astype(float).to_numpy()
    w = w[np.isfinite(w)]
    if w.size == 0:
        raise ValueError(f"column {weight!r} has no finite values")
    kish = w.size * np.sum(w**2) / np.sum(w) ** 2
    stats = {
        "n": w.size,
        "sum of weights": w.sum(),
        "min": w.min(),
        "median": float(np.median(w)),
        "max": w.max(),
        "max / min": w.max() / w.min() if w.min() > 0 else np.nan,
        "coefficient of variation": w.std(ddof=0) / w.mean(),
        "Kish design effect (1 + CV²)": kish,
    }
    return pd.DataFrame({"statistic": list(stats), "value": list(stats.values())})


def missingness_table(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values per column (count and percent), in the frame's column order."""
    n = len(df)
    missing = df.isna().sum()
    return pd.DataFrame(
        {
            "column": missing.index,
            "dtype": [str(df[c].dtype) for c in missing.index],
            "missing": missing.to_numpy(),
            "percent missing": (100.0 * missing / n).round(2).to_numpy() if n else np.nan,
        }
    )


def measures_table(df: pd.DataFrame) -> pd.DataFrame:
    """The pain, anxiety, distress and depression columns a source measures, with what each
    asks (``resources/schema.yaml``): the surveys ask differently (NHIS 2017: low back pain
    and the K6 nervousness item, not the GAD-7), and the later notebooks use these."""
    rows = [
        (name, spec.group, spec.description)
        for name, spec in column_specs().items()
        if spec.group in MEASURE_GROUPS and is_measured(df, name)
    ]
    return pd.DataFrame(rows, columns=["column", "group", "what it measures"])


def histogram(df: pd.DataFrame, column: str, *, weight: str | None = "weight", bins: int = 30):
    """A seaborn histogram of one column (weighted when the weight column is present); returns the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if column not in df:
        raise KeyError(f"column {column!r} not in frame (columns: {list(df.columns)})")
    data = df[[c for c in (column, weight) if c and c in df]].dropna()
    use_weight = bool(weight) and weight in data
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.histplot(data=data, x=column, weights=weight if use_weight else None, bins=bins, ax=ax)
    ax.set_title(
        f"Distribution of {column.replace('_', ' ')}" + (" (weighted)" if use_weight else "")
    )
    ax.set_xlabel(column.replace("_", " "))
    ax.set_ylabel("sum of weights" if use_weight else "respondents")
    fig.tight_layout()
    return fig
