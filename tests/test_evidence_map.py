"""The published-evidence -> claims-registry mapping: valid, applied as written, and the
verdicts it yields are the registry's rules applied to the mapped numbers."""

from __future__ import annotations

import copy

import pytest

from analysis.claims import verdicts as claims
from analysis.claims.registry import load_registry
from analysis.evidence import mapping as evidence_map
from analysis.evidence.studies import evidence_findings, study_finding

NOT_INSUFFICIENT = {"C1", "C4", "C6", "C7", "C8"}  # claims whose primary keys have a mapping


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def context(studies):
    return evidence_findings(studies)


@pytest.fixture(scope="module")
def mapped(studies, context, registry):
    return evidence_map.registry_findings(studies, context, registry.estimands)


def test_mapping_file_is_valid(studies, registry):
    assert evidence_map.validate_mapping(studies, registry.estimands) == []


def test_mapping_names_real_keys_studies_and_agreeing_measures(studies, registry):
    spec = evidence_map.mapping()
    ids = set(studies["study_id"])
    groups = set(studies["pool_group"].dropna())
    for m in spec["mappings"]:
        e = registry.estimands[m["estimand"]]  # KeyError = unknown registry key
        for fld in ("study", "baseline", "followup"):
            if fld in m:
                assert m[fld] in ids, m
        if "pool_group" in m:
            assert m["pool_group"] in groups, m
            measure = studies.loc[studies["pool_group"] == m["pool_group"], "effect_measure"]
            src = measure.iloc[0]
        elif "study" in m:
            src = studies.set_index("study_id").loc[m["study"], "effect_measure"]
        else:
            src = m["derive"]
        assert spec["measures"][src].lower() == e.measure.lower(), m
        assert m["reason"].strip()
    for k in spec["unmapped"]:
        assert k in ids or k in groups, k


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda s: s["mappings"][0].update(estimand="no_such_key"), "not a registry estimand"),
        (lambda s: s["mappings"][0].update(study="no_such_study"), "unknown study id"),
        (lambda s: s["mappings"][0].update(study="blanco2018_misuse_among_users"), "translates"),
        (lambda s: s["mappings"][0].update(study="paige2017_smt_acute"), "not verified"),
        (lambda s: s["unmapped"].pop("demyttenaere2007_mood"), "neither mapped nor listed"),
        (lambda s: s["mappings"][0].update(match="maybe"), "'match'"),
    ],
)
def test_validation_catches_bad_entries(studies, registry, mutate, expected):
    spec = copy.deepcopy(evidence_map.mapping())
    mutate(spec)
    problems = evidence_map.validate_mapping(studies, registry.estimands, spec)
    assert any(expected in p for p in problems), problems


def test_rescaling_and_sign_come_from_the_data(studies, mapped):
    spec = evidence_map.mapping()
    entry = next(m for m in spec["mappings"] if m["estimand"] == "benzodiazepine_vs_placebo_pain")
    src = study_finding(studies, entry["study"])
    dst = spec["estimand_scales"][entry["estimand"]]
    factor = (dst["max"] - dst["min"]) / (entry["scale"]["max"] - entry["scale"]["min"])
    f = next(x for x in mapped if x.estimand == "benzodiazepine_vs_placebo_pain")
    lo, hi = sorted(entry["sign"] * factor * v for v in (src.ci_low, src.ci_high))
    assert f.estimate == pytest.approx(entry["sign"] * factor * src.estimate, abs=1e-12)
    assert (f.ci_low, f.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert f.extra["match"] == "proxy"
    assert any("Proxy outcome" in c for c in f.caveats)


def test_percent_reduction_is_derived_from_the_two_levels(studies, mapped):
    f = next(x for x in mapped if x.estimand == "percent_pain_reduction_6_weeks_acute")
    b = study_finding(studies, "menezescosta2012_acute_baseline").estimate
    w6 = study_finding(studies, "menezescosta2012_acute_6weeks").estimate
    assert f.estimate == pytest.approx(100 * (b - w6) / b)
    assert f.ci_low is None and f.ci_high is None


def test_findings_carry_registry_measure_null_and_claim(mapped, registry):
    assert mapped
    for f in mapped:
        e = registry.estimands[f.estimand]
        assert f.measure == e.measure and f.null_value == e.null and f.claim_id == e.claim_id
        assert f.source == "published"


def test_study_level_findings_alone_give_no_verdicts(context, registry):
    verdicts = claims.evaluate_claims(context, registry)
    assert {v.verdict for v in verdicts} == {claims.INSUFFICIENT}


def test_direct_only_drops_proxies(studies, context, registry, mapped):
    direct = evidence_map.registry_findings(
        studies, context, registry.estimands, include_proxies=False
    )
    assert all(f.extra["match"] == "direct" for f in direct)
    assert len(direct) == sum(f.extra["match"] == "direct" for f in mapped)


def _directional_rule(fs, e, test):
    """The registry's directional rule, restated: verdict from the findings' CIs."""

    def side(f):
        if f.ci_low > e.null:
            return "greater"
        if f.ci_high < e.null:
            return "less"
        return "null"

    def big(f):
        if e.meaningful is None:
            return True
        v = (
            f.estimate
            if test == "estimate"
            else (f.ci_low if e.direction == "greater" else f.ci_high)
        )
        return v >= e.meaningful if e.direction == "greater" else v <= e.meaningful

    sides = [side(f) for f in fs]
    if any(s not in ("null", e.direction) for s in sides):
        return claims.CONTRADICTED
    claimed = [f for f, s in zip(fs, sides, strict=True) if s == e.direction]
    if claimed and len(claimed) == len(fs) and all(big(f) for f in claimed):
        return claims.SUPPORTED
    return claims.PARTLY if claimed else claims.NOT_SUPPORTED


def test_end_to_end_verdicts_follow_the_rules(context, mapped, registry):
    verdicts = {v.claim_id: v for v in claims.evaluate_claims(context + mapped, registry)}
    by_key: dict[str, list] = {}
    for f in mapped:
        by_key.setdefault(f.estimand, []).append(f)
    for cid in NOT_INSUFFICIENT:
        v = verdicts[cid]
        assert v.verdict != claims.INSUFFICIENT, cid
        assert v.key_finding is not None and v.key_finding.estimand in by_key, cid
    # C4: one directional check on the benzodiazepine estimand (ci test)
    c4 = registry.claim("C4")
    e = registry.estimands["benzodiazepine_vs_placebo_pain"]
    expected = _directional_rule(by_key[e.key], e, c4.checks[0].meaningful_test)
    assert verdicts["C4"].verdict == expected
    # C7: directional, published side only (no NHIS findings here)
    e7 = registry.estimands["or_low_back_pain_obese_vs_normal_weight"]
    expected7 = _directional_rule(
        by_key[e7.key], e7, registry.claim("C7").checks[0].meaningful_test
    )
    assert verdicts["C7"].verdict == expected7
    # C1: the published directional check (the level check has no NHIS findings)
    e1 = registry.estimands["or_anxiety_disorder_chronic_back_neck_pain"]
    c1_dir = _directional_rule(by_key[e1.key], e1, registry.claim("C1").checks[1].meaningful_test)
    assert verdicts["C1"].checks[1]["verdict"] == c1_dir
    assert verdicts["C1"].checks[0]["verdict"] == claims.INSUFFICIENT
    # C8: level rule on the point estimate (no CI)
    chk = registry.claim("C8").checks[0]
    pct = by_key["percent_pain_reduction_6_weeks_acute"][0].estimate
    if chk.contradicted_below is not None and pct < chk.contradicted_below:
        expected8 = claims.CONTRADICTED
    elif pct >= chk.at_least:
        expected8 = claims.SUPPORTED
    else:
        expected8 = claims.NOT_SUPPORTED
    assert verdicts["C8"].verdict == expected8
    # C6: comparative; an arm shows benefit when its CIs exclude the null its claimed way
    chk6 = registry.claim("C6").checks[0]

    def benefit(key):
        e = registry.estimands[key]
        s = [_directional_rule([f], e, "estimate") for f in by_key.get(key, [])]
        return (
            bool(s)
            and claims.CONTRADICTED not in s
            and any(x in (claims.SUPPORTED, claims.PARTLY) for x in s)
        )

    winners = [k for k in chk6.alternatives if benefit(k)]
    ref = benefit(chk6.reference)
    if len(winners) >= chk6.min_alternatives and not ref:
        expected6 = claims.SUPPORTED
    elif ref and not winners:
        expected6 = claims.CONTRADICTED
    else:
        expected6 = claims.PARTLY if winners else claims.NOT_SUPPORTED
    assert verdicts["C6"].verdict == expected6
    # C5 has no mapped finding: it must stay insufficient
    assert not any(f.claim_id == "C5" for f in mapped)
    assert verdicts["C5"].verdict == claims.INSUFFICIENT


def test_default_estimands_come_from_the_findings_contract(studies, context, mapped):
    """Without an explicit registry the mapping reads the catalogue: same findings."""
    assert evidence_map.validate_mapping(studies) == []
    default = evidence_map.registry_findings(studies, context)
    assert [f.to_dict() for f in default] == [f.to_dict() for f in mapped]
