"""Several audits of one dataset side by side: backends, models or versions, in one HTML page.

``render_comparison_html`` reads two or more :class:`~audit.verification.result.AuditResult` objects of the
same dataset and lays them out so that a reader can compare systems group by group:

- the systems compared (model, version, weights, detector, thresholds, overall rates);
- each system's executive summary (:mod:`audit.findings`), in columns;
- per grouping, one table with a column block per system (FMR and FNMR at each shared target-FMR
  threshold, then FTA, each with its 95% interval and counts), the disparity summaries side by
  side, and DET curves as small multiples: one panel per group, one line per system.

Thresholds are matched by their target FMR (``FMR=1e-3`` of each system is that system's own
threshold for an overall FMR of 1e-3), so every system is compared at the same overall false-match
rate; fixed and library-default thresholds differ between systems and stay in each system's own
report. The page is self-contained like the single report (inline CSS, PNG ``data:`` URIs, no
script, a Content-Security-Policy that forbids any request) and autoescaped.

From the command line (the ``face-audit compare`` sub-command calls :func:`compare_command`)::

    face-audit compare reports/london-dlib/results.json reports/london-deepface-dlib/results.json \\
        --output reports/london-compare
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import FaceAuditError
from ..verification.result import AuditResult
from ..results import ThresholdInfo
from . import plots
from .html import (
    SUMMARY_METHOD,
    _SUMMARIES,
    _bar,
    _ci_name,
    _environment,
    _figure,
    _label,
    _opt,
    _rate_cell,
    _short,
    _summary_rank,
    _text,
    _write_index,
)
from ..verdict import threshold_units
from .compare_first import compare_first_screen, compare_notes
from .plots import ReportError, _f, _floats, _log_axis, _new_figure, _style, _t, fmt_count, fmt_rate

__all__ = [
    "COMPARISON_COLUMNS",
    "backend_labels",
    "comparison_frame",
    "det_comparison",
    "render_comparison_html",
    "write_comparison_report",
    "add_compare_arguments",
    "compare_command",
    "compare_main",
]

#: The fixed columns of :func:`comparison_frame`.
COMPARISON_COLUMNS = [
    "system", "grouping", "group", "threshold_name", "target_fmr", "metric",
    "value", "ci_low", "ci_high", "errors", "trials", "insufficient",
]


# ------------------------------------------------------------------------------------- inputs
def _check(results: Sequence[AuditResult], labels: Sequence[str] | None) -> list[AuditResult]:
    results = list(results)
    for i, r in enumerate(results):
        if not isinstance(r, AuditResult):
            raise ReportError(f"result {i + 1} is a {type(r).__name__}, not an AuditResult; load each with "
                              "AuditResult.from_json(path).")
    if len(results) < 2:
        raise ReportError(f"a comparison needs at least two results; got {len(results)}. Pass two or more "
                          "results.json files of the same dataset.")
    names = [_dataset(r).get("name") for r in results]
    if len({str(n) for n in names}) > 1:
        raise ReportError(
            "these results audit different datasets (" + ", ".join(f"{i + 1}: {n!r}" for i, n in enumerate(names))
            + "); rates on different images are not comparable group by group. Compare results of one dataset."
        )
    if labels is not None and len(labels) != len(results):
        raise ReportError(f"got {len(labels)} labels for {len(results)} results; give one label per result.")
    return results


def _dataset(r: AuditResult) -> Mapping[str, Any]:
    d = (r.provenance or {}).get("dataset")
    return d if isinstance(d, Mapping) else {}


def _backend(r: AuditResult) -> Mapping[str, Any]:
    b = (r.provenance or {}).get("backend")
    return b if isinstance(b, Mapping) else {}


def backend_labels(results: Sequence[AuditResult]) -> list[str]:
    """Short, distinct names for the compared systems.

    ``backend / model`` from each result's provenance, with the detector when the options name one
    (``deepface / Dlib (opencv)``); where two are still the same, the backend version and then the
    result's position are added.

    Returns
    -------
    list of str, one per result, all different.
    """
    def base(r: AuditResult) -> str:
        b = _backend(r)
        name = " / ".join(str(b.get(k)) for k in ("backend", "model") if b.get(k)) or (r.title or "system")
        opts = b.get("options") if isinstance(b.get("options"), Mapping) else {}
        det = opts.get("detector") or opts.get("detector_backend")
        return f"{name} ({det})" if det else name

    labels = [base(r) for r in results]
    for i, r in enumerate(results):
        if labels.count(labels[i]) > 1 and _backend(r).get("version"):
            labels[i] = f"{labels[i]}, {_backend(r)['version']}"
    return [f"{lab} #{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def _targets(results: Sequence[AuditResult]) -> list[tuple[float, list[ThresholdInfo]]]:
    """Target FMRs that every result has, in the first result's order, with each result's threshold."""
    out = []
    for t in results[0].thresholds:
        if t.kind != "target_fmr" or t.target_fmr is None:
            continue
        per = []
        for r in results:
            match = [u for u in r.thresholds if u.kind == "target_fmr" and u.target_fmr is not None
                     and math.isclose(float(u.target_fmr), float(t.target_fmr), rel_tol=1e-9)]
            if not match:
                break
            per.append(match[0])
        else:
            out.append((float(t.target_fmr), per))
    return out


def _groupings(results: Sequence[AuditResult]) -> list[str]:
    seen: list[str] = []
    for r in results:
        for g in r.groupings:
            if g not in seen:
                seen.append(g)
    return seen


def _group_order(results: Sequence[AuditResult], grouping: str) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for g in plots.group_order(r, grouping):
            seen.setdefault(g, None)
    return list(seen)


def comparison_frame(results: Sequence[AuditResult], grouping: str, *,
                     labels: Sequence[str] | None = None) -> pd.DataFrame:
    """FMR, FNMR (at every shared target-FMR threshold) and FTA of each group, for each system.

    Parameters
    ----------
    results : sequence of AuditResult
        Two or more audits of the same dataset.
    grouping : str
        A grouping id, e.g. ``"ethnicity"``.
    labels : sequence of str, optional
        One name per result (default: :func:`backend_labels`).

    Returns
    -------
    pandas.DataFrame
        Long, with the columns :data:`COMPARISON_COLUMNS`: one row per system, group, threshold
        and metric (``fmr``, ``fnmr``; ``fta`` rows have ``threshold_name`` and ``target_fmr``
        NaN). ``threshold_name`` is the first result's name for the shared target. Pivot it for a
        side-by-side table::

            df.pivot_table(index="group", columns=["system", "metric"], values="value", sort=False)
    """
    results = _check(results, labels)
    names = list(labels) if labels is not None else backend_labels(results)
    rows = []
    targets = _targets(results)
    for name, k in zip(names, range(len(results))):
        r = results[k]
        rates = plots._rows(r.rates, grouping=grouping)
        for target, per in targets:
            t = per[k]
            at = rates[(rates["threshold_name"] == t.name).to_numpy(dtype=bool)]
            for rec in at.to_dict("records"):
                rows.append([name, grouping, str(rec["group"]), per[0].name, target, str(rec["metric"]).lower(),
                             _f(rec["value"]), _f(rec["ci_low"]), _f(rec["ci_high"]), _f(rec["errors"]),
                             _f(rec["trials"]), plots.flag(rec["insufficient"])])
        for rec in plots._rows(r.fta, grouping=grouping).to_dict("records"):
            rows.append([name, grouping, str(rec["group"]), None, math.nan, "fta", _f(rec["value"]), _f(rec["ci_low"]),
                         _f(rec["ci_high"]), _f(rec["failures"]), _f(rec["attempts"]), False])
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    order = {g: i for i, g in enumerate(_group_order(results, grouping))}
    sys_order = {n: i for i, n in enumerate(names)}
    metric_order = {"fmr": 0, "fnmr": 1, "fta": 2}
    df = df.assign(_g=df["group"].map(order), _s=df["system"].map(sys_order), _m=df["metric"].map(metric_order),
                   _t=df["target_fmr"].fillna(0.0).map(lambda v: -v))
    return df.sort_values(["_s", "_g", "_m", "_t"], kind="stable").drop(columns=["_g", "_s", "_m", "_t"]).reset_index(drop=True)


# -------------------------------------------------------------------------------------- figure
def det_comparison(results: Sequence[AuditResult], grouping: str, *, labels: Sequence[str] | None = None) -> Figure:
    """DET curves as small multiples: one panel per group, one line per system.

    Every panel has the same axes (FMR on a log scale, FNMR linear), so a system's curve can be
    compared with the other systems' in the same group, and across groups. Systems differ by
    colour, line style and marker; large black-edged markers show each system's operating point
    at each shared target-FMR threshold. Points with FMR = 0 cannot be drawn on a log axis.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per group that has DET points in any result (up to 3 per row); a blank figure
        with a message when none has.
    """
    results = _check(results, labels)
    names = list(labels) if labels is not None else backend_labels(results)
    groups = [g for g in _group_order(results, grouping)
              if any(not plots._rows(r.det, grouping=grouping, group=g).empty for r in results)]
    if not groups:
        return plots._empty_figure(f"No DET points for {_label(grouping)}.")
    targets = _targets(results)
    n = len(groups)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    panel_w, panel_h = 3.1, 2.3
    fig = _new_figure(panel_w * ncols + 0.6, panel_h * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for extra in axes.flat[n:]:
        fig.delaxes(extra)
    xs: list[float] = []
    ys: list[float] = []
    for i, g in enumerate(groups):
        ax = axes.flat[i]
        missing = []
        for k, (r, name) in enumerate(zip(results, names)):
            st = _style(k)
            d = plots._rows(r.det, grouping=grouping, group=g)
            fmr, fnmr = _floats(d["fmr"]), _floats(d["fnmr"])
            ok = np.isfinite(fmr) & np.isfinite(fnmr) & (fmr > 0)
            if not ok.any():
                missing.append(name)
                continue
            order = np.lexsort((-fnmr[ok], fmr[ok]))
            x, y = fmr[ok][order], fnmr[ok][order]
            ax.plot(x, y, color=st["color"], linestyle=st["linestyle"], marker=st["marker"],
                    markevery=max(1, len(x) // 6), markersize=4, linewidth=1.4)
            xs.extend(x.tolist())
            ys.extend(y.tolist())
            rates = plots._rows(r.rates, grouping=grouping, group=g)
            for _, per in targets:
                at = rates[(rates["threshold_name"] == per[k].name).to_numpy(dtype=bool)]
                fr = at[at["metric"].astype(str).str.lower() == "fmr"]["value"].tolist()
                nr = at[at["metric"].astype(str).str.lower() == "fnmr"]["value"].tolist()
                if fr and nr and _f(fr[0]) > 0 and math.isfinite(_f(fr[0])) and math.isfinite(_f(nr[0])):
                    ax.scatter([_f(fr[0])], [_f(nr[0])], marker=st["marker"], s=46, facecolor=st["color"],
                               edgecolor="black", linewidth=1.0, zorder=4)
                    xs.append(_f(fr[0]))
                    ys.append(_f(nr[0]))
        ax.set_title(_t(g), fontsize=8.5)
        if missing:
            ax.text(0.02, 0.96, "no curve: " + ", ".join(_t(m) for m in missing), transform=ax.transAxes,
                    fontsize=6.5, va="top", color="0.25")
        ax.grid(True, which="major", color="0.88", linewidth=0.6)
        ax.tick_params(labelsize=7)
        if i % ncols == 0:
            ax.set_ylabel("FNMR", fontsize=8)
        if i + ncols >= n:
            ax.set_xlabel("FMR (same-group, log)", fontsize=8)
            ax.tick_params(labelbottom=True)
    if xs:
        lo = min(v for v in xs if v > 0)
        for ax in axes.flat[:n]:
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
            ax.set_xlim(lo / 2, min(1.0, max(xs) * 2))
            ax.set_ylim(0, max(0.05, min(1.0, (max(ys) if ys else 0.0) * 1.1 + 0.01)))
    handles = [Line2D([], [], color=_style(k)["color"], linestyle=_style(k)["linestyle"], marker=_style(k)["marker"],
                      markersize=5, label=_t(name)) for k, name in enumerate(names)]
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7, markerfacecolor="white",
                          markeredgecolor="black", label="operating point at a shared target FMR"))
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 3), fontsize=7.5, frameon=False)
    return fig


# ---------------------------------------------------------------------------------- view model
def _systems(results: list[AuditResult], names: list[str], targets) -> list[dict[str, Any]]:
    out = []
    for k, (r, name) in enumerate(zip(results, names)):
        b = _backend(r)
        prov = r.provenance or {}
        protocol = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
        sha = str(b.get("weights_sha256") or "")
        overall_fta = plots._rows(r.fta, grouping="all")
        if overall_fta.empty and r.groupings:
            overall_fta = plots._rows(r.fta, grouping=r.groupings[0])
        failures = pd.to_numeric(overall_fta["failures"], errors="coerce").sum() if not overall_fta.empty else math.nan
        attempts = pd.to_numeric(overall_fta["attempts"], errors="coerce").sum() if not overall_fta.empty else math.nan
        opts = b.get("options") if isinstance(b.get("options"), Mapping) else {}
        out.append({
            "name": name, "title": r.title or "—", "version": _text(b.get("version")),
            "detector": _text(opts.get("detector") or opts.get("detector_backend")),
            "sha": _short(sha) if sha else "—", "sha_full": sha,
            "fta": (f"{fmt_rate(failures / attempts)} ({fmt_count(failures)}/{fmt_count(attempts)})"
                    if attempts and attempts > 0 else "—"),
            "mated": fmt_count(protocol.get("mated_comparisons")) if protocol.get("mated_comparisons") is not None else "—",
            "impostor": (fmt_count(protocol.get("impostor_comparisons"))
                         if protocol.get("impostor_comparisons") is not None else "—"),
            "thresholds": [{"value": threshold_units(per[k], r.provenance),
                            "fmr": fmt_rate(per[k].achieved_fmr), "fnmr": fmt_rate(per[k].achieved_fnmr), "metric": ""}
                           for _, per in targets],
            "created": _text(prov.get("created")), "tool_version": _text(prov.get("tool_version")),
        })
    return out


def _rates_table(results: list[AuditResult], names: list[str], grouping: str, targets) -> dict[str, Any]:
    groups = _group_order(results, grouping)
    lookups = []
    for k, r in enumerate(results):
        rates: dict[tuple[str, str, str], Any] = {}
        for row in plots._rows(r.rates, grouping=grouping).itertuples(index=False):
            rates.setdefault((str(row.group), str(row.threshold_name), str(row.metric).lower()), row)
        fta = {str(row.group): row for row in plots._rows(r.fta, grouping=grouping).itertuples(index=False)}
        lookups.append((rates, fta))
    # bar scales: one per (threshold, metric) column across all systems, so bars compare across blocks
    scale: dict[tuple[int, str], float] = {}
    for k, (rates, fta) in enumerate(lookups):
        for j, (_, per) in enumerate(targets):
            for m in ("fmr", "fnmr"):
                for g in groups:
                    row = rates.get((g, per[k].name, m))
                    if row is not None and _f(row.trials) > 0:
                        top = max((x for x in (_f(row.value), _f(row.ci_high)) if math.isfinite(x)), default=0.0)
                        scale[(j, m)] = max(scale.get((j, m), 0.0), top)
    rows = []
    for g in groups:
        blocks = []
        for k, (rates, fta) in enumerate(lookups):
            cells = []
            for j, (_, per) in enumerate(targets):
                for m in ("fmr", "fnmr"):
                    row = rates.get((g, per[k].name, m))
                    c = _rate_cell(row, m)
                    c["bar"] = _bar(row, scale.get((j, m), 0.0)) if row is not None else None
                    c["metric"] = m
                    cells.append(c)
            f = fta.get(g)
            if f is None:
                fc = {"value": "—", "ci": "", "counts": "", "flag": False, "note": "not computed", "bar": None}
            else:
                attempts = _f(f.attempts)
                lo, hi = _f(f.ci_low), _f(f.ci_high)
                fc = {"value": fmt_rate(f.value) if attempts > 0 else "n/a",
                      "ci": f"({fmt_rate(lo)}–{fmt_rate(hi)})" if math.isfinite(lo) and math.isfinite(hi) else "",
                      "counts": f"{fmt_count(f.failures)} / {fmt_count(attempts)}", "flag": False,
                      "note": "" if attempts > 0 else "no images", "bar": None}
            fc["metric"] = "fta"
            cells.append(fc)
            blocks.append(cells)
        rows.append({"group": g, "blocks": blocks})
    any_flag = any(c["flag"] for r in rows for b in r["blocks"] for c in b)
    return {"rows": rows, "any_insufficient": any_flag}


def _disparity(results: list[AuditResult], names: list[str], grouping: str, targets) -> dict[str, Any]:
    keys: dict[tuple[int, str, str], dict[int, Any]] = {}
    for k, r in enumerate(results):
        ddf = plots._rows(r.disparity, grouping=grouping)
        for j, (_, per) in enumerate(targets):
            for rec in ddf[(ddf["threshold_name"] == per[k].name).to_numpy(dtype=bool)].itertuples(index=False):
                keys.setdefault((j, str(rec.metric).lower(), str(rec.summary)), {})[k] = rec
    order = sorted(keys, key=lambda key: (key[0], key[1] != "fmr", key[1], _summary_rank(key[2])))
    rows = []
    helps = {}
    for key in order:
        j, metric, summary = key
        name, help_text = _SUMMARIES.get(summary.lower(), (summary, ""))
        if help_text:
            helps[summary.lower()] = help_text
        cells = []
        for k in range(len(results)):
            rec = keys[key].get(k)
            if rec is None:
                cells.append({"value": "—", "groups": "", "note": ""})
                continue
            v = _f(rec.value)
            hi, lo = _opt(rec.group_high, ""), _opt(rec.group_low, "")
            groups = " vs ".join(x for x in (hi, lo) if x)
            cells.append({"value": fmt_rate(v) if not math.isnan(v) else "—", "groups": groups,
                          "note": _opt(rec.note, "")})
        rows.append({"threshold": targets[j][1][0].name, "metric": metric.upper(), "summary": name, "cells": cells})
    return {"rows": rows, "help": [(label, text) for key, (label, text) in _SUMMARIES.items() if key in helps]}


def _context(results: list[AuditResult], names: list[str], title: str | None) -> dict[str, Any]:
    targets = _targets(results)
    dataset = _dataset(results[0])
    sections = []
    for i, grouping in enumerate(_groupings(results)):
        label = _label(grouping)
        det_groups = [g for g in _group_order(results, grouping)
                      if any(not plots._rows(r.det, grouping=grouping, group=g).empty for r in results)]
        figures = []
        if det_groups:
            styles = "; ".join(f"{n}: {desc}" for n, desc in zip(names, _style_words(len(names))))
            figures.append(_figure(
                det_comparison(results, grouping, labels=names),
                alt=f"DET curves by {label}, one panel per group ({', '.join(det_groups)}), each panel with one line "
                    f"per system ({styles}): FNMR against same-group FMR on a log scale, with black-edged markers at "
                    "each system's operating points at the shared target FMRs. The same rates are in the table above.",
                caption=f"DET curves by {label}, one panel per group, one line per system. Lower is better; a system "
                        "whose curve lies below another's in a panel makes fewer errors for that group at every "
                        "operating point.",
            ))
        sections.append({
            "anchor": f"grouping-{i + 1}", "label": label,
            "table": _rates_table(results, names, grouping, targets),
            "disparity": _disparity(results, names, grouping, targets),
            "figures": figures,
        })
    return {
        "title": title or f"Comparison: {', '.join(names)}",
        "dataset_label": _text(dataset.get("title") or dataset.get("name")) if dataset else "—",
        "names": names,
        "targets": [{"name": per[0].name, "target": fmt_rate(t)} for t, per in targets],
        "systems": _systems(results, names, targets),
        "first": compare_first_screen(results, names, targets),
        "sections": sections,
        "notes": compare_notes(results, names, targets, _ci_name),
        "method": SUMMARY_METHOD,
        "tool_version": _text((results[0].provenance or {}).get("tool_version")),
    }


def _style_words(n: int) -> list[str]:
    colours = {"#0072B2": "blue", "#D55E00": "vermilion", "#009E73": "green", "#CC79A7": "pink",
               "#E69F00": "orange", "#56B4E9": "sky blue", "#000000": "black"}
    lines = {"-": "solid", "--": "dashed", "-.": "dash-dot", ":": "dotted"}
    markers = {"o": "circles", "s": "squares", "^": "triangles", "D": "diamonds", "v": "down triangles",
               "P": "plus signs", "X": "crosses"}
    out = []
    for k in range(n):
        st = _style(k)
        out.append(f"{colours.get(str(st['color']), 'coloured')} {lines.get(str(st['linestyle']), '')} line with "
                   f"{markers.get(str(st['marker']), 'markers')}")
    return out


# ------------------------------------------------------------------------------------ public API
def render_comparison_html(results: Sequence[AuditResult], *, title: str | None = None,
                           labels: Sequence[str] | None = None) -> str:
    """Render two or more audits of the same dataset as one self-contained HTML page.

    Parameters
    ----------
    results : sequence of AuditResult
        Two or more results of the same dataset (``provenance["dataset"]["name"]``), in the order
        their column blocks appear.
    title : str, optional
        Default: ``"Comparison: "`` and the systems' labels.
    labels : sequence of str, optional
        One name per result; default :func:`backend_labels`.

    Returns
    -------
    str
        The HTML document (deterministic, like :func:`~audit.report.render_html`).

    Raises
    ------
    ReportError
        Fewer than two results, something that is not an AuditResult, results of different
        datasets, or a number of labels that differs from the number of results.
    """
    results = _check(results, labels)
    names = list(labels) if labels is not None else backend_labels(results)
    if len(set(names)) != len(names):
        raise ReportError(f"the labels must differ from one another; got {names}")
    return _environment().get_template("compare.html.j2").render(**_context(results, names, title))


def write_comparison_report(results: Sequence[AuditResult], folder: str | os.PathLike[str], *,
                            title: str | None = None, labels: Sequence[str] | None = None) -> Path:
    """Render the comparison and write it to ``folder/index.html`` atomically; returns that path."""
    return _write_index(render_comparison_html(results, title=title, labels=labels), folder)


# ------------------------------------------------------------------------------------------ CLI
def add_compare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``compare`` command's arguments to ``parser`` (for a ``face-audit compare`` subparser)."""
    parser.add_argument("results", nargs="+", metavar="RESULTS.json",
                        help="two or more results.json files of the same dataset, in column order")
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for index.html (created if missing)")
    parser.add_argument("--title", help="page title (default: the systems' names)")
    parser.add_argument("--label", action="append", metavar="NAME",
                        help="a name for each result, in order (repeat once per result; default: backend / model)")
    return parser


def compare_command(args: argparse.Namespace) -> int:
    """Write the comparison for parsed arguments; print its path. Returns 0, or 2 on bad input."""
    try:
        if len(args.results) < 2:
            raise ReportError(f"compare needs at least two results.json files; got {len(args.results)}")
        results = [AuditResult.from_json(p) for p in args.results]
        path = write_comparison_report(results, args.output, title=args.title, labels=args.label)
    except FaceAuditError as exc:
        print(f"face-audit: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def compare_main(argv: list[str] | None = None) -> int:
    """``face-audit compare RESULTS.json RESULTS.json ... --output DIR [--title T] [--label NAME ...]``.

    Returns
    -------
    int
        0 written, 2 bad arguments or results (the message is on stderr).
    """
    parser = add_compare_arguments(argparse.ArgumentParser(
        prog="face-audit compare",
        description="Put audits of one dataset by several backends (or versions) side by side in one HTML report.",
    ))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed the message
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return compare_command(args)
