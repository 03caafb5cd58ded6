"""The verdict ledger (``data/verdicts.yaml``): every change of verdict or certainty, with its
reason, as a fact-check publishes its updates and a systematic review its versions.

For each claim the ledger holds the current verdict and certainty, the date and the reason of
the last change, the findings the verdict rested on and a hash of the claim's registry entry
(so a later diff can say which findings or rules moved), and the history of earlier verdicts.
A build whose verdicts differ from the ledger fails the test suite until the change is
recorded, with a reason, by ``painanx claims record``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analysis.claims.registry import Registry
from analysis.claims.verdicts import Verdict
from analysis.core import paths
from analysis.core.io import write_text_atomic
from analysis.core.provenance import sha256_json

LEDGER_NAME = "verdicts.yaml"
RECORD_COMMAND = 'painanx claims record --reason "<why the verdict changed>"'
PLACEHOLDERS = {
    "todo",
    "tbd",
    "fix",
    "fixes",
    "update",
    "updates",
    "updated",
    "wip",
    "n/a",
    "na",
    "none",
    "reason",
    "changes",
    "change",
    "misc",
    "test",
    "xxx",
    "...",
}
MIN_REASON_WORDS = 4
HEADER = """\
# The verdict ledger: each claim's current verdict and certainty, when and why they last
# changed, and every earlier verdict. Written by `painanx claims record --reason "..."`;
# tests/test_ledger.py fails whenever the default build's verdicts differ from it.
# Never edit by hand: record the change with its reason instead.
"""


class LedgerError(ValueError):
    """The ledger file is malformed, or a record was refused; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One verdict of one claim, as recorded."""

    date: str  # YYYY-MM-DD
    verdict: str
    certainty: str | None
    rests_on: str | None
    reason: str
    rule_sha: str | None = None
    findings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["findings"] = list(self.findings)
        return d


@dataclass
class ClaimHistory:
    claim_id: str
    current: Entry
    history: list[Entry] = field(default_factory=list)  # newest first

    @property
    def published(self) -> str:
        """The date of the first verdict (ClaimReview's datePublished)."""
        return (self.history[-1] if self.history else self.current).date

    def changes(self) -> list[tuple[Entry, Entry]]:
        """(earlier, later) pairs, newest first: each recorded change of this claim."""
        chain = [self.current, *self.history]
        return [(chain[i + 1], chain[i]) for i in range(len(chain) - 1)]


@dataclass(frozen=True)
class Change:
    """What differs between the ledger and a build, for one claim."""

    claim_id: str
    old: Entry | None
    new: Entry
    findings_added: tuple[str, ...]
    findings_removed: tuple[str, ...]
    rule_changed: bool

    def describe(self) -> str:
        was = "no entry" if self.old is None else f"{self.old.verdict} ({self.old.certainty})"
        lines = [f"{self.claim_id}: was {was}, now {self.new.verdict} ({self.new.certainty})"]
        if self.rule_changed:
            lines.append("  its registry entry (rule, estimands or wording) changed")
        lines += [f"  + {f}" for f in self.findings_added]
        lines += [f"  - {f}" for f in self.findings_removed]
        if not (self.rule_changed or self.findings_added or self.findings_removed):
            lines.append(
                "  no finding or rule moved: the verdict engine changed, or the ledger was edited "
                "by hand"
            )
        return "\n".join(lines)


def ledger_path() -> Path:
    return paths.data_dir() / LEDGER_NAME


def _fmt_finding(f) -> str:
    def n(x):
        return "n/a" if x is None else f"{x:.4g}"

    ci = "" if f.ci_low is None or f.ci_high is None else f" [{n(f.ci_low)}, {n(f.ci_high)}]"
    return f"{f.estimand} ({f.source}): {n(f.estimate)}{ci}"


def snapshot(v: Verdict, registry: Registry, *, date: str = "", reason: str = "") -> Entry:
    """The ledger entry a verdict would be recorded as."""
    claim = registry.claim(v.claim_id)
    return Entry(
        date=date,
        verdict=v.verdict,
        certainty=v.certainty.level,
        rests_on=v.rests_on,
        reason=reason,
        rule_sha=sha256_json(dataclasses.asdict(claim))[:16],
        findings=tuple(sorted(_fmt_finding(f) for f in v.findings if f.measured)),
    )


def _entry(d: object, where: str) -> Entry:
    if not isinstance(d, dict):
        raise LedgerError(f"{where}: expected a mapping, got {d!r}")
    for key in ("date", "verdict", "reason"):
        if not isinstance(d.get(key), str) or not d[key].strip():
            raise LedgerError(f"{where}: field '{key}' is required (text)")
    try:
        dt.date.fromisoformat(d["date"])
    except ValueError:
        raise LedgerError(f"{where}: field 'date' must be YYYY-MM-DD, got {d['date']!r}") from None
    unknown = set(d) - {f.name for f in dataclasses.fields(Entry)}
    if unknown:
        raise LedgerError(f"{where}: unknown fields {sorted(unknown)}")
    return Entry(**{**d, "findings": tuple(d.get("findings") or ())})


def load_ledger(path: str | Path | None = None) -> dict[str, ClaimHistory]:
    """Read and validate the ledger; an error names the file, the claim and the field."""
    path = Path(path) if path is not None else ledger_path()
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise LedgerError(f"{path}: not valid YAML ({exc})") from None
    claims = raw.get("claims") if isinstance(raw, dict) else None
    if not isinstance(claims, dict):
        raise LedgerError(f"{path}: expected a mapping with 'claims'")
    out = {}
    for cid, rec in claims.items():
        where = f"{path}: claim {cid}"
        if not isinstance(rec, dict) or "current" not in rec:
            raise LedgerError(f"{where}: field 'current' is required")
        history = rec.get("history") or []
        if not isinstance(history, list):
            raise LedgerError(f"{where}: field 'history' must be a list")
        out[str(cid)] = ClaimHistory(
            str(cid),
            _entry(rec["current"], f"{where}: current"),
            [_entry(h, f"{where}: history[{i}]") for i, h in enumerate(history)],
        )
    return out


def write_ledger(ledger: dict[str, ClaimHistory], path: str | Path | None = None) -> Path:
    path = Path(path) if path is not None else ledger_path()
    payload = {
        "claims": {
            cid: {"current": rec.current.to_dict(), "history": [h.to_dict() for h in rec.history]}
            for cid, rec in sorted(ledger.items(), key=lambda kv: int(kv[0].lstrip("C") or 0))
        }
    }
    text = HEADER + yaml.safe_dump(payload, sort_keys=False, allow_unicode=True, width=100)
    return write_text_atomic(path, text)


def diff(
    ledger: dict[str, ClaimHistory], verdicts: Iterable[Verdict], registry: Registry
) -> list[Change]:
    """The claims whose verdict or certainty differ from the ledger's current entry."""
    out = []
    for v in verdicts:
        new = snapshot(v, registry)
        rec = ledger.get(v.claim_id)
        old = None if rec is None else rec.current
        if old is not None and (old.verdict, old.certainty) == (new.verdict, new.certainty):
            continue
        before = set(old.findings) if old else set()
        out.append(
            Change(
                v.claim_id,
                old,
                new,
                tuple(sorted(set(new.findings) - before)),
                tuple(sorted(before - set(new.findings))),
                old is None or old.rule_sha != new.rule_sha,
            )
        )
    return out


def check_reason(reason: str) -> str:
    """A reason a reader can understand: refuse empty and placeholder reasons."""
    text = " ".join((reason or "").split())
    words = re.findall(r"[\w'-]+", text.lower())
    if not text or text.lower().strip(".!") in PLACEHOLDERS:
        raise LedgerError(
            f"--reason {reason!r} is empty or a placeholder: say why the verdict changed, e.g. "
            '"NHIS 2017 findings added for C1: nervousness among adults with low back pain"'
        )
    if len(words) < MIN_REASON_WORDS or any(w in ("todo", "tbd", "xxx") for w in words):
        raise LedgerError(
            f"--reason {reason!r} is too short to tell a reader why: at least "
            f"{MIN_REASON_WORDS} words, no TODO/TBD"
        )
    return text


def record(
    ledger: dict[str, ClaimHistory],
    changes: Sequence[Change],
    reason: str,
    *,
    date: str | None = None,
) -> dict[str, ClaimHistory]:
    """The ledger with ``changes`` recorded: each new verdict becomes current, the old one
    moves to the top of its claim's history. Refuses a placeholder reason or nothing to do."""
    text = check_reason(reason)
    if not changes:
        raise LedgerError("nothing to record: the verdicts and certainties match the ledger")
    day = date or dt.datetime.now(dt.UTC).date().isoformat()
    out = {cid: dataclasses.replace(rec, history=list(rec.history)) for cid, rec in ledger.items()}
    for c in changes:
        entry = dataclasses.replace(c.new, date=day, reason=text)
        rec = out.get(c.claim_id)
        if rec is None:
            out[c.claim_id] = ClaimHistory(c.claim_id, entry)
        else:
            out[c.claim_id] = ClaimHistory(c.claim_id, entry, [rec.current, *rec.history])
    return out


def mismatch_message(changes: Sequence[Change]) -> str:
    """What a failing check says: each claim, old and new, what moved, and the command."""
    return (
        "The default build's verdicts differ from the ledger (data/verdicts.yaml):\n"
        + "\n".join(c.describe() for c in changes)
        + f"\nIf the change is right, record it with its reason: {RECORD_COMMAND}"
        + "\n(`painanx claims diff` shows the same.)"
    )
