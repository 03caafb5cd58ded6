"""Findings of analyses a source cannot run, made from metadata alone.

When a source lacks a column an analysis needs, its findings say so (``measured: False``, a
caveat naming the column) instead of estimating. The analyses give them when they meet such
a source; the build gives the same ones without a kernel for a notebook whose source lacks
every measure it needs (``needs`` in notebooks.yaml). So they are made here, from the
registry and the analyses' specifications, without the statistics stack (statsmodels, scipy)
the analyses import.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from importlib import resources

from analysis.core.findings import Finding, estimand_info
from analysis.core.io import parse_yaml
from analysis.data.nhis.codebook import nhis_codebook

# --------------------------------------------------------------------------- C2: mediation


@dataclass(frozen=True)
class MediationSpec:
    """What C2 estimates, read from ``resources/mediation.yaml`` (follows the claims registry)."""

    claim_id: str
    exposure: str
    exposure_at_least: float | None
    exposure_label: str
    mediator: str
    outcome: str
    outcome_model: str
    interaction: bool
    covariates: tuple[str, ...]
    nie_key: str
    proportion_key: str
    replicates: int
    ci_method: str
    level: float

    def first_unmeasured(self, columns: Collection[str]) -> str | None:
        """The first of mediator, outcome and exposure not among ``columns`` (None: all are)."""
        return next(
            (c for c in (self.mediator, self.outcome, self.exposure) if c not in columns), None
        )


def load_mediation_spec() -> MediationSpec:
    raw = parse_yaml(resources.files("analysis.resources").joinpath("mediation.yaml").read_text())
    exp = raw["exposure"]
    return MediationSpec(
        claim_id=raw["claim_id"],
        exposure=exp["column"],
        exposure_at_least=exp.get("at_least"),
        exposure_label=exp.get("label", exp["column"]),
        mediator=raw["mediator"],
        outcome=raw["outcome"],
        outcome_model=raw["outcome_model"],
        interaction=bool(raw["interaction"]),
        covariates=tuple(raw["covariates"]),
        nie_key=raw["estimands"]["natural_indirect_effect"],
        proportion_key=raw["estimands"]["proportion_mediated"],
        replicates=int(raw["replicates"]),
        ci_method=raw["ci_method"],
        level=float(raw["level"]),
    )


def registry_measure(key: str) -> str | None:
    """The measure the claims registry gives an estimand (None when it has no such key)."""
    est = estimand_info(key)
    return None if est is None else est.measure


def mediation_not_measured(
    source: str,
    *,
    column: str | None = None,
    notebook: str = "",
    spec: MediationSpec | None = None,
) -> list[Finding]:
    """C2 findings for a source that does not measure the mediator: measured=False, no estimate.

    The claims step then judges C2 'insufficient evidence' from this source.
    """
    spec = spec or load_mediation_spec()
    column = column or spec.mediator
    why = f"'{column}' is not measured in source '{source}'; the mediation cannot be estimated."
    out = []
    for key, measure, null in (
        (spec.nie_key, registry_measure(spec.nie_key) or "mean difference", 0.0),
        (spec.proportion_key, registry_measure(spec.proportion_key) or "proportion", None),
    ):
        out.append(
            Finding(
                claim_id=spec.claim_id,
                estimand=key,
                label=f"{key}: not measured in {source}",
                source=source,
                estimate=None,
                measure=measure,
                null_value=null,
                design="cross-sectional survey",
                measured=False,
                caveats=[why],
                notebook=notebook,
                extra={"missing_column": column},
            )
        )
    return out


def mediation_findings_without_measures(
    source: str, measured: Collection[str], *, notebook: str = "", years: list[int] | None = None
) -> list[Finding]:
    """The C2 findings of a source whose codebook lacks a column the mediation needs, as
    `mediation.c2_findings` gives them, without its data (the build writes them in place of a run)."""
    spec = load_mediation_spec()
    missing = spec.first_unmeasured(measured)
    if missing is None:
        raise ValueError(f"source {source!r} measures every column the C2 mediation needs")
    return mediation_not_measured(source, column=missing, notebook=notebook, spec=spec)


# --------------------------------------------------------------------------- C4: anxiety medication

DRUG_COLUMNS = ("benzodiazepine_use", "anxiety_medication")
C4_ESTIMAND = "or_back_pain_anxiety_medication"
C4_CLAIM = "C4"


def medication_not_measured(source: str, why: str = "", *, notebook: str = "") -> list[Finding]:
    """The C4 finding of a source measuring none of `DRUG_COLUMNS` ([] when the registry does
    not take C4's key from that source); ``why`` is the codebook's reason, if any."""
    est = estimand_info(C4_ESTIMAND)
    if est is None or (est.sources and source not in est.sources):
        return []
    return [
        Finding(
            claim_id=C4_CLAIM,
            estimand=C4_ESTIMAND,
            label=f"{C4_ESTIMAND}: not measured in {source}",
            source=source,
            estimate=None,
            measure=est.measure,
            null_value=1.0,
            design="cross-sectional survey",
            measured=False,
            caveats=[f"None of {list(DRUG_COLUMNS)} is measured in '{source}'."]
            + ([f"{why}."] if why else []),
            notebook=notebook,
        )
    ]


def medication_findings_without_measures(
    source: str, measured: Collection[str], *, notebook: str = "", years: list[int] | None = None
) -> list[Finding]:
    """The C4 finding of a source whose codebook has no drug column, as
    `benzodiazepines.benzodiazepines_and_pain` gives it, without its data (the build writes it
    in place of a run)."""
    if any(col in measured for col in DRUG_COLUMNS):
        raise ValueError(f"source {source!r} measures one of {list(DRUG_COLUMNS)}")
    return medication_not_measured(source, no_drug_item_reason_in(source, years), notebook=notebook)


def no_drug_item_reason_in(source: str, years: Iterable[int] | None) -> str:
    """Why NHIS has no anxiety-medication item in these survey years, in the codebook's words
    ('' for other sources, or when the codebook gives no reason)."""
    if source != "nhis" or not years:
        return ""
    book = nhis_codebook()
    covered = sorted(int(y) for y in set(years) if int(y) in book.years)
    reasons = {y: book.column_status("anxiety_medication", y) for y in covered}
    missing = {y: reason for y, (status, reason) in reasons.items() if status is None}
    if not missing:
        return ""
    return "; ".join(f"NHIS {y} has no anxiety-medication item ({r})" for y, r in missing.items())
