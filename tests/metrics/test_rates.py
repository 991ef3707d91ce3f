"""Tests of audit.metrics.rates: FMR/FNMR, thresholds at a target FMR, counting core, DET curve."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from audit.errors import MetricError
from audit.metrics import (
    ErrorCounts,
    Rate,
    clopper_pearson_interval,
    det_curve,
    error_counts,
    fmr,
    fnmr,
    rate_from_counts,
    threshold_at_fmr,
    thresholds_at_fmr,
    wilson_interval,
)

TEN = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]


def just_above(x: float) -> float:
    return float(np.nextafter(x, np.inf))


def brute_fm(impostor, t):
    return sum(1 for s in impostor if s >= t)


def brute_fnm(genuine, t):
    return sum(1 for s in genuine if s < t)


# ---------------------------------------------------------------------------------------------
# fmr / fnmr


def test_fmr_tie_rule_counts_equal_score_as_match():
    # scores >= 0.5: 0.5 (tie) and 0.9 -> 2 false matches out of 4
    r = fmr([0.1, 0.4, 0.5, 0.9], 0.5)
    assert isinstance(r, Rate)
    assert (r.errors, r.trials, r.value) == (2, 4, 0.5)
    assert isinstance(r.errors, int) and isinstance(r.trials, int)
    assert isinstance(r.value, float)


def test_fnmr_tie_rule_equal_score_is_not_a_false_non_match():
    # genuine scores < 0.5: only 0.2 (0.5 is a tie, so a match) -> 1 of 4
    r = fnmr([0.2, 0.5, 0.8, 0.9], 0.5)
    assert (r.errors, r.trials, r.value) == (1, 4, 0.25)


def test_fmr_and_fnmr_carry_intervals():
    r = fmr(TEN, 9.0)  # 9 and 10 match: 2 of 10
    ci = wilson_interval(2, 10)
    assert (r.ci_low, r.ci_high, r.ci_method) == (ci.low, ci.high, "wilson")
    r = fnmr(TEN, 3.0, method="clopper-pearson", confidence=0.9)  # 1 and 2 fail: 2 of 10
    ci = clopper_pearson_interval(2, 10, confidence=0.9)
    assert (r.errors, r.ci_low, r.ci_high, r.ci_method) == (2, ci.low, ci.high, "clopper-pearson")


def test_rates_on_empty_scores_are_nan():
    for r in (fmr([], 0.5), fnmr(np.array([]), 0.5)):
        assert (r.errors, r.trials) == (0, 0)
        assert math.isnan(r.value) and math.isnan(r.ci_low) and math.isnan(r.ci_high)


def test_rates_accept_infinite_thresholds_and_integer_scores():
    assert fmr([1, 2, 3], -np.inf).value == 1.0
    assert fmr([1, 2, 3], np.inf).value == 0.0
    assert fnmr([1, 2, 3], 2).errors == 1


def test_rate_from_counts():
    r = rate_from_counts(3, 3000, method="clopper-pearson")
    assert r.value == pytest.approx(1e-3)
    assert r.ci_method == "clopper-pearson"
    assert rate_from_counts(0, 0).value != rate_from_counts(0, 0).value  # nan
    with pytest.raises(MetricError, match="cannot exceed"):
        rate_from_counts(4, 3)


def test_rate_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmr(TEN, 5.0).value = 0.0  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# threshold_at_fmr, by hand on 10 scores 1..10


@pytest.mark.parametrize(
    "target,boundary,expected_fmr",
    [
        # k = floor(0.1 * 10) = 1: only 10 may match; s_2 = 9 -> t just above 9, FMR 1/10
        (0.1, 9.0, 0.1),
        # k = 2: 10 and 9 may match; s_3 = 8 -> t just above 8, FMR 2/10
        (0.2, 8.0, 0.2),
        # k = floor(1.5) = 1: same as 0.1
        (0.15, 9.0, 0.1),
        # k = floor(0.5) = 0: nothing may match; s_1 = 10 -> t just above 10, FMR 0
        (0.05, 10.0, 0.0),
        (1e-9, 10.0, 0.0),
        # k = 9 < n: s_10 = 1 -> t just above 1, FMR 9/10
        (0.95, 1.0, 0.9),
    ],
)
def test_threshold_at_fmr_by_hand(target, boundary, expected_fmr):
    t = threshold_at_fmr(TEN, target)
    assert isinstance(t, float)
    assert t == just_above(boundary)
    assert fmr(TEN, t).value == expected_fmr
    # minimality: at the boundary score itself one more comparison matches, exceeding the target
    assert fmr(TEN, boundary).value > target


def test_threshold_at_fmr_target_one_returns_minimum():
    # k = 10 >= n: everything may match -> the minimum score, FMR = 1
    t = threshold_at_fmr(TEN, 1.0)
    assert t == 1.0
    assert fmr(TEN, t).value == 1.0


def test_threshold_at_fmr_ties_at_the_boundary():
    # descending: 10, 8, 8, 8, 7, ...; target 0.2 -> k = 2; s_3 = 8.
    # t just above 8: only 10 matches (FMR 0.1 < 0.2). Any t <= 8 lets 10, 8, 8, 8 match (0.4).
    scores = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 8.0, 8.0]
    scores[0] = 10.0
    t = threshold_at_fmr(scores, 0.2)
    assert t == just_above(8.0)
    assert fmr(scores, t).errors == 1
    assert fmr(scores, 8.0).errors == 4
    # all scores equal: nothing can be allowed to match unless target == 1
    same = [0.5] * 10
    assert threshold_at_fmr(same, 0.5) == just_above(0.5)
    assert fmr(same, threshold_at_fmr(same, 0.5)).value == 0.0
    assert threshold_at_fmr(same, 1.0) == 0.5


def test_threshold_at_fmr_tie_not_crossing_the_boundary():
    # descending 10, 9, 9, 7, 6, ...; target 0.3 -> k = 3, s_4 = 7 -> FMR exactly 0.3
    scores = [10.0, 9.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    t = threshold_at_fmr(scores, 0.3)
    assert t == just_above(7.0)
    assert fmr(scores, t).value == 0.3


@pytest.mark.parametrize(
    "target,n,k",
    [
        (1e-3, 3000, 3),  # 1e-3 * 3000 must give 3 despite the binary value of 1e-3
        (0.29, 100, 29),  # 0.29 * 100 = 28.999999999999996 in float64
        (0.57, 100, 57),  # 0.57 * 100 = 56.99999999999999 in float64
        (1e-2, 300, 3),
        (1e-4, 30_000, 3),
        (1e-5, 200_000, 2),
        (1e-6, 3_000_000, 3),
        (0.1, 10, 1),
    ],
)
def test_threshold_at_fmr_decimal_targets(target, n, k):
    scores = np.arange(n, dtype=np.float64)
    t = threshold_at_fmr(scores, target)
    # the k highest scores n-1, ..., n-k may match; the (k+1)-th, n-k-1, must not
    assert t == just_above(float(n - k - 1))
    assert fmr(scores, t).errors == k


def test_threshold_at_fmr_is_invariant_to_permutation():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=1000), 2)  # many ties
    for target in (1e-3, 0.01, 0.1, 0.37, 1.0):
        t = threshold_at_fmr(scores, target)
        for _ in range(3):
            assert threshold_at_fmr(rng.permutation(scores), target) == t
        assert threshold_at_fmr(list(scores), target) == t


def test_threshold_at_fmr_does_not_modify_input():
    scores = np.array([3.0, 1.0, 2.0])
    threshold_at_fmr(scores, 0.5)
    assert scores.tolist() == [3.0, 1.0, 2.0]


def test_threshold_at_fmr_property_bound_and_minimality():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        # rounding makes ties common
        scores = np.round(rng.normal(size=n), int(rng.integers(0, 4)))
        target = float(10 ** rng.uniform(-3, 0))
        t = threshold_at_fmr(scores, target)
        k = math.floor(target * n * (1 + 1e-12))
        errors = int(np.count_nonzero(scores >= t))
        assert errors <= k
        assert errors / n <= target * (1 + 1e-12)
        below = scores[scores < t]
        if k < n:
            # lowering the threshold to the next smaller distinct score exceeds the target
            assert below.size > 0
            assert int(np.count_nonzero(scores >= below.max())) > k
        # nothing strictly between the next smaller score and t
        if below.size:
            assert t == just_above(float(below.max())) or k >= n


def test_threshold_at_fmr_float32_scores_hold_in_float32():
    rng = np.random.default_rng(2)
    s32 = rng.normal(size=5000).astype(np.float32)
    for target in (1e-3, 1e-2, 0.1):
        t = threshold_at_fmr(s32, target)
        k = math.floor(target * 5000 * (1 + 1e-12))
        # compared in float64 and in float32 alike, at most k scores match
        assert np.count_nonzero(s32.astype(np.float64) >= t) <= k
        assert np.count_nonzero(s32 >= np.float32(t)) <= k
        assert np.count_nonzero(s32 >= t) <= k
        assert fmr(s32, t).errors <= k


# ---------------------------------------------------------------------------------------------
# thresholds_at_fmr


def test_thresholds_at_fmr_matches_scalar_in_order():
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=2000), 2)
    targets = [0.5, 1e-3, 1.0, 0.1, 0.01, 0.1]
    out = thresholds_at_fmr(scores, targets)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (6,)
    assert out.tolist() == [threshold_at_fmr(scores, t) for t in targets]


def test_thresholds_at_fmr_many_targets_uses_sort_path():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=3000)
    targets = np.logspace(-3, 0, 40)
    out = thresholds_at_fmr(scores, targets)
    assert out.tolist() == [threshold_at_fmr(scores, t) for t in targets]
    # higher target, lower (or equal) threshold
    assert np.all(np.diff(out) <= 0)


def test_thresholds_at_fmr_by_hand():
    # same as the scalar hand cases on 1..10
    out = thresholds_at_fmr(TEN, [0.1, 0.2, 0.05, 1.0])
    assert out.tolist() == [just_above(9.0), just_above(8.0), just_above(10.0), 1.0]
    assert thresholds_at_fmr(TEN, []).shape == (0,)


def test_thresholds_at_fmr_validation():
    with pytest.raises(MetricError, match="first at index 2"):
        thresholds_at_fmr(TEN, [0.1, 0.2, 0.0])
    with pytest.raises(MetricError, match="1-D"):
        thresholds_at_fmr(TEN, 0.1)
    with pytest.raises(MetricError, match="must not be empty"):
        thresholds_at_fmr([], [0.1])


# ---------------------------------------------------------------------------------------------
# error_counts


def test_error_counts_by_hand():
    # genuine 0.5, 0.7, 0.9; impostor 0.1, 0.3, 0.5
    # t = 0.3: impostors >= 0.3: 0.3, 0.5 -> 2; genuine < 0.3: none -> 0
    # t = 0.5: impostors >= 0.5: 0.5 -> 1;      genuine < 0.5: none -> 0
    # t = 0.8: impostors: 0;                    genuine < 0.8: 0.5, 0.7 -> 2
    c = error_counts([0.5, 0.7, 0.9], [0.1, 0.3, 0.5], [0.3, 0.5, 0.8])
    assert isinstance(c, ErrorCounts)
    assert c.false_matches.tolist() == [2, 1, 0]
    assert c.false_non_matches.tolist() == [0, 0, 2]
    assert (c.impostors, c.genuines) == (3, 3)
    assert c.thresholds.tolist() == [0.3, 0.5, 0.8]
    assert c.fmr.tolist() == [2 / 3, 1 / 3, 0.0]
    assert c.fnmr.tolist() == [0.0, 0.0, 2 / 3]
    assert isinstance(c.impostors, int) and isinstance(c.genuines, int)


def test_error_counts_matches_brute_force():
    rng = np.random.default_rng(5)
    genuine = np.round(rng.normal(1.0, 1.0, size=300), 1)
    impostor = np.round(rng.normal(-1.0, 1.0, size=500), 1)
    # thresholds: unsorted, on scores (ties), between scores, and infinite
    thresholds = np.concatenate(
        [rng.permutation(np.concatenate([genuine[:50], impostor[:50]])),
         rng.uniform(-4, 4, size=50), [-np.inf, np.inf]]
    )
    c = error_counts(genuine, impostor, thresholds)
    assert c.false_matches.tolist() == [brute_fm(impostor, t) for t in thresholds]
    assert c.false_non_matches.tolist() == [brute_fnm(genuine, t) for t in thresholds]
    # agrees with fmr/fnmr at single thresholds
    for j in range(0, len(thresholds), 17):
        assert fmr(impostor, thresholds[j]).errors == c.false_matches[j]
        assert fnmr(genuine, thresholds[j]).errors == c.false_non_matches[j]


def test_error_counts_with_empty_arrays():
    c = error_counts([], [0.1, 0.2], [0.15])
    assert c.false_non_matches.tolist() == [0] and c.genuines == 0
    assert math.isnan(c.fnmr[0])
    assert c.fmr.tolist() == [0.5]


def test_error_counts_arrays_are_read_only():
    c = error_counts([1.0], [0.0], [0.5])
    with pytest.raises(ValueError):
        c.false_matches[0] = 7


def test_error_counts_validation():
    with pytest.raises(MetricError, match="NaN"):
        error_counts([1.0], [0.0], [0.5, np.nan])
    with pytest.raises(MetricError, match="1-D"):
        error_counts([1.0], [0.0], 0.5)


# ---------------------------------------------------------------------------------------------
# det_curve


def test_det_curve_by_hand():
    # thresholds = union of unique scores: 0.1, 0.6, 0.9
    # t=0.1: fmr 2/2 (0.1, 0.6 >= 0.1), fnmr 0/2
    # t=0.6: fmr 1/2 (0.6 tie matches), fnmr 0/2 (0.6 tie matches)
    # t=0.9: fmr 0/2,                   fnmr 1/2 (0.6 < 0.9)
    df = det_curve([0.6, 0.9], [0.1, 0.6])
    assert list(df.columns) == ["threshold", "fmr", "fnmr"]
    assert df["threshold"].tolist() == [0.1, 0.6, 0.9]
    assert df["fmr"].tolist() == [1.0, 0.5, 0.0]
    assert df["fnmr"].tolist() == [0.0, 0.0, 0.5]
    assert all(df.dtypes == np.float64)
    assert df.index.equals(pd.RangeIndex(3))


def test_det_curve_matches_brute_force_and_is_monotone():
    rng = np.random.default_rng(6)
    genuine = np.round(rng.normal(1.0, 1.0, size=400), 2)
    impostor = np.round(rng.normal(-1.0, 1.0, size=600), 2)
    df = det_curve(genuine, impostor, max_points=None)
    expected_thresholds = np.unique(np.concatenate([genuine, impostor]))
    assert df["threshold"].tolist() == expected_thresholds.tolist()
    for t, f, fn in df.itertuples(index=False):
        assert f == brute_fm(impostor, t) / impostor.size
        assert fn == brute_fnm(genuine, t) / genuine.size
    assert np.all(np.diff(df["threshold"]) > 0)
    assert np.all(np.diff(df["fmr"]) <= 0)
    assert np.all(np.diff(df["fnmr"]) >= 0)


def test_det_curve_decimation():
    rng = np.random.default_rng(7)
    genuine = rng.normal(2.0, 1.0, size=3000)
    impostor = rng.normal(-2.0, 1.0, size=20000)
    full = det_curve(genuine, impostor, max_points=None)
    df = det_curve(genuine, impostor, max_points=150)
    assert 100 <= len(df) <= 150
    # first and last rows are kept
    assert df.iloc[0].tolist() == full.iloc[0].tolist()
    assert df.iloc[-1].tolist() == full.iloc[-1].tolist()
    # every kept row is a row of the full curve
    merged = df.merge(full, on="threshold", suffixes=("", "_full"))
    assert len(merged) == len(df)
    assert (merged["fmr"] == merged["fmr_full"]).all()
    assert (merged["fnmr"] == merged["fnmr_full"]).all()
    # monotone
    assert np.all(np.diff(df["threshold"]) > 0)
    assert np.all(np.diff(df["fmr"]) <= 0) and np.all(np.diff(df["fnmr"]) >= 0)
    # spread in log-FMR: the smallest positive FMR (1 / n) is reached, and every decade from
    # 1e-4 to 1 holds several points
    positive = df["fmr"][df["fmr"] > 0]
    assert positive.min() == 1 / impostor.size
    decades = np.floor(np.log10(positive)).value_counts()
    for d in (-4, -3, -2, -1):
        assert decades.get(d, 0) >= 5


def test_det_curve_small_budget_keeps_ends():
    df = det_curve(TEN, [0.5, 1.5, 2.5], max_points=2)
    assert df["threshold"].tolist() == [0.5, 10.0]
    df = det_curve(TEN, [0.5, 1.5, 2.5], max_points=5)
    assert len(df) <= 5 and df["threshold"].iloc[0] == 0.5 and df["threshold"].iloc[-1] == 10.0


def test_det_curve_with_one_side_empty():
    df = det_curve(TEN, [])
    assert df["threshold"].tolist() == TEN
    assert df["fmr"].isna().all()
    assert df["fnmr"].tolist() == [j / 10 for j in range(10)]
    df = det_curve([], [1.0, 2.0])
    assert df["fnmr"].isna().all() and df["fmr"].tolist() == [1.0, 0.5]
    # decimation without impostors still keeps the ends
    df = det_curve(np.arange(1000.0), [], max_points=50)
    assert len(df) <= 50 and df["threshold"].iloc[0] == 0.0 and df["threshold"].iloc[-1] == 999.0


def test_det_curve_is_invariant_to_permutation():
    rng = np.random.default_rng(8)
    genuine = np.round(rng.normal(1.0, 1.0, size=500), 2)
    impostor = np.round(rng.normal(-1.0, 1.0, size=800), 2)
    a = det_curve(genuine, impostor, max_points=60)
    b = det_curve(rng.permutation(genuine), rng.permutation(impostor), max_points=60)
    pd.testing.assert_frame_equal(a, b)


def test_det_curve_validation():
    with pytest.raises(MetricError, match="0 genuine and 0 impostor"):
        det_curve([], [])
    with pytest.raises(MetricError, match="max_points"):
        det_curve(TEN, TEN, max_points=1)
    with pytest.raises(MetricError, match="max_points"):
        det_curve(TEN, TEN, max_points=10.5)


# ---------------------------------------------------------------------------------------------
# validation of scores and options


@pytest.mark.parametrize(
    "call",
    [
        lambda s: fmr(s, 0.5),
        lambda s: fnmr(s, 0.5),
        lambda s: threshold_at_fmr(s, 0.1),
        lambda s: thresholds_at_fmr(s, [0.1]),
        lambda s: error_counts(s, [0.0], [0.5]),
        lambda s: det_curve([0.0], s),
    ],
)
def test_non_finite_scores_are_rejected_with_count_and_index(call):
    scores = [0.1, 0.2, np.nan, 0.4, np.inf, np.nan]
    with pytest.raises(MetricError) as info:
        call(scores)
    msg = str(info.value)
    assert "3 non-finite" in msg and "2 NaN" in msg and "1 infinite" in msg
    assert "index 2" in msg


def test_bad_score_shapes_and_types():
    with pytest.raises(MetricError, match=r"1-D, shape \(n,\); got shape \(2, 2\)"):
        fmr(np.zeros((2, 2)), 0.5)
    with pytest.raises(MetricError, match="dtype"):
        fmr(["a", "b"], 0.5)
    with pytest.raises(MetricError, match="dtype"):
        fmr([0.1, None], 0.5)
    with pytest.raises(MetricError, match="1-D"):
        fmr(0.3, 0.5)


def test_empty_impostors_cannot_set_a_threshold():
    with pytest.raises(MetricError, match="must not be empty"):
        threshold_at_fmr([], 0.1)


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5, float("nan"), "often"])
def test_bad_target(target):
    with pytest.raises(MetricError, match=r"\(0, 1\]"):
        threshold_at_fmr(TEN, target)


def test_bad_threshold_method_and_confidence():
    with pytest.raises(MetricError, match="NaN"):
        fmr(TEN, float("nan"))
    with pytest.raises(MetricError, match="method"):
        fnmr(TEN, 0.5, method="wald")
    with pytest.raises(MetricError, match="confidence"):
        fmr(TEN, 0.5, confidence=95)
