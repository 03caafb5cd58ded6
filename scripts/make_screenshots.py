"""Screenshots of the built site for the docs: the index and one notebook page, each at a
desktop width (1280 px) and a phone width (390 px), the first screen a reader sees.

Made from reports/ as `painanx run` left it (build first), never by hand:

    python scripts/make_screenshots.py                      # docs/screenshots/*.png
    python scripts/make_screenshots.py --page help/03_anxiety_and_pain.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.build import browser

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def make_screenshots(reports: Path, page: str, out_dir: Path) -> list[Path]:
    """One PNG per page and width, named ``<page>-<width>.png``; returns their paths."""
    pages = {"index": reports / "index.html", "notebook": reports / page}
    missing = [str(p) for p in pages.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"not built: {', '.join(missing)} (run `painanx run` first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for width, height in WIDTHS.values():
        with browser.headless_chromium(width, height) as driver:
            if width < 600:
                browser.emulate_phone(driver, width, height)
            for name, html in pages.items():
                driver.get(html.resolve().as_uri())
                png = out_dir / f"{name}-{width}.png"
                driver.save_screenshot(str(png))
                written.append(png)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--page", default="nhis/02_comorbidity.html", help="under reports/")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    reason = browser.missing_reason()
    if reason:
        print(f"make_screenshots: {reason}", file=sys.stderr)
        return 1
    for png in make_screenshots(args.reports, args.page, args.out):
        print(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
