"""Verdict rules on constructed findings: every branch of every rule kind, the registry's
validation, and the guarantees (synthetic never counts; a null world never supports C2/C3)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

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


def test_registry_has_the_nine_claims_with_valid_types():
    assert [c.id for c in REG.claims] == [f"C{i}" for i in range(1, 10)]
    types = {c.id: c.claim_type for c in REG.claims}
    assert types["C1"] == "prevalence" and types["C2"] == "mediation"
    assert types["C4"] == "treatment effect" and types["C5"] == "harm" and types["C8"] == "course"
    assert all(c.sentence and c.quotation and c.section for c in REG.claims)
    # every primary estimand is judged by some check; sensitivity ones are robustness checks;
    # context ones never decide
    judged = {k for c in REG.claims for ch in c.checks for k in ch.keys()}
    robust = {k for c in REG.claims for _, keys in c.robustness for k in keys}
    for e in REG.estimands.values():
        assert (e.role == "primary") == (e.key in judged), e.key
        assert (e.role == "sensitivity") == (e.key in robust), e.key


ARTICLE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_894864767adb8bfd.txt"


@pytest.mark.skipif(not ARTICLE.is_file(), reason="the article's text (../shared/seed) is absent")
def test_every_quotation_is_the_articles_words_in_its_section():
    text = ARTICLE.read_text(encoding="utf-8")
    sections = [
        "Introduction",
        "Causes",
        "Symptoms",
        "When to see a doctor",
        "Treatment Options",
        "Recovery",
        "Conclusion",
    ]
    starts = {name: text.index(f"\n{name}\n") for name in sections}
    for claim in REG.claims:
        assert claim.section in starts, claim.id
        begin = starts[claim.section]
        end = min((v for v in starts.values() if v > begin), default=len(text))
        for q in claim.quotation:
            assert q in text[begin:end], f"{claim.id}: not verbatim in {claim.section}: {q!r}"


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
            "C3",
            lambda c: c["rule"]["robustness"][0]["sensitivity"].append("nope"),
            "rule.robustness.nope",
        ),
        (
            "C3",
            lambda c: c["rule"]["robustness"][0]["sensitivity"].append("or_back_pain_obesity"),
            "needs role: sensitivity",
        ),
        (
            "C3",
            lambda c: c["rule"]["robustness"][0].update(of="or_back_pain_obesity"),
            "not a primary estimand",
        ),
        ("C6", lambda c: c.pop("quotation"), "'quotation'"),
        (
            "C5",
            lambda c: c["grade"]["risk_of_bias"].update(rating="so-so"),
            "grade.risk_of_bias.rating",
        ),
        ("C5", lambda c: c["grade"].update(vibes={}), "grade.vibes"),
        (
            "C7",
            lambda c: c["rule"]["checks"][0]["estimands"].append(
                "within_person_bodily_pain_per_previous_nervousness_step"
            ),
            "a check uses primary estimands",
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


ROBUST_C3 = [
    F("within_person_bodily_pain_per_nervousness_step_cesd_adjusted", -3.0, -5.0, -1.0, "help"),
    F("within_person_bodily_pain_per_previous_nervousness_step", -3.0, -5.0, -1.0, "help"),
]


def test_directional_supported_when_every_source_is_meaningful():
    fs = [
        F("or_back_pain_any_gad7_moderate_plus", 2.0, 1.6, 2.5),
        F("trend_gad7_category_back_pain", 1.3, 1.2, 1.4),
        F("or_back_pain_any_phq8_moderate_plus", 1.8, 1.4, 2.2),
        F("within_person_bodily_pain_per_nervousness_step", -4.0, -6.0, -2.0, source="help"),
        *ROBUST_C3,
    ]
    v = verdict(fs, "C3")
    assert v.verdict == "supported"
    assert v.rests_on == "4 of 6"
    assert all(r["agrees"] for r in v.robustness)
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
    assert v.rationale.startswith(
        "In the claimed direction but 1 of 2 findings exclude the null in the claimed way: "
        "or_back_pain_any_gad7_moderate_plus = 2 [1.6, 2.5] (nhis). Rests on 2 of 6 primary"
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
    fs = [
        F(key, *(None if x is None else x / 100 for x in (est, lo, hi)), source="published")
        for key in ("proportion_recovered_6_weeks_acute", "proportion_recovered_12_weeks_acute")
    ]
    v = verdict(fs, "C8")
    assert v.verdict == expected
    if lo is None:
        assert any("no CI" in c for c in v.caveats)
        # the rationale says a point estimate was compared, never a CI limit it does not have
        assert "lower limit (or estimate)" in v.rationale
    elif expected == "supported":
        assert "Every lower limit is at least 0.5" in v.rationale


def test_level_rule_insufficient():
    context_only = [
        F("mean_pain_1_year_acute", 6.0, 3.0, 9.0, source="published"),
        F("percent_pain_reduction_6_weeks_acute", 58.0, 52.0, 64.0, source="published"),
    ]
    v = verdict(context_only, "C8")
    assert v.verdict == "insufficient evidence"
    assert v.rests_on == "0 of 2" and v.certainty.level == "very low"


def _c1(prev, pr):
    """Five of C1's nine primary estimands: enough (at least half) for any verdict."""
    return [
        F("prevalence_gad7_ge10_among_chronic_back_pain", *prev),
        F("prevalence_nervous_most_plus_among_low_back_pain_3m", *prev),
        F("prevalence_ratio_gad7_ge10_chronic_back_pain", *pr),
        F("prevalence_ratio_nervous_most_plus_low_back_pain_3m", *pr),
        F("prevalence_ratio_nervous_some_plus_low_back_pain_3m", *pr),
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


def test_c1_published_only_rests_on_too_little_to_be_supported():
    f = F("or_anxiety_disorder_chronic_back_neck_pain", 2.3, 2.0, 2.6, source="published")
    v = verdict([f], "C1")
    # its only judged check says supported, but one of nine primary estimands is too little
    assert [c["verdict"] for c in v.checks] == ["insufficient evidence", "supported"]
    assert v.verdict == "partly supported"
    assert v.sources == ["published"]
    assert v.rests_on == "1 of 9" and len(v.gaps) == 8
    assert "Capped at partly supported: it rests on fewer than half (1 of 9)" in v.rationale


# ------------------------------------------------------------------ C5 harm (any)


def test_c5_harm_branches():
    statement = F(
        "regulator_statement_benzodiazepine_dependence_withdrawal", None, source="published"
    )
    dep = "dependence_risk_among_long_term_benzodiazepine_users"
    wd = "withdrawal_risk_among_benzodiazepine_users_stopping"
    risks = [F(dep, 0.2, 0.15, 0.25, "published"), F(wd, 0.4, 0.3, 0.5, "published")]
    low = [F(dep, 0.03, 0.02, 0.04, "published"), F(wd, 0.03, 0.02, 0.04, "published")]
    rare = [F(dep, 0.005, 0.002, 0.008, "published"), F(wd, 0.3, 0.2, 0.4, "published")]
    # the statement alone: one of three primary estimands, too little for "supported"
    assert verdict([statement], "C5").verdict == "partly supported"
    assert verdict(risks, "C5").verdict == "supported"
    assert verdict([*risks, statement], "C5").verdict == "supported"
    assert verdict(low, "C5").verdict == "not supported"
    assert verdict([*low, statement], "C5").verdict == "supported"  # any: the best check
    assert verdict(rare, "C5").verdict == "contradicted"
    assert verdict([], "C5").verdict == "insufficient evidence"
    survey_statement = F(
        "regulator_statement_benzodiazepine_dependence_withdrawal", None, source="nhis"
    )
    with pytest.raises(ValueError, match="field 'source'"):
        verdict([survey_statement], "C5")


# ------------------------------------------------------------------ C6 indirect comparisons

C6_KEYS = [
    "indirect_exercise_vs_benzodiazepine_pain",
    "indirect_nsaid_vs_benzodiazepine_pain",
    "indirect_acetaminophen_vs_benzodiazepine_pain",
]
BETTER, UNCLEAR, WORSE, SMALL = (-15, -22, -12), (-5, -15, 5), (12, 4, 20), (-6, -9, -3)


@pytest.mark.parametrize(
    ("arms", "expected"),
    [
        ((BETTER, BETTER, BETTER), "supported"),
        ((BETTER, UNCLEAR, UNCLEAR), "partly supported"),
        ((SMALL, SMALL, SMALL), "partly supported"),  # better, but by less than 10 points
        ((UNCLEAR, UNCLEAR, UNCLEAR), "not supported"),
        ((BETTER, WORSE, UNCLEAR), "contradicted"),
        ((BETTER, BETTER, None), "supported"),  # two of three arms: at least half
        ((BETTER, None, None), "partly supported"),  # one of three: capped
    ],
)
def test_c6_indirect_comparison_branches(arms, expected):
    fs = [F(k, *a, source="published") for k, a in zip(C6_KEYS, arms, strict=True) if a]
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
            out.append(F(e.key, 90.0 if e.measure == "percent" else 0.6, None, None, source=src))
        elif e.direction == "greater":
            m = e.meaningful or e.null + 1
            out.append(F(e.key, m + 10, m + 5, m + 20, source=src, truth=m + 10))
        else:
            m = e.meaningful or e.null - 1
            out.append(F(e.key, m - 10, m - 20, m - 5, source=src, truth=m - 10))
    return out


def test_perfect_findings_support_every_claim_but_c2():
    vs = {v.claim_id: v.verdict for v in evaluate_claims(_perfect(), REG)}
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
    fs = _perfect() + [F("proportion_recovered_6_weeks_acute", 0.15, 0.10, 0.20, "published")]
    vs = evaluate_claims(fs, REG)
    d = vs[0].to_dict()
    for k in ("claim_id", "sentence", "verdict", "key_finding", "sources", "caveats", "notebook"):
        assert k in d
    assert (
        d["quotation"]
        and d["section"]
        and d["certainty"]["level"] in ("high", "moderate", "low", "very low")
    )
    assert set(d["certainty"]["domains"]) == {
        "risk_of_bias",
        "inconsistency",
        "indirectness",
        "imprecision",
        "publication_bias",
    }
    assert d["estimands_with_evidence"] == d["primary_estimands"] - len(d["gaps"])
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
        [F("proportion_recovered_6_weeks_acute", 0.58, 0.52, 0.64, source="published")],
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
        [
            F(key, 0.58, 0.52, 0.64, source="published")
            for key in ("proportion_recovered_6_weeks_acute", "proportion_recovered_12_weeks_acute")
        ],
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


# ------------------------------------------------------------------ missing evidence, robustness


def test_missing_evidence_rule_every_branch():
    c7 = [
        F("or_low_back_pain_3m_obesity", 1.6, 1.4, 1.8),
        F("or_low_back_pain_3m_inactive", 1.5, 1.3, 1.7),
    ]
    published = F("or_low_back_pain_obese_vs_normal_weight", 1.4, 1.3, 1.6, source="published")
    # 2 of 6 primary estimands: every judged finding supports it, but that is too little
    v = verdict(c7, "C7")
    assert (v.verdict, v.rests_on) == ("partly supported", "2 of 6")
    assert set(v.gaps) == {
        "or_back_pain_obesity",
        "or_back_pain_inactive",
        "published_low_back_pain_inactive_vs_active",
        "or_low_back_pain_obese_vs_normal_weight",
    }
    assert "no evidence for: or_back_pain_obesity" in v.rationale
    # 3 of 6, exactly half: allowed
    v = verdict([*c7, published], "C7")
    assert (v.verdict, v.rests_on) == ("supported", "3 of 6")
    # the cap never lifts a weaker verdict, and never hides a contradiction
    weak = [F("or_low_back_pain_3m_obesity", 1.1, 0.9, 1.3)]
    assert verdict(weak, "C7").verdict == "not supported"
    opposite = [F("or_low_back_pain_3m_obesity", 0.7, 0.6, 0.8)]
    assert verdict(opposite, "C7").verdict == "contradicted"
    # a finding without an estimate (not measured) is a gap, not evidence
    unmeasured = F("or_low_back_pain_3m_inactive", None, measured=False)
    assert "or_low_back_pain_3m_inactive" in verdict([unmeasured], "C7").gaps
    # a check with no evidence does not vote: C1's level check empty, directional supported
    v = verdict(_c1((0.15, 0.13, 0.17), (2.2, 1.9, 2.5))[2:], "C1")
    assert [c["verdict"] for c in v.checks] == ["insufficient evidence", "supported"]
    assert v.verdict == "partly supported"  # 3 of 9: capped, not downgraded by the empty check
    # nothing judged at all
    assert verdict([], "C1").verdict == "insufficient evidence"


@pytest.mark.parametrize(
    ("cesd", "lagged", "expected"),
    [
        ((-3.0, -5.0, -1.0), (-3.0, -5.0, -1.0), "supported"),
        ((-1.7, -3.1, -0.3), (0.5, -0.9, 1.9), "partly supported"),  # time order disagrees
        ((-1.7, -3.1, -0.3), None, "partly supported"),  # no lagged analysis: unconfirmed
        ((1.0, 0.2, 2.0), (-3.0, -5.0, -1.0), "partly supported"),  # opposite direction
    ],
)
def test_c3_robustness_branches(cesd, lagged, expected):
    fs = [
        F("or_low_back_pain_3m_nervous_most_plus", 2.0, 1.7, 2.4),
        F("trend_nervousness_frequency_low_back_pain_3m", 1.3, 1.2, 1.4),
        F("within_person_bodily_pain_per_nervousness_step", -4.0, -6.0, -3.0, source="help"),
        F("within_person_bodily_pain_per_nervousness_step_cesd_adjusted", *cesd, source="help"),
    ]
    if lagged:
        fs.append(F("within_person_bodily_pain_per_previous_nervousness_step", *lagged, "help"))
    v = verdict(fs, "C3")
    assert v.verdict == expected
    assert [r["estimand"] for r in v.robustness] == list(REG.claim("C3").robustness[0][1])
    if expected != "supported":
        assert "does not agree with the claim" in v.rationale


def test_c3_robustness_is_needed_only_when_its_estimand_is_evidence():
    surveys = [
        F("or_low_back_pain_3m_nervous_most_plus", 2.0, 1.7, 2.4),
        F("trend_nervousness_frequency_low_back_pain_3m", 1.3, 1.2, 1.4),
        F("or_back_pain_any_gad7_moderate_plus", 2.0, 1.6, 2.5),
    ]
    v = verdict(surveys, "C3")  # no HELP within-person slope: nothing to be robust about
    assert (v.verdict, v.robustness) == ("supported", [])


def test_the_key_findings_own_e_value_is_used():
    """An analysis that knows its outcome is rare attaches its E-value; the verdict uses it."""
    f = F("or_chronic_low_back_pain_nervousness_help", 3.0, 1.3, 6.9, source="help")
    f.extra = {"evalue_point": 5.45, "evalue_ci": 1.92}
    v = verdict([f], "C1")
    assert (v.evalue["evalue_point"], v.evalue["evalue_ci"]) == (5.45, 1.92)
    assert any(c.startswith("E-value 5.45 (1.92 for the CI)") for c in v.caveats)


def test_cli_judges_what_the_last_build_judged(tmp_path):
    """A findings file the last build left out (not in its findings.csv) is not judged by
    `painanx claims` either, so the command agrees with the dashboard."""
    from typer.testing import CliRunner

    from analysis.cli import app

    judged = [F("proportion_recovered_6_weeks_acute", 0.6, 0.55, 0.65, source="published")]
    stale = [F("proportion_recovered_12_weeks_acute", 0.1, 0.05, 0.15, source="published")]
    write_findings(judged, tmp_path / "published/findings/06_a.json")
    write_findings(stale, tmp_path / "published/findings/06_b.json")
    (tmp_path / "findings.csv").write_text("source,notebook\npublished,06_a\n")
    result = CliRunner().invoke(app, ["claims", "--reports", str(tmp_path)])
    assert result.exit_code == 0, result.output
    c8 = json.loads((tmp_path / "claims.json").read_text())[7]
    assert [f["estimand"] for f in c8["findings"]] == ["proportion_recovered_6_weeks_acute"]
