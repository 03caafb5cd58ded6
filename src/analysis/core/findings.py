"""Machine-readable findings: what notebooks write and the claims step reads.

No number reaches a verdict by hand: each notebook calls `write_findings` with
`Finding` objects built from its results, and the claims registry reads them
back with `read_findings`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from analysis.core.io import write_text_atomic

SOURCES = ("synthetic", "help", "nhis", "published")
EVIDENCE_SOURCES = ("help", "nhis", "published")  # synthetic runs validate; they are never evidence
VERDICTS = (
    "supported",
    "partly supported",
    "not supported",
    "contradicted",
    "insufficient evidence",
)


@dataclass
class Finding:
    """One estimate that speaks to one claim, with its interval, source and caveats."""

    claim_id: str  # "C1" .. "C8"
    estimand: str  # stable machine key, e.g. "prevalence_ratio_gad7_ge10_chronic_pain"
    label: str  # human-readable, e.g. "GAD-7 >= 10: chronic back pain vs none (PR)"
    source: str  # one of SOURCES
    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    measure: str = ""  # "prevalence ratio", "odds ratio", "percent", "mean difference", ...
    null_value: float | None = None  # 1 for ratios, 0 for differences, None for levels
    n: int | None = None
    design: str = (
        ""  # "cross-sectional survey", "meta-analysis of RCTs", "within-person cohort", ...
    )
    measured: bool = True  # False: the source does not measure what the estimand needs
    caveats: list[str] = field(default_factory=list)
    notebook: str = ""  # notebook that produced it, e.g. "02_comorbidity"
    truth: float | None = None  # synthetic world only: the true value of the estimand
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Finding.source must be one of {SOURCES}, got {self.source!r}")

    @property
    def is_evidence(self) -> bool:
        return self.source in EVIDENCE_SOURCES

    def excludes_null(self) -> bool | None:
        """True when the CI excludes the null value, None when that cannot be judged."""
        if self.null_value is None or self.ci_low is None or self.ci_high is None:
            return None
        return not (self.ci_low <= self.null_value <= self.ci_high)

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        return cls(**d)


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_findings(findings: Iterable[Finding], path: str | Path) -> Path:
    """Write findings as JSON (atomically)."""
    payload = [f.to_dict() for f in findings]
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_findings(paths: Iterable[str | Path]) -> list[Finding]:
    """Read findings from one or more JSON files written by `write_findings`."""
    out: list[Finding] = []
    for p in paths:
        p = Path(p)
        try:
            rows = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not a findings JSON file ({exc})") from None
        for i, row in enumerate(rows):
            try:
                out.append(Finding.from_dict(row))
            except TypeError as exc:
                raise ValueError(f"{p}: finding #{i} has unexpected fields ({exc})") from None
    return out
