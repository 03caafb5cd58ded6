"""On a simulated population with known truth, the 95% intervals cover it about 95% of the time.

A finite population of 20 strata x 100 clusters (PSUs) of 30-120 people, with cluster effects
on both a domain indicator ("anxious") and a binary outcome ("pain"). Each replicate draws 4
PSUs per stratum with replacement and 10 people per drawn PSU with replacement: the
with-replacement two-stage design whose ultimate-cluster variance estimator the survey core
uses is unbiased. Weights are inverse selection probabilities. The truths are the finite
population values. Synthetic data: validates the estimators, is never evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.survey import SurveyDesign

N_STRATA, PSU_PER_STRATUM, PSU_DRAWN, PEOPLE_DRAWN = 20, 100, 4, 10
REPLICATES = 1000
# With 1000 replicates the coverage of a 95% interval has binomial SE
# sqrt(0.95 * 0.05 / 1000) = 0.0069, so [0.93, 0.97] is 0.95 +/- 2.9 SE (a correct interval
# falls outside with probability ~0.4%), while an interval with true coverage 0.90
# (SE 0.0095) reaches 0.93 with probability ~0.1%: the test tells 95% from 90%.
COVERAGE_BOUNDS = (0.93, 0.97)


def make_population(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n_psu = N_STRATA * PSU_PER_STRATUM
    size = rng.integers(30, 121, n_psu)
    stratum_effect = rng.normal(0, 0.4, N_STRATA)
    psu_stratum = np.repeat(np.arange(N_STRATA), PSU_PER_STRATUM)
    psu_effect = rng.normal(0, 0.5, n_psu)
    person_psu = np.repeat(np.arange(n_psu), size)
    anxious = rng.random(len(person_psu)) < 1 / (1 + np.exp(-(-0.6 + 0.8 * psu_effect[person_psu])))
    eta = -1.3 + 0.7 * anxious + psu_effect[person_psu] + stratum_effect[psu_stratum[person_psu]]
    pain = rng.random(len(person_psu)) < 1 / (1 + np.exp(-eta))
    return {
        "size": size,
        "start": np.concatenate([[0], np.cumsum(size)[:-1]]),
        "anxious": anxious,
        "pain": pain,
    }


def draw_sample(population: dict, rng: np.random.Generator) -> pd.DataFrame:
    strata = np.repeat(np.arange(N_STRATA), PSU_DRAWN)
    psu = strata * PSU_PER_STRATUM + rng.integers(0, PSU_PER_STRATUM, len(strata))
    size = population["size"][psu]
    person = population["start"][psu][:, None] + np.floor(
        rng.random((len(psu), PEOPLE_DRAWN)) * size[:, None]
    ).astype(int)
    weight = (PSU_PER_STRATUM / PSU_DRAWN) * (size / PEOPLE_DRAWN)
    return pd.DataFrame(
        {
            "stratum": np.repeat(strata, PEOPLE_DRAWN),
            "draw": np.repeat(np.tile(np.arange(PSU_DRAWN), N_STRATA), PEOPLE_DRAWN),
            "weight": np.repeat(weight, PEOPLE_DRAWN),
            "anxious": population["anxious"][person.ravel()],
            "pain": population["pain"][person.ravel()],
        }
    )


@pytest.mark.slow
def test_intervals_cover_the_truth_95_percent():
    rng = np.random.default_rng(20261124)
    population = make_population(rng)
    pain, anxious = population["pain"], population["anxious"]
    truth = {
        "proportion": pain.mean(),
        "domain proportion": pain[anxious].mean(),
        "prevalence ratio": pain[anxious].mean() / pain[~anxious].mean(),
    }
    covered = {name: 0 for name in truth}
    for _ in range(REPLICATES):
        sample = draw_sample(population, rng)
        design = SurveyDesign(sample, weight="weight", strata="stratum", psu="draw", nest=True)
        intervals = {
            "proportion": design.proportion("pain").ci().iloc[0],
            "domain proportion": design.proportion("pain", domain="anxious").ci().iloc[0],
            "prevalence ratio": design.prevalence_ratio(
                "pain", by="anxious", numerator=True, denominator=False
            ).ci(),
        }
        for name, (low, high) in intervals.items():
            covered[name] += low <= truth[name] <= high
    coverage = {name: hits / REPLICATES for name, hits in covered.items()}
    low, high = COVERAGE_BOUNDS
    assert all(low <= c <= high for c in coverage.values()), coverage
