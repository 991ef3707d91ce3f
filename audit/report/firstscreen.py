"""The first screen of every report: the verdict, at most five key findings, the forest plots.

A reader who stops after the first screen has read what the audit found and how sure it is: one
sentence (:func:`audit.verdict.verdict`), then each key finding as a group against the reference
group with its interval and what the two rates mean for people ("about 1 in 3 comparisons of two
different Black people in this set is a false match; for White people, 1 in 230"). Repeated
"no errors" statements are collapsed into one line each. The forest plots (each group's ratio to
its reference group, per threshold) follow at once: the chart readers see first.

Extra sections
--------------
Other parts of face-audit may add a section right after the key findings (before the forest
plots) without touching the main template: append a function to :data:`EXTRA_SECTIONS` that
takes the result and returns ``None`` (nothing to add) or a dict with ``"template"`` (a template
name under ``audit/report/templates/``, e.g. ``"_covariates.html.j2"``), ``"id"`` (the section's
anchor), ``"title"`` (its contents entry) and anything the template reads (it gets the dict as
``section``)::

    from audit.report.firstscreen import EXTRA_SECTIONS
    EXTRA_SECTIONS.append(lambda result: {"template": "_covariates.html.j2", "id": "covariates",
                                          "title": "Age and other covariates", "rows": ...})
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..verdict import STATUS_WORDS, Verdict, threshold_units, verdict
from . import forest
from .plotkit import figure_to_data_uri

__all__ = ["EXTRA_SECTIONS", "first_screen", "forest_figures", "extra_sections", "data_links"]

#: Functions ``result -> dict | None`` adding sections after the key findings (see the module docstring).
EXTRA_SECTIONS: list[Callable[[Any], Mapping[str, Any] | None]] = []

#: Figures are rasterised at this resolution: sharp on screen, small in the file.
FIGURE_DPI = 100

#: The CSV tables a 1:1 and a 1:N audit write beside the report (``tables/NAME.csv``).
TABLES_1TO1 = (("rates", "every group's rates with intervals"), ("reference", "each group against the reference group"),
               ("disparity", "disparity summaries"), ("cross_fmr", "cross-group false match rates"),
               ("composition", "people and images by group"), ("fta", "failures to acquire"),
               ("thresholds", "thresholds"))
TABLES_1TON = (("rates", "every group's rates with intervals"), ("disparity", "disparity summaries"),
               ("cross_fpir", "cross-group false positive identification rates"),
               ("composition", "people and images by group"), ("fta", "failures to acquire"),
               ("thresholds", "thresholds"))


def first_screen(result: Any, v: Verdict | None = None) -> dict[str, Any]:
    """The view of the verdict and key findings (plain strings; the template escapes them)."""
    v = verdict(result) if v is None else v
    findings = [{"status": f.status, "status_words": STATUS_WORDS[f.status], "headline": f.headline, "text": f.text,
                 "ratio": f.ratio_text} for f in v.findings]
    if v.shown == 0 and v.findings:
        lead = "The largest gaps measured, none of them shown to be more than chance:"
    elif v.shown > len(v.findings):
        lead = f"The {len(v.findings)} clearest of the {v.shown} differences shown:"
    else:
        lead = ""
    return {"verdict": v.text, "findings": findings, "lead": lead, "quiet": list(v.quiet),
            "counts": f"{v.shown} of {v.compared} comparisons with a reference group show a difference"
                      if v.compared else ""}


def forest_figures(result: Any, *, metrics: tuple[str, ...] = ("fmr", "fnmr"), kinds: tuple[str, ...] = ("target_fmr",),
                   reference: Any = None) -> list[dict[str, str]]:
    """One forest plot per threshold (target thresholds first, then the others)."""
    ref = result.reference if reference is None else reference
    if ref is None or getattr(ref, "empty", True):
        return []
    names = set(ref["threshold_name"].astype(str))
    ordered = [t for t in result.thresholds if t.kind in kinds] + [t for t in result.thresholds if t.kind not in kinds]
    out = []
    for t in ordered:
        if t.name not in names:
            continue
        fig = forest.forest_plot(ref, t.name, list(result.groupings), metrics=metrics)
        units = threshold_units(t, result.provenance)
        out.append({
            "uri": figure_to_data_uri(fig, dpi=FIGURE_DPI),
            "alt": f"Forest plot at {t.name} ({units}): each group's rate divided by its reference group's, on a log "
                   f"scale with 95% simultaneous intervals and a line at parity. " + forest.forest_alt(ref, t.name, result.groupings),
            "caption": f"At {t.name} ({units}): each group's rate as a multiple of its reference group's (log scale; "
                       "the vertical line is parity). Squares and dark orange: a difference shown (the interval "
                       "excludes 1); circles: not shown. An arrow means the interval runs on to infinity (the "
                       "reference group had no error). A metric with no error in any group has no panel.",
            "threshold": t.name,
        })
    return out


def extra_sections(result: Any) -> list[Mapping[str, Any]]:
    """The sections added by :data:`EXTRA_SECTIONS`, in order."""
    out = []
    for fn in EXTRA_SECTIONS:
        s = fn(result)
        if s:
            out.append(s)
    return out


def data_links(tables: tuple[tuple[str, str], ...] = TABLES_1TO1) -> list[dict[str, str]]:
    """Links to the files written beside the report: results.json and the CSV tables."""
    return [{"href": "results.json", "text": "results.json", "what": "every number, with provenance"}] + [
        {"href": f"tables/{name}.csv", "text": f"{name}.csv", "what": what} for name, what in tables]
