"""Verdict rules on constructed findings: every branch of every rule kind, the registry's
validation, and the guarantees (synthetic never counts; a null world never supports C2/C3)."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.claims.registry import VERDICTS, RegistryError, load_registry, parse_registry
from analysis.claims.verdicts import (
    SYNTHETIC_NOTE,
    collect_findings,
    evaluate_claims,
    summary,
    validate_against_truth,
    write_claims,
)
from analysis.core.findings import Finding, estimand_catalogue, read_findings, write_findings

REG = load_registry()


def F(key, est, lo=None, hi=None, source="nhis", **kw) -> Finding:
    """A finding for a registered estimand, with the registry's measure and null."""
    e = REG.estimands[key]
    kw.setdefault("design", "cross-sectional survey" if source == "nhis" else "meta-analysis")
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
        **kw,
    )


def verdict(findings, claim_id):
    return next(v for v in evaluate_claims(findings, REG) if v.claim_id == claim_id)


# ------------------------------------------------------------------ registry


def test_registry_has_the_eight_claims_with_valid_types():
    assert [c.id for c in REG.claims] == [f"C{i}" for i in range(1, 9)]
    types = {c.id: c.claim_type for c in REG.claims}
    assert types["C1"] == "prevalence" and types["C2"] == "mediation"
    assert types["C4"] == "treatment effect" and types["C5"] == "harm" and types["C8"] == "course"
    assert all(c.sentence_is_paraphrase and c.sentence for c in REG.claims)
    # every primary estimand is judged by some check; context ones never are
    judged = {k for c in REG.claims for ch in c.checks for k in ch.keys()}
    for e in REG.estimands.values():
        assert (e.role == "primary") == (e.key in judged), e.key


def _raw():
    from importlib import resources

    return yaml.safe_load(resources.files("analysis.resources").joinpath("claims.yaml").read_text())


def _mutate(claim_id, fn):
    raw = copy.deepcopy(_raw())
    fn(next(c for c in raw["claims"] if c["id"] == claim_id))
    return raw


@pytest.mark.parametrize(
    ("claim_id", "mutation", "field"),
    [
        ("C3", lambda c: c.pop("sentence"), "'sentence'"),
        ("C2", lambda c: c.update(claim_type="vibes"), "'claim_type'"),
        (
            "C7",
            lambda c: c["estimands"][0].update(direction="up"),
            "estimands[or_back_pain_obesity].direction",
        ),
        (
            "C7",
            lambda c: c["estimands"][0].update(meaningful=0.8),
            "estimands[or_back_pain_obesity].meaningful",
        ),
        (
            "C1",
            lambda c: c["estimands"][2].pop("null_value"),
            "estimands[prevalence_ratio_gad7_ge10_chronic_back_pain].null_value",
        ),
        ("C3", lambda c: c["rule"]["checks"][0]["estimands"].append("nope"), "nope"),
        ("C8", lambda c: c["rule"]["checks"][0].pop("at_least"), "rule.checks[0].at_least"),
        (
            "C8",
            lambda c: c["rule"]["checks"][0].update(contradicted_below=60),
            "contradicted_below",
        ),
        (
            "C6",
            lambda c: c["rule"]["checks"][0].update(min_alternatives=9),
            "rule.checks[0].min_alternatives",
        ),
        ("C5", lambda c: c.update(sources=["synthetic"]), "'sources'"),
        ("C4", lambda c: c["rule"].update(combine="most"), "'combine'"),
        (
            "C1",
            lambda c: c["rule"]["checks"][0]["estimands"].append(
                "prevalence_ratio_gad7_ge10_chronic_back_pain"
            ),
            "level check needs direction: none",
        ),
    ],
)
def test_bad_registry_error_names_claim_and_field(claim_id, mutation, field):
    with pytest.raises(RegistryError) as exc:
        parse_registry(_mutate(claim_id, mutation), "bad.yaml")
    msg = str(exc.value)
    assert "bad.yaml" in msg and f"claim {claim_id}" in msg and field in msg, msg


def test_duplicate_estimand_key_is_rejected(tmp_path):
    raw = _raw()
    raw["claims"][1]["estimands"].append(dict(raw["claims"][0]["estimands"][0]))
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        RegistryError, match=r"claims.yaml: claim C2: .*already defined by claim C1"
    ):
        load_registry(path)
    path.write_text("claims: [unclosed")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(path)


# ------------------------------------------------------------------ directional (C3, C7)


def test_directional_supported_when_every_source_is_meaningful():
    fs = [
        F("or_back_pain_any_gad7_moderate_plus", 2.0, 1.6, 2.5),
        F("trend_gad7_category_back_pain", 1.3, 1.2, 1.4),
        F("or_back_pain_any_phq8_moderate_plus", 1.8, 1.4, 2.2),
        F("within_person_bodily_pain_per_nervousness_step", -4.0, -6.0, -2.0, source="help"),
    ]
    v = verdict(fs, "C3")
    assert v.verdict == "supported"
    assert v.sources == ["help", "nhis"]
    assert v.key_finding.source == "nhis"  # claim source priority: nhis first
    assert any("cross-sectional" in c.lower() for c in v.caveats)
    assert any("residual confounding" in c.lower() for c in v.caveats)
    # OR 2.0 [1.6, 2.5], common outcome: RR ~ sqrt(OR), E = RR + sqrt(RR (RR - 1))
    rr, rr_lo = 2.0**0.5, 1.6**0.5
    assert v.evalue["evalue_point"] == pytest.approx(rr + (rr * (rr - 1)) ** 0.5)
    assert v.evalue["evalue_ci"] == pytest.approx(rr_lo + (rr_lo * (rr_lo - 1)) ** 0.5)
    assert any(c.startswith("E-value 2.18 (1.84 for the CI)") for c in v.caveats), v.caveats


def test_directional_partly_when_one_source_is_null():
    fs = [
        F("or_back_pain_any_gad7_moderate_plus", 2.0, 1.6, 2.5),
        F("within_person_bodily_pain_per_nervousness_step", -1.0, -3.0, 1.0, source="help"),
    ]
    v = verdict(fs, "C3")
    assert v.verdict == "partly supported"
    assert v.key_finding.estimand == "or_back_pain_any_gad7_moderate_plus"
    assert v.rationale == (
        "In the claimed direction but 1 of 2 findings exclude the null in the claimed way: "
        "or_back_pain_any_gad7_moderate_plus = 2 [1.6, 2.5] (nhis)."
    )


def test_directional_partly_when_below_meaningful_size():
    v = verdict([F("or_back_pain_obesity", 1.1, 1.05, 1.15)], "C7")
    assert v.verdict == "partly supported"
    assert "below the meaningful size" in v.rationale


def test_directional_not_supported_when_all_cis_cover_null():
    fs = [F("or_back_pain_obesity", 1.1, 0.9, 1.3), F("or_back_pain_inactive", 0.95, 0.8, 1.1)]
    assert verdict(fs, "C7").verdict == "not supported"


def test_directional_contradicted_by_opposite_significant_effect():
    fs = [
        F("or_back_pain_obesity", 1.5, 1.3, 1.8),
        F("or_back_pain_inactive", 0.7, 0.6, 0.85),
    ]
    v = verdict(fs, "C7")
    assert v.verdict == "contradicted"
    assert v.key_finding.estimand == "or_back_pain_inactive"


def test_directional_insufficient_without_evidence_findings():
    assert verdict([], "C7").verdict == "insufficient evidence"
    no_ci = [F("or_back_pain_obesity", 1.5)]
    v = verdict(no_ci, "C7")
    assert v.verdict == "insufficient evidence"
    assert any("no CI" in c for c in v.caveats)


def test_directional_less_direction_within_person():
    fs = [F("within_person_bodily_pain_per_nervousness_step", 3.0, 1.0, 5.0, source="help")]
    assert verdict(fs, "C3").verdict == "contradicted"


# ------------------------------------------------------------------ C4: CI beyond the MCID


@pytest.mark.parametrize(
    ("est", "lo", "hi", "expected"),
    [
        (-15.0, -20.0, -12.0, "supported"),  # whole CI beyond -10
        (-12.0, -20.0, -5.0, "partly supported"),  # benefit, but CI limit not beyond MCID
        (-3.0, -8.0, 3.0, "not supported"),
        (5.0, 2.0, 8.0, "contradicted"),
    ],
)
def test_c4_treatment_rule_uses_ci_limit(est, lo, hi, expected):
    f = F("benzodiazepine_vs_placebo_pain", est, lo, hi, source="published")
    v = verdict([f], "C4")
    assert v.verdict == expected
    assert v.key_finding is f
    assert v.evalue is None  # trials need no E-value


def test_c4_survey_context_never_decides():
    f = F("or_back_pain_anxiety_medication", 0.5, 0.4, 0.6)
    v = verdict([f], "C4")
    assert v.verdict == "insufficient evidence"
    assert f in v.findings
    # the claim's own caveats do not mention the survey design; the finding's design adds it
    assert any(c.startswith("Cross-sectional design") for c in v.caveats)


# ------------------------------------------------------------------ level (C8) and C1


@pytest.mark.parametrize(
    ("est", "lo", "hi", "expected"),
    [
        (58.0, 52.0, 64.0, "supported"),
        (52.0, 40.0, 64.0, "partly supported"),
        (40.0, 30.0, 45.0, "not supported"),
        (15.0, 10.0, 20.0, "contradicted"),
        (55.0, None, None, "supported"),  # judged on its point estimate, with a caveat
    ],
)
def test_level_rule_course(est, lo, hi, expected):
    v = verdict([F("percent_pain_reduction_6_weeks_acute", est, lo, hi, source="published")], "C8")
    assert v.verdict == expected
    if lo is None:
        assert any("no CI" in c for c in v.caveats)


def test_level_rule_insufficient():
    context_only = [F("mean_pain_1_year_acute", 6.0, 3.0, 9.0, source="published")]
    assert verdict(context_only, "C8").verdict == "insufficient evidence"


def _c1(prev, pr):
    return [
        F("prevalence_gad7_ge10_among_chronic_back_pain", *prev),
        F("prevalence_ratio_gad7_ge10_chronic_back_pain", *pr),
    ]


@pytest.mark.parametrize(
    ("prev", "pr", "expected"),
    [
        ((0.15, 0.13, 0.17), (2.2, 1.9, 2.5), "supported"),
        ((0.15, 0.13, 0.17), (1.1, 0.9, 1.3), "partly supported"),
        ((0.08, 0.07, 0.09), (1.1, 0.9, 1.3), "not supported"),
        ((0.15, 0.13, 0.17), (0.7, 0.6, 0.8), "contradicted"),
        ((0.03, 0.02, 0.04), (2.2, 1.9, 2.5), "contradicted"),
    ],
)
def test_c1_combines_level_and_ratio(prev, pr, expected):
    v = verdict(_c1(prev, pr), "C1")
    assert v.verdict == expected
    assert len(v.checks) == 2 and "Combined (all)" in v.rationale


def test_c1_published_only_is_partly_without_prevalence_level():
    f = F("or_anxiety_disorder_chronic_back_neck_pain", 2.3, 2.0, 2.6, source="published")
    v = verdict([f], "C1")
    assert v.verdict == "partly supported"
    assert v.sources == ["published"]


# ------------------------------------------------------------------ C5 harm (any)


def test_c5_harm_branches():
    statement = F("guideline_statement_benzodiazepine_dependence", None, source="published")
    rr = F("benzodiazepine_long_term_dependence_risk", 3.0, 2.0, 4.5, source="published")
    rr_null = F("benzodiazepine_long_term_dependence_risk", 1.2, 0.8, 1.6, source="published")
    rr_opp = F("benzodiazepine_long_term_dependence_risk", 0.5, 0.3, 0.8, source="published")
    assert verdict([statement], "C5").verdict == "supported"
    assert verdict([rr], "C5").verdict == "supported"
    assert verdict([rr_null], "C5").verdict == "not supported"
    assert verdict([rr_null, statement], "C5").verdict == "supported"
    assert verdict([rr_opp], "C5").verdict == "contradicted"
    assert verdict([], "C5").verdict == "insufficient evidence"
    survey_statement = F("guideline_statement_benzodiazepine_dependence", None, source="nhis")
    with pytest.raises(ValueError, match="field 'source'"):
        verdict([survey_statement], "C5")


# ------------------------------------------------------------------ C6 comparative


def _alt(key, benefit=True):
    if REG.estimands[key].direction == "less":
        ci = (-15.0, -20.0, -10.0) if benefit else (-2.0, -6.0, 2.0)
    else:
        ci = (1.4, 1.1, 1.8) if benefit else (1.0, 0.8, 1.3)
    return F(key, *ci, source="published")


BENZO_NULL = ("benzodiazepine_vs_placebo_pain", -3.0, -9.0, 3.0)
BENZO_GOOD = ("benzodiazepine_vs_placebo_pain", -12.0, -18.0, -6.0)


@pytest.mark.parametrize(
    ("alts", "benzo", "expected"),
    [
        ({"exercise_vs_control_pain": 1, "yoga_vs_control_pain": 1}, BENZO_NULL, "supported"),
        (
            {"exercise_vs_control_pain": 1, "mindfulness_vs_usual_care_meaningful_improvement": 1},
            BENZO_GOOD,
            "partly supported",
        ),
        (
            {"exercise_vs_control_pain": 1, "massage_vs_control_pain": 0},
            BENZO_NULL,
            "partly supported",
        ),
        ({"nsaid_vs_placebo_pain": 0}, BENZO_GOOD, "contradicted"),
        (
            {"nsaid_vs_placebo_pain": 0, "acupuncture_vs_control_pain": 0},
            BENZO_NULL,
            "not supported",
        ),
        ({"exercise_vs_control_pain": 1, "yoga_vs_control_pain": 1}, None, "insufficient evidence"),
        ({}, BENZO_NULL, "insufficient evidence"),
    ],
)
def test_c6_comparative_branches(alts, benzo, expected):
    fs = [_alt(k, bool(b)) for k, b in alts.items()]
    if benzo:
        fs.append(F(*benzo, source="published"))
    assert verdict(fs, "C6").verdict == expected


# ------------------------------------------------------------------ synthetic and null world


def _perfect(source=None):
    """Findings that would support every claim: each from its first listed source, or only
    those estimands the given source produces."""
    out = []
    for e in REG.estimands.values():
        if source is None:
            src = next((s for s in e.sources if s != "synthetic"), None)
            if src is None:  # only the synthetic world measures it (muscle tension)
                continue
        elif source in e.sources:
            src = source
        else:
            continue
        if e.measure == "statement":
            out.append(F(e.key, None, source=src))
        elif e.direction == "none":
            out.append(F(e.key, 90.0 if e.measure == "percent" else 0.5, None, None, source=src))
        elif e.direction == "greater":
            m = e.meaningful or e.null + 1
            out.append(F(e.key, m + 10, m + 5, m + 20, source=src, truth=m + 10))
        else:
            m = e.meaningful or e.null - 1
            out.append(F(e.key, m - 10, m - 20, m - 5, source=src, truth=m - 10))
    return out


def test_perfect_published_findings_support_every_claim_but_c6():
    vs = {v.claim_id: v.verdict for v in evaluate_claims(_perfect(), REG)}
    # When benzodiazepines themselves beat placebo (C4 supported), "alternatives may work
    # better" (C6) can be at most partly supported: the rules interlock as they should.
    assert vs.pop("C6") == "partly supported"
    # No evidence source measures muscle tension, so C2 cannot be more than insufficient.
    assert vs.pop("C2") == "insufficient evidence"
    assert set(vs.values()) == {"supported"}, vs


def test_synthetic_findings_never_count_as_evidence():
    synthetic = _perfect("synthetic")
    assert {f.claim_id for f in synthetic} >= {"C1", "C2", "C3", "C7"}
    vs = evaluate_claims(synthetic, REG)
    for v in vs:
        assert v.verdict == "insufficient evidence", v.summary()
        assert v.sources == [] and v.key_finding is None and v.findings == []
        if any(f.claim_id == v.claim_id for f in synthetic):
            assert v.validation_findings and SYNTHETIC_NOTE in v.caveats


def test_c2_insufficient_where_tension_is_not_measured():
    fs = [
        F("natural_indirect_effect_tension", 0.8, 0.6, 1.0, source="synthetic", truth=0.8),
        F("natural_indirect_effect_tension", None, source="nhis", measured=False),
        F("natural_indirect_effect_tension", None, source="help", measured=False),
    ]
    v = verdict(fs, "C2")
    assert v.verdict == "insufficient evidence"
    assert any(c.startswith("Not measured by help, nhis") for c in v.caveats)


null_ci = st.tuples(st.floats(0.5, 0.999), st.floats(1.001, 2.0), st.floats(0.0, 1.0)).map(
    lambda t: (t[0] + t[2] * (t[1] - t[0]), t[0], t[1])
)


@settings(max_examples=60, deadline=None)
@given(c3=st.lists(null_ci, min_size=3, max_size=3), nie=st.floats(-0.5, 0.5))
def test_null_world_never_supports_c2_or_c3(c3, nie):
    keys = [
        "or_back_pain_any_gad7_moderate_plus",
        "trend_gad7_category_back_pain",
        "or_back_pain_any_phq8_moderate_plus",
    ]
    fs = [F(k, *ci) for k, ci in zip(keys, c3, strict=True)]
    fs.append(F("natural_indirect_effect_tension", nie, nie - 0.6, nie + 0.6, source="synthetic"))
    fs += [F(k, *ci, source="synthetic") for k, ci in zip(keys, c3, strict=True)]
    vs = {v.claim_id: v.verdict for v in evaluate_claims(fs, REG)}
    assert vs["C3"] == "not supported"
    assert vs["C2"] == "insufficient evidence"


# ------------------------------------------------------------------ checks on findings


def test_measure_mismatch_names_the_finding():
    f = F("or_back_pain_obesity", 1.5, 1.2, 1.8)
    f.measure = "risk ratio"
    with pytest.raises(ValueError, match=r"'or_back_pain_obesity'.*'measure'.*'odds ratio'"):
        evaluate_claims([f], REG)
    survey_trial = F("benzodiazepine_vs_placebo_pain", -12.0, -18.0, -6.0, source="nhis")
    with pytest.raises(ValueError, match=r"'source' is 'nhis'.*\['published'\]"):
        evaluate_claims([survey_trial], REG)
    g = F("or_back_pain_obesity", 1.5, 1.2, 1.8)
    g.null_value = 0
    with pytest.raises(ValueError, match="null_value"):
        evaluate_claims([g], REG)


# ------------------------------------------------------------------ output


def test_to_dict_summary_and_write(tmp_path):
    fs = _perfect() + [F("percent_pain_reduction_6_weeks_acute", 15.0, 10.0, 20.0, "published")]
    vs = evaluate_claims(fs, REG)
    d = vs[0].to_dict()
    for k in ("claim_id", "sentence", "verdict", "key_finding", "sources", "caveats", "notebook"):
        assert k in d
    assert d["key_finding"]["estimand"] in REG.estimands
    assert all(v.verdict in VERDICTS for v in vs)
    text = summary(vs)
    assert "C8" in text and "contradicted" in text and "validation only" in text
    pj, pc = write_claims(vs, tmp_path / "claims.json", tmp_path / "claims.csv")
    back = json.loads(pj.read_text())
    assert [b["claim_id"] for b in back] == [v.claim_id for v in vs]
    frame = vs.to_frame()
    assert list(frame["verdict"]) == [v.verdict for v in vs]
    assert pc.read_text().splitlines()[0].startswith("claim_id,")


def test_write_claims_is_all_or_nothing(tmp_path):
    vs = evaluate_claims([], REG)
    pj = tmp_path / "claims.json"
    pj.write_text("old")
    bad_csv = tmp_path / "a_directory"
    bad_csv.mkdir()
    with pytest.raises(OSError):
        write_claims(vs, pj, bad_csv)
    assert pj.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_directory", "claims.json"]


def test_collect_findings_reads_every_source(tmp_path):
    write_findings([F("or_back_pain_obesity", 1.5, 1.2, 1.8)], tmp_path / "nhis/findings/03.json")
    write_findings(
        [F("percent_pain_reduction_6_weeks_acute", 58.0, 52.0, 64.0, source="published")],
        tmp_path / "published/findings/evidence.json",
    )
    fs = collect_findings(tmp_path)
    assert {f.source for f in fs} == {"nhis", "published"}


def test_validate_against_truth():
    fs = [
        F("natural_indirect_effect_tension", 0.8, 0.6, 1.0, source="synthetic", truth=0.75),
        F("or_back_pain_obesity", 1.9, 1.7, 2.1, source="synthetic", truth=1.5),
        F("or_back_pain_inactive", 1.4, source="synthetic", truth=1.5),
        F("or_back_pain_obesity", 1.9, 1.7, 2.1, source="nhis"),
    ]
    tv = validate_against_truth(fs)
    frame = tv.to_frame()
    assert list(frame["covered"]) == [True, False, None]
    assert frame["error"].iloc[0] == pytest.approx(0.05)
    assert not tv.all_covered
    assert "1 of 3 CIs cover the truth" in tv.summary()


def test_cli_writes_claims_from_findings_files(tmp_path):
    from typer.testing import CliRunner

    from analysis.cli import app

    write_findings(
        [F("percent_pain_reduction_6_weeks_acute", 58.0, 52.0, 64.0, source="published")],
        tmp_path / "published/findings/evidence.json",
    )
    result = CliRunner().invoke(app, ["claims", "--reports", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "C8    supported" in result.output
    back = json.loads((tmp_path / "claims.json").read_text())
    assert back[7]["verdict"] == "supported" and back[0]["verdict"] == "insufficient evidence"


def test_estimand_catalogue_agrees_with_the_registry():
    """The findings contract's reading of claims.yaml is the registry's, field for field."""
    catalogue = estimand_catalogue()
    assert catalogue.keys() == REG.estimands.keys()
    for key, info in catalogue.items():
        e = REG.estimands[key]
        assert (info.claim_id, info.description, info.measure, info.null, info.sources) == (
            e.claim_id,
            e.description,
            e.measure,
            e.null,
            e.sources,
        ), key


def test_findings_file_names_its_notebook(tmp_path):
    """A finding's notebook is the name of the file it is written to, defined once."""
    path = write_findings([F("or_back_pain_obesity", 1.5, 1.2, 1.8)], tmp_path / "02_x.json")
    assert [f.notebook for f in read_findings([path])] == ["02_x"]
    other = F("or_back_pain_obesity", 1.5, 1.2, 1.8, notebook="03_y")
    with pytest.raises(ValueError, match="names notebook '03_y'"):
        write_findings([other], tmp_path / "02_x.json")
