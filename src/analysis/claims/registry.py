"""The claims registry: the article's claims, their estimands and fixed decision rules.

Pure data access to ``resources/claims.yaml`` (fixed before any data was seen): load it,
validate it (every error names the claim and the field), and look things up. Applying the
rules to findings is `analysis.claims.verdicts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from analysis.core.findings import EVIDENCE_SOURCES, SOURCES

if TYPE_CHECKING:
    import pandas as pd

VERDICTS = (
    "supported",
    "partly supported",
    "not supported",
    "contradicted",
    "insufficient evidence",
)
CLAIM_TYPES = ("prevalence", "association", "mediation", "treatment effect", "harm", "course")
CHECK_KINDS = ("directional", "level", "statement")
DIRECTIONS = ("greater", "less", "none")
ROLES = ("primary", "sensitivity", "context")
GRADE_RATINGS = {"not serious": 0, "serious": 1, "very serious": 2}
STATED_DOMAINS = ("risk_of_bias", "publication_bias", "indirectness", "inconsistency")
COMBINES = ("all", "any")
MEANINGFUL_TESTS = ("estimate", "ci")


class RegistryError(ValueError):
    """The claims registry is malformed; the message names the claim and the field."""


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

    def keys(self) -> tuple[str, ...]:
        return self.estimands


@dataclass(frozen=True)
class Judgement:
    """One stated GRADE domain judgement: a rating and its reason."""

    rating: str  # one of GRADE_RATINGS
    reason: str

    @property
    def downgrade(self) -> int:
        return GRADE_RATINGS[self.rating]


@dataclass(frozen=True)
class Claim:
    id: str
    sentence: str  # what painanx tests, in plain words
    quotation: tuple[str, ...]  # the article's own words, verbatim
    section: str  # the article section they are in
    claim_type: str
    sources: tuple[str, ...]
    estimands: tuple[Estimand, ...]
    combine: str
    checks: tuple[Check, ...]
    caveats: tuple[str, ...]
    # (primary key, its sensitivity keys): they must agree before "supported" when it is evidence
    robustness: tuple[tuple[str, tuple[str, ...]], ...] = ()
    grade: dict[str, Judgement] = field(default_factory=dict)  # stated GRADE judgements

    def keys(self) -> set[str]:
        """Every estimand key this claim shows: its own and those its checks use."""
        own = {e.key for e in self.estimands}
        sensitivity = {k for _, keys in self.robustness for k in keys}
        return own | {k for c in self.checks for k in c.keys()} | sensitivity

    def primary_keys(self) -> tuple[str, ...]:
        """The estimands the verdict rests on: those its checks use, in order, once each."""
        return tuple(dict.fromkeys(k for c in self.checks for k in c.keys()))


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
        import pandas as pd  # lazily: a table for notebooks; the build judges claims without pandas

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


def _parse_grade(raw: object, where: str, cid: str) -> dict[str, Judgement]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _err(where, cid, "grade", f"expected a mapping of domains, got {raw!r}")
    out = {}
    for domain, j in raw.items():
        fld = f"grade.{domain}"
        if domain not in STATED_DOMAINS:
            raise _err(where, cid, fld, f"unknown domain; expected among {list(STATED_DOMAINS)}")
        if not isinstance(j, dict):
            raise _err(where, cid, fld, f"expected {{rating, reason}}, got {j!r}")
        rating = _choice(j, "rating", where, cid, tuple(GRADE_RATINGS), pre=fld + ".")
        reason = _req(j, "reason", where, cid, str, fld + ".")
        out[domain] = Judgement(rating, reason.strip())
    return out


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
        quotation = c.get("quotation")
        if isinstance(quotation, str):
            quotation = [quotation]
        if (
            not isinstance(quotation, list)
            or not quotation
            or not all(isinstance(q, str) and q.strip() for q in quotation)
        ):
            raise _err(
                where, cid, "quotation", "expected the article's words: a text or a list of texts"
            )
        robustness = []
        for j, entry in enumerate(rule.get("robustness", []) or []):
            fld = f"rule.robustness[{j}]"
            if not isinstance(entry, dict):
                raise _err(where, cid, fld, f"expected {{of, sensitivity}}, got {entry!r}")
            of = _req(entry, "of", where, cid, str, fld + ".")
            robustness.append((of, _str_list(entry, "sensitivity", where, cid, pre=fld + ".")))
        claims.append(
            Claim(
                id=cid,
                sentence=_req(c, "sentence", where, cid, str).strip(),
                quotation=tuple(q.strip() for q in quotation),
                section=_req(c, "section", where, cid, str).strip(),
                claim_type=_choice(c, "claim_type", where, cid, CLAIM_TYPES),
                sources=_str_list(c, "sources", where, cid, EVIDENCE_SOURCES),
                estimands=tuple(ests),
                combine=_choice(rule, "combine", where, cid, COMBINES, "all"),
                checks=tuple(_parse_check(x, where, cid, k) for k, x in enumerate(checks_raw)),
                caveats=tuple(caveats),
                robustness=tuple(robustness),
                grade=_parse_grade(c.get("grade"), where, cid),
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
                if check.kind == "directional" and est.direction == "none":
                    raise _err(where, claim.id, fld, f"a {check.kind} check needs a direction")
                if check.kind == "level" and est.direction != "none":
                    raise _err(where, claim.id, fld, "a level check needs direction: none")
                if check.kind == "statement" and est.measure != "statement":
                    raise _err(where, claim.id, fld, "a statement check needs measure: statement")
                if est.role != "primary":
                    raise _err(
                        where, claim.id, fld, f"a check uses primary estimands, not {est.role}"
                    )
        for of, keys in claim.robustness:
            if of not in claim.primary_keys():
                raise _err(where, claim.id, f"rule.robustness.{of}", "not a primary estimand")
            for key in keys:
                est = estimands.get(key)
                fld = f"rule.robustness.{key}"
                if est is None:
                    raise _err(where, claim.id, fld, "no such estimand in the registry")
                if est.role != "sensitivity" or est.direction == "none":
                    raise _err(where, claim.id, fld, "needs role: sensitivity and a direction")
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
