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

from .plotkit import (  # noqa: F401
    KIND_STYLE, LINESTYLES, MARKERS, PALETTE, THRESHOLD_STYLES, ReportError, _check_grouping, _empty_figure, _f, _floats,
    _grouping_label, _kind, _log_axis, _metric, _new_figure, _pow10, _rows, _style, _t, _threshold, figure_to_data_uri,
    flag, fmr_basis, fmt_count, fmt_rate, group_order, needed_impostors,
)
from .curves import det_curves, score_distributions  # noqa: F401
from .heatmap import HEAT_CMAP, CrossFmrMatrix, cross_fmr_matrix, fmr_heatmap  # noqa: F401
from .bars import _rate_rows, fmr_fnmr_bars, fta_bars, rate_bars  # noqa: F401

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

