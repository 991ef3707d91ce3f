"""The comparison report's first screen: which system has the smallest disparity, with intervals.

For each system, at each shared target FMR, per grouping and metric, its *largest gap* is the
group whose rate is furthest from its reference group's (the largest ratio, or the smallest below
1, by point estimate), with that ratio's 95% simultaneous people-level interval from the system's
reference table (:mod:`audit.verdict`), printed the same way as in each system's own report. The
verdict names the system whose largest FMR gap, in the first grouping at the first shared
target, is the smallest, and says whether its interval overlaps the others' (when it does, the
ranking is not shown by this sample). Each system's own verdict follows.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from ..verdict import STATUS_WORDS, ratio_text, verdict
from .plotkit import _rows, fmt_count

__all__ = ["compare_first_screen", "largest_gap", "compare_notes"]

_WORDS = {"fmr": "false-match", "fnmr": "false non-match"}


def largest_gap(result: Any, grouping: str, threshold_name: str, metric: str) -> dict[str, Any] | None:
    """The reference-table row of ``result`` furthest from parity (by its point estimate), or None."""
    ref = result.reference
    if not isinstance(ref, pd.DataFrame) or ref.empty:
        return None
    sub = ref[((ref["grouping"].astype(str) == grouping) & (ref["threshold_name"].astype(str) == threshold_name)
               & (ref["metric"].astype(str).str.lower() == metric)).to_numpy(dtype=bool)]
    best, key = None, -1.0
    for r in sub.to_dict("records"):
        x = float(r["ratio"]) if r["ratio"] is not None else math.nan
        if math.isnan(x):
            continue
        lo, hi = float(r["ratio_low"]), float(r["ratio_high"])
        if math.isinf(x):  # the reference had no error: the lower bound is what is known
            k = math.log(lo) if lo > 1 else 0.0
        elif x <= 0:  # the group had no error: the upper bound is what is known
            k = -math.log(hi) if 0 < hi < 1 else 0.0
        else:
            k = abs(math.log(x))
        if k > key:
            best, key = r, k
    if best is None:
        return None
    lo, hi = float(best["ratio_low"]), float(best["ratio_high"])
    return {"group": str(best["group"]), "reference": str(best["reference"]), "ratio": float(best["ratio"]), "low": lo,
            "high": hi, "shown": bool(best["shown"]), "text": ratio_text(float(best["ratio"]), lo, hi), "size": key}


def _pick(results: Sequence[Any], targets: list) -> tuple[str, int, str] | None:
    """(grouping, target index, metric) of the headline: the first grouping and shared target where
    every system has an FMR gap, else an FNMR gap."""
    for metric in ("fmr", "fnmr"):
        for grouping in results[0].groupings:
            for j, (_, per) in enumerate(targets):
                if all(largest_gap(r, grouping, per[k].name, metric) for k, r in enumerate(results)):
                    return grouping, j, metric
    return None


def compare_first_screen(results: Sequence[Any], names: Sequence[str], targets: list) -> dict[str, Any]:
    """The verdict sentence, a table of each system's largest gaps, and each system's own verdict."""
    systems = [{"name": n, "verdict": verdict(r)} for n, r in zip(names, results)]
    for s in systems:
        v = s.pop("verdict")
        s["text"] = v.text
        s["findings"] = [{"status": f.status, "status_words": STATUS_WORDS[f.status], "headline": f.headline}
                         for f in v.findings[:3]]
    rows = []
    for grouping in results[0].groupings if results else []:
        for j, (t, per) in enumerate(targets):
            for metric in ("fmr", "fnmr"):
                cells = [largest_gap(r, grouping, per[k].name, metric) for k, r in enumerate(results)]
                if any(cells):
                    rows.append({"label": f"{_WORDS[metric].capitalize()} rate by {grouping.replace('+', ' × ')}",
                                 "threshold": per[0].name, "cells": cells})
    pick = _pick(results, targets)
    if pick is None or len(results) < 2:
        text = ("No group could be compared with a reference group in every system at a shared threshold, so this "
                "page does not rank the systems' disparities.")
        return {"verdict": text, "systems": systems, "rows": rows}
    grouping, j, metric = pick
    gaps = [largest_gap(r, grouping, targets[j][1][k].name, metric) for k, r in enumerate(results)]
    order = sorted(range(len(results)), key=lambda k: gaps[k]["size"])
    best = order[0]
    g = gaps[best]
    others = "; ".join(f"{names[k]}, {gaps[k]['group']}: {_short(gaps[k])}" for k in order[1:])
    overlap = [names[k] for k in order[1:] if _overlap(g, gaps[k])]
    if overlap:
        sure = f" The intervals overlap {' and '.join(overlap)}'s: this sample does not show it is smaller than theirs."
    else:
        sure = " The intervals do not overlap: this sample shows the ranking."
    text = (f"{names[best]} has the smallest {_WORDS[metric]} disparity by {grouping.replace('+', ' × ')} at "
            f"{targets[j][1][0].name}: its largest gap to {g['reference']}, {g['group']}, is {_short(g)} "
            f"(95% CI); {others}.{sure}")
    return {"verdict": text, "systems": systems, "rows": rows}


def _short(g: Mapping[str, Any]) -> str:
    """``76× (17–344×)``; ``≥ 104×``; ``0× (0–0.36×)``."""
    from ..verdict import times

    if math.isinf(g["ratio"]):
        return f"≥ {times(g['low'])}×"
    hi = "∞" if math.isinf(g["high"]) else times(g["high"])
    return f"{times(g['ratio'])}× ({times(g['low'])}–{hi}×)"


def _overlap(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Do two ratio intervals, on the log scale of distance from parity, overlap?"""
    def span(x: Mapping[str, float]) -> tuple[float, float]:
        lo, hi = x["low"], x["high"]
        if x["ratio"] >= 1 or math.isinf(x["ratio"]):
            return (max(lo, 1.0), hi)
        return (1.0 / hi if hi > 0 else math.inf, 1.0 / lo if lo > 0 else math.inf)  # below parity: flip
    (a0, a1), (b0, b1) = span(a), span(b)
    return not (a1 < b0 or b1 < a0)


def compare_notes(results: list[Any], names: list[str], targets: list, ci_name: Any) -> list[str]:
    """Cautions about what differs between the compared results."""
    notes = []
    shas = {str(((r.provenance or {}).get("dataset") or {}).get("manifest_sha256") or "") for r in results}
    if len(shas) > 1:
        notes.append("The results were made with different versions of the dataset manifest (their sha256 differ): "
                     "check that they cover the same images before reading differences.")
    subjects = []
    for r in results:
        comp = _rows(r.composition, grouping=r.groupings[0]) if r.groupings else r.composition.iloc[:0]
        subjects.append(pd.to_numeric(comp["subjects"], errors="coerce").sum() if not comp.empty else math.nan)
    if len({s for s in subjects if math.isfinite(s)}) > 1:
        notes.append("The results cover different numbers of subjects ("
                     + ", ".join(f"{n}: {fmt_count(s)}" for n, s in zip(names, subjects))
                     + "); a run on a subset (--subjects) is not the same audit.")
    comps = []
    for r in results:
        p = (r.provenance or {}).get("protocol")
        comps.append(p.get("impostor_comparisons") if isinstance(p, Mapping) else None)
    methods = [ci_name(r.rates, r.fta, provenance=r.provenance) for r in results]
    if len(set(methods)) > 1:
        notes.append("The systems' 95% intervals were computed by different methods ("
                     + ", ".join(f"{n}: {m}" for n, m in zip(names, methods))
                     + "); for the same counts a Clopper–Pearson interval is wider than Wilson's, so compare the "
                     "intervals with care.")
    if len({c for c in comps if c is not None}) > 1:
        notes.append("Comparison counts differ between systems because images that a system failed to acquire are "
                     "left out of its comparisons (see FTA); each system's rates are over its own comparisons.")
    if not targets:
        notes.append("The results share no target-FMR threshold, so no rates are set side by side; re-run the "
                     "audits with a common [thresholds] target_fmr.")
    else:
        shared = {t for t, _ in targets}
        for r, n in zip(results, names):
            other = [t.name for t in r.thresholds if not (t.kind == "target_fmr" and t.target_fmr is not None
                                                         and any(math.isclose(float(t.target_fmr), s) for s in shared))]
            if other:
                notes.append(f"{n}: thresholds {', '.join(other)} are not shared by every system and are shown only in "
                             "its own report.")
    notes.append("Each system's threshold is set on its own impostor comparisons at the shared target FMR, so the "
                  "systems are compared at the same overall false-match rate, not at the same score.")
    return notes
