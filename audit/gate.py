"""The CI fairness gate: policy rules (TOML) evaluated on an :class:`~audit.results.AuditResult`.

A *policy* is a list of rules. Each rule reads one table of a result (``disparity``, ``rates`` or
``fta``), or compares a result with an earlier one (``baseline``), and yields one *check* per
group (or per grouping, for a disparity summary) with the status ``"pass"``, ``"fail"`` or
``"skip"``. The gate passes when no check fails. See ``docs/gate.md`` for the policy format.

A 1:N identification result (:class:`~audit.identification.result.IdentificationResult`, whose
``results.json`` carries ``"result_kind": "identification"``) is read the same way: rules of kind
``"fpir"`` and ``"fnir"`` check its per-group FPIR and FNIR like a ``rate`` rule (``threshold``
names an FPIR threshold such as ``"FPIR=1e-2"``); ``fta``, ``disparity`` and ``baseline`` rules
(metric ``"fpir"``/``"fnir"``) work on it too.

Example policy::

    [[rule]]
    name = "FTA of every group at most 5%"
    kind = "fta"
    grouping = "*"
    max = 0.05

    [[rule]]
    name = "FNMR of every ethnicity x gender group at most 5%"
    kind = "rate"
    grouping = "ethnicity+gender"
    threshold = "FMR=1e-3"
    metric = "fnmr"
    max = 0.05
    bound = "upper"

From Python::

    >>> from audit.gate import load_policy, evaluate            # doctest: +SKIP
    >>> report = evaluate(load_policy("policy.toml"), AuditResult.from_json("results.json"))
    >>> report.passed, report.checks.query("status == 'fail'")

From the command line (exit code 0 pass, 1 a rule failed, 2 bad policy or results)::

    face-audit gate policy.toml results.json --baseline old.json --junit gate.xml --markdown gate.md

In a pytest suite::

    from audit.gate import assert_policy

    def test_model_is_fair_enough():
        assert_policy("reports/london-dlib/results.json", "examples/policies/london-pass.toml")

This module reads only :class:`AuditResult` objects (and their JSON files); it never runs an audit.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from .errors import FaceAuditError, ResultsError
from .identification.result import IdentificationResult, read_result
from .results import AuditResult

#: What the gate reads: a 1:1 audit result or a 1:N identification result.
Result = AuditResult | IdentificationResult

__all__ = [
    "GateError",
    "KINDS",
    "BOUNDS",
    "CHECK_COLUMNS",
    "Rule",
    "Policy",
    "GateReport",
    "load_policy",
    "policy_from_dict",
    "evaluate",
    "run_gate",
    "gate_main",
    "add_gate_arguments",
    "gate_command",
    "assert_policy",
    "IDENTIFICATION_KINDS",
]


class GateError(FaceAuditError, ValueError):
    """A gate policy is malformed, or asks for something the results do not have.

    The message names the policy file, the rule (its 1-based index and name) and the field, and
    lists what is available.
    """


#: Rule kinds: which table a rule reads.
KINDS: tuple[str, ...] = ("disparity", "rate", "fta", "baseline", "fpir", "fnir")

#: Rule kinds that read a 1:N identification result's rates (the kind is the metric).
IDENTIFICATION_KINDS: tuple[str, ...] = ("fpir", "fnir")

#: What a rate or FTA rule compares with its limits: the point estimate or an end of the 95% interval.
BOUNDS: tuple[str, ...] = ("point", "upper", "lower")

#: The fixed columns of :attr:`GateReport.checks`.
CHECK_COLUMNS: list[str] = [
    "rule", "kind", "grouping", "group", "threshold", "metric",
    "value", "bound_used", "limit", "status", "detail",
]

#: Grouping id of the whole population in the rates and FTA tables (not one of ``AuditResult.groupings``).
OVERALL = "all"

_COMMON_KEYS = frozenset({"name", "kind", "grouping"})
_KIND_KEYS: dict[str, frozenset[str]] = {
    "disparity": _COMMON_KEYS | {"threshold", "metric", "summary", "min", "max"},
    "rate": _COMMON_KEYS | {"threshold", "metric", "min", "max", "bound", "skip_insufficient", "min_trials"},
    "fta": _COMMON_KEYS | {"min", "max", "bound", "min_trials"},
    "baseline": _COMMON_KEYS | {"threshold", "metric", "tolerance", "skip_insufficient", "min_trials"},
    "fpir": _COMMON_KEYS | {"threshold", "min", "max", "bound", "skip_insufficient", "min_trials"},
    "fnir": _COMMON_KEYS | {"threshold", "min", "max", "bound", "skip_insufficient", "min_trials"},
}
_ALL_RULE_KEYS = frozenset().union(*_KIND_KEYS.values())
_TOP_KEYS = frozenset({"title", "rule"})


# ================================================================================ policy


@dataclass(frozen=True)
class Rule:
    """One rule of a policy, validated.

    Attributes
    ----------
    index : int
        1-based position of the rule in its policy (the n-th ``[[rule]]`` table).
    name : str
        Unique within the policy; names the JUnit test case.
    kind : {"disparity", "rate", "fta", "baseline", "fpir", "fnir"}
        ``"fpir"``/``"fnir"`` read an identification result's rates of that metric.
    grouping : str
        A grouping id (``"ethnicity"``, ``"ethnicity+gender"``), ``"all"`` for the whole
        population, or ``"*"`` for every grouping in ``AuditResult.groupings``.
    threshold : str or None
        A threshold name (``"FMR=1e-3"``, ``"default 0.6"``); ``None`` for FTA.
    metric : str
        ``"fmr"`` or ``"fnmr"`` (as the results have them); ``"fta"`` for kind ``"fta"`` and for a
        baseline rule on FTA.
    summary : str or None
        The disparity summary (``"max_min_ratio"``, ...); kind ``"disparity"`` only.
    min, max : float or None
        Limits, inclusive: a check passes when ``min <= x <= max``.
    bound : {"point", "upper", "lower"}
        Which number is compared with the limits (rate and FTA rules): the point estimate, or the
        upper or lower end of its 95% interval.
    skip_insufficient : bool
        Skip groups the results flag ``insufficient`` (rate and baseline rules).
    min_trials : int
        Skip groups with fewer trials (comparisons; attempts for FTA).
    tolerance : float
        Baseline rules: absolute slack added to the baseline's upper interval end.
    """

    index: int
    name: str
    kind: str
    grouping: str
    threshold: str | None = None
    metric: str = ""
    summary: str | None = None
    min: float | None = None
    max: float | None = None
    bound: str = "point"
    skip_insufficient: bool = False
    min_trials: int = 0
    tolerance: float = 0.0

    @property
    def label(self) -> str:
        """``rule 2 ('FTA of every group')``: how messages name this rule."""
        return f"rule {self.index} ({self.name!r})"

    def limit_text(self) -> str:
        """The limits as text: ``<= 0.05``, ``>= 0.8`` or ``in [0.001, 0.05]``."""
        return _limit_text(self.min, self.max)


@dataclass(frozen=True)
class Policy:
    """A validated gate policy.

    Attributes
    ----------
    rules : tuple of Rule
        In file order.
    path : pathlib.Path or None
        The policy file, when read from one.
    title : str
        Optional ``title`` from the file; ``""`` when absent.
    """

    rules: tuple[Rule, ...]
    path: Path | None = None
    title: str = ""

    @property
    def source(self) -> str:
        """How messages name this policy: its path, or ``<policy>``."""
        return str(self.path) if self.path is not None else "<policy>"

    def rule(self, name: str) -> Rule:
        """The rule called ``name``."""
        for r in self.rules:
            if r.name == name:
                return r
        raise GateError(f"{self.source}: no rule named {name!r}; rules are {[r.name for r in self.rules]}")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a gate policy (TOML).

    Checks the policy's own structure (keys, kinds, types, limits). Whether the thresholds,
    groupings, metrics and summaries it names exist is checked by :func:`evaluate`, which sees
    the results.

    Raises
    ------
    GateError
        Naming the file, the rule (index and name) and the field, saying what was expected and
        what was found.

    Examples
    --------
    >>> policy = load_policy("examples/policies/london-pass.toml")     # doctest: +SKIP
    >>> [r.kind for r in policy.rules]                                 # doctest: +SKIP
    ['fta', 'disparity', 'rate']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise GateError(f"policy file {path} does not exist; give the path of a policy TOML file") from exc
    except IsADirectoryError as exc:
        raise GateError(f"policy file {path} is a folder; give the path of a policy TOML file") from exc
    except UnicodeDecodeError as exc:
        raise GateError(f"{path}: not UTF-8 text ({exc.reason}); a policy is a TOML file") from exc
    except OSError as exc:
        raise GateError(f"policy file {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{path}: not valid TOML ({exc})") from exc
    return policy_from_dict(raw, path=path)


def policy_from_dict(raw: Mapping[str, Any], *, path: str | Path | None = None) -> Policy:
    """Validate a policy given as a dict (as parsed from TOML: ``{"rule": [{...}, ...]}``).

    Parameters
    ----------
    raw : Mapping
        ``rule``: a list of rule tables; optional ``title``.
    path : str or pathlib.Path, optional
        Where it came from, for messages.

    Raises
    ------
    GateError
        As :func:`load_policy`.
    """
    src = str(path) if path is not None else "<policy>"
    if not isinstance(raw, Mapping):
        raise GateError(f"{src}: expected a table of [[rule]] entries, found {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise GateError(
            f"{src}: field {unknown[0]!r}: unknown top-level key; a policy has [[rule]] tables and an "
            f"optional title (allowed: {sorted(_TOP_KEYS)})"
        )
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise GateError(f"{src}: field 'title': expected a string, found {title!r}")
    rules_raw = raw.get("rule")
    if rules_raw is None or (isinstance(rules_raw, list) and not rules_raw):
        raise GateError(f"{src}: field 'rule': the policy has no rules; add at least one [[rule]] table (see docs/gate.md)")
    if not isinstance(rules_raw, list):
        raise GateError(f"{src}: field 'rule': expected [[rule]] tables (a list of tables), found {type(rules_raw).__name__}")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(rules_raw, start=1):
        rule = _parse_rule(r, i, src)
        if rule.name in seen:
            raise GateError(
                f"{src}: {rule.label}: field 'name': the name is also used by rule {seen[rule.name]}; "
                "give every rule its own name (it names the JUnit test case)"
            )
        seen[rule.name] = i
        rules.append(rule)
    return Policy(rules=tuple(rules), path=Path(path) if path is not None else None, title=title)


def _parse_rule(r: Any, i: int, src: str) -> Rule:
    if not isinstance(r, Mapping):
        raise GateError(f"{src}: rule {i}: expected a [[rule]] table, found {r!r}")
    name = r.get("name")
    label = f"rule {i} ({name!r})" if isinstance(name, str) and name.strip() else f"rule {i}"

    def err(fld: str, msg: str) -> GateError:
        return GateError(f"{src}: {label}: field {fld!r}: {msg}")

    if "name" not in r:
        raise err("name", 'missing; give every rule a name = "..." (it names the JUnit test case)')
    if not isinstance(name, str) or not name.strip():
        raise err("name", f"expected a non-empty string, found {name!r}")
    kind = r.get("kind")
    if kind is None:
        raise err("kind", f"missing; give one of {list(KINDS)}")
    if kind not in KINDS:
        raise err("kind", f"unknown kind {kind!r}; kinds are {list(KINDS)}")
    allowed = _KIND_KEYS[kind]
    for key in sorted(set(r) - allowed):
        if key in _ALL_RULE_KEYS:
            raise err(key, f"does not apply to kind {kind!r}; keys for kind {kind!r} are {sorted(allowed)}")
        raise err(key, f"unknown key; keys for kind {kind!r} are {sorted(allowed)}")

    def string(fld: str, *, required: bool) -> str | None:
        if fld not in r:
            if required:
                raise err(fld, f"missing; kind {kind!r} needs it{_HINTS.get(fld, '')}")
            return None
        v = r[fld]
        if not isinstance(v, str) or not v.strip():
            raise err(fld, f"expected a non-empty string, found {v!r}{_HINTS.get(fld, '')}")
        return v

    def number(fld: str) -> float | None:
        if fld not in r:
            return None
        v = r[fld]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise err(fld, f"expected a finite number, found {v!r}")
        return float(v)

    grouping = string("grouping", required=True)
    metric = "fta" if kind == "fta" else (kind if kind in IDENTIFICATION_KINDS else string("metric", required=True))
    threshold = None
    if kind in ("disparity", "rate", *IDENTIFICATION_KINDS):
        threshold = string("threshold", required=True)
    elif kind == "baseline":
        if metric == "fta":
            if "threshold" in r:
                raise err("threshold", "does not apply to metric 'fta' (failure to acquire does not depend on a threshold); remove it")
        else:
            threshold = string("threshold", required=True)
    summary = string("summary", required=True) if kind == "disparity" else None

    lo, hi = number("min"), number("max")
    if kind != "baseline" and lo is None and hi is None:
        raise err("max", f"missing; a {kind!r} rule needs max (and/or min), e.g. max = 0.05")
    if lo is not None and hi is not None and lo > hi:
        raise err("min", f"min ({lo:g}) is above max ({hi:g}); no value could pass")

    bound = r.get("bound", "point")
    if bound not in BOUNDS:
        raise err("bound", f"expected one of {list(BOUNDS)}, found {bound!r}")
    skip = r.get("skip_insufficient", False)
    if not isinstance(skip, bool):
        raise err("skip_insufficient", f"expected true or false, found {skip!r}")
    min_trials = r.get("min_trials", 0)
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 0:
        raise err("min_trials", f"expected an integer >= 0, found {min_trials!r}")
    tolerance = number("tolerance")
    if tolerance is not None and tolerance < 0:
        raise err("tolerance", f"expected a number >= 0 (an absolute rate added to the baseline's bound), found {tolerance!r}")

    return Rule(
        index=i, name=name, kind=kind, grouping=grouping or "", threshold=threshold, metric=metric or "",
        summary=summary, min=lo, max=hi, bound=bound, skip_insufficient=skip, min_trials=min_trials,
        tolerance=tolerance or 0.0,
    )


_HINTS = {
    "grouping": ' (a grouping id such as "ethnicity" or "ethnicity+gender", or "*" for every grouping)',
    "threshold": ' (a threshold name such as "FMR=1e-3" or "default 0.6")',
    "metric": ' ("fmr" or "fnmr"; "fta" for a baseline rule on failure to acquire)',
    "summary": ' (a disparity summary such as "max_min_ratio" or "max_geomean_ratio")',
}


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


# ================================================================================ running


def _gate(policy_path: str | Path, results_path: str | Path, *, baseline_path: str | Path | None,
          junit: str | Path | None, markdown: str | Path | None) -> GateReport:
    policy = load_policy(policy_path)
    result = _read(results_path, "results")
    baseline = _read(baseline_path, "--baseline") if baseline_path is not None else None
    try:
        report = evaluate(policy, result, baseline=baseline)
    except FaceAuditError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # a results file that passed the schema checks but holds values of the wrong kind: fail closed
        raise GateError(
            f"{results_path}: the results cannot be evaluated ({type(exc).__name__}: {str(exc)[:200]}); "
            "the file is malformed: run the audit again to regenerate it"
        ) from exc
    if junit is not None:
        _write(junit, report.to_junit_xml(), "--junit")
    if markdown is not None:
        _write(markdown, report.to_markdown(), "--markdown")
    return report


def _read(path: str | Path, what: str) -> Result:
    """Read a results file; any malformation is a face-audit error (exit 2), never a traceback."""
    try:
        return read_result(path)
    except FaceAuditError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise ResultsError(f"{path}: {what} file is malformed ({type(exc).__name__}: {str(exc)[:200]})") from exc


def _write(path: str | Path, text: str, option: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise GateError(f"{option} {path}: cannot write the file ({exc.strerror or exc}); choose a writable path") from exc


def _write_error_files(junit: str | Path | None, markdown: str | Path | None, message: str) -> None:
    """When the gate cannot run, still leave files that say why (CI steps read them with `if: always()`)."""
    if junit is not None:
        root = ET.Element("testsuites", name="face-audit gate", tests="1", failures="0", errors="1", skipped="0")
        suite = ET.SubElement(root, "testsuite", name="fairness gate", tests="1", failures="0", errors="1", skipped="0")
        case = ET.SubElement(suite, "testcase", name="load policy and results", classname="face_audit.gate")
        err = ET.SubElement(case, "error", message=_xml(message), type="GateError")
        err.text = _xml(message)
        ET.indent(root)
        text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
        try:
            _write(junit, text, "--junit")
        except GateError:
            pass
    if markdown is not None:
        text = f"## ❌ Fairness gate could not run\n\n{_md(message)}\n"
        try:
            _write(markdown, text, "--markdown")
        except GateError:
            pass


def run_gate(policy_path: str | Path, results_path: str | Path, *, baseline_path: str | Path | None = None,
             junit: str | Path | None = None, markdown: str | Path | None = None) -> int:
    """Evaluate a policy file on a results file; write JUnit/Markdown files; return the exit code.

    Prints nothing. For the report itself use :func:`load_policy` and :func:`evaluate`; for the
    command line (which prints the table and errors) use :func:`gate_main`.

    Parameters
    ----------
    policy_path : str or pathlib.Path
        The policy (TOML).
    results_path : str or pathlib.Path
        A ``results.json`` written by ``face-audit run``.
    baseline_path : str or pathlib.Path, optional
        An earlier ``results.json``, for ``baseline`` rules.
    junit, markdown : str or pathlib.Path, optional
        Where to write :meth:`GateReport.to_junit_xml` and :meth:`GateReport.to_markdown`. When
        the policy or results are bad, these files say so instead.

    Returns
    -------
    int
        0 every rule held; 1 a rule failed; 2 the policy or a results file is bad (a
        :class:`GateError`, :class:`~audit.errors.ResultsError` or other face-audit error).
    """
    try:
        report = _gate(policy_path, results_path, baseline_path=baseline_path, junit=junit, markdown=markdown)
    except FaceAuditError as exc:
        _write_error_files(junit, markdown, str(exc))
        return 2
    return 0 if report.passed else 1


def add_gate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``gate`` command's arguments to ``parser`` (for a ``face-audit gate`` subparser)."""
    parser.add_argument("policy", help="gate policy (TOML), e.g. examples/policies/london-pass.toml")
    parser.add_argument("results", help="results.json written by `face-audit run`")
    parser.add_argument("--baseline", metavar="OLD.json", help="an earlier results.json, for `baseline` rules")
    parser.add_argument("--junit", metavar="OUT.xml", help="write a JUnit XML report (one test case per rule)")
    parser.add_argument("--markdown", metavar="OUT.md", help="write a Markdown summary (for a PR comment or $GITHUB_STEP_SUMMARY)")
    return parser


def gate_command(args: argparse.Namespace) -> int:
    """Run the gate for parsed arguments: print the table to stdout, errors to stderr; return the exit code."""
    try:
        report = _gate(args.policy, args.results, baseline_path=args.baseline, junit=args.junit, markdown=args.markdown)
    except FaceAuditError as exc:
        print(f"face-audit: error: {exc}", file=sys.stderr)
        _write_error_files(args.junit, args.markdown, str(exc))
        return 2
    print(report.to_text())
    return 0 if report.passed else 1


def gate_main(argv: list[str] | None = None) -> int:
    """``face-audit gate POLICY.toml RESULTS.json [--baseline OLD.json] [--junit OUT.xml] [--markdown OUT.md]``.

    Prints the text table to stdout and errors to stderr (``face-audit: error: ...``).

    Returns
    -------
    int
        0 pass, 1 a rule failed, 2 bad arguments, policy or results.
    """
    parser = add_gate_arguments(argparse.ArgumentParser(
        prog="face-audit gate",
        description="Fail CI when an audit result breaks a fairness policy. Exit codes: 0 pass, 1 a rule failed, 2 bad policy or results.",
    ))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed the message
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return gate_command(args)


# ================================================================================ pytest helper


def assert_policy(result_or_path: Result | str | Path, policy_or_path: Policy | Mapping[str, Any] | str | Path,
                  *, baseline: AuditResult | str | Path | None = None) -> GateReport:
    """Assert that a result satisfies a policy, for a user's own test suite.

    Parameters
    ----------
    result_or_path : AuditResult or path of a results.json
    policy_or_path : Policy, a dict as parsed from TOML, or path of a policy file
    baseline : AuditResult or path of a results.json, optional
        For ``baseline`` rules.

    Returns
    -------
    GateReport
        When every rule holds.

    Raises
    ------
    AssertionError
        When a check fails; the message lists each failing check by rule (pytest shows it).
    GateError, ResultsError
        When the policy or a results file is bad (an error in the test, not a failed gate).

    Examples
    --------
    ::

        # tests/test_fairness.py
        from audit.gate import assert_policy

        def test_dlib_is_fair_enough_on_london():
            assert_policy("reports/london-dlib/results.json", "examples/policies/london-pass.toml")
    """
    __tracebackhide__ = True  # pytest: show the assertion, not this frame
    result = result_or_path if isinstance(result_or_path, (AuditResult, IdentificationResult)) else read_result(result_or_path)
    if isinstance(policy_or_path, Policy):
        policy = policy_or_path
    elif isinstance(policy_or_path, Mapping):
        policy = policy_from_dict(policy_or_path)
    else:
        policy = load_policy(policy_or_path)
    base = baseline if (baseline is None or isinstance(baseline, (AuditResult, IdentificationResult))) else read_result(baseline)
    report = evaluate(policy, result, baseline=base)
    if not report.passed:
        raise AssertionError(report.failure_summary())
    return report


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


def _limit_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo:g}, {hi:g}]"
    if hi is not None:
        return f"<= {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return ""


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
