"""The self-contained HTML audit report, rendered from an :class:`~audit.verification.result.AuditResult` alone.

``render_html`` turns a result into one HTML page: the stylesheet is inline, figures are PNG
``data:`` URIs, and there is no script, no web font and no remote resource (a
Content-Security-Policy in the page forbids any), so the file can be mailed, archived or opened
offline and shows the same thing. ``write_report`` writes it atomically as ``index.html``.

What is drawn how:

- score distributions, DET curves and failure-to-acquire bars: matplotlib figures
  (:mod:`audit.report.plots`), inlined as PNG with descriptive alt text;
- cross-group FMR heat maps: HTML tables coloured on the log scale of
  :func:`~audit.report.plots.cross_fmr_matrix` (cividis) — every number is real text for screen
  readers and copy-paste, it stays crisp at any zoom, and a 14×14 matrix costs no rendering time;
- FMR/FNMR with intervals: the per-group table itself, each rate with a small CSS bar and
  whisker (hatched when insufficient). :func:`~audit.report.plots.rate_bars` and
  :func:`~audit.report.plots.fmr_fnmr_bars` draw the same as figures for notebooks.

Layout: compute → structure → render. This module turns the result's tables into plain view
objects (strings already formatted, nothing marked safe); the Jinja2 template
``templates/report.html.j2`` only lays them out, with autoescaping on for every template, since
titles, group names, labels and file names come from users.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jinja2
import pandas as pd

from ..verification.result import AuditResult
from ..results import ThresholdInfo
from .confounders import confounder_section
from . import plots
from .plots import _f, flag, fmt_count, fmt_rate, group_order
from ..findings import STATUS_LABELS, executive_summary, findings_by_grouping

__all__ = ["render_html", "write_report", "SMALL_GROUP_SUBJECTS"]

#: Groups with fewer subjects than this are listed under "Limitations".
SMALL_GROUP_SUBJECTS = 30
#: Figures are rasterised at this resolution: sharp on screen, small in the file.
FIGURE_DPI = 100
_MAX_NAMES = 8

#: Disparity summary ids (as audit.metrics.disparity names them) -> (label, what it means).
_SUMMARIES = {
    "max_min_ratio": ("max/min ratio", "highest group rate divided by the lowest; 1 is parity, ∞ when the lowest is 0."),
    "max_geomean_ratio": ("max/geomean ratio", "highest group rate divided by the geometric mean of all groups' "
                          "rates (NIST FRVT Part 3); 1 is parity."),
    "fairness_discrepancy_rate": ("FDR", "Fairness Discrepancy Rate (de Freitas Pereira & Marcel): 1 − (α × the "
                                  "largest FMR gap between groups + (1 − α) × the largest FNMR gap); 1 is fair. It "
                                  "barely moves at low FMRs, so read it beside the ratios."),
    "inequity_rate": ("IR", "Inequity Rate: (max/min ratio of FMR)^α × (max/min ratio of FNMR)^β; 1 is parity."),
    "garbe": ("GARBE", "Gini Aggregation Rate for Biometric Equitability (Howard et al.): α × the Gini "
                       "coefficient of FMR across groups + (1 − α) × that of FNMR; 0 is parity, 1 the most unequal."),
}


# ------------------------------------------------------------------------------------- helpers
@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("audit.report", "templates"),
        autoescape=True,  # every template, whatever its extension (.html.j2 included)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _summary_rank(summary: str) -> tuple[int, str]:
    """Known summaries in a fixed order (max/min, max/geomean, FDR, IR, GARBE), then the others."""
    known = list(_SUMMARIES)
    key = summary.lower()
    return (known.index(key) if key in known else len(known), key)


def _label(grouping: str) -> str:
    return " × ".join(grouping.split("+"))


def _short(digest: object, n: int = 12) -> str:
    s = str(digest or "")
    return s if len(s) <= n else s[:n] + "…"


def _link(text: object) -> dict[str, str]:
    """A value that may be a web address: linked only when it is plainly http(s) (never
    ``javascript:``); the page itself never fetches it."""
    s = "" if text is None else str(text).strip()
    href = s if s.lower().startswith(("https://", "http://")) and not any(c.isspace() for c in s) else ""
    return {"text": s, "href": href}


def _plain(v: Any) -> Any:
    """A provenance value as it reads after a JSON round trip (tuples → lists, NaN → "NaN")."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


def _text(v: Any) -> str:
    v = _plain(v)
    if v is None:
        return "—"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=False)
    return str(v)


def _opt(v: Any, missing: str = "—") -> str:
    """An optional text cell: None, NaN and "" read as ``missing``."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or str(v) == "":
        return missing
    return str(v)


def _names(items: list[str]) -> str:
    if len(items) <= _MAX_NAMES:
        return ", ".join(items)
    return ", ".join(items[:_MAX_NAMES]) + f" and {len(items) - _MAX_NAMES} more"


def _sub(df: pd.DataFrame, **eq: object) -> pd.DataFrame:
    return plots._rows(df, **eq)


def _threshold_value(v: object) -> str:
    x = _f(v)
    return f"{x:.4g}" if math.isfinite(x) else fmt_rate(x)


def _needed(t: ThresholdInfo) -> str | None:
    need = plots.needed_impostors(t)
    return fmt_count(need) if need is not None else None


def _figure(fig: Any, alt: str, caption: str) -> dict[str, str]:
    return {"uri": plots.figure_to_data_uri(fig, dpi=FIGURE_DPI), "alt": alt, "caption": caption}


# ---------------------------------------------------------------------------------- view model
def _rate_cell(row: Any, metric: str) -> dict[str, Any]:
    if row is None:
        return {"value": "—", "ci": "", "counts": "", "flag": False, "note": "not computed"}
    trials, errors = _f(row.trials), _f(row.errors)
    counts = f"{fmt_count(errors)} / {fmt_count(trials)}"
    if not trials > 0:
        what = "mated" if metric == "fnmr" else "impostor"
        return {"value": "n/a", "ci": "", "counts": counts, "flag": flag(row.insufficient),
                "note": f"no {what} comparisons"}
    lo, hi = _f(row.ci_low), _f(row.ci_high)
    ci = f"({fmt_rate(lo)}–{fmt_rate(hi)})" if math.isfinite(lo) and math.isfinite(hi) else ""
    blo, bhi = _f(getattr(row, "boot_low", math.nan)), _f(getattr(row, "boot_high", math.nan))
    # a bootstrap collapses to a point when no (or every) comparison errs: the independence-based one leads then
    informative = math.isfinite(blo) and math.isfinite(bhi) and 0 < errors < trials
    note = ""
    if informative:  # lead with the people-level interval; the binomial one beside it, labelled
        note = f"{ci[1:-1]} if comparisons were independent" if ci else ""
        ci = f"({fmt_rate(blo)}–{fmt_rate(bhi)})"
        deff = _f(getattr(row, "design_effect", math.nan))
        if math.isfinite(deff):
            note += f"; design effect {deff:.1f}"
    return {"value": fmt_rate(row.value), "ci": ci, "counts": counts, "flag": flag(row.insufficient), "note": note,
            "people": informative}


def _bar(row: Any, top: float) -> dict[str, str] | None:
    """Positions (CSS percentages) of a rate's bar and its 95% whisker on a 0..top scale."""
    v, lo, hi = _f(row.value), _f(row.ci_low), _f(row.ci_high)
    if not (_f(row.trials) > 0 and math.isfinite(v) and top > 0):
        return None

    def pct(x: float) -> float:
        return min(100.0, max(0.0, 100.0 * x / top))

    bar = {"fill": f"{pct(v):.1f}%", "lo": "", "width": ""}
    if math.isfinite(lo) and math.isfinite(hi):
        bar["lo"], bar["width"] = f"{pct(lo):.1f}%", f"{max(pct(hi) - pct(lo), 0.3):.1f}%"
    return bar


def _tested(result: AuditResult) -> dict[str, Any]:
    prov = result.provenance or {}
    backend = prov.get("backend") or {}
    dataset = prov.get("dataset") or {}
    protocol = prov.get("protocol") or {}
    if not isinstance(backend, Mapping):
        backend = {"backend": backend}
    if not isinstance(dataset, Mapping):
        dataset = {"title": dataset}
    if not isinstance(protocol, Mapping):
        protocol = {"protocol": protocol}

    def item(label: str, value: Any, *, full: str = "", link: bool = False) -> dict[str, str]:
        d = _link(value) if link else {"text": _text(value), "href": ""}
        d.update(label=label, title=full)
        return d

    b_items = [item("Backend", backend.get("backend")), item("Model", backend.get("model")),
               item("Version", backend.get("version"))]
    sha = str(backend.get("weights_sha256") or "")
    b_items.append(item("Weights sha256", _short(sha) if sha else None, full=sha))
    for key, label in (("metric", "Score"), ("dim", "Embedding size")):
        if key in backend:
            b_items.append(item(label, backend.get(key)))
    if backend.get("default_threshold") is not None:
        src = backend.get("default_threshold_source")
        b_items.append(item("Library's default threshold", f"{_text(backend.get('default_threshold'))}"
                                                          + (f" ({_text(src)})" if src else "")))
    if backend.get("options"):
        b_items.append(item("Options", backend.get("options")))
    if backend.get("fingerprint"):
        b_items.append(item("Fingerprint", _short(backend.get("fingerprint")), full=str(backend.get("fingerprint"))))

    d_items = [item("Dataset", dataset.get("title") or dataset.get("name"))]
    if dataset.get("name") and dataset.get("title"):
        d_items.append(item("Manifest name", dataset.get("name")))
    d_items.append(item("Licence", dataset.get("licence")))
    if dataset.get("licence_url"):
        d_items.append(item("Licence text", dataset.get("licence_url"), link=True))
    d_items.append(item("Citation", dataset.get("citation")))
    if dataset.get("homepage"):
        d_items.append(item("Homepage", dataset.get("homepage"), link=True))
    d_items.append(item("Label source", dataset.get("label_source") or "not recorded"))
    if dataset.get("manifest_sha256"):
        msha = str(dataset.get("manifest_sha256"))
        d_items.append(item("Manifest sha256", _short(msha), full=msha))

    mated = _first(protocol, "mated_comparisons", "mated", "n_mated")
    impostor = _first(protocol, "impostor_comparisons", "impostors", "impostor", "n_impostor")
    if impostor is None and result.thresholds:
        impostor = result.thresholds[0].impostors
    if mated is None and result.groupings and result.thresholds:
        fnmr = _sub(result.rates, grouping=result.groupings[0], threshold_name=result.thresholds[0].name, metric="fnmr")
        if not fnmr.empty:
            mated = float(pd.to_numeric(fnmr["trials"], errors="coerce").fillna(0).sum())
    p_items = [item("Mated comparisons", fmt_count(mated) if mated is not None else None),
               item("Impostor comparisons", fmt_count(impostor) if impostor is not None else None)]
    used = {"mated_comparisons", "mated", "n_mated", "impostor_comparisons", "impostors", "impostor", "n_impostor"}
    p_items += [item("Interval per rate", f"95% {CI_NAMES.get(str(v).lower(), _text(v))}") if k == "interval"
                else item(str(k).replace("_", " ").capitalize(), v) for k, v in protocol.items() if k not in used]
    if not result.samples.empty:
        status = result.samples["status"].astype(str).value_counts(sort=False)
        if len(status):
            p_items.append(item("Images by status", ", ".join(f"{k} {fmt_count(v)}" for k, v in status.items())))

    thresholds = []
    for t in result.thresholds:
        thresholds.append({
            "name": t.name, "kind": str(t.kind).replace("_", " "),
            "target": fmt_rate(t.target_fmr) if t.target_fmr is not None else "—",
            "achieved": fmt_rate(t.achieved_fmr),
            "counts": f"{fmt_count(t.false_matches)} / {fmt_count(t.impostors)}",
            "fnmr": fmt_rate(t.achieved_fnmr),
            "value": _threshold_value(t.value), "native": _threshold_value(t.native_value),
            "insufficient": flag(t.insufficient), "needed": _needed(t),
        })
    return {"backend": b_items, "dataset": d_items, "protocol": p_items, "thresholds": thresholds}


#: Single-rate interval methods (the tables' ``ci_method`` values) as the report names them.
CI_NAMES = {"wilson": "Wilson", "clopper-pearson": "Clopper–Pearson (exact)",
            "wilson (pairs assumed independent)": "Wilson (pairs assumed independent: no identities given)",
            "clopper-pearson (pairs assumed independent)": "Clopper–Pearson (pairs assumed independent: no identities given)"}


def _ci_name(*tables: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> str:
    """How the report names the interval method behind these tables' ``ci_low``/``ci_high``: from
    their ``ci_method`` column, else ``provenance["protocol"]["interval"]``, else Wilson (the only
    method of results made before there was a choice)."""
    methods: list[str] = []
    for df in tables:
        if "ci_method" in df.columns:
            methods += [m for m in pd.unique(df["ci_method"].dropna().astype(str).str.lower()) if m and m not in methods]
    if not methods:
        protocol = (provenance or {}).get("protocol")
        m = protocol.get("interval") if isinstance(protocol, Mapping) else None
        methods = [str(m).lower()] if m else ["wilson"]
    return " and ".join(CI_NAMES.get(m, m) for m in methods)


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        v = d.get(k)
        if v is not None and not isinstance(v, (Mapping, list, tuple)):
            return v
    return None


def _composition(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for grouping in result.groupings:
        df = _sub(result.composition, grouping=grouping)
        if df.empty:
            continue
        rows = [{"group": str(g), "subjects": fmt_count(s), "images": fmt_count(i)}
                for g, s, i in zip(df["group"], df["subjects"], df["images"])]
        out.append({
            "label": _label(grouping), "rows": rows,
            "subjects": fmt_count(pd.to_numeric(df["subjects"], errors="coerce").sum()),
            "images": fmt_count(pd.to_numeric(df["images"], errors="coerce").sum()),
        })
    return out


def _fta(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for grouping in result.groupings:
        df = _sub(result.fta, grouping=grouping)
        if df.empty:
            continue
        by = {str(r.group): r for r in df.itertuples(index=False)}
        rows, desc = [], []
        for g in group_order(result, grouping):
            r = by.get(g)
            if r is None:
                continue
            attempts = _f(r.attempts)
            lo, hi = _f(r.ci_low), _f(r.ci_high)
            value = fmt_rate(r.value) if attempts > 0 else "n/a"
            rows.append({"group": g, "value": value,
                         "ci": f"({fmt_rate(lo)}–{fmt_rate(hi)})" if math.isfinite(lo) and math.isfinite(hi) else "",
                         "counts": f"{fmt_count(r.failures)} / {fmt_count(attempts)}"})
            desc.append(f"{g} {value} ({fmt_count(r.failures)}/{fmt_count(attempts)})")
        fig = _figure(
            plots.fta_bars(result, grouping),
            alt=f"Bar chart of the failure-to-acquire rate by {_label(grouping)} with 95% intervals: "
                + _names(desc) + ". The same numbers are in the table.",
            caption=f"Failure to acquire by {_label(grouping)}: images for which the backend produced no "
                    "embedding (no face, several faces, unreadable, error), with 95% intervals.",
        )
        out.append({"label": _label(grouping), "rows": rows, "figure": fig})
    return out


def _boot_ci(r: Any) -> str:
    """" (a–b)" for a disparity row with a subject-bootstrap interval, else ""."""
    lo, hi = _f(getattr(r, "ci_low", math.nan)), _f(getattr(r, "ci_high", math.nan))
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return f" ({fmt_rate(lo)}–{fmt_rate(hi)})"


def _rate_rows(groups: list[str], names: list[str], lookup: Mapping, scale: Mapping, metrics: tuple[str, str],
               cell_fn) -> list[dict[str, Any]]:
    """The per-group rate table: one row per group, per threshold a cell per metric (``cell_fn``'s
    text, interval and flag, plus an in-cell bar on that column's scale). Shared with the 1:N report."""
    rows = []
    for g in groups:
        cells = []
        for t in names:
            cell = {}
            for m in metrics:
                r = lookup.get((g, t, m))
                c = cell_fn(r, m)
                c["bar"] = _bar(r, scale.get((t, m), 0.0)) if r is not None else None
                cell[m] = c
            cells.append(cell)
        rows.append({"group": g, "cells": cells})
    return rows


def _grouping_section(result: AuditResult, index: int, grouping: str) -> dict[str, Any]:
    label = _label(grouping)
    rates = _sub(result.rates, grouping=grouping)
    names = [t.name for t in result.thresholds]
    lookup: dict[tuple[str, str, str], Any] = {}
    for r in rates.itertuples(index=False):
        lookup.setdefault((str(r.group), str(r.threshold_name), str(r.metric).lower()), r)
    groups = [g for g in group_order(result, grouping) if any((g, t, m) in lookup for t in names for m in ("fmr", "fnmr"))]
    # in-cell bars: each (threshold, metric) column on its own linear scale, up to its largest bound
    scale: dict[tuple[str, str], float] = {}
    for (g, t, m), r in lookup.items():
        if _f(r.trials) > 0:
            top = max((x for x in (_f(r.value), _f(r.ci_high)) if math.isfinite(x)), default=0.0)
            scale[(t, m)] = max(scale.get((t, m), 0.0), top)
    rows = _rate_rows(groups, names, lookup, scale, ("fmr", "fnmr"), _rate_cell)
    any_flag = any(c[m]["flag"] for r in rows for c in r["cells"] for m in ("fmr", "fnmr"))
    needed = [{"name": t.name, "needed": _needed(t)} for t in result.thresholds if _needed(t)]

    figures: list[dict[str, str]] = []
    thr_text = ", ".join(f"{t.name} ({_threshold_value(t.value)})" for t in result.thresholds)
    hist_groups = [g for g in group_order(result, grouping)
                   if g in set(_sub(result.score_hist, grouping=grouping)["group"].astype(str))]
    if hist_groups:
        figures.append(_figure(
            plots.score_distributions(result, grouping),
            alt=f"Histograms of similarity scores, one panel per {label} group ({_names(hist_groups)}): mated "
                f"comparisons as a solid line, impostor comparisons dashed, each as its share of that kind's "
                f"comparisons per bin on a log scale, with dotted vertical lines at the thresholds {thr_text}.",
            caption=f"Score distributions by {label}. Each kind is scaled to its own total, so mated and impostor "
                    "curves are comparable even when impostors outnumber mated comparisons by hundreds to one; "
                    "a pair matches when its score is at or above a threshold.",
        ))
    det_df = _sub(result.det, grouping=grouping)
    if not det_df.empty:
        figures.append(_figure(
            plots.det_curves(result, grouping),
            alt=f"DET curves: FNMR against same-group FMR on a log scale, one line per {label} group "
                f"({_names([g for g in group_order(result, grouping) if g in set(det_df['group'].astype(str))])}), "
                "each with its own line style and marker; large outlined markers show each group's operating point "
                f"at the thresholds {thr_text}, and vertical dotted lines the overall FMR at each threshold.",
            caption=f"DET curves by {label}. Lower is better; a group whose operating point lies to the right of "
                    "the dotted line has more false matches than the threshold was set for.",
        ))

    heat_thresholds = [t for t in result.thresholds if t.kind == "target_fmr"] or list(result.thresholds)
    heatmaps = []
    for t in heat_thresholds:
        cdf = _sub(result.cross_fmr, grouping=grouping, threshold_name=t.name)
        if cdf.empty:
            continue
        heatmaps.append(_heatmap(result, grouping, t))

    disparity = []
    ddf = _sub(result.disparity, grouping=grouping)
    order = {n: i for i, n in enumerate(names)}
    records = sorted(ddf.itertuples(index=False),
                     key=lambda r: (order.get(str(r.threshold_name), len(order)), str(r.metric).lower() != "fmr",
                                    str(r.metric).lower(), _summary_rank(str(r.summary))))
    helps: dict[str, str] = {}  # summary id -> help text, for the summaries present
    for r in records:
        v = _f(r.value)
        key = str(r.summary)
        name, help_text = _SUMMARIES.get(key.lower(), (key, ""))
        disparity.append({
            "threshold": str(r.threshold_name), "metric": str(r.metric).upper(), "summary": name,
            "value": (fmt_rate(v) if not math.isnan(v) else "—") + _boot_ci(r),
            "high": _opt(r.group_high), "low": _opt(r.group_low),
            "used": fmt_count(r.groups_used), "note": _opt(r.note, ""),
        })
        if help_text:
            helps[key.lower()] = help_text
    return {
        "reference": _reference_rows(result, grouping, order),
        "anchor": f"grouping-{index + 1}", "id": grouping, "label": label,
        "thresholds": [{"name": t.name, "value": _threshold_value(t.value)} for t in result.thresholds],
        "rows": rows, "any_insufficient": any_flag, "needed": needed,
        "interval": _ci_name(rates, provenance=result.provenance),
        "figures": figures, "heatmaps": heatmaps, "directional": _two_sided(result),
        "disparity": disparity,
        "summary_help": [(label, text + _weights_text(result, key)) for key, (label, text) in _SUMMARIES.items() if key in helps],
    }


def _reference_rows(result: AuditResult, grouping: str, order: Mapping[str, int]) -> list[dict[str, str]]:
    """Each group against the reference group: ratio and difference with simultaneous intervals."""
    ref = getattr(result, "reference", None)
    if not isinstance(ref, pd.DataFrame) or ref.empty:
        return []
    rows = []
    sub = _sub(ref, grouping=grouping)
    for r in sorted(sub.itertuples(index=False), key=lambda r: (order.get(str(r.threshold_name), len(order)), str(r.metric) != "fmr")):
        ratio, lo, hi = _f(r.ratio), _f(r.ratio_low), _f(r.ratio_high)
        d, dlo, dhi = _f(r.difference), _f(r.diff_low), _f(r.diff_high)
        rows.append({
            "threshold": str(r.threshold_name), "metric": str(r.metric).upper(), "group": str(r.group), "reference": str(r.reference),
            "ratio": f"{_times(ratio)}× ({_times(lo)}–{_times(hi)}×)",
            "difference": f"{d:+.2g} ({dlo:+.2g} to {dhi:+.2g})" if math.isfinite(d) else "—",
            "p": f"{_f(r.p_adjusted):.3g}", "verdict": "Difference shown" if bool(r.shown) else "No difference shown",
        })
    return rows


def _times(x: float) -> str:
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞"
    return f"{x:.2g}" if x < 10 else f"{x:,.0f}"


def _weights_text(result: AuditResult, summary: str) -> str:
    """The weights a joint summary was computed with (``[disparity]``), from provenance."""
    prov = result.provenance if isinstance(result.provenance, Mapping) else {}
    proto = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    w = proto.get("disparity_weights") if isinstance(proto.get("disparity_weights"), Mapping) else None
    if not w:
        return ""
    keys = {"fairness_discrepancy_rate": [("α", "fdr_alpha")], "garbe": [("α", "garbe_alpha")],
            "inequity_rate": [("α", "inequity_alpha"), ("β", "inequity_beta")]}.get(summary, [])
    parts = [f"{sym} = {w[k]:g}" for sym, k in keys if isinstance(w.get(k), (int, float))]
    return f" Weights here: {', '.join(parts)}." if parts else ""


def _two_sided(result: AuditResult) -> dict[str, str] | None:
    """The probe and reference selections of a two-sided protocol (directional cross-group
    matrices), as text; None for one set compared with itself."""
    prov = result.provenance if isinstance(result.provenance, Mapping) else {}
    proto = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    sides = proto.get("sides") if isinstance(proto.get("sides"), Mapping) else None
    if not sides:
        return None

    def text(sel: Any) -> str:
        if not isinstance(sel, Mapping):
            return str(sel)
        return ", ".join(f"{k} = {' or '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sel.items())

    return {"probe": text(sides.get("probe")), "reference": text(sides.get("reference"))}


def _heatmap(result: AuditResult, grouping: str, t: ThresholdInfo) -> dict[str, Any]:
    """The cross-group FMR matrix as an HTML table coloured like a heat map (cividis, log scale):
    real numbers a screen reader can read, crisp at any zoom, and no image to render."""
    mat = plots.cross_fmr_matrix(result, grouping, t.name)
    directional = _two_sided(result) is not None
    rows = []
    for i, a in enumerate(mat.groups):
        cells = []
        for j, b in enumerate(mat.groups):
            v, e, n = mat.fmr[i, j], mat.false_matches[i, j], mat.comparisons[i, j]
            if not (math.isfinite(n) and n > 0):
                kind, text, counts = "na", "n/a", "no comparisons"
                bg, fg = "", ""
            else:
                kind = "pos" if v > 0 else "zero"
                text, counts = fmt_rate(v), f"{fmt_count(e)}/{fmt_count(n)}"
                bg, fg = mat.colour(v)
            cells.append({"kind": kind, "text": text, "counts": counts, "bg": bg, "fg": fg, "diag": i == j,
                          "title": f"{'probe ' if directional else ''}{a} × {'reference ' if directional else ''}{b}: {text} ({counts})"})
        rows.append({"group": a, "cells": cells})
    lo, hi = math.log10(mat.vmin), math.log10(mat.vmax)

    def pos(v: float) -> str:
        return f"{100.0 * (math.log10(v) - lo) / (hi - lo):.1f}%"

    stops = ", ".join(f"{mat.colour(10 ** (lo + (hi - lo) * k / 10))[0]} {10 * k}%" for k in range(11))
    target = _f(t.target_fmr)
    return {
        "threshold": t.name, "value": _threshold_value(t.value), "groups": list(mat.groups), "rows": rows,
        "gradient": f"linear-gradient(to right, {stops})",
        "ticks": [{"pos": pos(v), "label": plots._pow10(v)} for v in mat.ticks()],
        "target": pos(target) if math.isfinite(target) and mat.vmin <= target <= mat.vmax else "",
        "summary": _heatmap_summary(mat, directional=directional),
    }


def _heatmap_summary(mat: plots.CrossFmrMatrix, *, directional: bool = False) -> str:
    """One sentence per fact a reader looks for first; ties go to the first group in report order."""
    n = len(mat.groups)
    same, cross = [], []
    for i in range(n):
        for j in range(n):
            c = mat.comparisons[i, j]
            if math.isfinite(c) and c > 0:
                item = (mat.fmr[i, j], mat.groups[i], mat.groups[j], mat.false_matches[i, j], c)
                (same if i == j else cross).append(item)

    def top(items: list) -> tuple:
        return max(items, key=lambda x: x[0] if math.isfinite(x[0]) else -1.0)  # max keeps the first of ties

    parts = []
    if same:
        v, a, _, e, c = top(same)
        parts.append(f"Highest same-group FMR: {a}, {fmt_rate(v)} ({fmt_count(e)}/{fmt_count(c)}).")
        zeros = [x[1] for x in same if x[0] == 0]
        if zeros:
            parts.append(f"No same-group false match: {_names(zeros)}.")
    if cross:
        v, a, b, e, c = top(cross)
        if v > 0:
            pair = f"probes of {a} against references of {b}" if directional else f"{a} with {b}"
            parts.append(f"Highest cross-group FMR: {pair}, {fmt_rate(v)} ({fmt_count(e)}/{fmt_count(c)}).")
        else:
            total = sum(x[4] for x in cross) if directional else sum(x[4] for x in cross) // 2
            parts.append(f"No cross-group false match (0 of {fmt_count(total)} cross-group comparisons).")
    return " ".join(parts)


def _limitations(result: AuditResult) -> list[str]:
    out: list[str] = []
    prov = result.provenance or {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    src = (dataset or {}).get("label_source")
    if src:
        out.append(f"Group labels come from this source: {_text(src)} Labels are categories assigned by that "
                   "source; they do not capture everything about how a face looks, and results speak only for "
                   "the categories used.")
    else:
        out.append("The dataset does not record where its group labels come from; treat group membership as "
                   "uncertain.")
    for t in result.thresholds:
        if flag(t.insufficient):
            need = _needed(t)
            out.append(f"Threshold {t.name} was set on {fmt_count(t.impostors)} impostor comparisons"
                       + (f", fewer than the {need} (3/FMR) needed to estimate an FMR of "
                          f"{fmt_rate(plots.fmr_basis(t))}" if need else "")
                       + f"; its achieved FMR ({fmt_rate(t.achieved_fmr)}) is only approximate.")
    total_mated = _sub(result.rates, metric="fnmr")
    if not total_mated.empty and not (pd.to_numeric(total_mated["trials"], errors="coerce").fillna(0) > 0).any():
        out.append("There are no mated comparisons (the dataset has no subject with two usable images), so FNMR "
                   "is not measured.")
    for grouping in result.groupings:
        label = _label(grouping)
        comp = _sub(result.composition, grouping=grouping)
        subjects = {str(g): _f(s) for g, s in zip(comp["group"], comp["subjects"])}
        small = [f"{g} ({fmt_count(s)})" for g, s in subjects.items() if math.isfinite(s) and 1 < s < SMALL_GROUP_SUBJECTS]
        one = [g for g, s in subjects.items() if s == 1]
        if small:
            out.append(f"By {label}: {len(small)} of {len(subjects)} groups have fewer than {SMALL_GROUP_SUBJECTS} "
                       f"subjects ({_names(small)}); their intervals are wide and their rates can change a lot with "
                       "a few people.")
        if one:
            out.append(f"By {label}: {_names(one)} {'has' if len(one) == 1 else 'have'} a single subject; "
                       "its rates describe one person, not a group, and intervals that resample subjects cannot be "
                       "computed.")
        rates = _sub(result.rates, grouping=grouping)
        order = group_order(result, grouping)
        for t in result.thresholds:
            at = _sub(rates, threshold_name=t.name, metric="fmr")
            flagged_set = {str(g) for g, f in zip(at["group"], at["insufficient"]) if flag(f)}
            flagged = [g for g in order if g in flagged_set]
            if flagged:
                need = _needed(t)
                out.append(f"At {t.name}, the FMR of {len(flagged)} of {len(at)} {label} groups rests on "
                           + (f"fewer than 3/FMR = {need} " if need else "too few ")
                           + f"same-group impostor comparisons ({_names(flagged)}); read these as indications, "
                             "not measurements.")
        fn = _sub(rates, metric="fnmr")
        if not fn.empty:
            trials: dict[str, float] = {}
            for g, n in zip(fn["group"], fn["trials"]):
                trials[str(g)] = max(trials.get(str(g), 0.0), _f(n) if math.isfinite(_f(n)) else 0.0)
            none = [g for g in order if g in trials and trials[g] <= 0]
            if none and len(none) < len(trials):
                out.append(f"By {label}: FNMR cannot be measured for {_names(none)} (no mated comparisons).")
    out.extend(str(w) for w in result.warnings)
    return out


#: How the executive summary's intervals are computed, said under the findings.
SUMMARY_METHOD = (
    "Each finding compares the group with the highest rate to the group with the lowest, at one threshold for "
    "everyone. Those two groups are picked because they are the extremes, so the ratio's 95% interval is one that "
    "holds for every pair of groups at once: from people-level intervals of every group's rate that hold "
    "simultaneously (people resampled, so comparisons that share a person are not counted as independent), or, "
    "where the audit has no people-level results, Katz's log interval (or the exact conditional one with few "
    "errors) at the Bonferroni level over the pairs of groups. \"Indication only\" marks a comparison involving a "
    "group with fewer than 3/FMR same-group impostor comparisons, counted effectively. Every group's own rate, "
    "with its interval and counts, is in the tables below; each group against the reference group is in the "
    "table of that name."
)


def _overview(result: AuditResult) -> str:
    """One sentence: what was tested on what, and how much data there was."""
    system = _backend_label(result)
    prov = result.provenance or {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    protocol = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    name = _text((dataset or {}).get("title") or (dataset or {}).get("name")) if dataset else "the dataset"
    parts = []
    if result.groupings:
        comp = _sub(result.composition, grouping=result.groupings[0])
        if not comp.empty:
            parts.append(f"{fmt_count(pd.to_numeric(comp['subjects'], errors='coerce').sum())} subjects")
    if not result.samples.empty:
        parts.append(f"{fmt_count(len(result.samples))} images")
    mated = _first(protocol or {}, "mated_comparisons", "mated", "n_mated")
    impostor = _first(protocol or {}, "impostor_comparisons", "impostors", "impostor", "n_impostor")
    if mated is not None and impostor is not None:
        parts.append(f"{fmt_count(mated)} mated and {fmt_count(impostor)} impostor comparisons")
    size = f" ({', '.join(parts)})" if parts else ""
    return (f"{system} tested on {name}{size}. There is one threshold for everyone: every group is measured at "
            "the same thresholds.")


def _backend_label(result: AuditResult) -> str:
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    return " / ".join(_text(backend.get(k)) for k in ("backend", "model") if backend.get(k)) or "The system"


def _summary(result: AuditResult) -> dict[str, Any]:
    """The executive summary's view: an overview sentence and the findings by grouping."""
    groups = []
    for grouping, items in findings_by_grouping(executive_summary(result)).items():
        groups.append({"label": _label(grouping), "findings": [
            {"status": f.status, "status_label": STATUS_LABELS[f.status], "text": f.text} for f in items]})
    return {"overview": _overview(result), "groups": groups, "method": SUMMARY_METHOD}


def _provenance(result: AuditResult) -> list[dict[str, str]]:
    items = []
    for k, v in (result.provenance or {}).items():
        pv = _plain(v)
        if isinstance(pv, (dict, list)):
            items.append({"key": str(k), "text": "", "block": json.dumps(pv, indent=2, ensure_ascii=False)})
        else:
            items.append({"key": str(k), "text": _text(pv), "block": ""})
    return items


def _context(result: AuditResult) -> dict[str, Any]:
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    backend_label = " / ".join(_text(backend.get(k)) for k in ("backend", "model") if backend.get(k)) or "—"
    return {
        "title": result.title or "Face recognition audit",
        "summary": _summary(result),
        "backend_label": backend_label,
        "dataset_label": _text(dataset.get("title") or dataset.get("name")) if dataset else "—",
        "created": _text(prov.get("created")),
        "tool_version": _text(prov.get("tool_version")),
        "schema_version": result.schema_version,
        "tested": _tested(result),
        "composition": _composition(result),
        "fta": _fta(result),
        "sections": [_grouping_section(result, i, g) for i, g in enumerate(result.groupings)],
        "limitations": _limitations(result),
        "confounders": confounder_section(result),  # covariates, adjusted ratios, duplicates (report/confounders.py)
        "provenance": _provenance(result),
        "small_group": SMALL_GROUP_SUBJECTS,
    }


# ------------------------------------------------------------------------------------ public API
def render_html(result: AuditResult, *, include_face_images: bool = False) -> str:
    """Render an audit result as one self-contained HTML page.

    Parameters
    ----------
    result : AuditResult
        The only input: the report reads nothing else (no files, no network), except the face
        thumbnails asked for with ``include_face_images``.
    include_face_images : bool, default False
        Add thumbnails of the images that failed to acquire (read from the samples' paths, at most
        :data:`MAX_FACE_IMAGES`). Off by default: faces are biometric data and a report is shared.

    Returns
    -------
    str
        The HTML document. Rendering is deterministic: the same result (or its JSON round trip)
        gives the same text.

    Examples
    --------
    >>> from audit.report import render_html  # doctest: +SKIP
    >>> html = render_html(AuditResult.from_json("results.json"))  # doctest: +SKIP
    """
    if not isinstance(result, AuditResult):
        raise plots.ReportError(f"render_html expects an AuditResult, got {type(result).__name__}; "
                                "load one with AuditResult.from_json(path).")
    context = _context(result)
    context["face_images"] = _failed_face_images(result) if include_face_images else None
    return _environment().get_template("report.html.j2").render(**context)


#: At most this many thumbnails of images that failed to acquire.
MAX_FACE_IMAGES = 24


def _failed_face_images(result: AuditResult) -> dict[str, Any]:
    """Thumbnails (96 px JPEG data URIs) of the images that failed to acquire, read from the
    samples' paths. The one place the report reads files, and only when asked to."""
    import base64
    import io

    from PIL import Image

    from ..errors import UnreadableImageError
    from ..images import read_rgb

    failed = result.samples[result.samples["status"].astype(str) != "ok"]
    label_cols = [c for c in result.samples.columns if c not in ("sample_id", "subject", "path", "status", "n_faces", "detail")]
    items = []
    for r in failed.head(MAX_FACE_IMAGES).itertuples(index=False):
        labels = ", ".join(_text(getattr(r, c)) for c in label_cols)
        caption = f"{_text(r.sample_id)} · {_text(r.status).replace('_', ' ')}" + (f" · {labels}" if labels else "")
        uri = ""
        try:
            im = Image.fromarray(read_rgb(str(r.path)))
            im.thumbnail((96, 96))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
            alt = f"Face image {_text(r.sample_id)} ({labels}), status {_text(r.status)}"
        except (UnreadableImageError, OSError, ValueError):
            alt = f"{_text(r.sample_id)}: no picture (the file cannot be read here)"
        items.append({"uri": uri, "alt": alt, "caption": caption})
    return {"thumbs": items, "total": len(failed), "more": len(failed) > len(items)}


def write_report(result: AuditResult, folder: str | os.PathLike[str], *, include_face_images: bool = False) -> Path:
    """Render ``result`` and write it to ``folder/index.html`` atomically.

    The page is written to a temporary file in ``folder`` and renamed over ``index.html``, so a
    reader never sees half a report. ``folder`` is created when missing.

    Returns
    -------
    pathlib.Path
        The path of ``index.html``.
    """
    text = render_html(result, include_face_images=include_face_images)
    return _write_index(text, folder)


def _write_index(text: str, folder: str | os.PathLike[str]) -> Path:
    """Write ``text`` to ``folder/index.html`` atomically (temporary file, fsync, rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "index.html"
    fd, tmp = tempfile.mkstemp(prefix=".index.html.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
