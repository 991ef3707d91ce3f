"""Figures drawn from a hand-built AuditResult: shapes, edge cases, encoding."""

from __future__ import annotations

import base64
import inspect
import re
import subprocess
import sys
from pathlib import Path
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from audit.report import plots
from audit.report.plots import (
    ReportError,
    cross_fmr_matrix,
    det_curves,
    fmr_fnmr_bars,
    figure_to_data_uri,
    fmr_heatmap,
    fta_bars,
    rate_bars,
    score_distributions,
)

EG = "ethnicity+gender"
T1, T2 = "FMR=1e-02", "FMR=1e-05"
SCRIPT = "<script>alert(1)</script> / male"

ALL_PLOTS = [
    lambda r, g: score_distributions(r, g),
    lambda r, g: det_curves(r, g),
    lambda r, g: fmr_heatmap(r, g, T1),
    lambda r, g: fmr_heatmap(r, g, T2),
    lambda r, g: rate_bars(r, g, T1, "fmr"),
    lambda r, g: rate_bars(r, g, T2, "fnmr"),
    lambda r, g: fmr_fnmr_bars(r, g, T1),
    lambda r, g: fta_bars(r, g),
]


def _png(fig: Figure) -> bytes:
    uri = figure_to_data_uri(fig)
    return base64.b64decode(uri.split(",", 1)[1])


def test_report_never_imports_pyplot():
    code = (
        "import sys; sys.path.insert(0, 'tests/report'); from conftest import make_result; "
        "from audit.report import plots; r = make_result(); "
        "[plots.figure_to_data_uri(f(r, 'gender')) for f in (plots.score_distributions, plots.det_curves, plots.fta_bars)]; "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    source = inspect.getsource(plots)
    assert not re.search(r"^\s*(import matplotlib\.pyplot|from matplotlib import pyplot)", source, re.M)


@pytest.mark.parametrize("grouping", ["gender", EG])
@pytest.mark.parametrize("make", ALL_PLOTS)
def test_every_plot_returns_a_drawable_figure(tiny_result, make, grouping):
    fig = make(tiny_result, grouping)
    assert isinstance(fig, Figure)
    assert _png(fig).startswith(b"\x89PNG\r\n\x1a\n")


def test_score_distributions_one_panel_per_group_with_kinds_and_thresholds(tiny_result):
    fig = score_distributions(tiny_result, EG)
    # 5 groups; each panel: a line per kind with comparisons + one per threshold (2)
    assert [len(ax.lines) for ax in fig.axes] == [4, 4, 4, 3, 3]
    assert [ax.get_yscale() for ax in fig.axes] == ["log"] * 5
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[3].startswith(SCRIPT)  # no mated comparisons: impostor only
    assert "mated n=" not in titles[3] and "impostor n=66" in titles[3]
    assert "mated n=1" in titles[4] and "impostor" not in titles[4]  # no impostor comparisons
    # thresholds drawn where the thresholds are
    xs = sorted({ln.get_xdata()[0] for ln in fig.axes[0].lines if len(ln.get_xdata()) == 2
                 and ln.get_xdata()[0] == ln.get_xdata()[1]})
    assert xs == [0.52, 0.81]
    assert [len(ax.lines) for ax in score_distributions(tiny_result, "gender").axes] == [4, 4]


def test_score_distributions_shares_survive_200_to_1_and_skip_zeros(tiny_result):
    fig = score_distributions(tiny_result, EG)
    for ax in fig.axes:
        for ln in ax.lines[:-2]:
            y = np.asarray(ln.get_ydata(), dtype=float)
            assert np.all(np.isnan(y) | (y > 0))  # zeros never reach the log axis
            assert np.nansum(y[::2]) == pytest.approx(1.0)  # each kind is its own share


def test_det_curves_lines_styles_and_threshold(tiny_result):
    fig = det_curves(tiny_result, EG)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    # 3 groups with a curve (no mated: script group; no impostors: Other / female) + the
    # FMR=1e-02 threshold line (FMR=1e-05 achieved 0 cannot be drawn on a log axis)
    assert len(ax.lines) == 4
    curves = [ln for ln in ax.lines if ln.get_marker() not in (None, "None", "")]
    assert [ln.get_label() for ln in curves] == ["Black / female", "White / male", "Asian / female"]
    assert len({(ln.get_linestyle(), ln.get_marker()) for ln in curves}) == 3
    for ln in curves:
        assert np.all(np.asarray(ln.get_xdata(), dtype=float) > 0)
    assert "Other / female" in fig.get_supxlabel() and SCRIPT in fig.get_supxlabel()


def test_fmr_heatmap_matrix_colour_scale_and_annotations(tiny_result):
    fig = fmr_heatmap(tiny_result, EG, T1)
    assert len(fig.axes) == 2  # matrix + colour bar
    ax = fig.axes[0]
    (im,) = ax.images
    data = im.get_array()
    assert data.shape == (5, 5)
    assert type(im.norm).__name__ == "LogNorm"
    assert im.get_cmap().name.startswith("RdBu_r")  # diverging around the target
    assert im.norm.vmin == pytest.approx(1e-2 / 100) and im.norm.vmax == pytest.approx(1e-2 * 100)
    bar = fig.axes[1]
    assert [t.get_text() for t in bar.get_yticklabels()] == ["1/100×", "1/10×", "target", "10×", "100×"]
    assert "FMR ÷ target (0.01)" in bar.get_ylabel()
    # Asian / female same-group: 0 false matches -> masked (white), annotated 0 with counts
    assert data.mask[2, 2]
    assert data.mask[4, 4]  # Other / female: no comparisons
    texts = [t.get_text() for t in ax.texts]
    assert "0.017\n52/3,120" in texts
    assert "0\n0/1,200" in texts
    assert "n/a" in texts
    assert data[0, 0] == pytest.approx(52 / 3120)


def test_fmr_heatmap_all_zero_still_draws(tiny_result):
    fig = fmr_heatmap(tiny_result, EG, T2)  # every cell has 0 false matches or none at all
    assert len(fig.axes) == 2
    assert fig.axes[0].images[0].get_array().mask.all()
    _png(fig)


def test_rate_bars_ci_hatches_and_na(tiny_result):
    fig = rate_bars(tiny_result, EG, T1, "fmr")
    ax = fig.axes[0]
    assert len(ax.patches) == 5
    hatches = [p.get_hatch() for p in ax.patches]
    assert hatches[3] == "////"  # script group: 66 impostors < 300 -> insufficient
    assert hatches[0] in (None, "")
    texts = [t.get_text() for t in ax.texts]
    assert "0.0167 (52/3,120)" in texts
    assert "0 (0/1,200)" in texts  # a rate of 0 is shown with its counts
    assert "n/a (0/0)" in texts  # no impostor comparisons at all
    assert ax.containers  # error bars
    fnmr = rate_bars(tiny_result, EG, T1, "FNMR").axes[0]
    assert "n/a (0/0)" in [t.get_text() for t in fnmr.texts]  # no mated comparisons


def test_fmr_fnmr_bars_two_panels(tiny_result):
    fig = fmr_fnmr_bars(tiny_result, EG, T1)
    fmr_ax, fnmr_ax = fig.axes
    assert len(fmr_ax.patches) == len(fnmr_ax.patches) == 5
    assert fmr_ax.patches[3].get_hatch() == "////"
    assert [t.get_text() for t in fmr_ax.get_yticklabels()][3] == SCRIPT
    assert {t.get_text() for t in fnmr_ax.get_yticklabels()} == {""}  # shared group axis
    # only bars that would be invisible are labelled
    assert sorted(t.get_text() for t in fmr_ax.texts) == ["0", "n/a (0/0)"]


def test_cross_fmr_matrix_and_colours(tiny_result):
    m = cross_fmr_matrix(tiny_result, EG, T1)
    assert m.groups == ("Black / female", "White / male", "Asian / female", SCRIPT, "Other / female")
    assert m.fmr.shape == (5, 5)
    assert m.fmr[0, 0] == pytest.approx(52 / 3120) and m.false_matches[0, 0] == 52
    assert np.isnan(m.fmr[4, 4]) and m.comparisons[4, 4] == 0
    # one scale for every heat map: FMR ÷ the target (1e-2 here) on a log scale from 1/100 to 100
    assert m.vmin == pytest.approx(1e-4) and m.vmax == pytest.approx(1.0)
    assert m.colour(0.0) == ("#ffffff", "#000000")
    low, mid, high = m.colour(1e-4), m.colour(1e-2), m.colour(1.0)
    assert low[0] == "#053061" and high[0] == "#67001f"  # the dark blue and dark red ends of RdBu_r
    r, g, b = (int(mid[0][i:i + 2], 16) for i in (1, 3, 5))
    assert min(r, g, b) > 220  # at the target: near white
    assert m.colour(1e-9) == m.colour(1e-4) and m.colour(5.0) == m.colour(1.0)  # beyond the range: the end colours
    assert m.ticks() == [pytest.approx(x) for x in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)]
    # zero, a zero the sample cannot resolve (fewer than 3/1e-2 = 300 comparisons) and no comparisons differ
    assert [m.scale.kind(e, n) for e, n in ((0, 300), (0, 299), (0, 0), (1, 10))] == ["zero", "few", "na", "pos"]
    empty = cross_fmr_matrix(replace(tiny_result, cross_fmr=tiny_result.cross_fmr.iloc[:0]), EG, T1)
    assert empty.groups == () and empty.fmr.shape == (0, 0)


def test_fta_bars(tiny_result):
    ax = fta_bars(tiny_result, "gender").axes[0]
    assert len(ax.patches) == 2
    assert [t.get_text() for t in ax.texts] == ["0.0149 (2/134)", "0 (0/132)"]


def test_bad_arguments_raise_report_errors(tiny_result):
    with pytest.raises(ReportError, match="metric"):
        rate_bars(tiny_result, EG, T1, "far")
    with pytest.raises(ReportError, match="no grouping named 'age'"):
        score_distributions(tiny_result, "age")
    with pytest.raises(ReportError, match="no threshold named"):
        fmr_heatmap(tiny_result, EG, "FMR=1e-09")
    with pytest.raises(ValueError):  # ReportError is a ValueError
        figure_to_data_uri(fta_bars(tiny_result, "gender"), fmt="gif")


@pytest.mark.parametrize("make", ALL_PLOTS)
def test_empty_tables_give_a_message_figure(empty_result, make):
    fig = make(empty_result, "gender")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1 and not fig.axes[0].lines
    assert fig.axes[0].texts[0].get_text().startswith("No ")
    _png(fig)


@pytest.mark.parametrize("make", ALL_PLOTS)
def test_single_group(single_group_result, make):
    fig = make(single_group_result, "gender")
    _png(fig)


def test_single_group_shapes(single_group_result):
    assert len(score_distributions(single_group_result, "gender").axes) == 1
    assert fmr_heatmap(single_group_result, "gender", T1).axes[0].images[0].get_array().shape == (1, 1)
    assert len(rate_bars(single_group_result, "gender", T1, "fmr").axes[0].patches) == 1


def test_nan_and_zero_rates_everywhere(tiny_result):
    rates = tiny_result.rates.copy()
    rates["value"] = np.where(rates["metric"] == "fmr", 0.0, np.nan)
    rates["ci_low"] = np.nan
    rates["ci_high"] = np.nan
    det = tiny_result.det.copy()
    det["fmr"] = 0.0
    r = replace(tiny_result, rates=rates, det=det)
    for make in ALL_PLOTS:
        _png(make(r, EG))
    ax = det_curves(r, EG).axes[0]
    assert len(ax.lines) == 1  # only the threshold line: no group has FMR > 0


def test_user_labels_are_not_mathtext(tiny_result):
    def relabel(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for c in ("group", "group_a", "group_b"):
            if c in df.columns:
                df[c] = df[c].replace({"White / male": "$5 / _male", "Black / female": r"a$b\frac{"})
        return df

    names = ("composition", "fta", "rates", "cross_fmr", "score_hist", "det")
    r = replace(tiny_result, **{n: relabel(getattr(tiny_result, n)) for n in names})
    for make in ALL_PLOTS:
        _png(make(r, EG))
    labels = [ln.get_label() for ln in det_curves(r, EG).axes[0].lines]
    assert r"\$5 / _male" in " ".join(labels)


def test_data_uri_is_deterministic_png_or_svg(tiny_result):
    a = figure_to_data_uri(det_curves(tiny_result, EG))
    b = figure_to_data_uri(det_curves(tiny_result, EG))
    assert a == b and a.startswith("data:image/png;base64,")
    svg = figure_to_data_uri(fta_bars(tiny_result, "gender"), fmt="svg")
    assert svg.startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(svg.split(",", 1)[1])
    assert svg == figure_to_data_uri(fta_bars(tiny_result, "gender"), fmt="svg")


def test_insufficiency_basis_is_the_target_or_the_achieved_fmr(tiny_result):
    t1, t2 = tiny_result.thresholds
    assert plots.needed_impostors(t1) == 300 and plots.needed_impostors(t2) == 300_000
    fixed = replace(t1, name="fixed 0.6", kind="fixed", target_fmr=None, achieved_fmr=0.00864)
    assert plots.fmr_basis(fixed) == 0.00864 and plots.needed_impostors(fixed) == 348
    assert plots.needed_impostors(replace(fixed, achieved_fmr=0.0)) is None
