"""The published-evidence -> claims-registry mapping: valid, applied as written, and the
verdicts it yields are the registry's rules applied to the mapped numbers."""

from __future__ import annotations

import copy

import pytest

from analysis.claims import verdicts as claims
from analysis.claims.registry import load_registry
from analysis.evidence import mapping as evidence_map
from analysis.evidence.studies import evidence_findings, study_finding

NOT_INSUFFICIENT = {
    "C1",
    "C4",
    "C5",
    "C6",
    "C7",
    "C8",
    "C9",
}  # claims whose primary keys have a mapping


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
    measured = [f for f in direct if f.measured]
    assert all(f.extra["match"] == "direct" for f in measured)
    assert len(measured) == sum(f.measured and f.extra["match"] == "direct" for f in mapped)
    # what only a proxy measured is now a named gap
    gaps = {f.estimand for f in direct if not f.measured}
    assert "benzodiazepine_vs_placebo_pain" in gaps


def test_estimands_no_study_measures_are_named_gaps(mapped, registry):
    published_only = {k for k, e in registry.estimands.items() if e.sources == ("published",)}
    assert published_only <= {f.estimand for f in mapped}
    for f in mapped:
        if not f.measured:
            assert f.estimate is None and "curation gap" in f.caveats[0]


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
    """Each check's verdict is the registry's rule restated on the mapped numbers."""
    verdicts = {v.claim_id: v for v in claims.evaluate_claims(context + mapped, registry)}
    by_key: dict[str, list] = {}
    for f in mapped:
        by_key.setdefault(f.estimand, []).append(f)
    for cid in NOT_INSUFFICIENT:
        v = verdicts[cid]
        assert v.verdict != claims.INSUFFICIENT, cid
        assert v.key_finding is not None and v.key_finding.estimand in by_key, cid
    for cid in ("C4", "C6", "C7", "C9"):
        claim = registry.claim(cid)
        check = claim.checks[0]
        fs = [f for k in check.estimands for f in by_key.get(k, [])]
        judged = [f for f in fs if f.ci_low is not None]
        e_of = {f.estimand: registry.estimands[f.estimand] for f in judged}
        per = [_directional_rule([f], e_of[f.estimand], check.meaningful_test) for f in judged]
        if claims.CONTRADICTED in per:
            expected = claims.CONTRADICTED
        elif per and all(x == claims.SUPPORTED for x in per):
            expected = claims.SUPPORTED
        elif any(x in (claims.SUPPORTED, claims.PARTLY) for x in per):
            expected = claims.PARTLY
        else:
            expected = claims.NOT_SUPPORTED
        assert verdicts[cid].checks[0]["verdict"] == expected, cid
    # C6 compares each alternative with the benzodiazepine through their controls (Bucher)
    for f in by_key.get("indirect_nsaid_vs_benzodiazepine_pain", []):
        a, r = by_key["nsaid_vs_placebo_pain"][0], by_key["benzodiazepine_vs_placebo_pain"][0]
        assert f.estimate == pytest.approx(a.estimate - r.estimate)
        assert f.extra["comparison"] == "indirect"
    # C8: the level rule on a point estimate without a CI, at the registry's level
    chk = registry.claim("C8").checks[0]
    share = by_key["proportion_recovered_12_weeks_acute"][0].estimate
    assert 0 <= share <= 1
    expected8 = (
        claims.CONTRADICTED
        if share < chk.contradicted_below
        else claims.SUPPORTED
        if share >= chk.at_least
        else claims.NOT_SUPPORTED
    )
    assert verdicts["C8"].checks[0]["verdict"] == expected8
    # C5: the regulator's statement is recorded, so its statement check is supported
    assert verdicts["C5"].checks[1]["verdict"] == claims.SUPPORTED


def test_default_estimands_come_from_the_findings_contract(studies, context, mapped):
    """Without an explicit registry the mapping reads the catalogue: same findings."""
    assert evidence_map.validate_mapping(studies) == []
    default = evidence_map.registry_findings(studies, context)
    assert [f.to_dict() for f in default] == [f.to_dict() for f in mapped]
