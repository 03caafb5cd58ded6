"""The site as a reader meets it: headless Chromium opens every page from disk (file://).

Checks: no console errors, no request leaves the disk (file:/data: only), every link and
in-page anchor resolves, every figure has alt text, code is hidden until asked for, pages fit
a phone's width. Screenshots go to test-artifacts/ (gitignored).
Needs Debian's chromium + chromium-driver (`.ci/run` installs them in CI).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from analysis.build import browser

pytestmark = pytest.mark.skipif(
    browser.missing_reason() is not None,
    reason=f"headless browser unavailable: {browser.missing_reason()}",
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# CI installs axe-core (make install): there a missing axe fails the test instead of skipping it
NEEDS_AXE = pytest.mark.skipif(
    browser.axe_js() is None and not os.environ.get("CI"),
    reason="axe-core not installed (make install, or npm install --prefix .cache/axe axe-core)",
)


@pytest.fixture(scope="module")
def site(full_build):
    pages = sorted(p for p in full_build.reports_dir.rglob("*.html"))
    assert len(pages) >= 7  # index + 6 notebook pages (one of them failed)
    return full_build.reports_dir, pages


@pytest.fixture(scope="module")
def chromium():
    with browser.headless_chromium(1280, 900) as driver:
        yield driver


def _load(driver, page: Path):
    driver.get_log("performance")  # drop events from earlier pages
    driver.get_log("browser")
    driver.get(page.as_uri())
    return driver.get_log("browser"), browser.network_requests(driver)


def _ids(driver) -> set[str]:
    return set(
        driver.execute_script("return [...document.querySelectorAll('[id]')].map(e => e.id)")
    )


def test_pages_load_cleanly_offline_with_working_links(site, chromium):
    reports, pages = site
    ids_cache: dict[Path, set[str]] = {}
    problems = []
    for page in pages:
        console, requests = _load(chromium, page)
        rel = page.relative_to(reports)
        problems += [f"{rel}: console {e['level']}: {e['message']}" for e in console
                     if e["level"] in ("SEVERE", "WARNING")]  # fmt: skip
        problems += [f"{rel}: request to {u[:80]}" for u in requests
                     if urlsplit(u).scheme not in ("file", "data")]  # fmt: skip
        assert chromium.title.endswith("· painanx"), rel
        ids_cache[page] = _ids(chromium)
        hrefs = chromium.execute_script(
            "return [...document.querySelectorAll('a[href]')].map(a => a.href)"
        )
        for href in hrefs:
            parts = urlsplit(href)
            if parts.scheme != "file":
                problems.append(f"{rel}: link leaves the site: {href}")
                continue
            target = Path(unquote(parts.path))
            if not target.is_file():
                problems.append(f"{rel}: broken link {href}")
            elif parts.fragment and target.suffix == ".html":
                if target not in ids_cache:
                    html = target.read_text()
                    ids_cache[target] = (
                        {parts.fragment} if f'id="{parts.fragment}"' in html else set()
                    )
                if parts.fragment not in ids_cache[target]:
                    problems.append(f"{rel}: anchor #{parts.fragment} missing in {target.name}")
    assert not problems, "\n".join(problems)


def test_figures_have_alt_text_and_code_is_hidden_until_asked(site, chromium):
    reports, _ = site
    _load(chromium, reports / "synthetic" / "findings_figure.html")
    alts = chromium.execute_script("return [...document.images].map(i => i.alt)")
    assert len(alts) == 2 and all(a.strip() for a in alts)
    assert alts[0] == "Histogram of x"
    assert alts[1].startswith("Figure 2: Scatter of x")
    loaded = chromium.execute_script("return [...document.images].every(i => i.naturalWidth > 0)")
    assert loaded
    summary = chromium.find_element("css selector", "details.code-input summary")
    code = chromium.find_element("css selector", "details.code-input .highlight")
    assert not code.is_displayed()
    summary.click()
    assert code.is_displayed()
    ARTIFACTS.mkdir(exist_ok=True)
    browser.full_page_screenshot(chromium, ARTIFACTS / "notebook_page.png")


def test_dashboard_screenshots_and_phone_layout(site, chromium):
    reports, pages = site
    _load(chromium, reports / "index.html")
    badges = chromium.execute_script(
        "return [...document.querySelectorAll('.claim .badge')].map(b => b.textContent)"
    )
    assert badges == ["partly supported"]
    shot = browser.full_page_screenshot(chromium, ARTIFACTS / "dashboard.png")
    assert shot.stat().st_size > 10_000
    try:
        too_wide = []
        for phone_width in (360, 390):
            browser.emulate_phone(chromium, phone_width)
            for page in pages:
                chromium.get(page.as_uri())
                width, inner = chromium.execute_script(
                    "return [document.documentElement.scrollWidth, window.innerWidth]"
                )
                if width > inner:
                    too_wide.append(f"{page.relative_to(reports)}: {width}px > {inner}px")
        assert not too_wide, too_wide
        chromium.get((reports / "index.html").as_uri())
        browser.full_page_screenshot(chromium, ARTIFACTS / "dashboard_phone.png")
    finally:
        chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_checks_catch_a_bad_page(tmp_path, chromium):
    """The browser checks above can fail: a remote image (on loopback: nothing leaves the
    machine) and a script error are both seen."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html lang="en"><head><title>bad</title></head><body>'
        '<img src="http://127.0.0.1:9/pixel.png" alt="x">'
        "<script>console.error('boom')</script></body></html>"
    )
    console, requests = _load(chromium, bad)
    assert any(u.startswith("http://127.0.0.1:9/") for u in requests)
    assert any("boom" in e["message"] for e in console if e["level"] == "SEVERE")


def test_updates_page_and_claimreview_markup(site, chromium):
    """The updates page lists the ledger's changes, newest first; each claim card carries one
    schema.org ClaimReview that parses and names the card's verdict."""
    import json

    from analysis.claims.ledger import load_ledger

    reports, _ = site
    console, _ = _load(chromium, reports / "updates.html")
    assert not [e for e in console if e["level"] == "SEVERE"]
    items = chromium.execute_script(
        "return [...document.querySelectorAll('ol.updates > li')].map(li => li.innerText)"
    )
    ledger = load_ledger()
    assert len(items) == sum(len(rec.changes()) for rec in ledger.values())
    dates = [text.split(",")[0] for text in items]
    assert dates == sorted(dates, reverse=True)
    _load(chromium, reports / "index.html")
    cards = chromium.execute_script(
        "return [...document.querySelectorAll('li.claim')].map(li => "
        "[li.id, li.querySelector('.badge').innerText, "
        "[...li.querySelectorAll('script[type=\"application/ld+json\"]')].map(s => s.textContent)])"
    )
    assert cards
    for card_id, verdict, scripts in cards:
        assert len(scripts) == 1, card_id
        review = json.loads(scripts[0])
        assert review["@type"] == "ClaimReview" and review["claimReviewed"]
        assert review["reviewRating"]["alternateName"] == verdict
        assert review["itemReviewed"]["appearance"]["headline"].startswith("Xanax for Back Pain")


def test_every_card_links_to_its_analysis_page(site, chromium):
    reports, _ = site
    _load(chromium, reports / "index.html")
    links = chromium.execute_script(
        "return [...document.querySelectorAll('li.claim')].map(li => [li.id, "
        "[...li.querySelectorAll('a')].filter(a => a.textContent.startsWith('See the analysis'))"
        ".map(a => a.href)])"
    )
    assert links
    for card_id, hrefs in links:
        assert len(hrefs) == 1, card_id
        target = Path(unquote(urlsplit(hrefs[0]).path))
        assert target.is_file() and target.suffix == ".html", (card_id, hrefs[0])
        assert target.parent.parent == reports, (card_id, hrefs[0])  # a notebook page


@NEEDS_AXE
def test_no_serious_accessibility_violations(site, chromium):
    """axe-core (the browser accessibility checker) on the index and every page of the build."""
    _, pages = site
    chromium.set_script_timeout(60)
    problems = []
    for page in pages:
        _load(chromium, page)
        problems += [f"{page.name}: {v}" for v in browser.axe_violations(chromium)]
    assert not problems, "\n".join(problems)


@NEEDS_AXE
def test_axe_sees_a_serious_violation(tmp_path, chromium):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><title>x</title></head><body><img src="data:,"></body></html>'
    )
    chromium.get(bad.as_uri())
    assert any(v.startswith("image-alt (critical)") for v in browser.axe_violations(chromium))
