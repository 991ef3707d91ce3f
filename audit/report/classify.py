"""The self-contained HTML report of an attribute-classifier audit (``face-audit classify``).

compute → structure → render: this module turns a :class:`~audit.attributes.result.ClassifierResult`
into plain view objects (strings already formatted, nothing marked safe); the Jinja2 template
``templates/classify.html.j2`` lays them out with autoescaping on, reusing the shared stylesheet
and macros. Figures are matplotlib ``Figure`` objects inlined as PNG ``data:`` URIs; the page
loads nothing from anywhere.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..attributes.result import ClassifierResult
from .html import FIGURE_DPI, _environment, _write_index
from .plots import PALETTE, ReportError, _new_figure, _t, figure_to_data_uri

__all__ = ["render_classify_html", "write_classify_report", "error_rate_bars", "SKIN_TONE_CAVEATS"]

#: What the report says wherever a measured skin tone is shown.
SKIN_TONE_CAVEATS = (
    "Skin tone here is measured from pixels (the Individual Typology Angle of a landmark-masked skin region after a "
    "grey-world colour correction), not judged by a dermatologist or reported by the person. Lighting, white balance, "
    "exposure and make-up move it: image-derived lightness is a noisy stand-in for constitutive skin colour "
    "(Howard et al. 2021, 'Reliability and validity of image-based and self-reported skin phenotype metrics'). "
    "Read a bin as 'photographed lighter/darker', and the cross-tabulation against self-reported ethnicity as a "
    "check on the measurement, not a statement about anyone's ethnicity."
)


def _pct(v: Any, digits: int = 1) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(f) else f"{100 * f:.{digits}f}%"


def _ci(lo: Any, hi: Any) -> str:
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(lo) or math.isnan(hi) else f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def _figure(fig: Any, alt: str, caption: str) -> dict[str, str]:
    return {"uri": figure_to_data_uri(fig, dpi=FIGURE_DPI), "alt": alt, "caption": caption}


def error_rate_bars(result: ClassifierResult, attribute: str, grouping: str) -> Any:
    """A horizontal bar per group: error rate with its 95% interval as a whisker.

    Returns
    -------
    matplotlib.figure.Figure
    """
    e = result.errors
    rows = e[(e["attribute"] == attribute) & (e["grouping"] == grouping)]
    if rows.empty:
        raise ReportError(f"no error rates for attribute {attribute!r} and grouping {grouping!r}; "
                          f"groupings: {sorted(e['grouping'].unique())}")
    rows = rows.sort_values("group", kind="stable")
    n = len(rows)
    fig = _new_figure(6.4, 0.9 + 0.32 * n)
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    rate = pd.to_numeric(rows["error_rate"], errors="coerce").to_numpy(float) * 100
    lo = pd.to_numeric(rows["ci_low"], errors="coerce").to_numpy(float) * 100
    hi = pd.to_numeric(rows["ci_high"], errors="coerce").to_numpy(float) * 100
    ax.barh(y, np.nan_to_num(rate), color=PALETTE[0], height=0.6)
    ok = ~np.isnan(lo) & ~np.isnan(hi) & ~np.isnan(rate)
    ax.errorbar(rate[ok], y[ok], xerr=[rate[ok] - lo[ok], hi[ok] - rate[ok]], fmt="none", ecolor="black", capsize=3, lw=1)
    overall = e[(e["attribute"] == attribute) & (e["grouping"] == "All")]["error_rate"]
    if len(overall) and not math.isnan(float(overall.iloc[0])):
        ax.axvline(100 * float(overall.iloc[0]), color="#555", ls=(0, (4, 2)), lw=1, label="all images")
        ax.legend(loc="lower right", frameon=False, fontsize=8)
    ax.set_yticks(y, [_t(g) for g in rows["group"]], fontsize=8)
    ax.set_xlabel(f"{_t(attribute)} error rate (%)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _error_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    top = max([float(x) for x in df["ci_high"].fillna(0)] + [float(x) for x in df["error_rate"].fillna(0)] + [1e-9])
    out = []
    for _, r in df.iterrows():
        rate = float(r["error_rate"]) if pd.notna(r["error_rate"]) else math.nan
        lo, hi = (float(r["ci_low"]), float(r["ci_high"])) if pd.notna(r["ci_low"]) and pd.notna(r["ci_high"]) else (math.nan, math.nan)
        bar = None
        if not math.isnan(rate):
            bar = {"fill": f"{100 * rate / top:.1f}%", "lo": f"{100 * lo / top:.1f}%" if not math.isnan(lo) else "0%",
                   "width": f"{100 * (hi - lo) / top:.1f}%" if not math.isnan(lo) else ""}
        out.append({
            "group": str(r["group"]), "value": _pct(rate), "ci": _ci(lo, hi), "counts": f"{int(r['errors'])} / {int(r['classified'])}",
            "note": "", "flag": bool(0 < int(r["classified"]) < 30), "bar": bar,
            "people": int(r["subjects"]), "failed": f"{int(r['failed'])} / {int(r['images'])}", "wilson": _ci(r["wilson_low"], r["wilson_high"]),
            "method": str(r["ci_method"]),
        })
    return out


def _confusions(result: ClassifierResult, attribute: str, grouping: str) -> list[dict[str, Any]]:
    c = result.confusion
    c = c[(c["attribute"] == attribute) & (c["grouping"] == grouping)]
    out = []
    for grp, g in c.groupby("group", sort=True):
        classes = list(dict.fromkeys(g["true"].astype(str)))
        m = g.pivot(index="true", columns="predicted", values="count").reindex(index=classes, columns=classes).fillna(0).astype(int)
        out.append({"group": str(grp), "classes": classes, "rows": [{"true": t, "counts": [int(v) for v in m.loc[t]]} for t in classes]})
    return out


def _intersectional(result: ClassifierResult, attribute: str) -> list[dict[str, Any]]:
    t = result.intersectional
    out = []
    for col, g in t[t["attribute"] == attribute].groupby("group_column", sort=False):
        out.append({
            "group_column": str(col),
            "headings": [str(h) for h in g["column"]],
            "accuracy": [_pct(v) for v in g["accuracy"]],
            "error": [_pct(v) for v in g["error_rate"]],
            "counts": [f"{int(e)} / {int(n)}" for e, n in zip(g["errors"], g["classified"])],
            "worst": _worst(g),
        })
    return out


def _worst(g: pd.DataFrame) -> str:
    inter = g[(g["kind"] == "intersection") & (g["classified"] >= 1)]
    if inter.empty:
        return ""
    hi = inter.loc[inter["error_rate"].idxmax()]
    lo = inter.loc[inter["error_rate"].idxmin()]
    ratio = float(hi["error_rate"]) / float(lo["error_rate"]) if float(lo["error_rate"]) > 0 else math.inf
    ratio_s = "∞ (the lowest is 0)" if math.isinf(ratio) else f"{ratio:.1f}×"
    return (f"Highest error: {hi['column']} {_pct(hi['error_rate'])} ({int(hi['errors'])} of {int(hi['classified'])}); lowest: "
            f"{lo['column']} {_pct(lo['error_rate'])} ({int(lo['errors'])} of {int(lo['classified'])}); ratio {ratio_s}.")


def _crosstab(result: ClassifierResult) -> dict[str, Any] | None:
    ct = result.crosstab
    if ct is None or ct.empty:
        return None
    rows_name, cols_name = str(ct["row_column"].iloc[0]), str(ct["column_column"].iloc[0])
    rows = sorted(ct["row"].astype(str).unique())
    cols = sorted(ct["column"].astype(str).unique())
    img = ct.pivot(index="row", columns="column", values="images").reindex(index=rows, columns=cols).fillna(0).astype(int)
    ppl = ct.pivot(index="row", columns="column", values="subjects").reindex(index=rows, columns=cols).fillna(0).astype(int)
    col_tot = img.sum(axis=0)
    body = [{"row": r, "cells": [{"images": int(img.loc[r, c]), "people": int(ppl.loc[r, c]),
                                  "share": _pct(img.loc[r, c] / col_tot[c], 0) if col_tot[c] else "—"} for c in cols],
             "total": int(img.loc[r].sum())} for r in rows]
    return {"row_name": rows_name, "col_name": cols_name, "columns": cols, "rows": body,
            "totals": [int(col_tot[c]) for c in cols], "skin": "skin" in rows_name.lower() or "skin" in cols_name.lower()}


def _items(d: Any, keys: list[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for key, label in keys:
        v = d.get(key) if isinstance(d, dict) else None
        if v in (None, "", {}, []):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{k} {str(x)[:12]}…" if len(str(x)) == 64 else f"{k}: {x}" for k, x in v.items())
        out.append({"label": label, "text": str(v), "href": "", "title": ""})
    return out


def _context(result: ClassifierResult) -> dict[str, Any]:
    prov = dict(result.provenance or {})
    source = prov.get("classifier") or {}
    dataset = prov.get("dataset") or {}
    sections = []
    for attr in result.attributes:
        e = result.errors[result.errors["attribute"] == attr]
        overall = e[e["grouping"] == "All"]
        groupings = [g for g in dict.fromkeys(e["grouping"]) if g != "All"]
        tables = []
        for g in groupings:
            rows = e[e["grouping"] == g].sort_values("group", kind="stable")
            fig = error_rate_bars(result, attr, g)
            tables.append({"label": g.replace("+", " × "), "rows": _error_rows(rows),
                           "figure": _figure(fig, f"Bar chart of {attr} error rate by {g} with 95% intervals",
                                             f"{attr} error rate by {g.replace('+', ' × ')}; whiskers are the 95% intervals of the table; dashed: all images."),
                           "confusion": _confusions(result, attr, g) if g in result.groupings else []})
        sections.append({"attribute": attr, "anchor": f"attr-{len(sections)}", "overall": _error_rows(overall),
                         "tables": tables, "intersectional": _intersectional(result, attr)})
    tested = {
        "classifier": _items(source, [("kind", "Source"), ("name", "Name"), ("model", "Model"), ("version", "Version"),
                                      ("licence", "Licence"), ("weights_sha256", "Weights sha256"), ("path", "File"), ("sha256", "File sha256"),
                                      ("options", "Options")]),
        "dataset": _items(dataset, [("title", "Dataset"), ("name", "Manifest name"), ("licence", "Licence"), ("citation", "Citation"),
                                    ("label_source", "Label source"), ("extra_labels", "Extra labels"), ("subset", "Subset")]),
    }
    methods = sorted(set(result.errors["ci_method"].astype(str)))
    return {
        "title": result.title, "tool_version": prov.get("tool_version", ""), "created": prov.get("created", ""),
        "classifier_label": str(source.get("name") or source.get("kind") or "classifier"),
        "dataset_label": str(dataset.get("title") or dataset.get("name") or "—"),
        "tested": tested, "sections": sections, "crosstab": _crosstab(result), "skin_caveats": SKIN_TONE_CAVEATS,
        "methods": methods, "warnings": list(result.warnings),
        "composition": [{"grouping": r.grouping, "group": r.group, "images": int(r.images), "people": int(r.subjects)}
                        for r in result.composition.itertuples(index=False)],
        "provenance": json.dumps(prov, indent=1, default=str),
    }


def render_classify_html(result: ClassifierResult) -> str:
    """The report as one HTML page (a string)."""
    if not isinstance(result, ClassifierResult):
        raise ReportError(f"render_classify_html expects a ClassifierResult, got {type(result).__name__}")
    return _environment().get_template("classify.html.j2").render(**_context(result))


def write_classify_report(result: ClassifierResult, folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/index.html`` atomically; returns its path."""
    return _write_index(render_classify_html(result), folder)
