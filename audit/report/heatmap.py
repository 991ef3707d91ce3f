"""The cross-group FMR matrix and its colour scale (see :mod:`audit.report.plots`)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..results import AuditResult
from .plotkit import (KIND_STYLE, PALETTE, THRESHOLD_STYLES, ReportError, fmt_count, fmt_rate, flag, group_order,  # noqa: F401
                      fmr_basis, needed_impostors)
from .plotkit import (_check_grouping, _empty_figure, _f, _grouping_label, _log_axis, _new_figure, _t, _threshold)
from dataclasses import dataclass
from matplotlib.colors import LogNorm


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


