"""How sure we are of a verdict: a GRADE certainty (high, moderate, low, very low).

GRADE rates a body of evidence, not a study: it starts high for randomised evidence and low
for observational evidence, goes down a level for each serious concern in five domains (two
for a very serious one), and observational evidence may go up for a large effect or a
dose-response. Two domains are judgements stated in the registry with their reasons
(risk of bias, publication bias); three are computed here from the findings the verdict rests
on (imprecision from each CI against the threshold that matters, inconsistency from I², the
prediction interval and disagreement between findings, indirectness from proxy outcomes,
indirect comparisons and populations unlike the article's readers). A stated indirectness or
inconsistency judgement adds to the computed one: the worse of the two counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from analysis.claims.registry import GRADE_RATINGS, Check, Claim, Estimand, Judgement
from analysis.core.findings import Finding

LEVELS = ("very low", "low", "moderate", "high")  # index + 1 = GRADE's four levels
DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")
RANDOMISED = re.compile(r"\bRCTs?\b|randomi[sz]ed|\btrials?\b", re.IGNORECASE)
# Populations unlike US adults with back pain: the evidence is indirect for the article's readers.
INDIRECT_POPULATIONS = {"help": "HELP is a detoxification cohort, not adults with back pain"}
LARGE_EFFECT, VERY_LARGE_EFFECT = 2.0, 5.0
SUBSTANTIAL_I2 = 50.0  # percent: the Cochrane Handbook's "may represent substantial"  # GRADE's ratio thresholds for upgrading
RATING_OF = {v: k for k, v in GRADE_RATINGS.items()}


@dataclass(frozen=True)
class Domain:
    """One GRADE domain: its rating, why, and whether the code computed it."""

    rating: str
    reason: str
    computed: bool

    @property
    def downgrade(self) -> int:
        return GRADE_RATINGS[self.rating]

    def to_dict(self) -> dict:
        return {"rating": self.rating, "reason": self.reason, "computed": self.computed}


@dataclass(frozen=True)
class Certainty:
    """A claim's GRADE certainty with the five domain judgements and any upgrade."""

    level: str
    start: str
    domains: dict[str, Domain]
    upgrades: list[dict] = field(default_factory=list)  # {"name", "levels", "reason"}

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "start": self.start,
            "domains": {k: d.to_dict() for k, d in self.domains.items()},
            "upgrades": list(self.upgrades),
        }

    def summary(self) -> str:
        down = [
            f"{k.replace('_', ' ')} ({d.rating})" for k, d in self.domains.items() if d.downgrade
        ]
        up = [u["name"] for u in self.upgrades]
        text = f"{self.level} (started {self.start}"
        text += f"; down for {', '.join(down)}" if down else ""
        text += f"; up for {', '.join(up)}" if up else ""
        return text + ")"


def _has_ci(f: Finding) -> bool:
    return f.estimate is not None and f.ci_low is not None and f.ci_high is not None


def _fmt(f: Finding) -> str:
    ci = f" [{f.ci_low:.3g}, {f.ci_high:.3g}]" if _has_ci(f) else ""
    est = "n/a" if f.estimate is None else f"{f.estimate:.3g}"
    return f"{f.estimand} {est}{ci}"


def _thresholds(e: Estimand, check: Check | None) -> list[float]:
    """The values a CI must not cross for the finding to be precise enough to decide."""
    if check is not None and check.kind == "level":
        return [check.at_least]
    out = [e.null] if e.null is not None else []
    if e.meaningful is not None:
        out.append(e.meaningful)
    return out


def imprecision(findings: Sequence[Finding], ests: dict[str, Estimand], checks: dict) -> Domain:
    """Serious when a CI crosses the threshold that decides its check (the null, the
    meaningful size, or the level); very serious when every CI crosses one."""
    crossing, judged = [], []
    for f in findings:
        if f.measure == "statement" or not _has_ci(f):
            continue
        judged.append(f)
        if any(
            f.ci_low < t < f.ci_high for t in _thresholds(ests[f.estimand], checks.get(f.estimand))
        ):
            crossing.append(f)
    if not judged and all(f.measure == "statement" for f in findings):
        return Domain("not serious", "Not applicable: statements carry no interval.", True)
    if not judged:
        return Domain(
            "serious", "No finding has a confidence interval to judge precision by.", True
        )
    if not crossing:
        return Domain(
            "not serious", "Every CI lies on one side of the threshold that decides it.", True
        )
    rating = "very serious" if len(crossing) == len(judged) and len(judged) > 1 else "serious"
    return Domain(
        rating,
        f"{len(crossing)} of {len(judged)} CIs cross the threshold that decides them: "
        + "; ".join(_fmt(f) for f in crossing)
        + ".",
        True,
    )


def inconsistency(findings: Sequence[Finding], ests: dict[str, Estimand]) -> Domain:
    """Serious when a pooled result is heterogeneous (I² over 50%, or a prediction interval
    that crosses the null while its CI does not) or findings point in opposite directions."""
    reasons = []
    for f in findings:
        i2 = f.extra.get("I2")  # percent, as metafor reports it
        if i2 is not None and i2 > SUBSTANTIAL_I2:
            reasons.append(f"{f.estimand}: I² = {i2:.0f}%")
        e = ests[f.estimand]
        lo, hi = f.extra.get("pi_low"), f.extra.get("pi_high")
        if e.null is not None and lo is not None and hi is not None and _has_ci(f):
            if lo < e.null < hi and not (f.ci_low < e.null < f.ci_high):
                reasons.append(f"{f.estimand}: the prediction interval crosses the null")
    sides = set()
    for f in findings:
        e = ests[f.estimand]
        if e.null is None or e.direction == "none" or not _has_ci(f):
            continue
        # judged against each estimand's own claimed direction (a pain score falls where
        # an odds ratio rises)
        if f.ci_low > e.null:
            sides.add("claimed" if e.direction == "greater" else "opposite")
        elif f.ci_high < e.null:
            sides.add("claimed" if e.direction == "less" else "opposite")
    if len(sides) > 1:
        reasons.append("findings exclude the null on opposite sides of the claim")
    if not reasons:
        return Domain(
            "not serious", "No heterogeneity flagged and no findings in opposite directions.", True
        )
    return Domain("serious", "; ".join(reasons) + ".", True)


def indirectness(findings: Sequence[Finding]) -> Domain:
    """Serious when findings answer a different question: a proxy outcome, an indirect
    comparison, or a population unlike the article's readers."""
    reasons = []
    for f in findings:
        if f.extra.get("match") == "proxy" or any(c.startswith("Proxy outcome") for c in f.caveats):
            reasons.append(f"{f.estimand}: a proxy outcome stands in")
        if f.extra.get("comparison") == "indirect":
            reasons.append(f"{f.estimand}: an indirect comparison")
        if f.source in INDIRECT_POPULATIONS:
            reasons.append(f"{f.estimand}: {INDIRECT_POPULATIONS[f.source]}")
    if not reasons:
        return Domain("not serious", "Population, comparison and outcome match the claim.", True)
    return Domain("serious", "; ".join(dict.fromkeys(reasons)) + ".", True)


def _worse(computed: Domain, stated: Judgement | None) -> Domain:
    if stated is None or stated.downgrade <= computed.downgrade:
        if stated is not None and stated.downgrade == computed.downgrade and stated.downgrade:
            return Domain(computed.rating, f"{computed.reason} {stated.reason}", True)
        return computed
    return Domain(stated.rating, stated.reason, False)


def _upgrades(findings: Sequence[Finding], ests: dict[str, Estimand]) -> list[dict]:
    out = []
    ratios = [
        f
        for f in findings
        if _has_ci(f) and ests[f.estimand].null == 1 and ests[f.estimand].direction != "none"
    ]
    large = []
    for f in ratios:
        # the CI limit nearest no effect, as a ratio above 1
        low = f.ci_low if f.estimate >= 1 else 1 / f.ci_high
        if low >= LARGE_EFFECT:
            large.append((f, low))
    if large:
        levels = 2 if all(low >= VERY_LARGE_EFFECT for _, low in large) else 1
        out.append(
            {
                "name": "large effect",
                "levels": levels,
                "reason": "CI beyond a ratio of 2 (5 for two levels): "
                + "; ".join(_fmt(f) for f, _ in large)
                + ".",
            }
        )
    trends = [
        f
        for f in findings
        if f.estimand.startswith("trend_")
        and _has_ci(f)
        and (
            f.ci_low > ests[f.estimand].null
            if ests[f.estimand].direction == "greater"
            else f.ci_high < ests[f.estimand].null
        )
    ]
    if trends:
        out.append(
            {
                "name": "dose-response",
                "levels": 1,
                "reason": "A trend across exposure levels excludes the null in the claimed "
                "direction: " + "; ".join(_fmt(f) for f in trends) + ".",
            }
        )
    return out


def certainty(claim: Claim, findings: Sequence[Finding], ests: dict[str, Estimand]) -> Certainty:
    """The GRADE certainty of a claim's verdict from the evidence findings it rests on
    (measured findings of its primary estimands)."""
    primary = set(claim.primary_keys())
    rest = [
        f
        for f in findings
        if f.estimand in primary
        and f.measured
        and (f.estimate is not None or f.measure == "statement")
    ]
    checks = {k: c for c in claim.checks for k in c.keys()}
    if not rest:
        none = Domain("very serious", "No evidence for any primary estimand.", True)
        return Certainty("very low", "low", dict.fromkeys(DOMAINS, none))
    randomised = all(RANDOMISED.search(f.design or "") for f in rest)
    start = "high" if randomised else "low"
    stated = claim.grade
    domains = {
        "risk_of_bias": _stated(stated.get("risk_of_bias")),
        "inconsistency": _worse(inconsistency(rest, ests), stated.get("inconsistency")),
        "indirectness": _worse(indirectness(rest), stated.get("indirectness")),
        "imprecision": imprecision(rest, ests, checks),
        "publication_bias": _stated(stated.get("publication_bias")),
    }
    upgrades = [] if randomised else _upgrades(rest, ests)
    index = LEVELS.index(start) - sum(d.downgrade for d in domains.values())
    index += sum(u["levels"] for u in upgrades)
    return Certainty(LEVELS[max(0, min(index, len(LEVELS) - 1))], start, domains, upgrades)


def _stated(j: Judgement | None) -> Domain:
    if j is None:
        return Domain("not serious", "No concern stated in the registry.", False)
    return Domain(j.rating, j.reason, False)
