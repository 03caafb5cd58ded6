"""Plain-words sentences and forest plots made from findings (never typed by hand)."""

from __future__ import annotations

import re

import pytest

from analysis.build.forest import forest_svg, plotted_rows
from analysis.build.site import reader_view
from analysis.claims.plain import bottom_line, has_raw_keys, percent, plain_finding, readable_label


def finding(**kw):
    base = {
        "label": "x",
        "estimate": 1.0,
        "ci_low": None,
        "ci_high": None,
        "measure": "mean",
        "null_value": None,
        "source": "nhis",
        "extra": {},
        "estimand": "k",
    }
    return base | kw  # fmt: skip


def test_proportion_with_comparison_reads_as_a_sentence():
    f = finding(label="nervous most or all of the time among US adults with low back pain",
                estimate=0.0999, ci_low=0.091, ci_high=0.109, measure="proportion",
                extra={"p_unexposed": 0.0347})  # fmt: skip
    assert plain_finding(f) == (
        "Nervous most or all of the time: 10% of US adults with low back pain "
        "(95% CI 9.1% to 11%), vs 3.5% of those without (NHIS, US adults)."
    )


@pytest.mark.parametrize(
    ("measure", "lo", "hi", "words", "null_words"),
    [
        ("odds ratio", 1.3, 6.9, "the odds were 3.0 times as high", "rules out no effect"),
        (
            "prevalence ratio",
            1.0,
            6.9,
            "the prevalence was 3.0 times as high",
            "no effect is within",
        ),
    ],
)
def test_ratios_say_how_many_times_and_whether_no_effect_is_ruled_out(
    measure, lo, hi, words, null_words
):
    f = finding(label="Pain (adjusted OR)", estimate=2.97, ci_low=lo, ci_high=hi,
                measure=measure, null_value=1.0, source="help")  # fmt: skip
    text = plain_finding(f)
    assert text.startswith(f"Pain: {words} (95% CI {lo:.1f} to {hi:.1f})")
    assert null_words in text and text.endswith("(HELP study).")


def test_differences_say_lower_or_higher_and_statements_have_no_number():
    lower = finding(label="Pain", estimate=-3.42, ci_low=-4.7, ci_high=-2.1,
                    measure="mean difference", null_value=0.0)  # fmt: skip
    assert "Pain: 3.4 points lower (95% CI -4.7 to -2.1)" in plain_finding(lower)
    same = finding(label="RMDQ", estimate=0.0, measure="mean difference", source="published")
    assert plain_finding(same) == "RMDQ: no difference (published evidence)."
    stated = finding(label="FDA boxed warning", estimate=None, measure="statement")
    assert "a statement, not a number" in plain_finding(stated)


def test_registry_keys_never_reach_the_sentence():
    f = finding(label="Itz 2013: recovered -> proportion_recovered_12_weeks_acute",
                estimate=0.33, measure="proportion", source="published")  # fmt: skip
    assert plain_finding(f) == "Itz 2013: recovered: 33% (published evidence)."
    assert readable_label("exercise_vs_control_pain minus x") == "exercise vs control pain minus x"
    assert has_raw_keys("Not measured by help, nhis: prevalence_gad7_ge10_among_pain.")
    assert not has_raw_keys("GAD-7 >= 10 screens for anxiety symptoms.")
    assert percent(0.0999) == "10%" and percent(0.0347) == "3.5%"


def test_bottom_line_leads_with_verdict_and_certainty():
    kf = finding(label="Pain", estimate=-3.42, measure="mean difference")
    v = {"verdict": "partly supported", "certainty": {"level": "low"}, "key_finding": kf}
    assert (
        bottom_line(v)
        == "Partly supported, with low certainty. Pain: 3.4 points lower (NHIS, US adults)."
    )
    empty = {"verdict": "insufficient evidence", "key_finding": None, "primary_estimands": 2}
    assert bottom_line(empty) == (
        "Insufficient evidence: none of the 2 measures its rule names has evidence yet."
    )


def test_card_moves_caveats_with_keys_to_details_and_keeps_synthetic_out():
    v = {"claim_id": "C1", "verdict": "supported", "key_finding": None,
         "caveats": ["Cross-sectional.", "Not measured by help: prevalence_gad7_ge10_among_x."],
         "findings": [finding(estimate=2.0, ci_low=1.5, ci_high=2.5, measure="odds ratio",
                              null_value=1.0),
                      finding(estimate=9.0, source="synthetic")]}  # fmt: skip
    view = reader_view(v, {})
    assert view["plain_caveats"] == ["Cross-sectional."]
    assert view["detail_caveats"] == ["Not measured by help: prevalence_gad7_ge10_among_x."]
    assert len(view["evidence"]) == 1 and "synthetic" not in view["forest"]


def test_forest_plot_draws_every_numbered_finding_with_alt_text_of_its_numbers():
    fs = [
        finding(estimate=2.97, ci_low=1.28, ci_high=6.9, measure="odds ratio", null_value=1.0,
                source="help", estimand="or_a"),
        finding(estimate=None, measure="statement", source="published"),
        finding(estimate=0.1, ci_low=0.09, ci_high=0.11, measure="proportion"),
    ]  # fmt: skip
    assert [r["number"] for r in plotted_rows(fs)] == [1, 3]
    svg = forest_svg("C1", fs, {"or_a": 1.2})
    assert svg.startswith("<svg") and 'role="img"' in svg
    alt = re.search(r'aria-label="([^"]+)"', svg).group(1)
    assert "1: odds ratio 3.0 (95% CI 1.3 to 6.9), HELP study" in alt
    assert "3: proportion 0.10 (95% CI 0.09 to 0.11)" in alt
    assert svg.count("<rect") == 2  # the HELP marker and its legend entry
    assert 'stroke-dasharray="5 3"' in svg and 'stroke-dasharray="2 3"' in svg  # null, meaningful
    assert forest_svg("C2", [fs[1]], {}) is None


def test_index_leads_with_the_answer_and_keeps_keys_in_details(tmp_path):
    from bs4 import BeautifulSoup

    from analysis.build.site import prepare_verdicts_for_index, render_index

    kf = finding(label="nervous among adults with back pain -> prevalence_nervous_among_pain",
                 estimate=0.1, ci_low=0.09, ci_high=0.11, measure="proportion",
                 extra={"p_unexposed": 0.03}, notebook="02_comorbidity")  # fmt: skip
    v = {"claim_id": "C1", "sentence": "Many people with back pain are anxious.",
         "verdict": "partly supported", "key_finding": kf, "sources": ["nhis"],
         "caveats": ["Cross-sectional.", "Not measured by help: prevalence_gad7_ge10_among_x."],
         "findings": [kf], "notebook": "02_comorbidity"}  # fmt: skip
    verdicts = prepare_verdicts_for_index([v], tmp_path)
    html = render_index(summary={"pages": 0, "ok": 0, "ran": 0, "cached": 0, "failed": 0,
                                 "skipped": 0}, failures=[], messages=[],
                        claims={"evaluated": True, "verdicts": verdicts, "groups": [], "error": None},
                        sources=[], provenance={}, built_at="now")  # fmt: skip
    soup = BeautifulSoup(html, "html.parser")
    first_table = soup.select_one("main table")
    assert "answers" in first_table["class"]  # the answer comes before anything else
    row = first_table.select_one("tbody tr")
    assert row.select_one("a")["href"] == "#claim-C1"
    assert "10% of adults with back pain" in row.get_text() and "3.0%" in row.get_text()
    card = soup.select_one("#claim-C1")
    assert card.select_one("svg.forest") is not None
    for hidden in card.select("details, script"):
        assert "prevalence_" in hidden.get_text() or hidden.name == "script"
        hidden.decompose()
    assert not has_raw_keys(card.get_text(" ")), card.get_text(" ")
    assert "Bottom line:" in card.get_text() and "Cross-sectional." in card.get_text()
