"""What the association results (C1 comorbidity, C3/C7 anxiety and pain) share: their text is
their summary, and their findings carry the registry's measure, the survey design and the
caveats of one source, written the same way for every estimand.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from analysis.core.findings import EstimandInfo, Finding, estimand_info
from analysis.models.design import AssociationError

DESIGN_TEXT = "cross-sectional survey"
SYNTHETIC_CAVEAT = "Synthetic data: validates the pipeline against known truth; not evidence."


def registry_estimand(key: str) -> EstimandInfo:
    """What the claims registry expects of ``key``; an error names a key it does not have."""
    est = estimand_info(key)
    if est is None:
        raise AssociationError(f"associations.yaml: estimand '{key}' is not in the claims registry")
    return est


def base_caveats(source: str) -> list[str]:
    """The caveats of every cross-sectional association from ``source``."""
    out = ["Cross-sectional: co-occurrence, not which came first."]
    if source == "synthetic":
        out.insert(0, SYNTHETIC_CAVEAT)
    return out


@dataclass(frozen=True)
class FindingWriter:
    """Writes one result's findings for one source: the registry's measure, the design, the
    result's caveats and the known truth (synthetic world) filled in the same way."""

    source: str
    notebook: str
    n: int
    caveats: list[str]
    truth: dict[str, float]

    def allowed(self, key: str) -> bool:
        """Whether the registry takes estimand ``key`` from this source."""
        return self.source in registry_estimand(key).sources

    def estimate(
        self,
        key: str,
        claim_id: str,
        label: str,
        estimate: float,
        ci: tuple[float, float],
        *,
        null_value: float | None,
        extra: dict,
        truth_key: str | None = None,
    ) -> Finding:
        """A measured finding of ``key``; its truth is looked up under ``truth_key`` or ``key``."""
        return Finding(
            claim_id=claim_id,
            estimand=key,
            label=label,
            source=self.source,
            estimate=estimate,
            ci_low=ci[0],
            ci_high=ci[1],
            measure=registry_estimand(key).measure,
            null_value=null_value,
            n=self.n,
            design=DESIGN_TEXT,
            caveats=list(self.caveats),
            notebook=self.notebook,
            truth=self.truth.get(truth_key or key),
            extra=extra,
        )

    def not_measured(self, key: str, claim_id: str, column: str) -> Finding:
        """A finding of ``key`` that this source cannot estimate: ``column`` is not measured."""
        est = registry_estimand(key)
        return Finding(
            claim_id=claim_id,
            estimand=key,
            label=f"{key}: not measured in {self.source}",
            source=self.source,
            estimate=None,
            measure=est.measure,
            null_value=est.null,
            design=DESIGN_TEXT,
            measured=False,
            caveats=[f"'{column}' is not measured in source '{self.source}'."],
            notebook=self.notebook,
            extra={"missing_column": column},
        )


class AssociationResult(ABC):
    """Base of the association results: printed as `summary()`; `to_findings` hands a
    `FindingWriter` for the source to the result's own findings."""

    source: str
    n: int

    @abstractmethod
    def summary(self) -> str: ...

    @abstractmethod
    def caveats(self, source: str) -> list[str]:
        """The caveats every measured finding from ``source`` carries."""

    @abstractmethod
    def _findings(self, writer: FindingWriter) -> list[Finding]: ...

    def __str__(self) -> str:
        return self.summary()

    def to_findings(
        self,
        source: str | None = None,
        notebook: str | None = None,
        truth: dict[str, float] | None = None,
    ) -> list[Finding]:
        """The findings with the registry's keys; measured=False where a column is absent.

        An estimand whose registry entry does not list the source (e.g. the weekly-anxiety
        keys are NHIS-only) is shown in the tables but not written as a finding. ``truth``:
        the synthetic world's values by estimand key. ``notebook`` is filled in from the
        findings file's name when the findings are written (`write_findings`).
        """
        source = source or self.source
        writer = FindingWriter(source, notebook or "", self.n, self.caveats(source), truth or {})
        return self._findings(writer)
