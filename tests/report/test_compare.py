"""Several audits side by side: the committed London results (dlib, deepface Dlib) and edge cases."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from audit.report import ReportError
from audit.report.compare import (
    COMPARISON_COLUMNS,
    backend_labels,
    compare_main,
    comparison_frame,
    det_comparison,
    render_comparison_html,
    write_comparison_report,
)
from audit.verification.result import AuditResult

REPO = Path(__file__).resolve().parents[2]
DLIB = REPO / "reports" / "london-dlib" / "results.json"
DEEPFACE = REPO / "reports" / "london-deepface-dlib" / "results.json"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.first_in_table: list[str] = []
        self._table = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if self._table:
            self.first_in_table.append(tag)
            self._table = False
        self._table = tag == "table"

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def london() -> list[AuditResult]:
    return [AuditResult.from_json(DLIB), AuditResult.from_json(DEEPFACE)]


def _gender_only(r: AuditResult) -> AuditResult:
    """The result cut down to its gender grouping (two groups): fast to render."""
    keep = {name: getattr(r, name)[getattr(r, name)["grouping"] == "gender"].reset_index(drop=True)
            for name in ("composition", "fta", "rates", "cross_fmr", "disparity", "score_hist", "det")}
    return replace(r, groupings=("gender",), **keep)


@pytest.fixture(scope="module")
def small(london) -> list[AuditResult]:
    return [_gender_only(r) for r in london]


@pytest.fixture(scope="module")
def page(london) -> str:
    return render_comparison_html(london)


def test_labels_name_backend_model_and_detector(london):
    assert backend_labels(london) == ["dlib / dlib_resnet_v1 (hog)", "deepface / Dlib (opencv)"]
    same = [london[0], london[0]]
    labels = backend_labels(same)
    assert len(set(labels)) == 2 and all(lab.startswith("dlib / dlib_resnet_v1 (hog)") for lab in labels)


def test_comparison_frame_holds_both_systems_counts(london):
    df = comparison_frame(london, "ethnicity")
    assert list(df.columns) == COMPARISON_COLUMNS
    black = df[(df.group == "Black") & (df.metric == "fmr") & (df.threshold_name == "FMR=1e-2")].set_index("system")
    assert black.loc["dlib / dlib_resnet_v1 (hog)", ["errors", "trials"]].tolist() == [104, 312]
    assert black.loc["deepface / Dlib (opencv)", ["errors", "trials"]].tolist() == [31, 242]
    fta = df[(df.group == "Black") & (df.metric == "fta")].set_index("system")
    assert fta["errors"].tolist() == [0, 3] and fta["threshold_name"].isna().all()
    wide = df.pivot_table(index="group", columns=["system", "metric"], values="value", sort=False)
    assert wide.shape[0] == 5


def test_thresholds_are_matched_by_target_fmr_not_by_name(london):
    renamed = replace(london[1], thresholds=tuple(
        replace(t, name=t.name.replace("FMR=1e-2", "FMR=0.01")) for t in london[1].thresholds),
        rates=london[1].rates.replace({"threshold_name": {"FMR=1e-2": "FMR=0.01"}}))
    df = comparison_frame([london[0], renamed], "gender")
    assert set(df["threshold_name"].dropna()) == {"FMR=1e-2", "FMR=1e-3"}
    assert len(df[(df.metric == "fmr") & (df.threshold_name == "FMR=1e-2")]) == 4  # 2 systems x 2 groups


def test_page_has_a_column_block_per_system(page, london):
    text = " ".join(_parse(page).text)
    for heading in ("What this comparison found", "Systems compared", "Each system's own verdict", "By ethnicity", "By gender",
                    "By ethnicity × gender", "Disparity summaries", "Notes"):
        assert heading in text
    tables = re.findall(r'<table class="cmp">.*?</table>', page, flags=re.S)
    assert len(tables) == 3
    eth = tables[0]
    assert eth.count('scope="colgroup" colspan="5"') == 2  # per system: 2 thresholds x (FMR, FNMR) + FTA
    assert "104 / 312" in eth and "31 / 242" in eth  # Black FMR at 1e-2, dlib and deepface
    assert "3 / 26" in eth  # deepface's detector missed 3 of 26 images of Black people
    # each system's own verdict, and the verdict naming the system with the smaller largest gap
    assert "76× as often as White faces (95% CI 15–384×)" in text
    verdict = page[page.index('id="verdict"'):page.index("</p>", page.index('id="verdict"'))]
    assert "has the smallest false-match disparity by ethnicity at FMR=1e-2" in verdict
    assert "Black: 76× (15–384×)" in verdict  # dlib's largest gap, with its interval, as in dlib's own report
    # both systems' own thresholds at each shared target, in their own units (distances, never negated)
    assert "distance ≤ 0.6069" in text and "0.9436" in text and "-0.6069" not in text
    assert "left out of its comparisons" in text  # 20,604 vs 20,000 impostor comparisons explained


def test_page_is_self_contained_and_accessible(page):
    p = _parse(page)
    tags = [t for t, _ in p.tags]
    assert "script" not in tags and "link" not in tags
    for tag, attrs in p.tags:
        for key in ("src", "href", "srcset"):
            value = (attrs.get(key) or "").lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 3 and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert all("one line per system" in a["alt"] and "Black" in a["alt"] for a in imgs[:1])
    n_tables = tags.count("table")
    assert p.first_in_table == ["caption"] * n_tables
    assert all(a.get("scope") in ("col", "row", "colgroup") for t, a in p.tags if t == "th")
    assert 'default-src \'none\'' in page


def test_labels_and_title_are_escaped(small):
    html = render_comparison_html(small, title="<b>cmp</b>", labels=["<script>a</script>", "b & c"])
    assert "<script>" not in html and "<b>cmp</b>" not in html
    assert "&lt;script&gt;a&lt;/script&gt;" in html and "b &amp; c" in html


def test_bad_inputs_are_refused(london):
    with pytest.raises(ReportError, match="at least two results"):
        render_comparison_html(london[:1])
    with pytest.raises(ReportError, match="not an AuditResult"):
        render_comparison_html([london[0], {"title": "x"}])  # type: ignore[list-item]
    other = replace(london[1], provenance={**london[1].provenance, "dataset": {"name": "lfw"}})
    with pytest.raises(ReportError, match="different datasets.*'london'.*'lfw'"):
        render_comparison_html([london[0], other])
    with pytest.raises(ReportError, match="one label per result"):
        render_comparison_html(london, labels=["a"])
    with pytest.raises(ReportError, match="labels must differ"):
        render_comparison_html(london, labels=["a", "a"])


def test_no_shared_threshold_is_said(small):
    only_default = replace(small[1], thresholds=tuple(t for t in small[1].thresholds if t.kind != "target_fmr"))
    html = render_comparison_html([small[0], only_default])
    assert "share no target-FMR threshold" in html


def test_different_interval_methods_are_said(small):
    assert "computed by different methods" not in render_comparison_html(small)
    exact = replace(small[1], rates=small[1].rates.assign(ci_method="clopper-pearson"),
                    fta=small[1].fta.assign(ci_method="clopper-pearson"))
    text = " ".join(_parse(render_comparison_html([small[0], exact])).text)
    assert "computed by different methods" in text and "Clopper–Pearson (exact)" in text and "Wilson" in text


def test_det_small_multiples(london):
    fig = det_comparison(london, "ethnicity")
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["Black", "East Asian", "West Asian", "White"]
    assert all(len(ax.lines) == 2 for ax in panels)  # one line per system


def test_cli_writes_the_page(small, tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for r, path in zip(small, paths):
        r.to_json(path)
    out = tmp_path / "cmp"
    assert compare_main([str(paths[0]), str(paths[1]), "--output", str(out), "--label", "dlib", "--label", "deepface"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out / 'index.html'}"
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Comparison: dlib, deepface" in html
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert compare_main([str(DLIB), "--output", str(tmp_path)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert compare_main([str(DLIB), str(tmp_path / "missing.json"), "--output", str(tmp_path)]) == 2
    assert "no such results file" in capsys.readouterr().err
    assert compare_main([str(DLIB), str(DEEPFACE)]) == 2  # --output is required (argparse usage error)


def test_write_comparison_report_returns_index(small, tmp_path):
    path = write_comparison_report(small, tmp_path / "x")
    assert path == tmp_path / "x" / "index.html" and path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
