"""The HTML site readers open: notebook pages and the claims dashboard (reports/index.html).

Pages are self-contained files (CSS inlined, figures as base64, no scripts, nothing remote),
so they work offline and from disk. Notebook pages are exported in-process by nbconvert
with the ``painanx`` template (resources/templates/nbconvert/): code hidden in a
``<details>`` per cell, alt text on every figure. Page shells are Jinja2 templates in
resources/templates/.
"""

from __future__ import annotations

import copy
import csv
import functools
import html
import io
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import jinja2
from pygments.formatters import HtmlFormatter

from analysis import __version__
from analysis.build.display import format_number
from analysis.build.forest import forest_svg
from analysis.claims.ledger import ClaimHistory
from analysis.claims.plain import bottom_line, has_raw_keys, plain_finding
from analysis.claims.registry import VERDICTS, load_registry
from analysis.core.findings import EVIDENCE_SOURCES, SOURCES
from analysis.core.io import write_text_atomic

ARTICLE_TITLE = "Xanax for Back Pain: Does It Really Help You Find Relief"
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "resources" / "templates"
NBCONVERT_TEMPLATES_DIR = TEMPLATES_DIR / "nbconvert"
SYNTHETIC_BANNER = "Synthetic data: validates the pipeline, not evidence"

VERDICT_KEYS = ("claim_id", "sentence", "verdict", "key_finding", "sources", "caveats", "notebook")
KEY_FINDING_KEYS = ("label", "estimate", "ci_low", "ci_high", "measure", "source")
STATUS_LABELS = {
    "ok": "built",
    "failed": "failed",
    "skipped": "skipped",
    "not applicable": "not applicable",
    "missing": "not written yet",
    "not built": "not built",
    "interrupted": "stopped (Ctrl-C)",
    "not measured": "not run: not measured",
}


# --------------------------------------------------------------------------- formatting


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _pyrepr(value) -> str:
    return repr(value)


def _thousands(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters.update(num=format_number, slug=_slug, pyrepr=_pyrepr, thousands=_thousands)
    env.globals.update(status_labels=STATUS_LABELS, painanx_version=__version__)
    return env


@functools.cache
def site_css() -> str:
    """The page CSS: the site stylesheet plus Pygments colours for highlighted code."""
    pygments_css = HtmlFormatter(style="default").get_style_defs(".highlight")
    return (TEMPLATES_DIR / "site.css").read_text(encoding="utf-8") + "\n" + pygments_css


PROVENANCE_KEYS = (
    "source",
    "inputs",
    "parameters",
    "notebook",
    "library_sha256",
    "packages",
    "git",
    "built_at",
    "duration_s",
)


def _full_provenance(p: Mapping | None) -> dict:
    """Provenance with every key present (missing ones None), as the templates expect."""
    p = dict(p or {})
    return {k: p.get(k) for k in PROVENANCE_KEYS} | p


def _page_context(**kwargs) -> dict:
    ctx = {"css": site_css(), "root": "", "synthetic": False}
    ctx.update(kwargs)
    return ctx


# --------------------------------------------------------------------------- notebook pages


def _heading_of(markdown: str) -> str | None:
    for line in markdown.splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and m.group(1):
            return m.group(1)
    return None


PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
FAILED_CELL_MARKER = (
    '<p id="failed-cell" class="failed-cell-marker"><strong>The notebook stopped here:</strong> '
    "the next cell raised the error shown at the top of the page.</p>"
)


def prepare_notebook_for_page(nb, title: str):
    """A copy of an executed notebook ready for its page.

    - papermill's red error banners become one accessible marker (id ``failed-cell``) before
      the failed cell (the page's own error box says what failed);
    - the first heading is dropped when it repeats the page title;
    - every figure gets alt text (`ensure_alt_text`).
    """
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if PAPERMILL_ERROR_TAG in cell.get("metadata", {}).get("tags", []):
            if (
                "papermill-error-cell" in cell.source
                and 'href="#papermill-error-cell"' not in cell.source
            ):
                cell.source = FAILED_CELL_MARKER
                cells.append(cell)
            continue
        cells.append(cell)
    nb.cells = cells
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if line.strip():
                if _heading_of(line) and re.sub(r"[*_`]", "", _heading_of(line)) == title:
                    cell.source = "\n".join(lines[:i] + lines[i + 1 :])
                break
        break
    return ensure_alt_text(nb, title)


def ensure_alt_text(nb, notebook_title: str = "notebook"):
    """A copy of the notebook where every image output carries alt text.

    Figures shown with `analysis.build.display.figure` already have one (from their title or caption);
    others get "Figure N in section '<nearest heading>'" or the first comment line of their cell.
    """
    nb = copy.deepcopy(nb)
    heading = None
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = _heading_of(cell.source) or heading
            continue
        if cell.cell_type != "code":
            continue
        comment = next(
            (
                ln.strip().lstrip("#").strip()
                for ln in cell.source.splitlines()
                if ln.strip().startswith("#")
            ),
            None,
        )
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for mime in ("image/png", "image/jpeg", "image/svg+xml"):
                if mime not in data:
                    continue
                count += 1
                meta = output.setdefault("metadata", {})
                mime_meta = meta.setdefault(mime, {})
                if mime_meta.get("alt") or meta.get("alt"):
                    continue
                if comment:
                    mime_meta["alt"] = f"Figure {count}: {comment}"
                elif heading:
                    mime_meta["alt"] = f"Figure {count} in section '{heading}' of {notebook_title}"
                else:
                    mime_meta["alt"] = f"Figure {count} of {notebook_title}"
    return nb


_thread_state = threading.local()


def notebook_exporter():
    """This thread's nbconvert exporter, made on first use (the runner exports pages from
    worker threads), its templates compiled by rendering an empty notebook: each worker does
    this while it waits for its first kernel, not when its first page is waited for."""
    exporter = getattr(_thread_state, "exporter", None)
    if exporter is None:
        # nbconvert takes ~1 s to import: only when a page is exported, so a build with
        # nothing to run stays quick
        import nbformat
        from nbconvert import HTMLExporter

        exporter = HTMLExporter(
            template_name="painanx",
            extra_template_basedirs=[str(NBCONVERT_TEMPLATES_DIR)],
            exclude_input_prompt=True,
            exclude_output_prompt=True,
        )
        exporter.from_notebook_node(nbformat.v4.new_notebook())
        _thread_state.exporter = exporter
    return exporter


def notebook_body_html(nb, notebook_title: str = "notebook") -> str:
    """The cells of an executed notebook as an HTML fragment (no <html>, no scripts)."""
    body, _ = notebook_exporter().from_notebook_node(prepare_notebook_for_page(nb, notebook_title))
    return body


def notebook_title(nb, fallback: str) -> str:
    """The first markdown heading of the notebook, else the fallback."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = _heading_of(cell.source)
            if heading:
                return re.sub(r"[*_`]", "", heading)
    return fallback


def render_notebook_page(
    nb,
    *,
    title: str,
    source_label: str,
    synthetic: bool,
    provenance: Mapping,
    notebook_file: str,
    error: Mapping | None = None,
    built_at: str = "",
) -> str:
    """A full HTML page for one executed notebook (page lives one folder below reports/)."""
    return _notebook_page(
        title=title,
        source_label=source_label,
        synthetic=synthetic,
        provenance=provenance,
        body=notebook_body_html(nb, title),
        error=error,
        notebook_file=notebook_file,
        built_at=built_at,
    )


def render_not_measured_page(
    *, title: str, source_label: str, synthetic: bool, provenance: Mapping, notice: str
) -> str:
    """The page of a notebook not run because its source lacks a column it needs: the one-line
    notice in place of the cells (no kernel, no nbconvert)."""
    return _notebook_page(
        title=title,
        source_label=source_label,
        synthetic=synthetic,
        provenance=provenance,
        body=f'<p class="not-measured">{html.escape(notice)}</p>',
    )


def _notebook_page(
    *,
    title: str,
    source_label: str,
    synthetic: bool,
    provenance: Mapping,
    body: str,
    error: Mapping | None = None,
    notebook_file: str = "",
    built_at: str = "",
) -> str:
    """A notebook's page (one folder below reports/) around ``body``."""
    return (
        _env()
        .get_template("notebook.html.j2")
        .render(
            **_page_context(
                root="../",
                title=title,
                synthetic=synthetic,
                source_label=source_label,
                body=body,
                prov=_full_provenance(provenance),
                error=error,
                notebook_file=notebook_file,
                built_at=built_at or provenance.get("built_at", ""),
            )
        )
    )


def export_notebook_page(
    executed_ipynb: str | os.PathLike[str], html_path: str | os.PathLike[str], **kwargs
) -> Path:
    """Read an executed notebook and write its page (atomically). kwargs: see render_notebook_page."""
    import nbformat  # lazily: it loads jsonschema's format checkers (~0.7 s), which a rebuild
    # with nothing to export never needs

    nb = nbformat.read(str(executed_ipynb), as_version=4)
    kwargs.setdefault("notebook_file", Path(executed_ipynb).name)
    page = render_notebook_page(nb, **kwargs)
    return write_text_atomic(html_path, page)


# --------------------------------------------------------------------------- verdicts


def validate_verdicts(verdicts: Iterable[Mapping]) -> list[dict]:
    """Check verdict dicts from `analysis.claims.verdicts.evaluate_claims`; a clear error names what is wrong."""
    out: list[dict] = []
    for i, v in enumerate(verdicts):
        if not isinstance(v, Mapping) and callable(getattr(v, "to_dict", None)):
            v = v.to_dict()  # analysis.claims.verdicts.Verdict
        if not isinstance(v, Mapping):
            raise ValueError(f"verdict #{i}: expected a dict, got {type(v).__name__}")
        missing = [k for k in VERDICT_KEYS if k not in v]
        if missing:
            raise ValueError(f"verdict #{i} ({v.get('claim_id', '?')}): missing keys {missing}")
        if v["verdict"] not in VERDICTS:
            raise ValueError(
                f"verdict #{i} ({v['claim_id']}): verdict {v['verdict']!r} is not one of {VERDICTS}"
            )
        kf = v["key_finding"]
        if kf is not None:
            if not isinstance(kf, Mapping):
                raise ValueError(
                    f"verdict #{i} ({v['claim_id']}): key_finding must be a dict or None"
                )
            kf_missing = [k for k in KEY_FINDING_KEYS if k not in kf]
            if kf_missing:
                raise ValueError(
                    f"verdict #{i} ({v['claim_id']}): key_finding lacks keys {kf_missing}"
                )
        for key in ("sources", "caveats"):
            if isinstance(v[key], str) or not isinstance(v[key], Sequence):
                raise ValueError(f"verdict #{i} ({v['claim_id']}): {key} must be a list")
        out.append(dict(v))
    return out


def notebook_page_link(
    notebook: str | None, source: str | None, reports_dir: str | os.PathLike[str]
) -> str | None:
    """Relative link (from reports/index.html) to a built notebook page, or None if not built.

    ``notebook`` may be a page path ("help/02_comorbidity.html"), or a notebook name
    ("02_comorbidity") resolved in ``source``'s folder.
    """
    if not notebook:
        return None
    notebook = str(notebook)
    if notebook.endswith(".html"):
        rel = notebook
    else:
        name = Path(notebook).stem
        if "/" in notebook:
            rel = f"{notebook.rsplit('.', 1)[0] if notebook.endswith('.ipynb') else notebook}.html"
        elif source:
            rel = f"{source}/{name}.html"
        else:
            return None
    return rel if (Path(reports_dir) / rel).is_file() else None


# --------------------------------------------------------------------------- index and tables


def csv_text(rows: Iterable[Mapping], columns: Sequence[str]) -> str:
    """Rows (dicts) as CSV text with the given columns. Lists are joined with '; '."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (
                    "; ".join(map(str, v))
                    if isinstance(v, list | tuple)
                    else ("" if v is None else v)
                )
                for k, v in row.items()
            }
        )
    return buffer.getvalue()


CLAIMS_CSV_COLUMNS = (
    "claim_id",
    "sentence",
    "verdict",
    "key_label",
    "key_estimate",
    "key_ci_low",
    "key_ci_high",
    "key_measure",
    "key_source",
    "sources",
    "caveats",
    "notebook",
)


def verdict_csv_rows(verdicts: Iterable[Mapping]) -> list[dict]:
    """Flatten verdict dicts (key_finding spread into key_* columns) for claims.csv."""
    rows = []
    for v in verdicts:
        kf = v.get("key_finding") or {}
        rows.append(
            {
                "claim_id": v.get("claim_id"),
                "sentence": v.get("sentence"),
                "verdict": v.get("verdict") or "verdict pending",
                "key_label": kf.get("label"),
                "key_estimate": kf.get("estimate"),
                "key_ci_low": kf.get("ci_low"),
                "key_ci_high": kf.get("ci_high"),
                "key_measure": kf.get("measure"),
                "key_source": kf.get("source"),
                "sources": list(v.get("sources") or []),
                "caveats": list(v.get("caveats") or []),
                "notebook": v.get("notebook"),
            }
        )
    return rows


def group_findings_by_claim(findings: Iterable[Mapping], reports_dir) -> list[dict]:
    """Findings (dicts) grouped by claim id, in claim order, each with a link to its page."""
    groups: dict[str, list[dict]] = {}
    for f in findings:
        f = dict(f)
        f["page"] = notebook_page_link(f.get("notebook"), f.get("source"), reports_dir)
        groups.setdefault(f.get("claim_id") or "?", []).append(f)

    def claim_key(cid: str):
        m = re.match(r"^[A-Za-z]*(\d+)", cid)
        return (int(m.group(1)) if m else 10**6, cid)

    return [{"claim_id": cid, "findings": groups[cid]} for cid in sorted(groups, key=claim_key)]


def render_index(
    *,
    summary: Mapping,
    failures: Sequence[Mapping],
    messages: Sequence[str],
    claims: Mapping,
    sources: Sequence[Mapping],
    provenance: Mapping,
    built_at: str,
) -> str:
    """The claims dashboard and page list (reports/index.html).

    ``claims``: {"evaluated": bool, "verdicts": [verdict dicts, each with "page"],
    "groups": [{"claim_id", "findings"}], "error": str | None}.
    """
    source_labels = {s["name"]: s["label"] for s in sources}
    for name in SOURCES:
        source_labels.setdefault(name, name)
    return (
        _env()
        .get_template("index.html.j2")
        .render(
            **_page_context(
                title="Claims dashboard",
                article_title=ARTICLE_TITLE,
                summary=summary,
                failures=failures,
                messages=messages,
                claims=claims,
                sources=sources,
                source_labels=source_labels,
                prov=_full_provenance(provenance),
                built_at=built_at,
            )
        )
    )


def prepare_verdicts_for_index(
    verdicts: Iterable[Mapping], reports_dir, ledger: Mapping[str, ClaimHistory] | None = None
) -> list[dict]:
    """Attach to each verdict the relative link of its notebook page (None if not built), its
    update history from the ledger, and its schema.org ClaimReview markup."""
    out = []
    ledger = ledger or {}
    meaningful = meaningful_sizes()
    for v in verdicts:
        v = dict(v)
        kf = v.get("key_finding") or {}
        v["page"] = notebook_page_link(v.get("notebook"), kf.get("source"), reports_dir)
        if v["page"] is None and v.get("notebook") and "/" not in str(v["notebook"]):
            # no key finding to say which source: any built page of the notebook will do
            v["page"] = next(
                (
                    link
                    for src in (*EVIDENCE_SOURCES, "synthetic")
                    if (link := notebook_page_link(v["notebook"], src, reports_dir))
                ),
                None,
            )
        v["notebook_name"] = Path(str(v.get("notebook") or "")).stem or None
        v["updates"] = _updates_of(v, ledger.get(v.get("claim_id", "")))
        v["claim_review"] = claim_review_json(v)
        v.update(reader_view(v, meaningful))
        out.append(v)
    return out


def reader_view(v: Mapping, meaningful: Mapping[str, float]) -> dict:
    """What a card shows readers in plain words: the bottom line, the evidence as sentences
    (numbered like its forest plot), caveats without registry keys (those go to details)."""
    evidence = [f for f in v.get("findings") or [] if f.get("source") != "synthetic"]
    caveats = list(v.get("caveats") or [])
    kf = v.get("key_finding")
    return {
        "bottom_line": bottom_line(v),
        "key_sentence": plain_finding(kf) if kf else None,
        "evidence": [plain_finding(f) for f in evidence],
        "plain_caveats": [c for c in caveats if not has_raw_keys(c)],
        "detail_caveats": [c for c in caveats if has_raw_keys(c)],
        "forest": forest_svg(str(v.get("claim_id")), evidence, meaningful),
    }


def meaningful_sizes() -> dict[str, float]:
    """The registry's smallest effect that matters, per estimand key (for the forest plots)."""
    return {
        k: e.meaningful for k, e in load_registry().estimands.items() if e.meaningful is not None
    }


def _updates_of(v: Mapping, rec: ClaimHistory | None) -> dict:
    """Dates and changes of a claim's verdict, when the ledger holds this build's verdict."""
    if rec is None or rec.current.verdict != v.get("verdict"):
        return {"recorded": False, "published": None, "modified": None, "changes": []}
    changes = [
        {"date": new.date, "was": old.verdict, "now": new.verdict, "was_certainty": old.certainty,
         "now_certainty": new.certainty, "reason": new.reason}
        for old, new in rec.changes()
    ]  # fmt: skip
    return {
        "recorded": True,
        "published": rec.published,
        "modified": rec.current.date,
        "changes": changes,
    }


def claim_review_json(v: Mapping) -> str:
    """schema.org ClaimReview for one claim: what fact-checkers publish for search engines."""
    review = {
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "claimReviewed": " ".join(v.get("quotation") or [v.get("sentence", "")]),
        "itemReviewed": {
            "@type": "Claim",
            "appearance": {"@type": "CreativeWork", "headline": ARTICLE_TITLE},
        },
        "reviewRating": {"@type": "Rating", "alternateName": v.get("verdict")},
        "author": {"@type": "Organization", "name": "painanx"},
    }
    updates = v.get("updates") or {}
    if updates.get("published"):
        review["datePublished"] = updates["published"]
        review["dateModified"] = updates["modified"]
    # "</" would end the script element early
    return json.dumps(review, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")


def render_updates(ledger: Mapping[str, ClaimHistory], provenance: Mapping, built_at: str) -> str:
    """reports/updates.html: every recorded change of a verdict or certainty, newest first."""
    rows = [
        {"claim_id": cid, "date": new.date, "was": old.verdict, "now": new.verdict,
         "was_certainty": old.certainty, "now_certainty": new.certainty, "reason": new.reason}
        for cid, rec in ledger.items()
        for old, new in rec.changes()
    ]  # fmt: skip
    firsts = [
        {"claim_id": cid, "date": rec.published,
         "verdict": (rec.history[-1] if rec.history else rec.current).verdict}
        for cid, rec in ledger.items()
    ]  # fmt: skip
    rows.sort(key=lambda r: (r["date"], r["claim_id"]), reverse=True)
    seen: set[str] = set()
    for r in rows:  # the cards link to each claim's newest change
        r["anchor"] = r["claim_id"] not in seen
        seen.add(r["claim_id"])
    return (
        _env()
        .get_template("updates.html.j2")
        .render(
            **_page_context(
                title="Updates",
                changes=rows,
                firsts=sorted(firsts, key=lambda r: r["claim_id"]),
                prov=_full_provenance(provenance),
                built_at=built_at,
            )
        )
    )
