"""Rates by group as horizontal bars with interval whiskers (see :mod:`audit.report.plots`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..results import ThresholdInfo
from ..verification.result import AuditResult
from .plotkit import (
    _BAR_COLOR,
    _METRIC_LABEL,
    _check_grouping,
    _empty_figure,
    _f,
    _grouping_label,
    _metric,
    _new_figure,
    _rows,
    _t,
    _threshold,
    flag,
    fmt_count,
    fmt_rate,
    group_order,
    needed_impostors,
)

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


