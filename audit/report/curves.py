"""Score distributions and DET curves by group (see :mod:`audit.report.plots`)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from ..verification.result import AuditResult
from .plotkit import (
    KIND_STYLE,
    THRESHOLD_STYLES,
    _check_grouping,
    _empty_figure,
    _f,
    _floats,
    _grouping_label,
    _kind,
    _log_axis,
    _new_figure,
    _rows,
    _style,
    _t,
    group_order,
)


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
    """Detection error trade-off as NIST draws it: FNMR against FMR, both on log axes, one line per group.

    Groups differ by colour, line style and marker. Grey dotted vertical lines mark each
    threshold's overall FMR (on all impostors); each group's own operating point at each
    threshold (from ``rates``) is a large marker with a black edge, which shows how far a group
    sits from the FMR the threshold was set for. Points with FMR = 0 or FNMR = 0 cannot be shown on
    a log axis and are dropped; a group with no drawable point (no mated comparisons, or no false
    non-match at any threshold) is named in words under the axes, never drawn as an empty box.

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
        ok = np.isfinite(fmr) & np.isfinite(fnmr) & (fmr > 0) & (fnmr > 0)
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
            if fr and nr and _f(fr[0]) > 0 and _f(nr[0]) > 0 and math.isfinite(_f(fr[0])) and math.isfinite(_f(nr[0])):
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
        ys = [v for v in ys_all if v > 0]
        if ys:
            ax.set_yscale("log")
            ylo, yhi = min(ys), max(ys)
            ax.set_ylim(ylo / 2, min(1.0, yhi * 2) if yhi * 2 > ylo / 2 else 1.0)
            _log_axis(ax.yaxis, decades=math.log10(max(yhi / ylo, 1.0)) + 0.6)
    if not handles:
        ax.text(0.5, 0.5, "No group has a false non-match at any threshold drawn:\nFNMR is 0, which a log axis cannot show.",
                transform=ax.transAxes, ha="center", va="center", color="0.3")
    if skipped:
        fig.supxlabel("No curve: " + ", ".join(_t(s) for s in skipped) + " (no false non-match at any threshold, "
                      "or no mated comparisons)", fontsize=7.5, color="0.25", x=0.01, ha="left", wrap=True)
    ax.set_xlabel("FMR (same-group impostors, log scale)")
    ax.set_ylabel("FNMR (log scale)")
    ax.set_title(f"DET curves by {_t(_grouping_label(grouping))}", fontsize=10)
    ax.grid(True, which="major", color="0.88", linewidth=0.6)
    if handles:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=8, markerfacecolor="white",
                              markeredgecolor="black", label="operating point at a threshold"))
        handles.append(Line2D([], [], color="0.45", linestyle=THRESHOLD_STYLES[0], label="overall FMR at a threshold"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    return fig


