"""The synthetic world's parameters: ``resources/synthetic_world.yaml`` (read by
`analysis.data.world_spec`), scenarios, overrides.

Every value a run uses is checked here, before anything is drawn or written, so that a bad
scenario, override, size or seed fails with a `SynthParameterError` naming it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.data.world_spec import SPEC_FILE, load_spec, scenario_names

AGE_GROUPS = ("18-29", "30-44", "45-64", "65+")


class SynthParameterError(ValueError):
    """A parameter, scenario, override or size is not acceptable; the message names it."""

    def __init__(self, parameter: str, message: str):
        self.parameter = parameter
        super().__init__(f"synthetic world parameter '{parameter}': {message}")


SCENARIOS = scenario_names()


def resolve_params(
    scenario: str = "literature", overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Parameter values for a scenario with user overrides applied, checked.

    Raises `SynthParameterError` naming the scenario or parameter at fault.
    """
    spec = load_spec()
    if not isinstance(scenario, str) or scenario not in spec["scenarios"]:
        raise SynthParameterError(
            "scenario", f"unknown scenario {scenario!r}; choose one of {list(spec['scenarios'])}"
        )
    params: dict[str, Any] = {}
    for name, entry in spec["parameters"].items():
        value = entry.get("scenarios", {}).get(scenario, entry["value"])
        params[name] = copy.deepcopy(value)
    for name, value in (overrides or {}).items():
        if name not in params:
            close = difflib.get_close_matches(str(name), list(params), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise SynthParameterError(str(name), f"unknown parameter (not in {SPEC_FILE}){hint}")
        params[name] = copy.deepcopy(value)
    for name, entry in spec["parameters"].items():
        params[name] = _check_value(name, entry["kind"], params[name], entry["value"])
    _check_consistency(params)
    return params


def _check_value(name: str, kind: str, value: Any, default: Any) -> Any:
    def number(v: Any, what: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SynthParameterError(name, f"expected {what}, got {v!r}")
        return float(v)

    def probability(v: Any) -> float:
        x = number(v, "a probability strictly between 0 and 1")
        if not 0.0 < x < 1.0:
            raise SynthParameterError(
                name, f"expected a probability strictly between 0 and 1, got {v!r}"
            )
        return x

    if kind in ("probabilities", "shares", "reals"):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise SynthParameterError(
                name, f"expected a list of {len(default)} numbers, got {value!r}"
            )
        if kind == "reals":
            return [number(v, "a finite number") for v in value]
        out = [probability(v) for v in value]
        if kind == "shares" and abs(sum(out) - 1.0) > 1e-6:
            raise SynthParameterError(name, f"shares must sum to 1, they sum to {sum(out):.6f}")
        return out
    if kind == "probability":
        return probability(value)
    if kind == "real":
        return number(value, "a finite number")
    if kind in ("positive", "nonnegative"):
        x = number(value, "a positive number" if kind == "positive" else "a number >= 0")
        if (kind == "positive" and x <= 0) or x < 0:
            raise SynthParameterError(name, f"expected a {kind} number, got {value!r}")
        return x
    if kind in ("count", "count2"):
        low = 1 if kind == "count" else 2
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise SynthParameterError(name, f"expected a whole number >= {low}, got {value!r}")
        if int(value) < low:
            raise SynthParameterError(name, f"expected a whole number >= {low}, got {value!r}")
        return int(value)
    raise SynthParameterError(name, f"unknown kind {kind!r} in {SPEC_FILE}")


def _check_consistency(p: Mapping[str, Any]) -> None:
    ages = np.asarray(p["age_group_shares"])
    gad5 = float(ages @ np.asarray(p["gad7_ge5_by_age_group"]))
    if not p["gad7_ge10_prevalence"] < gad5:
        raise SynthParameterError(
            "gad7_ge10_prevalence", f"must be below the implied GAD-7 >= 5 prevalence {gad5:.3f}"
        )
    if not p["gad7_ge15_prevalence"] < p["gad7_ge10_prevalence"]:
        raise SynthParameterError("gad7_ge15_prevalence", "must be below gad7_ge10_prevalence")
    pain = float(ages @ np.asarray(p["back_pain_by_age_group"]))
    if not p["back_pain_somewhere_or_worse_prevalence"] < pain:
        raise SynthParameterError(
            "back_pain_somewhere_or_worse_prevalence",
            f"must be below the implied any-back-pain prevalence {pain:.3f}",
        )
    if not p["back_pain_a_lot_prevalence"] < p["back_pain_somewhere_or_worse_prevalence"]:
        raise SynthParameterError(
            "back_pain_a_lot_prevalence", "must be below back_pain_somewhere_or_worse_prevalence"
        )
    if not p["inactive_prevalence"] + p["active_prevalence"] < 1.0:
        raise SynthParameterError(
            "active_prevalence", "inactive_prevalence + active_prevalence must be below 1"
        )


def params_hash(params: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """A stable hash of resolved parameters (and the model version)."""
    payload = {
        "model_version": load_spec()["model_version"],
        "params": dict(params),
        "extra": dict(extra or {}),
    }
    text = json.dumps(payload, sort_keys=True, default=float)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_size(n: Any) -> int:
    """The sample size as an int, or `SynthParameterError`."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) <= 0:
        raise SynthParameterError("n", f"expected a whole number of adults >= 1, got {n!r}")
    return int(n)


def check_seed(seed: Any) -> int:
    """The seed as an int, or `SynthParameterError`."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise SynthParameterError("seed", f"expected a whole number >= 0, got {seed!r}")
    return int(seed)


def age_group(age: pd.Series | np.ndarray) -> pd.Categorical:
    """Age (years) to the four NCHS age groups the world uses: 18-29, 30-44, 45-64, 65+."""
    return pd.cut(
        np.asarray(age, dtype="float64"),
        bins=[-np.inf, 30, 45, 65, np.inf],
        right=False,
        labels=list(AGE_GROUPS),
    )
