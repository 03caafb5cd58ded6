"""The synthetic world's known truth beside the estimates of notebooks 02-05.

``load_spec`` is imported here only because `analysis.data.synthetic.truth` reads the
association definitions as ``associations.load_spec``; it lives in `design`.
"""

from __future__ import annotations

import pandas as pd

from analysis.models.design import load_spec

__all__ = ["estimates_vs_truth", "load_spec", "truth_of"]


def estimates_vs_truth(findings) -> pd.DataFrame:
    """Estimate, CI and the known truth (synthetic world) of each measured finding."""
    rows = [
        {
            "estimand": f.estimand,
            "label": f.label,
            "estimate": f.estimate,
            "ci_low": f.ci_low,
            "ci_high": f.ci_high,
            "truth": f.truth,
            "covered": None
            if f.truth is None or f.ci_low is None
            else bool(f.ci_low <= f.truth <= f.ci_high),
        }
        for f in findings
        if f.measured
    ]
    return pd.DataFrame(rows)


def truth_of(df: pd.DataFrame) -> dict[str, float]:
    """The synthetic world's true values carried by the frame (``df.attrs['truth']``), if any.

    The attribute is a dict or a callable returning one (`synth.LazyTruth`: computed on first use).
    """
    truth = df.attrs.get("truth") if hasattr(df, "attrs") else None
    if callable(truth):
        truth = truth()
    return dict(truth) if truth else {}
