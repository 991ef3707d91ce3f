"""The self-contained HTML audit report, rendered from an :class:`~audit.verification.result.AuditResult` alone.

``render_html`` turns a result into one HTML page: the stylesheet is inline, figures are PNG
``data:`` URIs, and there is no script, no web font and no remote resource (a
Content-Security-Policy in the page forbids any), so the file can be mailed, archived or opened
offline and shows the same thing. ``write_report`` writes it atomically as ``index.html``.

The page, top to bottom:

- the first screen (:mod:`audit.report.firstscreen`): a one-sentence verdict and at most five key
  findings, each a group against its reference group with its interval and a plain "1 in N"
  statement (:mod:`audit.verdict`); repeated no-error statements as one line each; links to
  ``results.json`` and the CSV tables;
- sections added by other parts of face-audit (:data:`audit.report.firstscreen.EXTRA_SECTIONS`);
- forest plots of every group's ratio to its reference group, one per threshold
  (:mod:`audit.report.forest`);
- what was tested, in plain words, composition and failure to acquire (:mod:`audit.report.sections`);
- per grouping: each group against the reference (the same figures as the key findings), the
  rates table, score distributions, DET curves on log–log axes (a group with no false non-match
  is said in words), cross-group FMR heat maps on the report's one colour scale (FMR ÷ the
  target, :mod:`audit.report.heatmap`) each with its colour bar, and the disparity summaries
  (folded away);
- limitations and provenance (folded away).

Thresholds are written in the backend's own units (a distance for dlib), never negated. Wide
tables scroll inside their own box; the page reads at 390 px and prints on a few pages.

Layout: compute → structure → render. The view-model modules turn the result's tables into plain
view objects (strings already formatted, nothing marked safe); the Jinja2 template
``templates/report.html.j2`` only lays them out, with autoescaping on for every template, since
titles, group names, labels and file names come from users.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..verification.result import AuditResult
from ..verdict import finding_from_row, threshold_units, times
from .confounders import confounder_section
from . import plots
from .firstscreen import data_links, extra_sections, first_screen, forest_figures
from .heatmap import heat_view
from .plots import _f, fmt_count, fmt_rate, group_order
from .sections import (  # noqa: F401
    MAX_FACE_IMAGES,
    _backend_label,
    _composition,
    _failed_face_images,
    _fta,
    _limitations,
    _overview,
    _protocol_words,
    _provenance,
    _tested,
    _two_sided,
    _weights_text,
)
from .viewkit import (  # noqa: F401 - re-exported: compare.py, identification.py and tests use them from here
    _SUMMARIES,
    CI_NAMES,
    FIGURE_DPI,
    SMALL_GROUP_SUBJECTS,
    _bar,
    _boot_ci,
    _ci_name,
    _environment,
    _figure,
    _first,
    _label,
    _link,
    _names,
    _needed,
    _opt,
    _plain,
    _rate_cell,
    _rate_rows,
    _short,
    _sub,
    _summary_rank,
    _text,
    _threshold_value,
    _write_index,
)

__all__ = ["render_html", "write_report", "SMALL_GROUP_SUBJECTS"]


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
    bases = {t.name: plots.fmr_basis(t) for t in result.thresholds}
    rows = _rate_rows(groups, names, lookup, scale, ("fmr", "fnmr"),
                      lambda r, m: _rate_cell(r, m, bases.get(str(r.threshold_name)) if r is not None and m == "fmr" else None))
    any_flag = any(c[m]["flag"] for r in rows for c in r["cells"] for m in ("fmr", "fnmr"))
    needed = [{"name": t.name, "needed": _needed(t)} for t in result.thresholds if _needed(t)]

    figures: list[dict[str, str]] = []
    thr_text = ", ".join(f"{t.name} ({threshold_units(t, result.provenance)})" for t in result.thresholds)
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
    det_note = ""
    fnmr_pos = pd.to_numeric(det_df["fnmr"], errors="coerce") > 0 if not det_df.empty else pd.Series([], dtype=bool)
    fmr_pos = pd.to_numeric(det_df["fmr"], errors="coerce") > 0 if not det_df.empty else pd.Series([], dtype=bool)
    drawable = set(det_df["group"].astype(str)[(fnmr_pos & fmr_pos).to_numpy(dtype=bool)]) if not det_df.empty else set()
    none = [g for g in group_order(result, grouping) if g in set(det_df["group"].astype(str)) and g not in drawable]
    if none:
        det_note = (f"No DET curve for {_names(none)}: no false non-match at any threshold (or no mated comparison), "
                    "so FNMR is 0 all along, which a log axis cannot draw.")
    if not det_df.empty and drawable:
        figures.append(_figure(
            plots.det_curves(result, grouping),
            alt=f"DET curves: FNMR against same-group FMR, both on log scales, one line per {label} group "
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
        heatmaps.append(heat_view(plots.cross_fmr_matrix(result, grouping, t.name), t, result.provenance,
                                  directional=_two_sided(result) is not None))

    disparity = []
    ddf = _sub(result.disparity, grouping=grouping)
    order = {n: i for i, n in enumerate(names)}
    records = sorted(ddf.itertuples(index=False),
                     key=lambda r: (order.get(str(r.threshold_name), len(order)), str(r.metric).lower() != "fmr",
                                    str(r.metric).lower(), _summary_rank(str(r.summary))))
    helps: dict[str, str] = {}  # summary id -> help text, for the summaries present
    reference = _reference_rows(result, grouping, order)
    same = {(x["threshold"], x["metric"], x["group"], x["reference"]): x["ratio"] for x in reference["rows"]}
    for r in records:
        v = _f(r.value)
        key = str(r.summary)
        name, help_text = _SUMMARIES.get(key.lower(), (key, ""))
        ratio_like = key.lower() in ("max_min_ratio", "max_geomean_ratio", "inequity_rate")
        value = ((times(v) + "×" if ratio_like else fmt_rate(v)) if not math.isnan(v) else "—") + _boot_ci(r, ratio_like)
        note = _opt(r.note, "")
        pair = (str(r.threshold_name), str(r.metric).upper(), _opt(r.group_high), _opt(r.group_low))
        if key.lower() == "max_min_ratio" and pair in same:  # one figure for one quantity: the reference table's
            value = same[pair]
            note = (note + " " if note else "") + (f"{pair[2]} against the reference group {pair[3]}: the same figure "
                                                   "as in the table of each group against the reference.")
        disparity.append({
            "threshold": str(r.threshold_name), "metric": str(r.metric).upper(), "summary": name,
            "value": value, "high": _opt(r.group_high), "low": _opt(r.group_low),
            "used": fmt_count(r.groups_used), "note": note,
        })
        if help_text:
            helps[key.lower()] = help_text
    return {
        "reference": reference,
        "anchor": f"grouping-{index + 1}", "id": grouping, "label": label,
        "thresholds": [{"name": t.name, "value": threshold_units(t, result.provenance)} for t in result.thresholds],
        "rows": rows, "any_insufficient": any_flag, "needed": needed,
        "interval": _ci_name(rates, provenance=result.provenance),
        "figures": figures, "heatmaps": heatmaps, "directional": _two_sided(result), "det_note": det_note,
        "disparity": disparity,
        "summary_help": [(label, text + _weights_text(result, key)) for key, (label, text) in _SUMMARIES.items() if key in helps],
    }


def _reference_rows(result: AuditResult, grouping: str, order: Mapping[str, int]) -> dict[str, Any]:
    """Each group against the reference group: the ratio printed exactly as the key findings print
    it (:func:`audit.verdict.ratio_text`), the verdict in the same words, the difference and the
    adjusted p. Rows where neither group erred are collapsed into one line."""
    ref = getattr(result, "reference", None)
    if not isinstance(ref, pd.DataFrame) or ref.empty:
        return {"rows": [], "quiet": [], "reference": ""}
    rates = {(str(r["grouping"]), str(r["group"]), str(r["threshold_name"]), str(r["metric"]).lower()): r
             for r in _sub(result.rates, grouping=grouping).to_dict("records")}
    by_name = {t.name: t for t in result.thresholds}
    rows, quiet = [], {}
    sub = _sub(ref, grouping=grouping)
    for r in sorted(sub.to_dict("records"), key=lambda r: (order.get(str(r["threshold_name"]), len(order)),
                                                           str(r["metric"]) != "fmr")):
        t = by_name.get(str(r["threshold_name"]))
        metric = str(r["metric"]).lower()
        basis = plots.fmr_basis(t) if t is not None and metric == "fmr" else None
        f = finding_from_row(r, rates, "", basis)
        if math.isnan(f.ratio):
            quiet.setdefault((f.threshold_name, metric.upper()), []).append(f.group)
            continue
        d, dlo, dhi = _f(r.get("difference")), _f(r.get("diff_low")), _f(r.get("diff_high"))
        rows.append({
            "threshold": f.threshold_name, "metric": metric.upper(), "group": f.group, "reference": f.reference,
            "ratio": f.ratio_text, "status": f.status, "verdict": f.status_words,
            "difference": f"{d:+.2g} ({dlo:+.2g} to {dhi:+.2g})" if math.isfinite(d) else "—",
            "p": f"{_f(r.get('p_adjusted')):.2g}",
        })
    lines = [f"{metric} at {tn}: no errors in either group for {_names(groups)}." for (tn, metric), groups in quiet.items()]
    refs = sorted({str(x) for x in sub["reference"]}) if "reference" in sub else []
    return {"rows": rows, "quiet": lines, "reference": ", ".join(refs)}


#: How the key findings' intervals are computed, said under them.
SUMMARY_METHOD = (
    "Each finding is one group against its reference group (set by [analysis] reference; by default the group "
    "with the most comparisons), at one threshold for everyone. The ratio's 95% interval resamples people, so "
    "comparisons that share a person are not counted as independent, and holds for all the comparisons of a "
    "threshold and metric at once, so a \"difference shown\" survives their number. \"Too few comparisons\" "
    "marks a comparison whose lower rate cannot be placed above or below the level the threshold was set for "
    "(its interval contains it); a rate measured from many errors is a measurement. Every group's own rate, "
    "with its interval and counts, is in the tables below."
)


def _summary(result: AuditResult) -> dict[str, Any]:
    """The first screen's view: the verdict, the key findings, an overview sentence."""
    out = first_screen(result)
    out.update(overview=_overview(result), method=SUMMARY_METHOD)
    return out


def _context(result: AuditResult, *, links: bool = True) -> dict[str, Any]:
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    backend_label = " / ".join(_text(backend.get(k)) for k in ("backend", "model") if backend.get(k)) or "—"
    return {
        "title": result.title or "Face recognition audit",
        "summary": _summary(result),
        "forests": forest_figures(result),
        "extras": extra_sections(result),
        "links": data_links() if links else [],
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
def render_html(result: AuditResult, *, include_face_images: bool = False, links: bool = True) -> str:
    """Render an audit result as one self-contained HTML page.

    Parameters
    ----------
    result : AuditResult
        The only input: the report reads nothing else (no files, no network), except the face
        thumbnails asked for with ``include_face_images``.
    links : bool, default True
        Link to ``results.json`` and ``tables/*.csv``, which ``face-audit run`` writes beside the page.
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
    context = _context(result, links=links)
    context["face_images"] = _failed_face_images(result) if include_face_images else None
    return _environment().get_template("report.html.j2").render(**context)


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


