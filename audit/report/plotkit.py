"""Shared pieces of the report's figures: formatting, table lookups, styles, the ``data:`` URI
encoder. The figures themselves are in :mod:`~audit.report.curves` (score distributions, DET),
:mod:`~audit.report.heatmap` (cross-group FMR), :mod:`~audit.report.bars` and
:mod:`~audit.report.forest`; :mod:`~audit.report.plots` gathers them (see its docstring for the
design rules shared by all plots).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Iterable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from ..errors import FaceAuditError
from ..results import ThresholdInfo
from ..verification.result import AuditResult


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

