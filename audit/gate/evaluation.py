"""Evaluating a policy on a result (and optionally a baseline): the checks, pass or fail.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

import pandas as pd

from ..identification.result import IdentificationResult
from ..verification.result import AuditResult
from .policy import (
    CHECK_COLUMNS,
    GateError,
    IDENTIFICATION_KINDS,
    OVERALL,
    Policy,
    Result,
    Rule,
)
from .outputs import (
    GateReport,
    _estimate,
    _flag,
    _float,
    _int,
    _num,
    _plain,
    _present,
    _sorted,
    _spread,
    _within,
)



# ================================================================================ evaluation


def evaluate(policy: Policy, result: Result, *, baseline: Result | None = None) -> GateReport:
    """Evaluate every rule of ``policy`` on ``result``.

    Parameters
    ----------
    policy : Policy
        From :func:`load_policy` or :func:`policy_from_dict`.
    result : AuditResult or IdentificationResult
        The audit to judge (``fpir``/``fnir`` rules need an IdentificationResult).
    baseline : AuditResult or IdentificationResult, optional
        An earlier audit (the last accepted model); needed by ``baseline`` rules, ignored otherwise.

    Returns
    -------
    GateReport
        ``checks`` has one row per group checked (per grouping for disparity rules); ``passed``
        is True when no check has status ``"fail"``.

    Rules
    -----
    - ``rate``/``fta``/``fpir``/``fnir``: the number named by ``bound`` (point estimate, or the upper/lower end of
      the 95% interval) must satisfy ``min <= x <= max`` (limits inclusive).
    - ``disparity``: the summary's value must satisfy the limits; ``inf`` (a ratio over a group
      with a zero rate) fails a ``max``.
    - ``baseline``: fails when the new point estimate exceeds the baseline's upper interval end
      plus ``tolerance``.
    - Skipped, not failed: groups without trials (NaN), groups with fewer than ``min_trials``
      trials, groups flagged ``insufficient`` when ``skip_insufficient``, NaN summaries, and
      groups present in only one of result and baseline.

    Raises
    ------
    GateError
        When a rule names a threshold, grouping, metric or summary the results (or the
        baseline) lack, listing what they have; or when a baseline rule has no baseline.

    Examples
    --------
    >>> report = evaluate(load_policy("policy.toml"), AuditResult.from_json("results.json"))  # doctest: +SKIP
    >>> print(report.to_text())                                                               # doctest: +SKIP
    """
    if not isinstance(policy, Policy):
        raise GateError(f"evaluate() expects a Policy (from load_policy), got {type(policy).__name__}")
    for name, res in (("result", result), ("baseline", baseline)):
        if res is not None and not isinstance(res, (AuditResult, IdentificationResult)):
            raise GateError(f"evaluate() expects {name} to be an AuditResult or IdentificationResult "
                            f"(audit.identification.read_result), got {type(res).__name__}")
    for rule in policy.rules:
        if rule.kind in IDENTIFICATION_KINDS and not isinstance(result, IdentificationResult):
            raise GateError(
                f"{policy.source}: {rule.label}: field 'kind': {rule.kind!r} reads a 1:N identification result "
                "(a results.json with \"result_kind\": \"identification\"), but these results are a 1:1 audit; "
                "use kind = \"rate\" with metric = \"fmr\" or \"fnmr\""
            )
        if rule.kind == "baseline" and baseline is None:
            raise GateError(
                f"{policy.source}: {rule.label}: kind 'baseline' compares with an earlier result, but no baseline "
                "was given; pass --baseline OLD.json (or baseline= to evaluate/assert_policy)"
            )
    rows: list[tuple] = []
    for rule in policy.rules:
        rows += _EVALUATORS[rule.kind](rule, result, baseline, policy.source)
    checks = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    checks["value"] = checks["value"].astype(float)
    passed = not bool((checks["status"] == "fail").any())
    return GateReport(
        checks=checks, passed=passed, policy=policy, title=result.title,
        baseline_title=baseline.title if baseline is not None else None,
    )


def _rule_error(src: str, rule: Rule, fld: str, msg: str) -> GateError:
    return GateError(f"{src}: {rule.label}: field {fld!r}: {msg}")


def _groupings(rule: Rule, result: AuditResult, table: pd.DataFrame, src: str, what: str) -> list[str]:
    """The grouping ids a rule covers, checked against the result."""
    present = [str(g) for g in dict.fromkeys(table["grouping"].tolist())]
    known = list(result.groupings) + [g for g in present if g not in result.groupings]
    if rule.grouping == "*":
        gs = list(result.groupings) or [g for g in present if g != OVERALL]
        if not gs:
            raise _rule_error(src, rule, "grouping", f"'*' asks for every grouping, but {what} have none")
        return gs
    if rule.grouping not in known:
        raise _rule_error(
            src, rule, "grouping",
            f"{rule.grouping!r} is not a grouping of {what}; available: {known} (or \"*\" for every grouping)",
        )
    return [rule.grouping]


_NUM_NAME = re.compile(r"^\s*([A-Za-z]+)\s*(=|\s)\s*([-+0-9.eE]+)\s*$")


def _threshold_key(name: str) -> tuple[str, float] | None:
    """``"FMR=1e-03"`` and ``"FMR=1e-3"`` -> ``("fmr=", 0.001)``; None for other names."""
    m = _NUM_NAME.match(name)
    if not m:
        return None
    try:
        return (m.group(1).lower() + m.group(2).strip(), float(m.group(3)))
    except ValueError:
        return None


def _threshold(rule: Rule, result: AuditResult, table: pd.DataFrame, src: str, what: str) -> str:
    """The result's own name of the rule's threshold ("FMR=1e-03" finds "FMR=1e-3")."""
    names = [t.name for t in result.thresholds]
    names += [str(n) for n in dict.fromkeys(table["threshold_name"].tolist()) if n not in names]
    wanted = rule.threshold or ""
    if wanted in names:
        return wanted
    key = _threshold_key(wanted)
    if key is not None:
        for n in names:
            if _threshold_key(n) == key:
                return n
    raise _rule_error(src, rule, "threshold", f"{wanted!r} is not a threshold of {what}; available: {names}")


def _metric(rule: Rule, table: pd.DataFrame, src: str, what: str, extra: tuple[str, ...] = ()) -> None:
    available = sorted(set(table["metric"].astype(str))) + [m for m in extra]
    if rule.metric not in available:
        raise _rule_error(src, rule, "metric", f"{rule.metric!r} is not a metric of {what}; available: {available}")


def _eval_disparity(rule: Rule, result: AuditResult, baseline: AuditResult | None, src: str) -> list[tuple]:
    table = result.disparity
    what = "the results' disparity table"
    if table.empty:
        raise _rule_error(src, rule, "kind", "the results' disparity table is empty (a disparity summary needs a "
                          "grouping with at least 2 groups); use a 'rate' rule, or audit with such a grouping")
    groupings = _groupings(rule, result, table, src, what)
    threshold = _threshold(rule, result, table, src, what)
    _metric(rule, table, src, what)
    summaries = sorted(set(table["summary"].astype(str)))
    if rule.summary not in summaries:
        raise _rule_error(src, rule, "summary", f"{rule.summary!r} is not a summary in {what}; available: {summaries}")
    rows = []
    for g in groupings:
        df = table[(table["grouping"] == g) & (table["threshold_name"] == threshold)
                   & (table["metric"] == rule.metric) & (table["summary"] == rule.summary)]
        base = (rule.name, rule.kind, g, "", threshold, rule.metric)
        if df.empty:
            rows.append(base + (math.nan, "point", rule.limit_text(), "skip",
                                f"no {rule.summary} of {rule.metric} for grouping {g!r} at {threshold} in the results"))
            continue
        for d in df.itertuples(index=False):
            v = _float(d.value)
            note = str(d.note) if isinstance(d.note, str) and d.note else ""
            spread = _spread(d.group_high, d.group_low, d.groups_used)
            if math.isnan(v):
                rows.append(base + (v, "point", rule.limit_text(), "skip",
                                    f"{rule.summary} is NaN" + (f": {note}" if note else " (fewer than 2 groups with trials)")))
                continue
            ok = _within(v, rule.min, rule.max)
            if ok:
                detail = f"{rule.summary} = {_num(v)}" + spread
            elif math.isinf(v) and v > 0:
                low = f" ({_plain(d.group_low)!r})" if _present(d.group_low) else ""
                detail = (f"{rule.summary} is infinite: a group had a zero rate{low}, so no finite max can hold"
                          + spread)
            else:
                detail = f"{rule.summary} = {_num(v)} violates {rule.limit_text()}" + spread
            if note:
                detail += f"; note: {note}"
            rows.append(base + (v, "point", rule.limit_text(), "pass" if ok else "fail", detail))
    return rows


def _eval_rate(rule: Rule, result: AuditResult, baseline: AuditResult | None, src: str) -> list[tuple]:
    table = result.rates
    what = "the results' rates table"
    groupings = _groupings(rule, result, table, src, what)
    threshold = _threshold(rule, result, table, src, what)
    _metric(rule, table, src, what)
    rows = []
    for g in groupings:
        df = _sorted(table[(table["grouping"] == g) & (table["threshold_name"] == threshold) & (table["metric"] == rule.metric)])
        if df.empty:
            rows.append((rule.name, rule.kind, g, "", threshold, rule.metric, math.nan, rule.bound, rule.limit_text(),
                         "skip", f"no {rule.metric} rows for grouping {g!r} at {threshold} in the results"))
        unit = "searches" if rule.metric in IDENTIFICATION_KINDS else "comparisons"
        for r in df.itertuples(index=False):
            rows.append(_interval_check(rule, g, str(r.group), threshold, r.value, r.ci_low, r.ci_high,
                                        r.errors, r.trials, _flag(r.insufficient), unit))
    return rows


def _eval_fta(rule: Rule, result: AuditResult, baseline: AuditResult | None, src: str) -> list[tuple]:
    table = result.fta
    groupings = _groupings(rule, result, table, src, "the results' FTA table")
    rows = []
    for g in groupings:
        df = _sorted(table[table["grouping"] == g])
        if df.empty:
            rows.append((rule.name, rule.kind, g, "", "", "fta", math.nan, rule.bound, rule.limit_text(),
                         "skip", f"no FTA rows for grouping {g!r} in the results"))
        for r in df.itertuples(index=False):
            rows.append(_interval_check(rule, g, str(r.group), "", r.value, r.ci_low, r.ci_high,
                                        r.failures, r.attempts, False, "attempts"))
    return rows


def _interval_check(rule: Rule, grouping: str, group: str, threshold: str, value: Any, lo: Any, hi: Any,
                    errors: Any, trials: Any, insufficient: bool, unit: str) -> tuple:
    v, lo, hi = _float(value), _float(lo), _float(hi)
    n = _int(trials)
    est = _estimate(rule.metric, v, lo, hi, errors, trials)
    x = {"point": v, "upper": hi, "lower": lo}[rule.bound]
    base = (rule.name, rule.kind, grouping, group, threshold, rule.metric)
    limit = rule.limit_text()

    def skip(why: str) -> tuple:
        return base + (x, rule.bound, limit, "skip", why)

    if math.isnan(v) or n == 0:
        return skip(f"no {unit} (the rate is NaN)")
    if n < rule.min_trials:
        return skip(f"only {n} {unit}, fewer than min_trials = {rule.min_trials}; {est}")
    if insufficient and rule.skip_insufficient:
        return skip(f"flagged insufficient (too few {unit} for this threshold) and skip_insufficient = true; {est}")
    if math.isnan(x):
        return skip(f"no {rule.bound} interval end; {est}")
    ok = _within(x, rule.min, rule.max)
    what = "point estimate" if rule.bound == "point" else f"{rule.bound} end of the 95% interval"
    detail = est if ok else f"{what} {_num(x)} violates {limit}; {est}"
    if insufficient:
        detail += " (flagged insufficient)"
    return base + (x, rule.bound, limit, "pass" if ok else "fail", detail)


def _eval_baseline(rule: Rule, result: AuditResult, baseline: AuditResult | None, src: str) -> list[tuple]:
    if baseline is None:  # evaluate() checks this first; kept for direct callers
        raise _rule_error(src, rule, "kind", "kind 'baseline' needs a baseline result; pass --baseline OLD.json")
    if rule.metric == "fta":
        table = "FTA table"
        new_t, old_t = result.fta, baseline.fta
        threshold = ""
        cols = ("failures", "attempts")
    else:
        table = "rates table"
        new_t, old_t = result.rates, baseline.rates
        cols = ("errors", "trials")
    groupings = _groupings(rule, result, new_t, src, f"the results' {table}")
    if rule.grouping != "*":  # with "*", groupings the baseline lacks are reported as skipped
        _groupings(rule, baseline, old_t, src, f"the baseline results' {table}")
    if rule.metric != "fta":
        threshold = _threshold(rule, result, new_t, src, "the results' rates table")
        old_threshold = _threshold(rule, baseline, old_t, src, "the baseline results' rates table")
        _metric(rule, new_t, src, "the results' rates table", extra=("fta",))
        _metric(rule, old_t, src, "the baseline results' rates table", extra=("fta",))
        new_t = new_t[(new_t["threshold_name"] == threshold) & (new_t["metric"] == rule.metric)]
        old_t = old_t[(old_t["threshold_name"] == old_threshold) & (old_t["metric"] == rule.metric)]
    rows = []
    for g in groupings:
        new = {str(r.group): r for r in _sorted(new_t[new_t["grouping"] == g]).itertuples(index=False)}
        old = {str(r.group): r for r in _sorted(old_t[old_t["grouping"] == g]).itertuples(index=False)}
        for group in list(new) + [k for k in old if k not in new]:
            rows.append(_baseline_check(rule, g, group, threshold, new.get(group), old.get(group), cols))
        if not new and not old:
            rows.append((rule.name, rule.kind, g, "", threshold, rule.metric, math.nan, "point", "", "skip",
                         f"no {rule.metric} rows for grouping {g!r} in the results or the baseline"))
    return rows


def _baseline_check(rule: Rule, grouping: str, group: str, threshold: str, new: Any, old: Any,
                    cols: tuple[str, str]) -> tuple:
    base = (rule.name, rule.kind, grouping, group, threshold, rule.metric)
    unit = "attempts" if rule.metric == "fta" else "comparisons"

    def est(r: Any) -> str:
        return _estimate(rule.metric, r.value, r.ci_low, r.ci_high, getattr(r, cols[0]), getattr(r, cols[1]))

    if new is None:
        return base + (math.nan, "point", "", "skip", f"in the baseline ({est(old)}) but not in these results")
    v = _float(new.value)
    if old is None:
        return base + (v, "point", "", "skip", f"not in the baseline; new {est(new)}")
    old_hi = _float(old.ci_high)
    limit_v = old_hi + rule.tolerance
    limit = f"<= {_num(limit_v, 6)}" if not math.isnan(limit_v) else ""
    tol = f" + tolerance {rule.tolerance:g}" if rule.tolerance else ""
    both = f"new {est(new)}; baseline {est(old)}{tol}"

    def skip(why: str) -> tuple:
        return base + (v, "point", limit, "skip", why)

    n = _int(getattr(new, cols[1]))
    if math.isnan(v) or n == 0:
        return skip(f"no {unit} in these results (the rate is NaN); baseline {est(old)}")
    if n < rule.min_trials:
        return skip(f"only {n} {unit}, fewer than min_trials = {rule.min_trials}; {both}")
    insufficient = _flag(getattr(new, "insufficient", False)) or _flag(getattr(old, "insufficient", False))
    if insufficient and rule.skip_insufficient:
        return skip(f"flagged insufficient (in these results or the baseline) and skip_insufficient = true; {both}")
    if math.isnan(old_hi):
        return skip(f"no {unit} in the baseline; new {est(new)}")
    ok = v <= limit_v
    detail = both if ok else f"new {_num(v)} is above the baseline's upper interval end{tol} ({_num(limit_v, 6)}); {both}"
    return base + (v, "point", limit, "pass" if ok else "fail", detail)


_EVALUATORS: dict[str, Callable[[Rule, AuditResult, AuditResult | None, str], list[tuple]]] = {
    "disparity": _eval_disparity,
    "rate": _eval_rate,
    "fta": _eval_fta,
    "baseline": _eval_baseline,
    "fpir": lambda rule, result, baseline, src: _eval_rate(rule, result, baseline, src),
    "fnir": lambda rule, result, baseline, src: _eval_rate(rule, result, baseline, src),
}
