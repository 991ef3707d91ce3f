"""Tests of audit.metrics.disparity, on hand-computed values."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from audit.errors import MetricError
from audit.metrics import (
    Disparity,
    fairness_discrepancy_rate,
    garbe,
    gini,
    inequity_rate,
    max_geomean_ratio,
    max_min_ratio,
    summarize,
)

NAN = float("nan")


def brute_gini(x):
    x = np.asarray(x, dtype=float)
    n = x.size
    s = sum(abs(a - b) for a in x for b in x)
    return (n / (n - 1)) * s / (2 * n * n * x.mean())


# ---------------------------------------------------------------------------------------------
# max_min_ratio


def test_max_min_ratio_by_hand():
    # max 0.04 (B) / min 0.01 (A) = 4
    d = max_min_ratio({"A": 0.01, "B": 0.04, "C": 0.02})
    assert isinstance(d, Disparity)
    assert d.summary == "max_min_ratio"
    assert d.value == pytest.approx(4.0, rel=1e-12)
    assert (d.group_high, d.group_low, d.groups_used, d.note) == ("B", "A", 3, "")


def test_max_min_ratio_zero_rate_is_infinite():
    d = max_min_ratio({"A": 0.0, "B": 0.02})
    assert d.value == math.inf
    assert "a group has a zero rate" in d.note and "'A'" in d.note
    assert (d.group_high, d.group_low) == ("B", "A")


def test_max_min_ratio_all_zero_is_parity():
    d = max_min_ratio({"A": 0.0, "B": 0.0})
    assert d.value == 1.0
    assert "parity" in d.note


def test_max_min_ratio_drops_nan_groups():
    # A has no trials; 0.02 / 0.01 = 2 over B and C
    d = max_min_ratio({"A": NAN, "B": 0.01, "C": 0.02})
    assert d.value == 2.0
    assert d.groups_used == 2
    assert "'A'" in d.note and "nan" in d.note


@pytest.mark.parametrize("rates", [{"A": 0.01}, {}, {"A": 0.01, "B": NAN}])
def test_max_min_ratio_needs_two_groups(rates):
    d = max_min_ratio(rates)
    assert math.isnan(d.value)
    assert d.group_high is None and d.group_low is None
    assert d.groups_used == (1 if "A" in rates else 0)
    assert "at least 2 groups" in d.note


def test_max_min_ratio_ties_take_first_sorted_label():
    d = max_min_ratio({"b": 0.02, "a": 0.02, "d": 0.01, "c": 0.01})
    assert (d.group_high, d.group_low) == ("a", "c")
    assert d.value == 2.0


# ---------------------------------------------------------------------------------------------
# max_geomean_ratio


def test_max_geomean_ratio_by_hand():
    # geomean(0.01, 0.04) = sqrt(0.0004) = 0.02; 0.04 / 0.02 = 2
    d = max_geomean_ratio({"A": 0.01, "B": 0.04})
    assert d.value == pytest.approx(2.0, rel=1e-12)
    assert (d.summary, d.group_high, d.group_low, d.groups_used) == (
        "max_geomean_ratio", "B", None, 2)
    # geomean(0.001, 0.01, 0.1) = (1e-6)^(1/3) = 0.01; 0.1 / 0.01 = 10
    d = max_geomean_ratio({"x": 0.001, "y": 0.01, "z": 0.1})
    assert d.value == pytest.approx(10.0, rel=1e-12)
    assert d.group_high == "z"


def test_max_geomean_ratio_zero_and_all_zero():
    d = max_geomean_ratio({"A": 0.0, "B": 0.02, "C": 0.01})
    assert d.value == math.inf and "a group has a zero rate" in d.note
    d = max_geomean_ratio({"A": 0.0, "B": 0.0})
    assert d.value == 1.0 and "parity" in d.note


def test_max_geomean_ratio_nan_and_one_group():
    d = max_geomean_ratio({"A": NAN, "B": 0.01, "C": 0.04})
    assert d.value == pytest.approx(2.0) and "'A'" in d.note and d.groups_used == 2
    d = max_geomean_ratio({"A": 0.01})
    assert math.isnan(d.value) and d.groups_used == 1


def test_geomean_ratio_at_most_max_min_ratio():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rates = {f"g{j}": float(rng.uniform(0.001, 0.1)) for j in range(int(rng.integers(2, 8)))}
        assert 1.0 <= max_geomean_ratio(rates).value <= max_min_ratio(rates).value * (1 + 1e-12)


# ---------------------------------------------------------------------------------------------
# fairness_discrepancy_rate


def test_fdr_by_hand():
    fm = {"A": 0.01, "B": 0.03}
    fn = {"A": 0.10, "B": 0.04}
    # A = |0.01 - 0.03| = 0.02, B = |0.10 - 0.04| = 0.06
    # alpha 0.5: 1 - (0.01 + 0.03) = 0.96; alpha 1: 1 - 0.02 = 0.98; alpha 0: 1 - 0.06 = 0.94
    d = fairness_discrepancy_rate(fm, fn)
    assert d.value == pytest.approx(0.96, abs=1e-12)
    assert (d.summary, d.group_high, d.group_low, d.groups_used, d.note) == (
        "fairness_discrepancy_rate", None, None, 2, "")
    assert fairness_discrepancy_rate(fm, fn, alpha=1.0).value == pytest.approx(0.98, abs=1e-12)
    assert fairness_discrepancy_rate(fm, fn, alpha=0.0).value == pytest.approx(0.94, abs=1e-12)


def test_fdr_three_groups_by_hand():
    # FMR 0.01, 0.05, 0.02 -> max |diff| = 0.04; FNMR 0.1, 0.2, 0.3 -> 0.2
    # 1 - (0.5 * 0.04 + 0.5 * 0.2) = 1 - 0.12 = 0.88
    d = fairness_discrepancy_rate({"A": 0.01, "B": 0.05, "C": 0.02},
                                  {"A": 0.1, "B": 0.2, "C": 0.3})
    assert d.value == pytest.approx(0.88, abs=1e-12)


def test_fdr_parity_is_one():
    d = fairness_discrepancy_rate({"A": 0.01, "B": 0.01}, {"A": 0.2, "B": 0.2})
    assert d.value == 1.0


def test_fdr_uses_intersection_and_drops_nan():
    # D only has an FMR, E only an FNMR, C has a nan FNMR: A and B remain -> 0.96 as above
    d = fairness_discrepancy_rate(
        {"A": 0.01, "B": 0.03, "C": 0.5, "D": 0.9},
        {"A": 0.10, "B": 0.04, "C": NAN, "E": 0.9},
    )
    assert d.value == pytest.approx(0.96, abs=1e-12)
    assert d.groups_used == 2
    assert "'D'" in d.note and "'E'" in d.note and "'C'" in d.note


def test_fdr_one_group():
    d = fairness_discrepancy_rate({"A": 0.01, "B": 0.02}, {"A": 0.1})
    assert math.isnan(d.value) and d.groups_used == 1 and "at least 2" in d.note


# ---------------------------------------------------------------------------------------------
# inequity_rate


def test_inequity_rate_by_hand():
    fm = {"A": 0.01, "B": 0.04}
    fn = {"A": 0.10, "B": 0.05}
    # (0.04 / 0.01)^1 * (0.10 / 0.05)^1 = 4 * 2 = 8
    d = inequity_rate(fm, fn)
    assert d.value == pytest.approx(8.0, rel=1e-12)
    assert (d.summary, d.group_high, d.group_low, d.groups_used) == (
        "inequity_rate", None, None, 2)
    # 4^2 * 2^0.5 = 16 * 1.4142135623730951 = 22.627416997969522
    assert inequity_rate(fm, fn, alpha=2.0, beta=0.5).value == pytest.approx(
        22.627416997969522, rel=1e-12)


def test_inequity_rate_zero_rates():
    # FMR min is 0 -> infinite FMR ratio
    d = inequity_rate({"A": 0.0, "B": 0.04}, {"A": 0.10, "B": 0.05})
    assert d.value == math.inf and "zero FMR" in d.note
    # ... unless its weight is 0: only the FNMR ratio 2 remains
    d = inequity_rate({"A": 0.0, "B": 0.04}, {"A": 0.10, "B": 0.05}, alpha=0.0)
    assert d.value == pytest.approx(2.0) and d.note == ""
    # all FMRs zero -> FMR ratio 1 (parity): 1 * 2 = 2
    d = inequity_rate({"A": 0.0, "B": 0.0}, {"A": 0.10, "B": 0.05})
    assert d.value == pytest.approx(2.0) and "parity" in d.note


def test_inequity_rate_bad_exponent():
    with pytest.raises(MetricError, match="beta"):
        inequity_rate({"A": 0.1, "B": 0.2}, {"A": 0.1, "B": 0.2}, beta=-1.0)


# ---------------------------------------------------------------------------------------------
# gini and garbe


@pytest.mark.parametrize(
    "values,expected",
    [
        # [0, 1]: sum_ij |xi - xj| = 2, mean 0.5, n = 2: (2/1) * 2 / (2 * 4 * 0.5) = 1
        ([0.0, 1.0], 1.0),
        # equal values: 0
        ([0.2, 0.2, 0.2], 0.0),
        # [1, 2, 3]: ordered-pair sum 8, mean 2: (3/2) * 8 / (2 * 9 * 2) = 1/3
        ([1.0, 2.0, 3.0], 1 / 3),
        # [1, 2, 3, 4]: ordered-pair sum 20, mean 2.5: (4/3) * 20 / (2 * 16 * 2.5) = 1/3
        ([4.0, 1.0, 3.0, 2.0], 1 / 3),
        # one of four holds everything: 1
        ([0.0, 0.0, 0.0, 5.0], 1.0),
        # all zero: mean 0 -> 0 by convention
        ([0.0, 0.0], 0.0),
    ],
)
def test_gini_by_hand(values, expected):
    assert gini(values) == pytest.approx(expected, abs=1e-12)


def test_gini_matches_brute_force_and_is_order_free():
    rng = np.random.default_rng(1)
    for _ in range(30):
        x = rng.uniform(0, 1, size=int(rng.integers(2, 12)))
        g = gini(x)
        assert g == pytest.approx(brute_gini(x), rel=1e-10)
        assert gini(rng.permutation(x)) == pytest.approx(g, rel=1e-12)
        assert gini(x * 7.5) == pytest.approx(g, rel=1e-10)  # scale-free
        assert 0.0 <= g <= 1.0


def test_gini_validation():
    with pytest.raises(MetricError, match="at least 2"):
        gini([0.5])
    with pytest.raises(MetricError, match="non-negative"):
        gini([0.5, -0.1])
    with pytest.raises(MetricError, match="first at index 1"):
        gini([0.5, NAN])


def test_garbe_by_hand():
    # G(FMR = [0, 0.02]) = 1, G(FNMR = [0.1, 0.1]) = 0 -> 0.5 * 1 + 0.5 * 0 = 0.5
    d = garbe({"A": 0.0, "B": 0.02}, {"A": 0.1, "B": 0.1})
    assert d.value == pytest.approx(0.5, abs=1e-12)
    assert (d.summary, d.group_high, d.group_low, d.groups_used) == ("garbe", None, None, 2)


def test_garbe_three_groups_by_hand():
    # G(FMR = [0.01, 0.02, 0.03]) = 1/3 (as for [1, 2, 3])
    # G(FNMR = [0.1, 0.1, 0.4]): ordered-pair sum 2 * (0 + 0.3 + 0.3) = 1.2, mean 0.2:
    #   (3/2) * 1.2 / (2 * 9 * 0.2) = 1.8 / 3.6 = 0.5
    fm = {"A": 0.01, "B": 0.02, "C": 0.03}
    fn = {"A": 0.1, "B": 0.1, "C": 0.4}
    # alpha 0.5: 0.5/3 + 0.25 = 0.41666...; alpha 0.25: 0.25/3 + 0.375 = 0.458333...
    assert garbe(fm, fn).value == pytest.approx(0.5 / 3 + 0.25, abs=1e-12)
    assert garbe(fm, fn, alpha=0.25).value == pytest.approx(0.25 / 3 + 0.375, abs=1e-12)


def test_garbe_zero_mean_note():
    d = garbe({"A": 0.0, "B": 0.0}, {"A": 0.1, "B": 0.3})
    # G(FMR) = 0 by convention; G([0.1, 0.3]): ordered-pair sum 0.4, mean 0.2:
    #   (2/1) * 0.4 / (2 * 4 * 0.2) = 0.5  ->  0.5 * 0 + 0.5 * 0.5 = 0.25
    assert d.value == pytest.approx(0.25, abs=1e-12)
    assert "zero FMR" in d.note


def test_garbe_trials():
    fm = {"A": 0.01, "B": 0.02, "C": 0.5}
    fn = {"A": 0.1, "B": 0.1, "C": 0.5}
    # C has no impostor trials: dropped, leaving A, B.
    # G([.01, .02]): ordered-pair sum 0.02, mean 0.015: (2/1) * 0.02 / (2 * 4 * 0.015) = 1/3
    # G([.1, .1]) = 0  ->  0.5 * 1/3
    d = garbe(fm, fn, trials_fmr={"A": 100, "B": 100, "C": 0})
    assert d.groups_used == 2 and "'C'" in d.note
    assert d.value == pytest.approx(0.5 * (1 / 3), abs=1e-12)
    with pytest.raises(MetricError, match="missing 'C'"):
        garbe(fm, fn, trials_fnmr={"A": 10, "B": 10})
    with pytest.raises(MetricError, match="non-negative integer"):
        garbe(fm, fn, trials_fnmr={"A": 10, "B": 10, "C": -1})


def test_garbe_one_group_and_nan():
    d = garbe({"A": 0.01, "B": NAN}, {"A": 0.1, "B": 0.2})
    assert math.isnan(d.value) and d.groups_used == 1 and "'B'" in d.note


# ---------------------------------------------------------------------------------------------
# invariance: relabelling and reordering groups


FMR = {"Asian": 0.004, "Black": 0.012, "White": 0.002, "Indian": 0.006}
FNMR = {"Asian": 0.03, "Black": 0.05, "White": 0.02, "Indian": 0.04}


def _all_summaries(fm, fn):
    return [
        max_min_ratio(fm), max_geomean_ratio(fm), max_min_ratio(fn), max_geomean_ratio(fn),
        fairness_discrepancy_rate(fm, fn), inequity_rate(fm, fn), garbe(fm, fn),
    ]


def test_summaries_are_invariant_to_mapping_order():
    base = _all_summaries(FMR, FNMR)
    for order in itertools.permutations(FMR):
        fm = {g: FMR[g] for g in order}
        fn = {g: FNMR[g] for g in reversed(order)}
        assert _all_summaries(fm, fn) == base


def test_summaries_are_invariant_to_relabelling():
    rename = {"Asian": "g3", "Black": "g1", "White": "g4", "Indian": "g2"}
    fm = {rename[g]: r for g, r in FMR.items()}
    fn = {rename[g]: r for g, r in FNMR.items()}
    for a, b in zip(_all_summaries(FMR, FNMR), _all_summaries(fm, fn)):
        assert b.value == pytest.approx(a.value, rel=1e-12)
        assert b.groups_used == a.groups_used
        assert b.group_high == (rename[a.group_high] if a.group_high else None)
        assert b.group_low == (rename[a.group_low] if a.group_low else None)


# ---------------------------------------------------------------------------------------------
# summarize, dataclass, validation


def test_summarize():
    out = summarize({"A": 0.01, "B": 0.04})
    assert isinstance(out, list)
    assert [d.summary for d in out] == ["max_min_ratio", "max_geomean_ratio"]
    assert out[0] == max_min_ratio({"A": 0.01, "B": 0.04})


def test_disparity_is_frozen():
    d = max_min_ratio({"A": 0.01, "B": 0.04})
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.value = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "rates,match",
    [
        ({"A": 1.5, "B": 0.1}, r"\[0, 1\]"),
        ({"A": -0.1, "B": 0.1}, r"\[0, 1\]"),
        ({"A": float("inf"), "B": 0.1}, r"\[0, 1\]"),
        ({"A": "high", "B": 0.1}, "must be a rate"),
        ({1: 0.1, "B": 0.1}, "group label"),
        ([0.1, 0.2], "mapping"),
    ],
)
def test_bad_rates(rates, match):
    with pytest.raises(MetricError, match=match):
        max_min_ratio(rates)


@pytest.mark.parametrize("alpha", [-0.1, 1.1, NAN])
def test_bad_alpha(alpha):
    with pytest.raises(MetricError, match="alpha"):
        fairness_discrepancy_rate({"A": 0.1, "B": 0.2}, {"A": 0.1, "B": 0.2}, alpha=alpha)
    with pytest.raises(MetricError, match="alpha"):
        garbe({"A": 0.1, "B": 0.2}, {"A": 0.1, "B": 0.2}, alpha=alpha)
