"""Tests of audit.metrics.uncertainty: Wilson and Clopper–Pearson intervals, rule of three."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from audit.errors import FaceAuditError, MetricError
from audit.metrics import (
    Interval,
    IntervalArrays,
    RatioInterval,
    clopper_pearson_interval,
    clopper_pearson_interval_arrays,
    insufficient_impostors,
    interval_arrays,
    rate_ratio_interval,
    wilson_interval,
    wilson_interval_arrays,
)

# ---------------------------------------------------------------------------------------------
# Wilson


def test_wilson_2_of_10_by_hand():
    # p = 0.2, n = 10, z = 1.959963984540054 (97.5% normal quantile), z^2 = 3.841458820694124
    # denom  = 1 + z^2/n                     = 1.3841458820694124
    # centre = (p + z^2/(2n)) / denom        = (0.2 + 0.1920729410347062) / 1.3841458820694124
    #                                        = 0.2832598399504703
    # half   = z/denom * sqrt(p(1-p)/n + z^2/(4n^2))
    #        = 1.4160119025... * sqrt(0.016 + 0.0096036470517353) = 1.4160119025... * 0.16001139
    #        = 0.2265776884...
    # low = 0.0566821515, high = 0.5098375285
    ci = wilson_interval(2, 10)
    assert isinstance(ci, Interval)
    assert ci.method == "wilson" and ci.confidence == 0.95
    assert ci.low == pytest.approx(0.0566821515, abs=1e-6)
    assert ci.high == pytest.approx(0.5098375285, abs=1e-6)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("errors,trials", [(0, 1), (1, 1), (0, 10), (2, 10), (10, 10), (3, 3000),
                                           (17, 250), (499, 1000), (1, 1_000_000)])
def test_wilson_matches_scipy(errors, trials, confidence):
    ref = stats.binomtest(errors, trials).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    ci = wilson_interval(errors, trials, confidence=confidence)
    assert ci.low == pytest.approx(float(ref.low), abs=1e-9)
    assert ci.high == pytest.approx(float(ref.high), abs=1e-9)


def test_wilson_edges_are_exact():
    # no errors: the lower bound is exactly 0; all errors: the upper bound is exactly 1
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == 1.0
    # 0/10 upper bound by hand: p = 0 -> centre = half = (z^2/20)/denom = 0.13876640;
    # high = 2 * 0.1920729410347062 / 1.3841458820694124 = 0.2775327999
    assert wilson_interval(0, 10).high == pytest.approx(0.2775327999, abs=1e-9)


def test_wilson_no_trials_is_nan():
    ci = wilson_interval(0, 0)
    assert math.isnan(ci.low) and math.isnan(ci.high)
    assert ci.method == "wilson"


def test_wilson_accepts_numpy_integers():
    ci = wilson_interval(np.int64(2), np.int32(10))
    assert ci.low == pytest.approx(0.0566821515, abs=1e-6)


def test_interval_is_frozen():
    ci = wilson_interval(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.low = 0.0  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Wilson, vectorised


def test_wilson_arrays_match_scalar():
    errors = np.array([0, 2, 10, 3, 0])
    trials = np.array([10, 10, 10, 3000, 0])
    ci = wilson_interval_arrays(errors, trials, confidence=0.9)
    assert isinstance(ci, IntervalArrays)
    assert ci.method == "wilson" and ci.confidence == 0.9
    assert ci.low.shape == (5,) and ci.high.shape == (5,)
    assert ci.low.dtype == np.float64
    for j in range(4):
        one = wilson_interval(int(errors[j]), int(trials[j]), confidence=0.9)
        assert ci.low[j] == pytest.approx(one.low, abs=1e-15)
        assert ci.high[j] == pytest.approx(one.high, abs=1e-15)
    assert math.isnan(ci.low[4]) and math.isnan(ci.high[4])
    assert ci.low[0] == 0.0 and ci.high[2] == 1.0


def test_wilson_arrays_are_read_only_and_accept_lists():
    ci = wilson_interval_arrays([1, 2], [4, 4])
    with pytest.raises(ValueError):
        ci.low[0] = 0.5


def test_wilson_arrays_validation():
    with pytest.raises(MetricError, match="same shape"):
        wilson_interval_arrays([1, 2], [3])
    with pytest.raises(MetricError, match="first at flat index 1"):
        wilson_interval_arrays([1, 5], [3, 4])
    with pytest.raises(MetricError, match="integer counts"):
        wilson_interval_arrays([0.5], [3])
    with pytest.raises(MetricError, match="confidence"):
        wilson_interval_arrays([1], [3], confidence=1.0)


# ---------------------------------------------------------------------------------------------
# Clopper–Pearson


def test_clopper_pearson_zero_and_all_by_hand():
    # e = 0: low = 0 and (1 - high)^n = 0.025  ->  high = 1 - 0.025**(1/10) = 0.3084971078
    ci = clopper_pearson_interval(0, 10)
    assert ci.low == 0.0
    assert ci.high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)
    assert ci.method == "clopper-pearson"
    # e = n: high = 1 and low^n = 0.025  ->  low = 0.025**(1/10) = 0.6915028922
    ci = clopper_pearson_interval(10, 10)
    assert ci.high == 1.0
    assert ci.low == pytest.approx(0.025 ** (1 / 10), abs=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("errors,trials", [(0, 1), (1, 1), (0, 10), (2, 10), (10, 10), (3, 3000),
                                           (17, 250), (499, 1000)])
def test_clopper_pearson_matches_scipy(errors, trials, confidence):
    ref = stats.binomtest(errors, trials).proportion_ci(confidence_level=confidence, method="exact")
    ci = clopper_pearson_interval(errors, trials, confidence=confidence)
    assert ci.low == pytest.approx(float(ref.low), abs=1e-9)
    assert ci.high == pytest.approx(float(ref.high), abs=1e-9)


def test_clopper_pearson_is_wider_than_wilson():
    cp, w = clopper_pearson_interval(2, 10), wilson_interval(2, 10)
    assert cp.low < w.low and cp.high > w.high


def test_clopper_pearson_no_trials_is_nan():
    ci = clopper_pearson_interval(0, 0)
    assert math.isnan(ci.low) and math.isnan(ci.high)


def test_clopper_pearson_5_of_10_by_hand():
    # symmetric: low solves P(X >= 5 | p) = 0.025 for X ~ Bin(10, p): 0.187086...; high = 1 - low
    ci = clopper_pearson_interval(5, 10)
    assert ci.low == pytest.approx(0.18709, abs=1e-5)
    assert ci.high == pytest.approx(0.81291, abs=1e-5)
    assert ci.low + ci.high == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Clopper–Pearson, vectorised


def test_clopper_pearson_arrays_by_hand():
    ci = clopper_pearson_interval_arrays([0, 10, 5, 0], [10, 10, 10, 0])
    assert isinstance(ci, IntervalArrays)
    assert ci.method == "clopper-pearson" and ci.confidence == 0.95
    assert ci.low.dtype == np.float64 and ci.low.shape == (4,)
    assert ci.low[0] == 0.0 and ci.high[0] == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)   # 0.30849...
    assert ci.high[1] == 1.0 and ci.low[1] == pytest.approx(0.025 ** (1 / 10), abs=1e-12)      # 0.69150...
    assert (ci.low[2], ci.high[2]) == (pytest.approx(0.18709, abs=1e-5), pytest.approx(0.81291, abs=1e-5))
    assert math.isnan(ci.low[3]) and math.isnan(ci.high[3])


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_arrays_equal_the_scalar_elementwise(confidence):
    errors = np.array([0, 1, 2, 10, 3, 17, 499, 0, 1])
    trials = np.array([10, 1, 10, 10, 3000, 250, 1000, 1, 1])
    ci = clopper_pearson_interval_arrays(errors, trials, confidence=confidence)
    for j in range(errors.size):
        one = clopper_pearson_interval(int(errors[j]), int(trials[j]), confidence=confidence)
        assert ci.low[j] == pytest.approx(one.low, abs=1e-15)
        assert ci.high[j] == pytest.approx(one.high, abs=1e-15)


def test_clopper_pearson_arrays_any_shape_read_only_and_no_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the e == 0, e == n and n == 0 cells must not warn
        ci = clopper_pearson_interval_arrays(np.array([[0, 0], [3, 4]]), np.array([[0, 5], [4, 4]]))
    assert ci.low.shape == (2, 2)
    assert math.isnan(ci.low[0, 0]) and ci.low[0, 1] == 0.0 and ci.high[1, 1] == 1.0
    with pytest.raises(ValueError):
        ci.high[0, 1] = 0.5


def test_clopper_pearson_arrays_validation():
    with pytest.raises(MetricError, match="same shape"):
        clopper_pearson_interval_arrays([1, 2], [3])
    with pytest.raises(MetricError, match="first at flat index 1"):
        clopper_pearson_interval_arrays([1, 5], [3, 4])
    with pytest.raises(MetricError, match="integer counts"):
        clopper_pearson_interval_arrays([0.5], [3])
    with pytest.raises(MetricError, match="confidence"):
        clopper_pearson_interval_arrays([1], [3], confidence=95)


def test_clopper_pearson_arrays_contain_and_are_wider_than_wilson():
    errors = np.array([0, 1, 2, 5, 9, 10])
    trials = np.full(6, 10)
    cp, w = clopper_pearson_interval_arrays(errors, trials), wilson_interval_arrays(errors, trials)
    p = errors / trials
    assert np.all(cp.low <= p) and np.all(p <= cp.high)
    assert np.all(cp.low <= w.low) and np.all(cp.high >= w.high)
    assert np.all(cp.high - cp.low > w.high - w.low)


def test_interval_arrays_dispatches_by_method():
    e, n = [0, 2, 0], [10, 10, 0]
    for method, fn in (("wilson", wilson_interval_arrays), ("clopper-pearson", clopper_pearson_interval_arrays)):
        ci, ref = interval_arrays(e, n, method=method, confidence=0.9), fn(e, n, confidence=0.9)
        assert ci.method == method and ci.confidence == 0.9
        np.testing.assert_array_equal(ci.low, ref.low)
        np.testing.assert_array_equal(ci.high, ref.high)
    assert interval_arrays(e, n).method == "wilson"
    for bad in ("exact", "clopper_pearson", None):
        with pytest.raises(MetricError, match="wilson.*clopper-pearson"):
            interval_arrays(e, n, method=bad)


# ---------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize("func", [wilson_interval, clopper_pearson_interval])
@pytest.mark.parametrize("confidence", [0.0, 1.0, 95, -0.5, float("nan"), "high"])
def test_bad_confidence(func, confidence):
    with pytest.raises(MetricError, match="confidence"):
        func(1, 10, confidence=confidence)


@pytest.mark.parametrize("func", [wilson_interval, clopper_pearson_interval])
def test_bad_counts(func):
    with pytest.raises(MetricError, match="cannot exceed trials"):
        func(11, 10)
    with pytest.raises(MetricError, match="non-negative"):
        func(-1, 10)
    with pytest.raises(MetricError, match="integer count"):
        func(0.2, 10)
    with pytest.raises(MetricError, match="integer count"):
        func(True, 10)


def test_metric_error_is_a_value_error():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    assert issubclass(MetricError, FaceAuditError)


# ---------------------------------------------------------------------------------------------
# rule of three


@pytest.mark.parametrize(
    "impostors,target,expected",
    [
        # 3 / 1e-3 = 3000 impostors are needed
        (2999, 1e-3, True),
        (3000, 1e-3, False),
        # 3 / 1e-6 = 3,000,000 (the binary value of 1e-6 must not make 3,000,000 insufficient)
        (2_999_999, 1e-6, True),
        (3_000_000, 1e-6, False),
        # 3 / 1e-2 = 300
        (299, 1e-2, True),
        (300, 1e-2, False),
        # target 1: 3 comparisons
        (2, 1.0, True),
        (3, 1.0, False),
        (0, 0.5, True),
    ],
)
def test_insufficient_impostors(impostors, target, expected):
    assert insufficient_impostors(impostors, target) is expected


def test_insufficient_impostors_validation():
    with pytest.raises(MetricError, match=r"\(0, 1\]"):
        insufficient_impostors(100, 0.0)
    with pytest.raises(MetricError, match=r"\(0, 1\]"):
        insufficient_impostors(100, 1.5)
    with pytest.raises(MetricError, match="non-negative integer"):
        insufficient_impostors(-1, 0.1)
    with pytest.raises(MetricError, match="non-negative integer"):
        insufficient_impostors(10.0, 0.1)


# ---------------------------------------------------------------------------------------------
# ratio of two rates


def test_rate_ratio_katz_by_hand():
    # RR = (10/100) / (5/200) = 4; SE(ln RR) = sqrt(1/10 - 1/100 + 1/5 - 1/200) = sqrt(0.285) = 0.533854
    # z * SE = 1.046334; bounds 4 * exp(-1.046334) = 1.404891, 4 * exp(1.046334) = 11.388782
    ci = rate_ratio_interval(10, 100, 5, 200, method="katz")
    assert isinstance(ci, RatioInterval) and ci.method == "katz-log" and ci.confidence == 0.95
    assert ci.ratio == 4.0
    assert ci.low == pytest.approx(1.404891, abs=1e-5)
    assert ci.high == pytest.approx(11.388782, abs=1e-4)
    assert rate_ratio_interval(10, 100, 5, 200) == ci  # auto: every cell is at least 5


def test_rate_ratio_katz_is_symmetric_on_the_log_scale():
    a = rate_ratio_interval(30, 400, 12, 500)
    b = rate_ratio_interval(12, 500, 30, 400)
    assert a.ratio * b.ratio == pytest.approx(1.0)
    assert a.low * b.high == pytest.approx(1.0) and a.high * b.low == pytest.approx(1.0)


def test_rate_ratio_conditional_by_hand():
    # 3 of 26 against 0 of 138: all k = 3 errors are in a; Clopper-Pearson lower bound of that
    # share is 0.025 ** (1/3) = 0.292402, upper 1; ratio bounds (0.292402 / 0.707598) * 138 / 26.
    ci = rate_ratio_interval(3, 26, 0, 138)
    assert ci.method == "conditional"
    assert math.isinf(ci.ratio) and math.isinf(ci.high)
    assert ci.low == pytest.approx(2.193305, abs=1e-5)
    # general case against scipy's beta quantiles: 4 of 40 against 2 of 100 (k = 6)
    ci = rate_ratio_interval(4, 40, 2, 100)
    lo, hi = stats.beta.ppf(0.025, 4, 3), stats.beta.ppf(0.975, 5, 2)
    assert ci.method == "conditional" and ci.ratio == pytest.approx(5.0)
    assert ci.low == pytest.approx(lo / (1 - lo) * 100 / 40)
    assert ci.high == pytest.approx(hi / (1 - hi) * 100 / 40)
    zero_a = rate_ratio_interval(0, 10, 3, 20)
    assert zero_a.ratio == 0.0 and zero_a.low == 0.0 and math.isfinite(zero_a.high)


def test_rate_ratio_conditional_is_wider_than_katz_for_small_counts():
    # one error in one trial: Katz's normal approximation claims a difference, the exact one does not
    katz = rate_ratio_interval(1, 1, 4, 25, method="katz")
    cond = rate_ratio_interval(1, 1, 4, 25)
    assert katz.low > 1 and cond.low < 1 < cond.high
    assert cond.method == "conditional"


def test_rate_ratio_katz_adds_half_to_zero_cells():
    ci = rate_ratio_interval(3, 26, 0, 138, method="katz")
    assert ci.method == "katz-log+0.5" and math.isinf(ci.ratio)
    a, n1, b, n2 = 3.5, 27.0, 0.5, 139.0
    se = math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n2)
    z = stats.norm.ppf(0.975)
    assert ci.low == pytest.approx((a / n1) / (b / n2) * math.exp(-z * se))


@pytest.mark.parametrize("args", [(0, 10, 0, 10), (0, 0, 1, 10), (1, 10, 0, 0)])
def test_rate_ratio_without_a_comparison_is_nan(args):
    ci = rate_ratio_interval(*args)
    assert math.isnan(ci.ratio) and math.isnan(ci.low) and math.isnan(ci.high)


def test_rate_ratio_refuses_bad_input():
    with pytest.raises(MetricError, match="errors cannot exceed trials"):
        rate_ratio_interval(5, 4, 1, 10)
    with pytest.raises(MetricError, match="method must be"):
        rate_ratio_interval(1, 10, 1, 10, method="wald")
    with pytest.raises(MetricError, match="confidence"):
        rate_ratio_interval(1, 10, 1, 10, confidence=95)
