"""The CI fairness gate: policy rules (TOML) evaluated on an :class:`~audit.verification.result.AuditResult`.

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

from .policy import BOUNDS, CHECK_COLUMNS, IDENTIFICATION_KINDS, KINDS, GateError, Policy, Rule, load_policy, policy_from_dict
from .outputs import GateReport
from .evaluation import evaluate
from .command import add_gate_arguments, assert_policy, gate_command, gate_main, run_gate

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
