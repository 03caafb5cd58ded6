"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium.

Used by the reader-level tests of the site and to make screenshots of the dashboard
(e.g. for the README). Needs the dev extra (``selenium``) and the Debian packages; nothing
is downloaded: the browser and driver are the system ones.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Flags for a quiet, offline, root-safe headless Chromium (see the machine notes for why).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) executables, or None when either is absent."""
    browser = os.environ.get("PAINANX_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSER_NAMES) if p), None
    )
    driver = os.environ.get("PAINANX_CHROMEDRIVER") or shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    return None


def missing_reason() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    try:  # selenium is a dev dependency, only for the browser tests
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return (
            "Chromium and/or ChromeDriver are not installed "
            "(Debian: apt-get install -y chromium chromium-driver)"
        )
    return None


@contextlib.contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator:
    """A Selenium Chrome driver on a fresh profile, logging console messages and network events."""
    # selenium is a dev dependency: imported only here (see missing_reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError(missing_reason() or "Chromium not found")
    browser, driver_path = found
    with tempfile.TemporaryDirectory(prefix="painanx-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=driver_path, log_output=os.devnull)
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()


def emulate_phone(driver, width: int = 375, height: int = 740) -> None:
    """Make the page see a phone-sized viewport (mobile layout, touch), as a reader's phone would."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
    )


def network_requests(driver, document_prefix: str = "file:") -> list[str]:
    """URLs requested by pages whose address starts with ``document_prefix`` since the last call
    (from the performance log; the browser's own chrome:// pages are left out)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"]).get("message", {})
        if message.get("method") != "Network.requestWillBeSent":
            continue
        params = message["params"]
        if params.get("documentURL", "").startswith(document_prefix):
            urls.append(params["request"]["url"])
    return urls


def full_page_screenshot(driver, png_path: str | os.PathLike[str]) -> Path:
    """Save a screenshot of the whole page (not just the viewport) as PNG."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(base64.b64decode(shot["data"]))
    return png_path


def screenshot(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    *,
    width: int = 1200,
    height: int = 900,
    full_page: bool = False,
) -> Path:
    """Screenshot of a page on disk (e.g. reports/index.html for the README)."""
    with headless_chromium(width, height) as driver:
        driver.get(Path(html_path).resolve().as_uri())
        if full_page:
            return full_page_screenshot(driver, png_path)
        png_path = Path(png_path)
        png_path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png_path))
        return png_path


AXE_JS_ENV = "PAINANX_AXE_JS"
AXE_JS_DEFAULT = Path(__file__).resolve().parents[3] / ".cache/axe/node_modules/axe-core/axe.min.js"


def axe_js() -> Path | None:
    """axe-core's axe.min.js (from the npm registry; `make install` puts it under .cache/axe),
    or None when it is not installed."""
    path = Path(os.environ.get(AXE_JS_ENV) or AXE_JS_DEFAULT)
    return path if path.is_file() else None


def axe_violations(driver, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """Run axe-core on the page loaded in ``driver``; one line per violation of these impacts
    (rule, impact, help text and the first offending elements)."""
    path = axe_js()
    if path is None:
        raise RuntimeError(
            f"axe-core not found at {AXE_JS_DEFAULT} (npm install --prefix .cache/axe axe-core, "
            f"or set {AXE_JS_ENV})"
        )
    driver.execute_script(path.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations), e => done({error: String(e)}));"
    )
    if isinstance(result, dict):
        raise RuntimeError(f"axe-core failed: {result['error']}")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(n["target"]) for n in v["nodes"][:3])
        for v in result
        if v.get("impact") in impacts
    ]
