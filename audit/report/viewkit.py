"""Helpers shared by the report's view models (1:1, 1:N, comparison): formatting, the Jinja2
environment, rate cells with in-cell bars, the atomic index.html writer."""

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

from ..results import ThresholdInfo
from ..verdict import _unresolved, times
from . import plots
from .plots import _f, flag, fmt_count, fmt_rate

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
def _rate_cell(row: Any, metric: str, basis: float | None = None) -> dict[str, Any]:
    """A rate with its interval and counts. Flagged (†, "too few comparisons") only when the
    results flag it and, given the level measured (``basis``), its interval contains that level:
    a rate measured from many errors, wholly above the level, is a measurement."""
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
    flagged = flag(row.insufficient) and (basis is None or _unresolved(row._asdict(), basis))
    return {"value": fmt_rate(row.value), "ci": ci, "counts": counts, "flag": flagged, "note": note,
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


def _boot_ci(r: Any, ratio: bool = False) -> str:
    """" (a–b)" for a disparity row with a people-level interval, else ""."""
    lo, hi = _f(getattr(r, "ci_low", math.nan)), _f(getattr(r, "ci_high", math.nan))
    if math.isnan(lo) or math.isnan(hi):
        return ""
    fmt = (lambda x: times(x) + "×") if ratio else fmt_rate
    return f" ({fmt(lo)}–{fmt(hi)})"


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

