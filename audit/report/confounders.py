"""The report's "Covariates and data quality" section, from an :class:`~audit.results.AuditResult` alone.

View objects (plain strings) for ``templates/_confounders.html.j2``: each covariate's composition
by group and its balance, crude and adjusted ratios with their intervals, the strata rates, and the
lists of duplicate images and wrong faces. ``None`` when the result has none of these tables.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

__all__ = ["confounder_section"]

#: Rows of a list shown in the page (the full list is in the CSV tables).
MAX_LIST_ROWS = 200


def _table(result: Any, name: str) -> pd.DataFrame:
    df = getattr(result, name, None)
    return df if isinstance(df, pd.DataFrame) else pd.DataFrame()


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _times(x: float) -> str:
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞"
    return f"{x:.2g}" if x < 10 else f"{x:,.0f}"


def _ratio(v: Any, lo: Any, hi: Any) -> str:
    r = _f(v)
    return "—" if math.isnan(r) else f"{_times(r)}× ({_times(_f(lo))}–{_times(_f(hi))}×)"


def _dist(v: Any) -> str:
    x = _f(v)
    return "—" if math.isnan(x) else f"{x:.3g}"


def _covariates(result: Any, grouping: str) -> dict[str, Any] | None:
    comp = _table(result, "covariates")
    comp = comp[comp["grouping"] == grouping] if not comp.empty else comp
    if comp.empty:
        return None
    strata = list(dict.fromkeys(comp["stratum"].astype(str)))
    groups = list(dict.fromkeys(comp["group"].astype(str)))
    cell = {(str(r.group), str(r.stratum)): r for r in comp.itertuples(index=False)}
    rows = []
    for g in groups:
        vals = []
        for s in strata:
            r = cell.get((g, s))
            vals.append("" if r is None else f"{int(r.people)} ({_f(r.share):.0%})")
        rows.append({"group": g, "cells": vals})
    bal = _table(result, "balance")
    bal = bal[bal["grouping"] == grouping] if not bal.empty else bal
    notes = []
    for r in bal.itertuples(index=False):
        if bool(r.material):
            notes.append(f"{r.group} against {r.reference}: standardised difference {_f(r.max_std_difference):+.2f} in {r.stratum}")
    v = _f(bal["cramers_v"].iloc[0]) if not bal.empty else math.nan
    return {"covariate": str(comp["covariate"].iloc[0]), "strata": strata, "rows": rows, "material": notes,
            "cramers_v": "—" if math.isnan(v) else f"{v:.2f}"}


def _adjusted(result: Any, grouping: str) -> list[dict[str, str]]:
    adj = _table(result, "adjusted")
    adj = adj[adj["grouping"] == grouping] if not adj.empty else adj
    order = {t.name: i for i, t in enumerate(getattr(result, "thresholds", ()))}
    rows = []
    for r in sorted(adj.itertuples(index=False), key=lambda r: (order.get(str(r.threshold_name), len(order)), str(r.metric) != "fmr")):
        if math.isnan(_f(r.crude)) and math.isnan(_f(r.adjusted)):
            continue  # no errors on either side: nothing to compare (the row stays in tables/adjusted.csv)
        rows.append({
            "threshold": str(r.threshold_name), "metric": str(r.metric).upper(), "group": str(r.group), "reference": str(r.reference),
            "crude": _ratio(r.crude, r.crude_low, r.crude_high), "adjusted": _ratio(r.adjusted, r.adjusted_low, r.adjusted_high),
            "verdict": ("Difference shown" if bool(r.adjusted_shown) else "No difference shown")
                       + (" (crude: shown)" if bool(r.crude_shown) and not bool(r.adjusted_shown) else ""),
            "strata": str(int(_f(r.strata_used))) if not math.isnan(_f(r.strata_used)) else "—",
            "missing": str(r.strata_missing or ""),
        })
    return rows


def _lists(result: Any) -> dict[str, Any]:
    dups = _table(result, "duplicates")
    wrong = _table(result, "wrong_faces")
    dq: Mapping = (getattr(result, "provenance", None) or {}).get("data_quality") or {}
    return {
        "duplicates": [{"kind": str(r.kind), "scope": str(r.scope), "a": str(r.sample_a), "b": str(r.sample_b),
                        "subjects": f"{r.subject_a} / {r.subject_b}", "distance": _dist(r.distance),
                        "excluded": "left out" if bool(r.excluded) else "kept"} for r in dups.head(MAX_LIST_ROWS).itertuples(index=False)],
        "duplicates_total": len(dups),
        "wrong": [{"sample": str(r.sample_id), "subject": str(r.subject), "reason": str(r.reason),
                   "nearest": str(r.nearest_other_subject or "—"), "own": _dist(r.own_distance), "other": _dist(r.nearest_other_distance)}
                  for r in wrong.head(MAX_LIST_ROWS).itertuples(index=False)],
        "wrong_total": len(wrong),
        "policy": str(dq.get("duplicates_policy", "")),
        "bound": dq.get("near_duplicate_bound"),
        "excluded": dq.get("images_excluded"),
        "checked": bool(dq),
    }


def confounder_section(result: Any) -> dict[str, Any] | None:
    """The view of the section, or ``None`` when the result has no covariate or data-quality tables."""
    prov = getattr(result, "provenance", None) or {}
    lists = _lists(result)
    groupings = []
    for g in getattr(result, "groupings", ()):
        cov = _covariates(result, g)
        adj = _adjusted(result, g)
        if cov or adj:
            groupings.append({"grouping": g, "label": g.replace("+", " × "), "covariates": cov, "adjusted": adj})
    if not groupings and not lists["checked"] and not lists["duplicates"] and not lists["wrong"]:
        return None
    return {"adjust_for": " + ".join(prov.get("adjust_for") or []), "groupings": groupings, **lists, "max_rows": MAX_LIST_ROWS}
