"""Sentences that read the published evidence aloud, with every number taken from the data.

Notebook 06 shows these instead of prose typed by hand, so a new or corrected study row changes
the words with the numbers, and no sentence says more than its numbers show.
"""

from __future__ import annotations

import pandas as pd

from analysis.evidence.studies import FEW_STUDIES, PooledGroup

BENEFIT = {
    "higher_better": "a positive difference favours the treatment",
    "lower_better": "a negative difference favours the treatment",
}


def _row(studies: pd.DataFrame, study_id: str) -> pd.Series | None:
    hit = studies[(studies["study_id"] == study_id) & (studies["verified"] == "yes")]
    return None if hit.empty else hit.iloc[0]


def pooled_reading(pooled: dict[str, PooledGroup]) -> str:
    """One sentence per pool group: the pooled difference, its CI, what favours the
    treatment, and whether the CI includes no difference; then how many studies there were."""
    lines = []
    for group in pooled.values():
        r = group.reml
        includes = r.ci_low <= 0 <= r.ci_high
        lines.append(
            f"- {group.label}: {r.estimate:.2f} (95% CI {r.ci_low:.2f} to {r.ci_high:.2f}; "
            f"{BENEFIT.get(group.direction, 'see the row for direction')}); the interval "
            + ("includes no difference." if includes else "excludes no difference.")
        )
    few = [g for g in pooled.values() if g.reml.k < FEW_STUDIES]
    if few:
        lines.append(
            f"\n{len(few)} of {len(pooled)} groups pool fewer than {FEW_STUDIES} studies: their "
            "τ² and prediction interval are imprecise."
        )
    return "**Reading the pooled results.**\n\n" + "\n".join(lines)


def course_reading(studies: pd.DataFrame) -> str:
    """The course of acute back pain as the verified rows give it: the fall in mean pain by
    six weeks, and the shares fully recovered at three and twelve months."""
    parts = []
    base = _row(studies, "menezescosta2012_acute_baseline")
    six = _row(studies, "menezescosta2012_acute_6weeks")
    if base is not None and six is not None:
        fall = 100 * (base["estimate"] - six["estimate"]) / base["estimate"]
        parts.append(
            f"mean pain in acute cohorts falls from {base['estimate']:g} to {six['estimate']:g} "
            f"on 0-100 within six weeks, a fall of {fall:.0f}% (Menezes Costa 2012)"
        )
    itz = _row(studies, "itz2013_recovered_3mo")
    if itz is not None:
        parts.append(f"{itz['estimate']:g}% had recovered within three months (Itz 2013)")
    henschke = _row(studies, "henschke2008_recovered_12mo")
    if henschke is not None:
        parts.append(
            f"{henschke['estimate']:g}% were completely recovered at twelve months (Henschke 2008)"
        )
    if not parts:
        return "No verified row describes the course of acute back pain."
    return "In the verified studies, " + "; ".join(parts) + "."
