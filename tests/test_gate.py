"""The CI fairness gate: policies, every rule kind and bound, skips, baselines, errors, renderings, exit codes.

The AuditResult here is built by hand (``make_result``) with numbers small enough to check by eye:

- groupings ``ethnicity`` (Black, White, and ``WEIRD`` = ``"X <y> | z"``, a label with markup and a
  pipe) and ``gender`` (female, male), plus the population row ``all`` in the rates and FTA tables;
- thresholds ``FMR=1e-3`` (rows for every group) and ``default 0.6`` (no rows at all);
- FNMR at FMR=1e-3: Black 2/100 = 0.02 [0.006, 0.07], White 1/100 = 0.01 [0.002, 0.055], WEIRD 0/0
  (NaN), female 3/120 = 0.025 [0.009, 0.07], male 0/80 = 0 [0, 0.046];
- FMR at FMR=1e-3: Black 3/1000 = 0.003 [0.001, 0.009], White 1/2000 = 0.0005 [0.0001, 0.003],
  WEIRD 1/500 = 0.002 [0.0004, 0.011] flagged insufficient, female 4/4000 = 0.001 [0.0004, 0.0026],
  male 2/4000 = 0.0005 [0.0001, 0.0018];
- FTA: Black 1/50 = 0.02 [0.0035, 0.105], White 0/60 = 0 [0, 0.06], WEIRD 1/2 = 0.5 [0.09, 0.91],
  female 2/60 [0.0092, 0.114], male 0/52 [0, 0.068];
- disparity at FMR=1e-3: ethnicity fmr max_min_ratio 6; ethnicity fnmr max_min_ratio 2 and
  max_geomean_ratio NaN; gender fmr max_min_ratio 2; gender fnmr max_min_ratio inf (male has FNMR 0)
  and fairness_discrepancy_rate 0.95.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from audit.errors import FaceAuditError, ResultsError
from audit.gate import (
    CHECK_COLUMNS,
    GateError,
    GateReport,
    Policy,
    assert_policy,
    evaluate,
    gate_main,
    load_policy,
    policy_from_dict,
    run_gate,
)
from audit.verification.result import TABLE_COLUMNS, AuditResult
from audit.results import ThresholdInfo

REPO = Path(__file__).resolve().parents[1]
T = "FMR=1e-3"
WEIRD = "X <y> | z"
NAN, INF = math.nan, math.inf

# (grouping, group, metric) -> (errors, trials, ci_low, ci_high, insufficient)
RATES = {
    ("ethnicity", "Black", "fnmr"): (2, 100, 0.006, 0.07, False),
    ("ethnicity", "White", "fnmr"): (1, 100, 0.002, 0.055, False),
    ("ethnicity", WEIRD, "fnmr"): (0, 0, NAN, NAN, True),
    ("ethnicity", "Black", "fmr"): (3, 1000, 0.001, 0.009, False),
    ("ethnicity", "White", "fmr"): (1, 2000, 0.0001, 0.003, False),
    ("ethnicity", WEIRD, "fmr"): (1, 500, 0.0004, 0.011, True),
    ("gender", "female", "fnmr"): (3, 120, 0.009, 0.07, False),
    ("gender", "male", "fnmr"): (0, 80, 0.0, 0.046, False),
    ("gender", "female", "fmr"): (4, 4000, 0.0004, 0.0026, False),
    ("gender", "male", "fmr"): (2, 4000, 0.0001, 0.0018, False),
    ("all", "All", "fnmr"): (3, 200, 0.005, 0.043, False),
    ("all", "All", "fmr"): (6, 8000, 0.0003, 0.0016, False),
}
# (grouping, group) -> (failures, attempts, ci_low, ci_high)
FTA = {
    ("ethnicity", "Black"): (1, 50, 0.0035, 0.105),
    ("ethnicity", "White"): (0, 60, 0.0, 0.06),
    ("ethnicity", WEIRD): (1, 2, 0.09, 0.91),
    ("gender", "female"): (2, 60, 0.0092, 0.114),
    ("gender", "male"): (0, 52, 0.0, 0.068),
    ("all", "All"): (2, 112, 0.0049, 0.063),
}
DISPARITY = [
    ("ethnicity", T, "fmr", "max_min_ratio", 6.0, "Black", "White", 3, ""),
    ("ethnicity", T, "fnmr", "max_min_ratio", 2.0, "Black", "White", 2, f"dropped {WEIRD!r}: no trials"),
    ("ethnicity", T, "fnmr", "max_geomean_ratio", NAN, None, None, 1, "only 1 group has trials"),
    ("gender", T, "fmr", "max_min_ratio", 2.0, "female", "male", 2, ""),
    ("gender", T, "fnmr", "max_min_ratio", INF, "female", "male", 2, "the lowest group has rate 0; the ratio is infinite"),
    ("gender", T, "fnmr", "fairness_discrepancy_rate", 0.95, None, None, 2, ""),
]


def make_result(rates: dict | None = None, fta: dict | None = None, title: str = "hand-made audit") -> AuditResult:
    """The AuditResult described in the module docstring; ``rates``/``fta`` override entries."""
    r = {**RATES, **(rates or {})}
    f = {**FTA, **(fta or {})}
    rate_rows = []
    for (grouping, group, metric), (e, n, lo, hi, insuff) in r.items():
        rate_rows.append((grouping, group, T, 0.5, metric, e, n, e / n if n else NAN, lo, hi, "wilson", insuff))
    fta_rows = [(g, grp, e, n, e / n if n else NAN, lo, hi, "wilson") for (g, grp), (e, n, lo, hi) in f.items()]
    empty = {name: pd.DataFrame({c: pd.Series(dtype=object) for c in cols}) for name, cols in TABLE_COLUMNS.items()}
    return AuditResult(
        title=title,
        provenance={"tool_version": "0.1.0"},
        groupings=("ethnicity", "gender"),
        thresholds=(
            ThresholdInfo(T, "target_fmr", 0.5, 0.5, 1e-3, 6 / 8000, 6, 8000, 0.015, False),
            ThresholdInfo("default 0.6", "backend_default", 0.4, 0.6, None, 0.01, 80, 8000, 0.005, False),
        ),
        samples=empty["samples"],
        composition=empty["composition"],
        fta=pd.DataFrame(fta_rows, columns=TABLE_COLUMNS["fta"]),
        rates=pd.DataFrame(rate_rows, columns=TABLE_COLUMNS["rates"]),
        cross_fmr=empty["cross_fmr"],
        disparity=pd.DataFrame(DISPARITY, columns=TABLE_COLUMNS["disparity"]),
        score_hist=empty["score_hist"],
        det=empty["det"],
    )


@pytest.fixture
def result() -> AuditResult:
    return make_result()


def rule(**kw) -> dict:
    """A rule table with defaults for its kind."""
    kind = kw.setdefault("kind", "rate")
    kw.setdefault("name", f"a {kind} rule")
    kw.setdefault("grouping", "ethnicity")
    if kind in ("rate", "disparity", "baseline"):
        kw.setdefault("threshold", T)
        kw.setdefault("metric", "fnmr")
    if kind == "disparity":
        kw.setdefault("summary", "max_min_ratio")
    return kw


def run(result: AuditResult, *rules: dict, baseline: AuditResult | None = None) -> GateReport:
    return evaluate(policy_from_dict({"rule": list(rules)}), result, baseline=baseline)


def status(report: GateReport) -> dict[tuple[str, str], str]:
    """(grouping, group) -> status."""
    return {(c.grouping, c.group): c.status for c in report.checks.itertuples()}


def check(report: GateReport, group: str, grouping: str = "ethnicity"):
    rows = report.checks[(report.checks["group"] == group) & (report.checks["grouping"] == grouping)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ------------------------------------------------------------------------------------ report shape


def test_checks_have_the_fixed_columns_and_statuses(result):
    rep = run(result, rule(max=0.05), rule(name="f", kind="fta", grouping="*", max=0.02),
              rule(name="d", kind="disparity", metric="fmr", max=10))
    assert list(rep.checks.columns) == CHECK_COLUMNS
    assert set(rep.checks["status"]) <= {"pass", "fail", "skip"}
    assert rep.checks["value"].dtype == float
    assert list(rep.by_rule()["rule"]) == ["a rate rule", "f", "d"]


# ------------------------------------------------------------------------------------ rate rules


def test_rate_point_bound_pass_and_fail(result):
    rep = run(result, rule(max=0.015))  # Black 0.02 fails, White 0.01 passes, WEIRD has no trials
    assert status(rep) == {("ethnicity", "Black"): "fail", ("ethnicity", "White"): "pass", ("ethnicity", WEIRD): "skip"}
    assert not rep.passed
    black = check(rep, "Black")
    assert black.value == pytest.approx(0.02) and black.bound_used == "point" and black.limit == "<= 0.015"
    assert black.threshold == T and black.metric == "fnmr" and black.kind == "rate"
    assert "2/100" in black.detail and "violates" in black.detail
    assert run(result, rule(max=0.02)).passed  # limits are inclusive


def test_rate_upper_bound_requires_the_whole_interval(result):
    rep = run(result, rule(max=0.06, bound="upper"))  # upper ends: Black 0.07, White 0.055
    assert status(rep)[("ethnicity", "Black")] == "fail" and status(rep)[("ethnicity", "White")] == "pass"
    assert check(rep, "Black").value == pytest.approx(0.07) and check(rep, "Black").bound_used == "upper"
    assert "upper end" in check(rep, "Black").detail


def test_rate_lower_bound_fails_only_when_surely_worse(result):
    rep = run(result, rule(max=0.005, bound="lower"))  # lower ends: Black 0.006, White 0.002
    assert status(rep)[("ethnicity", "Black")] == "fail" and status(rep)[("ethnicity", "White")] == "pass"
    assert check(rep, "Black").value == pytest.approx(0.006)
    # the point estimates (0.02, 0.01) are both above 0.005, so a point rule fails both
    assert set(run(result, rule(max=0.005)).checks.query("status != 'skip'")["status"]) == {"fail"}


def test_rate_min_rule_and_both_limits(result):
    rep = run(result, rule(min=0.015))
    assert status(rep)[("ethnicity", "Black")] == "pass" and status(rep)[("ethnicity", "White")] == "fail"
    assert check(rep, "White").limit == ">= 0.015"
    # the bound names the interval end compared with min too: White's upper end 0.055 >= 0.015
    assert status(run(result, rule(min=0.015, bound="upper")))[("ethnicity", "White")] == "pass"
    rep = run(result, rule(min=0.015, max=0.03))
    assert check(rep, "Black").limit == "in [0.015, 0.03]" and check(rep, "Black").status == "pass"
    assert check(rep, "White").status == "fail"


def test_nan_group_is_skipped_with_detail(result):
    rep = run(result, rule(max=1.0))
    weird = check(rep, WEIRD)
    assert weird.status == "skip" and math.isnan(weird.value) and "no comparisons" in weird.detail
    assert rep.passed  # a skip does not fail the gate


def test_skip_insufficient(result):
    # WEIRD's FMR 0.002 is flagged insufficient (500 impostors < 3 / 1e-3)
    strict = run(result, rule(metric="fmr", max=0.001))
    assert check(strict, WEIRD).status == "fail" and "flagged insufficient" in check(strict, WEIRD).detail
    lenient = run(result, rule(metric="fmr", max=0.001, skip_insufficient=True))
    assert check(lenient, WEIRD).status == "skip" and "insufficient" in check(lenient, WEIRD).detail
    assert check(lenient, "Black").status == "fail"  # 0.003 > 0.001, not flagged


def test_min_trials(result):
    rep = run(result, rule(grouping="*", max=0.001, min_trials=101))
    st = status(rep)
    assert st[("ethnicity", "Black")] == st[("ethnicity", "White")] == "skip"  # 100 mated comparisons
    assert st[("gender", "female")] == "fail"  # 120 >= 101
    assert st[("gender", "male")] == "skip"  # 80 < 101
    assert "fewer than min_trials = 101" in check(rep, "Black").detail


def test_star_means_every_grouping_but_not_the_population_row(result):
    rep = run(result, rule(grouping="*", max=1.0))
    assert set(rep.checks["grouping"]) == {"ethnicity", "gender"}
    rep = run(result, rule(grouping="all", max=0.01))
    assert status(rep) == {("all", "All"): "fail"}


def test_threshold_name_spellings_match(result):
    rep = run(result, rule(threshold="FMR=1e-03", max=1.0))  # the results name it FMR=1e-3
    assert set(rep.checks["threshold"]) == {T}


def test_threshold_without_rows_is_skipped_not_passed(result):
    rep = run(result, rule(threshold="default 0.6", max=0.01))
    assert list(rep.checks["status"]) == ["skip"] and "no fnmr rows" in rep.checks["detail"][0]
    assert rep.by_rule()["status"].tolist() == ["skip"]


def test_row_order_does_not_matter(result):
    shuffled = dataclasses.replace(result, rates=result.rates.sample(frac=1, random_state=3).reset_index(drop=True),
                                   fta=result.fta.iloc[::-1].reset_index(drop=True))
    rules = (rule(grouping="*", max=0.015), rule(name="f", kind="fta", grouping="*", max=0.02))
    pd.testing.assert_frame_equal(run(result, *rules).checks, run(shuffled, *rules).checks)


# ------------------------------------------------------------------------------------ fta rules


def test_fta_rule(result):
    rep = run(result, {"name": "fta", "kind": "fta", "grouping": "*", "max": 0.03})
    st = status(rep)
    assert st[("ethnicity", WEIRD)] == "fail" and st[("gender", "female")] == "fail"  # 0.5, 0.033
    assert st[("ethnicity", "Black")] == st[("ethnicity", "White")] == st[("gender", "male")] == "pass"
    assert set(rep.checks["metric"]) == {"fta"} and set(rep.checks["threshold"]) == {""}
    assert "1/2" in check(rep, WEIRD).detail


def test_fta_bounds_and_min_trials(result):
    # lower end: WEIRD 0.09 > 0.05 still fails; upper ends of Black (0.105) and White (0.06) too with "upper"
    lower = run(result, {"name": "fta", "kind": "fta", "grouping": "ethnicity", "max": 0.05, "bound": "lower"})
    assert status(lower) == {("ethnicity", "Black"): "pass", ("ethnicity", "White"): "pass", ("ethnicity", WEIRD): "fail"}
    upper = run(result, {"name": "fta", "kind": "fta", "grouping": "ethnicity", "max": 0.05, "bound": "upper"})
    assert set(status(upper).values()) == {"fail"}
    few = run(result, {"name": "fta", "kind": "fta", "grouping": "ethnicity", "max": 0.05, "min_trials": 10})
    assert status(few)[("ethnicity", WEIRD)] == "skip" and few.passed


# ------------------------------------------------------------------------------------ disparity rules


def test_disparity_pass_and_fail(result):
    assert run(result, rule(kind="disparity", metric="fmr", max=6.0)).passed
    rep = run(result, rule(kind="disparity", metric="fmr", max=3.0))
    assert not rep.passed
    c = rep.checks.iloc[0]
    assert (c.grouping, c.group, c.value, c.status, c.limit) == ("ethnicity", "", 6.0, "fail", "<= 3")
    assert "'Black'" in c.detail and "'White'" in c.detail


def test_disparity_min_rule(result):
    fdr = rule(kind="disparity", grouping="gender", summary="fairness_discrepancy_rate")
    assert run(result, {**fdr, "min": 0.9}).passed
    assert not run(result, {**fdr, "min": 0.99}).passed


def test_infinite_disparity_fails_a_max_and_says_a_rate_was_zero(result):
    rep = run(result, rule(kind="disparity", grouping="gender", max=1000.0))
    c = rep.checks.iloc[0]
    assert c.status == "fail" and math.isinf(c.value) and "zero rate" in c.detail and "'male'" in c.detail
    assert run(result, rule(kind="disparity", grouping="gender", min=1.0)).passed  # inf >= 1


def test_nan_disparity_is_skipped(result):
    rep = run(result, rule(kind="disparity", summary="max_geomean_ratio", max=2.0))
    c = rep.checks.iloc[0]
    assert c.status == "skip" and "only 1 group has trials" in c.detail and rep.passed


def test_disparity_star_checks_each_grouping(result):
    rep = run(result, rule(kind="disparity", grouping="*", metric="fmr", max=3.0))
    assert status(rep) == {("ethnicity", ""): "fail", ("gender", ""): "pass"}


# ------------------------------------------------------------------------------------ baseline rules


def test_baseline_against_itself_passes(result):
    rep = run(result, rule(kind="baseline", grouping="*", metric="fmr"), baseline=result)
    assert rep.passed and "fail" not in set(rep.checks["status"])


def test_baseline_fails_beyond_the_baseline_interval(result):
    # Black's FMR goes from 0.003 [0.001, 0.009] to 0.01: above the old upper end 0.009
    worse = make_result(rates={("ethnicity", "Black", "fmr"): (10, 1000, 0.005, 0.018, False),
                               ("ethnicity", "White", "fmr"): (6, 2000, 0.0014, 0.0065, False)})
    rep = run(worse, rule(kind="baseline", metric="fmr"), baseline=result)
    black, white = check(rep, "Black"), check(rep, "White")
    assert black.status == "fail" and black.value == pytest.approx(0.01) and black.limit == "<= 0.009"
    assert "above the baseline" in black.detail
    assert white.status == "pass"  # 0.003 <= 0.003: inside the old interval
    # a tolerance widens the baseline's bound
    assert check(run(worse, rule(kind="baseline", metric="fmr", tolerance=0.002), baseline=result), "Black").status == "pass"


def test_baseline_groups_on_one_side_only_are_skipped(result):
    new = dataclasses.replace(result, rates=pd.concat([
        result.rates[result.rates["group"] != "White"],
        pd.DataFrame([("ethnicity", "Asian", T, 0.5, "fnmr", 1, 50, 0.02, 0.004, 0.1, "wilson", False)],
                     columns=TABLE_COLUMNS["rates"]),
    ], ignore_index=True))
    rep = run(new, rule(kind="baseline"), baseline=result)
    assert check(rep, "Asian").status == "skip" and "not in the baseline" in check(rep, "Asian").detail
    assert check(rep, "White").status == "skip" and "not in these results" in check(rep, "White").detail
    assert check(rep, WEIRD).status == "skip"  # no trials


def test_baseline_on_fta(result):
    worse = make_result(fta={("ethnicity", "Black"): (10, 50, 0.11, 0.33)})
    rep = run(worse, {"name": "fta vs baseline", "kind": "baseline", "grouping": "ethnicity", "metric": "fta"}, baseline=result)
    assert check(rep, "Black").status == "fail" and check(rep, "Black").threshold == ""
    assert check(rep, "White").status == "pass"


def test_baseline_rule_without_baseline_names_rule_and_option(result):
    with pytest.raises(GateError) as e:
        run(result, rule(kind="baseline", name="no worse than before"))
    msg = str(e.value)
    assert "rule 1 ('no worse than before')" in msg and "--baseline" in msg


def test_baseline_lacking_the_threshold_is_an_error(result):
    old = dataclasses.replace(result, thresholds=result.thresholds[1:], rates=result.rates.assign(threshold_name="default 0.6"))
    with pytest.raises(GateError, match=r"baseline.*'threshold'|'threshold'.*baseline") as e:
        run(result, rule(kind="baseline"), baseline=old)
    assert "default 0.6" in str(e.value)


# ------------------------------------------------------------------------------------ errors


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "body, field, words",
    [
        ('name = "r"\nkind = "rate"\ngrouping = "ethnicity"\nthreshold = "FMR=1e-3"\nmetric = "fnmr"\nmax = 0.1\ncolour = "red"',
         "colour", ["unknown key", "skip_insufficient"]),
        ('name = "r"\nkind = "ratio"\ngrouping = "ethnicity"', "kind", ["unknown kind 'ratio'", "disparity", "baseline"]),
        ('name = "r"\ngrouping = "ethnicity"', "kind", ["missing"]),
        ('name = "r"\nkind = "fta"\ngrouping = "*"', "max", ["missing"]),
        ('name = "r"\nkind = "fta"\ngrouping = "*"\nmin = 0.5\nmax = 0.1', "min", ["above max"]),
        ('name = "r"\nkind = "fta"\ngrouping = "*"\nmax = "low"', "max", ["finite number", "'low'"]),
        ('name = "r"\nkind = "fta"\ngrouping = "*"\nmax = 0.1\nbound = "upper_end"', "bound", ["point", "upper", "lower"]),
        ('name = "r"\nkind = "disparity"\ngrouping = "g"\nthreshold = "FMR=1e-3"\nmetric = "fmr"\nsummary = "max_min_ratio"\nmax = 3\nbound = "upper"',
         "bound", ["does not apply to kind 'disparity'"]),
        ('name = "r"\nkind = "fta"\ngrouping = "*"\nmax = 0.1\nmin_trials = -1', "min_trials", ["integer >= 0"]),
        ('name = "r"\nkind = "rate"\ngrouping = "*"\nthreshold = "FMR=1e-3"\nmetric = "fnmr"\nmax = 0.1\nskip_insufficient = "yes"',
         "skip_insufficient", ["true or false"]),
        ('name = "r"\nkind = "rate"\ngrouping = "*"\nmetric = "fnmr"\nmax = 0.1', "threshold", ["missing"]),
        ('name = "r"\nkind = "baseline"\ngrouping = "*"\nthreshold = "FMR=1e-3"\nmetric = "fmr"\ntolerance = -0.1', "tolerance", [">= 0"]),
        ('name = "r"\nkind = "baseline"\ngrouping = "*"\nthreshold = "FMR=1e-3"\nmetric = "fmr"\nmax = 0.1', "max", ["does not apply"]),
        ('kind = "fta"\ngrouping = "*"\nmax = 0.1', "name", ["missing"]),
    ],
)
def test_bad_rule_names_file_rule_and_field(tmp_path, body, field, words):
    good = '[[rule]]\nname = "first"\nkind = "fta"\ngrouping = "*"\nmax = 0.1\n\n'
    p = write(tmp_path, good + "[[rule]]\n" + body + "\n")
    with pytest.raises(GateError) as e:
        load_policy(p)
    msg = str(e.value)
    assert str(p) in msg and "rule 2" in msg and f"field {field!r}" in msg, msg
    if "name = " in body:
        assert "'r'" in msg
    for w in words:
        assert w in msg, msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, FaceAuditError)


def test_policy_file_level_errors(tmp_path):
    with pytest.raises(GateError, match="does not exist"):
        load_policy(tmp_path / "none.toml")
    with pytest.raises(GateError, match=r"bad\.toml: not valid TOML"):
        load_policy(write(tmp_path, "[[rule]\n", "bad.toml"))
    with pytest.raises(GateError, match=r"empty\.toml: field 'rule': the policy has no rules"):
        load_policy(write(tmp_path, 'title = "nothing"\n', "empty.toml"))
    with pytest.raises(GateError, match=r"top\.toml: field 'rules': unknown top-level key"):
        load_policy(write(tmp_path, '[[rules]]\nname = "x"\n', "top.toml"))
    dup = '[[rule]]\nname = "x"\nkind = "fta"\ngrouping = "*"\nmax = 0.1\n'
    with pytest.raises(GateError, match=r"dup\.toml: rule 2 \('x'\): field 'name': .*also used by rule 1"):
        load_policy(write(tmp_path, dup + dup, "dup.toml"))


@pytest.mark.parametrize(
    "override, field, available",
    [
        ({"threshold": "FMR=1e-4"}, "threshold", ["'FMR=1e-3'", "'default 0.6'"]),
        ({"grouping": "age"}, "grouping", ["'ethnicity'", "'gender'", "every grouping"]),
        ({"metric": "FMR"}, "metric", ["'fmr'", "'fnmr'"]),
    ],
)
def test_rule_naming_what_results_lack_lists_what_they_have(tmp_path, result, override, field, available):
    body = {"name": "strict one", "kind": "rate", "grouping": "ethnicity", "threshold": T, "metric": "fnmr", "max": 0.1}
    body.update(override)
    text = "[[rule]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in body.items())
    policy = load_policy(write(tmp_path, text))
    with pytest.raises(GateError) as e:
        evaluate(policy, result)
    msg = str(e.value)
    assert "policy.toml" in msg and "rule 1 ('strict one')" in msg and f"field {field!r}" in msg and "available" in msg
    for a in available:
        assert a in msg, msg


def test_unknown_summary_lists_summaries(result):
    with pytest.raises(GateError) as e:
        run(result, rule(kind="disparity", summary="gini", max=1))
    msg = str(e.value)
    assert "field 'summary'" in msg and "'gini'" in msg and "'max_min_ratio'" in msg and "'fairness_discrepancy_rate'" in msg


def test_disparity_rule_on_results_without_disparity_says_so(result):
    bare = dataclasses.replace(result, disparity=result.disparity.iloc[0:0])
    with pytest.raises(GateError, match=r"rule 1 \('a disparity rule'\): field 'kind': .*disparity table is empty"):
        run(bare, rule(kind="disparity", max=3))


# ------------------------------------------------------------------------------------ renderings


POLICY_MIXED = """\
title = "mixed"

[[rule]]
name = "FNMR of every ethnicity"
kind = "rate"
grouping = "ethnicity"
threshold = "FMR=1e-03"
metric = "fnmr"
max = 0.015

[[rule]]
name = "FTA of every group"
kind = "fta"
grouping = "*"
max = 0.6

[[rule]]
name = "FMR ratio across ethnicity"
kind = "disparity"
grouping = "ethnicity"
threshold = "FMR=1e-03"
metric = "fmr"
summary = "max_min_ratio"
max = 3.0

[[rule]]
name = "nothing to check"
kind = "rate"
grouping = "ethnicity"
threshold = "default 0.6"
metric = "fnmr"
max = 0.1
"""

POLICY_PASS = """\
[[rule]]
name = "FTA of every group"
kind = "fta"
grouping = "*"
max = 0.6
"""

POLICY_WEIRD_FAILS = """\
[[rule]]
name = "FTA | <strict> & small"
kind = "fta"
grouping = "ethnicity"
max = 0.1
"""


def test_junit_xml_parses_with_one_testcase_per_rule(tmp_path, result):
    rep = evaluate(load_policy(write(tmp_path, POLICY_MIXED)), result)
    root = ET.fromstring(rep.to_junit_xml())
    suites = root.findall("testsuite")
    assert len(suites) == 1
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == ["FNMR of every ethnicity", "FTA of every group",
                                              "FMR ratio across ethnicity", "nothing to check"]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["FNMR of every ethnicity", "FMR ratio across ethnicity"]
    assert suites[0].get("tests") == "4" and suites[0].get("failures") == "2" and suites[0].get("skipped") == "1"
    assert cases[3].find("skipped") is not None
    fail_text = cases[0].find("failure").text
    assert "'Black'" in fail_text and "White" not in fail_text


def test_junit_and_markdown_escape_group_names(tmp_path, result):
    rep = evaluate(load_policy(write(tmp_path, POLICY_WEIRD_FAILS)), result)
    xml = rep.to_junit_xml()
    assert "<y>" not in xml and "&lt;y&gt;" in xml
    case = ET.fromstring(xml).find("testsuite/testcase")
    assert case.get("name") == "FTA | <strict> & small"
    assert WEIRD in case.find("failure").text and WEIRD in case.find("failure").get("message")

    md = rep.to_markdown()
    assert "<y>" not in md and "<strict>" not in md
    assert "X &lt;y&gt; \\| z" in md and "FTA \\| &lt;strict&gt; &amp; small" in md
    # every table row keeps its column count: escaped pipes are not separators
    for line in md.splitlines():
        if line.startswith("| FTA"):
            cells = [c for c in line.replace("\\|", "").split("|")]
            assert len(cells) - 2 in (6, 9), line


def test_markdown_headline_tables_and_failing_groups(tmp_path, result):
    rep = evaluate(load_policy(write(tmp_path, POLICY_MIXED)), result)
    md = rep.to_markdown()
    assert md.startswith("## ❌ Fairness gate failed")
    assert "| Rule | Kind | Status | Passed | Failed | Skipped |" in md
    assert "| FNMR of every ethnicity | rate | ❌ fail | 1 | 1 | 1 |" in md
    assert "| FTA of every group | fta | ✅ pass |" in md and "⚪ skip" in md
    failing = md.split("### Failing checks", 1)[1].split("<details>", 1)[0]
    assert "| Black |" in failing and "| White |" not in failing
    assert "mixed" in md  # the policy title

    ok = evaluate(load_policy(write(tmp_path, POLICY_PASS, "ok.toml")), result).to_markdown()
    assert ok.startswith("## ✅ Fairness gate passed") and "Failing checks" not in ok


def test_text_table(tmp_path, result):
    text = evaluate(load_policy(write(tmp_path, POLICY_MIXED)), result).to_text()
    assert "[FAIL] FNMR of every ethnicity" in text and "[PASS] FTA of every group" in text
    assert "[SKIP] nothing to check" in text
    assert text.rstrip().splitlines()[-1].startswith("FAILED 2 of 4 rule(s) failed")


# ------------------------------------------------------------------------------------ command line


@pytest.fixture
def files(tmp_path, result):
    res = tmp_path / "results.json"
    result.to_json(res)
    return {
        "results": res,
        "pass": write(tmp_path, POLICY_PASS, "pass.toml"),
        "fail": write(tmp_path, POLICY_MIXED, "fail.toml"),
        "bad": write(tmp_path, POLICY_PASS.replace("max = 0.6", "max = 0.6\nmaximum = 1"), "bad.toml"),
    }


def test_gate_main_exit_0_prints_table(files, tmp_path, capsys):
    junit, md = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    code = gate_main([str(files["pass"]), str(files["results"]), "--junit", str(junit), "--markdown", str(md)])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "[PASS] FTA of every group" in out and "PASSED" in out
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "0"
    assert md.read_text(encoding="utf-8").startswith("## ✅")


def test_gate_main_exit_1_when_a_rule_fails(files, tmp_path, capsys):
    md = tmp_path / "gate.md"
    assert gate_main([str(files["fail"]), str(files["results"]), "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] FNMR of every ethnicity" in out
    assert md.read_text(encoding="utf-8").startswith("## ❌ Fairness gate failed")


def test_gate_main_exit_2_on_bad_policy_or_results(files, tmp_path, capsys):
    md, junit = tmp_path / "gate.md", tmp_path / "gate.xml"
    assert gate_main([str(files["bad"]), str(files["results"]), "--markdown", str(md), "--junit", str(junit)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("face-audit: error: ") and "bad.toml" in err and "'maximum'" in err
    assert "could not run" in md.read_text(encoding="utf-8")
    assert ET.parse(junit).getroot().find("testsuite/testcase/error") is not None

    assert gate_main([str(files["pass"]), str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    broken = write(tmp_path, '{"title": "no schema"}', "broken.json")
    assert gate_main([str(files["pass"]), str(broken)]) == 2
    assert "schema_version" in capsys.readouterr().err
    # a baseline rule without --baseline
    base_rule = write(tmp_path, '[[rule]]\nname = "vs old"\nkind = "baseline"\ngrouping = "*"\nthreshold = "FMR=1e-3"\nmetric = "fmr"\n', "b.toml")
    assert gate_main([str(base_rule), str(files["results"])]) == 2
    assert "--baseline" in capsys.readouterr().err
    assert gate_main([str(base_rule), str(files["results"]), "--baseline", str(files["results"])]) == 0
    capsys.readouterr()
    # usage errors exit 2 too
    assert gate_main([str(files["pass"])]) == 2
    assert "usage: face-audit gate" in capsys.readouterr().err


def test_run_gate_returns_codes_and_prints_nothing(files, tmp_path, capsys):
    assert run_gate(files["pass"], files["results"]) == 0
    assert run_gate(files["fail"], files["results"], junit=tmp_path / "j.xml") == 1
    assert (tmp_path / "j.xml").is_file()
    assert run_gate(files["bad"], files["results"]) == 2
    assert run_gate(files["pass"], tmp_path / "nope.json") == 2
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------------------ pytest helper


def test_assert_policy_passes_and_returns_the_report(files, result):
    rep = assert_policy(result, files["pass"])
    assert isinstance(rep, GateReport) and rep.passed
    assert assert_policy(files["results"], str(files["pass"])).passed
    assert assert_policy(result, {"rule": [rule(kind="fta", grouping="*", max=0.6)]}).passed


def test_assert_policy_raises_assertion_listing_failures(files, result):
    with pytest.raises(AssertionError) as e:
        assert_policy(result, files["fail"])
    msg = str(e.value)
    assert "FNMR of every ethnicity" in msg and "'Black'" in msg and "FMR ratio across ethnicity" in msg
    assert "ethnicity 'White'" not in msg and "fail.toml" in msg
    with pytest.raises(AssertionError, match="above the baseline"):
        worse = make_result(rates={("ethnicity", "Black", "fmr"): (10, 1000, 0.005, 0.018, False)})
        assert_policy(worse, {"rule": [rule(kind="baseline", metric="fmr")]}, baseline=files["results"])
    with pytest.raises(GateError):  # a bad policy is an error, not a failed assertion
        assert_policy(result, files["bad"])


def test_results_errors_propagate_from_assert_policy(files, tmp_path):
    with pytest.raises(ResultsError):
        assert_policy(tmp_path / "missing.json", files["pass"])


# ------------------------------------------------------------------------------------ shipped examples


@pytest.mark.parametrize("name", ["london-pass.toml", "london-fail.toml"])
def test_example_policies_load(name):
    policy = load_policy(REPO / "examples" / "policies" / name)
    assert isinstance(policy, Policy) and policy.rules


def test_example_policies_on_a_london_shaped_result():
    """Plausible London/dlib numbers: the pass policy passes, the fail policy fails."""
    groups = {"ethnicity": ["Black", "East Asian", "East Asian/White", "West Asian", "White"],
              "gender": ["Female", "Male"]}
    groups["ethnicity+gender"] = [f"{e} / {g}" for e in groups["ethnicity"] for g in groups["gender"]]
    rates, fta, disp = [], [], []
    for t in ("FMR=1e-2", "FMR=1e-3"):
        for grouping, names in groups.items():
            for k, g in enumerate(names):
                mated = 2 if "East Asian/White" in g else 10 + 3 * k
                rates.append((grouping, g, t, 0.5, "fnmr", 0, mated, 0.0, 0.0, 3.84 / (mated + 3.84), "wilson", False))
                rates.append((grouping, g, t, 0.5, "fmr", 10 + k, 1000, (10 + k) / 1000, 0.005, 0.02, "wilson", False))
            disp.append((grouping, t, "fmr", "max_min_ratio", 1.5, names[-1], names[0], len(names), ""))
    for grouping, names in groups.items():
        fta += [(grouping, g, 0, 2 if "East Asian/White" in g else 40, 0.0, 0.0, 0.08, "wilson") for g in names]
    empty = {n: pd.DataFrame({c: pd.Series(dtype=object) for c in cols}) for n, cols in TABLE_COLUMNS.items()}
    london = dataclasses.replace(
        make_result(), groupings=tuple(groups),
        thresholds=(ThresholdInfo("FMR=1e-2", "target_fmr", 0.5, 0.5, 1e-2, 0.01, 206, 20604, 0.0, False),
                    ThresholdInfo("FMR=1e-3", "target_fmr", 0.6, 0.4, 1e-3, 0.001, 20, 20604, 0.01, False)),
        rates=pd.DataFrame(rates, columns=TABLE_COLUMNS["rates"]), fta=pd.DataFrame(fta, columns=TABLE_COLUMNS["fta"]),
        disparity=pd.DataFrame(disp, columns=TABLE_COLUMNS["disparity"]), cross_fmr=empty["cross_fmr"],
    )
    assert evaluate(load_policy(REPO / "examples" / "policies" / "london-pass.toml"), london).passed
    assert not evaluate(load_policy(REPO / "examples" / "policies" / "london-fail.toml"), london).passed


def test_example_workflow_runs_the_gate_and_always_publishes():
    import yaml

    wf = yaml.safe_load((REPO / ".github" / "workflows" / "fairness-audit.yml").read_text(encoding="utf-8"))
    steps = wf["jobs"]["audit"]["steps"]
    runs = " ".join(str(s.get("run", "")) for s in steps)
    for cmd in ("pip install -e '.[dlib]'", "face-audit datasets fetch london", "face-audit run examples/london-dlib.toml",
                "face-audit gate examples/policies/london-pass.toml reports/london-dlib/results.json",
                "--junit gate.xml", "--markdown gate.md", "GITHUB_STEP_SUMMARY"):
        assert cmd in runs, cmd
    uses = {s.get("uses", "").split("@")[0]: s for s in steps}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert uses["actions/cache"]["with"]["path"] == "~/.cache/face-audit"
    assert "hashFiles('data_manifests/**')" in uses["actions/cache"]["with"]["key"]
    assert uses["actions/upload-artifact"]["if"] == "always()"
    assert next(s for s in steps if "GITHUB_STEP_SUMMARY" in str(s.get("run", "")))["if"] == "always()"
