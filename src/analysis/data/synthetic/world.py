"""The synthetic survey world: a structural causal model with a complex sample design.

Synthetic data validate the pipeline; they are never evidence. The world exists so that
every estimator and notebook can be checked against a truth that is known exactly.

* The parameters (effect sizes, calibration targets with their citations, the design)
  live in ``resources/synthetic_world.yaml``. Intercepts and thresholds are *solved* at
  run time so that the population reproduces the published margins (39.0% back pain,
  15.6% GAD-7 >= 5, ...) whatever the scenario or the overrides.
* A sample is drawn with a stratified two-stage design: strata, >= 2 PSUs per stratum
  with PSU random effects on anxiety, muscle tension and back pain, unequal selection
  probabilities (oversampled strata and adults 65+), and non-response adjusted within
  weighting classes (age group x sex).
* The truth (true prevalences, census values of the adjusted odds ratios, natural
  direct and indirect effects, the benzodiazepine effect) is computed by
  ``analysis.data.synthetic.truth`` and cached on disk keyed on a hash of the parameters.

Use ``generate`` for an in-memory sample (30,000 adults in well under a second) and
``generate_to_parquet`` to stream millions of rows to a Parquet file.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from scipy import optimize, special, stats

from analysis.core import paths
from analysis.core.io import atomic_path, write_text_atomic
from analysis.data import schema

__all__ = [
    "AGE_GROUPS",
    "SCENARIOS",
    "SynthParameterError",
    "SyntheticParquet",
    "SyntheticWorld",
    "age_group",
    "generate",
    "generate_to_parquet",
    "load_spec",
    "resolve_params",
    "params_hash",
]

SOURCE = "synthetic"
SURVEY_YEAR = 2019
AGE_GROUPS = ("18-29", "30-44", "45-64", "65+")
_AGE_LOW = np.array([18, 30, 45, 65])
_AGE_WIDTH = np.array([12, 15, 20, 21])  # integer ages 18-29, 30-44, 45-64, 65-85
GAD7_ITEMS = 7
PHQ8_ITEMS = 8
COLUMNS = (
    "source",
    "survey_year",
    "respondent_id",
    "weight",
    "stratum",
    "psu",
    "age",
    "sex",
    "bmi",
    "education",
    "physical_activity",
    "back_pain_severity",
    "chronic_pain",
    "pain_intensity",
    "gad7_score",
    "gad7_category",
    "anxiety_frequency",
    "anxiety_medication",
    "phq8_score",
    "phq8_category",
    "muscle_tension",
    "benzodiazepine_use",
)
_RELEASE_CHUNK = 1_000_000  # released (selected) persons drawn per design chunk
_ROWS_CHUNK = 500_000  # respondents simulated per attribute chunk
_SPEC_FILE = "synthetic_world.yaml"


class SynthParameterError(ValueError):
    """A parameter, scenario, override or size is not acceptable; the message names it."""

    def __init__(self, parameter: str, message: str):
        self.parameter = parameter
        super().__init__(f"synthetic world parameter '{parameter}': {message}")


# --------------------------------------------------------------------------- spec --


@lru_cache(maxsize=1)
def load_spec() -> dict:
    """The parsed ``synthetic_world.yaml`` (parameters, scenarios, checks, computation)."""
    text = resources.files("analysis.resources").joinpath(_SPEC_FILE).read_text()
    return yaml.safe_load(text)


def _scenarios() -> tuple[str, ...]:
    return tuple(load_spec()["scenarios"])


SCENARIOS = _scenarios()


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
            raise SynthParameterError(str(name), f"unknown parameter (not in {_SPEC_FILE}){hint}")
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
    raise SynthParameterError(name, f"unknown kind {kind!r} in {_SPEC_FILE}")


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


def _check_size(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) <= 0:
        raise SynthParameterError("n", f"expected a whole number of adults >= 1, got {n!r}")
    return int(n)


def _check_seed(seed: Any) -> int:
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


# --------------------------------------------------------------------- math helpers --


def _expit(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def _item_cum_probs(latent: np.ndarray, a: float, b: np.ndarray) -> np.ndarray:
    """P(item >= j | latent), j = 1..3, graded-response model; shape (3, n)."""
    return special.expit(a * (np.asarray(latent)[None, :] - np.asarray(b)[:, None]))


def sum_score_pmf(latent: np.ndarray, n_items: int, a: float, b: np.ndarray) -> np.ndarray:
    """Exact distribution of a sum of ``n_items`` iid items (0-3) given the latent; (n, 3k+1)."""
    cum = _item_cum_probs(latent, a, b)
    item = np.stack([1 - cum[0], cum[0] - cum[1], cum[1] - cum[2], cum[2]], axis=1)
    out = item
    for _ in range(n_items - 1):
        new = np.zeros((out.shape[0], out.shape[1] + 3))
        for k in range(4):
            new[:, k : k + out.shape[1]] += out * item[:, k : k + 1]
        out = new
    return out


def _draw_sum_scores(
    rng: np.random.Generator, latent: np.ndarray, n_items: int, a: float, b: np.ndarray
) -> np.ndarray:
    cum = special.expit(
        np.float32(a) * (latent.astype(np.float32)[None, :] - b.astype(np.float32)[:, None])
    )
    u = rng.random((n_items, latent.shape[0]), dtype=np.float32)
    score = np.zeros(latent.shape[0], dtype=np.int8)
    for item in u:  # item score = number of thresholds passed
        score += item < cum[0]
        score += item < cum[1]
        score += item < cum[2]
    return score.astype(np.int64)


def _categorise_scores(score: np.ndarray) -> np.ndarray:
    return ((score >= 5).astype(np.int8) + (score >= 10) + (score >= 15)).astype(np.int8)


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)
_GH_W = _GH_W / _GH_W.sum()


def _normal_tail_of_scores(
    means: np.ndarray, sd: float, kappa: float, n_items: int, a: float, b: np.ndarray
) -> np.ndarray:
    """P(score >= 5, 10, 15) when the latent is mean + skew(N(0, sd^2), kappa); exact up to
    Gauss-Hermite quadrature; (m, 3)."""
    means = np.asarray(means, dtype=float)
    nodes = (means[:, None] + skew(sd * _GH_X, kappa)[None, :]).ravel()
    pmf = sum_score_pmf(nodes, n_items, a, b)
    tails = np.stack([pmf[:, k:].sum(axis=1) for k in (5, 10, 15)], axis=1)
    return (tails.reshape(len(means), len(_GH_X), 3) * _GH_W[None, :, None]).sum(axis=1)


def _solve_shift(prob_at: Any, target: float, name: str) -> float:
    """The scalar c with prob_at(c) == target (prob_at increasing in c)."""
    lo, hi = -30.0, 30.0
    f_lo, f_hi = prob_at(lo) - target, prob_at(hi) - target
    if f_lo > 0 or f_hi < 0:
        raise SynthParameterError(name, f"cannot calibrate the world to {target!r}")
    return float(optimize.brentq(lambda c: prob_at(c) - target, lo, hi, xtol=1e-12))


def _solve_system(
    fun: Any, x0: np.ndarray, name: str, bounds: tuple[Any, Any] = (-np.inf, np.inf)
) -> np.ndarray:
    """Solve fun(x) = 0 (as many equations as unknowns) within bounds, or raise."""
    sol = optimize.least_squares(fun, x0, bounds=bounds, xtol=1e-15, ftol=1e-15, gtol=1e-15)
    if np.max(np.abs(fun(sol.x))) > 1e-8:
        raise SynthParameterError(
            name, "cannot calibrate the world to these targets (no exact solution found)"
        )
    return sol.x


def skew(v: np.ndarray, kappa: float) -> np.ndarray:
    """Right-skewing transform of a normal latent, (exp(kappa v) - 1) / kappa."""
    return np.expm1(kappa * v) / kappa


# --------------------------------------------------------------------------- model --


@dataclass
class _Model:
    """Resolved parameters, fixed population structure and solved (derived) parameters."""

    params: dict[str, Any]
    scenario: str
    overrides: dict[str, Any]
    hash: str
    stratum_share: np.ndarray = field(repr=False)
    stratum_factor: np.ndarray = field(repr=False)
    stratum_pain: np.ndarray = field(repr=False)
    stratum_tension: np.ndarray = field(repr=False)
    derived: dict[str, Any] = field(default_factory=dict)

    # convenience arrays -------------------------------------------------------------
    def arr(self, name: str) -> np.ndarray:
        return np.asarray(self.params[name], dtype=float)

    @property
    def item_b(self) -> np.ndarray:
        step = self.derived["item_threshold_step"]
        return np.array([0.0, step, 2 * step])

    @property
    def age_selection(self) -> np.ndarray:
        return np.array([1.0, 1.0, 1.0, self.params["age65_oversampling_factor"]])

    def tension_by_category(self) -> np.ndarray:
        p = self.params
        return np.array(
            [
                0.0,
                p["tension_effect_mild"],
                p["tension_effect_moderate"],
                p["tension_effect_severe"],
            ]
        )

    def pain_by_category(self) -> np.ndarray:
        p = self.params
        return np.array(
            [
                0.0,
                p["pain_log_or_anxiety_mild"],
                p["pain_log_or_anxiety_moderate"],
                p["pain_log_or_anxiety_severe"],
            ]
        )

    def pain_by_activity(self) -> np.ndarray:
        p = self.params
        return np.array([0.0, p["pain_log_or_insufficiently_active"], p["pain_log_or_active"]])

    def severity_cuts(self) -> np.ndarray:
        return np.array([0.0, self.derived["pain_cut2"], self.derived["pain_cut3"]])

    def response_probs(self) -> np.ndarray:
        """Response probability by (age group, male); the weighting classes."""
        p = self.params
        base = special.logit(p["response_rate"])
        male = np.array([0.0, p["response_log_odds_male"]])
        return special.expit(base + self.arr("response_log_odds_age_group")[:, None] + male)


def _structure(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Fixed population structure: stratum sizes, sampling factors and stratum effects."""
    rng = np.random.Generator(np.random.PCG64(params["structure_seed"]))
    n_strata = params["n_strata"]
    share = rng.dirichlet(np.full(n_strata, 20.0))
    z_pain = rng.standard_normal(n_strata)
    z_tension = rng.standard_normal(n_strata)
    factor = np.ones(n_strata)
    factor[: int(round(params["oversampled_stratum_share"] * n_strata))] = params[
        "stratum_oversampling_factor"
    ]
    return {
        "stratum_share": share,
        "stratum_factor": factor,
        "stratum_pain": params["pain_stratum_sd"] * z_pain,
        "stratum_tension": params["tension_stratum_sd"] * z_tension,
    }


_DERIVED: dict[str, dict[str, Any]] = {}


def _model(scenario: str = "literature", overrides: Mapping[str, Any] | None = None) -> _Model:
    """The calibrated model for a scenario and overrides (calibration cached in-process)."""
    params = resolve_params(scenario, overrides)
    key = params_hash(params)
    model = _Model(
        params=params,
        scenario=scenario,
        overrides=dict(overrides or {}),
        hash=key,
        **_structure(params),
    )
    if key not in _DERIVED:
        path = cache_dir() / f"calibration-{key}-{_code_hash()}.json"
        try:
            _DERIVED[key] = json.loads(path.read_text())
        except (OSError, ValueError):
            _calibrate(model)
            _DERIVED[key] = copy.deepcopy(model.derived)
            try:
                write_text_atomic(path, json.dumps(_DERIVED[key], indent=1) + "\n")
            except OSError:
                pass  # a read-only cache only costs time
    model.derived = copy.deepcopy(_DERIVED[key])
    return model


def cache_dir() -> Path:
    """Where solved calibrations and computed truths are cached: ``$PAINANX_CACHE`` or
    <project>/.painanx-cache/synth (never committed; safe to delete)."""
    env = os.environ.get("PAINANX_CACHE")
    return Path(env) if env else paths.project_root() / ".painanx-cache" / "synth"


@lru_cache(maxsize=1)
def _code_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


# ------------------------------------------------------------------ the SCM itself --


def _draw_demographics(m: _Model, rng: np.random.Generator, g: np.ndarray) -> dict:
    p, d = m.params, m.derived
    n = g.shape[0]
    age = (_AGE_LOW[g] + np.floor(rng.random(n) * _AGE_WIDTH[g])).astype(np.float64)
    edu = _categorical(rng.random(n), p["education_shares"])
    log_bmi = (
        d["bmi_log_intercept"]
        + m.arr("bmi_log_effect_age_group")[g]
        + m.arr("bmi_log_effect_education")[edu]
        + p["bmi_log_sd"] * rng.standard_normal(n)
    )
    # as reported (2 decimals, 12-80 kg/m2); obesity is read off the reported value
    bmi = np.round(np.clip(np.exp(log_bmi), 12.0, 80.0), 2)
    obese = bmi >= 30.0
    act_eta = (
        m.arr("activity_log_odds_age_group")[g]
        + m.arr("activity_log_odds_education")[edu]
        + p["activity_log_odds_obesity"] * obese
    )
    act_latent = act_eta + rng.logistic(size=n)
    activity = (
        (act_latent >= d["activity_cut1"]).astype(np.int8) + (act_latent >= d["activity_cut2"])
    ).astype(np.int8)
    return {"age": age, "education": edu, "bmi": bmi, "obese": obese, "activity": activity}


def _draw_mental(
    m: _Model, rng: np.random.Generator, g: np.ndarray, female: np.ndarray, u_anx: np.ndarray
) -> dict:
    p, d = m.params, m.derived
    n = g.shape[0]
    z_anx = rng.standard_normal(n)
    kappa = d["latent_skew"]
    theta = (
        np.asarray(d["anxiety_age_intercepts"])[g]
        + d["anxiety_female"] * female
        + skew(z_anx + u_anx, kappa)
    )
    gad7 = _draw_sum_scores(rng, theta, GAD7_ITEMS, p["gad7_item_discrimination"], m.item_b)
    rho = p["anxiety_depression_latent_correlation"]
    phi = (
        d["depression_intercept"]
        + d["depression_female"] * female
        + skew(rho * z_anx + math.sqrt(1 - rho**2) * rng.standard_normal(n), kappa)
    )
    phq8 = _draw_sum_scores(rng, phi, PHQ8_ITEMS, p["gad7_item_discrimination"], m.item_b)
    return {
        "theta": theta,
        "phi": phi,
        "gad7": gad7,
        "gad7_cat": _categorise_scores(gad7),
        "phq8": phq8,
        "phq8_cat": _categorise_scores(phq8),
    }


def _tension_base(
    m: _Model,
    rng: np.random.Generator,
    h: np.ndarray,
    female: np.ndarray,
    u_ten: np.ndarray,
) -> np.ndarray:
    """Muscle tension before the effect of anxiety and before clipping to 0-10."""
    p = m.params
    n = h.shape[0]
    return (
        p["tension_intercept"]
        + p["tension_female"] * female
        + m.stratum_tension[h]
        + u_ten
        + p["tension_sd"] * rng.standard_normal(n)
    )


def tension_of(m: _Model, tension_base: np.ndarray, gad7_cat: np.ndarray | int) -> np.ndarray:
    """Reported muscle tension (0-10, two decimals) for a GAD-7 category (actual or set)."""
    return np.round(np.clip(tension_base + m.tension_by_category()[gad7_cat], 0.0, 10.0), 2)


def _pain_eta_rest(
    m: _Model,
    h: np.ndarray,
    demo: dict,
    gad7_cat: np.ndarray,
    phq8: np.ndarray,
    tension: np.ndarray,
    u_pain: np.ndarray,
) -> np.ndarray:
    """Untreated back-pain log-odds (any vs none) without the age and sex intercepts."""
    p = m.params
    return (
        p["pain_log_or_obesity"] * demo["obese"]
        + m.pain_by_activity()[demo["activity"]]
        + m.arr("pain_log_or_education")[demo["education"]]
        + p["pain_log_or_tension_per_point"] * tension
        + m.pain_by_category()[gad7_cat]
        + p["pain_log_or_phq8_per_point"] * phq8
        + m.stratum_pain[h]
        + u_pain
    )


def _pain_eta(m: _Model, g: np.ndarray, female: np.ndarray, rest: np.ndarray) -> np.ndarray:
    d = m.derived
    return np.asarray(d["pain_age_intercepts"])[g] + d["pain_female"] * female + rest


def _severity(latent: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return ((latent > cuts[0]).astype(np.int8) + (latent > cuts[1]) + (latent > cuts[2])).astype(
        np.int8
    )


def _medication_eta(m: _Model, gad7_cat: np.ndarray, female: np.ndarray) -> np.ndarray:
    p = m.params
    cat = np.concatenate([[0.0], m.arr("anxiety_medication_log_or_gad7")])
    return (
        m.derived["medication_intercept"]
        + cat[gad7_cat]
        + p["anxiety_medication_log_or_female"] * female
    )


def _benzo_eta(
    m: _Model, gad7_cat: np.ndarray, medication: np.ndarray, pain_level: np.ndarray
) -> np.ndarray:
    p = m.params
    cat = np.concatenate([[0.0], m.arr("benzodiazepine_log_or_gad7")])
    return (
        m.derived["benzodiazepine_intercept"]
        + cat[gad7_cat]
        + p["benzodiazepine_log_or_anxiety_medication"] * medication
        + p["benzodiazepine_log_or_back_pain_level"] * pain_level
    )


def _chronic_eta(m: _Model, g: np.ndarray, female: np.ndarray, severity: np.ndarray) -> np.ndarray:
    d = m.derived
    sev = np.concatenate([[0.0], m.arr("chronic_pain_log_or_back_pain")])
    return (
        d["chronic_intercept"]
        + d["chronic_female"] * female
        + m.arr("chronic_pain_log_or_age_group")[g]
        + sev[severity]
    )


def simulate_people(
    m: _Model,
    rng: np.random.Generator,
    h: np.ndarray,
    g: np.ndarray,
    female: np.ndarray,
    u_anx: np.ndarray,
    u_ten: np.ndarray,
    u_pain: np.ndarray,
    *,
    keep_latent: bool = False,
) -> dict[str, np.ndarray]:
    """Draw every SCM variable for persons with given stratum, age group, sex and PSU effects.

    With ``keep_latent`` the linear predictors needed for the truth are returned too.
    """
    p = m.params
    n = g.shape[0]
    demo = _draw_demographics(m, rng, g)
    mental = _draw_mental(m, rng, g, female, u_anx)
    gcat = mental["gad7_cat"]
    tension_base = _tension_base(m, rng, h, female, u_ten)
    tension = tension_of(m, tension_base, gcat)
    rest = _pain_eta_rest(m, h, demo, gcat, mental["phq8"], tension, u_pain)
    eta0 = _pain_eta(m, g, female, rest)
    untreated = eta0 + rng.logistic(size=n)
    cuts = m.severity_cuts()
    severity0 = _severity(untreated, cuts)
    medication = rng.random(n) < _expit(_medication_eta(m, gcat, female))
    benzo = rng.random(n) < _expit(_benzo_eta(m, gcat, medication, severity0))
    severity = _severity(untreated + p["benzodiazepine_pain_log_or"] * benzo, cuts)
    chronic = rng.random(n) < _expit(_chronic_eta(m, g, female, severity))
    means = np.concatenate([[0.0], m.arr("pain_intensity_mean_by_back_pain")])
    intensity = np.rint(
        means[severity]
        + p["pain_intensity_per_tension_point"] * (tension - 3.0)
        + p["pain_intensity_sd"] * rng.standard_normal(n)
    )
    intensity = np.where(severity == 0, 0.0, np.clip(intensity, 1.0, 10.0))
    freq_latent = mental["theta"] + p["anxiety_frequency_noise_scale"] * rng.logistic(size=n)
    frequency = np.zeros(n, dtype=np.int8)
    for cut in m.derived["frequency_cuts"]:
        frequency += freq_latent > cut
    out = {
        **demo,
        "female": female,
        "age_group": g,
        "gad7": mental["gad7"],
        "gad7_cat": gcat,
        "phq8": mental["phq8"],
        "phq8_cat": mental["phq8_cat"],
        "tension": tension,
        "severity": severity,
        "chronic": chronic,
        "intensity": intensity,
        "frequency": frequency,
        "medication": medication,
        "benzo": benzo,
    }
    if keep_latent:
        out.update(
            theta=mental["theta"],
            phi=mental["phi"],
            tension_base=tension_base,
            eta0=eta0,
            eta_no_anxiety=eta0
            - m.pain_by_category()[gcat]
            - p["pain_log_or_tension_per_point"] * tension,
            severity0=severity0,
        )
    return out


def _population_draw(m: _Model, rng: np.random.Generator, n: int, *, keep_latent: bool) -> dict:
    """Persons drawn from the population (not the sample): superpopulation PSU effects.

    Each person gets independent PSU-effect draws: population estimands depend only on
    the distribution of one person, and independent draws make their Monte-Carlo error
    smallest.
    """
    p = m.params
    h = np.searchsorted(np.cumsum(m.stratum_share)[:-1], rng.random(n), side="right")
    g = np.searchsorted(np.cumsum(p["age_group_shares"])[:-1], rng.random(n), side="right")
    female = rng.random(n) < p["female_share"]
    u_anx = p["anxiety_psu_sd"] * rng.standard_normal(n)
    u_ten = p["tension_psu_sd"] * rng.standard_normal(n)
    u_pain = p["pain_psu_sd"] * rng.standard_normal(n)
    out = simulate_people(m, rng, h, g, female, u_anx, u_ten, u_pain, keep_latent=keep_latent)
    out["stratum"] = h
    return out


# -------------------------------------------------------------------- calibration --


def _calibrate(m: _Model) -> None:
    """Solve intercepts and thresholds so that the population matches the targets."""
    p, d = m.params, m.derived
    ages = m.arr("age_group_shares")
    edus = m.arr("education_shares")
    fem = p["female_share"]
    sexes = np.array([1 - fem, fem])

    # BMI: P(BMI >= 30) exact (normal log BMI within age group x education).
    shift = m.arr("bmi_log_effect_age_group")[:, None] + m.arr("bmi_log_effect_education")[None, :]
    cell = ages[:, None] * edus[None, :]

    def obese_share(mu: float) -> np.ndarray:
        return stats.norm.sf((math.log(30.0) - mu - shift) / p["bmi_log_sd"])

    d["bmi_log_intercept"] = _solve_shift(
        lambda mu: float((cell * obese_share(mu)).sum()),
        p["obesity_prevalence"],
        "obesity_prevalence",
    )
    p_ob = obese_share(d["bmi_log_intercept"])
    act = (
        m.arr("activity_log_odds_age_group")[:, None]
        + m.arr("activity_log_odds_education")[None, :]
    )

    def below(cut: float) -> float:
        ob = p_ob * _expit(cut - act - p["activity_log_odds_obesity"])
        return float((cell * (ob + (1 - p_ob) * _expit(cut - act))).sum())

    d["activity_cut1"] = _solve_shift(below, p["inactive_prevalence"], "inactive_prevalence")
    d["activity_cut2"] = _solve_shift(below, 1 - p["active_prevalence"], "active_prevalence")

    # Anxiety: age intercepts, female shift, item-threshold step (thresholds 0, s, 2s) and
    # the skew of the latent solve the GAD-7 targets exactly (Gauss-Hermite quadrature).
    # The same item model and skew serve PHQ-8 (an assumption).
    a = p["gad7_item_discrimination"]
    sd_v = math.sqrt(1 + p["anxiety_psu_sd"] ** 2)
    by_age = m.arr("gad7_ge5_by_age_group")

    def unpack(x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
        return x[:4], x[4], np.array([0.0, x[5], 2 * x[5]]), x[6]

    def anxiety_eq(x: np.ndarray) -> np.ndarray:
        mu, female_shift, b, kappa = unpack(x)
        means = np.concatenate([mu, mu + female_shift])  # men then women
        tails = _normal_tail_of_scores(means, sd_v, kappa, GAD7_ITEMS, a, b).reshape(2, 4, 3)
        pop = (sexes[:, None, None] * ages[None, :, None] * tails).sum(axis=(0, 1))
        return np.concatenate(
            [
                (sexes[:, None] * tails[:, :, 0]).sum(axis=0) - by_age,
                [float(ages @ tails[1, :, 0]) - p["gad7_ge5_women"]],
                [pop[1] - p["gad7_ge10_prevalence"], pop[2] - p["gad7_ge15_prevalence"]],
            ]
        )

    x = _solve_system(
        anxiety_eq,
        np.array([-1.37, -1.57, -1.69, -2.08, 0.59, 1.67, 0.66]),
        "gad7_ge5_by_age_group",
        bounds=([-20.0] * 5 + [0.05, 0.01], [20.0] * 5 + [10.0, 5.0]),
    )
    mu, female_shift, b, kappa = unpack(x)
    d.update(
        anxiety_age_intercepts=mu.tolist(),
        anxiety_female=float(female_shift),
        item_threshold_step=float(x[5]),
        latent_skew=float(kappa),
    )

    # Depression: the normal part of the latent is N(0, 1) given sex.
    def depression_eq(x: np.ndarray) -> np.ndarray:
        means = np.array([x[0], x[0] + x[1]])
        tails = _normal_tail_of_scores(means, 1.0, kappa, PHQ8_ITEMS, a, b)
        return np.array(
            [
                float(sexes @ tails[:, 0]) - p["phq8_ge5_prevalence"],
                tails[1, 0] - p["phq8_ge5_women"],
            ]
        )

    x = _solve_system(depression_eq, np.array([-1.5, 0.3]), "phq8_ge5_prevalence")
    d.update(depression_intercept=float(x[0]), depression_female=float(x[1]))

    # The rest needs a draw from the population (fixed seed). Provisional values for what
    # is not solved yet; the quantities solved below do not depend on them.
    d.update(
        pain_age_intercepts=[0.0] * 4,
        pain_female=0.0,
        pain_cut2=1.0,
        pain_cut3=2.0,
        medication_intercept=0.0,
        benzodiazepine_intercept=0.0,
        chronic_intercept=0.0,
        chronic_female=0.0,
        frequency_cuts=[0.0, 1.0, 2.0, 3.0],
    )
    comp = load_spec()["computation"]
    rng = np.random.Generator(np.random.PCG64(comp["calibration_seed"]))
    draw = _population_draw(m, rng, comp["calibration_population_size"], keep_latent=True)
    g, female = draw["age_group"], draw["female"]
    rest = draw["eta0"]  # provisional intercepts are 0: eta0 == the rest
    pain_targets = m.arr("back_pain_by_age_group")
    groups = [g == k for k in range(4)]

    def pain_eq(x: np.ndarray) -> np.ndarray:
        prob = _expit(x[g] + x[4] * female + rest)
        return np.array([prob[mask].mean() for mask in groups] + [prob[female].mean()]) - np.append(
            pain_targets, p["back_pain_women"]
        )

    x = _solve_system(
        pain_eq, np.append(special.logit(pain_targets) - rest.mean(), 0.1), "back_pain_by_age_group"
    )
    d.update(pain_age_intercepts=x[:4].tolist(), pain_female=float(x[4]))
    eta0 = _pain_eta(m, g, female, rest)
    d["pain_cut2"] = -_solve_shift(
        lambda c: float(_expit(eta0 + c).mean()),
        p["back_pain_somewhere_or_worse_prevalence"],
        "back_pain_somewhere_or_worse_prevalence",
    )
    d["pain_cut3"] = -_solve_shift(
        lambda c: float(_expit(eta0 + c).mean()),
        p["back_pain_a_lot_prevalence"],
        "back_pain_a_lot_prevalence",
    )
    cuts = m.severity_cuts()
    sev_probs = severity_probs(eta0, cuts)
    gcat = draw["gad7_cat"]
    med_rest = _medication_eta(m, gcat, female) - d["medication_intercept"]
    d["medication_intercept"] = _solve_shift(
        lambda c: float(_expit(c + med_rest).mean()),
        p["anxiety_medication_prevalence"],
        "anxiety_medication_prevalence",
    )
    medication = rng.random(g.shape[0]) < _expit(_medication_eta(m, gcat, female))
    benzo_rest = (
        np.stack(
            [_benzo_eta(m, gcat, medication, np.full(g.shape[0], k)) for k in range(4)], axis=1
        )
        - d["benzodiazepine_intercept"]
    )
    d["benzodiazepine_intercept"] = _solve_shift(
        lambda c: float((sev_probs * _expit(c + benzo_rest)).sum(axis=1).mean()),
        p["benzodiazepine_use_prevalence"],
        "benzodiazepine_use_prevalence",
    )
    q = _expit(d["benzodiazepine_intercept"] + benzo_rest)
    observed = observed_severity_probs(eta0, cuts, q, p["benzodiazepine_pain_log_or"])
    chronic_rest = (
        np.stack([_chronic_eta(m, g, female, np.full(g.shape[0], k)) for k in range(4)], axis=1)
        - d["chronic_intercept"]
        - d["chronic_female"] * female[:, None]
    )

    def chronic_eq(x: np.ndarray) -> np.ndarray:
        prob = (observed * _expit(x[0] + x[1] * female[:, None] + chronic_rest)).sum(axis=1)
        return np.array(
            [
                prob.mean() - p["chronic_pain_prevalence"],
                prob[female].mean() - p["chronic_pain_women"],
            ]
        )

    x = _solve_system(chronic_eq, np.array([-3.0, 0.1]), "chronic_pain_prevalence")
    d.update(chronic_intercept=float(x[0]), chronic_female=float(x[1]))
    theta, scale = draw["theta"], p["anxiety_frequency_noise_scale"]
    cum = 1 - np.cumsum(p["anxiety_frequency_shares"])[:-1]
    d["frequency_cuts"] = [
        -_solve_shift(
            lambda c: float(_expit((theta + c) / scale).mean()),
            float(share),
            "anxiety_frequency_shares",
        )
        for share in cum
    ]


def severity_probs(eta0: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """P(severity = 0..3) for a latent eta0 + logistic noise cut at ``cuts``; (n, 4)."""
    above = _expit(eta0[:, None] - cuts[None, :])  # P(latent > cut_k)
    upper = np.concatenate([np.ones((eta0.shape[0], 1)), above], axis=1)
    lower = np.concatenate([above, np.zeros((eta0.shape[0], 1))], axis=1)
    return upper - lower


def observed_severity_probs(
    eta0: np.ndarray, cuts: np.ndarray, benzo_prob: np.ndarray, effect: float
) -> np.ndarray:
    """P(observed severity = 0..3) when benzodiazepine use (prob. ``benzo_prob[:, k]`` at
    untreated level k) shifts the latent by ``effect``; exact over the logistic noise."""
    untreated = severity_probs(eta0, cuts)
    if effect == 0.0:
        return untreated
    with_benzo, without = severity_probs_by_benzo(eta0, cuts, benzo_prob, effect)
    return with_benzo + without


def severity_probs_by_benzo(
    eta0: np.ndarray, cuts: np.ndarray, benzo_prob: np.ndarray, effect: float
) -> tuple[np.ndarray, np.ndarray]:
    """Joint P(benzodiazepine use, observed severity = j) and P(no use, severity = j); each (n, 4).

    Use depends on the untreated level k (``benzo_prob[:, k]``) and shifts the latent by
    ``effect``; exact over the logistic noise of the latent.
    """
    untreated = severity_probs(eta0, cuts)
    edges = np.concatenate([[-np.inf], cuts, [np.inf]])
    with_benzo = np.zeros_like(untreated)
    for k in range(4):  # untreated level
        for j in range(4):  # observed level after the shift
            lo = max(edges[k], edges[j] - effect)
            hi = min(edges[k + 1], edges[j + 1] - effect)
            if hi <= lo:
                continue
            with_benzo[:, j] += benzo_prob[:, k] * (_expit(hi - eta0) - _expit(lo - eta0))
    return with_benzo, (1 - benzo_prob) * untreated


# ------------------------------------------------------------------ sample design --


@dataclass
class _Sample:
    """Respondents of one sample: design skeleton and final weights."""

    psu: np.ndarray
    age_group: np.ndarray
    female: np.ndarray
    weight: np.ndarray
    released: int
    psu_effects: dict[str, np.ndarray]


def _categorical(u: np.ndarray, shares: Any) -> np.ndarray:
    """Category codes 0..k-1 from uniforms, for a handful of categories (comparisons)."""
    cum = np.cumsum(np.asarray(shares, dtype=float))[:-1]
    out = np.zeros(u.shape[0], dtype=np.int8)
    for c in cum:
        out += u >= c
    return out


class _Alias:
    """Walker's alias table: exact O(1) draws from a discrete distribution (many categories)."""

    def __init__(self, probs: np.ndarray):
        k = len(probs)
        scaled = np.asarray(probs, dtype=float) * k / np.sum(probs)
        self.prob = np.ones(k)
        self.alias = np.arange(k)
        small = [i for i in range(k) if scaled[i] < 1.0]
        large = [i for i in range(k) if scaled[i] >= 1.0]
        while small and large:
            s_, l_ = small.pop(), large.pop()
            self.prob[s_], self.alias[s_] = scaled[s_], l_
            scaled[l_] -= 1.0 - scaled[s_]
            (small if scaled[l_] < 1.0 else large).append(l_)
        self.k = k

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        column = rng.integers(0, self.k, n, dtype=np.int32)
        keep = rng.random(n) < self.prob[column]
        return np.where(keep, column, self.alias[column].astype(np.int32))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=key)))


def _draw_sample_design(m: _Model, n: int, seed: int) -> _Sample:
    """Select persons (strata, PSUs, unequal probabilities), draw response, make weights.

    Released persons are drawn until exactly ``n`` have responded. Base weights are the
    inverse selection probabilities; non-response is adjusted within weighting classes
    (age group x sex) so that each class keeps the weight of its released persons.
    """
    p = m.params
    n_strata, per = p["n_strata"], p["psus_per_stratum"]
    ages = m.arr("age_group_shares")
    alloc = m.stratum_share * m.stratum_factor
    strata = _Alias(alloc / alloc.sum())
    tilted = ages * m.age_selection
    response = m.response_probs()  # (age group, male)
    female_share = p["female_share"]
    mean_response = float(
        (tilted / tilted.sum()) @ (response @ np.array([female_share, 1 - female_share]))
    )
    chunk = min(_RELEASE_CHUNK, math.ceil(1.1 * n / mean_response) + 100)

    design = _rng(seed, 0)
    n_psu = n_strata * per
    psu_effects = {
        "anxiety": p["anxiety_psu_sd"] * design.standard_normal(n_psu),
        "tension": p["tension_psu_sd"] * design.standard_normal(n_psu),
        "pain": p["pain_psu_sd"] * design.standard_normal(n_psu),
    }
    # selection units 1 / (stratum factor x age factor), indexed by 4 * stratum + age group
    unit_flat = (1.0 / (m.stratum_factor[:, None] * m.age_selection[None, :])).ravel()
    response_flat = response.ravel()  # indexed by weighting class 2 * age group + male
    released_units = np.zeros(8)
    respondent_units = np.zeros(8)
    parts: list[tuple[np.ndarray, ...]] = []
    have, released, k = 0, 0, 0
    while have < n:
        rng = _rng(seed, 1, k)
        h = strata.draw(rng, chunk)
        g = _categorical(rng.random(chunk, dtype=np.float32), tilted / tilted.sum())
        male = (rng.random(chunk, dtype=np.float32) >= female_share).astype(np.int8)
        klass = 2 * g + male
        responds = rng.random(chunk, dtype=np.float32) < response_flat[klass]
        cum = np.cumsum(responds)
        if have + cum[-1] >= n:  # stop at the released person who completes the sample
            stop = int(np.searchsorted(cum, n - have)) + 1
            h, g, klass, responds = (a[:stop] for a in (h, g, klass, responds))
        units = unit_flat[4 * h + g]
        who = np.flatnonzero(responds)
        released_units += np.bincount(klass, weights=units, minlength=8)
        respondent_units += np.bincount(klass[who], weights=units[who], minlength=8)
        within = rng.integers(0, per, who.shape[0], dtype=np.int32)
        psu = (h[who] * per + within).astype(np.int32)
        parts.append((psu, g[who], klass[who] % 2 == 0, units[who]))
        have += who.shape[0]
        released += h.shape[0]
        k += 1
    psu, g, female, units = (np.concatenate(a) for a in zip(*parts, strict=True))
    factor = _adjustment_factors(released_units.reshape(4, 2), respondent_units.reshape(4, 2))
    scale = p["population_total"] * float(alloc.sum()) * float(tilted.sum()) / released
    weight = scale * units * factor[g, (~female).astype(np.int8)]
    return _Sample(psu, g, female, weight, released, psu_effects)


def _adjustment_factors(released: np.ndarray, responded: np.ndarray) -> np.ndarray:
    """Non-response adjustment by class; classes without respondents are collapsed over
    age group within sex, then over everything (only happens in tiny samples)."""
    factor = np.divide(released, responded, out=np.zeros_like(released), where=responded > 0)
    empty = (responded == 0) & (released > 0)
    if empty.any():
        for sex in range(2):
            if empty[:, sex].any():
                if responded[:, sex].sum() > 0:
                    factor[:, sex] = released[:, sex].sum() / responded[:, sex].sum()
                else:
                    factor[:, sex] = released.sum() / responded.sum()
    return factor


# --------------------------------------------------------------------- arrow tables --


@lru_cache(maxsize=1)
def arrow_schema() -> pa.Schema:
    """The Arrow schema (with pandas metadata) of the synthetic columns."""
    return pa.Schema.from_pandas(schema.empty_frame(list(COLUMNS)), preserve_index=False)


def _labels(column: str) -> pa.Array:
    return pa.array(list(schema.column_specs()[column].levels), type=pa.large_string())


def _dictionary(column: str, codes: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8), type=pa.int8()),
        _labels(column),
        ordered=arrow_type.ordered,
    )


def respondent_ids(start: int, n: int, total: int) -> pa.Array:
    """Ids "syn00000001", ... for respondents start+1 .. start+n (zero-padded, >= 8 digits),
    built directly as Arrow string buffers (fast for millions of rows)."""
    digits = max(8, len(str(total)))
    number = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    chars = np.empty((n, 3 + digits), dtype=np.uint8)
    chars[:, :3] = np.frombuffer(b"syn", dtype=np.uint8)
    for position in range(2 + digits, 2, -1):  # last digit first
        quotient = number // 10
        chars[:, position] = (number - quotient * 10).astype(np.uint8) + ord("0")
        number = quotient
    offsets = np.arange(0, (n + 1) * (3 + digits), 3 + digits, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )


def _fixed_width_strings(labels: list[str], index: np.ndarray) -> pa.Array:
    """Arrow strings labels[index] for labels of equal length, built from one byte array."""
    width = len(labels[0])
    table = np.frombuffer("".join(labels).encode(), dtype=np.uint8).reshape(len(labels), width)
    chars = table[index]
    offsets = np.arange(0, (index.shape[0] + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), index.shape[0], [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )


def _table(
    m: _Model, people: dict, psu: np.ndarray, weight: np.ndarray, start: int, total: int
) -> pa.Table:
    per = m.params["psus_per_stratum"]
    n_strata = m.params["n_strata"]
    n = psu.shape[0]
    w_h, w_p = len(str(n_strata)), len(str(per))
    stratum_labels = [f"h{s + 1:0{w_h}d}" for s in range(n_strata)]
    psu_labels = [f"{h}-p{j + 1:0{w_p}d}" for h in stratum_labels for j in range(per)]
    sch = arrow_schema()
    t = {f.name: f.type for f in sch}
    columns = {
        "source": pa.repeat(pa.scalar(SOURCE, pa.large_string()), n),
        "survey_year": pa.array(np.full(n, SURVEY_YEAR, dtype=np.int64)),
        "respondent_id": respondent_ids(start, n, total),
        "weight": pa.array(weight),
        "stratum": _fixed_width_strings(stratum_labels, psu // per),
        "psu": _fixed_width_strings(psu_labels, psu),
        "age": pa.array(people["age"]),
        "sex": _dictionary("sex", (~people["female"]).astype(np.int8), t["sex"]),
        "bmi": pa.array(people["bmi"]),
        "education": _dictionary("education", people["education"], t["education"]),
        "physical_activity": _dictionary(
            "physical_activity", people["activity"], t["physical_activity"]
        ),
        "back_pain_severity": _dictionary(
            "back_pain_severity", people["severity"], t["back_pain_severity"]
        ),
        "chronic_pain": pa.array(people["chronic"]),
        "pain_intensity": pa.array(people["intensity"]),
        "gad7_score": pa.array(people["gad7"]),
        "gad7_category": _dictionary("gad7_category", people["gad7_cat"], t["gad7_category"]),
        "anxiety_frequency": _dictionary(
            "anxiety_frequency", people["frequency"], t["anxiety_frequency"]
        ),
        "anxiety_medication": pa.array(people["medication"]),
        "phq8_score": pa.array(people["phq8"]),
        "phq8_category": _dictionary("phq8_category", people["phq8_cat"], t["phq8_category"]),
        "muscle_tension": pa.array(people["tension"]),
        "benzodiazepine_use": pa.array(people["benzo"]),
    }
    return pa.Table.from_arrays([columns[f.name] for f in sch], schema=sch)


def _iter_tables(m: _Model, n: int, seed: int, *, progress: Any = None) -> Iterator[pa.Table]:
    sample = _draw_sample_design(m, n, seed)
    fx = sample.psu_effects
    for k, start in enumerate(range(0, n, _ROWS_CHUNK)):
        sl = slice(start, min(start + _ROWS_CHUNK, n))
        psu = sample.psu[sl]
        rng = _rng(seed, 2, k)
        people = simulate_people(
            m,
            rng,
            psu // m.params["psus_per_stratum"],
            sample.age_group[sl],
            sample.female[sl],
            fx["anxiety"][psu],
            fx["tension"][psu],
            fx["pain"][psu],
        )
        yield _table(m, people, psu, sample.weight[sl], start, n)
        if progress is not None:
            progress.update(psu.shape[0])


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    for name in df.columns:  # make the dtypes exactly the schema's
        want = schema.column_specs()[name].pandas_dtype
        if df[name].dtype != want:
            df[name] = df[name].astype(want)
    return df


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a synthetic Parquet file back with the schema's dtypes."""
    return _to_pandas(pq.read_table(path))


# -------------------------------------------------------------------------- results --


def _truth_module():
    from analysis.data.synthetic import truth as synth_truth

    return synth_truth


@dataclass
class SyntheticWorld:
    """One sample from the synthetic world, with the world's true population estimands.

    ``data`` follows the tidy respondent schema (source "synthetic"). ``truth`` is a dict
    of true population estimands (computed on first access, cached on disk); ``params``
    holds every parameter, the scenario, the seed and the solved (derived) parameters.
    Synthetic data validate the pipeline; they are never evidence.
    """

    data: pd.DataFrame
    params: dict[str, Any]
    _model: _Model = field(repr=False)
    _truth: Any = field(default=None, repr=False)

    @property
    def scenario(self) -> str:
        return self._model.scenario

    @property
    def truth(self) -> dict[str, float]:
        return self.true_estimands().values

    def true_estimands(self, *, progress: bool = False) -> Any:
        """The full truth object (values, Monte-Carlo and reference SEs, definitions)."""
        if self._truth is None:
            self._truth = _truth_module().true_estimands(self._model, progress=progress)
        return self._truth

    @property
    def lazy_truth(self) -> LazyTruth:
        """The truth as a callable computed on first call (what `load` puts in ``attrs``)."""
        return LazyTruth(self._model)

    def to_frame(self) -> pd.DataFrame:
        """The true estimands as a table: estimand, value, Monte-Carlo SE, definition."""
        return self.true_estimands().to_frame()

    def summary(self, *, with_truth: bool = True) -> str:
        """A readable account of the sample, its calibration and (optionally) the truth."""
        df = self.data
        w = df["weight"].to_numpy()
        lines = [
            "Synthetic survey world (validates the pipeline; NEVER evidence)",
            f"  scenario {self.scenario!r}, seed {self.params['seed']}, "
            f"parameters {self._model.hash}"
            + (f", overrides {self._model.overrides}" if self._model.overrides else ""),
            f"  {len(df):,} respondents in {df['psu'].nunique()} PSUs, "
            f"{df['stratum'].nunique()} strata; weights sum to {w.sum():,.0f}, "
            f"range {w.min():,.0f}-{w.max():,.0f}, Kish design effect {kish_deff(w):.2f}",
            "",
            "  Weighted sample margins vs the published figures they are calibrated to:",
        ]
        for key, est in sample_margins(df).items():
            pub = load_spec()["published_checks"].get(key)
            if pub is None:
                continue
            lines.append(
                f"    {key:<22} {100 * est:5.1f}%   published {100 * pub['value']:5.1f}%"
                f"   ({pub['source']})"
            )
        if with_truth:
            lines += ["", *self.true_estimands().summary_lines()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary(with_truth=self._truth is not None)


class LazyTruth:
    """The world's true estimands, computed (or read from the disk cache) on first call.

    Kept in a sample's ``DataFrame.attrs["truth"]`` so that loading a sample never waits for
    the truth: only a notebook that compares with it pays (once; the cache is shared).
    pandas deep-copies ``attrs`` on most operations; copies share this object.
    """

    def __init__(self, model: _Model) -> None:
        self._model = model
        self._values: dict[str, float] | None = None

    def __call__(self) -> dict[str, float]:
        if self._values is None:
            self._values = dict(_truth_module().true_estimands(self._model, progress=False).values)
        return dict(self._values)

    def __deepcopy__(self, memo: dict) -> LazyTruth:
        return self

    def __repr__(self) -> str:
        state = "computed" if self._values is not None else "not computed yet"
        return f"LazyTruth(scenario={self._model.scenario!r}, {state})"


def kish_deff(weight: np.ndarray) -> float:
    """Kish's design effect from unequal weighting, 1 + CV^2 of the weights."""
    w = np.asarray(weight, dtype=float)
    return float(len(w) * (w**2).sum() / w.sum() ** 2)


def sample_margins(df: pd.DataFrame) -> dict[str, float]:
    """Weighted margins of a synthetic sample, named like ``published_checks``."""
    w = df["weight"].to_numpy()
    women = (df["sex"] == "female").to_numpy()
    pain = (df["back_pain_severity"] != "not at all").to_numpy()
    gad = df["gad7_score"].to_numpy(dtype=float)
    cat = df["gad7_category"]

    def mean(x: np.ndarray, mask: np.ndarray | None = None) -> float:
        mask = np.ones_like(w, dtype=bool) if mask is None else mask
        return float((w * x)[mask].sum() / w[mask].sum())

    return {
        "back_pain_any": mean(pain),
        "back_pain_any_women": mean(pain, women),
        "back_pain_any_men": mean(pain, ~women),
        "gad7_ge5": mean(gad >= 5),
        "gad7_ge5_women": mean(gad >= 5, women),
        "gad7_ge5_men": mean(gad >= 5, ~women),
        "gad7_mild": mean((cat == "mild").to_numpy()),
        "gad7_moderate": mean((cat == "moderate").to_numpy()),
        "gad7_severe": mean((cat == "severe").to_numpy()),
        "chronic_pain": mean(df["chronic_pain"].to_numpy(dtype=bool)),
        "phq8_ge5": mean(df["phq8_score"].to_numpy(dtype=float) >= 5),
    }


def _describe_params(m: _Model, n: int, seed: int) -> dict[str, Any]:
    return {
        **copy.deepcopy(m.params),
        "scenario": m.scenario,
        "overrides": dict(m.overrides),
        "seed": seed,
        "n": n,
        "params_hash": m.hash,
        "derived": copy.deepcopy(m.derived),
    }


def generate(
    n: int = 30_000,
    seed: int = 2019,
    scenario: str = "literature",
    overrides: Mapping[str, Any] | None = None,
) -> SyntheticWorld:
    """Draw one survey sample of ``n`` adults from the synthetic world (deterministic in seed).

    ``scenario``: "literature" (default) or "null"; ``overrides``: {parameter: value} for
    any parameter of ``synthetic_world.yaml``. Bad values raise `SynthParameterError`.
    """
    n = _check_size(n)
    seed = _check_seed(seed)
    m = _model(scenario, overrides)
    table = pa.concat_tables(list(_iter_tables(m, n, seed)))
    df = schema.validate(_to_pandas(table), where="synthetic world sample")
    return SyntheticWorld(data=df, params=_describe_params(m, n, seed), _model=m)


@dataclass
class SyntheticParquet:
    """What `generate_to_parquet` wrote: the file, its size, parameters and the truth."""

    path: Path
    n: int
    params: dict[str, Any]
    _model: _Model = field(repr=False)
    _truth: Any = field(default=None, repr=False)

    def true_estimands(self, *, progress: bool = False) -> Any:
        """The true population estimands of the world this file was drawn from."""
        if self._truth is None:
            self._truth = _truth_module().true_estimands(self._model, progress=progress)
        return self._truth

    @property
    def truth(self) -> dict[str, float]:
        return self.true_estimands().values

    def summary(self) -> str:
        return "\n".join(
            [
                "Synthetic survey world (validates the pipeline; NEVER evidence)",
                f"  wrote {self.n:,} rows to {self.path}",
                f"  scenario {self._model.scenario!r}, seed {self.params['seed']}, "
                f"parameters {self._model.hash}",
            ]
        )


def generate_to_parquet(
    path: str | os.PathLike[str],
    n: int = 10_000_000,
    seed: int = 2019,
    scenario: str = "literature",
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
) -> SyntheticParquet:
    """Stream a sample of ``n`` adults to Parquet, chunk by chunk (bounded memory).

    The file is written to a temporary file beside ``path`` and renamed at the end, so a
    failure never leaves a half-written file. Parameters are checked before anything is
    written. The rows are identical to ``generate(n, seed, scenario, overrides).data``.
    """
    from tqdm.auto import tqdm

    n = _check_size(n)
    seed = _check_seed(seed)
    m = _model(scenario, overrides)
    params = _describe_params(m, n, seed)
    sch = arrow_schema().with_metadata(
        {
            **arrow_schema().metadata,
            b"painanx.synthetic": json.dumps(
                {"scenario": scenario, "seed": seed, "params_hash": m.hash}
            ).encode(),
        }
    )
    bar = tqdm(total=n, unit="rows", desc="synthetic world", disable=not progress)
    try:
        with atomic_path(path) as tmp:
            _write_in_background(tmp, sch, _iter_tables(m, n, seed, progress=bar))
    finally:
        bar.close()
    return SyntheticParquet(path=Path(path), n=n, params=params, _model=m)


# Dictionary-encode (and keep min/max statistics for) the columns with few distinct values
# only: doing it for the continuous ones and the ids costs time and saves nothing.
_NO_DICTIONARY = {"respondent_id", "weight", "bmi", "muscle_tension"}


def _write_in_background(path: Path, sch: pa.Schema, tables: Iterator[pa.Table]) -> None:
    """Write tables to Parquet in a second thread while the next chunk is being drawn."""
    chunks: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            few_values = [f.name for f in sch if f.name not in _NO_DICTIONARY]
            with pq.ParquetWriter(
                path,
                sch,
                compression="snappy",
                use_dictionary=few_values,
                write_statistics=few_values,
            ) as writer:
                while (table := chunks.get()) is not None:
                    writer.write_table(table.replace_schema_metadata(sch.metadata))
        except BaseException as exc:
            failure.append(exc)
            while chunks.get() is not None:  # drain so the producer never blocks
                pass

    worker = threading.Thread(target=consume, name="synth-parquet-writer", daemon=True)
    worker.start()
    try:
        for table in tables:
            if failure:
                break
            chunks.put(table)
    finally:
        chunks.put(None)
        worker.join()
    if failure:
        raise failure[0]
