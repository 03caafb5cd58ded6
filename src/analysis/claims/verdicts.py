"""The verdict engine: each claim's fixed rule applied to the findings of a build.

The rules are data (`analysis.claims.registry`); this module judges findings against them.
No number reaches a verdict by hand, and findings from the synthetic world only validate the
pipeline: they never count as evidence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.claims.certainty import Certainty, certainty
from analysis.claims.registry import (
    VERDICTS,
    Claim,
    Estimand,
    Registry,
    load_registry,
)
from analysis.core.findings import EVIDENCE_SOURCES, Finding, read_findings
from analysis.core.io import atomic_paths
from analysis.models.evalue import RATIO_MEASURES, evalue

if TYPE_CHECKING:
    import pandas as pd

SUPPORTED, PARTLY, NOT_SUPPORTED, CONTRADICTED, INSUFFICIENT = VERDICTS
SYNTHETIC_NOTE = (
    "Synthetic findings are validation only: they check the pipeline against a known truth "
    "and never count as evidence."
)


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
    # say what was compared: a CI limit, or a point estimate where there is no CI
    low_word = "lower limit" if all(_has_ci(f) for f in fs) else "lower limit (or estimate)"
    high_word = "upper limit" if all(_has_ci(f) for f in fs) else "upper limit (or estimate)"
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
            f"Every {low_word} is at least {t:g}: " + "; ".join(_fmt(f) for f in fs) + ".",
            _by_priority(fs, order)[0],
            fs,
            notes,
        )
    if all(hi(f) < t for f in fs):
        return CheckResult(
            "level",
            NOT_SUPPORTED,
            f"Every {high_word} is below {t:g}: " + "; ".join(_fmt(f) for f in fs) + ".",
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


def _combine(results: list[CheckResult], how: str) -> CheckResult:
    """Join the checks that could be judged; a check without evidence is a gap, not a vote."""
    judged = [r for r in results if r.verdict != INSUFFICIENT]
    verdicts = [r.verdict for r in judged]
    if len(results) == 1:
        return results[0]
    if not judged:
        pick = INSUFFICIENT
    elif how == "any":
        if CONTRADICTED in verdicts and SUPPORTED not in verdicts:
            pick = CONTRADICTED
        else:
            pick = next(v for v in (SUPPORTED, PARTLY, NOT_SUPPORTED) if v in verdicts)
    elif CONTRADICTED in verdicts:
        pick = CONTRADICTED
    elif all(v == SUPPORTED for v in verdicts):
        pick = SUPPORTED
    elif all(v == NOT_SUPPORTED for v in verdicts):
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
    sentence: str  # what is tested, in plain words
    quotation: tuple[str, ...]  # the article's words, verbatim
    section: str
    claim_type: str
    verdict: str
    key_finding: Finding | None
    findings: list[Finding]  # evidence findings for the claim's estimands
    validation_findings: list[Finding]  # synthetic findings: validation only
    sources: list[str]  # evidence sources whose findings were judged
    caveats: list[str]
    rationale: str
    checks: list[dict]
    certainty: Certainty
    primary_estimands: tuple[str, ...]  # what the verdict should rest on
    gaps: tuple[str, ...]  # primary estimands without evidence
    robustness: list[dict] = field(default_factory=list)
    evalue: dict | None = None

    @property
    def rests_on(self) -> str:
        """'k of n': the primary estimands with evidence, of all of them."""
        n = len(self.primary_estimands)
        return f"{n - len(self.gaps)} of {n}"

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
            "quotation": list(self.quotation),
            "section": self.section,
            "claim_type": self.claim_type,
            "verdict": self.verdict,
            "certainty": self.certainty.to_dict(),
            "primary_estimands": len(self.primary_estimands),
            "estimands_with_evidence": len(self.primary_estimands) - len(self.gaps),
            "gaps": list(self.gaps),
            "robustness": list(self.robustness),
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
        lines = [
            f"{self.claim_id} [{self.verdict}; certainty {self.certainty.level}] {self.sentence}",
            f"  article ({self.section}): " + " ... ".join(f'"{q}"' for q in self.quotation),
            f"  rests on {self.rests_on} primary estimands"
            + (f"; gaps: {', '.join(self.gaps)}" if self.gaps else ""),
        ]
        if k is not None:
            lines.append(f"  key: {k.label or k.estimand}: {_fmt(k)}")
        lines.append(f"  sources: {', '.join(self.sources) or 'none'}")
        lines.append(f"  why: {self.rationale}")
        lines += [f"  caveat: {c}" for c in self.caveats]
        return "\n".join(lines)


class VerdictList(list):
    """A list of `Verdict` with a text `summary()` table and a `to_frame()`."""

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # lazily: a table for notebooks; the build judges claims without pandas

        rows = []
        for v in self:
            k = v.key_finding
            rows.append(
                {
                    "claim_id": v.claim_id,
                    "claim_type": v.claim_type,
                    "verdict": v.verdict,
                    "certainty": v.certainty.level,
                    "rests_on": v.rests_on,
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
    head = (
        f"{'claim':<5} {'verdict':<21} {'certainty':<9} {'rests on':<8} "
        f"{'estimate [95% CI]':<26} {'source':<9} key estimand"
    )
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
        lines.append(
            f"{v.claim_id:<5} {v.verdict:<21} {v.certainty.level:<9} {v.rests_on:<8} "
            f"{est:<26} {src:<9} {key}"
        )
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
    if "evalue_point" in f.extra:  # the analysis knows whether its outcome is rare
        return {
            "evalue_point": f.extra["evalue_point"],
            "evalue_ci": f.extra.get("evalue_ci"),
            "estimand": f.estimand,
        }
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
        else:
            results.append(_statement(check, ev))
    combined = _combine(results, claim.combine)
    rationale = " ".join(
        (f"Check {i + 1} ({r.kind}): {r.verdict}. " if len(results) > 1 else "") + r.reason
        for i, r in enumerate(results)
    )
    if len(results) > 1:
        rationale += f" Combined ({claim.combine}): {combined.verdict}."
    primary = claim.primary_keys()
    gaps = tuple(
        k for k in primary if not any(_counts_as_evidence(f) for f in ev if f.estimand == k)
    )
    verdict = combined.verdict
    rests = f"{len(primary) - len(gaps)} of {len(primary)}"
    if gaps:
        rationale += f" Rests on {rests} primary estimands; no evidence for: {', '.join(gaps)}."
    if verdict == SUPPORTED and 2 * (len(primary) - len(gaps)) < len(primary):
        verdict = PARTLY
        rationale += (
            f" Capped at partly supported: it rests on fewer than half ({rests}) of its primary "
            "estimands."
        )
    robustness = [
        _robustness(key, ev, reg.estimands)
        for of, keys in claim.robustness
        if of not in gaps  # sensitivity analyses of a primary estimand that is evidence
        for key in keys
    ]
    failed = [r for r in robustness if not r["agrees"]]
    if robustness:
        rationale += " Sensitivity analyses: " + "; ".join(r["text"] for r in robustness) + "."
    if verdict == SUPPORTED and failed:
        verdict = PARTLY
        rationale += (
            " Capped at partly supported: "
            + ", ".join(r["estimand"] for r in failed)
            + " does not agree with the claim."
        )
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
        quotation=claim.quotation,
        section=claim.section,
        claim_type=claim.claim_type,
        verdict=verdict,
        key_finding=combined.key,
        findings=ev,
        validation_findings=synthetic,
        sources=sources,
        caveats=caveats,
        rationale=rationale,
        checks=[{"kind": r.kind, "verdict": r.verdict, "reason": r.reason} for r in results],
        certainty=certainty(claim, ev, reg.estimands),
        primary_estimands=primary,
        gaps=gaps,
        robustness=robustness,
        evalue=ev_value,
    )


def _counts_as_evidence(f: Finding) -> bool:
    """A measured finding a check can judge: a statement, or an estimate."""
    return f.measured and (f.measure == "statement" or f.estimate is not None)


def _robustness(key: str, ev: Sequence[Finding], ests: dict[str, Estimand]) -> dict:
    """Does the sensitivity analysis ``key`` exclude the null in the claimed direction?"""
    fs = [f for f in ev if f.estimand == key and _has_ci(f)]
    if not fs:
        return {"estimand": key, "agrees": False, "text": f"{key}: no finding"}
    sides = [_side(f, ests[key]) for f in fs]
    agrees = all(s == "claimed" for s in sides)
    word = "agrees" if agrees else "does not agree"
    return {
        "estimand": key,
        "agrees": agrees,
        "text": f"{'; '.join(_fmt(f) for f in fs)} {word}",
        "finding": fs[0].to_dict(),
    }


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
    with atomic_paths({"json": path_json, "csv": path_csv}) as tmp:
        tmp["json"].write_text(text, encoding="utf-8")
        frame.to_csv(tmp["csv"], index=False)
    return Path(path_json), Path(path_csv)


# --------------------------------------------------------------------------- truth


@dataclass
class TruthValidation:
    """Synthetic findings against the truth of the synthetic world (validation, not evidence)."""

    rows: list[dict]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # lazily: a table for notebooks; the build judges claims without pandas

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
