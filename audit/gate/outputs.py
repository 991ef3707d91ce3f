"""The gate's report: one row per check, and its JUnit XML and Markdown forms.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .policy import (
    Policy,
)



# ================================================================================ report


@dataclass(frozen=True, eq=False)
class GateReport:
    """The outcome of evaluating a policy on a result.

    Attributes
    ----------
    checks : pandas.DataFrame
        One row per check, columns :data:`CHECK_COLUMNS`, in rule order then grouping and group
        order:

        - ``rule``, ``kind``: the rule's name and kind;
        - ``grouping``, ``group``: what was checked (``group`` is ``""`` for a disparity summary,
          which spans the groups of its grouping);
        - ``threshold`` (``""`` for FTA), ``metric`` (``"fmr"``, ``"fnmr"``, ``"fta"``);
        - ``value`` (float): the number compared with the limit: the point estimate, or the
          interval end named by ``bound_used``; NaN for a skipped group without trials;
        - ``bound_used``: ``"point"``, ``"upper"`` or ``"lower"``;
        - ``limit``: the limits as text (``"<= 0.05"``; for a baseline rule the baseline's upper
          interval end plus the tolerance);
        - ``status``: ``"pass"``, ``"fail"`` or ``"skip"``;
        - ``detail``: the estimate, interval and counts, or why the check failed or was skipped.
    passed : bool
        True when no check failed (skipped checks do not fail the gate).
    policy : Policy
    title : str
        The audited result's title.
    baseline_title : str or None
        The baseline result's title, when one was given.
    """

    checks: pd.DataFrame
    passed: bool
    policy: Policy
    title: str = ""
    baseline_title: str | None = None

    # ------------------------------------------------------------------ structure
    def by_rule(self) -> pd.DataFrame:
        """One row per rule in policy order: ``rule, kind, status, passed, failed, skipped``.

        A rule fails when any of its checks fails, passes when none fails and at least one
        passes, and is skipped when every check was skipped.
        """
        rows = []
        for rule in self.policy.rules:
            st = self.checks.loc[self.checks["rule"] == rule.name, "status"]
            n_pass, n_fail, n_skip = int((st == "pass").sum()), int((st == "fail").sum()), int((st == "skip").sum())
            status = "fail" if n_fail else ("pass" if n_pass else "skip")
            rows.append((rule.name, rule.kind, status, n_pass, n_fail, n_skip))
        return pd.DataFrame(rows, columns=["rule", "kind", "status", "passed", "failed", "skipped"])

    def failures(self) -> pd.DataFrame:
        """The failing checks (a slice of :attr:`checks`)."""
        return self.checks[self.checks["status"] == "fail"].reset_index(drop=True)

    def _headline(self) -> str:
        rules = self.by_rule()
        n_fail = int((rules["status"] == "fail").sum())
        counts = self.checks["status"].value_counts()
        checks = (f"{int(counts.get('fail', 0))} check(s) failed, {int(counts.get('pass', 0))} passed, "
                  f"{int(counts.get('skip', 0))} skipped")
        if self.passed:
            return f"passed: all {len(rules)} rule(s) hold ({checks})"
        return f"failed: {n_fail} of {len(rules)} rule(s) failed ({checks})"

    def failure_summary(self) -> str:
        """Plain text listing every failing check by rule; ``""`` when the gate passed.

        This is the message of the ``AssertionError`` raised by :func:`assert_policy`.
        """
        if self.passed:
            return ""
        lines = [f"fairness gate {self._headline()}"]
        if self.policy.path is not None:
            lines.append(f"policy: {self.policy.path}")
        if self.title:
            lines.append(f"results: {self.title}")
        for rule in self.policy.rules:
            bad = self.checks[(self.checks["rule"] == rule.name) & (self.checks["status"] == "fail")]
            if bad.empty:
                continue
            lines.append("")
            lines.append(f"rule {rule.index} {rule.name!r} ({rule.kind}): {len(bad)} failing check(s)")
            lines += [f"  - {_check_line(c)}" for c in bad.itertuples(index=False)]
        return "\n".join(lines)

    # ------------------------------------------------------------------ renderings
    def to_text(self) -> str:
        """A plain table for the terminal: each rule with its status, then its checks."""
        out = [f"face-audit gate: {self.policy.source}" + (f" on {self.title!r}" if self.title else "")]
        if self.baseline_title is not None:
            out.append(f"baseline: {self.baseline_title!r}")
        cols = ["status", "grouping", "group", "threshold", "metric", "value", "bound_used", "limit", "detail"]
        cells = [[_plain(v) for v in (c.status, c.grouping, c.group or "-", c.threshold or "-", c.metric,
                                      _num(c.value), c.bound_used, c.limit, c.detail)]
                 for c in self.checks.itertuples(index=False)]
        header = ["status", "grouping", "group", "threshold", "metric", "value", "bound", "limit", "detail"]
        widths = [max([len(header[k])] + [len(row[k]) for row in cells]) for k in range(len(cols) - 1)]

        def line(row: list[str]) -> str:
            return "  " + "  ".join(v.ljust(w) for v, w in zip(row[:-1], widths)) + "  " + row[-1]

        rules = self.by_rule()
        for rule, summary in zip(self.policy.rules, rules.itertuples(index=False)):
            out.append("")
            out.append(f"[{summary.status.upper()}] {_plain(rule.name)}  ({rule.kind}; {summary.failed} failed, "
                       f"{summary.passed} passed, {summary.skipped} skipped)")
            out.append(line(header).rstrip())
            idx = [k for k, c in enumerate(self.checks["rule"]) if c == rule.name]
            out += [line(cells[k]).rstrip() for k in idx]
        out.append("")
        out.append(("PASSED " if self.passed else "FAILED ") + self._headline().split(": ", 1)[1])
        return "\n".join(out)

    def to_markdown(self) -> str:
        """A pull-request comment: a ✅/❌ headline, a table of rules, then the failing checks.

        Labels, rule names and details are escaped (``<``, ``>``, ``&`` as HTML entities;
        ``|`` and Markdown punctuation with a backslash), so user-supplied group names cannot
        break the tables or inject markup.
        """
        rules = self.by_rule()
        icon = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⚪ skip"}
        out = [("## ✅ Fairness gate passed" if self.passed else "## ❌ Fairness gate failed"), ""]
        out.append(f"**{_md(self._headline().split(': ', 1)[1])}**")
        out.append("")
        meta = [f"Policy: {_md(self.policy.title or self.policy.source)}"]
        if self.title:
            meta.append(f"Results: {_md(self.title)}")
        if self.baseline_title is not None:
            meta.append(f"Baseline: {_md(self.baseline_title)}")
        out.append(" · ".join(meta))
        out.append("")
        out.append("| Rule | Kind | Status | Passed | Failed | Skipped |")
        out.append("|---|---|---|---:|---:|---:|")
        for r in rules.itertuples(index=False):
            out.append(f"| {_md(r.rule)} | {r.kind} | {icon[r.status]} | {r.passed} | {r.failed} | {r.skipped} |")
        fails = self.failures()
        if not fails.empty:
            out += ["", "### Failing checks", ""]
            out += _md_table(fails)
        skips = self.checks[self.checks["status"] == "skip"]
        if not skips.empty:
            out += ["", f"<details><summary>Skipped checks ({len(skips)})</summary>", ""]
            out += _md_table(skips)
            out += ["", "</details>"]
        return "\n".join(out) + "\n"

    def to_junit_xml(self) -> str:
        """JUnit XML: one ``<testsuite>``, one ``<testcase>`` per rule.

        A failing rule has a ``<failure>`` listing its failing groups; a rule whose checks were
        all skipped has ``<skipped>``; every test case's ``<system-out>`` lists all its checks.
        Text is escaped by :mod:`xml.etree.ElementTree`; characters XML cannot hold are dropped.
        """
        rules = self.by_rule()
        n_fail = int((rules["status"] == "fail").sum())
        n_skip = int((rules["status"] == "skip").sum())
        suite_name = self.policy.title or (f"fairness gate ({self.policy.path.name})" if self.policy.path else "fairness gate")
        classname = "face_audit.gate." + re.sub(r"[^A-Za-z0-9_]+", "_", self.policy.path.stem if self.policy.path else "policy")
        counts = {"tests": str(len(rules)), "failures": str(n_fail), "errors": "0", "skipped": str(n_skip)}
        root = ET.Element("testsuites", {"name": "face-audit gate", **counts})
        suite = ET.SubElement(root, "testsuite", {"name": _xml(suite_name), **counts})
        props = ET.SubElement(suite, "properties")
        for k, v in (("policy", self.policy.source), ("results", self.title), ("baseline", self.baseline_title)):
            if v is not None:
                ET.SubElement(props, "property", name=k, value=_xml(v))
        for rule, summary in zip(self.policy.rules, rules.itertuples(index=False)):
            case = ET.SubElement(suite, "testcase", name=_xml(rule.name), classname=classname)
            checks = self.checks[self.checks["rule"] == rule.name]
            if summary.status == "fail":
                bad = checks[checks["status"] == "fail"]
                fail = ET.SubElement(case, "failure", {
                    "message": _xml(f"{len(bad)} of {len(checks)} check(s) failed: "
                                    + ", ".join(_where(c) for c in bad.itertuples(index=False))),
                    "type": "FairnessGateFailure",
                })
                fail.text = _xml("\n".join(_check_line(c) for c in bad.itertuples(index=False)))
            elif summary.status == "skip":
                ET.SubElement(case, "skipped", message=_xml(
                    "every check was skipped: " + "; ".join(sorted(set(checks["detail"].astype(str))))))
            out = ET.SubElement(case, "system-out")
            out.text = _xml("\n".join(f"{c.status}: {_check_line(c)}" for c in checks.itertuples(index=False)))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"




# ================================================================================ helpers


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _int(v: Any) -> int:
    f = _float(v)
    return int(f) if math.isfinite(f) else 0


def _flag(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    return bool(v)


def _present(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in group-label order, so that row order in the results does not matter."""
    return df.assign(_key=df["group"].astype(str)).sort_values("_key", kind="stable").drop(columns="_key")


def _within(x: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or x >= lo) and (hi is None or x <= hi)


def _num(x: Any, digits: int = 4) -> str:
    f = _float(x)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f"{f:.{digits}g}"


def _estimate(metric: str, v: Any, lo: Any, hi: Any, errors: Any, trials: Any) -> str:
    return f"{metric} {_num(v)} [{_num(lo)}, {_num(hi)}] ({_int(errors)}/{_int(trials)})"


def _spread(high: Any, low: Any, used: Any) -> str:
    parts = []
    if _present(high):
        parts.append(f"highest {_plain(high)!r}")
    if _present(low):
        parts.append(f"lowest {_plain(low)!r}")
    n = _float(used)
    if math.isfinite(n):
        parts.append(f"{int(n)} groups used")
    return ("; " + ", ".join(parts)) if parts else ""


def _where(c: Any) -> str:
    at = f" at {c.threshold}" if c.threshold else ""
    group = f" {c.group!r}" if c.group else ""
    return f"{c.grouping}{group}{at}"


def _check_line(c: Any) -> str:
    """One check as plain text: where, the value compared and the limit, the detail."""
    bound = "" if c.bound_used == "point" else f" ({c.bound_used} end)"
    limit = f", limit {c.limit}" if c.limit else ""
    return _plain(f"{_where(c)}: {c.metric} {_num(c.value)}{bound}{limit}: {c.detail}")


def _plain(s: Any) -> str:
    """One line of text: newlines and tabs become spaces."""
    return re.sub(r"[\r\n\t]+", " ", str(s))


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# Characters XML 1.0 cannot hold (control characters other than tab, newline, carriage return; surrogates).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _md(s: Any) -> str:
    """Escape text for a Markdown table cell: HTML entities for ``& < >``, backslashes for punctuation."""
    text = _plain(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _xml(s: Any) -> str:
    return _XML_INVALID.sub("", str(s))


def _md_table(df: pd.DataFrame) -> list[str]:
    out = ["| Rule | Grouping | Group | Threshold | Metric | Value | Bound | Limit | Detail |",
           "|---|---|---|---|---|---:|---|---|---|"]
    for c in df.itertuples(index=False):
        out.append(
            f"| {_md(c.rule)} | {_md(c.grouping)} | {_md(c.group) if c.group else '—'} | "
            f"{_md(c.threshold) if c.threshold else '—'} | {_md(c.metric)} | {_num(c.value)} | {c.bound_used} | "
            f"{_md(c.limit)} | {_md(c.detail)} |"
        )
    return out
