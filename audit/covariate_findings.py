"""The executive summary's sentence on covariates: does a gap go with age (or another covariate)?

Reads an :class:`~audit.results.AuditResult`'s ``stratum_rates`` table only (written when the audit
was run with ``[analysis] adjust_for``). For a finding comparing group H with group L, the
Mantel–Haenszel ratio of H to L over the covariate's strata (:func:`audit.metrics.adjust.mantel_haenszel`)
is set beside the crude ratio on the log scale: ``share = 1 - log(adjusted) / log(crude)`` is the
part of the gap that goes with the covariate. Adjusting changes the picture *materially* only when
the adjusted ratio differs from the crude one by a factor of at least :data:`MIN_FACTOR` (1.25):
near parity a tiny change is a large share (1.1× to 1.2× is "-90%").

- ``share >= 0.5``: "Most of this gap goes with age band: within age bands the ratio is 1.4×."
- ``0.25 <= share < 0.5``: "Part of this gap goes with age band: ..."
- the adjusted ratio on the other side of 1: "Within age bands the gap reverses: ..."
- ``share <= -0.25``: "Age band hides part of this gap: within age bands the ratio is 9.1×."
- otherwise (or a change by less than a factor 1.25): "Age band does not explain this gap: within
  age bands the ratio is 23×."

Nothing is said when the result has no strata (no ``adjust_for``) or a ratio is 0 or infinite.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .metrics.adjust import mantel_haenszel

__all__ = ["adjusted_sentence", "with_adjusted", "MOST", "PART", "MIN_FACTOR"]

MOST = 0.5    #: share of the log gap that "most of this gap" means
PART = 0.25   #: share of the log gap that "part of this gap" means (and, negative, "hides part")
MIN_FACTOR = 1.25  #: the adjusted ratio must differ from the crude one by this factor to change the picture


def _times(r: float) -> str:
    return f"{r:.2g}" if r < 10 else f"{r:.0f}"


def _words(covariate: str) -> tuple[str, str]:
    """``"age_band"`` -> ("age band", "within age bands"); joint covariates -> strata of both."""
    parts = [p.replace("_", " ") for p in covariate.split("+")]
    if len(parts) == 1:
        return parts[0], f"within {parts[0]}s"
    return " and ".join(parts), f"within strata of {' and '.join(parts)}"


def adjusted_sentence(result: Any, grouping: str, metric: str, threshold_name: str | None, high: str | None, low: str | None,
                      crude: float) -> str:
    """The sentence for a finding (high against low group, crude ratio ``crude``), or ``""``.

    Examples
    --------
    Within each of two age bands both groups err alike, but group H is mostly children:

    >>> import pandas as pd
    >>> rows = [("g", "t", 0.5, "fmr", grp, s, e, n, e / n) for grp, s, e, n in
    ...         [("H", "child", 40, 800, ), ("H", "adult", 2, 200), ("L", "child", 10, 200), ("L", "adult", 8, 800)]]
    >>> tab = pd.DataFrame(rows, columns=["grouping", "threshold_name", "threshold", "metric", "group", "stratum", "errors", "trials", "rate"])
    >>> class R: stratum_rates = tab; provenance = {"adjust_for": ["age_band"]}
    >>> adjusted_sentence(R, "g", "fmr", "t", "H", "L", (42 / 1000) / (18 / 1000))
    'Most of this gap goes with age band: within age bands the ratio is 1×.'
    """
    tab = getattr(result, "stratum_rates", None)
    if tab is None or tab.empty or not high or not low or not (0 < crude < math.inf) or crude == 1:
        return ""
    sub = tab[(tab["grouping"] == grouping) & (tab["metric"].astype(str).str.lower() == metric)
              & ((tab["threshold_name"] == threshold_name) if threshold_name is not None else True)]
    h = sub[sub["group"] == high].set_index("stratum")
    lo = sub[sub["group"] == low].set_index("stratum")
    strata = [s for s in h.index if s in lo.index]
    if not strata:
        return ""
    adj = float(mantel_haenszel(h.loc[strata, "errors"].to_numpy(float), h.loc[strata, "trials"].to_numpy(float),
                                lo.loc[strata, "errors"].to_numpy(float), lo.loc[strata, "trials"].to_numpy(float)))
    if not (0 < adj < math.inf):
        return ""
    cov = "+".join((getattr(result, "provenance", None) or {}).get("adjust_for") or ["the covariate"])
    name, within = _words(cov)
    ratio = f"the ratio is {_times(adj)}×"
    if abs(np.log(adj) - np.log(crude)) < np.log(MIN_FACTOR):
        return f"{name[0].upper()}{name[1:]} does not explain this gap: {within} {ratio}."
    if (adj - 1) * (crude - 1) < 0:
        return f"{within[0].upper()}{within[1:]} the gap reverses: {ratio}, so the crude gap goes with {name}."
    share = 1 - np.log(adj) / np.log(crude)
    if share >= MOST:
        return f"Most of this gap goes with {name}: {within} {ratio}."
    if share >= PART:
        return f"Part of this gap goes with {name}: {within} {ratio}."
    if share <= -PART:
        return f"{name[0].upper()}{name[1:]} hides part of this gap: {within} {ratio}."
    return f"{name[0].upper()}{name[1:]} does not explain this gap: {within} {ratio}."


def with_adjusted(result: Any, finding):
    """``finding`` with :func:`adjusted_sentence` appended to its text (unchanged when there is none)."""
    if finding is None:
        return None
    s = adjusted_sentence(result, finding.grouping, finding.metric, finding.threshold_name, finding.group_high, finding.group_low,
                          finding.ratio)
    return dataclasses.replace(finding, text=f"{finding.text} {s}") if s else finding
