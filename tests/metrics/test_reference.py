"""Group-against-reference comparisons, simultaneous bounds, BCa and the replicate corrections,
on inputs small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as tdist

from audit.metrics import fairness_discrepancy_rate, garbe, inequity_rate
from audit.metrics.reference import (
    bca_interval,
    compare_to_reference,
    design_effect,
    cluster_rate_interval,
    dyadic_rate_interval,
    inflate_for_few_people,
    jackknife_dof,
    percentile_interval,
    remove_pair_noise,
    simultaneous_rate_bounds,
    small_sample_factor,
)
from audit.verification.intervals import joint_replicates


def test_max_t_by_hand_with_one_comparison():
    # one comparison: max-t is the 95% quantile of |z|; replicates of the log ratio are +-d around it
    rates = np.array([0.02, 0.01])
    reps = np.array([[0.02 * math.exp(d), 0.01] for d in (-0.2, -0.1, 0.0, 0.1, 0.2)])
    (c,) = compare_to_reference(["A", "B"], rates, np.array([1000, 1000]), np.array([20, 10]), reps, 1)
    se = np.std([-0.2, -0.1, 0.0, 0.1, 0.2], ddof=1)          # 0.158114
    t = np.sort(np.abs([-0.2, -0.1, 0.0, 0.1, 0.2]) / se)      # the 'higher' 95% order statistic: the largest
    crit = t[int(np.ceil(0.95 * 4))]
    assert c.ratio == pytest.approx(2.0)
    assert c.ratio_low == pytest.approx(2.0 * math.exp(-crit * se))
    assert c.ratio_high == pytest.approx(2.0 * math.exp(crit * se))
    assert c.shown is (c.ratio_low > 1) and c.comparisons == 1
    assert c.difference == pytest.approx(0.01)


def test_simultaneous_intervals_are_wider_with_more_comparisons():
    rng = np.random.default_rng(0)
    k = 6
    rates = np.full(k, 0.01)
    reps = 0.01 * np.exp(rng.normal(0, 0.2, size=(2000, k)))
    two = compare_to_reference([str(i) for i in range(2)], rates[:2], np.full(2, 1e4), np.full(2, 100), reps[:, :2], 0)
    six = compare_to_reference([str(i) for i in range(k)], rates, np.full(k, 1e4), np.full(k, 100), reps, 0)
    assert six[0].ratio_high > two[0].ratio_high and six[0].ratio_low < two[0].ratio_low
    assert all(c.comparisons == k - 1 for c in six)
    assert not any(c.shown for c in six)


def test_zero_errors_widen_to_zero_and_infinity_and_zero_over_zero_claims_nothing():
    reps = np.array([[0.0, 0.01], [0.001, 0.012], [0.0, 0.008], [0.0005, 0.011]])
    c0, = compare_to_reference(["A", "B"], np.array([0.0, 0.01]), np.array([1000, 1000]), np.array([0, 10]), reps, 1)
    assert c0.ratio == 0.0 and c0.ratio_low == 0.0 and c0.ratio_high < 1  # no errors in A: lower bound 0
    cinf, = compare_to_reference(["A", "B"], np.array([0.0, 0.01]), np.array([1000, 1000]), np.array([0, 10]), reps, 0)
    assert math.isinf(cinf.ratio) and math.isinf(cinf.ratio_high)          # no errors in the reference
    zz, = compare_to_reference(["A", "B"], np.zeros(2), np.array([10, 10]), np.zeros(2), np.zeros((4, 2)), 1)
    assert math.isnan(zz.ratio) and (zz.ratio_low, zz.ratio_high, zz.p_adjusted, zz.shown) == (0.0, math.inf, 1.0, False)


def test_overall_reference_needs_its_numbers():
    reps = np.full((3, 2), 0.01)
    with pytest.raises(Exception, match="overall"):
        compare_to_reference(["A", "B"], np.full(2, 0.01), np.full(2, 100), np.full(2, 1), reps, "overall")
    out = compare_to_reference(["A", "B"], np.array([0.02, 0.01]), np.full(2, 100), np.array([2, 1]), reps, "overall",
                               reference_point=(0.015, 200, 3), reference_replicates=np.full(3, 0.015))
    assert [c.reference for c in out] == ["overall", "overall"] and out[0].ratio == pytest.approx(0.02 / 0.015)


def test_simultaneous_rate_bounds_bound_a_max_min_ratio():
    rng = np.random.default_rng(1)
    rates = np.array([0.01, 0.02, 0.03])
    reps = rates * np.exp(rng.normal(0, 0.1, size=(1000, 3)))
    lo, hi = simultaneous_rate_bounds(rates, np.full(3, 1e4), rates * 1e4, reps)
    assert np.all(lo < rates) and np.all(rates < hi)
    # wider than each group's own 95% percentile interval (they hold for all three at once)
    plo, phi = percentile_interval(reps)
    assert np.all(lo <= plo) and np.all(hi >= phi)


def test_remove_pair_noise_by_hand():
    # p = 0.1, N = 100: V_binom = 0.0009; replicates +-0.05 around p: V_boot = 0.05^2 * 4/3 = 0.0033333
    reps = np.array([[0.05], [0.15], [0.05], [0.15]])
    out = remove_pair_noise(np.array([0.1]), np.array([100]), reps)
    f = math.sqrt((0.0033333333 - 0.0009) / 0.0033333333)
    np.testing.assert_allclose(out[:, 0], 0.1 + f * (reps[:, 0] - 0.1))
    # never below the binomial variance
    tight = remove_pair_noise(np.array([0.1]), np.array([100]), np.array([[0.09], [0.11], [0.09], [0.11]]))
    np.testing.assert_allclose(tight, [[0.09], [0.11], [0.09], [0.11]])


def test_inflate_for_few_people_by_hand_and_stays_a_rate():
    out = inflate_for_few_people(np.array([0.5, 0.0]), np.array([[0.4, 0.0], [0.6, 0.0]]), np.array([5, 5]))
    np.testing.assert_allclose(out[:, 0], [0.5 - 0.1 * math.sqrt(5 / 4), 0.5 + 0.1 * math.sqrt(5 / 4)])
    clipped = inflate_for_few_people(np.array([0.02]), np.array([[0.0], [0.04]]), np.array([2]))
    assert clipped.min() == 0.0


def test_bca_is_the_percentile_interval_without_bias_or_skew_and_moves_with_bias():
    reps = np.linspace(-1, 1, 2001)[:, None]
    jack = np.linspace(-1, 1, 11)[:, None]  # symmetric: acceleration 0
    lo, hi = bca_interval(np.array([0.0]), reps, jack)
    plo, phi = percentile_interval(reps)
    assert (lo[0], hi[0]) == (plo[0], phi[0])
    # a point above most replicates: z0 > 0 moves both bounds up
    lo2, hi2 = bca_interval(np.array([0.5]), reps, jack)
    z0 = norm.ppf(np.mean(reps[:, 0] < 0.5) + 0.5 * np.mean(reps[:, 0] == 0.5))
    q_hi = norm.cdf(2 * z0 + norm.ppf(0.975))
    assert lo2[0] > lo[0] and hi2[0] == pytest.approx(reps[int(np.ceil(q_hi * 2000)), 0])


def test_design_effect_is_one_for_binomial_replicates():
    rng = np.random.default_rng(2)
    reps = rng.binomial(10_000, 0.02, size=(20_000, 1)) / 10_000
    d, n_eff = design_effect(np.array([0.02]), np.array([10_000]), reps)
    assert d[0] == pytest.approx(1.0, rel=0.05) and n_eff[0] == pytest.approx(10_000, rel=0.05)


def test_joint_replicates_equal_the_scalar_summaries():
    rng = np.random.default_rng(3)
    fm = rng.uniform(0, 0.05, size=(40, 4))
    fn = rng.uniform(0, 0.2, size=(40, 4))
    fm[3, 1] = np.nan   # a group without trials in one replicate is left out there
    fm[5, :] = 0.0      # all-zero FMRs
    w = {"fdr_alpha": 0.3, "garbe_alpha": 0.6, "inequity_alpha": 1.0, "inequity_beta": 2.0}
    got = {name: joint_replicates(name, fm, fn, w) for name in ("fairness_discrepancy_rate", "inequity_rate", "garbe")}
    for r in range(40):
        a = {str(i): v for i, v in enumerate(fm[r]) if not np.isnan(v)}
        b = {str(i): v for i, v in enumerate(fn[r]) if not np.isnan(v)}
        assert got["fairness_discrepancy_rate"][r] == pytest.approx(fairness_discrepancy_rate(a, b, alpha=0.3).value)
        assert got["inequity_rate"][r] == pytest.approx(inequity_rate(a, b, alpha=1.0, beta=2.0).value)
        assert got["garbe"][r] == pytest.approx(garbe(a, b, alpha=0.6).value)


def test_jackknife_dof_by_hand():
    # d = -1.5, -0.5, 0.5, 1.5: (sum d^2)^2 / sum d^4 = 25 / 10.25
    np.testing.assert_allclose(jackknife_dof(np.array([[1.0], [2.0], [3.0], [4.0]])), [25 / 10.25])
    # one person carries everything: d = -2, -2, -2, -2, 8 -> 80^2 / 4160, far below the 4 of five people
    np.testing.assert_allclose(jackknife_dof(np.array([[0.0], [0.0], [0.0], [0.0], [10.0]])), [6400 / 4160])
    # people alike: capped at S - 1; members pick the people of each column; one person: nan
    alike = np.array([[1.0], [-1.0]] * 5)
    np.testing.assert_allclose(jackknife_dof(alike), [9.0])
    two = np.hstack([alike, alike])
    members = np.zeros((10, 2), bool)
    members[:4, 0] = True
    members[:1, 1] = True
    out = jackknife_dof(two, members)
    assert out[0] == 3.0 and np.isnan(out[1])


def test_dyadic_rate_interval_by_hand():
    jack = np.array([[1.0], [2.0], [3.0], [4.0]])  # 25 / 10.25 degrees of freedom
    # p = 0.1 of N = 100 (10 errors), 10 people. Replicates +-0.05: V_boot = 0.05^2 * 4/3; V_binom = 0.0009
    wide = np.array([[0.05], [0.15], [0.05], [0.15]])
    lo, hi = dyadic_rate_interval(np.array([0.1]), np.array([10]), np.array([100]), wide, jack, None, np.array([10]))
    v = (0.05 ** 2 * 4 / 3 - 2 * 0.0009) * 10 / 9          # dyadic variance, above the binomial: used
    q = tdist.ppf(0.975, 25 / 10.25)
    se = math.sqrt(v) / 0.1
    np.testing.assert_allclose([lo[0], hi[0]], [0.1 * math.exp(-q * se), 0.1 * math.exp(q * se)])
    # replicates +-0.02: the dyadic variance is below the binomial one -> binomial variance, normal quantile
    tight = np.array([[0.08], [0.12], [0.08], [0.12]])
    lo, hi = dyadic_rate_interval(np.array([0.1]), np.array([10]), np.array([100]), tight, jack, None, np.array([10]))
    se = math.sqrt(0.0009 * 10 / 9) / 0.1
    z = norm.ppf(0.975)
    np.testing.assert_allclose([lo[0], hi[0]], [0.1 * math.exp(-z * se), 0.1 * math.exp(z * se)])
    # no errors (or a rate of 1): no answer here, the caller keeps its replicate interval
    lo, hi = dyadic_rate_interval(np.array([0.0, 1.0]), np.array([0, 100]), np.array([100, 100]),
                                  np.zeros((4, 2)) + [[0.0, 1.0]], np.hstack([jack, jack]), None, np.array([10, 10]))
    assert np.isnan(lo).all() and np.isnan(hi).all()
    # the upper bound stays a rate
    lo, hi = dyadic_rate_interval(np.array([0.6]), np.array([6]), np.array([10]), np.array([[0.1], [0.9], [0.1], [0.9]]), jack, None,
                                  np.array([3]))
    assert hi[0] == 1.0 and 0 < lo[0] < 0.6


def test_dyadic_rate_interval_reports_the_degrees_of_freedom_it_used():
    jack = np.array([[1.0], [2.0], [3.0], [4.0]])
    wide = np.array([[0.05], [0.15], [0.05], [0.15]])
    tight = np.array([[0.08], [0.12], [0.08], [0.12]])
    *_, dof = dyadic_rate_interval(np.array([0.1]), np.array([10]), np.array([100]), wide, jack, None, np.array([10]), return_dof=True)
    assert dof[0] == pytest.approx(25 / 10.25)
    *_, dof = dyadic_rate_interval(np.array([0.1]), np.array([10]), np.array([100]), tight, jack, None, np.array([10]), return_dof=True)
    assert dof[0] == np.inf  # binomial variance, normal quantile


def test_cluster_rate_interval_by_hand():
    # p = 0.05 (10 of 200 mated comparisons), 30 people; replicates 0.03..0.07: V_boot = 0.00025
    reps = np.array([[0.04], [0.06], [0.05], [0.07], [0.03]])
    lo, hi = cluster_rate_interval(np.array([0.05]), np.array([10]), np.array([200]), reps, np.array([30]))
    v = 0.00025 * 30 / 29
    half = tdist.ppf(0.975, 29) * math.sqrt(v) / (0.05 * 0.95)
    mid = math.log(0.05 / 0.95)
    np.testing.assert_allclose([lo[0], hi[0]], [1 / (1 + math.exp(-(mid - half))), 1 / (1 + math.exp(-(mid + half)))])
    assert lo[0] == pytest.approx(0.025658781, rel=1e-8) and hi[0] == pytest.approx(0.095176896, rel=1e-8)
    # fewer people: a wider t quantile, so a wider interval from the same replicates
    lo5, hi5 = cluster_rate_interval(np.array([0.05]), np.array([10]), np.array([200]), reps, np.array([5]))
    assert lo5[0] < lo[0] and hi5[0] > hi[0]
    # no errors, only errors, or one person: no answer here (the caller keeps BCa)
    lo, hi = cluster_rate_interval(np.array([0.0, 1.0, 0.05]), np.array([0, 200, 10]), np.array([200, 200, 200]),
                                   np.hstack([reps, reps, reps]), np.array([30, 30, 1]))
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_small_sample_factor_by_hand():
    # equal variances and 10 degrees of freedom each: Satterthwaite gives 20
    f = small_sample_factor(np.array([0.04]), np.array([10.0]), 0.04, 10.0)
    assert f[0] == pytest.approx(tdist.ppf(0.975, 20) / norm.ppf(0.975))
    # a reference known exactly (inf): the group's own 10
    f = small_sample_factor(np.array([0.04]), np.array([10.0]), 0.04, np.inf)
    assert f[0] == pytest.approx(tdist.ppf(0.975, (0.08 ** 2) / (0.04 ** 2 / 10)) / norm.ppf(0.975))
    # both known: no widening
    assert small_sample_factor(np.array([0.04]), np.array([np.inf]), 0.04, np.inf)[0] == 1.0


def test_comparisons_widen_with_few_degrees_of_freedom():
    rates = np.array([0.02, 0.01])
    reps = np.array([[0.02 * math.exp(d), 0.01 * math.exp(-d / 2)] for d in (-0.2, -0.1, 0.0, 0.1, 0.2)])
    args = (["A", "B"], rates, np.array([1000, 1000]), np.array([20, 10]), reps, 1)
    (plain,) = compare_to_reference(*args)
    (wide,) = compare_to_reference(*args, dof=np.array([4.0, 4.0]))
    (known,) = compare_to_reference(*args, dof=np.array([np.inf, np.inf]))
    assert (known.ratio_low, known.ratio_high) == pytest.approx((plain.ratio_low, plain.ratio_high))
    v_a = np.var(np.log(reps[:, 0]), ddof=1)
    v_b = np.var(np.log(reps[:, 1]), ddof=1)
    f = tdist.ppf(0.975, (v_a + v_b) ** 2 / (v_a ** 2 / 4 + v_b ** 2 / 4)) / norm.ppf(0.975)
    assert math.log(wide.ratio_high / 2.0) == pytest.approx(f * math.log(plain.ratio_high / 2.0))
    assert math.log(2.0 / wide.ratio_low) == pytest.approx(f * math.log(2.0 / plain.ratio_low))
