"""Subject bootstrap: hand-made counts, determinism, coverage on a simulated population."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import MetricError
from audit.metrics.bootstrap import (
    BootstrapResult,
    bootstrap_disparity,
    max_geomean_ratio_rows,
    max_min_ratio_rows,
    subject_bootstrap,
)
from audit.metrics.disparity import max_geomean_ratio, max_min_ratio


def test_point_estimates_are_the_pooled_rates():
    errors = np.array([[1, 0], [3, 1], [0, 0], [2, 2], [5, 4]])
    trials = np.array([10, 10, 20, 20, 10])
    r = subject_bootstrap(errors, trials, [0, 0, 1, 1, 2], n_replicates=50)
    np.testing.assert_allclose(r.rates, [[4 / 20, 1 / 20], [2 / 40, 2 / 40], [5 / 10, 4 / 10]])
    assert r.replicates.shape == (50, 3, 2)
    assert r.subjects.tolist() == [2, 2, 1]
    assert np.all((r.low <= r.rates) & (r.rates <= r.high))


def test_one_subject_per_group_gives_a_zero_width_interval():
    r = subject_bootstrap([[3], [7]], [[10], [50]], [0, 1], n_replicates=200)
    np.testing.assert_array_equal(r.low, r.rates)
    np.testing.assert_array_equal(r.high, r.rates)
    assert np.all(r.replicates == r.rates[None])


def test_identical_subject_rates_collapse_the_interval():
    # every subject of group 0 has rate exactly 0.1, with different trial counts
    errors = [1, 2, 3, 5, 0, 4]
    trials = [10, 20, 30, 50, 7, 9]
    r = subject_bootstrap(errors, trials, [0, 0, 0, 0, 1, 1], n_replicates=300)
    assert r.low[0, 0] == r.high[0, 0] == 0.1
    assert np.all(r.replicates[:, 0, 0] == 0.1)
    assert r.low[1, 0] < r.high[1, 0]  # group 1's subjects differ (0/7 and 4/9)


def test_seed_determinism():
    rng = np.random.default_rng(0)
    trials = rng.integers(5, 50, size=40)
    errors = rng.binomial(trials, 0.2)
    grp = rng.integers(0, 3, size=40)
    a = subject_bootstrap(errors, trials, grp, n_replicates=300, seed=7)
    b = subject_bootstrap(errors, trials, grp, n_replicates=300, seed=7)
    c = subject_bootstrap(errors, trials, grp, n_replicates=300, seed=8)
    np.testing.assert_array_equal(a.replicates, b.replicates)
    np.testing.assert_array_equal(a.low, b.low)
    assert not np.array_equal(a.replicates, c.replicates)
    # a group's replicates do not depend on the other groups' subjects
    keep = grp != 2
    d = subject_bootstrap(errors[keep], trials[keep], grp[keep], n_groups=3, n_replicates=300, seed=7)
    np.testing.assert_array_equal(d.replicates[:, :2], a.replicates[:, :2])
    assert np.isnan(d.rates[2]).all() and np.isnan(d.low[2]).all() and d.subjects[2] == 0


def test_trials_broadcast_and_replicate_chunks():
    rng = np.random.default_rng(1)
    trials = rng.integers(1, 30, size=25)
    errors = np.stack([rng.binomial(trials, p) for p in (0.3, 0.1, 0.01)], axis=1)
    r = subject_bootstrap(errors, trials, np.zeros(25, int), n_replicates=300)  # > one chunk of 128
    # replicate b of every column uses the same subject weights: the rates are nested
    assert np.all(r.replicates[:, 0, 0] >= r.replicates[:, 0, 1])
    assert np.all(r.replicates[:, 0, 1] >= r.replicates[:, 0, 2])
    # the replicates centre on the point estimate
    assert abs(np.mean(r.replicates[:, 0, 0]) - r.rates[0, 0]) < 0.03


def test_subjects_without_trials_and_undefined_replicates():
    # group 0: one subject with trials, three without: some replicates draw none with trials
    r = subject_bootstrap([2, 0, 0, 0], [10, 0, 0, 0], [0, 0, 0, 0], n_replicates=400, seed=3)
    assert r.rates[0, 0] == 0.2
    assert 0 < r.n_undefined[0, 0] < 400  # P(no draw of subject 0) = (3/4)^4 ~ 0.32
    assert r.low[0, 0] == r.high[0, 0] == 0.2
    none = subject_bootstrap([0, 0], [0, 0], [0, 0], n_replicates=10)
    assert np.isnan(none.rates).all() and np.isnan(none.low).all() and none.n_undefined[0, 0] == 10


def test_coverage_on_a_simulated_population():
    """Subjects with heterogeneous error propensities: the 95% interval covers the population rate
    in about 95% of simulated samples (percentile bootstrap with 80 subjects: a little under)."""
    rng = np.random.default_rng(2024)
    a, b = 2.0, 18.0  # subject rates ~ Beta(2, 18): mean 0.1, strong between-subject variation
    truth = a / (a + b)
    n_sim, n_subj, per = 300, 80, 30
    hits = 0
    naive_hits = 0
    for k in range(n_sim):
        p = rng.beta(a, b, size=n_subj)
        errors = rng.binomial(per, p)
        trials = np.full(n_subj, per)
        r = subject_bootstrap(errors, trials, np.zeros(n_subj, int), n_replicates=200, seed=k)
        hits += r.low[0, 0] <= truth <= r.high[0, 0]
        # a Wald interval over comparisons ignores the subject effect and is too narrow
        phat = errors.sum() / trials.sum()
        half = 1.96 * np.sqrt(phat * (1 - phat) / trials.sum())
        naive_hits += phat - half <= truth <= phat + half
    coverage = hits / n_sim
    assert 0.90 <= coverage <= 0.99, coverage
    assert naive_hits / n_sim < coverage - 0.1


def test_disparity_interval_with_dict_and_vectorised_summaries():
    rng = np.random.default_rng(5)
    trials = rng.integers(20, 60, size=60)
    grp = np.repeat([0, 1, 2], 20)
    errors = rng.binomial(trials, np.array([0.02, 0.05, 0.1])[grp])
    r = subject_bootstrap(errors, trials, grp, n_replicates=300, group_labels=["A", "B", "C"], seed=1)
    for name, fn in (("max_min_ratio", max_min_ratio), ("max_geomean_ratio", max_geomean_ratio)):
        slow = bootstrap_disparity(r, fn)
        fast = bootstrap_disparity(r, name)
        assert slow.summary == fast.summary == name
        np.testing.assert_allclose(slow.replicates, fast.replicates, rtol=1e-12)
        assert slow.value == pytest.approx(fn({"A": r.rates[0, 0], "B": r.rates[1, 0], "C": r.rates[2, 0]}).value)
        assert slow.low <= slow.value <= slow.high
        assert (slow.low, slow.high) == (fast.low, fast.high)
    # plain float-returning summaries work too
    spread = bootstrap_disparity(r, lambda d: max(d.values()) - min(d.values()))
    assert spread.summary == "<lambda>" and spread.low <= spread.value <= spread.high


def test_infinite_and_undefined_summaries():
    # group B has no errors in most replicates: the max/min ratio is often infinite
    r = subject_bootstrap([5, 3, 0, 1], [50, 50, 50, 50], [0, 0, 1, 1], n_replicates=400, group_labels=["A", "B"])
    d = bootstrap_disparity(r, "max_min_ratio")
    assert d.n_infinite > 0 and d.high == np.inf and np.isfinite(d.low)
    # one group only: every summary is undefined
    one = subject_bootstrap([1, 2], [10, 10], [0, 0], n_replicates=20)
    u = bootstrap_disparity(one, max_min_ratio)
    assert np.isnan(u.value) and u.n_undefined == 20 and np.isnan(u.low)


def test_row_summaries_follow_the_disparity_conventions():
    rows = np.array([
        [0.01, 0.04, 0.02],
        [0.0, 0.0, np.nan],
        [0.0, 0.02, 0.01],
        [0.03, np.nan, np.nan],
    ])
    np.testing.assert_allclose(max_min_ratio_rows(rows), [4.0, 1.0, np.inf, np.nan])
    for row, got in zip(rows, max_geomean_ratio_rows(rows)):
        want = max_geomean_ratio({str(i): x for i, x in enumerate(row)}).value
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want)


def test_bootstrap_with_engine_counts():
    from audit.engine.scan import score_tiles

    rng = np.random.default_rng(3)
    subj = np.repeat(np.arange(120), 3)
    emb = rng.normal(size=(120, 16))[subj] + rng.normal(size=(360, 16))
    grp = (np.arange(120) % 3)[subj]
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=128)
    counts = scan.counts_at(scan.thresholds_at_fmr([1e-2]))
    sc = counts.by_subject("fmr")
    r = subject_bootstrap(sc.errors, sc.trials, sc.subject_group, n_groups=3, n_replicates=200)
    g = np.arange(3)
    np.testing.assert_allclose(r.rates[:, 0], counts.fmr[0, g, g])
    assert isinstance(r, BootstrapResult) and np.all(r.low[:, 0] <= r.high[:, 0])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([1, 2], [10], [0, 0]), {}, "one row per subject"),
        (([11], [10], [0]), {}, "cannot exceed"),
        (([-1], [10], [0]), {}, "non-negative"),
        (([0.5], [10], [0]), {}, "integer counts"),
        (([1], [10], [0.0]), {}, "integer codes"),
        (([1], [10], [0]), {"n_replicates": 0}, "n_replicates"),
        (([1], [10], [0]), {"confidence": 95}, "confidence"),
        (([1], [10], [0]), {"seed": -1}, "seed"),
        (([1], [10], [1]), {"n_groups": 1}, "n_groups"),
        (([1], [10], [0]), {"group_labels": ["a", "b"]}, "group_labels"),
        (([[1, 2]], [[10, 10, 10]], [0]), {}, "shape"),
    ],
)
def test_bad_inputs(args, kwargs, match):
    with pytest.raises(MetricError, match=match):
        subject_bootstrap(*args, **kwargs)


def test_bad_disparity_arguments():
    r = subject_bootstrap([1, 2], [10, 10], [0, 1], n_replicates=5)
    with pytest.raises(MetricError, match="column"):
        bootstrap_disparity(r, "max_min_ratio", column=1)
    with pytest.raises(MetricError, match="one of"):
        bootstrap_disparity(r, "gini")
    with pytest.raises(MetricError, match="numeric"):
        bootstrap_disparity(r, lambda d: "x")
    with pytest.raises(MetricError, match="BootstrapResult"):
        bootstrap_disparity({"a": 1}, "max_min_ratio")
