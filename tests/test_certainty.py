"""GRADE certainty: every branch of the start, the five domains, the upgrades and the levels."""

from __future__ import annotations

import dataclasses

import pytest

from analysis.claims.certainty import (
    certainty,
    imprecision,
    inconsistency,
    indirectness,
)
from analysis.claims.registry import Judgement, load_registry
from analysis.core.findings import Finding

REG = load_registry()
E = REG.estimands


def F(key, est, lo=None, hi=None, source="published", design="RCT", **kw) -> Finding:
    e = E[key]
    return Finding(
        claim_id=e.claim_id,
        estimand=key,
        label=key,
        source=source,
        estimate=est,
        ci_low=lo,
        ci_high=hi,
        measure=e.measure,
        null_value=e.null,
        design=design,
        **kw,
    )


def claim(cid, **grade):
    """A registry claim with its stated judgements replaced (none unless given)."""
    return dataclasses.replace(REG.claim(cid), grade={k: Judgement(*v) for k, v in grade.items()})


C9 = ["acupuncture_vs_control_pain", "massage_vs_control_pain", "yoga_vs_control_pain"]


def test_randomised_evidence_with_no_concern_is_high():
    fs = [F(k, -15, -20, -12) for k in C9]
    c = certainty(claim("C9"), fs, E)
    assert (c.start, c.level) == ("high", "high")
    assert all(d.rating == "not serious" for d in c.domains.values())
    assert c.upgrades == []  # randomised evidence is never upgraded


def test_observational_evidence_starts_low_and_each_serious_domain_costs_a_level():
    fs = [F("or_low_back_pain_3m_obesity", 1.5, 1.3, 1.7, source="nhis", design="survey")]
    assert certainty(claim("C7"), fs, E).level == "low"
    serious = certainty(claim("C7", risk_of_bias=("serious", "why")), fs, E)
    assert serious.level == "very low" and serious.domains["risk_of_bias"].reason == "why"
    assert not serious.domains["risk_of_bias"].computed
    # never below very low
    both = claim("C7", risk_of_bias=("very serious", "a"), publication_bias=("serious", "b"))
    assert certainty(both, fs, E).level == "very low"


def test_stated_judgements_lower_randomised_evidence():
    fs = [F(k, -15, -20, -12) for k in C9]
    c = certainty(claim("C9", risk_of_bias=("serious", "unblinded")), fs, E)
    assert c.level == "moderate"
    c = certainty(
        claim("C9", risk_of_bias=("very serious", "x"), publication_bias=("serious", "y")), fs, E
    )
    assert c.level == "very low"


@pytest.mark.parametrize(
    ("cis", "rating"),
    [
        ([(-15, -20, -12)] * 3, "not serious"),
        ([(-15, -20, -12), (-15, -20, -12), (-8, -14, -2)], "serious"),  # crosses -10
        ([(-5, -12, 2), (-3, -11, 1), (-8, -14, 3)], "very serious"),  # every CI crosses
    ],
)
def test_imprecision_from_each_ci_against_its_threshold(cis, rating):
    fs = [F(k, *ci) for k, ci in zip(C9, cis, strict=True)]
    checks = {k: c for c in REG.claim("C9").checks for k in c.keys()}
    assert imprecision(fs, E, checks).rating == rating


def test_imprecision_of_a_level_uses_the_level_and_needs_a_ci():
    checks = {k: c for c in REG.claim("C8").checks for k in c.keys()}
    key = "proportion_recovered_6_weeks_acute"
    assert imprecision([F(key, 0.6, 0.55, 0.65)], E, checks).rating == "not serious"
    assert imprecision([F(key, 0.55, 0.45, 0.65)], E, checks).rating == "serious"
    no_ci = imprecision([F(key, 0.6)], E, checks)
    assert no_ci.rating == "serious" and "No finding has a confidence interval" in no_ci.reason


def test_inconsistency_from_i2_prediction_interval_and_opposite_directions():
    key = "acupuncture_vs_control_pain"
    assert inconsistency([F(key, -15, -20, -12, extra={"I2": 20.0})], E).rating == "not serious"
    high_i2 = inconsistency([F(key, -15, -20, -12, extra={"I2": 80.0})], E)
    assert high_i2.rating == "serious" and "I² = 80%" in high_i2.reason
    pi = {"I2": 30.0, "pi_low": -35.0, "pi_high": 5.0}
    assert "prediction interval" in inconsistency([F(key, -15, -20, -12, extra=pi)], E).reason
    opposite = [F(key, -15, -20, -12), F("massage_vs_control_pain", 8, 3, 12)]
    assert "opposite sides of the claim" in inconsistency(opposite, E).reason
    # agreeing findings on scales that move in opposite ways are consistent
    agree = [
        F("or_low_back_pain_3m_nervous_most_plus", 3.0, 2.5, 3.5, source="nhis"),
        F("within_person_bodily_pain_per_nervousness_step", -3.0, -4.0, -2.0, source="help"),
    ]
    assert inconsistency(agree, E).rating == "not serious"


def test_indirectness_from_proxies_indirect_comparisons_and_populations():
    key = "indirect_exercise_vs_benzodiazepine_pain"
    assert indirectness([F("acupuncture_vs_control_pain", -15, -20, -12)]).rating == "not serious"
    assert "proxy outcome" in indirectness([F(key, -15, -20, -12, extra={"match": "proxy"})]).reason
    indirect = indirectness([F(key, -15, -20, -12, extra={"comparison": "indirect"})])
    assert indirect.rating == "serious" and "indirect comparison" in indirect.reason
    help_f = F("within_person_bodily_pain_per_nervousness_step", -4, -6, -2, source="help")
    assert "detoxification cohort" in indirectness([help_f]).reason


def test_a_stated_domain_counts_when_worse_than_the_computed_one():
    fs = [F(k, -15, -20, -12) for k in C9]
    c = certainty(claim("C9", indirectness=("serious", "controls differ")), fs, E)
    assert c.domains["indirectness"].rating == "serious"
    assert c.domains["indirectness"].reason == "controls differ" and c.level == "moderate"


def test_large_effect_and_dose_response_upgrade_observational_evidence():
    big = F("or_low_back_pain_3m_nervous_most_plus", 6.0, 5.2, 7.0, source="nhis", design="survey")
    c = certainty(claim("C3"), [big], E)
    assert [u["name"] for u in c.upgrades] == ["large effect"] and c.upgrades[0]["levels"] == 2
    assert c.level == "high"
    moderate = dataclasses.replace(big, estimate=2.5, ci_low=2.1, ci_high=3.0)
    trend = F(
        "trend_nervousness_frequency_low_back_pain_3m",
        1.3,
        1.2,
        1.4,
        source="nhis",
        design="survey",
    )
    c = certainty(claim("C3"), [moderate, trend], E)
    assert [u["name"] for u in c.upgrades] == ["large effect", "dose-response"]
    assert c.level == "high"  # low + 1 + 1
    small = dataclasses.replace(big, estimate=1.5, ci_low=1.3, ci_high=1.7)
    flat = dataclasses.replace(trend, estimate=1.02, ci_low=0.98, ci_high=1.06)
    assert certainty(claim("C3"), [small, flat], E).upgrades == []
    # a protective ratio counts by its inverse
    c5 = F("or_low_back_pain_3m_obesity", 0.3, 0.2, 0.45, source="nhis", design="survey")
    assert [u["name"] for u in certainty(claim("C7"), [c5], E).upgrades] == ["large effect"]


def test_no_evidence_is_very_low_and_says_why():
    c = certainty(claim("C2"), [], E)
    assert c.level == "very low"
    assert all("No evidence" in d.reason for d in c.domains.values())
    assert "very low" in c.summary()


def test_a_statement_is_rated_as_observational_evidence_without_imprecision():
    statement = F(
        "regulator_statement_benzodiazepine_dependence_withdrawal", None, design="regulator"
    )
    c = certainty(claim("C5"), [statement], E)
    assert c.start == "low" and c.domains["imprecision"].rating == "not serious"
    assert "statements carry no interval" in c.domains["imprecision"].reason
    assert c.level == "low"
