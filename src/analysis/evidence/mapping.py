"""Bridge from published findings (study/pool level) to claims-registry estimands.

``analysis.evidence.studies`` keys its findings by study or pool group (``study_<id>``,
``pooled_<group>``); the claims registry (``resources/claims.yaml``) judges claim-level
estimands. Which finding measures which estimand is data, in
``resources/evidence_estimands.yaml``, decided on what each finding measures and
recorded with a reason. This module reads that mapping, checks it against the studies
and the registry, and builds registry-keyed ``Finding`` objects: measure translated,
scale rescaled and sign flipped as the mapping says, and the mapping's reason (and a
proxy caveat) attached. It never changes a rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

import pandas as pd

from analysis.core.findings import EstimandInfo, Finding, estimand_catalogue
from analysis.core.io import parse_yaml
from analysis.evidence.meta import bucher, se_from_ci
from analysis.evidence.studies import evidence_findings, pool, study_finding

__all__ = ["mapping", "validate_mapping", "registry_findings", "mapping_table"]

PROXY_CAVEAT = "Proxy outcome: {what} stands in for the estimand's outcome; see the mapping reason."
INDIRECT_CAVEAT = (
    "Indirect comparison (Bucher): {alt} and {ref} were each trialled against their own "
    "control, in different people; the difference assumes those trials are alike in everything "
    "but the treatment, which no trial checked head to head."
)


class MappingError(ValueError):
    """evidence_estimands.yaml disagrees with studies.csv or the claims registry."""


@lru_cache(maxsize=1)
def mapping() -> dict:
    """The mapping resource (measures table, estimand scales, mappings, unmapped reasons)."""
    text = resources.files("analysis.resources").joinpath("evidence_estimands.yaml").read_text()
    return parse_yaml(text)


def _source_key(m: dict) -> str:
    if "pool_group" in m:
        return f"pooled_{m['pool_group']}"
    if "study" in m:
        return f"study_{m['study']}"
    return f"derived_{m['derive']}"


def validate_mapping(
    studies: pd.DataFrame,
    estimands: Mapping[str, EstimandInfo] | None = None,
    spec: dict | None = None,
) -> list[str]:
    """Every problem with the mapping, as messages naming the entry and field (empty = valid).

    Checks: each registry key exists and lists 'published' as a source; each study id or
    pool group exists, is verified (pool members are by construction) and its measure
    translates to the registry's measure; every verified row and pool group is either
    mapped (directly, through its pool, or as a derivation input) or has an unmapped reason.
    """
    known = estimand_catalogue() if estimands is None else estimands
    spec = spec or mapping()
    where = "evidence_estimands.yaml"
    problems: list[str] = []
    measures = spec.get("measures", {})
    by_id = studies.set_index("study_id")
    groups = set(studies["pool_group"].dropna())
    used: set[str] = set()
    for k in spec.get("estimand_scales", {}):
        if k not in known:
            problems.append(f"{where}: estimand_scales: {k!r} is not a registry estimand")
    for i, m in enumerate(spec.get("mappings", []), start=1):
        at = f"{where}: mappings[{i}] ({m.get('estimand')!r})"
        e = known.get(m.get("estimand"))
        if e is None:
            problems.append(f"{at}: field 'estimand' is not a registry estimand")
            continue
        if "published" not in e.sources:
            problems.append(f"{at}: the registry does not list 'published' for this estimand")
        if m.get("match") not in ("direct", "proxy"):
            problems.append(f"{at}: field 'match' must be 'direct' or 'proxy'")
        if not str(m.get("reason", "")).strip():
            problems.append(f"{at}: field 'reason' is required")
        if "derive" in m:
            if m["derive"] != "percent_reduction":
                problems.append(f"{at}: field 'derive' must be 'percent_reduction'")
                continue
            src_measure = "percent_reduction"
            for fld in ("baseline", "followup"):
                sid = m.get(fld)
                if sid not in by_id.index:
                    problems.append(f"{at}: field {fld!r}: unknown study id {sid!r}")
                    continue
                if by_id.loc[sid, "verified"] != "yes":
                    problems.append(f"{at}: field {fld!r}: {sid!r} is not verified")
                if by_id.loc[sid, "effect_measure"] != "mean score":
                    problems.append(f"{at}: field {fld!r}: {sid!r} is not a 'mean score' row")
                used.add(sid)
        elif "pool_group" in m:
            g = m["pool_group"]
            if g not in groups:
                problems.append(f"{at}: field 'pool_group': no studies use group {g!r}")
                continue
            src_measure = str(studies.loc[studies["pool_group"] == g, "effect_measure"].iloc[0])
            used.add(g)
        elif "study" in m:
            sid = m["study"]
            if sid not in by_id.index:
                problems.append(f"{at}: field 'study': unknown study id {sid!r}")
                continue
            if by_id.loc[sid, "verified"] != "yes":
                problems.append(f"{at}: field 'study': {sid!r} is not verified")
            src_measure = str(by_id.loc[sid, "effect_measure"])
            used.add(sid)
        else:
            problems.append(f"{at}: give one of 'study', 'pool_group' or 'derive'")
            continue
        translated = measures.get(src_measure)
        if translated is None:
            problems.append(f"{at}: measure {src_measure!r} has no entry under 'measures'")
        elif translated.lower() != e.measure.lower():
            problems.append(
                f"{at}: measure {src_measure!r} translates to {translated!r}, the registry "
                f"expects {e.measure!r}"
            )
        if "scale" in m:
            if m["estimand"] not in spec.get("estimand_scales", {}):
                problems.append(f"{at}: field 'scale' given but the estimand has no scale")
            s = m["scale"]
            if not (isinstance(s, dict) and s.get("max", 0) > s.get("min", 0)):
                problems.append(f"{at}: field 'scale' needs min < max")
        if m.get("sign", 1) not in (1, -1):
            problems.append(f"{at}: field 'sign' must be 1 or -1")
    mapped_keys = [m.get("estimand") for m in spec.get("mappings", [])]
    for i, ind in enumerate(spec.get("indirect", []) or [], start=1):
        at = f"{where}: indirect[{i}] ({ind.get('estimand')!r})"
        e = known.get(ind.get("estimand"))
        if e is None or "published" not in e.sources:
            problems.append(f"{at}: field 'estimand' is not a published registry estimand")
        for fld in ("alternative", "reference"):
            k = ind.get(fld)
            if k not in known or known[k].null is None:
                problems.append(f"{at}: field {fld!r}: {k!r} is not a registry difference")
            elif e is not None and known[k].measure != e.measure:
                problems.append(f"{at}: field {fld!r}: {k!r} is a {known[k].measure}")
            elif mapped_keys.count(k) > 1:
                problems.append(f"{at}: field {fld!r}: {k!r} is mapped more than once")
        if not str(ind.get("reason", "")).strip():
            problems.append(f"{at}: field 'reason' is required")
    unmapped = spec.get("unmapped", {}) or {}
    for k in unmapped:
        if k not in by_id.index and k not in groups:
            problems.append(f"{where}: unmapped: {k!r} is neither a study id nor a pool group")
    verified = set(studies.loc[studies["verified"] == "yes", "study_id"])
    for k in sorted((verified | groups) - used - set(unmapped)):
        in_used_pool = k in by_id.index and by_id.loc[k, "pool_group"] in used
        if not in_used_pool:
            problems.append(f"{where}: {k!r} is neither mapped nor listed under 'unmapped'")
    return problems


def _rescale(value: float | None, m: dict, spec: dict, difference: bool) -> float | None:
    if value is None:
        return None
    sign = m.get("sign", 1)
    if "scale" not in m:
        return sign * value + 0.0
    src, dst = m["scale"], spec["estimand_scales"][m["estimand"]]
    factor = (dst["max"] - dst["min"]) / (src["max"] - src["min"])
    if difference:
        return sign * value * factor + 0.0  # + 0.0 turns -0.0 into 0.0
    return dst["min"] + (value - src["min"]) * factor


def registry_findings(
    studies: pd.DataFrame,
    context: list[Finding] | None = None,
    estimands: Mapping[str, EstimandInfo] | None = None,
    include_proxies: bool = True,
) -> list[Finding]:
    """Registry-keyed findings built from the study/pool findings as the mapping says.

    ``context`` is ``evidence_findings(studies)`` (computed when omitted). Raises
    ``MappingError`` if the mapping is invalid. ``include_proxies=False`` keeps only
    direct matches (a sensitivity check)."""
    known = estimand_catalogue() if estimands is None else estimands
    spec = mapping()
    problems = validate_mapping(studies, known, spec)
    if problems:
        raise MappingError("\n".join(problems))
    if context is None:
        context = evidence_findings(studies, pool(studies))
    by_key = {f.estimand: f for f in context}
    out: list[Finding] = []
    for m in spec["mappings"]:
        if m["match"] == "proxy" and not include_proxies:
            continue
        e = known[m["estimand"]]
        reason = " ".join(str(m["reason"]).split())
        caveats = [f"Mapped to {e.key} ({m['match']} match): {reason}"]
        if "derive" in m:
            b, f = (study_finding(studies, m[k]) for k in ("baseline", "followup"))
            est = 100.0 * (b.estimate - f.estimate) / b.estimate
            out.append(
                Finding(
                    claim_id=e.claim_id,
                    estimand=e.key,
                    label=f"{e.description} [{b.estimate:g} at baseline -> {f.estimate:g}]",
                    source="published",
                    estimate=est,
                    measure=e.measure,
                    null_value=e.null,
                    n=b.n,
                    design=b.design,
                    caveats=caveats
                    + [
                        "No CI: the two pooled levels share cohorts and their covariance is "
                        "not reported."
                    ],
                    extra={
                        "mapped_from": [b.estimand, f.estimand],
                        "match": m["match"],
                        "derive": m["derive"],
                        "baseline": b.estimate,
                        "followup": f.estimate,
                    },
                )
            )
            continue
        key = _source_key(m)
        # a pooled row mapped on its own has no study-level finding in the context list
        src = by_key[key] if key in by_key else study_finding(studies, m["study"])
        difference = e.null is not None
        est, lo, hi = (
            _rescale(v, m, spec, difference) for v in (src.estimate, src.ci_low, src.ci_high)
        )
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        if m["match"] == "proxy":
            caveats.append(PROXY_CAVEAT.format(what=f"'{src.label}'"))
        out.append(
            Finding(
                claim_id=e.claim_id,
                estimand=e.key,
                label=f"{src.label} -> {e.key}",
                source="published",
                estimate=est,
                ci_low=lo,
                ci_high=hi,
                measure=e.measure,
                null_value=e.null,
                n=src.n,
                design=src.design,
                caveats=caveats + [c for c in src.caveats if c not in caveats],
                extra={
                    "mapped_from": src.estimand,
                    "match": m["match"],
                    "scale": m.get("scale"),
                    "estimand_scale": spec.get("estimand_scales", {}).get(e.key),
                    "sign": m.get("sign", 1),
                    "source_estimate": src.estimate,
                    "source_ci_low": src.ci_low,
                    "source_ci_high": src.ci_high,
                    "source_measure": src.measure,
                    **{k: v for k, v in src.extra.items() if k != "direction"},
                },
            )
        )
    out += indirect_findings(out, known, spec)
    return out + uncurated_findings(out, known)


def uncurated_findings(mapped: list[Finding], known: Mapping[str, EstimandInfo]) -> list[Finding]:
    """A not-measured finding for every estimand the registry takes from published evidence but
    no verified study measures yet: the claims step then lists it as a gap by name."""
    have = {f.estimand for f in mapped}
    return [
        Finding(
            claim_id=e.claim_id,
            estimand=e.key,
            label=f"{e.key}: no verified published study curated yet",
            source="published",
            estimate=None,
            measure=e.measure,
            null_value=e.null,
            measured=False,
            caveats=["No verified published study measures this estimand yet (a curation gap)."],
        )
        for e in known.values()
        if e.sources == ("published",) and e.key not in have
    ]


def indirect_findings(
    mapped: list[Finding], known: Mapping[str, EstimandInfo], spec: dict
) -> list[Finding]:
    """The mapping's indirect comparisons (``indirect:``): each alternative against the
    reference through their controls (Bucher), from the registry-keyed findings above. An
    entry whose alternative or reference has no finding with a CI yields nothing (a gap)."""
    by_key = {f.estimand: f for f in mapped if f.ci_low is not None and f.ci_high is not None}
    out = []
    for ind in spec.get("indirect", []) or []:
        alt, ref = by_key.get(ind["alternative"]), by_key.get(ind["reference"])
        if alt is None or ref is None:
            continue
        e = known[ind["estimand"]]
        ic = bucher(
            alt.estimate,
            se_from_ci(alt.ci_low, alt.ci_high),
            ref.estimate,
            se_from_ci(ref.ci_low, ref.ci_high),
        )
        proxy = any(f.extra.get("match") == "proxy" for f in (alt, ref))
        caveats = [
            f"Mapped to {e.key} (indirect comparison): {' '.join(str(ind['reason']).split())}",
            INDIRECT_CAVEAT.format(alt=alt.estimand, ref=ref.estimand),
        ]
        caveats += [c for f in (alt, ref) for c in f.caveats if c.startswith("Proxy outcome")]
        out.append(
            Finding(
                claim_id=e.claim_id,
                estimand=e.key,
                label=f"{alt.estimand} minus {ref.estimand} (indirect, Bucher)",
                source="published",
                estimate=ic.estimate,
                ci_low=ic.ci_low,
                ci_high=ic.ci_high,
                measure=e.measure,
                null_value=e.null,
                design=f"indirect comparison of {alt.design} and {ref.design}",
                caveats=caveats,
                extra={
                    "comparison": "indirect",
                    "match": "proxy" if proxy else "direct",
                    "alternative": alt.estimand,
                    "reference": ref.estimand,
                    "se": ic.se,
                },
            )
        )
    return out


def mapping_table(studies: pd.DataFrame) -> pd.DataFrame:
    """One row per verified row or pool group: the registry estimand it maps to (or none), the
    match kind and the reason, for display in the report."""
    spec = mapping()
    rows = []
    for m in spec["mappings"]:
        src = m.get("study") or m.get("pool_group") or f"{m['baseline']} + {m['followup']}"
        rows.append(
            {
                "source": src,
                "registry_estimand": m["estimand"],
                "match": m["match"],
                "reason": " ".join(str(m["reason"]).split()),
            }
        )
    for k, why in (spec.get("unmapped") or {}).items():
        rows.append(
            {
                "source": k,
                "registry_estimand": None,
                "match": "unmapped",
                "reason": " ".join(str(why).split()),
            }
        )
    return pd.DataFrame(rows)
