"""Plain-language findings generated from an :class:`~audit.verification.result.AuditResult`.

The report leads with :func:`verdict` (:mod:`audit.verdict`): one sentence and at most five key
findings, each a group against the reference group with a people-level interval that holds over
all the comparisons made. This module also keeps the older *executive summary* below (the
highest group against the lowest, per grouping), which the notebook view and the command line's
headline still use.

For each grouping, at each target-FMR threshold (every threshold when there is none), and for
FMR and FNMR, the summary compares the group with the **highest** rate to the group with the
**lowest** one: the ratio of their rates, with an interval written out as one sentence a
non-specialist can read. The two groups are picked *because* they are the extremes, so an ordinary
95% interval for their ratio would overclaim (with equal true rates, the highest of K groups is
above the lowest by chance). The interval stated is therefore one that holds for every pair of
groups at once:

- with people-level results (the usual case), the disparity table's ``pair_ci_low``/``pair_ci_high``
  for the max/min row: ``low(high group) / high(low group)`` to ``high(high group) / low(low group)``
  from intervals of every group's rate that hold simultaneously (people resampled, max-t over the
  groups; :func:`audit.metrics.reference.simultaneous_rate_bounds`), so "difference shown" holds at
  a family-wise 5% whichever two groups the data make extreme;
- without them (a scores file with no identities, or the bootstrap turned off), the ratio's interval
  from :func:`audit.metrics.uncertainty.rate_ratio_interval` (Katz's, or the exact conditional one
  with few errors) at the Bonferroni level over the ``K (K - 1) / 2`` pairs of groups, which
  assumes independent comparisons and says so.

Failure to acquire (FTA) is one image per attempt, so its pairs of groups use the second rule.

Wording rules (never overclaim)
-------------------------------
- A ratio whose interval includes 1 is said to show no difference: "No difference shown: the
  interval includes parity."
- When the lowest group has no errors the ratio is infinite: the sentence gives both counts
  ("9 of 112 …, versus none of 2,244"), the 95% upper bound of the zero rate, and the lower bound
  of the ratio.
- When no group has an error, the sentence says so and gives the range of the groups' upper
  bounds: zero observed is not zero.
- When either compared group is flagged insufficient (fewer than 3/FMR same-group impostor
  comparisons), the sentence says the sample is too small and the finding is not conclusive.
- The largest group's own rate is given as context when it is neither of the two compared.

Ties: the highest group is the one with the highest rate, then the most comparisons, then the
first in report order; the lowest likewise with the lowest rate. Groups with no comparisons are
left out.

This module only builds text: it is pure (no I/O) and does no escaping; the report's templates
escape group names, which come from users.

>>> from audit.findings import executive_summary  # doctest: +SKIP
>>> for f in executive_summary(AuditResult.from_json("results.json")):  # doctest: +SKIP
...     print(f.text)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from .covariate_findings import with_adjusted
from .metrics.ratio import rate_ratio_interval
from .verdict import KeyFinding, Verdict, times, verdict  # noqa: F401 - the verdict and key findings live beside this module

if TYPE_CHECKING:  # findings read results; results never import findings (no import cycle, even a lazy one)
    from .results import ThresholdInfo
    from .verification.result import AuditResult

__all__ = ["Finding", "executive_summary", "STATUS_LABELS", "verdict", "Verdict", "KeyFinding"]

#: Finding.status -> the short label shown beside a finding (status is never told by colour alone).
STATUS_LABELS = {
    "difference": "Difference shown",
    "indication": "Indication only: sample too small",
    "no_difference": "No difference shown",
    "no_errors": "No errors observed",
}

_UNITS = {"fmr": "same-group impostor comparisons", "fnmr": "mated comparisons", "fta": "images"}
_RATE_NAMES = {"fmr": "an FMR", "fnmr": "an FNMR", "fta": "an FTA rate"}
_ERROR_NAMES = {"fmr": "false match", "fnmr": "false non-match", "fta": "failure to acquire"}


@dataclass(frozen=True)
class Finding:
    """One sentence of the executive summary and the numbers behind it.

    Attributes
    ----------
    text : str
        The sentence, plain text (group names unescaped).
    grouping : str
        Grouping id, e.g. ``"ethnicity+gender"``.
    metric : {"fmr", "fnmr", "fta"}
    threshold_name : str or None
        ``None`` for FTA, which does not depend on a threshold.
    ratio : float
        Highest group's rate over the lowest's; ``inf`` when the lowest is 0, ``nan`` when no
        group has an error.
    ci_low, ci_high : float
        95% interval of ``ratio`` (see ``ci_method``). ``ci_high`` is ``inf`` when the lowest
        rate is 0 (only the lower bound is informative); both ``nan`` when no group has an error.
    conclusive : bool
        True when the interval excludes parity (``ci_low > 1``) and neither compared group is
        flagged as having too few comparisons.
    group_high, group_low : str or None
        The compared groups (``None`` when no group has an error).
    small_sample : bool
        A compared group is flagged insufficient (fewer than 3/FMR same-group impostors).
    ci_method : str
        ``"katz-log"`` or ``"conditional"`` (:func:`~audit.metrics.uncertainty.rate_ratio_interval`),
        with ``"+subject-bootstrap"`` when the interval also spans the subject bootstrap's;
        ``""`` when no group has an error.
    """

    text: str
    grouping: str
    metric: str
    threshold_name: str | None
    ratio: float
    ci_low: float
    ci_high: float
    conclusive: bool
    group_high: str | None = None
    group_low: str | None = None
    small_sample: bool = False
    ci_method: str = ""

    @property
    def status(self) -> str:
        """``"difference"``, ``"indication"`` (interval excludes parity, sample too small),
        ``"no_difference"`` or ``"no_errors"``; see :data:`STATUS_LABELS`."""
        if self.conclusive:
            return "difference"
        if math.isnan(self.ratio):
            return "no_errors"
        if self.ci_low > 1:
            return "indication"
        return "no_difference"


@dataclass(frozen=True)
class _Obs:
    group: str
    errors: int
    trials: int
    ci_low: float
    ci_high: float
    insufficient: bool
    order: int

    @property
    def rate(self) -> float:
        return self.errors / self.trials


# ------------------------------------------------------------------------------------ formatting
def _num(v: Any) -> float:
    if v is None or v is pd.NA:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _flag(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    x = _num(v)
    return bool(x) if math.isfinite(x) else False


def pct(p: float) -> str:
    """A rate as a percentage for prose: ``70%``, ``8.0%``, ``0.40%``, ``0.017%``, ``0%``."""
    if not math.isfinite(p):
        return "—"
    x = 100.0 * p
    if x == 0:
        return "0%"
    if x >= 10:
        return f"{x:.0f}%"
    if x >= 1:
        return f"{x:.1f}%"
    digits = 1 - math.floor(math.log10(x))
    return f"{x:.{digits}f}%"


def _count(n: int) -> str:
    return f"{n:,}"


def _label(grouping: str) -> str:
    return " × ".join(grouping.split("+"))


def _at(t: ThresholdInfo) -> str:
    """How a threshold reads in a sentence's opening clause."""
    target = _num(t.target_fmr)
    if t.kind == "target_fmr" and math.isfinite(target) and target > 0:
        level = _level(target)
        share = level if level.startswith("1 in") else f"{level} of"
        return f"At the threshold where {share} impostor comparisons match overall ({t.name})"
    what = "the library's default threshold" if t.kind == "backend_default" else "the fixed threshold"
    return f"At {what} ({t.name}), where {pct(_num(t.achieved_fmr))} of all impostor comparisons match"


def _needed(t: ThresholdInfo | None) -> int | None:
    """``ceil(3 / FMR)`` for the threshold's target (else its achieved overall FMR)."""
    if t is None:
        return None
    for v in (_num(t.target_fmr), _num(t.achieved_fmr)):
        if math.isfinite(v) and v > 0:
            return math.ceil(3.0 / v - 1e-9)
    return None


def _names(groups: list[str]) -> str:
    if len(groups) <= 1:
        return "".join(groups)
    return ", ".join(groups[:-1]) + " and " + groups[-1]


# ------------------------------------------------------------------------------------- the data
def _order(result: AuditResult, grouping: str) -> dict[str, int]:
    seen: dict[str, int] = {}
    for df in (result.composition, result.rates, result.fta):
        sub = df[(df["grouping"] == grouping).to_numpy(dtype=bool)]
        for g in sub["group"].tolist():
            seen.setdefault(str(g), len(seen))
    return seen


def _observations(df: pd.DataFrame, errors: str, trials: str, order: dict[str, int]) -> list[_Obs]:
    out: dict[str, _Obs] = {}
    for r in df.to_dict("records"):
        e, n = _num(r.get(errors)), _num(r.get(trials))
        if not (math.isfinite(e) and math.isfinite(n) and n > 0 and 0 <= e <= n):
            continue
        g = str(r["group"])
        if g in out:
            continue
        out[g] = _Obs(g, int(round(e)), int(round(n)), _num(r.get("ci_low")), _num(r.get("ci_high")),
                      _flag(r.get("insufficient", False)), order.get(g, len(order)))
    return sorted(out.values(), key=lambda o: o.order)


def _groupings(result: AuditResult) -> list[str]:
    if result.groupings:
        return list(result.groupings)
    seen: list[str] = []
    for g in result.rates["grouping"].tolist():
        if g not in seen and g != "all":
            seen.append(str(g))
    return seen


# -------------------------------------------------------------------------------------- wording
def _phrase(metric: str, high: str, low: str, r: str) -> str:
    if metric == "fmr":
        return f"{high} faces are falsely matched with one another {r}× as often as {low} faces"
    if metric == "fnmr":
        return f"{high} faces fail to match another image of the same person {r}× as often as {low} faces"
    return f"the system fails to acquire a face in {high} images {r}× as often as in {low} images"


def _zero_phrase(metric: str, high: _Obs, low: _Obs) -> str:
    """The sentence body when the lowest group has no error (the ratio is infinite)."""
    e, n, p = _count(high.errors), _count(high.trials), pct(high.rate)
    if metric == "fta":
        return (f"the system fails to acquire a face in {e} of {n} {high.group} images ({p}), "
                f"versus none of {_count(low.trials)} {low.group} images")
    counts = f"{e} of {n} {_UNITS[metric]} ({p})"
    if metric == "fmr":
        body = f"{high.group} faces are falsely matched with one another in {counts}"
    else:
        body = f"{high.group} faces fail to match another image of the same person in {counts}"
    return f"{body}, versus none of {_count(low.trials)} for {low.group}"


def _cap(text: str) -> str:
    """Capitalise a sentence's first letter (group names may start in lower case)."""
    return text[:1].upper() + text[1:]


def _lead(t: ThresholdInfo | None, rest: str) -> str:
    if t is None:
        return _cap(rest)
    return f"{_at(t)}, {rest}"


def _level(basis: float) -> str:
    """``1 in 1,000`` for a basis of 1e-3; a percentage otherwise."""
    k = 1.0 / basis
    return f"1 in {round(k):,}" if abs(k - round(k)) <= 1e-6 * k else pct(basis)


def _small_sentence(metric: str, flagged: list[_Obs], t: ThresholdInfo | None) -> str:
    names = _names([o.group for o in flagged])
    verb = "has" if len(flagged) == 1 else "have"
    need = _needed(t)
    if need and t is not None:
        basis = next(v for v in (_num(t.target_fmr), _num(t.achieved_fmr)) if math.isfinite(v) and v > 0)
        # a group can hold enough comparisons and still be flagged: its few people recur across them,
        # so they count as fewer independent ones (the rates table's effective_trials)
        effective = any(o.trials >= need for o in flagged)
        counted = ", counted effectively (comparisons that share a person count as fewer)," if effective else ""
        return (f" {_cap(names)} {verb} fewer {_UNITS[metric]}{counted} than the {_count(need)} (3/FMR) needed to measure "
                f"an FMR as low as {_level(basis)}: the sample is too small, so read this as an indication, "
                "not a measurement.")
    return f" {_cap(names)} {verb} too few {_UNITS[metric]}: the sample is too small, so read this as an indication."


def _context(metric: str, obs: list[_Obs], high: _Obs, low: _Obs) -> str:
    largest = max(obs, key=lambda o: (o.trials, -o.order))
    if largest.group in (high.group, low.group):
        return ""
    ci = (f" (95% CI {pct(largest.ci_low)}–{pct(largest.ci_high)})"
          if math.isfinite(largest.ci_low) and math.isfinite(largest.ci_high) else "")
    return (f" For context, the largest group, {largest.group} ({_count(largest.trials)} {_UNITS[metric]}), "
            f"has {_RATE_NAMES[metric]} of {pct(largest.rate)}{ci}.")


def _pair_intervals(result: AuditResult) -> dict[tuple[str, str, str], tuple[str, str, float, float]]:
    """(grouping, threshold, metric) -> (highest group, lowest group, subject-bootstrap interval of
    their rate ratio), from the disparity table's max/min rows (results without it: empty)."""
    d = result.disparity
    if not isinstance(d, pd.DataFrame) or "pair_ci_low" not in d.columns or d.empty:
        return {}
    out = {}
    rows = d[(d["summary"].astype(str) == "max_min_ratio").to_numpy(dtype=bool)]
    for r in rows.to_dict("records"):
        lo, hi = _num(r.get("pair_ci_low")), _num(r.get("pair_ci_high"))
        if math.isnan(lo) or math.isnan(hi):
            continue
        out[(str(r["grouping"]), str(r["threshold_name"]), str(r["metric"]).lower())] = (
            str(r.get("group_high")), str(r.get("group_low")), lo, hi)
    return out


def _finding(grouping: str, metric: str, t: ThresholdInfo | None, obs: list[_Obs],
             pair: tuple[str, str, float, float] | None = None) -> Finding | None:
    if len(obs) < 2:
        return None
    tname = t.name if t is not None else None
    if all(o.errors == 0 for o in obs):
        total = sum(o.trials for o in obs)
        lo = min(obs, key=lambda o: (_num(o.ci_high) if math.isfinite(o.ci_high) else math.inf, o.order))
        hi = max(obs, key=lambda o: (_num(o.ci_high) if math.isfinite(o.ci_high) else -math.inf, -o.order))
        text = _lead(t, f"no {_label(grouping)} group had a {_ERROR_NAMES[metric]}: 0 of {_count(total)} "
                        f"{_UNITS[metric]}, so no difference between groups is shown.")
        if math.isfinite(lo.ci_high) and math.isfinite(hi.ci_high):
            text += (f" Zero observed is not zero: the groups' 95% upper bounds run from {pct(lo.ci_high)} "
                     f"({lo.group}) to {pct(hi.ci_high)} ({hi.group}).")
        return Finding(text, grouping, metric, tname, math.nan, math.nan, math.nan, False)

    high = max(obs, key=lambda o: (o.rate, o.trials, -o.order))
    low = min(obs, key=lambda o: (o.rate, -o.trials, o.order))
    n_pairs = len(obs) * (len(obs) - 1) // 2
    ci = rate_ratio_interval(high.errors, high.trials, low.errors, low.trials, confidence=1 - 0.05 / max(1, n_pairs))
    method, c_low, c_high = (ci.method if n_pairs <= 1 else f"{ci.method}, Bonferroni over {n_pairs} pairs"), ci.low, ci.high
    if pair is not None and pair[0] == high.group and pair[1] == low.group:
        # people take part in many comparisons: the people-level interval, simultaneous over the groups
        method = "people bootstrap, simultaneous over the groups"
        c_low, c_high = pair[2], pair[3]
    flagged = [o for o in (high, low) if o.insufficient]
    small = bool(flagged)
    if low.errors == 0:
        ratio, ci_low, ci_high = math.inf, c_low, math.inf
        ci_low = 0.0 if math.isnan(ci_low) else ci_low
        ub = f"at most {pct(low.ci_high)}, 95% upper bound" if math.isfinite(low.ci_high) else "no upper bound recorded"
        text = _lead(t, f"{_zero_phrase(metric, high, low)} ({ub}).")
        if ci_low > 1:
            text += (f" That is at least {times(ci_low)}× as often (95% lower bound of the ratio"
                     + (", holding for every pair of groups at once)." if n_pairs > 1 else ")."))
        else:
            text += (f" No difference shown: the interval for the ratio, from {times(ci_low)}× upward, "
                     "includes parity.")
    else:
        ratio, ci_low, ci_high = ci.ratio, c_low, c_high
        text = _lead(t, f"{_phrase(metric, high.group, low.group, times(ratio))} "
                        f"(95% {'simultaneous ' if n_pairs > 1 else ''}CI {times(ci_low)}–{times(ci_high)}×): {_count(high.errors)} of "
                        f"{_count(high.trials)} {_UNITS[metric]} ({pct(high.rate)}) versus {_count(low.errors)} "
                        f"of {_count(low.trials)} ({pct(low.rate)}).")
        if not ci_low > 1:
            text += " No difference shown: the interval includes parity."
    if small:
        text += _small_sentence(metric, flagged, t)
    text += _context(metric, obs, high, low)
    return Finding(text, grouping, metric, tname, ratio, ci_low, ci_high, bool(ci_low > 1 and not small),
                   high.group, low.group, small, method)


def _thresholds(result: AuditResult) -> list[ThresholdInfo]:
    return [t for t in result.thresholds if t.kind == "target_fmr"] or list(result.thresholds)


def executive_summary(result: AuditResult) -> list[Finding]:
    """Plain-language findings: for each grouping, the highest against the lowest group.

    Parameters
    ----------
    result : AuditResult
        Read only: ``rates`` (counts and intervals, ``insufficient``), ``fta``,
        ``composition`` (report order of groups), ``thresholds`` and ``groupings``.

    Returns
    -------
    list of Finding
        In report order: for each grouping, for each target-FMR threshold (every threshold when
        there is no target-FMR one), the FMR finding then the FNMR finding; then the grouping's
        FTA finding when any of its groups failed to acquire an image. A grouping, threshold or
        metric with fewer than two groups that have comparisons gives no finding. Empty when the
        result has no rates.

    Examples
    --------
    A group with 10 false matches in 100 same-group impostor pairs against one with 5 in 200:
    ratio ``(10/100) / (5/200) = 4``, Katz interval ``4 · exp(∓1.96 · √(1/10 − 1/100 + 1/5 − 1/200))``
    = 1.4–11.4, so the finding reads "… 4.0× as often as … (95% CI 1.4–11×) …". Against a group
    with no false match in 200 the ratio is infinite and the finding gives the counts instead,
    with the ratio's lower bound from the conditional interval.
    """
    findings: list[Finding] = []
    thresholds = _thresholds(result)
    pairs = _pair_intervals(result)
    for grouping in _groupings(result):
        order = _order(result, grouping)
        rates = result.rates[(result.rates["grouping"] == grouping).to_numpy(dtype=bool)]
        metric_col = rates["metric"].astype(str).str.lower()
        for t in thresholds:
            at = rates[(rates["threshold_name"] == t.name).to_numpy(dtype=bool)]
            for metric in ("fmr", "fnmr"):
                sub = at[(metric_col.loc[at.index] == metric).to_numpy(dtype=bool)]
                f = _finding(grouping, metric, t, _observations(sub, "errors", "trials", order),
                             pairs.get((grouping, t.name, metric)))
                if f is not None:
                    findings.append(with_adjusted(result, f))  # "most of this gap goes with age: ..."
        fta = result.fta[(result.fta["grouping"] == grouping).to_numpy(dtype=bool)]
        obs = _observations(fta, "failures", "attempts", order)
        if any(o.errors > 0 for o in obs):
            f = _finding(grouping, "fta", None, obs)
            if f is not None:
                findings.append(f)
    return findings


def findings_by_grouping(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    """Findings keyed by grouping, in first-seen order."""
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.grouping, []).append(f)
    return out
