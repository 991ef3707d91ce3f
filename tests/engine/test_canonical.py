"""The compiled canonical score (numba) against the numpy one: the same float64 bits."""

from __future__ import annotations

import numpy as np
import pytest

from audit.engine import _fused
from audit.engine.numerics import _canonical, _canonical_numpy, _prepare, _tree_sum


@pytest.fixture()
def compiled():
    if not _fused.available():
        pytest.skip("numba is not installed: the compiled canonical score is not in use")


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("d", [1, 3, 100, 128, 512])
def test_compiled_canonical_is_bit_identical(compiled, metric, d):
    rng = np.random.default_rng(d)
    n_rows = 300
    # rows of very different scales, exact zeros and repeated rows: every rounding path
    emb = rng.normal(size=(n_rows, d)) * rng.choice([1e-3, 1.0, 1e3], size=(n_rows, 1))
    emb[rng.random(emb.shape) < 0.05] = 0.0
    emb[1] = emb[0]
    e32 = _prepare(emb, metric, normalize=True)
    n = (1 << 15) + 77 if d <= 128 else 5000  # the parallel loop (>= 2^15 pairs) and the serial one
    a = rng.integers(0, n_rows, n)
    b = rng.integers(0, n_rows, n)
    a[:3], b[:3] = [0, 0, 5], [1, 0, 5]  # identical rows: cosine 1 or the row's norm², distance 0
    want = _canonical_numpy(e32, a, b, metric)
    got = _canonical(e32, a, b, metric)
    assert got.dtype == np.float64 and got.shape == (n,)
    assert np.array_equal(got, want)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))  # every bit, the sign of a zero too
    small = _canonical(e32, a[:100].astype(np.int32), b[:100].astype(np.int32), metric)  # the serial loop, int32 rows
    assert np.array_equal(small, want[:100])
    if metric == "cosine":  # the pairwise order by hand: the products' tree sum
        x, y = e32[a[:50]].astype(np.float64), e32[b[:50]].astype(np.float64)
        assert np.array_equal(got[:50], _tree_sum(x * y))
    else:
        assert got[1] == 0.0 and got[2] == 0.0


def test_tree_order_is_not_a_plain_sum(compiled):
    """Products [1, 2^-53, 0, 2^-53]: summed left to right they give 1 (each 2^-53 is lost to
    round-half-even); the pairwise tree adds (1 + 0) + (2^-53 + 2^-53) = 1 + 2^-52."""
    e32 = np.array([[1.0, 2.0**-53, 0.0, 2.0**-53], [1.0, 1.0, 0.0, 1.0]], np.float32)
    a, b = np.zeros(1, np.int64), np.ones(1, np.int64)
    assert _canonical(e32, a, b, "cosine")[0] == 1.0 + 2.0**-52
    assert _canonical_numpy(e32, a, b, "cosine")[0] == 1.0 + 2.0**-52
    # five columns, padded to eight: left to right, 1 + 2^-53 -> 1, then + 2^-52 = 1 + 2^-52; the
    # tree adds p0 + p4 first, then (1 + 2^-52) + 2^-53, a tie rounded to even: 1 + 2^-51
    e5 = np.array([[1.0, 2.0**-53, 0.0, 0.0, 2.0**-52], [1.0, 1.0, 0.0, 0.0, 1.0]], np.float32)
    want = 1.0 + 2.0**-51
    assert _canonical(e5, a, b, "cosine")[0] == want == _canonical_numpy(e5, a, b, "cosine")[0]


def test_numpy_path_when_compiled_loops_are_off(monkeypatch):
    monkeypatch.setattr(_fused, "_KERNEL", None)
    monkeypatch.setattr(_fused, "canonical", lambda *a: pytest.fail("the compiled loop must not run"))
    e32 = np.array([[3.0, 4.0], [0.0, 1.0]], np.float32)
    assert _canonical(e32, np.array([0]), np.array([1]), "cosine").tolist() == [4.0]
    assert _canonical(e32, np.array([0]), np.array([1]), "euclidean").tolist() == [-np.sqrt(18.0)]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_pairs_scored_block_by_block_are_bit_identical(compiled, monkeypatch, metric):
    """Many pairs over rows larger than a cache are scored in the order of their blocks of rows
    (then put back in place): the thresholds lowered so that 40,000 pairs over 300 rows take it."""
    monkeypatch.setattr(_fused, "_BLOCK_PAIRS", 1 << 15)
    monkeypatch.setattr(_fused, "_CACHE_BYTES", 0)
    monkeypatch.setattr(_fused, "_BLOCK_BYTES", 4 * 100 * 16)  # 16 rows a block: 19 x 19 blocks
    rng = np.random.default_rng(9)
    e32 = _prepare(rng.normal(size=(300, 100)), metric, normalize=True)
    a = rng.integers(0, 300, 40_000)
    b = rng.integers(0, 300, 40_000)
    order, gather, scatter = _fused._BLOCKS
    used = []
    monkeypatch.setattr(_fused, "_BLOCKS", (lambda *x: used.append(x[2:]) or order(*x), gather, scatter))
    got = _canonical(e32, a, b, metric)
    assert used == [(4, 19)]
    assert np.array_equal(got.view(np.int64), _canonical_numpy(e32, a, b, metric).view(np.int64))
    perm = order(a, b, 4, 19)  # the order used: sorted by (a // 16, b // 16), stable
    np.testing.assert_array_equal(perm, np.lexsort((np.arange(a.size), b // 16, a // 16)))
