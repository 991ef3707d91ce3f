"""The 1:N report's first screen: each group against a reference group, FPIR and FNIR.

A 1:N :class:`~audit.identification.result.IdentificationResult` has no reference table of its
own, so this module builds one with the 1:1 table's columns (:func:`identification_reference`):
per grouping, the reference group is the one with the most non-mated searches; each other group's
FPIR and FNIR at each threshold is divided by the reference's, with the ratio interval of
:func:`audit.metrics.uncertainty.rate_ratio_interval` (Katz's log interval, or the exact
conditional one with few errors) at the Bonferroni level over the K − 1 comparisons of a
threshold and metric. That interval treats searches as independent (one probe image each), which
the method column says; a "difference shown" is one whose interval excludes 1.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..metrics.ratio import rate_ratio_interval

__all__ = ["identification_reference", "REFERENCE_METHOD"]

#: How the 1:N ratios' intervals are made (the reference table's ``method`` column).
REFERENCE_METHOD = "searches assumed independent; Katz or exact conditional interval, Bonferroni over the comparisons"

_COLUMNS = ["grouping", "threshold_name", "threshold", "metric", "group", "reference", "ratio", "ratio_low", "ratio_high",
            "difference", "diff_low", "diff_high", "p_adjusted", "shown", "comparisons", "method", "estimand"]


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def identification_reference(result: Any) -> pd.DataFrame:
    """Each group against its grouping's reference group (most non-mated searches), per threshold
    and metric (``fpir``, ``fnir``), with simultaneous (Bonferroni) 95% ratio intervals."""
    rates = result.rates
    out = []
    for grouping in result.groupings:
        sub = rates[(rates["grouping"].astype(str) == grouping).to_numpy(dtype=bool)]
        if sub.empty:
            continue
        fp = sub[(sub["metric"].astype(str).str.lower() == "fpir").to_numpy(dtype=bool)]
        trials = fp.groupby(fp["group"].astype(str), sort=False)["trials"].max()
        if trials.empty or not trials.max() > 0:
            continue
        ref = str(trials.idxmax())
        for (tname, metric), at in sub.groupby([sub["threshold_name"].astype(str), sub["metric"].astype(str).str.lower()],
                                               sort=False):
            rows = {str(r["group"]): r for r in at.to_dict("records")}
            r0 = rows.get(ref)
            others = [g for g, r in rows.items() if g != ref and _num(r["trials"]) > 0]
            if r0 is None or not _num(r0["trials"]) > 0 or not others:
                continue
            k = len(others)
            e0, n0 = int(_num(r0["errors"])), int(_num(r0["trials"]))
            for g in others:
                r = rows[g]
                e, n = int(_num(r["errors"])), int(_num(r["trials"]))
                p, p0 = e / n, e0 / n0
                if e == 0 and e0 == 0:
                    ratio, lo, hi = math.nan, 0.0, math.inf
                else:
                    ci = rate_ratio_interval(e, n, e0, n0, confidence=1 - 0.05 / k)
                    ratio, lo, hi = (math.inf if e0 == 0 else p / p0), ci.low, ci.high
                shown = bool(not math.isnan(ratio) and (lo > 1 or hi < 1))
                out.append({"grouping": grouping, "threshold_name": tname, "threshold": _num(r.get("threshold")),
                            "metric": metric, "group": g, "reference": ref, "ratio": ratio, "ratio_low": lo,
                            "ratio_high": hi, "difference": p - p0, "diff_low": math.nan, "diff_high": math.nan,
                            "p_adjusted": math.nan, "shown": shown, "comparisons": k, "method": REFERENCE_METHOD,
                            "estimand": "rate at this threshold value"})
    return pd.DataFrame(out, columns=_COLUMNS)
