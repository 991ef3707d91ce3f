"""The metrics layer: pure numpy/pandas functions over scores, counts and per-group rates.

No I/O, and no imports of other face-audit modules except :mod:`audit.errors`.

Conventions: scores are similarities (higher means more alike); a comparison matches when
``score >= threshold`` (a tie is a match). FMR counts impostor scores ``>= threshold``; FNMR
counts genuine (mated) scores ``< threshold``.

- :mod:`audit.metrics.rates`: :func:`fmr`, :func:`fnmr`, :func:`threshold_at_fmr`,
  :func:`thresholds_at_fmr`, :func:`error_counts`, :func:`det_curve`.
- :mod:`audit.metrics.uncertainty`: Wilson and Clopper–Pearson intervals, the rule of three,
  intervals for the ratio of two rates (Katz; exact conditional).
- :mod:`audit.metrics.disparity`: summaries of per-group rates (max/min, max/geomean, FDR, IR,
  GARBE).
"""

from __future__ import annotations

from .disparity import Disparity, max_geomean_ratio, max_min_ratio, summarize
from .joint import fairness_discrepancy_rate, garbe, gini, inequity_rate
from .rates import CI_METHODS, ErrorCounts, Rate, det_curve, error_counts, fmr, fnmr, rate_from_counts
from .thresholds import threshold_at_fmr, thresholds_at_fmr
from .uncertainty import (
    Interval,
    IntervalArrays,
    clopper_pearson_interval,
    clopper_pearson_interval_arrays,
    insufficient_impostors,
    interval_arrays,
    wilson_interval,
    wilson_interval_arrays,
)
from .ratio import RatioInterval, rate_ratio_interval

__all__ = [
    # rates
    "Rate",
    "ErrorCounts",
    "CI_METHODS",
    "rate_from_counts",
    "fmr",
    "fnmr",
    "threshold_at_fmr",
    "thresholds_at_fmr",
    "error_counts",
    "det_curve",
    # uncertainty
    "Interval",
    "IntervalArrays",
    "wilson_interval",
    "wilson_interval_arrays",
    "clopper_pearson_interval",
    "clopper_pearson_interval_arrays",
    "interval_arrays",
    "insufficient_impostors",
    "RatioInterval",
    "rate_ratio_interval",
    # disparity
    "Disparity",
    "max_min_ratio",
    "max_geomean_ratio",
    "fairness_discrepancy_rate",
    "inequity_rate",
    "garbe",
    "gini",
    "summarize",
]
