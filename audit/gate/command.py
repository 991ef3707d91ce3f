"""Running the gate: from files (``face-audit gate``, exit codes 0/1/2, JUnit and Markdown written
even when the gate cannot run) and from pytest (:func:`assert_policy`).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping


from ..errors import FaceAuditError, ResultsError
from ..identification.result import IdentificationResult, read_result
from ..verification.result import AuditResult
from .policy import (
    GateError,
    Policy,
    Result,
    load_policy,
    policy_from_dict,
)
from .outputs import (
    GateReport,
    _md,
    _xml,
)
from .evaluation import (
    evaluate,
)



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
