"""The first screen (verdict, key findings), the heat-map scale, DET axes and units, on the
committed reports' rendered HTML and on hand-computed values (issue 11)."""

from __future__ import annotations

import math
import re
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.identification import read_result
from audit.report import render_html
from audit.report.curves import det_curves
from audit.report.firstscreen import EXTRA_SECTIONS
from audit.report.heatmap import HeatScale
from audit.verification.result import AuditResult
from audit.verdict import (
    MAX_FINDINGS,
    all_findings,
    choose,
    one_in,
    ratio_text,
    threshold_units,
    times,
    verdict,
)

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def _load(name: str) -> AuditResult:
    return AuditResult.from_json(REPORTS / name / "results.json")


@pytest.fixture(scope="module")
def london() -> AuditResult:
    return _load("london-dlib")


@pytest.fixture(scope="module")
def london_html() -> str:
    """The committed report (scripts/regenerate_reports.py re-renders it from results.json)."""
    return (REPORTS / "london-dlib" / "index.html").read_text(encoding="utf-8")


def _text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _section(html: str, ident: str) -> str:
    start = html.index(f'id="{ident}"')
    return html[start:html.index("</section>", start)]


# ------------------------------------------------------------------------------------ wording
def test_one_in_and_times_by_hand():
    assert one_in(104, 312) == "1 in 3"          # 312 / 104 = 3
    assert one_in(41, 9384) == "1 in 230"        # 9384 / 41 = 228.9, two significant figures
    assert one_in(78, 112) == "7 in 10"          # 70%: "1 in 1.4" would mislead
    assert one_in(1, 1478) == "1 in 1,500"
    assert one_in(0, 9384) == "none of 9,384"
    assert [times(x) for x in (343.78, 76.29, 2.07, 0.35, math.inf)] == ["344", "76", "2.1", "0.35", "∞"]
    assert ratio_text(76.29, 16.93, 343.78) == "76× (95% CI 17–344×)"
    assert ratio_text(math.inf, 104.3, math.inf).startswith("at least 104×")


def test_thresholds_in_the_backends_own_units(london):
    t = london.thresholds[0]
    assert t.value < 0 < t.native_value  # dlib's distance, negated inside
    assert threshold_units(t, london.provenance) == "euclidean distance ≤ 0.6069"
    sface = _load("london-opencv-sface")
    assert threshold_units(sface.thresholds[0], sface.provenance).startswith("cosine similarity ≥ 0.")


def test_rendered_report_never_shows_a_negated_threshold(london_html):
    text = _text(london_html)
    assert "euclidean distance ≤ 0.6069" in text and "euclidean distance ≤ 0.6" in text
    assert not re.search(r"-0\.60|−0\.60|threshold -", text)
    assert "Similarity value" not in text and "Native value" not in text
    assert "Failed images excluded" not in text and "True" not in _text(london_html[:london_html.index('id="provenance"')])


# -------------------------------------------------------------------------------- the verdict
def test_london_verdict_and_key_findings(london, london_html):
    # Black against White at FMR=1e-2: (104/312) / (41/9384) = 76.3, simultaneous people-level interval
    # from the reference table: 16.9-343.8
    ref = london.reference
    row = ref[(ref.grouping == "ethnicity") & (ref.threshold_name == "FMR=1e-2") & (ref.metric == "fmr")
              & (ref.group == "Black")].iloc[0]
    assert row.ratio == pytest.approx((104 / 312) / (41 / 9384))
    v = verdict(london)
    assert 1 <= len(v.findings) <= MAX_FINDINGS
    first = v.findings[0]
    assert (first.group, first.reference, first.metric, first.threshold_name) == ("Black", "White", "fmr", "FMR=1e-2")
    assert first.ratio_text == "76× (95% CI 15–384×)" and first.status == "difference"
    assert "about 1 in 3 comparisons of two different Black people in this set is a false match (104 of 312)" in first.text
    assert "for White people, 1 in 230 (41 of 9,384)" in first.text
    assert v.text.startswith("dlib / dlib_resnet_v1: Black faces are falsely matched with one another 76× as often as "
                             "White faces (95% CI 15–384×) at FMR=1e-2 (euclidean distance ≤ 0.6069)")
    # the page leads with it, and the reference table prints the same figure for the same quantity
    summary = _section(london_html, "summary")
    assert _text(summary).count("76× as often as White faces (95% CI 15–384×)") == 2  # verdict and card
    table = london_html[london_html.index('<table class="reference">'):]
    black = next(r for r in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S) if ">Black<" in r and "FMR=1e-2" in r)
    assert "76× (95% CI 15–384×)" in black and "Difference shown" in black
    # no-error statements are one line, not a card each
    assert "No false non-match in any group at any threshold (0 of 102 mated comparisons)" in _text(summary)
    assert "No errors observed" not in summary


def test_too_few_comparisons_only_for_rates_the_sample_cannot_resolve(london_html):
    rows = re.findall(r"<tr>(.*?)</tr>", london_html, flags=re.S)
    # Black / Male: 78 of 112 false matches at FMR=1e-2 is a measurement, far above the target: no dagger
    bm = next(r for r in rows if "<th scope=\"row\">Black / Male</th>" in r and 'class="num fmr' in r)
    first_cell = re.findall(r'<td class="num fmr[^"]*">(.*?)</td>', bm, flags=re.S)[0]
    assert "78 / 112" in first_cell and "†" not in first_cell
    assert "Indication only" not in london_html and "not a measurement" not in london_html


def test_choose_takes_at_most_five_round_robin_over_groupings(london):
    found = all_findings(london)
    assert sum(f.shown for f in found) == verdict(london).shown == 8
    five = choose(found, 5)
    assert len(five) == 5 and all(f.shown for f in five)
    assert [f.grouping for f in five[:2]] == ["ethnicity", "ethnicity+gender"]  # one per lane, in report order
    assert len({(f.grouping, f.group, f.metric) for f in five}) == 5  # one threshold per group and metric


def test_no_difference_verdict_and_extra_sections_hook(tiny_result):
    sface = _load("london-opencv-sface")
    v = verdict(sface)
    assert v.shown == 0 and "no group's error rates differ from the reference group's by more than chance" in v.text
    assert v.findings and all(not f.shown for f in v.findings)
    assert {f.status for f in v.findings} <= {"no_difference", "too_few"}
    EXTRA_SECTIONS.append(lambda r: {"template": "_macros.html.j2", "id": "extra-test", "title": "Extra test"})
    try:
        html = render_html(tiny_result)
    finally:
        EXTRA_SECTIONS.pop()
    assert html.index('id="verdict"') < html.index('<section id="extra-test"') < html.index('id="tested"')
    assert '<a href="#extra-test">Extra test</a>' in html


def test_identification_and_compare_have_a_verdict():
    html = (REPORTS / "london-identification-dlib" / "index.html").read_text(encoding="utf-8")
    assert html.index('id="verdict"') < html.index('id="tested"')
    assert 'id="forest"' in html and html.count('class="scale"') == html.count('<table class="heat">') > 0
    assert "Searches for Black people who are not enrolled return someone else" in _text(html[:html.index('id="tested"')])
    page = (REPORTS / "london-compare" / "index.html").read_text(encoding="utf-8")
    verdict_text = _text(page[page.index('id="verdict"'):page.index("</p>", page.index('id="verdict"'))])
    assert "OpenCV SFace has the smallest false-match disparity by ethnicity at FMR=1e-2" in verdict_text
    assert "dlib ResNet, Black: 76× (15–384×)" in verdict_text and "(95% CI)" in verdict_text
    assert "this sample does not show it is smaller" in verdict_text  # the intervals overlap: said so


# ---------------------------------------------------------------------------- heat-map scale
def test_heat_scale_is_anchored_at_the_target():
    s = HeatScale(1e-3)
    # London dlib by gender at FMR=1e-3: Female 10/4,704 = 0.00213, Male 10/5,512 = 0.00181, a 1.2x gap;
    # both are about twice the target, so they get nearly the same light red (not yellow against navy)
    female, male = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (s.colour(0.002126)[0], s.colour(0.001814)[0]))
    assert female[0] > female[2] and male[0] > male[2]  # red side: above the target
    assert max(abs(a - b) for a, b in zip(female, male)) < 25
    assert s.colour(1e-3)[0] == s.colour(1.0001e-3)[0]
    lo, hi = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (s.colour(1e-5)[0], s.colour(1e-1)[0]))
    assert lo[2] > lo[0] and hi[0] > hi[2]  # 1/100 of the target is blue, 100 times red


def test_every_heat_map_has_the_one_colour_bar(london_html):
    heats = london_html.count('<table class="heat">')
    assert heats == 6  # 3 groupings x 2 target thresholds
    bars = re.findall(r'<span class="scale-bar" style="background:([^"]+)">', london_html)
    assert len(bars) == heats and len(set(bars)) == 1  # one scale for the whole report
    assert london_html.count(">target<") >= heats and london_html.count(">1/100×<") == heats
    # cells: zero errors, unresolvable zeros and no comparisons are patterns, never a colour of the scale
    cells = re.findall(r'<td class="(na|few|zero|pos)(?: diag)?" title="[^"]*"( style="[^"]*")?>', london_html)
    kinds = {k for k, _ in cells}
    assert {"pos", "zero", "na"} <= kinds
    assert all(style for k, style in cells if k == "pos") and not any(style for k, style in cells if k != "pos")


# ------------------------------------------------------------------------------------ DET axes
def test_det_axes_are_log_log_and_zero_fnmr_is_said_in_words(london, london_html):
    lfw = _load("lfw-dlib")
    ax = det_curves(lfw, "gender").axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert all(np.all(np.asarray(ln.get_ydata(), float) > 0) for ln in ax.get_lines() if len(ln.get_ydata()) > 2)
    # London: no false non-match at all, so no empty box: words instead
    assert "DET curves by ethnicity" not in london_html
    assert "No DET curve for Black, East Asian" in _text(london_html)
    fig = det_curves(london, "gender")
    assert "No group has a false non-match" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_fnmr_rows_with_no_error_in_either_group_are_one_line(london_html):
    sec = london_html[london_html.index('<h3>Each group against the reference group (White)'):]
    sec = sec[:sec.index("<h3>", 10) if "<h3>" in sec[10:] else len(sec)]
    assert "FNMR at FMR=1e-2: no errors in either group for Black, East Asian, East Asian/White, West Asian." in _text(sec)


def test_reference_frame_columns_for_identification():
    from audit.report.idverdict import identification_reference

    ident = read_result(REPORTS / "london-identification-dlib" / "results.json")
    ref = identification_reference(ident)
    assert set(ref["metric"]) <= {"fpir", "fnir"} and not ref.empty
    r = ref[(ref.grouping == "ethnicity") & (ref.metric == "fpir") & (ref.threshold_name == "FPIR=1e-1")
            & (ref.group == "Black")].iloc[0]
    rates = ident.rates
    g = rates[(rates.grouping == "ethnicity") & (rates.metric == "fpir") & (rates.threshold_name == "FPIR=1e-1")]
    e = dict(zip(g.group, g.errors))
    n = dict(zip(g.group, g.trials))
    assert r.reference == "White" and n["White"] == max(n.values())
    expect = (e["Black"] / n["Black"]) / (e["White"] / n["White"]) if e["White"] else math.inf
    assert r.ratio == pytest.approx(expect)
    assert isinstance(ref, pd.DataFrame)


def test_the_example_disparity_policy_catches_the_london_disparity(london):
    """examples/policies/london-disparity.toml fails the committed London dlib audit, and says why:
    Black and East Asian FMRs surely above 10x the target, and the max/min ratio 76 (Black / White)."""
    from audit.gate import evaluate, load_policy

    policies = Path(__file__).resolve().parents[2] / "examples" / "policies"
    report = evaluate(load_policy(policies / "london-disparity.toml"), london)
    assert not report.passed
    failed = report.checks[(report.checks["status"] == "fail").to_numpy(dtype=bool)]
    assert sorted(failed["group"].astype(str)) == ["-", "Black", "East Asian"] or \
        set(failed["group"].astype(str)) >= {"Black", "East Asian"}
    assert any("76.29" in d and "highest 'Black', lowest 'White'" in d for d in failed["detail"].astype(str))
    assert evaluate(load_policy(policies / "london-pass.toml"), london).passed  # gender only: blind to it
