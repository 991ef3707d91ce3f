"""Figures for the audit report, drawn from an :class:`~audit.verification.result.AuditResult` alone.

Every function returns a :class:`matplotlib.figure.Figure` built directly (with an Agg canvas),
never through ``pyplot``, so nothing touches matplotlib's global figure registry and figures are
freed when they go out of scope. :func:`figure_to_data_uri` turns one into a ``data:`` URI for
inlining into a self-contained HTML page.

Design rules shared by all plots
--------------------------------
- Readable without colour: groups differ by line style *and* marker, bars that rest on too few
  comparisons are hatched, thresholds are drawn in grey with their own dash patterns.
- Colours come from the Okabe–Ito palette (safe for the common colour-vision deficiencies);
  heat maps use ``cividis``.
- Log scales never receive zeros: rates of 0 are dropped from log axes (and said so in the
  figure), drawn as empty cells (heat map) or as zero-length bars with their counts (bar charts).
- Every function copes with empty tables, NaN rates, a group with no mated comparisons and a
  single group: it returns a figure that says what is missing instead of raising.
- Labels come from users: ``$`` is escaped so that matplotlib never parses a group name as
  mathtext, and a leading ``_`` (which would hide a legend entry) is kept visible.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from ..errors import FaceAuditError
from ..verification.result import AuditResult
from ..results import ThresholdInfo

__all__ = [
    "ReportError",
    "group_order",
    "score_distributions",
    "det_curves",
    "CrossFmrMatrix",
    "cross_fmr_matrix",
    "fmr_heatmap",
    "rate_bars",
    "fmr_fnmr_bars",
    "fta_bars",
    "figure_to_data_uri",
]


class ReportError(FaceAuditError, ValueError):
    """A report or plot was asked for something the result does not hold (grouping, threshold,
    metric, image format). The message lists what is available."""


#: Okabe–Ito colours without the yellow, which is unreadable on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: 4 line styles and 7 markers: (style, marker) pairs repeat only after 28 groups.
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Dash patterns for threshold lines (all grey), in threshold order.
THRESHOLD_STYLES = ((0, (1, 1.5)), (0, (5, 2, 1, 2)), (0, (6, 3)), (0, (1, 3)), (0, (8, 2, 1, 2, 1, 2)))
KIND_STYLE = {
    "mated": {"color": "#0072B2", "linestyle": "-", "linewidth": 1.8},
    "impostor": {"color": "#D55E00", "linestyle": (0, (4, 1.5)), "linewidth": 1.5},
}
_KIND_ALIASES = {"mated": "mated", "genuine": "mated", "impostor": "impostor", "nonmated": "impostor",
                 "non-mated": "impostor"}
_METRIC_LABEL = {"fmr": "FMR", "fnmr": "FNMR", "fta": "FTA"}
_BAR_COLOR = {"fmr": "#0072B2", "fnmr": "#D55E00", "fta": "#009E73"}


# ---------------------------------------------------------------------------------------- helpers
def _new_figure(width: float, height: float, *, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _t(text: object) -> str:
    """User text made safe for matplotlib: no mathtext, no hidden legend labels."""
    s = str(text).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _f(v: object) -> float:
    """A table cell as float; None, NA and junk become NaN."""
    if v is None or v is pd.NA:
        return math.nan
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _floats(values: Iterable[object]) -> np.ndarray:
    return np.array([_f(v) for v in values], dtype=float)


def fmt_rate(v: object, digits: int = 3) -> str:
    """``0.0123``, ``1.2e-5``, ``0``; NaN as an em dash, inf as ``∞``."""
    x = _f(v)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    s = f"{x:.{digits}g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def flag(v: object) -> bool:
    """A boolean table cell: True, numpy True, 1 or "true"; None and NaN are False."""
    if v is None or v is pd.NA:
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    if isinstance(v, float) and math.isnan(v):
        return False
    return bool(v)


def fmt_count(v: object) -> str:
    x = _f(v)
    if not math.isfinite(x):
        return "—"
    return f"{int(round(x)):,}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow10(v: float, _pos: object = None) -> str:
    """Tick label ``10⁻³`` for powers of ten (plain text: no mathtext, which is slow)."""
    if v <= 0 or not math.isfinite(v):
        return ""
    e = math.log10(v)
    if abs(e - round(e)) < 1e-9:
        return "1" if round(e) == 0 else "10" + str(int(round(e))).translate(_SUPERSCRIPT)
    return fmt_rate(v, 2)


def _log_axis(axis: Any, *, decades: float = 3.0) -> None:
    """Major ticks at powers of ten (and 2×, 5× when the axis spans under 2 decades) with plain-text
    labels, no minor ticks (they are costly to lay out)."""
    subs = (1.0,) if decades >= 2 else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=9))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(_pow10))


def _empty_figure(message: str, *, width: float = 6.0, height: float = 1.6) -> Figure:
    fig = _new_figure(width, height)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, _t(message), ha="center", va="center", fontsize=10, color="0.3", wrap=True,
            transform=ax.transAxes)
    return fig


def _groupings_in(result: AuditResult) -> list[str]:
    seen = list(result.groupings)
    for name in ("composition", "fta", "rates", "cross_fmr", "disparity", "score_hist", "det"):
        for g in getattr(result, name)["grouping"].tolist():
            if g not in seen:
                seen.append(g)
    return seen


def _check_grouping(result: AuditResult, grouping: str) -> None:
    if grouping not in _groupings_in(result):
        raise ReportError(
            f"no grouping named {grouping!r} in this result; its groupings are {list(result.groupings)}. "
            "Pass one of those (a grouping id joins label columns with '+', e.g. 'ethnicity+gender')."
        )


def _threshold(result: AuditResult, name: str) -> ThresholdInfo:
    for t in result.thresholds:
        if t.name == name:
            return t
    raise ReportError(
        f"no threshold named {name!r} in this result; its thresholds are {[t.name for t in result.thresholds]}."
    )


def _metric(metric: str) -> str:
    m = str(metric).lower()
    if m not in ("fmr", "fnmr"):
        raise ReportError(f"metric must be 'fmr' or 'fnmr', got {metric!r}")
    return m


def _rows(df: pd.DataFrame, **eq: object) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for col, val in eq.items():
        if col == "metric":
            mask &= df[col].astype(str).str.lower().to_numpy() == val
        else:
            mask &= (df[col] == val).to_numpy(dtype=bool)
    return df[mask]


def group_order(result: AuditResult, grouping: str) -> list[str]:
    """Groups of one grouping in report order: as they first appear in composition, then in the
    other tables (rates, fta, histograms, DET, cross-group FMR)."""
    seen: dict[str, None] = {}
    for name, cols in (("composition", ("group",)), ("rates", ("group",)), ("fta", ("group",)),
                       ("score_hist", ("group",)), ("det", ("group",)), ("cross_fmr", ("group_a", "group_b"))):
        df = getattr(result, name)
        sub = df[(df["grouping"] == grouping).to_numpy(dtype=bool)]
        for col in cols:
            for g in sub[col].tolist():
                seen.setdefault(str(g), None)
    return list(seen)


def _style(i: int) -> dict[str, object]:
    return {"color": PALETTE[i % len(PALETTE)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


def _grouping_label(grouping: str) -> str:
    return " × ".join(grouping.split("+"))


def _kind(k: object) -> str:
    return _KIND_ALIASES.get(str(k).lower(), str(k).lower())


# ------------------------------------------------------------------------------ score histograms
def score_distributions(result: AuditResult, grouping: str) -> Figure:
    """Mated and impostor score histograms, one panel per group, thresholds as vertical lines.

    Each kind is drawn as the share of *its own* comparisons per bin on a log y axis, so that
    a group with 200 impostor comparisons per mated one still shows both distributions and the
    impostor tail that crosses the thresholds. Bins with no comparisons are left blank.

    Parameters
    ----------
    result : AuditResult
    grouping : str
        A grouping id of ``result``.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per group that has histogram rows (up to 3 per row). Each Axes holds one line
        per kind with at least one comparison and one vertical line per threshold with a finite
        value. A figure with a single blank Axes and a message when there are no rows.
    """
    _check_grouping(result, grouping)
    df = result.score_hist[(result.score_hist["grouping"] == grouping).to_numpy(dtype=bool)]
    present = set(df["group"].astype(str))
    groups = [g for g in group_order(result, grouping) if g in present]
    if not groups:
        return _empty_figure(f"No score histograms for {_grouping_label(grouping)}.")

    # shares per (group, kind) as step lines
    panels: list[tuple[str, dict[str, tuple[np.ndarray, np.ndarray, int]]]] = []
    all_pos: list[float] = []
    all_x: list[float] = []
    for g in groups:
        gdf = df[df["group"].astype(str) == g]
        curves: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        for kind in ("mated", "impostor"):
            kdf = gdf[[ _kind(k) == kind for k in gdf["kind"]]]
            if kdf.empty:
                continue
            left, right, count = _floats(kdf["bin_left"]), _floats(kdf["bin_right"]), _floats(kdf["count"])
            ok = np.isfinite(left) & np.isfinite(right)
            left, right, count = left[ok], right[ok], np.nan_to_num(count[ok], nan=0.0)
            order = np.argsort(left, kind="stable")
            left, right, count = left[order], right[order], count[order]
            total = float(count.sum())
            if total <= 0:
                continue
            share = count / total
            x = np.column_stack([left, right]).ravel()
            y = np.repeat(share, 2)
            y[y <= 0] = np.nan
            curves[kind] = (x, y, int(round(total)))
            all_pos.extend(share[share > 0].tolist())
            all_x.extend([float(left.min()), float(right.max())])
        panels.append((g, curves))

    n = len(panels)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    thresholds = [t for t in result.thresholds if math.isfinite(_f(t.value))]
    handles = [Line2D([], [], label=k, **KIND_STYLE[k]) for k in ("mated", "impostor")]
    handles += [Line2D([], [], color="0.3", linewidth=1.0, linestyle=THRESHOLD_STYLES[j % len(THRESHOLD_STYLES)],
                       label=f"threshold {_t(t.name)} ({_f(t.value):.4g})") for j, t in enumerate(thresholds)]

    # A regular grid: margins in inches instead of constrained layout, which would measure every
    # panel's texts (half the drawing time with a dozen panels).
    panel_w, panel_h, gap_w, gap_h = 3.0, 1.55, 0.25, 0.62
    left, right, bottom = 0.62, 0.12, 0.5
    width = left + right + ncols * panel_w + (ncols - 1) * gap_w
    # legend: as many columns as fit (about 0.06 in per character at 8 pt, plus the line sample)
    entry_w = 0.75 + 0.062 * max(len(h.get_label()) for h in handles)
    legend_cols = max(1, min(len(handles), int((width - 0.3) // entry_w)))
    legend_rows = math.ceil(len(handles) / legend_cols)
    top = 0.12 + 0.2 * legend_rows + 0.42  # legend, then the first row's two-line titles
    height = bottom + top + nrows * panel_h + (nrows - 1) * gap_h
    fig = _new_figure(width, height, layout=None)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={
        "left": left / width, "right": 1 - right / width, "bottom": bottom / height, "top": 1 - top / height,
        "wspace": gap_w / panel_w, "hspace": gap_h / panel_h,
    })
    for extra in axes.flat[n:]:
        fig.delaxes(extra)

    ymin = min(all_pos) / 2 if all_pos else None
    xlo, xhi = (min(all_x), max(all_x)) if all_x else (None, None)
    for i, (g, curves) in enumerate(panels):
        ax = axes.flat[i]
        for kind, (x, y, _) in curves.items():
            ax.plot(x, y, label=kind, **KIND_STYLE[kind])
        for j, t in enumerate(thresholds):
            ax.axvline(_f(t.value), color="0.3", linewidth=1.0, linestyle=THRESHOLD_STYLES[j % len(THRESHOLD_STYLES)])
        if ymin is not None:
            ax.set_yscale("log")
            _log_axis(ax.yaxis)
            ax.set_ylim(ymin, 1.5)
        if xlo is not None and xhi is not None and xhi > xlo:
            pad = 0.02 * (xhi - xlo)
            ax.set_xlim(xlo - pad, xhi + pad)
        counts = " · ".join(
            f"{k} n={c[2]:,}" for k, c in curves.items()
        ) or "no comparisons"
        ax.set_title(f"{_t(g)}\n{counts}", fontsize=8.5)
        missing = [k for k in ("mated", "impostor") if k not in curves]
        if missing:
            ax.text(0.02, 0.96, "no " + " and no ".join(missing) + " comparisons", transform=ax.transAxes,
                    fontsize=7.5, va="top", color="0.25")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.tick_params(labelsize=7.5)
        ax.grid(True, which="major", color="0.9", linewidth=0.6)
        # same limits everywhere: tick labels only on the outer panels (fewer texts, faster)
        if i % ncols == 0:
            ax.set_ylabel("share of comparisons", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
        if i + ncols >= n:
            ax.set_xlabel("similarity score", fontsize=8)
        else:
            ax.tick_params(labelbottom=False)

    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncols=legend_cols,
               fontsize=8, frameon=False, borderaxespad=0.3)
    return fig


# ------------------------------------------------------------------------------------ DET curves
def det_curves(result: AuditResult, grouping: str) -> Figure:
    """Detection error trade-off: FNMR against FMR (log x), one line per group.

    Groups differ by colour, line style and marker. Grey dotted vertical lines mark each
    threshold's overall FMR (on all impostors); each group's own operating point at each
    threshold (from ``rates``) is a large marker with a black edge, which shows how far a group
    sits from the FMR the threshold was set for. Points with FMR = 0 cannot be shown on a log axis
    and are dropped; a group with no drawable point (e.g. no mated comparisons) is named in a note.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes with one line per drawable group plus one vertical line per threshold whose
        overall FMR is finite and positive; a blank Axes with a message when ``det`` has no rows
        for ``grouping``.
    """
    _check_grouping(result, grouping)
    df = result.det[(result.det["grouping"] == grouping).to_numpy(dtype=bool)]
    present = set(df["group"].astype(str))
    groups = [g for g in group_order(result, grouping) if g in present]
    if not groups:
        return _empty_figure(f"No DET points for {_grouping_label(grouping)}.")

    rates = _rows(result.rates, grouping=grouping)
    fig = _new_figure(7.6, 4.6)
    ax = fig.add_subplot()
    skipped: list[str] = []
    xs_all: list[float] = []
    ys_all: list[float] = []
    handles = []
    for i, g in enumerate(groups):
        gdf = df[df["group"].astype(str) == g]
        fmr, fnmr = _floats(gdf["fmr"]), _floats(gdf["fnmr"])
        ok = np.isfinite(fmr) & np.isfinite(fnmr) & (fmr > 0)
        if not ok.any():
            skipped.append(g)
            continue
        order = np.lexsort((-fnmr[ok], fmr[ok]))  # by FMR; ties by falling FNMR (row order never matters)
        x, y = fmr[ok][order], fnmr[ok][order]
        st = _style(i)
        (line,) = ax.plot(x, y, label=_t(g), markevery=max(1, len(x) // 8), markersize=5, linewidth=1.5, **st)
        handles.append(line)
        xs_all.extend(x.tolist())
        ys_all.extend(y.tolist())
        # operating points at each threshold
        px, py = [], []
        grate = rates[rates["group"].astype(str) == g]
        for t in result.thresholds:
            at = grate[grate["threshold_name"] == t.name]
            fr = at[at["metric"].astype(str).str.lower() == "fmr"]["value"].tolist()
            nr = at[at["metric"].astype(str).str.lower() == "fnmr"]["value"].tolist()
            if fr and nr and _f(fr[0]) > 0 and math.isfinite(_f(fr[0])) and math.isfinite(_f(nr[0])):
                px.append(_f(fr[0]))
                py.append(_f(nr[0]))
        if px:
            ax.scatter(px, py, marker=st["marker"], s=70, facecolor=st["color"], edgecolor="black",
                       linewidth=1.2, zorder=4)
            xs_all.extend(px)
            ys_all.extend(py)

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for j, t in enumerate(result.thresholds):
        a = _f(t.achieved_fmr)
        if math.isfinite(a) and a > 0:
            ax.axvline(a, color="0.45", linewidth=1.0, linestyle=THRESHOLD_STYLES[j % len(THRESHOLD_STYLES)], zorder=1)
            ax.text(a, 0.98, f" {_t(t.name)}", rotation=90, va="top", ha="right", fontsize=7, color="0.3",
                    transform=trans)
            xs_all.append(a)

    if xs_all:
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        lo = min(v for v in xs_all if v > 0)
        ax.set_xlim(lo / 2, min(1.0, max(xs_all) * 2) if max(xs_all) * 2 > lo / 2 else 1.0)
        top = max(ys_all) if ys_all else 0.0
        ax.set_ylim(0, max(0.05, min(1.0, top * 1.1 + 0.01)))
    else:
        ax.text(0.5, 0.5, "no point with FMR > 0 to draw on a log axis", transform=ax.transAxes,
                ha="center", va="center", color="0.3")
    if skipped:
        fig.supxlabel("No curve (no mated comparisons, or FMR never above 0): " + ", ".join(_t(s) for s in skipped),
                      fontsize=7.5, color="0.25", x=0.01, ha="left")
    ax.set_xlabel("FMR (same-group impostors, log scale)")
    ax.set_ylabel("FNMR")
    ax.set_title(f"DET curves by {_t(_grouping_label(grouping))}", fontsize=10)
    ax.grid(True, which="major", color="0.88", linewidth=0.6)
    if handles:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=8, markerfacecolor="white",
                              markeredgecolor="black", label="operating point at a threshold"))
        handles.append(Line2D([], [], color="0.45", linestyle=THRESHOLD_STYLES[0], label="overall FMR at a threshold"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    return fig


# -------------------------------------------------------------------------------- FMR heat map
@dataclass(frozen=True)
class CrossFmrMatrix:
    """The cross-group FMR matrix of one grouping at one threshold, and its log colour scale.

    Attributes
    ----------
    grouping, threshold_name : str
    groups : tuple of str, length n
        Row (group of image A) and column (group of image B) order.
    fmr : numpy.ndarray of shape (n, n)
        NaN where a cell has no comparisons.
    false_matches, comparisons : numpy.ndarray of shape (n, n)
        NaN where the table has no row for the cell.
    vmin, vmax : float
        The log colour scale's range: the smallest and largest positive FMR (widened when
        they are equal; a default when no cell has a false match).
    """

    grouping: str
    threshold_name: str
    groups: tuple[str, ...]
    fmr: np.ndarray
    false_matches: np.ndarray
    comparisons: np.ndarray
    vmin: float
    vmax: float

    @property
    def norm(self) -> LogNorm:
        return LogNorm(vmin=self.vmin, vmax=self.vmax)

    def colour(self, value: float) -> tuple[str, str]:
        """(background, text) colours of a cell as ``#rrggbb``: cividis on the log scale for a
        positive FMR, white for 0 or NaN; the text is black or white, whichever contrasts."""
        if not (math.isfinite(value) and value > 0):
            return "#ffffff", "#000000"
        x = float(np.clip(self.norm(value), 0.0, 1.0))
        r, g, b, _ = HEAT_CMAP(x)
        lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
        return matplotlib.colors.to_hex((r, g, b)), ("#000000" if lum > 0.45 else "#ffffff")

    def ticks(self) -> list[float]:
        """Powers of ten inside ``[vmin, vmax]`` (with 2× and 5× when the range is narrow)."""
        lo, hi = math.floor(math.log10(self.vmin)), math.ceil(math.log10(self.vmax))
        subs = (1.0,) if math.log10(self.vmax / self.vmin) >= 2 else (1.0, 2.0, 5.0)
        out = [m * 10.0 ** e for e in range(lo, hi + 1) for m in subs]
        return [v for v in out if self.vmin * (1 - 1e-9) <= v <= self.vmax * (1 + 1e-9)]


HEAT_CMAP = matplotlib.colormaps["cividis"]


def cross_fmr_matrix(result: AuditResult, grouping: str, threshold_name: str) -> CrossFmrMatrix:
    """Gather ``cross_fmr`` rows of one grouping and threshold into a matrix (groups in report
    order). A matrix with no groups when there are no rows."""
    _check_grouping(result, grouping)
    _threshold(result, threshold_name)
    df = result.cross_fmr[((result.cross_fmr["grouping"] == grouping)
                           & (result.cross_fmr["threshold_name"] == threshold_name)).to_numpy(dtype=bool)]
    present = set(df["group_a"].astype(str)) | set(df["group_b"].astype(str))
    groups = [g for g in group_order(result, grouping) if g in present]
    idx = {g: i for i, g in enumerate(groups)}
    n = len(groups)
    fmr = np.full((n, n), np.nan)
    fm = np.full((n, n), np.nan)
    cmp_ = np.full((n, n), np.nan)
    for a, b, f, c, v in zip(df["group_a"].astype(str), df["group_b"].astype(str), df["false_matches"],
                             df["comparisons"], df["fmr"]):
        i, j = idx[a], idx[b]
        fm[i, j], cmp_[i, j] = _f(f), _f(c)
        fmr[i, j] = _f(v) if _f(c) > 0 else np.nan
    pos = fmr[np.isfinite(fmr) & (fmr > 0)]
    if pos.size:
        vmin, vmax = float(pos.min()), float(pos.max())
    else:
        finite_c = cmp_[np.isfinite(cmp_) & (cmp_ > 0)]
        vmin, vmax = (1.0 / float(finite_c.max()) if finite_c.size else 1e-6), 1.0
    if vmax <= vmin:
        vmin, vmax = vmin / 10.0, vmax * 10.0
    return CrossFmrMatrix(grouping, threshold_name, tuple(groups), fmr, fm, cmp_, vmin, vmax)


def fmr_heatmap(result: AuditResult, grouping: str, threshold_name: str) -> Figure:
    """Cross-group FMR matrix (NIST FRVT Part 3 style) at one threshold.

    Rows are the group of image A, columns the group of image B; the diagonal (outlined) holds
    same-group FMRs. Colours use a log scale (``cividis``); cells with no false matches are
    white and read ``0``; cells with no comparisons are hatched grey and read ``n/a``. Each cell
    is annotated with its FMR and ``false matches / comparisons`` (counts are left out above
    12 groups and all annotations above 24, where they would not fit).

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes (the matrix and its colour bar); a single blank Axes with a message when
        ``cross_fmr`` has no rows for this grouping and threshold.
    """
    t = _threshold(result, threshold_name)
    mat = cross_fmr_matrix(result, grouping, threshold_name)
    n = len(mat.groups)
    if n == 0:
        return _empty_figure(f"No cross-group FMR for {_grouping_label(grouping)} at {threshold_name}.")
    fmr, fm, cmp_ = mat.fmr, mat.false_matches, mat.comparisons
    norm = mat.norm
    cmap = HEAT_CMAP.with_extremes(bad=(1, 1, 1, 0))

    side = min(13.0, max(4.2, 0.62 * n + 2.6))
    fig = _new_figure(side + 1.4, side)
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    shown = np.where(np.isfinite(fmr) & (fmr > 0), fmr, np.nan)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, norm=norm, interpolation="nearest", aspect="equal")

    font = max(5.0, min(9.0, 64.0 / max(n, 1)))
    for i in range(n):
        for j in range(n):
            if not np.isfinite(cmp_[i, j]) or cmp_[i, j] <= 0:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.92", edgecolor="0.7",
                                       hatch="///", linewidth=0.0))
                if n <= 24:
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=font, color="0.3")
                continue
            if n > 24:
                continue
            label = fmt_rate(fmr[i, j], 2)
            if n <= 12:
                label += f"\n{fmt_count(fm[i, j])}/{fmt_count(cmp_[i, j])}"
            ax.text(j, i, label, ha="center", va="center", fontsize=font, color=mat.colour(fmr[i, j])[1],
                    linespacing=1.1)
    for i in range(n):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4))

    names = [_t(g) for g in mat.groups]
    ax.set_xticks(range(n), names, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("group of image B")
    ax.set_ylabel("group of image A")
    ax.set_title(f"Cross-group FMR by {_t(_grouping_label(grouping))} at {_t(t.name)} "
                 f"(threshold {_f(t.value):.4g})", fontsize=10)
    cbar = fig.colorbar(im, ax=ax, shrink=0.8)
    target = _f(t.target_fmr)
    has_target = math.isfinite(target) and mat.vmin <= target <= mat.vmax
    cbar.set_label("FMR (log scale)" + ("; black line: target FMR" if has_target else ""), fontsize=8)
    _log_axis(cbar.ax.yaxis, decades=math.log10(mat.vmax / mat.vmin))
    cbar.ax.tick_params(labelsize=7.5)
    if has_target:
        cbar.ax.axhline(target, color="black", linewidth=2.0)
    return fig


# ------------------------------------------------------------------------------------ bar charts
_Row = tuple  # (group, value, ci_low, ci_high, errors, trials, insufficient)


def _rate_rows(result: AuditResult, grouping: str, threshold_name: str, metric: str) -> list[_Row]:
    df = _rows(result.rates, grouping=grouping, threshold_name=threshold_name, metric=metric)
    by_group = {str(g): r for g, r in zip(df["group"], df.itertuples(index=False))}
    rows = []
    for g in group_order(result, grouping):
        r = by_group.get(g)
        if r is None:
            continue
        trials = _f(r.trials)
        value = _f(r.value) if trials > 0 else math.nan
        rows.append((g, value, _f(r.ci_low), _f(r.ci_high), _f(r.errors), trials, flag(r.insufficient)))
    return rows


def fmr_basis(t: ThresholdInfo) -> float | None:
    """The FMR a threshold's "insufficient" flags are judged against: its target, or for a fixed
    or default threshold its achieved overall FMR; None when neither is positive."""
    for v in (_f(t.target_fmr), _f(t.achieved_fmr)):
        if math.isfinite(v) and v > 0:
            return v
    return None


def needed_impostors(t: ThresholdInfo) -> int | None:
    """Impostor comparisons a group needs at ``t`` not to be flagged: ``ceil(3 / FMR)``."""
    basis = fmr_basis(t)
    return None if basis is None else math.ceil(3.0 / basis - 1e-9)


def _insufficient_label(t: ThresholdInfo) -> str:
    need = needed_impostors(t)
    return f"† fewer than 3/FMR = {fmt_count(need)} impostor comparisons" if need else "† too few comparisons"


def _draw_bars(ax: Any, rows: Sequence[_Row], *, metric: str, group_labels: bool = True,
               value_labels: bool = True) -> bool:
    """Horizontal bars with 95% interval whiskers on ``ax``; returns whether any bar is flagged.

    With ``value_labels`` each bar reads ``value (errors/trials)``; without, only bars that would
    otherwise be invisible say why (``0``, ``n/a``)."""
    n = len(rows)
    y = np.arange(n)
    values = np.array([r[1] for r in rows], dtype=float)
    lo = np.array([r[2] for r in rows], dtype=float)
    hi = np.array([r[3] for r in rows], dtype=float)
    widths = np.where(np.isfinite(values), values, 0.0)
    base = _BAR_COLOR.get(metric, "#0072B2")
    bars = ax.barh(y, widths, height=0.62, color=base, edgecolor=base, linewidth=1.0)
    any_insufficient = False
    for patch, r in zip(bars.patches, rows):
        if r[6]:
            any_insufficient = True
            patch.set_facecolor("white")
            patch.set_hatch("////")
    ok = np.isfinite(values) & np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        xerr = np.vstack([np.clip(values[ok] - lo[ok], 0, None), np.clip(hi[ok] - values[ok], 0, None)])
        ax.errorbar(values[ok], y[ok], xerr=xerr, fmt="none", ecolor="black", elinewidth=1.1, capsize=3)
    finite = np.concatenate([values[np.isfinite(values)], hi[np.isfinite(hi)]])
    right = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    ax.set_xlim(0, right * (1.5 if value_labels else 1.25))
    for k, r in enumerate(rows):
        v, e, tr = r[1], r[4], r[5]
        x = max(v if math.isfinite(v) else 0.0, r[3] if math.isfinite(r[3]) else 0.0)
        if math.isfinite(v):
            if not value_labels and v > 0:
                continue
            text = (f"{fmt_rate(v)} ({fmt_count(e)}/{fmt_count(tr)})" if value_labels else "0") + (" †" if r[6] else "")
        else:
            text = f"n/a ({fmt_count(e)}/{fmt_count(tr)})" if math.isfinite(tr) else "n/a (no comparisons)"
        ax.text(x + right * 0.02, k, text, va="center", fontsize=8)
    ax.set_yticks(y, [_t(r[0]) for r in rows] if group_labels else [""] * n, fontsize=8.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"{_METRIC_LABEL.get(metric, metric)} with 95% interval", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(True, axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    return any_insufficient


def _hatch_legend(ax: Any, metric: str, label: str) -> None:
    base = _BAR_COLOR.get(metric, "#0072B2")
    ax.legend(handles=[Patch(facecolor="white", edgecolor=base, hatch="////", label=label)],
              loc="lower right", fontsize=8, frameon=True)


def rate_bars(result: AuditResult, grouping: str, threshold_name: str, metric: str) -> Figure:
    """FMR or FNMR per group at one threshold, as horizontal bars with 95% interval whiskers.

    Each bar is labelled ``value (errors/trials)``; rates of 0 are zero-length bars with their
    counts, groups with no comparisons read ``n/a``. Bars flagged ``insufficient`` are hatched
    and white (and marked ``†``), so the flag reads without colour.

    Parameters
    ----------
    metric : {"fmr", "fnmr"}

    Returns
    -------
    matplotlib.figure.Figure
        One Axes with one bar (patch) per group that has a rate row; a blank Axes with a message
        when there is none.
    """
    _check_grouping(result, grouping)
    t = _threshold(result, threshold_name)
    m = _metric(metric)
    rows = _rate_rows(result, grouping, threshold_name, m)
    if not rows:
        return _empty_figure(f"No {_METRIC_LABEL[m]} for {_grouping_label(grouping)} at {threshold_name}.")
    fig = _new_figure(6.0, 0.36 * len(rows) + 1.3)
    ax = fig.add_subplot()
    if _draw_bars(ax, rows, metric=m):
        _hatch_legend(ax, m, _insufficient_label(t))
    ax.set_title(f"{_METRIC_LABEL[m]} by {_t(_grouping_label(grouping))} at {_t(t.name)} "
                 f"(threshold {_f(t.value):.4g})", fontsize=9.5)
    return fig


def fmr_fnmr_bars(result: AuditResult, grouping: str, threshold_name: str) -> Figure:
    """FMR and FNMR per group at one threshold, side by side on a shared group axis.

    The compact form the HTML report uses (the exact values and counts are in its table):
    bars with 95% interval whiskers, hatched when flagged ``insufficient``; only bars that would
    otherwise be invisible are labelled (``0``, ``n/a``).

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes (FMR, FNMR), each with one bar per group that has a rate row of that metric;
        a blank Axes with a message when neither has any.
    """
    _check_grouping(result, grouping)
    t = _threshold(result, threshold_name)
    fmr_rows = _rate_rows(result, grouping, threshold_name, "fmr")
    fnmr_rows = _rate_rows(result, grouping, threshold_name, "fnmr")
    if not fmr_rows and not fnmr_rows:
        return _empty_figure(f"No FMR or FNMR for {_grouping_label(grouping)} at {threshold_name}.")
    n = max(len(fmr_rows), len(fnmr_rows))
    fig = _new_figure(10.0, 0.32 * n + 1.3)
    ax_fmr, ax_fnmr = fig.subplots(1, 2, sharey=False)
    flagged = False
    for ax, rows, m in ((ax_fmr, fmr_rows, "fmr"), (ax_fnmr, fnmr_rows, "fnmr")):
        if not rows:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"no {_METRIC_LABEL[m]}", transform=ax.transAxes, ha="center", color="0.3")
            continue
        same_groups = [r[0] for r in rows] == [r[0] for r in fmr_rows]
        flagged |= _draw_bars(ax, rows, metric=m, group_labels=(ax is ax_fmr or not same_groups),
                              value_labels=False)
        ax.set_title(_METRIC_LABEL[m], fontsize=9.5)
    if flagged:
        fig.legend(handles=[Patch(facecolor="white", edgecolor="0.3", hatch="////", label=_insufficient_label(t))],
                   loc="outside lower center", fontsize=8, frameon=False)
    fig.suptitle(f"FMR and FNMR by {_t(_grouping_label(grouping))} at {_t(t.name)} (threshold {_f(t.value):.4g})",
                 fontsize=10)
    return fig


def fta_bars(result: AuditResult, grouping: str) -> Figure:
    """Failure to acquire per group, as horizontal bars with 95% interval whiskers.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes with one bar per group that has an ``fta`` row; a blank Axes with a message
        when there is none.
    """
    _check_grouping(result, grouping)
    df = result.fta[(result.fta["grouping"] == grouping).to_numpy(dtype=bool)]
    if df.empty:
        return _empty_figure(f"No failure-to-acquire counts for {_grouping_label(grouping)}.")
    by_group = {str(g): r for g, r in zip(df["group"], df.itertuples(index=False))}
    rows = []
    for g in group_order(result, grouping):
        r = by_group.get(g)
        if r is None:
            continue
        attempts = _f(r.attempts)
        value = _f(r.value) if attempts > 0 else math.nan
        rows.append((g, value, _f(r.ci_low), _f(r.ci_high), _f(r.failures), attempts, False))
    fig = _new_figure(6.0, 0.36 * len(rows) + 1.3)
    ax = fig.add_subplot()
    _draw_bars(ax, rows, metric="fta")
    ax.set_title(f"Failure to acquire by {_t(_grouping_label(grouping))}", fontsize=9.5)
    return fig


# ------------------------------------------------------------------------------------- encoding
_MIME = {"png": "image/png", "svg": "image/svg+xml"}


def figure_to_data_uri(fig: Figure, *, fmt: str = "png", dpi: int = 110) -> str:
    """Encode a figure as a base64 ``data:`` URI for an ``<img src>``.

    PNG is the default: its size is bounded by pixels, not by the number of drawn elements
    (a 14×14 annotated heat map or a dense DET curve makes a large SVG, with every glyph as a
    path), it renders the same in every browser and e-mail client, and as an ``<img>`` it is
    inert. ``fmt="svg"`` gives crisp vector output where size does not matter. Output is
    deterministic: no timestamps or random ids are embedded.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    fmt : {"png", "svg"}
    dpi : int, default 110
        Raster resolution (PNG only).

    Returns
    -------
    str
        ``"data:image/png;base64,..."`` or ``"data:image/svg+xml;base64,..."``.
    """
    if fmt not in _MIME:
        raise ReportError(f"fmt must be one of {sorted(_MIME)}, got {fmt!r}")
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    with matplotlib.rc_context({"svg.hashsalt": "face-audit", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, dpi=dpi, facecolor="white", metadata=metadata)
    return f"data:{_MIME[fmt]};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
