"""The findings contract: what notebooks write and the claims step reads.

No number reaches a verdict by hand: each notebook calls `write_findings` with `Finding`
objects built from its results, and the claims step reads them back with `read_findings`.
A finding names its estimand by a key of the claims registry; `estimand_info` tells an
analysis what the registry expects of that key (claim, measure, null value, the sources that
may speak to it), so the analyses never import the claims engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from analysis.core.io import parse_yaml, write_text_atomic


def _resource_yaml(name: str) -> dict:
    return parse_yaml(resources.files("analysis.resources").joinpath(name).read_text())


def _declared_sources() -> dict[str, bool]:
    """Source name -> counts as evidence, in the order ``resources/sources.yaml`` declares them."""
    return {
        name: bool(spec.get("evidence", True))
        for name, spec in _resource_yaml("sources.yaml")["sources"].items()
    }


_IS_EVIDENCE = _declared_sources()  # read once, at import
SOURCES = tuple(_IS_EVIDENCE)
# synthetic runs validate the pipeline; they are never evidence
EVIDENCE_SOURCES = tuple(name for name, evidence in _IS_EVIDENCE.items() if evidence)


@dataclass(frozen=True)
class EstimandInfo:
    """What the claims registry expects of a finding for one estimand key."""

    key: str
    claim_id: str
    description: str
    measure: str
    null: float | None
    sources: tuple[str, ...]


@lru_cache(maxsize=1)
def estimand_catalogue() -> dict[str, EstimandInfo]:
    """Every estimand key of ``resources/claims.yaml``, as the analyses need to know it.

    The registry's loader (`analysis.claims.registry`) validates the same file in full; a test
    keeps the two readings in agreement.
    """
    out: dict[str, EstimandInfo] = {}
    for claim in _resource_yaml("claims.yaml")["claims"]:
        for e in claim["estimands"]:
            null = e.get("null_value")
            out[e["key"]] = EstimandInfo(
                key=e["key"],
                claim_id=claim["id"],
                description=e["description"],
                measure=e["measure"],
                null=None if null is None else float(null),
                sources=tuple(e["sources"]),
            )
    return out


def estimand_info(key: str) -> EstimandInfo | None:
    """The registry's expectations for ``key``, or None when the registry has no such key."""
    return estimand_catalogue().get(key)


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
    """Write findings as JSON (atomically), to ``findings/<notebook>.json``.

    The file's name says which notebook produced the findings: a finding that does not name
    its notebook is given that name, and one that names another notebook is refused.
    """
    notebook = Path(path).stem
    payload = []
    for f in findings:
        if f.notebook and f.notebook != notebook:
            raise ValueError(
                f"{path}: finding {f.estimand!r} names notebook {f.notebook!r}; "
                f"findings of notebook {f.notebook!r} go to findings/{f.notebook}.json"
            )
        payload.append({**f.to_dict(), "notebook": notebook})
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
