"""The self-contained HTML report of a 1:N identification audit, rendered from an
:class:`~audit.identification.result.IdentificationResult` alone.

Same rules as :mod:`audit.report.html` (whose stylesheet, macros and helpers it shares): one page,
inline CSS, figures as PNG ``data:`` URIs with descriptive alt text, no script and no remote
resource (a Content-Security-Policy forbids any), autoescaping on for every value. Layout:
compute → structure → render; ``templates/identification.html.j2`` only lays out view objects.

Sections: what was tested (gallery, probes, search, thresholds), composition by role, failure to
acquire, then per grouping: FPIR and FNIR with per-rate (Wilson or Clopper–Pearson, as the
result's ``ci_method`` says) and subject-bootstrap intervals; the
ACLU-style table (probes with a false candidate, share against share of probes, exact tests);
the demographics of the false candidates; cross-group FPIR; CMC; score distributions; disparity
summaries; then limitations and provenance.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..identification.result import IdentificationResult, IdentificationThreshold
from . import plots
from .html import (
    FIGURE_DPI,
    _rate_rows,
    SMALL_GROUP_SUBJECTS,
    _SUMMARIES,
    _ci_name,
    _environment,
    _label,
    _link,
    _names,
    _opt,
    _provenance,
    _short,
    _summary_rank,
    _text,
    _write_index,
)
from .plots import _f, _new_figure, _style, _t, flag, fmt_count, fmt_rate
from ..verdict import threshold_units, verdict
from .firstscreen import TABLES_1TON, data_links, extra_sections, first_screen, forest_figures
from .heatmap import HeatScale, heat_cell
from .idverdict import identification_reference

__all__ = ["render_identification_html", "write_identification_report", "cmc_curves", "identification_score_distributions"]

_SET_LABEL = {"all": "all probes", "nonmated": "non-mated probes", "mated": "mated probes"}


# ------------------------------------------------------------------------------------- helpers
def _rows(df: pd.DataFrame, **eq: object) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for col, val in eq.items():
        mask &= (df[col].astype(str) == str(val)).to_numpy(dtype=bool)
    return df[mask]


def group_order(result: IdentificationResult, grouping: str) -> list[str]:
    """Groups of one grouping in report order (as they first appear in composition, then rates)."""
    seen: dict[str, None] = {}
    for name in ("composition", "rates", "fta", "cmc", "false_matches", "candidates"):
        df = getattr(result, name)
        for g in _rows(df, grouping=grouping)["group"].tolist():
            seen.setdefault(str(g), None)
    return list(seen)


def _p(v: object) -> str:
    x = _f(v)
    if not math.isfinite(x):
        return "—"
    if x < 1e-4:
        return "<0.0001"
    return f"{x:.4f}" if x < 0.1 else f"{x:.3f}"


def _share(v: object) -> str:
    x = _f(v)
    return "—" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _ratio(v: object) -> str:
    x = _f(v)
    return "—" if math.isnan(x) else ("∞" if math.isinf(x) else f"{x:.2f}")


def _figure(fig: Any, alt: str, caption: str) -> dict[str, str]:
    return {"uri": plots.figure_to_data_uri(fig, dpi=FIGURE_DPI), "alt": alt, "caption": caption}


def _rate_cell(row: Any, metric: str) -> dict[str, Any]:
    if row is None:
        return {"value": "—", "ci": "", "counts": "", "flag": False, "note": "not computed", "boot": ""}
    trials, errors = _f(row.trials), _f(row.errors)
    counts = f"{fmt_count(errors)} / {fmt_count(trials)}"
    if not trials > 0:
        what = "mated" if metric == "fnir" else "non-mated"
        return {"value": "n/a", "ci": "", "counts": counts, "flag": flag(row.insufficient),
                "note": f"no {what} searches", "boot": ""}
    lo, hi = _f(row.ci_low), _f(row.ci_high)
    blo, bhi = _f(getattr(row, "boot_low", math.nan)), _f(getattr(row, "boot_high", math.nan))
    return {
        "value": fmt_rate(row.value),
        "ci": f"({fmt_rate(lo)}–{fmt_rate(hi)})" if math.isfinite(lo) and math.isfinite(hi) else "",
        "boot": f"bootstrap {fmt_rate(blo)}–{fmt_rate(bhi)}" if math.isfinite(blo) and math.isfinite(bhi) else "",
        "counts": counts, "flag": flag(row.insufficient), "note": "",
    }


def _needed(t: IdentificationThreshold) -> str | None:
    basis = t.target_fpir if t.target_fpir is not None else t.achieved_fpir
    if basis is None or not (basis > 0) or not math.isfinite(basis):
        return None
    return fmt_count(math.ceil(3.0 / basis - 1e-9))


# ------------------------------------------------------------------------------------- figures
def cmc_curves(result: IdentificationResult, grouping: str) -> Any:
    """CMC curves (rank-r identification rate against r) of one grouping, one line per group,
    with 95% bands (the cmc table's interval, Wilson or Clopper–Pearson); returns a
    :class:`matplotlib.figure.Figure`."""
    df = _rows(result.cmc, grouping=grouping)
    if df.empty:
        return plots._empty_figure("No mated searches: no CMC curve.")
    fig = _new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    for i, g in enumerate([g for g in group_order(result, grouping) if g in set(df["group"].astype(str))]):
        d = df[df["group"].astype(str) == g].sort_values("rank")
        st = _style(i)
        r = d["rank"].astype(float).to_numpy()
        ax.plot(r, d["value"].astype(float), label=_t(f"{g} (n={fmt_count(d['searches'].iloc[0])})"), **st, markersize=4)
        ax.fill_between(r, d["ci_low"].astype(float), d["ci_high"].astype(float), color=st["color"], alpha=0.12, linewidth=0)
    ax.set_xlabel("rank r")
    ax.set_ylabel("identification rate (mate within the top r)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(range(1, int(df["rank"].max()) + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    ax.set_title(f"CMC by {_t(_label(grouping))} (threshold-free)", fontsize=9.5)
    return fig


def identification_score_distributions(result: IdentificationResult, grouping: str) -> Any:
    """Histograms of mate scores (solid) and non-mated top scores (dashed), one panel per group,
    thresholds as grey vertical lines; returns a :class:`matplotlib.figure.Figure`."""
    df = _rows(result.score_hist, grouping=grouping)
    groups = [g for g in group_order(result, grouping) if g in set(df["group"].astype(str))]
    if not groups:
        return plots._empty_figure("No scores to show.")
    n = len(groups)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _new_figure(3.3 * cols, 2.3 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for i, g in enumerate(groups):
        ax = axes[i // cols][i % cols]
        d = df[df["group"].astype(str) == g]
        for kind, ls, label in (("mate", "-", "mate score"), ("nonmated_top", "--", "non-mated top score")):
            k = d[d["kind"] == kind]
            if k.empty:
                continue
            counts = k["count"].astype(float).to_numpy()
            tot = counts.sum()
            if tot <= 0:
                continue
            mids = (k["bin_left"].astype(float).to_numpy() + k["bin_right"].astype(float).to_numpy()) / 2
            ax.step(mids, counts / tot, where="mid", linestyle=ls, color=plots.PALETTE[0 if kind == "mate" else 1],
                    label=f"{label} (n={fmt_count(tot)})")
        for j, t in enumerate(result.thresholds):
            if math.isfinite(t.value):
                ax.axvline(t.value, color="0.4", linewidth=0.9, linestyle=plots.THRESHOLD_STYLES[j % len(plots.THRESHOLD_STYLES)])
        ax.set_title(_t(g), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, frameon=False, loc="upper left")
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_axis_off()
    fig.supxlabel("similarity score (higher = more alike)", fontsize=8.5)
    fig.supylabel("share of searches", fontsize=8.5)
    return fig


# ---------------------------------------------------------------------------------- view model
def _tested(result: IdentificationResult) -> dict[str, Any]:
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    protocol = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    search = prov.get("search") if isinstance(prov.get("search"), Mapping) else {}
    ci_name = _ci_name(result.rates, result.fta, result.cmc, provenance=prov)

    def item(label: str, value: Any, *, full: str = "", link: bool = False) -> dict[str, str]:
        d = _link(value) if link else {"text": _text(value), "href": ""}
        d.update(label=label, title=full)
        return d

    b = [item("Backend", backend.get("backend")), item("Model", backend.get("model")), item("Version", backend.get("version"))]
    sha = str(backend.get("weights_sha256") or "")
    b.append(item("Weights sha256", _short(sha) if sha else None, full=sha))
    if "metric" in backend:
        b.append(item("Score", backend.get("metric")))
    if backend.get("default_threshold") is not None:
        b.append(item("Library's default (1:1) threshold", backend.get("default_threshold")))
    b.append(item("Search", _search_words(search)))

    def ds_items(d: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
        out = [item(prefix + "Dataset", d.get("title") or d.get("name")), item(prefix + "Licence", d.get("licence"))]
        if d.get("citation"):
            out.append(item(prefix + "Citation", d.get("citation")))
        if d.get("homepage"):
            out.append(item(prefix + "Homepage", d.get("homepage"), link=True))
        out.append(item(prefix + "Label source", d.get("label_source") or "not recorded"))
        if d.get("subset"):
            out.append(item(prefix + "Subset", d.get("subset")))
        if d.get("manifest_sha256"):
            out.append(item(prefix + "Manifest sha256", _short(d.get("manifest_sha256")), full=str(d.get("manifest_sha256"))))
        return out

    if isinstance(dataset.get("gallery"), Mapping):
        d_items = ds_items(dataset["gallery"], "Gallery: ") + ds_items(dataset.get("probes") or {}, "Probes: ")
    else:
        d_items = ds_items(dataset)

    p_items = [
        item("Scenario", protocol.get("scenario")),
        item("Gallery", f"{fmt_count(protocol.get('gallery_subjects'))} subjects, {fmt_count(protocol.get('gallery_images'))} images"),
        item("Mated searches", f"{fmt_count(protocol.get('mated_probes'))} probes of {fmt_count(protocol.get('mated_subjects'))} enrolled subjects"),
        item("Non-mated searches", f"{fmt_count(protocol.get('nonmated_probes'))} probes of {fmt_count(protocol.get('nonmated_subjects'))} subjects not enrolled"),
        item("Candidate list", f"k = {result.k} subjects per search; FNIR counts a mate found at rank ≤ {result.rank}"),
        item("Failed probes", "left out of the rates (see FTA)" if protocol.get("failed_probes") == "exclude"
             else "counted as searches that returned nothing (a miss when mated)"),
        item("Interval methods", f"{ci_name} per rate; subject bootstrap (probe subjects resampled within each group, "
                                 f"{fmt_count(protocol.get('bootstrap_replicates'))} replicates)"
             if _f(protocol.get("bootstrap_replicates")) > 0 else f"{ci_name} per rate"),
    ]
    params = protocol.get("params")
    if isinstance(params, Mapping) and params:
        p_items.append(item("Split parameters", {k: v for k, v in params.items() if v is not None}))
    thresholds = []
    for t in result.thresholds:
        thresholds.append({
            "name": t.name, "kind": str(t.kind).replace("_", " "),
            "target": fmt_rate(t.target_fpir) if t.target_fpir is not None else "—",
            "achieved": fmt_rate(t.achieved_fpir), "counts": f"{fmt_count(t.false_positives)} / {fmt_count(t.nonmated_searches)}",
            "fnir": fmt_rate(t.achieved_fnir), "fnir_counts": f"{fmt_count(t.misses)} / {fmt_count(t.mated_searches)}",
            "value": threshold_units(t, result.provenance),
            "insufficient": flag(t.insufficient), "needed": _needed(t),
        })
    return {"backend": b, "dataset": d_items, "protocol": p_items, "thresholds": thresholds}


def _search_words(search: Mapping[str, Any]) -> str | None:
    """The search index in plain words: "exact search over every enrolled image (0.02 s)"."""
    if not search:
        return None
    exact = search.get("exact")
    words = "exact search over every enrolled image" if exact in (True, "true", "True") else \
        f"approximate search ({_text(search.get('index') or search.get('name'))})"
    if search.get("recall_at_k") is not None and exact not in (True, "true", "True"):
        words += f", recall at k {_text(search.get('recall_at_k'))}"
    if isinstance(search.get("seconds"), (int, float)):
        words += f" ({search['seconds']:.2g} s)"
    return words


def _composition(result: IdentificationResult) -> list[dict[str, Any]]:
    out = []
    for grouping in result.groupings:
        df = _rows(result.composition, grouping=grouping)
        if df.empty:
            continue
        rows = []
        for g in group_order(result, grouping):
            cell = {}
            for role in ("gallery", "mated", "nonmated"):
                r = df[(df["group"].astype(str) == g) & (df["role"] == role)]
                cell[role] = (f"{fmt_count(r['subjects'].iloc[0])} / {fmt_count(r['images'].iloc[0])}" if not r.empty else "0")
            rows.append({"group": g, **cell})
        out.append({"label": _label(grouping), "rows": rows})
    return out


def _fta(result: IdentificationResult) -> list[dict[str, Any]]:
    out = []
    for grouping in result.groupings:
        df = _rows(result.fta, grouping=grouping)
        rows = []
        for r in df.itertuples(index=False):
            lo, hi = _f(r.ci_low), _f(r.ci_high)
            rows.append({"group": str(r.group), "value": fmt_rate(r.value),
                         "ci": f"({fmt_rate(lo)}–{fmt_rate(hi)})" if math.isfinite(lo) and math.isfinite(hi) else "",
                         "counts": f"{fmt_count(r.failures)} / {fmt_count(r.attempts)}"})
        if rows:
            out.append({"label": _label(grouping), "rows": rows})
    return out


def _section(result: IdentificationResult, index: int, grouping: str) -> dict[str, Any]:
    label = _label(grouping)
    names = [t.name for t in result.thresholds]
    rates = _rows(result.rates, grouping=grouping)
    lookup = {(str(r.group), str(r.threshold_name), str(r.metric)): r for r in rates.itertuples(index=False)}
    scale: dict[tuple[str, str], float] = {}
    for (g, t, m), r in lookup.items():
        hi = _f(r.ci_high)
        if math.isfinite(hi):
            scale[(t, m)] = max(scale.get((t, m), 0.0), hi)
    order = group_order(result, grouping)
    groups = [g for g in order if any((g, t, m) in lookup for t in names for m in ("fpir", "fnir"))]
    rows = _rate_rows(groups, names, lookup, scale, ("fpir", "fnir"), _rate_cell)
    any_flag = any(c[m]["flag"] for r in rows for c in r["cells"] for m in ("fpir", "fnir"))

    # ACLU-style tables, one per threshold
    aclu = []
    fm = _rows(result.false_matches, grouping=grouping)
    cand = _rows(result.candidates, grouping=grouping)
    for t in result.thresholds:
        at = fm[fm["threshold_name"].astype(str) == t.name]
        base = at[at["probe_set"] == "all"]
        if base.empty:
            continue
        by_set = {s: {str(r.group): r for r in at[at["probe_set"] == s].itertuples(index=False)} for s in ("nonmated", "mated")}
        trs = []
        for r in sorted(base.itertuples(index=False), key=lambda r: order.index(str(r.group)) if str(r.group) in order else 1e9):
            nm, m = by_set["nonmated"].get(str(r.group)), by_set["mated"].get(str(r.group))
            trs.append({
                "group": str(r.group), "probes": fmt_count(r.probes), "probe_share": _share(r.probe_share),
                "with_false": fmt_count(r.with_false), "false_share": _share(r.false_share), "ratio": _ratio(r.ratio),
                "nonmated": f"{fmt_count(nm.with_false)} / {fmt_count(nm.probes)}" if nm is not None else "—",
                "mated": f"{fmt_count(m.with_false)} / {fmt_count(m.probes)}" if m is not None else "—",
                "binom_p": _p(r.binom_p), "fisher_p": _p(r.fisher_p), "odds": _ratio(r.fisher_odds_ratio),
                "low_p": (math.isfinite(_f(r.binom_p)) and _f(r.binom_p) < 0.05) or (math.isfinite(_f(r.fisher_p)) and _f(r.fisher_p) < 0.05),
            })
        total_p = pd.to_numeric(base["probes"], errors="coerce").sum()
        total_f = pd.to_numeric(base["with_false"], errors="coerce").sum()
        c_at = cand[(cand["threshold_name"].astype(str) == t.name) & (cand["probe_set"] == "all")]
        crs = []
        for r in sorted(c_at.itertuples(index=False), key=lambda r: order.index(str(r.group)) if str(r.group) in order else 1e9):
            crs.append({
                "group": str(r.group), "gallery": fmt_count(r.gallery_subjects), "gallery_share": _share(r.gallery_share),
                "cands": fmt_count(r.false_candidates), "cand_share": _share(r.candidate_share),
                "distinct": fmt_count(r.distinct_subjects), "ratio": _ratio(r.ratio), "binom_p": _p(r.binom_p),
                "low_p": math.isfinite(_f(r.binom_p)) and _f(r.binom_p) < 0.05,
            })
        total_c = pd.to_numeric(c_at["false_candidates"], errors="coerce").sum() if not c_at.empty else 0
        aclu.append({"threshold": t.name, "value": threshold_units(t, result.provenance), "native": "",
                     "rows": trs, "total_probes": fmt_count(total_p), "total_false": fmt_count(total_f),
                     "total_share": _share(total_f / total_p if total_p else math.nan),
                     "cand_rows": crs, "total_cands": fmt_count(total_c), "summary": _aclu_summary(trs, t.name)})

    heat = [_heat(result, grouping, t) for t in result.thresholds]
    heat = [h for h in heat if h is not None]

    cmc = _rows(result.cmc, grouping=grouping)
    cmc_rows = []
    for g in order:
        d = cmc[cmc["group"].astype(str) == g]
        if d.empty:
            continue
        r1 = d[d["rank"].astype(int) == 1].iloc[0]
        rk = d[d["rank"].astype(int) == int(d["rank"].max())].iloc[0]
        cmc_rows.append({"group": g, "searches": fmt_count(r1.searches),
                         "r1": f"{fmt_rate(r1.value)} ({fmt_rate(r1.ci_low)}–{fmt_rate(r1.ci_high)})",
                         "rk": f"{fmt_rate(rk.value)} ({fmt_rate(rk.ci_low)}–{fmt_rate(rk.ci_high)})"})
    figures = []
    if not cmc.empty:
        figures.append(_figure(
            cmc_curves(result, grouping),
            alt=f"CMC curves by {label}: the share of mated searches whose mate is within the top r candidates, for r = 1 to "
                f"{result.k}, one line per group ({_names([r['group'] for r in cmc_rows])}) with 95% bands. The same rank-1 "
                f"and rank-{result.k} numbers are in the table.",
            caption=f"Cumulative match characteristic by {label}, ignoring the threshold: how often the right person is "
                    "among the first r candidates."))
    if not _rows(result.score_hist, grouping=grouping).empty:
        thr = ", ".join(f"{t.name} ({threshold_units(t, result.provenance)})" for t in result.thresholds)
        figures.append(_figure(
            identification_score_distributions(result, grouping),
            alt=f"Histograms by {label} group of the mate's score in mated searches (solid) and of the top candidate's "
                f"score in non-mated searches (dashed), each as a share of its searches, with grey vertical lines at the "
                f"thresholds {thr}.",
            caption="A non-mated search is a false positive when its top score (dashed) reaches a threshold; a mated search "
                    f"is a miss when its mate's score (solid) falls below it. Mates not among the top {result.k} candidates "
                    "have no score and are left out of the solid curve (its n)."))

    disparity, helps = [], {}
    ddf = _rows(result.disparity, grouping=grouping)
    torder = {n: i for i, n in enumerate(names)}
    for r in sorted(ddf.itertuples(index=False), key=lambda r: (torder.get(str(r.threshold_name), 99), str(r.metric) != "fpir",
                                                                 _summary_rank(str(r.summary)))):
        name, help_text = _SUMMARIES.get(str(r.summary).lower(), (str(r.summary), ""))
        lo, hi = _f(r.ci_low), _f(r.ci_high)
        disparity.append({"threshold": str(r.threshold_name), "metric": str(r.metric).upper(), "summary": name,
                          "value": fmt_rate(r.value) if not math.isnan(_f(r.value)) else "—",
                          "ci": f"{fmt_rate(lo)}–{fmt_rate(hi)}" if not (math.isnan(lo) or math.isnan(hi)) else "",
                          "high": _opt(r.group_high), "low": _opt(r.group_low), "used": fmt_count(r.groups_used),
                          "note": _opt(r.note, "")})
        if help_text:
            helps[str(r.summary).lower()] = help_text
    return {
        "anchor": f"grouping-{index + 1}", "label": label,
        "thresholds": [{"name": t.name, "value": threshold_units(t, result.provenance)} for t in result.thresholds],
        "rows": rows, "any_insufficient": any_flag, "aclu": aclu, "heat": heat, "cmc": cmc_rows, "figures": figures,
        "interval": _ci_name(rates, provenance=result.provenance), "cmc_interval": _ci_name(cmc, provenance=result.provenance),
        "disparity": disparity,
        "summary_help": [(lbl.replace("FMR", "FPIR").replace("FNMR", "FNIR"), text.replace("FMR", "FPIR").replace("FNMR", "FNIR"))
                         for key, (lbl, text) in _SUMMARIES.items() if key in helps],
    }


def _aclu_summary(rows: list[dict[str, Any]], threshold: str) -> str:
    over = [r for r in rows if r["low_p"]]
    if not over:
        return (f"At {threshold}, no group's share of the probes with a false candidate is significantly above its share of "
                "the probes (one-sided p ≥ 0.05 for every group).")
    parts = [f"{r['group']} ({r['false_share']} of the false matches, {r['probe_share']} of the probes; binomial p {r['binom_p']}, "
             f"Fisher p {r['fisher_p']})" for r in over]
    return f"At {threshold}, false matches fall on " + "; ".join(parts) + " more than their share (one-sided p < 0.05)."


def _heat(result: IdentificationResult, grouping: str, t: IdentificationThreshold) -> dict[str, Any] | None:
    df = _rows(result.cross_fpir, grouping=grouping, threshold_name=t.name)
    if df.empty:
        return None
    order = group_order(result, grouping)
    probe_groups = [g for g in order if g in set(df["probe_group"].astype(str))]
    cand_groups = [g for g in order if g in set(df["candidate_group"].astype(str))]
    basis = next((v for v in (_f(t.target_fpir), _f(t.achieved_fpir)) if math.isfinite(v) and v > 0), 1e-2)
    scale = HeatScale(basis)
    look = {(str(r.probe_group), str(r.candidate_group)): r for r in df.itertuples(index=False)}
    rows = []
    for a in probe_groups:
        cells = []
        for b in cand_groups:
            r = look.get((a, b))
            if r is None:
                cells.append(heat_cell(scale, math.nan, math.nan, math.nan, f"{a} probes, top candidate {b}"))
            else:
                cells.append(heat_cell(scale, _f(r.fpir), _f(r.false_positives), _f(r.searches),
                                       f"{a} probes, top candidate {b}"))
        rows.append({"group": a, "cells": cells})
    return {"threshold": t.name, "value": threshold_units(t, result.provenance), "groups": cand_groups, "rows": rows,
            "bar": scale.bar()}


def _limitations(result: IdentificationResult) -> list[str]:
    out: list[str] = []
    prov = result.provenance or {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    protocol = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    sources = []
    for d in ([dataset.get("gallery"), dataset.get("probes")] if isinstance(dataset.get("gallery"), Mapping) else [dataset]):
        if isinstance(d, Mapping) and d.get("label_source"):
            sources.append(_text(d.get("label_source")))
    if sources:
        out.append("Group labels come from: " + " / ".join(sources) + " Labels are categories assigned by that source; "
                   "results speak only for the categories used.")
    else:
        out.append("The dataset does not record where its group labels come from; treat group membership as uncertain.")
    out.append(f"FPIR grows with the size of the gallery: these rates hold for a gallery of "
               f"{fmt_count(protocol.get('gallery_subjects'))} enrolled subjects and a candidate list of {result.k}; a search "
               "against a larger database at the same threshold returns more false candidates.")
    for t in result.thresholds:
        if flag(t.insufficient):
            need = _needed(t)
            out.append(f"Threshold {t.name} rests on {fmt_count(t.nonmated_searches)} non-mated searches"
                       + (f", fewer than the {need} (3/FPIR) needed to estimate an FPIR that low" if need else "")
                       + f"; its achieved FPIR ({fmt_rate(t.achieved_fpir)}) is only approximate.")
    out.append("The exact tests (binomial and Fisher, one-sided) treat probes as independent and are run once per group and "
               "threshold without correction for multiple testing; where subjects contribute several probes, read the "
               "subject-bootstrap intervals beside them.")
    for grouping in result.groupings:
        comp = _rows(result.composition, grouping=grouping)
        probes = comp[comp["role"].isin(["mated", "nonmated"])]
        by = probes.groupby("group")["subjects"].sum()
        small = [f"{g} ({fmt_count(s)})" for g, s in by.items() if 0 < s < SMALL_GROUP_SUBJECTS]
        if small:
            out.append(f"By {_label(grouping)}: {len(small)} of {len(by)} groups have fewer than {SMALL_GROUP_SUBJECTS} probe "
                       f"subjects ({_names(small)}); their rates can change a lot with a few people.")
    out.extend(str(w) for w in result.warnings)
    return out


#: How the 1:N key findings' intervals are made, said under them.
METHOD_1TON = (
    "Each finding is one group against its grouping's reference group (the one with the most non-mated searches), "
    "at one threshold for everyone. The ratio's 95% interval (Katz's, or the exact conditional one with few "
    "errors) holds for all the comparisons of a threshold and metric at once (Bonferroni) and treats searches as "
    "independent. \"Too few comparisons\" marks a comparison whose lower FPIR cannot be placed above or below the "
    "level the threshold was set for."
)


def _first(result: IdentificationResult) -> dict[str, Any]:
    """The first screen: verdict, key findings, forest plots (FPIR and FNIR), links."""
    ref = identification_reference(result)
    summary = first_screen(result, verdict(result, reference=ref))
    summary.update(overview="", method=METHOD_1TON)
    return {"summary": summary, "links": data_links(TABLES_1TON), "extras": extra_sections(result),
            "forests": forest_figures(result, metrics=("fpir", "fnir"), kinds=("target_fpir",), reference=ref)}


def _context(result: IdentificationResult) -> dict[str, Any]:
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    return {
        "title": result.title or "Face identification audit",
        **_first(result),
        "backend_label": " / ".join(_text(backend.get(k)) for k in ("backend", "model") if backend.get(k)) or "—",
        "dataset_label": _text(dataset.get("title") or dataset.get("name")) if dataset else "—",
        "created": _text(prov.get("created")),
        "tool_version": _text(prov.get("tool_version")),
        "schema_version": result.schema_version,
        "k": result.k, "rank": result.rank,
        "tested": _tested(result),
        "composition": _composition(result),
        "fta": _fta(result),
        "sections": [_section(result, i, g) for i, g in enumerate(result.groupings)],
        "limitations": _limitations(result),
        "provenance": _provenance(result),  # type: ignore[arg-type]
    }


# ------------------------------------------------------------------------------------ public API
def render_identification_html(result: IdentificationResult) -> str:
    """Render a 1:N identification result as one self-contained HTML page (deterministic).

    Raises
    ------
    ReportError
        When ``result`` is not an :class:`~audit.identification.result.IdentificationResult`.
    """
    if not isinstance(result, IdentificationResult):
        raise plots.ReportError(f"render_identification_html expects an IdentificationResult, got {type(result).__name__}; "
                                "load one with IdentificationResult.from_json(path).")
    return _environment().get_template("identification.html.j2").render(**_context(result))


def write_identification_report(result: IdentificationResult, folder: str | os.PathLike[str]) -> Path:
    """Render ``result`` and write it to ``folder/index.html`` atomically; returns the path."""
    return _write_index(render_identification_html(result), folder)
