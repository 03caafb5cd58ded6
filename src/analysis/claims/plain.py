"""Findings and verdicts in plain words, for readers who skip the tables.

Every sentence is made from a finding's own numbers and label (never typed by hand), one
small function per kind of measure: a proportion, a ratio, a difference, a level, a
statement. Registry keys (``snake_case_names``) never reach the sentence: they are turned into
words, or the text that holds them is kept for a details disclosure (`has_raw_keys`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

SOURCE_WORDS = {
    "nhis": "NHIS, US adults",
    "help": "HELP study",
    "published": "published evidence",
    "synthetic": "synthetic world",
}
RATIO_WORDS = {
    "odds ratio": "the odds were",
    "prevalence ratio": "the prevalence was",
    "risk ratio": "the chance was",
    "hazard ratio": "the rate was",
}
RAW_KEY = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+){2,}\b")
_ARROW_KEY = re.compile(r"\s*->\s*[a-z][a-z0-9_]*\s*$")
_RATIO_NOTE = re.compile(
    r"\s*(?:;\s*(?:odds|prevalence|risk) ratio|\((?:adjusted OR|(?:odds|prevalence|risk) ratio)\))"
)


def has_raw_keys(text: str) -> bool:
    """True when the text names registry keys (``estimand_like_this``): for details, not the main text."""
    return bool(RAW_KEY.search(text or ""))


def readable_label(label: str) -> str:
    """A finding's label without its trailing ``-> estimand_key`` and with keys turned into words."""
    text = _ARROW_KEY.sub("", str(label or "")).strip()
    return RAW_KEY.sub(lambda m: m.group(0).replace("_", " "), text)


def number(x: float) -> str:
    """A number as a reader reads it: 3 figures at most, no trailing noise."""
    if x == 0:
        return "0"
    a = abs(x)
    digits = 0 if a >= 10 else 1 if a >= 1 else 2
    return f"{x:.{digits}f}"


def percent(p: float) -> str:
    """A proportion (0-1) as a percentage: whole numbers from 10% up."""
    v = 100 * p
    return f"{v:.0f}%" if abs(round(v, 1)) >= 10 or v == 0 else f"{v:.1f}%"


def _ci(f: Mapping, fmt: Callable[[float], str] = number) -> str:
    lo, hi = f.get("ci_low"), f.get("ci_high")
    if lo is None or hi is None:
        return ""
    return f" (95% CI {fmt(lo)} to {fmt(hi)})"


def _null_words(f: Mapping) -> str:
    """Whether the interval rules out no effect, when the finding has a null value."""
    null, lo, hi = f.get("null_value"), f.get("ci_low"), f.get("ci_high")
    if null is None or lo is None or hi is None:
        return ""
    if lo > null or hi < null:
        return "; the interval rules out no effect"
    return "; no effect is within the interval"


def _proportion(f: Mapping) -> str:
    label = readable_label(f["label"])
    extra = f.get("extra") or {}
    p0 = extra.get("p_unexposed")
    outcome, sep, population = label.partition(" among ")
    if sep:
        text = f"{outcome}: {percent(f['estimate'])} of {population}{_ci(f, percent)}"
    else:
        text = f"{label}: {percent(f['estimate'])}{_ci(f, percent)}"
    if p0 is not None:
        text += f", vs {percent(p0)} of those without"
    return text


def _ratio(f: Mapping) -> str:
    label = _RATIO_NOTE.sub("", readable_label(f["label"])).strip()
    what = RATIO_WORDS.get(f["measure"], f"the {f['measure']} was")
    est = f["estimate"]
    if math.isclose(est, 1.0):
        size = f"{what} the same"
    else:
        size = f"{what} {number(est)} times as high"
    return f"{label}: {size}{_ci(f)}{_null_words(f)}"


def _difference(f: Mapping) -> str:
    label = readable_label(f["label"])
    est = f["estimate"]
    if est == 0:
        size = "no difference"
    else:
        size = f"{number(abs(est))} points {'lower' if est < 0 else 'higher'}"
    return f"{label}: {size}{_ci(f)}{_null_words(f)}"


def _percent_level(f: Mapping) -> str:
    return f"{readable_label(f['label'])}: {number(f['estimate'])}%{_ci(f)}"


def _level(f: Mapping) -> str:
    return f"{readable_label(f['label'])}: {number(f['estimate'])}{_ci(f)}"


def _statement(f: Mapping) -> str:
    return f"{readable_label(f['label'])} (a statement, not a number)"


PHRASERS: dict[str, Callable[[Mapping], str]] = {
    "proportion": _proportion,
    "odds ratio": _ratio,
    "prevalence ratio": _ratio,
    "risk ratio": _ratio,
    "hazard ratio": _ratio,
    "mean difference": _difference,
    "standardised mean difference": _difference,
    "percent": _percent_level,
    "mean": _level,
    "statement": _statement,
}


def plain_finding(f: Mapping) -> str:
    """One finding as a sentence a reader can use, ending with where it comes from."""
    source = SOURCE_WORDS.get(f.get("source") or "", f.get("source") or "")
    if f.get("estimate") is None and f.get("measure") != "statement":
        text = f"{readable_label(f['label'])}: not measured in this source"
    else:
        text = PHRASERS.get(f.get("measure") or "", _level)(f)
    text = text[0].upper() + text[1:]
    return f"{text} ({source})." if source else f"{text}."


def bottom_line(v: Mapping) -> str:
    """The verdict, how sure, and the key number: the one sentence a card leads with."""
    verdict = v.get("verdict") or "verdict pending"
    level = (v.get("certainty") or {}).get("level")
    head = verdict[0].upper() + verdict[1:]
    if level:
        head += f", with {level} certainty"
    kf = v.get("key_finding")
    if kf:
        return f"{head}. {plain_finding(kf)}"
    n = v.get("primary_estimands")
    if n:
        return f"{head}: none of the {n} measures its rule names has evidence yet."
    return f"{head}."
