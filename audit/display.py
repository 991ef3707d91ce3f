"""How a 1:1 result shows itself in Jupyter: the report's own templates, small.

:func:`result_html` renders ``report/templates/notebook.html.j2`` (which imports the report's
``rate`` macro and findings list) with Jinja2, autoescape on. It reads the templates as package
data and does not import the report's Python modules (no matplotlib), so showing a result stays
fast and the layer rules hold: results -> display -> findings.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["result_html"]


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _fmt_rate(v: Any) -> str:
    x = _num(v)
    if math.isnan(x):
        return "—"
    if x == 0:
        return "0"
    s = f"{x:.3g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def _fmt_count(v: Any) -> str:
    x = _num(v)
    return f"{int(round(x)):,}" if math.isfinite(x) else "—"


def _cell(value: Any, lo: Any, hi: Any, errors: Any, trials: Any, flag: bool, what: str) -> dict[str, Any]:
    counts = f"{_fmt_count(errors)} / {_fmt_count(trials)}"
    if not _num(trials) > 0:
        return {"value": "n/a", "ci": "", "counts": counts, "flag": False, "note": f"no {what}"}
    lo_, hi_ = _num(lo), _num(hi)
    ci = f"({_fmt_rate(lo_)}–{_fmt_rate(hi_)})" if math.isfinite(lo_) and math.isfinite(hi_) else ""
    return {"value": _fmt_rate(value), "ci": ci, "counts": counts, "flag": bool(flag), "note": "", "bar": None}


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("audit", "report/templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )


def result_html(result: Any) -> str:
    """The compact HTML view of an :class:`~audit.verification.result.AuditResult`: what was tested, the
    executive summary, and FMR, FNMR and FTA of every group at the first target-FMR threshold
    (each with its 95% interval and counts; † marks too few impostor comparisons)."""
    from .findings import STATUS_LABELS, executive_summary, findings_by_grouping

    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    comp = result.composition
    allrow = comp[comp["grouping"].astype(str) == "all"]
    size = f"{int(allrow['images'].iloc[0]):,} images of {int(allrow['subjects'].iloc[0]):,} people" if len(allrow) else ""
    rows, caption = [], "No rates."
    if result.thresholds and not result.rates.empty:
        t0 = ([t for t in result.thresholds if t.kind == "target_fmr"] or list(result.thresholds))[0]
        caption = (f"Rates at {t0.name} (similarity ≥ {t0.value:.4g}), 95% intervals and errors / comparisons; "
                   "† too few same-group impostor comparisons (fewer than 3/FMR)")
        for grouping in ["all", *result.groupings]:
            df = result.rates_frame(grouping, t0.name)
            for r in df.itertuples(index=False):
                rows.append({"grouping": "overall" if grouping == "all" else grouping.replace("+", " × "), "group": r.group, "cells": [
                    _cell(r.fmr, r.fmr_ci_low, r.fmr_ci_high, r.false_matches, r.impostors, r.fmr_insufficient, "impostor comparisons"),
                    _cell(r.fnmr, r.fnmr_ci_low, r.fnmr_ci_high, r.false_non_matches, r.mated, False, "mated pairs"),
                    _cell(r.fta, r.fta_ci_low, r.fta_ci_high, r.failures, r.attempts, False, "images"),
                ]})
    from .verdict import verdict

    v = verdict(result)
    key = [{"label": f"Key findings: each group against the reference group ({v.reference})", "findings": [
        {"status": "difference" if f.shown else "indication" if f.status == "too_few" else "no_errors",
         "status_label": f.status_words, "text": f"{f.headline} {f.text}"} for f in v.findings]}] if v.findings else []
    found = executive_summary(result)
    summary = key + [{"label": g.replace("+", " × "), "findings": [
        {"status": f.status, "status_label": STATUS_LABELS[f.status], "text": f.text} for f in items]}
        for g, items in findings_by_grouping(found).items()]
    return _environment().get_template("notebook.html.j2").render(
        title=result.title or "Face recognition audit",
        system=" / ".join(str(backend[k]) for k in ("backend", "model") if backend.get(k)) or "The system",
        dataset=str(dataset.get("title") or dataset.get("name") or "the data"),
        size=size,
        thresholds=", ".join(t.name for t in result.thresholds) or "none",
        verdict=v.text, summary=summary, n_findings=len(found) + len(v.findings), open_findings=True,
        caption=caption, headers=["FMR", "FNMR", "FTA"], rows=rows,
        warnings=" ".join(f"Note: {w}" for w in result.warnings),
    )
