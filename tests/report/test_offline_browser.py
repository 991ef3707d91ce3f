"""The London report in a real browser, offline: it renders, logs nothing, and asks for nothing.

Runs when Chromium is installed (``/usr/bin/chromium``, or ``chromium`` on PATH; skipped otherwise).
With Playwright installed (``pip install playwright``; it drives that Chromium, no browser
download) every request and console message is recorded; without it the Chromium command line is
used instead (``--dump-dom``, ``--screenshot``, console messages from ``--enable-logging=stderr``, every
host name mapped to nothing). The same checks run on a deliberately bad page first, so that a
harness that sees nothing cannot pass.

Static accessibility checks (alt text, captions, header scopes, status in words as well as
colour) need no browser and always run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audit.report import render_comparison_html, render_html
from audit.verification.result import AuditResult

REPO = Path(__file__).resolve().parents[2]
LONDON = REPO / "reports" / "london-dlib" / "results.json"
DEEPFACE = REPO / "reports" / "london-deepface-dlib" / "results.json"
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND"]
PNG = b"\x89PNG\r\n\x1a\n"

BAD_PAGE = """<!DOCTYPE html><html lang="en"><head><title>bad</title></head><body>
<img src="http://example.invalid/pixel.png" alt="remote"><script>console.error("boom")</script></body></html>"""


@dataclass
class Loaded:
    screenshot: bytes
    dom: str
    requests: list[str] | None  # every URL asked for (None: the method cannot see requests)
    console: list[str]  # console messages and page errors


def _with_playwright(path: Path, tmp: Path) -> Loaded:
    sync_api = pytest.importorskip("playwright.sync_api")
    requests: list[str] = []
    console: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

            def route(r):  # record everything; let only the page itself through
                requests.append(r.request.url)
                return r.continue_() if r.request.url == path.as_uri() else r.abort()

            page.route("**/*", route)
            page.goto(path.as_uri(), wait_until="load")
            dom = page.content()
            shot = page.screenshot()
        finally:
            browser.close()
    return Loaded(shot, dom, requests, console)


def _with_cli(path: Path, tmp: Path) -> Loaded:
    shot = tmp / "shot.png"
    base = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*base, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    subprocess.run([*base, "--window-size=1100,900", f"--screenshot={shot}", path.as_uri()],
                   capture_output=True, text=True, timeout=120)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    return Loaded(shot.read_bytes() if shot.exists() else b"", dom.stdout, None, console)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


#: The best way available here: Playwright sees every request; the command line only the DOM.
LOAD = _with_playwright if _has_playwright() else _with_cli


def _remote_resources(dom: str) -> list[str]:
    """src/href/srcset values of resource-loading tags that point off the machine."""
    found = []
    for tag, attrs in re.findall(r"<(img|script|link|iframe|source|video|audio|embed|object)\b([^>]*)>", dom, flags=re.I):
        for url in re.findall(r'(?:src|href|srcset|data)\s*=\s*"([^"]*)"', attrs, flags=re.I):
            if re.match(r"\s*(https?:)?//", url, flags=re.I):
                found.append(f"{tag}: {url}")
    return found


def _check_clean(loaded: Loaded, path: Path) -> None:
    assert loaded.screenshot.startswith(PNG) and len(loaded.screenshot) > 10_000
    assert loaded.console == []
    if loaded.requests is not None:
        assert loaded.requests == [path.as_uri()]
    assert _remote_resources(loaded.dom) == []


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


@pytest.fixture(scope="module")
def london_html() -> str:
    return render_html(AuditResult.from_json(LONDON))


@pytest.fixture(scope="module")
def pages(tmp_path_factory, london_html) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    out = {}
    (folder / "report.html").write_text(london_html, encoding="utf-8")
    out["report"] = folder / "report.html"
    (folder / "bad.html").write_text(BAD_PAGE, encoding="utf-8")
    out["bad"] = folder / "bad.html"
    return out


@needs_chromium
def test_the_harness_sees_a_bad_page(pages, tmp_path):
    loaded = LOAD(pages["bad"], tmp_path)
    assert loaded.console, "a console error went unseen"
    assert _remote_resources(loaded.dom) == ["img: http://example.invalid/pixel.png"]
    if loaded.requests is not None:
        assert "http://example.invalid/pixel.png" in loaded.requests


@needs_chromium
def test_london_report_loads_offline(pages, tmp_path):
    loaded = LOAD(pages["report"], tmp_path)
    _check_clean(loaded, pages["report"])
    assert 'id="summary"' in loaded.dom and "Black faces are falsely matched" in loaded.dom


@needs_chromium
def test_comparison_report_loads_offline(tmp_path):
    # one grouping keeps this quick; the full page is checked statically in test_compare
    small = [replace(AuditResult.from_json(p), groupings=("gender",)) for p in (LONDON, DEEPFACE)]
    path = tmp_path / "compare.html"
    path.write_text(render_comparison_html(small), encoding="utf-8")
    _check_clean(LOAD(path, tmp_path), path)


# ----------------------------------------------------------------------- static accessibility
class _Doc(HTMLParser):
    """Start tags with attributes, each table's first child, and the text inside flagged cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.first_in_table: list[str] = []
        self._table = False
        self._stack: list[tuple[str, str]] = []  # (tag, class)
        self.status_text: dict[int, str] = {}  # index of a coloured status element -> its text
        self._open: list[tuple[int, int]] = []  # (stack depth, key)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if self._table:
            self.first_in_table.append(tag)
        self._table = tag == "table"
        cls = a.get("class") or ""
        if tag not in ("img", "br", "col", "meta", "input"):
            self._stack.append((tag, cls))
            words = cls.split()
            if ("insufficient" in words and tag == "td") or ("finding" in words) or (tag == "td" and "diag" in words):
                key = len(self.tags)
                self.status_text[key] = ""
                self._open.append((len(self._stack), key))

    def handle_endtag(self, tag):
        if self._stack and self._stack[-1][0] == tag:
            depth = len(self._stack)
            self._open = [(d, k) for d, k in self._open if d < depth]
            self._stack.pop()

    def handle_data(self, data):
        for _, key in self._open:
            self.status_text[key] += data


def test_every_figure_has_alt_text_and_every_table_a_caption(london_html):
    doc = _Doc()
    doc.feed(london_html)
    imgs = [a for t, a in doc.tags if t == "img"]
    assert imgs and all(len((a.get("alt") or "").split()) >= 8 for a in imgs)  # a sentence, not a filename
    n_tables = sum(1 for t, _ in doc.tags if t == "table")
    assert n_tables >= 10 and doc.first_in_table == ["caption"] * n_tables
    ths = [a for t, a in doc.tags if t == "th"]
    assert ths and all(a.get("scope") in ("col", "row", "colgroup", "rowgroup") for a in ths)
    assert ('<html lang="en">' in london_html) and "<title>" in london_html


def test_status_is_never_told_by_colour_alone(london_html):
    doc = _Doc()
    doc.feed(london_html)
    texts = list(doc.status_text.values())
    assert texts
    for t in texts:
        assert t.strip(), "a coloured status element with no text"
    flagged = [t for (i, t) in doc.status_text.items() if "insufficient" in (doc.tags[i - 1][1].get("class") or "")]
    assert flagged and all("†" in t for t in flagged)  # insufficient cells carry a dagger, not only a tint
    findings = re.findall(r'<li class="finding (\w+)"><span class="badge">([^<]+)</span>', london_html)
    assert findings and all(label.strip() for _, label in findings)
    # the London set's key findings: Black and East Asian against White FMR, each a difference shown
    assert {s for s, _ in findings} == {"difference"}
    assert {label.strip() for _, label in findings} == {"Difference shown"}
