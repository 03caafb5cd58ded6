"""Shared by the runner and browser tests: the fixture notebooks and a stand-in claims hook."""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
PLAN = FIXTURES / "notebooks.yaml"


def fake_verdicts(findings):
    """A stand-in for analysis.claims.verdicts.evaluate_claims: one verdict per claim with findings."""
    by_claim: dict[str, list] = {}
    for f in findings:
        by_claim.setdefault(f.claim_id, []).append(f)
    out = []
    for claim_id, fs in sorted(by_claim.items()):
        key = next(f for f in fs if f.source != "synthetic")
        out.append(
            {
                "claim_id": claim_id,
                "sentence": f"Sentence of {claim_id} as the article puts it.",
                "verdict": "partly supported",
                "key_finding": {
                    "label": key.label,
                    "estimate": key.estimate,
                    "ci_low": key.ci_low,
                    "ci_high": key.ci_high,
                    "measure": key.measure,
                    "source": key.source,
                },
                "sources": sorted({f.source for f in fs}),
                "caveats": ["cross-sectional", "residual confounding"],
                "notebook": key.notebook,
            }
        )
    return out


# what differs between two builds of the same pages: build times and durations
_PAGE_MASKS = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
    (re.compile(r'(class="[^"]*\bduration\b[^"]*">)[^<]*'), r"\1<duration>"),
)


def masked_pages(reports: Path) -> dict[str, str]:
    """Every HTML page under ``reports`` by relative path, build times and durations masked."""
    pages = {}
    for page in sorted(reports.rglob("*.html")):
        text = page.read_text()
        for pattern, replacement in _PAGE_MASKS:
            text = pattern.sub(replacement, text)
        pages[page.relative_to(reports).as_posix()] = text
    return pages
