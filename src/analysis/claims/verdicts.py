"""The claims registry and its verdicts.

The article's claims, their estimands and the decision rules live in
``resources/claims.yaml`` (data, fixed before any data was seen). This module loads and
validates that registry and applies its rules to the findings the notebooks wrote
(``analysis.core.findings``). No number reaches a verdict by hand, and findings from the
synthetic world only validate the pipeline: they never count as evidence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from analysis.core.findings import EVIDENCE_SOURCES, SOURCES, VERDICTS, Finding, read_findings
from analysis.core.io import atomic_path
from analysis.models.evalue import RATIO_MEASURES, evalue

CLAIM_TYPES = ("prevalence", "association", "mediation", "treatment effect", "harm", "course")
CHECK_KINDS = ("directional", "level", "statement", "comparative")
DIRECTIONS = ("greater", "less", "none")
ROLES = ("primary", "context")
COMBINES = ("all", "any")
MEANINGFUL_TESTS = ("estimate", "ci")

SUPPORTED, PARTLY, NOT_SUPPORTED, CONTRADICTED, INSUFFICIENT = VERDICTS
SYNTHETIC_NOTE = (
    "Synthetic findings are validation only: they check the pipeline against a known truth "
    "and never count as evidence."
)


class RegistryError(ValueError):
    """The claims registry is malformed; the message names the claim and the field."""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Estimand:
    key: str
    claim_id: str
    description: str
    measure: str
    null: float | None
    direction: str
    meaningful: float | None
    role: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    kind: str
    estimands: tuple[str, ...] = ()
    meaningful_test: str = "estimate"
    at_least: float | None = None
    contradicted_below: float | None = None
    reference: str | None = None
    alternatives: tuple[str, ...] = ()
    min_alternatives: int = 1

    def keys(self) -> tuple[str, ...]:
        if self.kind == "comparative":
            return (self.reference, *self.alternatives)  # type: ignore[return-value]
        return self.estimands


@dataclass(frozen=True)
class Claim:
    id: str
    sentence: str
    sentence_is_paraphrase: bool
    claim_type: str
    sources: tuple[str, ...]
    estimands: tuple[Estimand, ...]
    combine: str
    checks: tuple[Check, ...]
    caveats: tuple[str, ...]

    def keys(self) -> set[str]:
        """Every estimand key this claim shows: its own and those its checks use."""
        own = {e.key for e in self.estimands}
        return own | {k for c in self.checks for k in c.keys()}


@dataclass(frozen=True)
class Registry:
    claims: tuple[Claim, ...]
    estimands: dict[str, Estimand]
    where: str = "claims.yaml"

    def claim(self, claim_id: str) -> Claim:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise KeyError(f"{self.where}: no claim {claim_id!r}")

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "claim_id": e.claim_id,
                "estimand": e.key,
                "measure": e.measure,
                "null": e.null,
                "direction": e.direction,
                "meaningful": e.meaningful,
                "role": e.role,
                "sources": ", ".join(e.sources),
            }
            for e in self.estimands.values()
        ]
        return pd.DataFrame(rows)


def _err(where: str, claim: str, fld: str, msg: str) -> RegistryError:
    return RegistryError(f"{where}: claim {claim}: field '{fld}': {msg}")


def _req(d: dict, fld: str, where: str, claim: str, kind, pre: str = ""):
    if not isinstance(d, dict) or fld not in d:
        raise _err(where, claim, pre + fld, "missing")
    v = d[fld]
    if not isinstance(v, kind):
        raise _err(where, claim, pre + fld, f"expected {_kind_name(kind)}, got {v!r}")
    return v


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {str: "text", list: "a list", dict: "a mapping", bool: "true/false"}.get(k, "a number")
        for k in kinds
    )


def _num(
    d: dict, fld: str, where: str, claim: str, required: bool = False, pre: str = ""
) -> float | None:
    v = d.get(fld)
    if v is None:
        if required:
            raise _err(where, claim, pre + fld, "missing (a number is required)")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _err(where, claim, pre + fld, f"expected a number, got {v!r}")
    return float(v)


def _choice(d: dict, fld: str, where: str, claim: str, options, default=None, pre="") -> str:
    v = d.get(fld, default)
    if v not in options:
        raise _err(where, claim, pre + fld, f"expected one of {list(options)}, got {v!r}")
    return v


def _str_list(d: dict, fld: str, where: str, claim: str, options=None, pre="") -> tuple[str, ...]:
    v = _req(d, fld, where, claim, list, pre)
    if not v or not all(isinstance(x, str) for x in v):
        raise _err(where, claim, pre + fld, f"expected a non-empty list of text, got {v!r}")
    if options is not None:
        bad = [x for x in v if x not in options]
        if bad:
            raise _err(where, claim, pre + fld, f"unknown {bad}; expected among {list(options)}")
    return tuple(v)


def _parse_estimand(d: dict, where: str, cid: str, i: int) -> Estimand:
    key = _req(d, "key", where, cid, str, f"estimands[{i}].")
    pre = f"estimands[{key}]."
    direction = _choice(d, "direction", where, cid, DIRECTIONS, pre=pre)
    null = _num(d, "null_value", where, cid, pre=pre)
    meaningful = _num(d, "meaningful", where, cid, pre=pre)
    if direction != "none" and null is None:
        raise _err(where, cid, pre + "null_value", f"direction {direction!r} needs a null value")
    if meaningful is not None:
        if direction == "none":
            raise _err(where, cid, pre + "meaningful", "a level estimand has no meaningful size")
        if (direction == "greater" and meaningful <= null) or (
            direction == "less" and meaningful >= null
        ):
            raise _err(
                where,
                cid,
                pre + "meaningful",
                f"{meaningful} is not on the claimed ({direction}) side of the null {null}",
            )
    return Estimand(
        key=key,
        claim_id=cid,
        description=_req(d, "description", where, cid, str, pre),
        measure=_req(d, "measure", where, cid, str, pre),
        null=null,
        direction=direction,
        meaningful=meaningful,
        role=_choice(d, "role", where, cid, ROLES, pre=pre),
        sources=_str_list(d, "sources", where, cid, SOURCES, pre),
    )


def _parse_check(d: dict, where: str, cid: str, i: int) -> Check:
    pre = f"rule.checks[{i}]."
    if not isinstance(d, dict):
        raise _err(where, cid, f"rule.checks[{i}]", f"expected a mapping, got {d!r}")
    kind = _choice(d, "kind", where, cid, CHECK_KINDS, pre=pre)
    if kind == "comparative":
        ref = _req(d, "reference", where, cid, str, pre)
        alts = _str_list(d, "alternatives", where, cid, pre=pre)
        n = d.get("min_alternatives", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(alts):
            raise _err(where, cid, pre + "min_alternatives", f"expected 1..{len(alts)}, got {n!r}")
        return Check(kind=kind, reference=ref, alternatives=alts, min_alternatives=n)
    check = Check(
        kind=kind,
        estimands=_str_list(d, "estimands", where, cid, pre=pre),
        meaningful_test=_choice(
            d, "meaningful_test", where, cid, MEANINGFUL_TESTS, "estimate", pre=pre
        ),
        at_least=_num(d, "at_least", where, cid, required=kind == "level", pre=pre),
        contradicted_below=_num(d, "contradicted_below", where, cid, pre=pre),
    )
    if (
        check.contradicted_below is not None
        and check.at_least is not None
        and check.contradicted_below >= check.at_least
    ):
        raise _err(where, cid, pre + "contradicted_below", "must be below at_least")
    return check


def parse_registry(raw: object, where: str = "claims.yaml") -> Registry:
    """Validate a parsed registry; every error names the claim and the field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        raise RegistryError(f"{where}: expected a mapping with a 'claims' list")
    claims: list[Claim] = []
    estimands: dict[str, Estimand] = {}
    for i, c in enumerate(raw["claims"]):
        cid = c.get("id", f"#{i}") if isinstance(c, dict) else f"#{i}"
        if not isinstance(c, dict):
            raise _err(where, cid, "(claim)", f"expected a mapping, got {c!r}")
        _req(c, "id", where, cid, str)
        if any(x.id == cid for x in claims):
            raise _err(where, cid, "id", "duplicate claim id")
        est_list = _req(c, "estimands", where, cid, list)
        ests = []
        for j, e in enumerate(est_list):
            if not isinstance(e, dict):
                raise _err(where, cid, f"estimands[{j}]", f"expected a mapping, got {e!r}")
            est = _parse_estimand(e, where, cid, j)
            if est.key in estimands:
                raise _err(
                    where,
                    cid,
                    f"estimands[{est.key}].key",
                    f"already defined by claim {estimands[est.key].claim_id}",
                )
            estimands[est.key] = est
            ests.append(est)
        rule = _req(c, "rule", where, cid, dict)
        checks_raw = rule.get("checks")
        if not isinstance(checks_raw, list) or not checks_raw:
            raise _err(where, cid, "rule.checks", "expected a non-empty list of checks")
        caveats = c.get("caveats", [])
        if not isinstance(caveats, list) or not all(isinstance(x, str) for x in caveats):
            raise _err(where, cid, "caveats", f"expected a list of text, got {caveats!r}")
        para = c.get("sentence_is_paraphrase", False)
        if not isinstance(para, bool):
            raise _err(where, cid, "sentence_is_paraphrase", f"expected true/false, got {para!r}")
        claims.append(
            Claim(
                id=cid,
                sentence=_req(c, "sentence", where, cid, str).strip(),
                sentence_is_paraphrase=para,
                claim_type=_choice(c, "claim_type", where, cid, CLAIM_TYPES),
                sources=_str_list(c, "sources", where, cid, EVIDENCE_SOURCES),
                estimands=tuple(ests),
                combine=_choice(rule, "combine", where, cid, COMBINES, "all"),
                checks=tuple(_parse_check(x, where, cid, k) for k, x in enumerate(checks_raw)),
                caveats=tuple(caveats),
            )
        )
    # Cross-references: every key a check uses is defined, and fits the check's kind.
    for claim in claims:
        for k, check in enumerate(claim.checks):
            for key in check.keys():
                est = estimands.get(key)
                fld = f"rule.checks[{k}].{key}"
                if est is None:
                    raise _err(where, claim.id, fld, "no such estimand in the registry")
                if check.kind in ("directional", "comparative") and est.direction == "none":
                    raise _err(where, claim.id, fld, f"a {check.kind} check needs a direction")
                if check.kind == "level" and est.direction != "none":
                    raise _err(where, claim.id, fld, "a level check needs direction: none")
                if check.kind == "statement" and est.measure != "statement":
                    raise _err(where, claim.id, fld, "a statement check needs measure: statement")
    return Registry(claims=tuple(claims), estimands=estimands, where=where)


def load_registry(path: str | Path | None = None) -> Registry:
    """Load and validate ``claims.yaml`` (the packaged one unless a path is given)."""
    if path is None:
        text = resources.files("analysis.resources").joinpath("claims.yaml").read_text()
        where = "analysis/resources/claims.yaml"
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{where}: not valid YAML ({exc})") from None
    return parse_registry(raw, where)


# --------------------------------------------------------------------------- judging


@dataclass
class CheckResult:
    kind: str
    verdict: str
    reason: str
    key: Finding | None = None
    deciding: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(f: Finding) -> str:
    est = "n/a" if f.estimate is None else f"{f.estimate:.3g}"
    ci = "" if f.ci_low is None or f.ci_high is None else f" [{f.ci_low:.3g}, {f.ci_high:.3g}]"
    return f"{f.estimand} = {est}{ci} ({f.source})"


def _has_ci(f: Finding) -> bool:
    return (
        f.estimate is not None
        and f.ci_low is not None
        and f.ci_high is not None
        and all(math.isfinite(x) for x in (f.estimate, f.ci_low, f.ci_high))
    )


def _side(f: Finding, e: Estimand) -> str:
    """'claimed', 'opposite' or 'null' (CI covers the null)."""
    if f.ci_low > e.null:
        side = "greater"
    elif f.ci_high < e.null:
        side = "less"
    else:
        return "null"
    return "claimed" if side == e.direction else "opposite"


def _meaningful(f: Finding, e: Estimand, test: str) -> bool:
    if e.meaningful is None:
        return True
    if test == "estimate":
        v = f.estimate
    else:
        v = f.ci_low if e.direction == "greater" else f.ci_high
    return v >= e.meaningful if e.direction == "greater" else v <= e.meaningful


def _by_priority(fs: Iterable[Finding], order: Sequence[str]) -> list[Finding]:
    rank = {s: i for i, s in enumerate(order)}
    return sorted(fs, key=lambda f: (rank.get(f.source, len(rank)), -(f.n or 0)))


def _directional(check, ev, ests, order) -> CheckResult:
    fs = [f for f in ev if f.estimand in check.estimands]
    judged = [f for f in fs if _has_ci(f)]
    notes = [f"{_fmt(f)} has no CI and was not judged." for f in fs if not _has_ci(f)]
    if not judged:
        return CheckResult(
            "directional",
            INSUFFICIENT,
            "No evidence source reports "
            + (" or ".join(check.estimands) if len(check.estimands) < 3 else "these estimands")
            + " with a confidence interval.",
            notes=notes,
        )
    sides = {id(f): _side(f, ests[f.estimand]) for f in judged}
    opposite = [f for f in judged if sides[id(f)] == "opposite"]
    claimed = [f for f in judged if sides[id(f)] == "claimed"]
    big = [f for f in claimed if _meaningful(f, ests[f.estimand], check.meaningful_test)]
    if opposite:
        return CheckResult(
            "directional",
            CONTRADICTED,
            "CI excludes the null in the direction opposite to the claim: "
            + "; ".join(_fmt(f) for f in opposite)
            + ".",
            _by_priority(opposite, order)[0],
            opposite,
            notes,
        )
    if len(big) == len(judged) and not notes:
        sizes = [
            f"{f.estimand} beyond {ests[f.estimand].meaningful:g}"
            for f in big
            if ests[f.estimand].meaningful is not None
        ]
        return CheckResult(
            "directional",
            SUPPORTED,
            "Every evidence finding excludes the null in the claimed direction"
            + (
                f" with a meaningful size ({'CI limit' if check.meaningful_test == 'ci' else 'estimate'}"
                f" {', '.join(sizes)})"
                if sizes
                else ""
            )
            + ": "
            + "; ".join(_fmt(f) for f in big)
            + ".",
            _by_priority(big, order)[0],
            big,
            notes,
        )
    if claimed:
        small = [f for f in claimed if f not in big]
        why = []
        if len(claimed) < len(judged) or notes:
            why.append(f"{len(claimed)} of {len(fs)} findings exclude the null in the claimed way")
        if small:
            why.append(
                "below the meaningful size: "
                + ", ".join(f"{f.estimand} ({ests[f.estimand].meaningful:g})" for f in small)
            )
        return CheckResult(
            "directional",
            PARTLY,
            "In the claimed direction but "
            + "; ".join(why)
            + ": "
            + "; ".join(_fmt(f) for f in claimed)
            + ".",
            _by_priority(claimed, order)[0],
            claimed,
            notes,
        )
    return CheckResult(
        "directional",
        NOT_SUPPORTED,
        "Every confidence interval includes the null: " + "; ".join(_fmt(f) for f in judged) + ".",
        _by_priority(judged, order)[0],
        judged,
        notes,
    )


def _level(check, ev, order) -> CheckResult:
    fs = [f for f in ev if f.estimand in check.estimands and f.estimate is not None]
    if not fs:
        return CheckResult(
            "level",
            INSUFFICIENT,
            f"No evidence source reports {' or '.join(check.estimands)}.",
        )
    notes = [f"{_fmt(f)} has no CI; judged on its point estimate." for f in fs if not _has_ci(f)]

    def lo(f):
        return f.ci_low if _has_ci(f) else f.estimate

    def hi(f):
        return f.ci_high if _has_ci(f) else f.estimate

    t, c = check.at_least, check.contradicted_below
    if c is not None and any(hi(f) < c for f in fs):
        bad = [f for f in fs if hi(f) < c]
        return CheckResult(
            "level",
            CONTRADICTED,
            f"Below {c:g}, the level that contradicts the claim: "
            + "; ".join(_fmt(f) for f in bad)
            + ".",
            _by_priority(bad, order)[0],
            bad,
            notes,
        )
    if all(lo(f) >= t for f in fs):
        return CheckResult(
            "level",
            SUPPORTED,
            f"Every lower limit is at least {t:g}: " + "; ".join(_fmt(f) for f in fs) + ".",
            _by_priority(fs, order)[0],
            fs,
            notes,
        )
    if all(hi(f) < t for f in fs):
        return CheckResult(
            "level",
            NOT_SUPPORTED,
            f"Every upper limit is below {t:g}: " + "; ".join(_fmt(f) for f in fs) + ".",
            _by_priority(fs, order)[0],
            fs,
            notes,
        )
    return CheckResult(
        "level",
        PARTLY,
        f"Reaches {t:g} only in part (estimate or CI straddles it): "
        + "; ".join(_fmt(f) for f in fs)
        + ".",
        _by_priority(fs, order)[0],
        fs,
        notes,
    )


def _statement(check, ev) -> CheckResult:
    fs = [f for f in ev if f.estimand in check.estimands and f.source == "published"]
    if fs:
        return CheckResult(
            "statement",
            SUPPORTED,
            "Recorded statement: " + "; ".join(f"{f.label} ({f.estimand})" for f in fs) + ".",
            fs[0],
            fs,
        )
    return CheckResult(
        "statement",
        INSUFFICIENT,
        f"No published statement recorded for {', '.join(check.estimands)}.",
    )


def _benefit(fs: list[Finding], e: Estimand) -> bool:
    judged = [f for f in fs if _has_ci(f)]
    sides = [_side(f, e) for f in judged]
    return "claimed" in sides and "opposite" not in sides


def _comparative(check, ev, ests, order) -> CheckResult:
    ref = [f for f in ev if f.estimand == check.reference and _has_ci(f)]
    alts = {k: [f for f in ev if f.estimand == k and _has_ci(f)] for k in check.alternatives}
    measured = {k: v for k, v in alts.items() if v}
    if not ref or not measured:
        missing = "the reference " + check.reference if not ref else "any alternative"
        return CheckResult(
            "comparative", INSUFFICIENT, f"No evidence finding with a CI for {missing}."
        )
    ref_benefit = _benefit(ref, ests[check.reference])
    winners = [k for k, v in measured.items() if _benefit(v, ests[k])]
    win_fs = [f for k in winners for f in measured[k]]
    ref_txt = "; ".join(_fmt(f) for f in ref)
    alt_txt = (
        f"{len(winners)} of {len(measured)} alternatives show benefit"
        + (f" ({', '.join(winners)})" if winners else "")
        + f"; {check.min_alternatives} needed"
    )
    ref_state = "shows" if ref_benefit else "does not show"
    reason = f"{alt_txt}. Reference {ref_state} benefit: {ref_txt}."
    if len(winners) >= check.min_alternatives and not ref_benefit:
        return CheckResult(
            "comparative", SUPPORTED, reason, _by_priority(ref, order)[0], win_fs + ref
        )
    if ref_benefit and not winners:
        return CheckResult("comparative", CONTRADICTED, reason, _by_priority(ref, order)[0], ref)
    if winners:
        return CheckResult("comparative", PARTLY, reason, _by_priority(ref, order)[0], win_fs + ref)
    return CheckResult("comparative", NOT_SUPPORTED, reason, _by_priority(ref, order)[0], ref)


def _combine(results: list[CheckResult], how: str) -> CheckResult:
    verdicts = [r.verdict for r in results]
    if len(results) == 1:
        return results[0]
    if how == "any":
        if CONTRADICTED in verdicts and SUPPORTED not in verdicts:
            pick = CONTRADICTED
        else:
            pick = next(
                v for v in (SUPPORTED, PARTLY, NOT_SUPPORTED, INSUFFICIENT) if v in verdicts
            )
    elif CONTRADICTED in verdicts:
        pick = CONTRADICTED
    elif all(v == SUPPORTED for v in verdicts):
        pick = SUPPORTED
    elif all(v == INSUFFICIENT for v in verdicts):
        pick = INSUFFICIENT
    elif all(v in (NOT_SUPPORTED, INSUFFICIENT) for v in verdicts):
        pick = NOT_SUPPORTED
    else:
        pick = PARTLY
    chosen = next((r for r in results if r.verdict == pick and r.key is not None), None)
    if chosen is None:
        chosen = next((r for r in results if r.key is not None), results[0])
    return CheckResult(
        "combined",
        pick,
        "",
        chosen.key,
        [f for r in results for f in r.deciding],
        [n for r in results for n in r.notes],
    )


# --------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    """One claim's verdict, with the finding that drives it, its sources and caveats."""

    claim_id: str
    sentence: str
    sentence_is_paraphrase: bool
    claim_type: str
    verdict: str
    key_finding: Finding | None
    findings: list[Finding]  # evidence findings for the claim's estimands
    validation_findings: list[Finding]  # synthetic findings: validation only
    sources: list[str]  # evidence sources whose findings were judged
    caveats: list[str]
    rationale: str
    checks: list[dict]
    evalue: dict | None = None

    @property
    def notebook(self) -> str:
        if self.key_finding is not None and self.key_finding.notebook:
            return self.key_finding.notebook
        books = sorted({f.notebook for f in self.findings + self.validation_findings if f.notebook})
        return ", ".join(books)

    def to_dict(self) -> dict:
        return {
            "claim_id": self.claim_id,
            "sentence": self.sentence,
            "sentence_is_paraphrase": self.sentence_is_paraphrase,
            "claim_type": self.claim_type,
            "verdict": self.verdict,
            "key_finding": None if self.key_finding is None else self.key_finding.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "validation_findings": [f.to_dict() for f in self.validation_findings],
            "sources": list(self.sources),
            "caveats": list(self.caveats),
            "notebook": self.notebook,
            "rationale": self.rationale,
            "checks": list(self.checks),
            "evalue": self.evalue,
        }

    def summary(self) -> str:
        k = self.key_finding
        lines = [f"{self.claim_id} [{self.verdict}] {self.sentence}"]
        if k is not None:
            lines.append(f"  key: {k.label or k.estimand}: {_fmt(k)}")
        lines.append(f"  sources: {', '.join(self.sources) or 'none'}")
        lines.append(f"  why: {self.rationale}")
        lines += [f"  caveat: {c}" for c in self.caveats]
        return "\n".join(lines)


class VerdictList(list):
    """A list of `Verdict` with a text `summary()` table and a `to_frame()`."""

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for v in self:
            k = v.key_finding
            rows.append(
                {
                    "claim_id": v.claim_id,
                    "claim_type": v.claim_type,
                    "verdict": v.verdict,
                    "sentence": v.sentence,
                    "key_estimand": None if k is None else k.estimand,
                    "key_label": None if k is None else k.label,
                    "key_source": None if k is None else k.source,
                    "measure": None if k is None else k.measure,
                    "estimate": None if k is None else k.estimate,
                    "ci_low": None if k is None else k.ci_low,
                    "ci_high": None if k is None else k.ci_high,
                    "n": None if k is None else k.n,
                    "evalue_point": None if v.evalue is None else v.evalue["evalue_point"],
                    "evalue_ci": None if v.evalue is None else v.evalue["evalue_ci"],
                    "sources": ", ".join(v.sources),
                    "notebook": v.notebook,
                    "rationale": v.rationale,
                    "caveats": " | ".join(v.caveats),
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        return summary(self)


def summary(verdicts: Iterable[Verdict]) -> str:
    """A fixed-width text table: claim, verdict, key estimate with CI, its source and estimand."""
    head = f"{'claim':<5} {'verdict':<21} {'estimate [95% CI]':<26} {'source':<9} key estimand"
    lines = [head, "-" * (len(head) + 30)]
    for v in verdicts:
        k = v.key_finding
        if k is None:
            est, src, key = "-", "-", "-"
        else:
            est = "n/a" if k.estimate is None else f"{k.estimate:.3g}"
            if _has_ci(k):
                est += f" [{k.ci_low:.3g}, {k.ci_high:.3g}]"
            src, key = k.source, k.estimand
        lines.append(f"{v.claim_id:<5} {v.verdict:<21} {est:<26} {src:<9} {key}")
    lines.append("Synthetic findings are validation only and never count as evidence.")
    return "\n".join(lines)


def _check_measures(findings: Iterable[Finding], reg: Registry) -> None:
    for f in findings:
        e = reg.estimands.get(f.estimand)
        if e is not None and f.measure.strip().lower() != e.measure.lower():
            raise ValueError(
                f"finding {f.estimand!r} (claim {f.claim_id}, source {f.source}, notebook "
                f"{f.notebook or '?'}): field 'measure' is {f.measure!r}, the registry expects "
                f"{e.measure!r}"
            )
        if e is not None and f.measured and f.source not in e.sources:
            raise ValueError(
                f"finding {f.estimand!r} (claim {f.claim_id}, notebook {f.notebook or '?'}): "
                f"field 'source' is {f.source!r}, the registry lists {list(e.sources)} for this "
                "estimand"
            )
        if e is not None and e.null is not None and f.null_value not in (None, e.null):
            raise ValueError(
                f"finding {f.estimand!r} (claim {f.claim_id}, source {f.source}): field "
                f"'null_value' is {f.null_value!r}, the registry expects {e.null!r}"
            )


def _design_caveats(fs: list[Finding], claim: Claim) -> list[str]:
    """Design caveats the claim's own caveats do not already state."""
    out = []
    designs = " ".join(f.design.lower() for f in fs)
    said = " ".join(claim.caveats).lower()
    if "cross-sectional" in designs and "cross-sectional" not in said:
        out.append(
            "Cross-sectional design: the data show association at one time, not cause or order."
        )
    observational = [f for f in fs if f.source in ("nhis", "help")]
    if (
        observational
        and claim.claim_type in ("association", "prevalence", "mediation")
        and "confounding" not in said
    ):
        out.append(
            "Residual confounding: adjusted survey estimates can still reflect unmeasured causes."
        )
    return out


def _evalue_for(f: Finding | None) -> dict | None:
    if f is None or f.source not in ("nhis", "help") or not _has_ci(f):
        return None
    kind = RATIO_MEASURES.get(f.measure.strip().lower())
    if kind not in ("rr", "or"):
        return None
    # Back pain and anxiety are common outcomes (> 15%), so odds ratios use the sqrt rule.
    e = evalue(f.estimate, f.ci_low, f.ci_high, measure=f.measure, rare=False)
    d = e.to_dict()
    d["estimand"] = f.estimand
    return d


def evaluate_claim(
    claim: Claim, findings: Sequence[Finding], reg: Registry, *, as_evidence: bool = False
) -> Verdict:
    """One claim's verdict. ``as_evidence`` judges synthetic findings as if they were
    evidence: only for validating the rule (what it says in a world of known truth)."""
    keys = claim.keys()
    rel = [f for f in findings if f.estimand in keys]

    def counts(f: Finding) -> bool:
        return as_evidence or f.is_evidence

    ev = [f for f in rel if counts(f) and f.measured]
    unmeasured = [f for f in rel if counts(f) and not f.measured]
    synthetic = [] if as_evidence else [f for f in rel if not f.is_evidence]
    order = claim.sources
    results = []
    for check in claim.checks:
        if check.kind == "directional":
            results.append(_directional(check, ev, reg.estimands, order))
        elif check.kind == "level":
            results.append(_level(check, ev, order))
        elif check.kind == "statement":
            results.append(_statement(check, ev))
        else:
            results.append(_comparative(check, ev, reg.estimands, order))
    combined = _combine(results, claim.combine)
    rationale = " ".join(
        (f"Check {i + 1} ({r.kind}): {r.verdict}. " if len(results) > 1 else "") + r.reason
        for i, r in enumerate(results)
    )
    if len(results) > 1:
        rationale += f" Combined ({claim.combine}): {combined.verdict}."
    caveats = list(claim.caveats) + _design_caveats(ev, claim)
    for f in ev:
        caveats += [c for c in f.caveats if c not in caveats]
    caveats += [n for n in combined.notes if n not in caveats]
    if unmeasured:
        srcs = sorted({f.source for f in unmeasured})
        caveats.append(
            f"Not measured by {', '.join(srcs)}: "
            + ", ".join(sorted({f.estimand for f in unmeasured}))
            + "."
        )
    if synthetic:
        caveats.append(SYNTHETIC_NOTE)
    ev_value = _evalue_for(combined.key)
    if ev_value is not None:
        ci_txt = (
            "" if ev_value["evalue_ci"] is None else f" ({ev_value['evalue_ci']:.2f} for the CI)"
        )
        caveats.append(
            f"E-value {ev_value['evalue_point']:.2f}{ci_txt}: an unmeasured confounder this "
            "strongly tied (risk-ratio scale) to both exposure and outcome could explain the "
            "key estimate away."
        )
    judged_keys = {k for c in claim.checks for k in c.keys()}
    sources = [
        s for s in EVIDENCE_SOURCES if any(f.source == s for f in ev if f.estimand in judged_keys)
    ]
    return Verdict(
        claim_id=claim.id,
        sentence=claim.sentence,
        sentence_is_paraphrase=claim.sentence_is_paraphrase,
        claim_type=claim.claim_type,
        verdict=combined.verdict,
        key_finding=combined.key,
        findings=ev,
        validation_findings=synthetic,
        sources=sources,
        caveats=caveats,
        rationale=rationale,
        checks=[{"kind": r.kind, "verdict": r.verdict, "reason": r.reason} for r in results],
        evalue=ev_value,
    )


def evaluate_claims(findings: Iterable[Finding], registry: Registry | None = None) -> VerdictList:
    """Apply every claim's fixed rule to the findings; one `Verdict` per claim, in order."""
    reg = registry or load_registry()
    fs = list(findings)
    _check_measures(fs, reg)
    return VerdictList(evaluate_claim(c, fs, reg) for c in reg.claims)


def rule_verdict(
    claim_id: str, findings: Iterable[Finding], registry: Registry | None = None
) -> str:
    """The verdict claim ``claim_id``'s fixed rule gives these findings, counting synthetic
    ones as if they were evidence. For validation only (simulation, truth-recovery tests):
    does the rule say "supported" in a world where the claim is false?"""
    reg = registry or load_registry()
    claim = next((c for c in reg.claims if c.id == claim_id), None)
    if claim is None:
        raise KeyError(f"claim {claim_id!r} is not in the registry ({[c.id for c in reg.claims]})")
    return evaluate_claim(claim, list(findings), reg, as_evidence=True).verdict


def collect_findings(reports_dir: str | Path) -> list[Finding]:
    """Read every ``<reports_dir>/<source>/findings/*.json`` file written by the notebooks."""
    paths = sorted(Path(reports_dir).glob("*/findings/*.json"))
    return read_findings(paths)


def write_claims(verdicts: Iterable[Verdict], path_json: str | Path, path_csv: str | Path):
    """Write verdicts as JSON (list of `Verdict.to_dict()`) and CSV; both or neither."""
    vs = VerdictList(verdicts)
    text = json.dumps([v.to_dict() for v in vs], indent=2, sort_keys=False) + "\n"
    frame = vs.to_frame()
    with atomic_path(path_json) as tj, atomic_path(path_csv) as tc:
        tj.write_text(text, encoding="utf-8")
        frame.to_csv(tc, index=False)
    return Path(path_json), Path(path_csv)


# --------------------------------------------------------------------------- truth


@dataclass
class TruthValidation:
    """Synthetic findings against the truth of the synthetic world (validation, not evidence)."""

    rows: list[dict]

    def to_frame(self) -> pd.DataFrame:
        cols = [
            "claim_id",
            "estimand",
            "estimate",
            "ci_low",
            "ci_high",
            "truth",
            "error",
            "covered",
        ]
        return pd.DataFrame(self.rows, columns=cols)

    @property
    def all_covered(self) -> bool:
        return bool(self.rows) and all(r["covered"] is True for r in self.rows)

    def summary(self) -> str:
        if not self.rows:
            return "No synthetic findings with a known truth."
        lines = [f"{'estimand':<52} {'estimate':>9} {'truth':>9} covered"]
        for r in self.rows:
            est = "n/a" if r["estimate"] is None else f"{r['estimate']:.4g}"
            lines.append(
                f"{r['estimand']:<52} {est:>9} {r['truth']:>9.4g} "
                f"{'-' if r['covered'] is None else ('yes' if r['covered'] else 'NO')}"
            )
        n_cov = sum(r["covered"] is True for r in self.rows)
        lines.append(f"{n_cov} of {len(self.rows)} CIs cover the truth (validation only).")
        return "\n".join(lines)


def validate_against_truth(findings: Iterable[Finding]) -> TruthValidation:
    """For synthetic findings with a known truth: the error and whether the CI covers it."""
    rows = []
    for f in findings:
        if f.source != "synthetic" or f.truth is None:
            continue
        covered = None
        if _has_ci(f):
            covered = bool(f.ci_low <= f.truth <= f.ci_high)
        rows.append(
            {
                "claim_id": f.claim_id,
                "estimand": f.estimand,
                "estimate": f.estimate,
                "ci_low": f.ci_low,
                "ci_high": f.ci_high,
                "truth": f.truth,
                "error": None if f.estimate is None else f.estimate - f.truth,
                "covered": covered,
            }
        )
    return TruthValidation(rows)
