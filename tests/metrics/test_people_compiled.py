"""The compiled loops of the people bootstrap (numba, the `fast` extra) against plain numpy on
inputs that reach their special cases: uint8 weight draws, int16 and int32 run sums, rows out of
person order, the fallback when a weight saturates, the operating-point checkpoint, and the
compiled aggregation of person pairs."""

from __future__ import annotations

import numpy as np
import pytest

from audit.metrics import _people_fused, threshold_at_fmr
from audit.metrics.people import PeopleCounts, _weight_chunks, people_bootstrap, people_weights
from audit.verification.analysis import cell_data_from_pairs
from audit.verification.protocol import PairScores

pytestmark = pytest.mark.skipif(not _people_fused.available(), reason="numba is not installed (the `fast` extra)")


def _plain_quadratic(pa, pb, col, vals, W, ncol):
    out = np.zeros((ncol, vals.shape[1], W.shape[0]))
    for r in range(pa.size):
        out[col[r]] += vals[r][:, None] * (W[:, pa[r]] * W[:, pb[r]])[None, :]
    return out


def test_uint8_draws_are_the_float_weights():
    strata = np.array([0, 0, 0, 1, 1, 2, 0, 1])
    w = people_weights(strata, 3, n_replicates=40, seed=4)
    ((_, _, w8, wt8),) = _weight_chunks(strata, 3, n_replicates=40, seed=4, step=40, dtype=np.uint8)
    assert w8.dtype == np.uint8 and wt8.flags.c_contiguous
    np.testing.assert_array_equal(w8, w)
    np.testing.assert_array_equal(wt8, w.T)


def test_draws_saturate_at_255():
    W, WT = np.zeros((2, 300), np.uint8), np.zeros((300, 2), np.uint8)
    _people_fused.count_draws(np.zeros((2, 300)), np.arange(300), W, WT)  # every draw is person 0
    assert W[:, 0].tolist() == [255, 255] and W[:, 1:].sum() == 0
    np.testing.assert_array_equal(WT, W.T)


@pytest.mark.parametrize("big", [False, True])
def test_quadratic_matches_a_plain_sum(big):
    """Rows out of person order, values > 1 and, with ``big``, run sums past int16 (the int32 path)."""
    rng = np.random.default_rng(1)
    s, n, b = 30, 400, 37
    pa, pb = rng.integers(0, s, n), rng.integers(0, s, n)
    pb = np.where(pa == pb, (pb + 1) % s, pb)
    col = rng.integers(0, 4, n)
    vals = rng.integers(0, 3, (n, 2)) * (400 if big else 1)
    W = rng.poisson(1.0, (b, s)).astype(np.float64)
    got = _people_fused.quadratic(pa, pb, col, vals, W, 4)
    np.testing.assert_array_equal(got, _plain_quadratic(pa, pb, col, vals, W, 4))


def test_quadratic_declines_sums_beyond_int32():
    W = np.full((3, 2), 200.0)
    assert _people_fused.quadratic(np.array([0]), np.array([1]), np.array([0]), np.array([[2 ** 24]]), W, 1) is None


def _data(seed=11, people=50):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(people), rng.integers(1, 5, people))
    cell = (subj % 3 + (rng.random(subj.size) < 0.2)) % 3
    emb = rng.normal(size=(subj.size, 8)) + 1.2 * rng.normal(size=(people, 8))[subj]
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.triu_indices(subj.size, 1)
    s = np.round(np.sum(e[i] * e[j], axis=1), 2)  # ties
    m = subj[i] == subj[j]
    return subj, cell, PairScores(s[m], i[m], j[m], s[~m], i[~m], j[~m])


def test_saturated_weights_fall_back_to_the_numpy_path(monkeypatch):
    subj, cell, pairs = _data()
    targets = [0.05, None]
    th = [threshold_at_fmr(pairs.impostor_score, 0.05), 0.3]
    people = cell_data_from_pairs(pairs, cell, 3, th, subjects=subj).people
    compiled = people_bootstrap(people, np.arange(3), 3, n_replicates=50, seed=3, targets=targets)
    monkeypatch.setattr(_people_fused, "MAX_WEIGHT", 3)  # weights of 3 and more: "too large" for the compiled loops
    fallback = people_bootstrap(people, np.arange(3), 3, n_replicates=50, seed=3, targets=targets)
    monkeypatch.setattr(_people_fused, "_KERNELS", None)
    plain = people_bootstrap(people, np.arange(3), 3, n_replicates=50, seed=3, targets=targets)
    for f in ("fm", "imp", "fnm", "mated", "op_fm", "op_fnm", "op_threshold"):
        np.testing.assert_array_equal(getattr(compiled, f), getattr(plain, f), err_msg=f)
        np.testing.assert_array_equal(getattr(fallback, f), getattr(plain, f), err_msg=f)


def test_operating_point_walks_from_the_checkpoint_both_ways(monkeypatch):
    """At a target-FMR threshold each replicate starts from the fixed-threshold counts and walks
    down the tail or back up it; the results equal the walk from the top."""
    subj, cell, pairs = _data(seed=5, people=70)
    t0 = threshold_at_fmr(pairs.impostor_score, 0.05)
    people = cell_data_from_pairs(pairs, cell, 3, [t0], subjects=subj).people
    seen = {}
    real = _people_fused.operating_point

    def spy(W, allowed, tail, **kw):
        seen.update(kw)
        fm, fnm, sb = real(W, allowed, tail, **kw)
        seen["above"] = int(np.sum(sb > tail[0][kw["start"]]))
        seen["below"] = int(np.sum(sb < tail[0][kw["start"]]))
        top = real(W, allowed, tail)  # no checkpoint: from the top of the tail
        for x, y in zip((fm, fnm, sb), top):
            np.testing.assert_array_equal(x, y)
        return fm, fnm, sb

    monkeypatch.setattr(_people_fused, "operating_point", spy)
    people_bootstrap(people, np.arange(3), 3, n_replicates=200, seed=8, targets=[0.05])
    assert seen["start"] == int(np.sum(pairs.impostor_score >= t0)) and seen["fm0"] is not None
    assert seen["mated_start"] == int(np.sum(pairs.mated_score < t0)) and seen["fnm0"] is not None
    assert seen["above"] > 10 and seen["below"] > 10  # replicates on both sides of the checkpoint


def test_compiled_aggregation_equals_numpys(monkeypatch):
    rng = np.random.default_rng(2)
    n = 5000
    a, b = rng.integers(0, 40, n), rng.integers(0, 40, n)
    ca, cb = rng.integers(0, 3, n), rng.integers(0, 3, n)
    b = np.where((a == b) & (ca == cb), (b + 1) % 40, b)
    cnt = rng.integers(0, 3, (n, 2))
    got = PeopleCounts.aggregate_pairs(a, b, ca, cb, cnt)
    monkeypatch.setattr(_people_fused, "_KERNELS", None)
    want = PeopleCounts.aggregate_pairs(a, b, ca, cb, cnt)
    assert got[0].size < n  # some rows were merged
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x, y)


def test_sums_too_large_for_the_compiled_runs_take_the_numpy_quadratic_form(monkeypatch):
    """False-match counts so large that a run's sums could pass int32: the compiled replicates
    hand the quadratic form to the numpy path (with their uint8 weights) and still agree."""
    subj, cell, pairs = _data(seed=9)
    people = cell_data_from_pairs(pairs, cell, 3, [0.3], subjects=subj).people
    big = people.__class__(**{**people.__dict__, "fm_counts": people.fm_counts * (1 << 27)})
    calls = []
    real = _people_fused.quadratic
    monkeypatch.setattr(_people_fused, "quadratic", lambda *a, **k: calls.append(r := real(*a, **k)) or r)
    compiled = people_bootstrap(big, np.arange(3), 3, n_replicates=40, seed=1)
    assert calls and calls[-1] is None  # the compiled form declined
    monkeypatch.setattr(_people_fused, "_KERNELS", None)
    plain = people_bootstrap(big, np.arange(3), 3, n_replicates=40, seed=1)
    np.testing.assert_array_equal(compiled.fm, plain.fm)
    assert compiled.fm.max() > 2 ** 31
