"""Calibration: intercepts and thresholds solved so that the population hits the targets.

Whatever the scenario or the overrides, the population reproduces the published margins of
``synthetic_world.yaml`` (39.0% back pain, 15.6% GAD-7 >= 5, ...): exactly where a closed
form exists (Gauss-Hermite quadrature for the scores), on a fixed-seed population draw
otherwise. Solutions are cached in-process and on disk, keyed on the parameters and the
code that solves them; those of the default scenarios ship with the code
(resources/synthetic_calibration/), so a fresh clone does not solve them again in every notebook
that loads the world.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from analysis.core import paths, provenance
from analysis.core.io import write_text_atomic
from analysis.data import world_spec
from analysis.data.synthetic import model as scm
from analysis.data.synthetic import spec
from analysis.data.synthetic.model import (
    GAD7_ITEMS,
    PHQ8_ITEMS,
    WorldModel,
    benzo_eta,
    chronic_eta,
    draw_population,
    medication_eta,
    normal_tail_of_scores,
    observed_severity_probs,
    pain_eta,
    population_structure,
    severity_probs,
)
from analysis.data.synthetic.spec import SynthParameterError, params_hash, resolve_params

_DERIVED: dict[str, dict[str, Any]] = {}  # solved parameters by parameter hash, this process


def uncalibrated_model(
    scenario: str = "literature", overrides: Mapping[str, Any] | None = None
) -> WorldModel:
    """The model of a scenario and overrides, its intercepts and thresholds not yet solved."""
    params = resolve_params(scenario, overrides)
    return WorldModel(
        params=params,
        scenario=scenario,
        overrides=dict(overrides or {}),
        hash=params_hash(params),
        **population_structure(params),
    )


def world_model(
    scenario: str = "literature", overrides: Mapping[str, Any] | None = None
) -> WorldModel:
    """The calibrated model for a scenario and overrides: solved once, then read from this
    process, the package (default scenarios) or the disk cache."""
    model = uncalibrated_model(scenario, overrides)
    key = model.hash
    if key not in _DERIVED:
        name = calibration_file_name(key)
        for folder in (packaged_folder(), cache_dir()):
            try:
                _DERIVED[key] = json.loads((folder / name).read_text())
                break
            except (OSError, ValueError):
                continue
        else:
            calibrate(model)
            _DERIVED[key] = copy.deepcopy(model.derived)
            try:
                write_text_atomic(cache_dir() / name, json.dumps(_DERIVED[key], indent=1) + "\n")
            except OSError:
                pass  # a read-only cache only costs time
    model.derived = copy.deepcopy(_DERIVED[key])
    return model


def calibration_file_name(params_key: str) -> str:
    """The file of a solved calibration: the parameters' hash and the solving code's."""
    return f"calibration-{params_key}-{_code_hash()}.json"


def packaged_folder() -> Path:
    """Where the calibrations of the default scenarios ship: resources/synthetic_calibration/.
    A change to the parameters or the solving code changes the file name, so a stale one is
    never read; tests/test_synth.py solves them again and compares."""
    return Path(__file__).resolve().parents[2] / "resources" / "synthetic_calibration"


def write_packaged_calibrations() -> list[Path]:
    """Solve the calibration of every scenario and store it in the package, replacing stale
    files (run after changing the world's parameters or code:
    ``python -m analysis.models.synthetic_truth`` does it, then the truths)."""
    folder = packaged_folder()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario in world_spec.scenario_names():
        model = uncalibrated_model(scenario)
        calibrate(model)
        text = json.dumps(model.derived, indent=1) + "\n"
        written.append(write_text_atomic(folder / calibration_file_name(model.hash), text))
    for old in folder.glob("calibration-*.json"):
        if old not in written:
            old.unlink()
    return written


def cache_dir() -> Path:
    """Where solved calibrations and computed truths are cached: ``$PAINANX_CACHE`` or
    <project>/.painanx-cache/synth (never committed; safe to delete)."""
    env = os.environ.get("PAINANX_CACHE")
    return Path(env) if env else paths.project_root() / ".painanx-cache" / "synth"


@lru_cache(maxsize=1)
def _code_hash() -> str:
    """The code the solved parameters depend on: the spec (and its reader), the model and this
    calibration."""
    return provenance.source_hash([spec, world_spec, scm, __file__])[:12]


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


def calibrate(m: WorldModel) -> None:
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
        ob = p_ob * special.expit(cut - act - p["activity_log_odds_obesity"])
        return float((cell * (ob + (1 - p_ob) * special.expit(cut - act))).sum())

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
        tails = normal_tail_of_scores(means, sd_v, kappa, GAD7_ITEMS, a, b).reshape(2, 4, 3)
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
        tails = normal_tail_of_scores(means, 1.0, kappa, PHQ8_ITEMS, a, b)
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
    comp = world_spec.load_spec()["computation"]
    rng = np.random.Generator(np.random.PCG64(comp["calibration_seed"]))
    draw = draw_population(m, rng, comp["calibration_population_size"], keep_latent=True)
    g, female = draw["age_group"], draw["female"]
    rest = draw["eta0"]  # provisional intercepts are 0: eta0 == the rest
    pain_targets = m.arr("back_pain_by_age_group")
    groups = [g == k for k in range(4)]

    def pain_eq(x: np.ndarray) -> np.ndarray:
        prob = special.expit(x[g] + x[4] * female + rest)
        return np.array([prob[mask].mean() for mask in groups] + [prob[female].mean()]) - np.append(
            pain_targets, p["back_pain_women"]
        )

    x = _solve_system(
        pain_eq, np.append(special.logit(pain_targets) - rest.mean(), 0.1), "back_pain_by_age_group"
    )
    d.update(pain_age_intercepts=x[:4].tolist(), pain_female=float(x[4]))
    eta0 = pain_eta(m, g, female, rest)
    d["pain_cut2"] = -_solve_shift(
        lambda c: float(special.expit(eta0 + c).mean()),
        p["back_pain_somewhere_or_worse_prevalence"],
        "back_pain_somewhere_or_worse_prevalence",
    )
    d["pain_cut3"] = -_solve_shift(
        lambda c: float(special.expit(eta0 + c).mean()),
        p["back_pain_a_lot_prevalence"],
        "back_pain_a_lot_prevalence",
    )
    cuts = m.severity_cuts()
    sev_probs = severity_probs(eta0, cuts)
    gcat = draw["gad7_cat"]
    med_rest = medication_eta(m, gcat, female) - d["medication_intercept"]
    d["medication_intercept"] = _solve_shift(
        lambda c: float(special.expit(c + med_rest).mean()),
        p["anxiety_medication_prevalence"],
        "anxiety_medication_prevalence",
    )
    medication = rng.random(g.shape[0]) < special.expit(medication_eta(m, gcat, female))
    benzo_rest = (
        np.stack([benzo_eta(m, gcat, medication, np.full(g.shape[0], k)) for k in range(4)], axis=1)
        - d["benzodiazepine_intercept"]
    )
    d["benzodiazepine_intercept"] = _solve_shift(
        lambda c: float((sev_probs * special.expit(c + benzo_rest)).sum(axis=1).mean()),
        p["benzodiazepine_use_prevalence"],
        "benzodiazepine_use_prevalence",
    )
    q = special.expit(d["benzodiazepine_intercept"] + benzo_rest)
    observed = observed_severity_probs(eta0, cuts, q, p["benzodiazepine_pain_log_or"])
    chronic_rest = (
        np.stack([chronic_eta(m, g, female, np.full(g.shape[0], k)) for k in range(4)], axis=1)
        - d["chronic_intercept"]
        - d["chronic_female"] * female[:, None]
    )

    def chronic_eq(x: np.ndarray) -> np.ndarray:
        prob = (observed * special.expit(x[0] + x[1] * female[:, None] + chronic_rest)).sum(axis=1)
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
            lambda c: float(special.expit((theta + c) / scale).mean()),
            float(share),
            "anxiety_frequency_shares",
        )
        for share in cum
    ]
