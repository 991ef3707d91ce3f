"""Bad gate inputs: every unreadable or malformed results file or policy exits 2 with the JUnit
and Markdown files still written; a value that is not a number is an error, never a pass.
Labels such as " / ", "NaN", "Infinity" and formulas survive results.json and every command."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from audit.verification.result import AuditResult
from conftest import cli, load_json

POLICY = """
[[rule]]
name = "fmr cap"
kind = "rate"
metric = "fmr"
grouping = "*"
threshold = "FMR=2e-1"
max = 1.0
"""


def _rates_cell(data, col, value, row=0):
    d = copy.deepcopy(data)
    i = d["rates"]["columns"].index(col)
    d["rates"]["rows"][row][i] = value
    return d


def _fmr_row(data) -> int:
    cols = data["rates"]["columns"]
    for k, r in enumerate(data["rates"]["rows"]):
        if r[cols.index("metric")] == "fmr" and r[cols.index("grouping")] != "all":
            return k
    raise AssertionError


MUTATIONS = {
    "rate_value_text": lambda d: _rates_cell(d, "value", "abc", _fmr_row(d)),
    "rate_value_null": lambda d: _rates_cell(d, "value", None, _fmr_row(d)),
    "rate_value_list": lambda d: _rates_cell(d, "value", [0.1], _fmr_row(d)),
    "rate_value_object": lambda d: _rates_cell(d, "value", {"v": 1}, _fmr_row(d)),
    "rate_trials_text": lambda d: _rates_cell(d, "trials", "many", _fmr_row(d)),
    "rate_trials_null": lambda d: _rates_cell(d, "trials", None, _fmr_row(d)),
    "rate_errors_text": lambda d: _rates_cell(d, "errors", "3", _fmr_row(d)),
    "rate_ci_text": lambda d: _rates_cell(d, "ci_high", "high", _fmr_row(d)),
    "fta_value_text": lambda d: {**d, "fta": {**d["fta"], "rows": [[("x" if c == "value" else v) for c, v in zip(d["fta"]["columns"], r)] for r in d["fta"]["rows"]]}},
    "rates_row_short": lambda d: {**d, "rates": {**d["rates"], "rows": [d["rates"]["rows"][0][:3]]}},
    "rates_row_not_list": lambda d: {**d, "rates": {**d["rates"], "rows": ["row"]}},
    "rates_rows_not_list": lambda d: {**d, "rates": {**d["rates"], "rows": {"a": 1}}},
    "rates_columns_not_list": lambda d: {**d, "rates": {**d["rates"], "columns": "value"}},
    "rates_duplicate_columns": lambda d: {**d, "rates": {"columns": d["rates"]["columns"][:-1] + ["value"], "rows": []}},
    "rates_missing_column": lambda d: {**d, "rates": {"columns": [c for c in d["rates"]["columns"] if c != "trials"],
                                                      "rows": [[v for c, v in zip(d["rates"]["columns"], r) if c != "trials"] for r in d["rates"]["rows"]]}},
    "rates_missing": lambda d: {k: v for k, v in d.items() if k != "rates"},
    "rates_not_object": lambda d: {**d, "rates": [1, 2]},
    "thresholds_missing": lambda d: {k: v for k, v in d.items() if k != "thresholds"},
    "thresholds_not_list": lambda d: {**d, "thresholds": {"a": 1}},
    "threshold_not_object": lambda d: {**d, "thresholds": ["FMR=1e-3"]},
    "threshold_missing_field": lambda d: {**d, "thresholds": [{k: v for k, v in d["thresholds"][0].items() if k != "value"}]},
    "threshold_unknown_field": lambda d: {**d, "thresholds": [{**d["thresholds"][0], "colour": "red"}]},
    "groupings_not_list": lambda d: {**d, "groupings": "group"},
    "groupings_numbers": lambda d: {**d, "groupings": [1, 2]},
    "provenance_not_object": lambda d: {**d, "provenance": [1]},
    "warnings_not_list": lambda d: {**d, "warnings": "x"},
    "schema_missing": lambda d: {k: v for k, v in d.items() if k != "schema_version"},
    "schema_future": lambda d: {**d, "schema_version": "9.0"},
    "result_kind_unknown": lambda d: {**d, "result_kind": "something-else"},
    "top_level_list": lambda d: [d],
    "top_level_string": lambda d: "results",
    "top_level_null": lambda d: None,
}


def _files(tmp_path):
    return tmp_path / "gate.xml", tmp_path / "gate.md"


def _gate(tmp_path, results, capsys, policy_text=POLICY):
    policy = tmp_path / "policy.toml"
    if not policy.exists():
        policy.write_text(policy_text)
    junit, md = _files(tmp_path)
    code = cli("gate", policy, results, "--junit", junit, "--markdown", md)
    return code, capsys.readouterr()


def test_the_valid_results_pass_the_gate(valid_results, tmp_path, capsys):
    code, got = _gate(tmp_path, valid_results, capsys)
    assert code == 0, got.err
    assert "a / b" in got.out and "NaN" in got.out and "Infinity" in got.out


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_malformed_results_exit_2_with_files_written(case, valid_results, tmp_path, capsys):
    data = MUTATIONS[case](load_json(valid_results))
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(data))
    code, got = _gate(tmp_path, bad, capsys)
    assert code == 2, (got.out, got.err)
    assert "PASSED" not in got.out and "Traceback" not in got.err and "results.json" in got.err, got.err
    junit, md = _files(tmp_path)
    assert 'errors="1"' in junit.read_text() and "could not run" in md.read_text()


@pytest.mark.parametrize("content", [
    b"", b"\x00\x01\x02\xff\xfe", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"{", b"[1, 2", b"not json at all",
    b'{"schema_version": "1.0"', "{\"a\": \"\u00e9\"}".encode("latin-1"), b"[" * 100_000 + b"]" * 100_000,
    b"NaN", b"\xef\xbb\xbf{}",
])
def test_unreadable_results_file_exits_2(content, tmp_path, capsys):
    bad = tmp_path / "results.json"
    bad.write_bytes(content)
    code, got = _gate(tmp_path, bad, capsys)
    assert code == 2 and "Traceback" not in got.err and "results.json" in got.err, got.err
    junit, md = _files(tmp_path)
    assert junit.is_file() and md.is_file()


def test_results_path_that_is_a_folder_or_absent(tmp_path, capsys):
    for p in (tmp_path, tmp_path / "absent.json"):
        code, got = _gate(tmp_path, p, capsys)
        assert code == 2 and _files(tmp_path)[0].is_file()


@pytest.mark.parametrize("policy", [
    b"\xff\xfe\x00binary", b"[[rule]]\nkind = 'rate'\nmax = 'abc'\n", b"[[rule\n", b"rule = 5\n",
    b"[[rule]]\nname = 'x'\nkind = 'rate'\nmetric = 'fmr'\ngrouping = '*'\nthreshold = 'FMR=2e-1'\nmax = nan\n",
])
def test_bad_policy_exits_2_with_files_written(policy, valid_results, tmp_path, capsys):
    p = tmp_path / "policy.toml"
    p.write_bytes(policy)
    code, got = _gate(tmp_path, valid_results, capsys)
    assert code == 2 and "policy.toml" in got.err and "Traceback" not in got.err, got.err
    assert _files(tmp_path)[0].is_file() and _files(tmp_path)[1].is_file()


def test_labels_survive_results_json_report_and_compare(valid_results, tmp_path, capsys):
    res = AuditResult.from_json(valid_results)
    groups = set(res.composition.loc[res.composition.grouping == "group", "group"])
    assert groups == {"a / b", "NaN", "Infinity", '=HYPERLINK("http://x")'}
    # ' / ' inside a value: the two intersections stay apart and are quoted, never merged
    inter = set(res.composition.loc[res.composition.grouping == "group+eye", "group"])
    assert '"a / b" / "b / c"' in inter and '"a / b" / a' in inter
    assert len(inter) == len(set(res.samples[["group", "eye"]].itertuples(index=False)))
    # the labels are text, never numbers
    for df in (res.rates, res.fta, res.composition):
        assert all(isinstance(g, str) for g in df["group"])
    # every command reads them: report re-renders, compare puts two results side by side
    assert cli("report", valid_results, "--output", tmp_path / "rep") == 0
    html = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert "Infinity" in html and "a / b" in html
    capsys.readouterr()
    assert cli("compare", valid_results, valid_results, "--output", tmp_path / "cmp") == 0


def test_csv_tables_neutralise_formulas(valid_results):
    tables = valid_results.parent / "tables"
    comp = pd.read_csv(tables / "composition.csv", dtype=str, keep_default_na=False)
    cells = set(comp["group"])
    assert "'=HYPERLINK(\"http://x\")" in cells and '=HYPERLINK("http://x")' not in cells
    for f in tables.glob("*.csv"):
        for line in f.read_text(encoding="utf-8").splitlines()[1:]:
            for cell in line.split(","):
                assert not cell.startswith(("=", "@", "+")), (f.name, cell)
    # numbers (negative thresholds of distance backends) are not touched
    from audit.results import csv_safe

    df = csv_safe(pd.DataFrame({"x": [-1.5, 2.0], "g": ["-x", "@y"]}))
    assert df["x"].tolist() == [-1.5, 2.0] and df["g"].tolist() == ["'-x", "'@y"]
