"""The HTML report: self-contained, escaped, accessible, deterministic."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from audit.report import render_html, write_report
from audit.report.html import _environment
from audit.verification.result import AuditResult

SCRIPT = "<script>alert(1)</script> / male"
TITLE = 'Tiny audit: "dlib" & <friends>\'s test'


class _Page(HTMLParser):
    """Collects start tags (with attributes), the order of tags inside tables, and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._after_table = False
        self.table_first_child: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if self._after_table:
            self.table_first_child.append(tag)
            self._after_table = False
        if tag == "table":
            self._after_table = True

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    p.close()
    return p


@pytest.fixture(scope="module")
def page_html(tiny_result_shared: AuditResult) -> str:
    return render_html(tiny_result_shared)


def test_renders_a_complete_page(page_html):
    assert page_html.startswith("<!DOCTYPE html>")
    assert page_html.rstrip().endswith("</html>")
    text = " ".join(_parse(page_html).text)
    for heading in ("What was tested", "Composition", "Failure to acquire", "Results by gender",
                    "Results by ethnicity × gender", "Disparity summaries", "Limitations", "Provenance"):
        assert heading in text
    assert "Face Research Lab London Set" in text
    assert "CC BY 4.0" in text
    assert "34,590" in text and "126" in text  # impostor and mated comparisons
    # value, interval and counts of Black / female's FMR at FMR=1e-02 (Wilson, 52 of 3,120)
    assert "0.0167 (0.0127–0.0218)52 / 3,120" in "".join(_parse(page_html).text)


def test_user_text_is_escaped(page_html):
    assert "&lt;script&gt;alert(1)&lt;/script&gt; / male" in page_html
    assert "<script" not in page_html.lower()
    assert "Tiny audit: &#34;dlib&#34; &amp; &lt;friends&gt;&#39;s test" in page_html
    assert TITLE not in page_html
    assert "<b>two</b>" not in page_html and "&lt;b&gt;two&lt;/b&gt;" in page_html  # warnings too
    page = _parse(page_html)
    assert SCRIPT in " ".join(page.text)  # ...and reads back as the user wrote it


def test_template_autoescapes_j2():
    env = _environment()
    auto = env.autoescape("report.html.j2") if callable(env.autoescape) else env.autoescape
    assert auto is True


def test_nothing_is_fetched(page_html):
    page = _parse(page_html)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in page.tags:
        if tag in ("img", "script", "link", "source", "video", "audio", "embed", "object", "iframe"):
            for key in ("src", "href", "srcset", "data"):
                value = (attrs.get(key) or "").lower()
                assert "http://" not in value and "https://" not in value, (tag, key)
    srcs = [a.get("src") or "" for t, a in page.tags if t == "img"]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    css = page_html[page_html.index("<style>"): page_html.index("</style>")]
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0].get("content") or "")


def test_urls_only_as_text_or_plain_links(page_html):
    page = _parse(page_html)
    hrefs = [a.get("href") or "" for t, a in page.tags if t == "a"]
    external = [h for h in hrefs if not h.startswith("#")]
    # the files written beside the page: results.json and the CSV tables, relative links
    local = [h for h in external if not h.startswith("http")]
    assert local[0] == "results.json" and all(h.startswith("tables/") and h.endswith(".csv") for h in local[1:])
    assert "tables/rates.csv" in local and "tables/reference.csv" in local
    external = [h for h in external if h.startswith("http")]
    assert external == [
        "https://creativecommons.org/licenses/by/4.0/",
        "https://figshare.com/articles/dataset/Face_Research_Lab_London_Set/5047666",
    ]
    assert "https://doi.org/10.6084/m9.figshare.5047666.v5" in " ".join(page.text)  # citation as text


def test_javascript_urls_are_not_linked(single_group_result):
    prov = dict(single_group_result.provenance)
    prov["dataset"] = {**prov["dataset"], "homepage": "javascript:alert(1)"}
    html = render_html(replace(single_group_result, provenance=prov))
    hrefs = [a.get("href") or "" for t, a in _parse(html).tags if t == "a"]
    assert not any(h.lower().startswith("javascript") for h in hrefs)
    assert "javascript:alert(1)" in html  # shown as text


def test_every_image_has_alt_text(page_html):
    imgs = [a for t, a in _parse(page_html).tags if t == "img"]
    # FTA bars for 2 groupings + per grouping: score histograms and DET curves
    assert len(imgs) == 2 + 2 * 2
    for a in imgs:
        assert (a.get("alt") or "").strip()
    alts = [a["alt"] for a in imgs]
    assert any(SCRIPT in alt and alt.startswith("Histograms") for alt in alts)  # alt text names the groups
    assert any("FNMR against same-group FMR" in alt for alt in alts)


def test_heat_maps_are_tables_with_numbers_and_colours(page_html):
    tables = re.findall(r'<table class="heat">.*?</table>', page_html, flags=re.S)
    assert len(tables) == 2 * 2  # each grouping at each target-FMR threshold
    eg = next(t for t in tables if "ethnicity × gender at FMR=1e-02" in t)
    assert eg.count("<tr>") == 1 + 5
    assert eg.count('class="pos diag"') == 3  # Black / female, White / male and the script group
    assert 'class="zero diag"' in eg  # Asian / female: no same-group false match
    assert 'class="na diag"' in eg  # Other / female: no same-group impostor pair
    assert '<th scope="row">&lt;script&gt;alert(1)&lt;/script&gt; / male</th>' in eg
    assert "0.0167<span class=\"n\">52/3,120</span>" in eg
    styles = re.findall(r'style="([^"]*)"', eg)
    assert styles and all(re.fullmatch(r"background:#[0-9a-f]{6};color:#(000000|ffffff)", st) for st in styles)


def test_rates_table_has_in_cell_interval_bars(page_html):
    bars = re.findall(r'<span class="minibar( hatched)?" aria-hidden="true">(.*?)</span></span>', page_html)
    assert bars and any(h for h, _ in bars)  # insufficient rates get a hatched bar
    for _, inner in bars:
        for width in re.findall(r"(?:width|left):([0-9.]+)%", inner):
            assert 0.0 <= float(width) <= 100.0


def test_tables_are_accessible(page_html):
    page = _parse(page_html)
    n_tables = sum(1 for t, _ in page.tags if t == "table")
    assert n_tables >= 8
    assert page.table_first_child == ["caption"] * n_tables
    ths = [a for t, a in page.tags if t == "th"]
    assert ths and all(a.get("scope") in ("col", "row", "colgroup") for a in ths)


def test_insufficient_flag_and_footnote(page_html):
    assert 'class="num fmr insufficient"' in page_html
    assert page_html.count("†") >= 5
    text = " ".join(_parse(page_html).text)
    assert "fewer than 3/FMR impostor comparisons" in text
    assert "fewer than 300 at FMR=1e-02" in text and "fewer than 300,000 at FMR=1e-05" in text


def test_infinite_disparity_is_shown_as_infinity_with_note(page_html):
    rows = re.findall(r"<tr>(.*?)</tr>", page_html, flags=re.S)
    row = next(r for r in rows if "max/min ratio" in r and "the ratio is infinite" in r and "FMR=1e-02" in r)
    assert '<td class="num">∞×</td>' in row
    assert "inf" not in re.sub(r"<[^>]+>|infinite", "", row).lower()
    geomean = next(r for r in rows if "max/geomean ratio" in r)
    assert '<td class="num">∞×</td>' in geomean and "<td>—</td>" in geomean  # no lowest group
    nan_row = next(r for r in rows if "fewer than 2 groups with a rate" in r)
    assert '<td class="num">—</td>' in nan_row and "nan" not in nan_row.lower()
    text = " ".join(_parse(page_html).text)
    assert "Fairness Discrepancy Rate" in text and "Gini Aggregation Rate" in text  # what each summary means


def test_limitations_come_from_the_data(page_html):
    section = page_html[page_html.index('id="limitations"'): page_html.index('id="provenance"')]
    text = " ".join(_parse(section).text)
    assert "Self-reported by each photographed adult" in text  # label source
    assert "Other / female has a single subject" in text
    assert "fewer than 30 subjects" in text
    assert "Threshold FMR=1e-05 was set on 34,590 impostor comparisons" in text
    assert "FNMR cannot be measured for &lt;script&gt;" in section
    assert "the largest was used" in text  # the result's warnings


def test_provenance_in_details_and_hash_shortened(page_html):
    prov = page_html[page_html.index('id="provenance"'):]
    assert "<details>" in prov
    assert "ci-runner" in prov and "2024-05-01T12:00:00+00:00" in prov and "target_fmr" in prov
    full = "3f5c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c"
    assert f'<abbr title="{full}"><code>3f5c2a9e8b7d…</code></abbr>' in page_html


def test_no_face_images_or_sample_paths(tiny_result, page_html):
    assert "SAMPLE_PATH_MARKER" not in page_html
    for path in tiny_result.samples["path"]:
        assert str(path) not in page_html
    assert "data:image/jpeg" not in page_html and "fta-images" not in page_html


def test_face_images_only_when_asked(tiny_result, tmp_path):
    """With include_face_images the images that failed to acquire appear as inline thumbnails."""
    import dataclasses

    import numpy as np
    from PIL import Image

    samples = tiny_result.samples.copy()
    failed = samples.index[samples["status"] != "ok"]
    assert len(failed) >= 1
    pic = tmp_path / "face.png"
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(pic)
    samples.loc[failed[0], "path"] = str(pic)
    if len(failed) > 1:
        samples.loc[failed[1], "path"] = str(tmp_path / "missing.jpg")
    res = dataclasses.replace(tiny_result, samples=samples)
    html = render_html(res, include_face_images=True)
    assert html.count("data:image/jpeg;base64,") == 1
    assert 'id="fta-images"' in html and "biometric data" in html
    if len(failed) > 1:
        assert "no picture (the file cannot be read here)" in html


def test_json_round_trip_renders_identically(tiny_result, page_html, tmp_path):
    tiny_result.to_json(tmp_path / "results.json")
    again = AuditResult.from_json(tmp_path / "results.json")
    assert render_html(again) == page_html


def test_row_order_does_not_matter(tiny_result_shared, page_html):
    """Shuffling the rows of every table (composition, which sets the group order, aside) gives
    the same page."""
    shuffled = {
        name: getattr(tiny_result_shared, name).sample(frac=1.0, random_state=7).reset_index(drop=True)
        for name in ("fta", "rates", "cross_fmr", "disparity", "score_hist", "det")
    }
    assert render_html(replace(tiny_result_shared, **shuffled)) == page_html


def test_write_report_is_atomic_and_returns_the_path(tiny_result, empty_result, tmp_path, page_html):
    folder = tmp_path / "out" / "london"  # created when missing
    first = write_report(empty_result, folder)
    assert first == folder / "index.html"
    path = write_report(tiny_result, folder)  # replaces the old page
    assert path == first
    assert path.read_text(encoding="utf-8") == page_html
    assert sorted(p.name for p in folder.iterdir()) == ["index.html"]  # no temporary file left
    assert path.stat().st_mode & 0o444 == 0o444


def test_empty_tables_render(empty_result):
    html = render_html(empty_result)
    assert "No rates for this grouping." in html
    assert "No composition table in this result." in html
    assert "<img" not in html


def test_single_group_renders(single_group_result):
    html = render_html(single_group_result)
    assert "Results by gender" in html and "female" in html
    assert "Results by ethnicity" not in html


def test_not_a_result_is_refused():
    with pytest.raises(ValueError, match="AuditResult"):
        render_html({"title": "x"})  # type: ignore[arg-type]


def test_sparse_provenance_and_no_thresholds_render(empty_result):
    bare = replace(empty_result, provenance={}, thresholds=(), title="")
    html = render_html(bare)
    assert "<h1>Face recognition audit</h1>" in html
    assert "No thresholds." in html
    assert "does not record where its group labels come from" in html
    odd = replace(empty_result, provenance={"backend": "x", "dataset": None, "protocol": [1, 2],
                                            "created": float("nan")})
    assert "<h1>" in render_html(odd)


def test_interval_method_is_named_as_the_result_says(tiny_result_shared, page_html):
    text = " ".join(_parse(page_html).text)
    assert "Beside it, labelled \"if comparisons were independent\", is the Wilson interval" in text and "with its Wilson interval (whisker)" in text
    assert "Clopper" not in page_html
    # the same numbers labelled as Clopper–Pearson intervals (the method is read from the table,
    # then from provenance); the report names that method and never Wilson
    cp = replace(tiny_result_shared, rates=tiny_result_shared.rates.assign(ci_method="clopper-pearson"),
                 fta=tiny_result_shared.fta.assign(ci_method="clopper-pearson"),
                 provenance={**tiny_result_shared.provenance,
                             "protocol": {**tiny_result_shared.provenance["protocol"], "interval": "clopper-pearson"}})
    html = render_html(cp)
    text = " ".join(_parse(html).text)
    assert "Beside it, labelled \"if comparisons were independent\", is the Clopper–Pearson (exact) interval" in text
    assert "with its Clopper–Pearson (exact) interval (whisker)" in text
    assert "Interval beside it, if comparisons were independent" in text and "95% Clopper–Pearson (exact)" in text
    assert "Wilson" not in html


def test_heatmap_summary_by_hand_symmetric_and_directional():
    import numpy as np

    from audit.report.heatmap import heat_summary as _heatmap_summary
    from audit.report.plots import CrossFmrMatrix

    def mat(fm, n):
        fm, n = np.array(fm, float), np.array(n, float)
        return CrossFmrMatrix("g", "t", ("A", "B"), np.where(n > 0, fm / np.where(n > 0, n, 1), np.nan), fm, n, 1e-3, 1.0)

    # no cross-group false match: said so, with the number of cross-group comparisons (unordered pairs)
    m = mat([[1, 0], [0, 0]], [[10, 20], [20, 5]])
    assert "No cross-group false match (0 of 20 cross-group comparisons)." in _heatmap_summary(m)
    # directional: (A, B) and (B, A) are different comparisons
    assert "(0 of 40 cross-group comparisons)" in _heatmap_summary(m, directional=True)
    d = mat([[1, 0], [3, 0]], [[10, 20], [30, 5]])
    assert "Highest cross-group FMR: probes of B against references of A, 0.1 (3/30)." in _heatmap_summary(d, directional=True)
    assert "Highest cross-group FMR: B with A" in _heatmap_summary(d)
