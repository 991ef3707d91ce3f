"""The executive summary: ratios and intervals checked by hand, and the wording rules."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace

import pandas as pd
import pytest

from audit.report import render_html
from audit.verdict import verdict
from audit.findings import STATUS_LABELS, Finding, executive_summary, pct, times
from audit.verification.result import TABLE_COLUMNS, AuditResult
from audit.results import ThresholdInfo

SCRIPT = "<script>alert(1)</script> / male"


def wilson(errors: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float, float]:
    """Rate and Wilson 95% interval (as the report fixtures compute it); NaNs with no trials."""
    if trials == 0:
        return math.nan, math.nan, math.nan
    p = errors / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return p, (0.0 if errors == 0 else max(0.0, centre - half)), (1.0 if errors == trials else min(1.0, centre + half))

T1 = ThresholdInfo("FMR=1e-2", "target_fmr", 0.5, 0.5, 1e-2, 0.01, 100, 10_000, 0.02, False)
T2 = ThresholdInfo("FMR=1e-3", "target_fmr", 0.7, 0.7, 1e-3, 0.001, 10, 10_000, 0.05, False)
DEFAULT = ThresholdInfo("default 0.6", "backend_default", 0.6, 0.6, None, 0.004, 40, 10_000, 0.03, False)
FIXED = ThresholdInfo("fixed 0.6", "fixed", 0.6, 0.6, None, 0.004, 40, 10_000, 0.03, False)


def _frame(name: str, rows: list) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_COLUMNS[name]})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS[name])


def _result(rates: dict, *, thresholds=(T1,), fta: dict | None = None, grouping: str = "ethnicity",
            insufficient: set = frozenset()) -> AuditResult:
    """``rates``: {(threshold name, metric): {group: (errors, trials)}}; ``fta``: {group: (failures, attempts)}."""
    rate_rows, comp = [], {}
    for (tname, metric), groups in rates.items():
        for g, (e, n) in groups.items():
            v, lo, hi = wilson(e, n)
            rate_rows.append((grouping, g, tname, 0.5, metric, e, n, v, lo, hi, "wilson",
                              (g, tname, metric) in insufficient))
            comp.setdefault(g, None)
    fta_rows = []
    for g, (e, n) in (fta or {}).items():
        v, lo, hi = wilson(e, n)
        fta_rows.append((grouping, g, e, n, v, lo, hi, "wilson"))
        comp.setdefault(g, None)
    return AuditResult(
        title="hand-made", provenance={}, groupings=(grouping,), thresholds=tuple(thresholds),
        samples=_frame("samples", []), composition=_frame("composition", [(grouping, g, 10, 20) for g in comp]),
        fta=_frame("fta", fta_rows), rates=_frame("rates", rate_rows), cross_fmr=_frame("cross_fmr", []),
        disparity=_frame("disparity", []), score_hist=_frame("score_hist", []), det=_frame("det", []),
    )


def _one(result: AuditResult, **match) -> Finding:
    found = [f for f in executive_summary(result) if all(getattr(f, k) == v for k, v in match.items())]
    assert len(found) == 1, found
    return found[0]


def test_ratio_and_katz_interval_by_hand():
    # A: 10/100 = 10%, B: 5/200 = 2.5%, C: 30/1000 = 3% (the largest group, neither highest nor lowest)
    # ratio = 0.10 / 0.025 = 4
    # SE(ln RR) = sqrt(1/10 - 1/100 + 1/5 - 1/200) = sqrt(0.285) = 0.533854
    # A and B are the extremes of 3 groups, so the interval is Bonferroni-adjusted over the 3 pairs:
    # z = Phi^-1(1 - 0.05 / 6) = 2.393980; z * SE = 1.278035; exp(-1.278035) = 0.278584, exp(1.278035) = 3.589581
    # interval = 4 * (0.278584, 3.589581) = (1.114336, 14.358324)
    res = _result({("FMR=1e-2", "fmr"): {"A": (10, 100), "B": (5, 200), "C": (30, 1000)}})
    f = _one(res, metric="fmr")
    assert (f.grouping, f.threshold_name, f.group_high, f.group_low) == ("ethnicity", "FMR=1e-2", "A", "B")
    assert f.ratio == pytest.approx(4.0)
    assert f.ci_low == pytest.approx(1.114336, abs=1e-5)
    assert f.ci_high == pytest.approx(14.358324, abs=1e-4)
    assert f.ci_method == "katz-log, Bonferroni over 3 pairs"
    assert f.conclusive and f.status == "difference" and not f.small_sample
    c_lo, c_hi = wilson(30, 1000)[1:]
    assert f.text == (
        "At the threshold where 1 in 100 impostor comparisons match overall (FMR=1e-2), A faces are falsely "
        "matched with one another 4.0× as often as B faces (95% simultaneous CI 1.1–14×): 10 of 100 same-group impostor "
        "comparisons (10%) versus 5 of 200 (2.5%). For context, the largest group, C (1,000 same-group impostor "
        f"comparisons), has an FMR of 3.0% (95% CI {pct(c_lo)}–{pct(c_hi)})."
    )


def test_interval_that_includes_parity_is_worded_as_no_difference():
    # 12/1000 vs 10/1000: ratio 1.2, SE = sqrt(1/12 - 1/1000 + 1/10 - 1/1000) = sqrt(0.181333) = 0.425833
    # z * SE = 0.834617; interval 1.2 * (exp(-0.834617), exp(0.834617)) = (0.520849, 2.764716)
    res = _result({("FMR=1e-2", "fnmr"): {"A": (12, 1000), "B": (10, 1000)}})
    f = _one(res, metric="fnmr")
    assert f.ratio == pytest.approx(1.2)
    assert (f.ci_low, f.ci_high) == (pytest.approx(0.520849, abs=1e-5), pytest.approx(2.764716, abs=1e-5))
    assert not f.conclusive and f.status == "no_difference"
    assert "A faces fail to match another image of the same person 1.2× as often as B faces (95% CI 0.52–2.8×)" in f.text
    assert f.text.endswith("No difference shown: the interval includes parity.")


def test_zero_errors_give_counts_upper_bound_and_lower_bound_of_the_ratio():
    # FTA: A 3 of 26, B none of 138. Conditional interval: all k = 3 failures are A's, so the
    # Clopper-Pearson lower bound of A's share is 0.025 ** (1/3) = 0.292402; as odds
    # 0.292402 / 0.707598 = 0.413231; times 138/26: 2.193305. B's Wilson upper bound (0 of 138) is 0.027083 -> "2.7%".
    res = _result({}, fta={"A": (3, 26), "B": (0, 138)})
    f = _one(res, metric="fta")
    assert f.threshold_name is None
    assert math.isinf(f.ratio) and math.isinf(f.ci_high)
    assert f.ci_low == pytest.approx(2.193305, abs=1e-5)
    assert f.ci_method == "conditional" and f.conclusive
    assert f.text == (
        "The system fails to acquire a face in 3 of 26 A images (12%), versus none of 138 B images "
        "(at most 2.7%, 95% upper bound). That is at least 2.2× as often (95% lower bound of the ratio)."
    )
    assert "∞" not in f.text and "inf" not in f.text


def test_zero_errors_with_an_interval_reaching_parity():
    # FNMR: A 1 of 50, B none of 50. k = 1: A's share >= 0.025, odds 0.025641, times 50/50.
    res = _result({("FMR=1e-2", "fnmr"): {"A": (1, 50), "B": (0, 50)}})
    f = _one(res, metric="fnmr")
    assert f.ci_low == pytest.approx(0.025641, abs=1e-6) and not f.conclusive
    assert "in 1 of 50 mated comparisons (2.0%), versus none of 50 for B (at most 7.1%, 95% upper bound)" in f.text
    assert "No difference shown: the interval for the ratio, from 0.026× upward, includes parity." in f.text


def test_one_error_in_one_comparison_is_not_a_finding():
    # Katz would claim 2.5–15× here (normal approximation with one comparison); the conditional
    # interval does not: 1 of the k = 5 errors is A's, share in (0.00506, 0.716), ratio 0.127–63.
    res = _result({("FMR=1e-2", "fnmr"): {"A": (1, 1), "B": (4, 25)}})
    f = _one(res, metric="fnmr")
    assert f.ci_method == "conditional"
    assert f.ci_low == pytest.approx(0.12691, abs=1e-4) and f.ci_high == pytest.approx(63.158, abs=1e-2)
    assert not f.conclusive and "No difference shown" in f.text


def test_flagged_group_says_the_sample_is_too_small():
    res = _result({("FMR=1e-3", "fmr"): {"A": (19, 312), "B": (0, 9384)}}, thresholds=(T2,),
                  insufficient={("A", "FMR=1e-3", "fmr")})
    f = _one(res, metric="fmr")
    assert f.small_sample and f.ci_low > 1 and not f.conclusive and f.status == "indication"
    assert STATUS_LABELS[f.status].startswith("Indication")
    assert ("A has fewer same-group impostor comparisons than the 3,000 (3/FMR) needed to measure an FMR as "
            "low as 1 in 1,000: the sample is too small") in f.text
    assert f.text.startswith("At the threshold where 1 in 1,000 impostor comparisons match overall (FMR=1e-3), "
                             "A faces are falsely matched with one another in 19 of 312")


def test_no_errors_anywhere():
    res = _result({("FMR=1e-2", "fnmr"): {"A": (0, 69), "B": (0, 13), "C": (0, 1)}})
    f = _one(res, metric="fnmr")
    assert math.isnan(f.ratio) and math.isnan(f.ci_low) and f.group_high is None
    assert f.status == "no_errors" and not f.conclusive
    assert ("no ethnicity group had a false non-match: 0 of 83 mated comparisons, so no difference between "
            "groups is shown. Zero observed is not zero: the groups' 95% upper bounds run from 5.3% (A) to "
            "79% (C).") in f.text


def test_ties_go_to_the_group_with_more_comparisons():
    res = _result({("FMR=1e-2", "fmr"): {"A": (0, 40), "B": (6, 60), "C": (0, 4000), "D": (3, 30)}})
    f = _one(res, metric="fmr")
    assert (f.group_high, f.group_low) == ("B", "C")  # B and D both 10%; A and C both 0


def test_which_thresholds_and_metrics_give_findings():
    rates = {(t.name, m): {"A": (5, 100), "B": (1, 100)} for t in (T1, T2, DEFAULT) for m in ("fmr", "fnmr")}
    res = _result(rates, thresholds=(T1, T2, DEFAULT), fta={"A": (0, 10), "B": (0, 10)})
    found = executive_summary(res)
    # target-FMR thresholds only (the backend default is in the tables), FMR then FNMR; no FTA
    # finding when nothing failed to acquire
    assert [(f.threshold_name, f.metric) for f in found] == [
        ("FMR=1e-2", "fmr"), ("FMR=1e-2", "fnmr"), ("FMR=1e-3", "fmr"), ("FMR=1e-3", "fnmr")]
    only_fixed = _result({("fixed 0.6", "fmr"): {"A": (5, 100), "B": (1, 100)}}, thresholds=(FIXED,))
    f = _one(only_fixed, metric="fmr")
    assert f.text.startswith("At the fixed threshold (fixed 0.6), where 0.40% of all impostor comparisons match, ")


def test_one_group_or_no_comparisons_give_no_finding():
    assert executive_summary(_result({("FMR=1e-2", "fmr"): {"A": (5, 100)}})) == []
    assert executive_summary(_result({("FMR=1e-2", "fmr"): {"A": (5, 100), "B": (0, 0)}})) == []


def test_group_names_are_not_escaped_here_and_sentences_start_upper_case():
    res = _result({}, fta={"<b>x</b>": (2, 10), "y": (0, 50)})
    f = _one(res, metric="fta")
    assert "<b>x</b> images" in f.text
    low = _result({("FMR=1e-2", "fmr"): {"aa": (40, 100), "bb": (0, 100)}},
                  insufficient={("aa", "FMR=1e-2", "fmr"), ("bb", "FMR=1e-2", "fmr")})
    assert " Aa and bb have fewer" in _one(low, metric="fmr").text


def test_row_order_and_group_names_do_not_change_the_numbers(tiny_result):
    base = executive_summary(tiny_result)
    shuffled = replace(tiny_result, rates=tiny_result.rates.sample(frac=1.0, random_state=3).reset_index(drop=True),
                       fta=tiny_result.fta.sample(frac=1.0, random_state=4).reset_index(drop=True))
    assert executive_summary(shuffled) == base
    rename = {"female": "F", "male": "M"}
    relabelled = replace(tiny_result, **{name: getattr(tiny_result, name).replace({"group": rename})
                                         for name in ("rates", "fta", "composition")})
    again = [f for f in executive_summary(relabelled) if f.grouping == "gender"]
    before = [f for f in base if f.grouping == "gender"]
    assert [(f.metric, f.threshold_name, f.status) for f in again] == [(f.metric, f.threshold_name, f.status) for f in before]
    for a, b in zip(again, before):
        assert (a.ratio, a.ci_low, a.ci_high) == pytest.approx((b.ratio, b.ci_low, b.ci_high), nan_ok=True)
        assert rename.get(b.group_high, b.group_high) == a.group_high


def test_tiny_result_findings(tiny_result):
    found = executive_summary(tiny_result)
    assert all(isinstance(f, Finding) for f in found)
    script = next(f for f in found if f.group_high == SCRIPT)
    assert script.small_sample and not script.conclusive  # 66 impostor comparisons, flagged
    with pytest.raises(FrozenInstanceError):
        script.text = "x"  # type: ignore[misc]


def test_summary_is_at_the_top_of_the_report_and_escaped(tiny_result):
    html = render_html(tiny_result)
    assert html.index('id="summary"') < html.index('id="tested"')
    section = html[html.index('id="summary"'): html.index("</section>", html.index('id="summary"'))]
    assert 'id="verdict"' in section
    assert "<script" not in section
    v = verdict(tiny_result)
    assert section.count('<li class="finding ') == len(v.findings) <= 5
    for f in v.findings:
        assert f.status_words in section  # status is said in words, not only by colour


@pytest.mark.parametrize("value, text", [(0.7, "70%"), (0.08, "8.0%"), (0.004, "0.40%"), (0.00017, "0.017%"), (0.0, "0%")])
def test_pct(value, text):
    assert pct(value) == text


@pytest.mark.parametrize("value, text", [(250.4, "250"), (1234.0, "1,234"), (17.4, "17"), (4.0, "4.0"), (0.35, "0.35"),
                                         (math.inf, "∞")])
def test_times(value, text):
    assert times(value) == text


def _with_pair_interval(res: AuditResult, high: str, low: str, lo: float, hi: float, metric: str = "fmr") -> AuditResult:
    cols = TABLE_COLUMNS["disparity"] + ["ci_low", "ci_high", "pair_ci_low", "pair_ci_high"]
    row = ["ethnicity", "FMR=1e-2", metric, "max_min_ratio", 4.0, high, low, 3, "", 1.0, 20.0, lo, hi]
    return replace(res, disparity=pd.DataFrame([row], columns=cols))


def test_people_level_simultaneous_interval_leads_the_ratio():
    res = _result({("FMR=1e-2", "fmr"): {"A": (10, 100), "B": (5, 200), "C": (30, 1000)}})
    # people shared by many comparisons: the people-level interval (simultaneous over the groups) is used
    f = _one(_with_pair_interval(res, "A", "B", 0.9, 30.0), metric="fmr")
    assert (f.ci_low, f.ci_high) == (0.9, 30.0) and f.ci_method == "people bootstrap, simultaneous over the groups"
    assert not f.conclusive and f.status == "no_difference"
    assert "(95% simultaneous CI 0.90–30×)" in f.text and "No difference shown" in f.text
    # also when it is narrower than the independence-based one: it is the valid one for shared people
    g = _one(_with_pair_interval(res, "A", "B", 2.0, 12.0), metric="fmr")
    assert (g.ci_low, g.ci_high) == (2.0, 12.0) and g.conclusive
    # an interval for other groups, or another metric, is not used
    for other in (_with_pair_interval(res, "C", "B", 0.5, 30.0), _with_pair_interval(res, "A", "B", 0.5, 30.0, metric="fnmr")):
        h = _one(other, metric="fmr")
        assert h.ci_method.startswith("katz-log, Bonferroni") and h.ci_low == pytest.approx(1.114336, abs=1e-5)


def test_a_group_flagged_by_its_effective_count_is_told_so():
    # 5,000 same-group comparisons but flagged: its people recur, so they count as fewer than 3/FMR
    res = _result({("FMR=1e-2", "fmr"): {"A": (100, 5000), "B": (10, 5000)}})
    rates = res.rates.copy()
    rates.loc[(rates.group == "A") & (rates.metric == "fmr"), "insufficient"] = True
    f = _one(replace(res, rates=rates), metric="fmr")
    assert "counted effectively (comparisons that share a person count as fewer)" in f.text and f.status == "indication"
