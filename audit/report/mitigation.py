"""The HTML report of ``face-audit mitigate``: per-group FMR/FNMR before and after each mitigation.

compute → structure → render, as the other reports; layout in ``templates/mitigation.html.j2``
(autoescaped); the figure is a matplotlib ``Figure`` inlined as PNG.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .html import FIGURE_DPI, _environment, _write_index
from .plots import MARKERS, PALETTE, _new_figure, _t, figure_to_data_uri

__all__ = ["before_after_plot", "render_mitigation_html", "write_mitigation_report"]


def _fmt(v: Any, digits: int = 2) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(f):
        return "—"
    if math.isinf(f):
        return "∞"
    return f"{f:.{digits}e}" if 0 < abs(f) < 1e-2 else f"{f:.{max(digits, 3)}f}" if abs(f) < 1 else f"{f:.{digits}f}"


def before_after_plot(result) -> Any:
    """Per-group FMR (log scale) and FNMR for each method, with people-level whiskers.

    Returns
    -------
    matplotlib.figure.Figure
    """
    r = result.rates
    methods = list(dict.fromkeys(r["method"]))
    groups = sorted(r["group"].unique())
    fig = _new_figure(9.0, 3.6)
    axes = fig.subplots(1, 2)
    x = np.arange(len(methods))
    width = 0.7 / max(1, len(groups))
    for ax, metric, label in ((axes[0], "fmr", "FMR (same-group impostors)"), (axes[1], "fnmr", "FNMR")):
        for gi, g in enumerate(groups):
            rows = r[(r["metric"] == metric) & (r["group"] == g)].set_index("method").reindex(methods)
            v = rows["rate"].to_numpy(float)
            lo = rows["boot_low"].to_numpy(float)
            hi = rows["boot_high"].to_numpy(float)
            lo = np.where(np.isnan(lo), v, lo)
            hi = np.where(np.isnan(hi), v, hi)
            xs = x - 0.35 + width * (gi + 0.5)
            ok = ~np.isnan(v)
            ax.errorbar(xs[ok], v[ok], yerr=[np.maximum(v[ok] - lo[ok], 0), np.maximum(hi[ok] - v[ok], 0)], fmt=MARKERS[gi % len(MARKERS)],
                        color=PALETTE[gi % len(PALETTE)], capsize=2, lw=1, ms=5, label=_t(g))
        if metric == "fmr":
            vals = r.loc[r["metric"] == "fmr", "rate"].to_numpy(float)
            if np.nanmin(vals, initial=np.inf) > 0:
                from matplotlib.ticker import LogFormatterSciNotation

                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
            else:
                ax.set_yscale("symlog", linthresh=1e-4)
            target = result.provenance.get("settings", {}).get("target_fmr")
            if target:
                ax.axhline(float(target), color="#555", ls=(0, (4, 2)), lw=1)
        ax.set_xticks(x, [m.replace("_", " ") for m in methods], fontsize=8, rotation=15)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False, loc="best")
    return fig


def _context(result) -> dict[str, Any]:
    prov = dict(result.provenance or {})
    r = result.rates
    methods = list(dict.fromkeys(r["method"]))
    groups = sorted(r["group"].unique())
    table = []
    for g in groups:
        row = {"group": g, "cells": []}
        for metric in ("fmr", "fnmr"):
            for m in methods:
                x = r[(r["method"] == m) & (r["group"] == g) & (r["metric"] == metric)]
                if x.empty:
                    row["cells"].append({"value": "—", "ci": "", "counts": ""})
                    continue
                x = x.iloc[0]
                row["cells"].append({"value": _fmt(x["rate"]), "ci": f"[{_fmt(x['boot_low'])}, {_fmt(x['boot_high'])}]",
                                     "counts": f"{int(x['errors'])} / {int(x['trials'])}"})
        table.append(row)
    summary = [{"method": s.method, "label": s.label, "protected": bool(s.uses_protected_attribute), "fmr": _fmt(s.fmr), "fnmr": _fmt(s.fnmr),
                "change": ("+" if float(s.fnmr_change) > 0 else "") + f"{100 * float(s.fnmr_change):.2f} points" if pd.notna(s.fnmr_change) else "—",
                "fmr_ratio": _fmt(s.fmr_max_min), "fnmr_ratio": _fmt(s.fnmr_max_min), "fmr_worst": s.fmr_max_group, "fnmr_worst": s.fnmr_max_group}
               for s in result.summary.itertuples(index=False)]
    fig = before_after_plot(result)
    settings = prov.get("settings", {})
    backend = prov.get("backend", {})
    return {"title": result.title, "tool_version": prov.get("tool_version", ""), "created": prov.get("created", ""),
            "dataset_label": str((prov.get("dataset") or {}).get("title", "")),
            "backend_label": f"{backend.get('backend', '')}:{backend.get('model', '')}", "methods": methods,
            "groups": groups, "table": table, "summary": summary, "settings": settings, "grouping": " × ".join(prov.get("grouping", [])),
            "plot": {"uri": figure_to_data_uri(fig, dpi=FIGURE_DPI), "alt": "Per-group FMR and FNMR for each method with intervals",
                       "caption": "Per-group FMR (left, same-group impostors; dashed: the target) and FNMR (right) on held-out people, "
                                  "for each method; whiskers are people-level 95% intervals (people resampled, impostor pairs weighted w_i·w_j)."},
            "warnings": list(result.warnings), "people": prov.get("subjects"), "images": prov.get("images_acquired"),
            "provenance": json.dumps(prov, indent=1, default=str)}


def render_mitigation_html(result) -> str:
    """The mitigation report as one HTML page."""
    return _environment().get_template("mitigation.html.j2").render(**_context(result))


def write_mitigation_report(result, folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/index.html`` atomically."""
    return _write_index(render_mitigation_html(result), folder)
