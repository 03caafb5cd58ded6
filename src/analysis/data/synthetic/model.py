"""The structural causal model of the synthetic world: who a person is, given the design.

`WorldModel` holds the resolved parameters, the fixed population structure and the
solved (calibrated, `analysis.data.synthetic.calibration`) parameters; `simulate_people`
draws every variable of persons whose stratum, age group, sex and PSU effects are given.
The linear predictors (``*_eta``) and the exact severity probabilities are public because
the calibration and the census of the truths evaluate them in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

_AGE_LOW = np.array([18, 30, 45, 65])
_AGE_WIDTH = np.array([12, 15, 20, 21])  # integer ages 18-29, 30-44, 45-64, 65-85
GAD7_ITEMS = 7
PHQ8_ITEMS = 8


# --------------------------------------------------------------------- math helpers --


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


def normal_tail_of_scores(
    means: np.ndarray, sd: float, kappa: float, n_items: int, a: float, b: np.ndarray
) -> np.ndarray:
    """P(score >= 5, 10, 15) when the latent is mean + skew(N(0, sd^2), kappa); exact up to
    Gauss-Hermite quadrature; (m, 3)."""
    means = np.asarray(means, dtype=float)
    nodes = (means[:, None] + skew(sd * _GH_X, kappa)[None, :]).ravel()
    pmf = sum_score_pmf(nodes, n_items, a, b)
    tails = np.stack([pmf[:, k:].sum(axis=1) for k in (5, 10, 15)], axis=1)
    return (tails.reshape(len(means), len(_GH_X), 3) * _GH_W[None, :, None]).sum(axis=1)


def skew(v: np.ndarray, kappa: float) -> np.ndarray:
    """Right-skewing transform of a normal latent, (exp(kappa v) - 1) / kappa."""
    return np.expm1(kappa * v) / kappa


def categorical(u: np.ndarray, shares: Any) -> np.ndarray:
    """Category codes 0..k-1 from uniforms, for a handful of categories (comparisons)."""
    cum = np.cumsum(np.asarray(shares, dtype=float))[:-1]
    out = np.zeros(u.shape[0], dtype=np.int8)
    for c in cum:
        out += u >= c
    return out


# --------------------------------------------------------------------------- model --


@dataclass
class WorldModel:
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


def population_structure(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
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


# ------------------------------------------------------------------ the SCM itself --


def _draw_demographics(m: WorldModel, rng: np.random.Generator, g: np.ndarray) -> dict:
    p, d = m.params, m.derived
    n = g.shape[0]
    age = (_AGE_LOW[g] + np.floor(rng.random(n) * _AGE_WIDTH[g])).astype(np.float64)
    edu = categorical(rng.random(n), p["education_shares"])
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
    m: WorldModel, rng: np.random.Generator, g: np.ndarray, female: np.ndarray, u_anx: np.ndarray
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
    m: WorldModel,
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


def tension_of(m: WorldModel, tension_base: np.ndarray, gad7_cat: np.ndarray | int) -> np.ndarray:
    """Reported muscle tension (0-10, two decimals) for a GAD-7 category (actual or set)."""
    return np.round(np.clip(tension_base + m.tension_by_category()[gad7_cat], 0.0, 10.0), 2)


def _pain_eta_rest(
    m: WorldModel,
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


def pain_eta(m: WorldModel, g: np.ndarray, female: np.ndarray, rest: np.ndarray) -> np.ndarray:
    d = m.derived
    return np.asarray(d["pain_age_intercepts"])[g] + d["pain_female"] * female + rest


def _severity(latent: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return ((latent > cuts[0]).astype(np.int8) + (latent > cuts[1]) + (latent > cuts[2])).astype(
        np.int8
    )


def medication_eta(m: WorldModel, gad7_cat: np.ndarray, female: np.ndarray) -> np.ndarray:
    p = m.params
    cat = np.concatenate([[0.0], m.arr("anxiety_medication_log_or_gad7")])
    return (
        m.derived["medication_intercept"]
        + cat[gad7_cat]
        + p["anxiety_medication_log_or_female"] * female
    )


def benzo_eta(
    m: WorldModel, gad7_cat: np.ndarray, medication: np.ndarray, pain_level: np.ndarray
) -> np.ndarray:
    p = m.params
    cat = np.concatenate([[0.0], m.arr("benzodiazepine_log_or_gad7")])
    return (
        m.derived["benzodiazepine_intercept"]
        + cat[gad7_cat]
        + p["benzodiazepine_log_or_anxiety_medication"] * medication
        + p["benzodiazepine_log_or_back_pain_level"] * pain_level
    )


def chronic_eta(
    m: WorldModel, g: np.ndarray, female: np.ndarray, severity: np.ndarray
) -> np.ndarray:
    d = m.derived
    sev = np.concatenate([[0.0], m.arr("chronic_pain_log_or_back_pain")])
    return (
        d["chronic_intercept"]
        + d["chronic_female"] * female
        + m.arr("chronic_pain_log_or_age_group")[g]
        + sev[severity]
    )


def simulate_people(
    m: WorldModel,
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
    eta0 = pain_eta(m, g, female, rest)
    untreated = eta0 + rng.logistic(size=n)
    cuts = m.severity_cuts()
    severity0 = _severity(untreated, cuts)
    medication = rng.random(n) < special.expit(medication_eta(m, gcat, female))
    benzo = rng.random(n) < special.expit(benzo_eta(m, gcat, medication, severity0))
    severity = _severity(untreated + p["benzodiazepine_pain_log_or"] * benzo, cuts)
    chronic = rng.random(n) < special.expit(chronic_eta(m, g, female, severity))
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


def draw_population(m: WorldModel, rng: np.random.Generator, n: int, *, keep_latent: bool) -> dict:
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


# ------------------------------------------------- severity probabilities, exactly --


def severity_probs(eta0: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """P(severity = 0..3) for a latent eta0 + logistic noise cut at ``cuts``; (n, 4)."""
    above = special.expit(eta0[:, None] - cuts[None, :])  # P(latent > cut_k)
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
            with_benzo[:, j] += benzo_prob[:, k] * (
                special.expit(hi - eta0) - special.expit(lo - eta0)
            )
    return with_benzo, (1 - benzo_prob) * untreated
