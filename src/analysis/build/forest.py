"""One small forest plot per claim card, as inline SVG made in Python (no plotting library:
the index stays quick to build and the figure is text in the page).

Findings that share a scale share an axis: ratios on a log axis, differences, proportions and
levels each on their own. Each row is numbered like the card's evidence list. The no-effect
line is dashed, the registry's meaningful size dotted; the marker shape says the source.
Synthetic findings are never drawn: they are not evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from analysis.claims.plain import SOURCE_WORDS, number

RATIO_MEASURES = ("odds ratio", "prevalence ratio", "risk ratio", "hazard ratio")
DIFFERENCE_MEASURES = ("mean difference", "standardised mean difference")
PANEL_TITLES = {
    "ratio": "Ratios (log scale; 1 = no difference)",
    "difference": "Differences (0 = no difference)",
    "proportion": "Proportions (%)",
}
SOURCE_STYLE = {  # marker shape and colour per source; colours pass 3:1 against white
    "nhis": ("circle", "#1f5fa8"),
    "help": ("square", "#9a4a00"),
    "published": ("diamond", "#3d3d3d"),
}
WIDTH, LEFT, RIGHT, ROW, HEAD = 640, 40, 20, 22, 22


def panel_of(measure: str) -> str:
    """Which shared axis a measure is drawn on."""
    if measure in RATIO_MEASURES:
        return "ratio"
    if measure in DIFFERENCE_MEASURES:
        return "difference"
    return measure


def plotted_rows(findings: Sequence[Mapping]) -> list[dict]:
    """The findings a plot can show (evidence with a number), numbered from 1 in list order."""
    rows = []
    for i, f in enumerate(findings, start=1):
        if f.get("source") == "synthetic" or f.get("estimate") is None:
            continue
        if f.get("measure") == "statement":
            continue
        rows.append({**f, "number": i, "panel": panel_of(f.get("measure") or "")})
    return rows


def _transform(panel: str):
    if panel == "ratio":
        return lambda x: math.log(max(x, 1e-6))
    if panel == "proportion":
        return lambda x: 100 * x
    return lambda x: x


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}"/>'
    if shape == "diamond":
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>'


def _ticks(panel: str, lo: float, hi: float) -> list[float]:
    """Round tick values within [lo, hi] on the panel's own scale (before the transform)."""
    if panel == "ratio":
        cands = [0.1, 0.2, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50]
        return [t for t in cands if lo <= math.log(t) <= hi]
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 2)) if span > 0 else 1
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-9 and len(ticks) < 8:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _panel_svg(panel: str, rows: list[dict], meaningful: Mapping, top: float) -> tuple[str, float]:
    tr = _transform(panel)
    values = []
    for r in rows:
        for k in ("estimate", "ci_low", "ci_high"):
            if r.get(k) is not None:
                values.append(tr(r[k]))
        for ref in (r.get("null_value"), meaningful.get(r.get("estimand"))):
            if ref is not None:
                values.append(tr(ref))
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(v: float) -> float:
        return LEFT + (v - lo) / (hi - lo) * plot_w

    parts = [
        f'<text x="0" y="{top + 14:.0f}" class="fp-title">{escape(PANEL_TITLES.get(panel, panel.capitalize()))}</text>'
    ]
    y0 = top + HEAD
    y1 = y0 + ROW * len(rows)
    refs = {(r.get("null_value"), "null") for r in rows if r.get("null_value") is not None}
    refs |= {
        (meaningful[r["estimand"]], "meaningful")
        for r in rows
        if meaningful.get(r.get("estimand")) is not None
    }
    for value, kind in sorted(refs, key=lambda t: (t[1], t[0])):
        x = x_of(tr(value))
        dash = "5 3" if kind == "null" else "2 3"
        parts.append(
            f'<line x1="{x:.1f}" y1="{y0:.0f}" x2="{x:.1f}" y2="{y1:.0f}" stroke="#555" stroke-dasharray="{dash}"/>'
        )
    for i, r in enumerate(rows):
        y = y0 + ROW * i + ROW / 2
        shape, colour = SOURCE_STYLE.get(r.get("source"), ("circle", "#3d3d3d"))
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" class="fp-num">{r["number"]}</text>'
        )
        if r.get("ci_low") is not None and r.get("ci_high") is not None:
            parts.append(
                f'<line x1="{x_of(tr(r["ci_low"])):.1f}" y1="{y:.1f}" x2="{x_of(tr(r["ci_high"])):.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        parts.append(_marker(shape, x_of(tr(r["estimate"])), y, colour))
    parts.append(
        f'<line x1="{LEFT}" y1="{y1:.0f}" x2="{WIDTH - RIGHT}" y2="{y1:.0f}" stroke="#888"/>'
    )
    for t in _ticks(panel, lo, hi):
        x = x_of(math.log(t) if panel == "ratio" else t)
        label = number(t) if panel != "proportion" else f"{t:g}%"
        parts.append(
            f'<text x="{x:.1f}" y="{y1 + 14:.0f}" text-anchor="middle" class="fp-tick">{label}</text>'
        )
    return "".join(parts), y1 + 22


def alt_text(claim_id: str, rows: Sequence[Mapping]) -> str:
    """What the plot shows, in numbers, for readers who cannot see it."""
    items = []
    for r in rows:
        ci = ""
        if r.get("ci_low") is not None and r.get("ci_high") is not None:
            ci = f" (95% CI {number(r['ci_low'])} to {number(r['ci_high'])})"
        src = SOURCE_WORDS.get(r.get("source"), r.get("source"))
        items.append(f"{r['number']}: {r['measure']} {number(r['estimate'])}{ci}, {src}")
    return f"Forest plot of the evidence for {claim_id}. " + "; ".join(items) + "."


def forest_svg(
    claim_id: str, findings: Sequence[Mapping], meaningful: Mapping[str, float]
) -> str | None:
    """Inline SVG of a claim's findings (None when none has a number to draw).

    ``meaningful`` maps estimand keys to the registry's smallest size that matters."""
    rows = plotted_rows(findings)
    if not rows:
        return None
    panels: dict[str, list[dict]] = {}
    for r in rows:
        panels.setdefault(r["panel"], []).append(r)
    body, y = [], 0.0
    for panel, panel_rows in panels.items():
        svg, y = _panel_svg(panel, panel_rows, meaningful, y)
        body.append(svg)
    legend_y = y + 6
    legend, x = [], 0
    for source in dict.fromkeys(r["source"] for r in rows):
        shape, colour = SOURCE_STYLE.get(source, ("circle", "#3d3d3d"))
        legend.append(_marker(shape, x + 5, legend_y, colour))
        word = SOURCE_WORDS.get(source, source)
        legend.append(
            f'<text x="{x + 14}" y="{legend_y + 4:.0f}" class="fp-tick">{escape(word)}</text>'
        )
        x += 30 + 7 * len(word)
    legend.append(
        f'<text x="0" y="{legend_y + 22:.0f}" class="fp-tick">dashed line: no effect · dotted line: the smallest size that matters</text>'
    )
    height = legend_y + 30
    alt = escape(alt_text(claim_id, rows))
    return (
        f'<svg class="forest" role="img" aria-label="{alt}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{alt}</title>{"".join(body)}{"".join(legend)}</svg>'
    )
