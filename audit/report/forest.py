"""The forest plot: every group's rate as a ratio to its reference group's, with its interval.

One figure per threshold, one panel per metric (FMR and FNMR; FPIR and FNIR for a 1:N search
audit), one row per group, rows gathered by grouping. The x axis is logarithmic, a vertical line
marks parity (ratio 1), and each row draws the ratio with its 95% simultaneous interval (the
reference table's ``ratio_low``/``ratio_high``) and prints it in the words of
:func:`audit.verdict.ratio_text`, the same figure as the key findings and the reference table.
A ratio over a reference with no error is infinite: its lower bound is drawn with an arrow to
the right. A row where neither group erred reads "no errors in either group".
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..verdict import times
from .plotkit import _empty_figure, _f, _new_figure, _t

__all__ = ["forest_plot", "forest_rows"]

_NAMES = {"fmr": "False match rate (FMR)", "fnmr": "False non-match rate (FNMR)",
          "fpir": "False positive identification rate (FPIR)", "fnir": "False negative identification rate (FNIR)"}
_SHOWN = "#b34700"
_NOT_SHOWN = "#4d4d4d"


def forest_rows(reference: pd.DataFrame, threshold_name: str, groupings: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of one threshold's forest plot: (grouping, group, reference) with, per metric,
    ``(ratio, low, high, shown)``; groupings in ``groupings`` order, groups in table order."""
    if not isinstance(reference, pd.DataFrame) or reference.empty:
        return []
    df = reference[(reference["threshold_name"].astype(str) == threshold_name).to_numpy(dtype=bool)]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    order = {g: i for i, g in enumerate(groupings)}
    for r in df.to_dict("records"):
        key = (str(r["grouping"]), str(r["group"]))
        row = rows.setdefault(key, {"grouping": key[0], "group": key[1], "reference": str(r["reference"]), "metrics": {}})
        row["metrics"][str(r["metric"]).lower()] = (_f(r.get("ratio")), _f(r.get("ratio_low")), _f(r.get("ratio_high")),
                                                    bool(r.get("shown")))
    return sorted(rows.values(), key=lambda x: order.get(x["grouping"], len(order)))


def _interval_text(ratio: float, low: float, high: float) -> str:
    if math.isnan(ratio):
        return "no errors in either"
    if math.isinf(ratio):
        return f"≥ {times(low)}×"
    return f"{times(ratio)}× ({times(low)}–{'∞' if math.isinf(high) else times(high)})"


def forest_plot(reference: pd.DataFrame, threshold_name: str, groupings: Sequence[str], *,
                metrics: Sequence[str] = ("fmr", "fnmr"), title: str = "") -> Figure:
    """Each group's ratio to its reference group at one threshold, one panel per metric.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per metric that has rows (log x axis, parity line at 1); a blank figure with a
        message when the reference table has no rows for ``threshold_name``.
    """
    rows = forest_rows(reference, threshold_name, groupings)
    # a metric where no row has a ratio (no errors anywhere) gets no panel: the report says so in words
    metrics = [m for m in metrics if any(m in r["metrics"] and not math.isnan(r["metrics"][m][0]) for r in rows)]
    if not rows or not metrics:
        return _empty_figure(f"No group could be compared with a reference group at {threshold_name}.")
    # y positions: a header line per grouping, then its groups
    labels: list[tuple[float, str, bool]] = []
    ys: list[float] = []
    y, last = 0.0, None
    for r in rows:
        if r["grouping"] != last:
            labels.append((y, f"{' × '.join(r['grouping'].split('+'))} (against {r['reference']})", True))
            y += 1.0
            last = r["grouping"]
        labels.append((y, r["group"], False))
        ys.append(y)
        y += 1.0
    height = 0.9 + 0.24 * y
    fig = _new_figure(10.0 if len(metrics) > 1 else 7.0, height)
    grid = fig.subplots(1, 2 * len(metrics), sharey=True, squeeze=False,
                        gridspec_kw={"width_ratios": [3.0, 1.25] * len(metrics)})[0]
    axes, notes = grid[0::2], grid[1::2]
    for n in notes:
        n.set_axis_off()
    finite = [v for r in rows for m in metrics if m in r["metrics"] for v in r["metrics"][m][:3]
              if math.isfinite(v) and v > 0]
    lo = min([0.5, *finite]) / 1.5
    hi = max([2.0, *finite]) * 1.5
    lo, hi = max(lo, 1e-3), min(hi, 1e4)
    decades = [k for k in range(-3, 5) if lo <= 10.0 ** k <= hi]
    step = 2 if len(decades) > 5 else 1
    ticks = [10.0 ** k for k in decades if k % step == 0]
    for ax, note, m in zip(axes, notes, metrics):
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.axvline(1.0, color="black", linewidth=1.0, zorder=1)
        for yy, r in zip(ys, rows):
            if m not in r["metrics"]:
                continue
            ratio, low, high, shown = r["metrics"][m]
            colour = _SHOWN if shown else _NOT_SHOWN
            text = _interval_text(ratio, low, high)
            if math.isnan(ratio):
                note.text(0.0, yy, text, va="center", ha="left", fontsize=7, color="0.35")
                continue
            left = min(max(low, lo), hi) if math.isfinite(low) and low > 0 else lo
            right = min(high, hi) if math.isfinite(high) else hi
            ax.plot([left, right], [yy, yy], color=colour, linewidth=1.6, solid_capstyle="butt", zorder=2)
            if not (math.isfinite(high) and high <= hi):
                ax.annotate("", xy=(hi, yy), xytext=(hi / 1.6, yy),
                            arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.4})
            if math.isfinite(ratio) and ratio > 0:
                ax.plot([min(max(ratio, lo), hi)], [yy], marker="s" if shown else "o", color=colour, markersize=5.5,
                        markerfacecolor=colour if shown else "white", zorder=3)
            else:  # infinite: the lower bound is the claim
                ax.plot([left], [yy], marker=">", color=colour, markersize=6, zorder=3)
            note.text(0.0, yy, text, va="center", ha="left", fontsize=7, color=colour)
        ax.set_title(_NAMES.get(m, m.upper()) + "\nratio to the reference group (log scale)", fontsize=9)
        ax.grid(True, axis="x", color="0.9", linewidth=0.6)
        ax.tick_params(labelsize=7.5)
        ax.set_xticks(ticks, [(times(t) if t >= 1 else f"1/{1 / t:.0f}") + "×" for t in ticks])
        ax.minorticks_off()
        note.set_xlim(0, 1)
        for yy, _, head in labels:
            if head:
                ax.axhspan(yy - 0.5, yy + 0.5, color="0.93", zorder=0)
    axes[0].set_yticks([p for p, _, _ in labels], [_t(t) for _, t, _ in labels])
    for tick, (_, _, head) in zip(axes[0].get_yticklabels(), labels):
        if head:
            tick.set_fontweight("bold")
    axes[0].set_ylim(y - 0.5, -0.5)
    if title:
        fig.suptitle(_t(title), fontsize=10)
    return fig


def forest_alt(reference: pd.DataFrame, threshold_name: str, groupings: Sequence[str]) -> str:
    """Alt text listing every row's ratio and interval."""
    parts = []
    for r in forest_rows(reference, threshold_name, groupings):
        for m, (ratio, low, high, shown) in r["metrics"].items():
            parts.append(f"{r['group']} {m.upper()} {_interval_text(ratio, low, high)}{' shown' if shown else ''}")
    return "; ".join(parts[:40]) + (" …" if len(parts) > 40 else "")


