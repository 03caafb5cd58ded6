"""The complex sample design: strata, PSUs, unequal selection, non-response, weights.

A stratified two-stage design: >= 2 PSUs per stratum with PSU random effects on anxiety,
muscle tension and back pain, unequal selection probabilities (oversampled strata and adults
65+), and non-response adjusted within weighting classes (age group x sex).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.data.synthetic.model import WorldModel, categorical

_RELEASE_CHUNK = 1_000_000  # released (selected) persons drawn per design chunk


@dataclass
class DesignSample:
    """Respondents of one sample: design skeleton and final weights."""

    psu: np.ndarray
    age_group: np.ndarray
    female: np.ndarray
    weight: np.ndarray
    released: int
    psu_effects: dict[str, np.ndarray]


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


def random_stream(seed: int, *key: int) -> np.random.Generator:
    """The independent random stream ``key`` of a sample's seed (design chunks, attributes)."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=key)))


def draw_sample_design(m: WorldModel, n: int, seed: int) -> DesignSample:
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

    design = random_stream(seed, 0)
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
        rng = random_stream(seed, 1, k)
        h = strata.draw(rng, chunk)
        g = categorical(rng.random(chunk, dtype=np.float32), tilted / tilted.sum())
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
    return DesignSample(psu, g, female, weight, released, psu_effects)


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


def kish_deff(weight: np.ndarray) -> float:
    """Kish's design effect from unequal weighting, 1 + CV^2 of the weights."""
    w = np.asarray(weight, dtype=float)
    return float(len(w) * (w**2).sum() / w.sum() ** 2)
