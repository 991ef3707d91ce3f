"""The cross-group FMR matrix and its colour scale (see :mod:`audit.report.plots`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..verification.result import AuditResult
from ..verdict import threshold_units
from .plotkit import (
    _check_grouping,
    _empty_figure,
    _f,
    _grouping_label,
    _new_figure,
    _t,
    _threshold,
    fmr_basis,
    fmt_count,
    fmt_rate,
    group_order,
)

# ------------------------------------------------------------------------- the one colour scale
#: Diverging around 1: blue below the target FMR, red above, near-white at the target.
HEAT_CMAP = matplotlib.colormaps["RdBu_r"]
#: The scale runs from 1/RATIO_SPAN to RATIO_SPAN times the target; rates beyond take the end colours.
RATIO_SPAN = 100.0
#: Colour-bar ticks, as multiples of the target.
RATIO_TICKS = (0.01, 0.1, 1.0, 10.0, 100.0)


def ratio_label(k: float) -> str:
    """``1/100×``, ``1/10×``, ``target``, ``10×``, ``100×``."""
    if abs(k - 1) < 1e-9:
        return "target"
    return f"{k:g}×" if k > 1 else f"1/{1 / k:g}×"


@dataclass(frozen=True)
class HeatScale:
    """The one colour scale of every heat map in a report: a cell's colour is its rate divided by
    the threshold's target rate (``basis``), on a log scale from 1/100 to 100, diverging around 1
    (:data:`HEAT_CMAP`). A zero rate, a zero the sample cannot resolve (fewer than 3/``basis``
    comparisons: the rule of three) and a cell with no comparisons are each drawn their own way,
    never as a colour of the scale."""

    basis: float

    @property
    def vmin(self) -> float:
        return self.basis / RATIO_SPAN

    @property
    def vmax(self) -> float:
        return self.basis * RATIO_SPAN

    @property
    def norm(self) -> LogNorm:
        return LogNorm(vmin=self.vmin, vmax=self.vmax, clip=True)

    def colour(self, value: float) -> tuple[str, str]:
        """(background, text) colours as ``#rrggbb`` of a positive rate; white for 0 or NaN (which
        the report draws with a pattern instead); text black or white, whichever contrasts."""
        if not (math.isfinite(value) and value > 0):
            return "#ffffff", "#000000"
        x = float(np.clip(self.norm(value), 0.0, 1.0))
        r, g, b, _ = HEAT_CMAP(x)
        lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
        return matplotlib.colors.to_hex((r, g, b)), ("#000000" if lum > 0.45 else "#ffffff")

    def ticks(self) -> list[float]:
        """The colour bar's ticks as rates: 1/100, 1/10, 1, 10 and 100 times ``basis``."""
        return [k * self.basis for k in RATIO_TICKS]

    def kind(self, errors: float, comparisons: float) -> str:
        """``"na"`` (no comparisons), ``"few"`` (no error in fewer than 3/basis comparisons: the
        sample cannot show the rate is below the target), ``"zero"`` or ``"pos"``."""
        if not (math.isfinite(comparisons) and comparisons > 0):
            return "na"
        if not errors > 0:
            return "few" if comparisons < 3.0 / self.basis - 1e-9 else "zero"
        return "pos"

    def bar(self) -> dict:
        """The HTML colour bar: a CSS gradient, tick positions and labels (multiples of the target)."""
        stops = ", ".join(f"{matplotlib.colors.to_hex(HEAT_CMAP(k / 10))} {10 * k}%" for k in range(11))
        return {"gradient": f"linear-gradient(to right, {stops})",
                "ticks": [{"pos": f"{100 * (math.log10(k) + 2) / 4:.0f}%", "label": ratio_label(k)} for k in RATIO_TICKS],
                "basis": fmt_rate(self.basis)}


@dataclass(frozen=True)
class CrossFmrMatrix:
    """The cross-group FMR matrix of one grouping at one threshold, and its colour scale.

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
        The colour scale's range: 1/100 and 100 times the threshold's target FMR (its overall
        FMR for a fixed threshold); see :class:`HeatScale`.
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
    def scale(self) -> HeatScale:
        return HeatScale(math.sqrt(self.vmin * self.vmax))

    @property
    def norm(self) -> LogNorm:
        return self.scale.norm

    def colour(self, value: float) -> tuple[str, str]:
        return self.scale.colour(value)

    def ticks(self) -> list[float]:
        return self.scale.ticks()


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
    basis = fmr_basis(_threshold(result, threshold_name)) or 1e-3
    vmin, vmax = basis / RATIO_SPAN, basis * RATIO_SPAN
    return CrossFmrMatrix(grouping, threshold_name, tuple(groups), fmr, fm, cmp_, vmin, vmax)


def fmr_heatmap(result: AuditResult, grouping: str, threshold_name: str) -> Figure:
    """Cross-group FMR matrix (NIST FRVT Part 3 style) at one threshold.

    Rows are the group of image A, columns the group of image B; the diagonal (outlined) holds
    same-group FMRs. A cell's colour is its FMR divided by the threshold's target FMR on a log scale
    from 1/100 to 100, diverging around 1 (:class:`HeatScale`, the same for every heat map);
    cells with no false matches are white with a dotted edge and read ``0``; cells with no
    comparisons are hatched grey and read ``n/a``. Each cell
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
            if not fmr[i, j] > 0:
                ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="0.5",
                                       linestyle=":", linewidth=1.0))
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
                 f"({threshold_units(t, result.provenance)})", fontsize=10)
    cbar = fig.colorbar(im, ax=ax, shrink=0.8)
    cbar.set_ticks(mat.ticks(), labels=[ratio_label(k) for k in RATIO_TICKS])
    cbar.set_label(f"FMR ÷ target ({fmt_rate(mat.scale.basis)}), log scale", fontsize=8)
    cbar.ax.minorticks_off()
    cbar.ax.tick_params(labelsize=7.5)
    return fig




# ------------------------------------------------------------------------------- the HTML view
def heat_cell(scale: HeatScale, value: float, errors: float, comparisons: float, title: str) -> dict:
    """One heat-map cell for the HTML table: kind (``na``, ``few``, ``zero``, ``pos``), text,
    counts, colours and a tooltip."""
    kind = scale.kind(errors, comparisons)
    if kind == "na":
        return {"kind": "na", "text": "n/a", "counts": "no comparisons", "bg": "", "fg": "", "title": f"{title}: no comparisons"}
    counts = f"{fmt_count(errors)}/{fmt_count(comparisons)}"
    bg, fg = scale.colour(value) if kind == "pos" else ("", "")
    text = fmt_rate(value)
    if kind == "few":
        counts += " · too few to resolve"
    return {"kind": kind, "text": text, "counts": counts, "bg": bg, "fg": fg, "title": f"{title}: {text} ({counts})"}


def heat_view(mat: CrossFmrMatrix, t: Any, provenance: Any = None, *, directional: bool = False) -> dict[str, Any]:
    """The cross-group FMR matrix as an HTML table coloured on the report's one scale
    (:class:`HeatScale`), with its colour bar: real numbers a screen reader can read."""
    scale = mat.scale
    rows = []
    for i, a in enumerate(mat.groups):
        cells = []
        for j, b in enumerate(mat.groups):
            pa, pb = ("probe ", "reference ") if directional else ("", "")
            c = heat_cell(scale, mat.fmr[i, j], mat.false_matches[i, j], mat.comparisons[i, j], f"{pa}{a} × {pb}{b}")
            c["diag"] = i == j
            cells.append(c)
        rows.append({"group": a, "cells": cells})
    return {"threshold": t.name, "value": threshold_units(t, provenance), "groups": list(mat.groups), "rows": rows,
            "bar": scale.bar(), "summary": heat_summary(mat, directional=directional)}


def heat_summary(mat: CrossFmrMatrix, *, directional: bool = False) -> str:
    """One sentence per fact a reader looks for first; ties go to the first group in report order."""
    n = len(mat.groups)
    same, cross = [], []
    for i in range(n):
        for j in range(n):
            c = mat.comparisons[i, j]
            if math.isfinite(c) and c > 0:
                item = (mat.fmr[i, j], mat.groups[i], mat.groups[j], mat.false_matches[i, j], c)
                (same if i == j else cross).append(item)

    def top(items: list) -> tuple:
        return max(items, key=lambda x: x[0] if math.isfinite(x[0]) else -1.0)  # max keeps the first of ties

    basis = mat.scale.basis
    parts = []
    if same:
        v, a, _, e, c = top(same)
        parts.append(f"Highest same-group FMR: {a}, {fmt_rate(v)} ({fmt_count(e)}/{fmt_count(c)}), "
                     f"{v / basis:.2g} times the target.")
        zeros = [x[1] for x in same if x[0] == 0]
        if zeros:
            parts.append(f"No same-group false match: {', '.join(zeros)}.")
    if cross:
        v, a, b, e, c = top(cross)
        if v > 0:
            pair = f"probes of {a} against references of {b}" if directional else f"{a} with {b}"
            parts.append(f"Highest cross-group FMR: {pair}, {fmt_rate(v)} ({fmt_count(e)}/{fmt_count(c)}).")
        else:
            total = sum(x[4] for x in cross) if directional else sum(x[4] for x in cross) // 2
            parts.append(f"No cross-group false match (0 of {fmt_count(total)} cross-group comparisons).")
    return " ".join(parts)
