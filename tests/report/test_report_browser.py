"""Every committed report in a real browser (issue 11): at 1280 px and 390 px wide nothing
overflows the page sideways outside its own scroll box, and the verdict is on the first screen;
the London report prints in at most 15 pages.

Needs Chromium (``/usr/bin/chromium``) and Playwright (which drives it; no browser download);
skipped without them. One browser for all the pages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORTS = sorted(p for p in (REPO / "reports").glob("*/index.html"))
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
#: Reports with a verdict: 1:1, 1:N and the comparison (classifier, skin-tone and mitigation pages have none).
WITH_VERDICT = {p.parent.name for p in REPORTS if 'id="verdict"' in p.read_text(encoding="utf-8")}
#: (width, height) of the two screens: a laptop, and a phone held upright.
SCREENS = ((1280, 800), (390, 844))

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

_OVERFLOW = """() => {
  const vw = document.documentElement.clientWidth;
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.right > vw + 1 && !e.closest('.wide, pre, details:not([open])')) out.push(e.tagName + '.' + e.className);
    if (out.length > 4) break;
  }
  return [document.documentElement.scrollWidth, vw, out];
}"""


@pytest.fixture(scope="module")
def measured() -> dict[tuple[str, int], tuple[int, int, list[str], list[float] | None]]:
    """(report, width) -> (scrollWidth, viewport width, elements sticking out, verdict top/bottom)."""
    out = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for w, h in SCREENS:
                page = browser.new_page(viewport={"width": w, "height": h})
                for path in REPORTS:
                    page.goto(path.as_uri(), wait_until="load")
                    sw, vw, sticking = page.evaluate(_OVERFLOW)
                    box = page.evaluate("(() => { const e = document.getElementById('verdict'); if (!e) return null;"
                                        " const r = e.getBoundingClientRect(); return [r.top, r.bottom]; })()")
                    out[(path.parent.name, w)] = (sw, vw, sticking, box)
                page.close()
        finally:
            browser.close()
    return out


def test_the_harness_sees_an_overflow(tmp_path):
    """A page that does overflow is caught, so a harness that sees nothing cannot pass."""
    bad = tmp_path / "index.html"
    bad.write_text('<!DOCTYPE html><html><body><table><tr><td style="white-space:nowrap">' + "x" * 400
                   + "</td></tr></table></body></html>", encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(bad.as_uri(), wait_until="load")
            sw, vw, sticking = page.evaluate(_OVERFLOW)
        finally:
            browser.close()
    assert sw > vw and sticking


def test_every_committed_report_is_measured(measured):
    assert len(REPORTS) >= 12
    assert {"london-dlib", "london-identification-dlib", "london-compare", "lfw-dlib"} <= WITH_VERDICT
    assert len(measured) == 2 * len(REPORTS)


@pytest.mark.parametrize("width", [w for w, _ in SCREENS])
def test_nothing_overflows_the_page_sideways(measured, width):
    over = {name: (sw, sticking) for (name, w), (sw, vw, sticking, _) in measured.items() if w == width and sw > vw}
    assert over == {}


@pytest.mark.parametrize("width,height", SCREENS)
def test_the_verdict_is_on_the_first_screen(measured, width, height):
    for name in WITH_VERDICT:
        box = measured[(name, width)][3]
        assert box is not None and 0 <= box[0] < box[1] <= height, (name, box)


def test_london_prints_in_at_most_15_pages(tmp_path):
    pdf = tmp_path / "london.pdf"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}",
                    (REPO / "reports" / "london-dlib" / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert 3 <= pages <= 15
