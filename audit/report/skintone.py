"""The HTML report of ``face-audit skintone``: measured skin-tone bins against self-reported labels.

compute → structure → render, as the other reports: view objects here, layout in
``templates/skintone.html.j2`` (autoescaped), the figure a matplotlib ``Figure`` inlined as PNG.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..skintone.measure import ITA_CATEGORIES
from .classify import SKIN_TONE_CAVEATS
from .html import FIGURE_DPI, _environment, _write_index
from .plots import PALETTE, _new_figure, _t, figure_to_data_uri

__all__ = ["ita_strip_plot", "render_skintone_html", "write_skintone_report"]


def ita_strip_plot(people: pd.DataFrame, label: str) -> Any:
    """Each person's median ITA (dots, jittered) by a self-reported label, with the ITA category bounds.

    Returns
    -------
    matplotlib.figure.Figure
    """
    p = people[np.isfinite(pd.to_numeric(people["skin_ita"], errors="coerce"))]
    groups = sorted(p[label].astype(str).unique())
    fig = _new_figure(6.4, 1.0 + 0.45 * max(1, len(groups)))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, g in enumerate(groups):
        v = p.loc[p[label].astype(str) == g, "skin_ita"].to_numpy(float)
        y = len(groups) - 1 - i + rng.uniform(-0.18, 0.18, size=v.size)
        ax.scatter(v, y, s=14, color=PALETTE[i % len(PALETTE)], alpha=0.8, linewidths=0)
    for lower, lab in ITA_CATEGORIES[:-1]:
        ax.axvline(lower, color="#888", lw=0.8, ls=(0, (3, 2)))
    ax.set_yticks(range(len(groups))[::-1], [_t(g) for g in groups], fontsize=8)
    ax.set_xlabel("person's ITA (degrees; higher is lighter). Dashed: category bounds 55, 41, 28, 10, −30")
    ax.grid(axis="x", alpha=0.25)
    return fig


def _context(title: str, people: pd.DataFrame, images: pd.DataFrame, crosstabs: pd.DataFrame,
             compare: Sequence[str], provenance: Mapping[str, Any]) -> dict[str, Any]:
    tabs = []
    for col in compare:
        for bin_col in ("skin_tone", "skin_tone_binary", "skin_monk"):
            ct = crosstabs[(crosstabs["label_column"] == col) & (crosstabs["bin_column"] == bin_col)]
            if ct.empty:
                continue
            bins = sorted(ct["bin"].unique(), key=lambda b: (b == "not measured", int(b.split()[1]) if b.startswith("Monk ") else 0, b))
            labels = sorted(ct["label"].unique())
            m = ct.pivot(index="bin", columns="label", values="people").reindex(index=bins, columns=labels).fillna(0).astype(int)
            tot = m.sum(axis=0)
            tabs.append({"bin_col": bin_col, "label": col, "labels": labels,
                         "rows": [{"bin": b, "cells": [f"{int(m.loc[b, l])}" + (f" ({100 * m.loc[b, l] / tot[l]:.0f}%)" if tot[l] else "") for l in labels],
                                   "total": int(m.loc[b].sum())} for b in bins],
                         "totals": [int(tot[l]) for l in labels]})
    figures = []
    for col in compare:
        fig = ita_strip_plot(people, col)
        figures.append({"uri": figure_to_data_uri(fig, dpi=FIGURE_DPI), "alt": f"Strip plot of each person's ITA by {col}",
                        "caption": f"Each dot is one person's ITA (median over their images), by self-reported {col}."})
    multi = people[people["skin_images"] > 1]
    consistency = None
    if len(multi):
        consistency = {"people": int(len(multi)), "all_same": int((multi["skin_consistency"] == 1).sum()),
                       "spread_median": f"{multi['skin_ita_spread'].median():.1f}°",
                       "spread_p90": f"{multi['skin_ita_spread'].quantile(0.9):.1f}°"}
    status = images.groupby("status").size().to_dict()
    by_group = []
    for col in compare:
        g = images.groupby(col)["status"].agg(lambda s: f"{int((s != 'ok').sum())} / {len(s)}")
        by_group.append({"label": col, "rows": [{"group": str(k), "failed": v} for k, v in g.items()]})
    method = provenance.get("method", {})
    return {"title": title, "tool_version": provenance.get("tool_version", ""), "created": provenance.get("created", ""),
            "dataset_label": str((provenance.get("dataset") or {}).get("title", "")), "caveats": SKIN_TONE_CAVEATS,
            "tabs": tabs, "figures": figures, "consistency": consistency,
            "status": [{"status": k, "images": int(v)} for k, v in sorted(status.items())], "by_group": by_group,
            "method": [{"label": str(k).replace("_", " ").capitalize(), "text": str(v), "href": "", "title": ""} for k, v in method.items()],
            "categories": [{"label": lab, "range": (f"> {lower:g}°" if i == 0 else f"({lower:g}°, {ITA_CATEGORIES[i - 1][0]:g}°]" if math.isfinite(lower) else f"≤ {ITA_CATEGORIES[i - 1][0]:g}°")}
                           for i, (lower, lab) in enumerate(ITA_CATEGORIES)],
            "provenance": json.dumps(dict(provenance), indent=1, default=str)}


def render_skintone_html(title: str, people: pd.DataFrame, images: pd.DataFrame, crosstabs: pd.DataFrame,
                         compare: Sequence[str], provenance: Mapping[str, Any]) -> str:
    """The skin-tone report as one HTML page."""
    return _environment().get_template("skintone.html.j2").render(**_context(title, people, images, crosstabs, compare, provenance))


def write_skintone_report(title: str, people: pd.DataFrame, images: pd.DataFrame, crosstabs: pd.DataFrame,
                          compare: Sequence[str], provenance: Mapping[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/index.html`` atomically."""
    return _write_index(render_skintone_html(title, people, images, crosstabs, compare, provenance), folder)
