"""All-pairs scoring against a naive double loop."""

from __future__ import annotations

import numpy as np
import pytest

from audit.comparisons import score_all_pairs, similarity_matrix
from audit.errors import MetricError


def test_similarity_by_hand():
    a = np.array([[3.0, 4.0]])
    b = np.array([[3.0, 4.0], [0.0, 0.0], [-3.0, -4.0]])
    np.testing.assert_allclose(similarity_matrix(a, b, metric="euclidean"), [[0.0, -5.0, -10.0]])
    np.testing.assert_allclose(similarity_matrix(a, b[[0, 2]], metric="cosine"), [[1.0, -1.0]])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("tile", [1, 3, 7, 100])
def test_tiled_all_pairs_equals_naive(metric, tile):
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(23, 5))
    subj = rng.integers(0, 8, size=23)
    p = score_all_pairs(emb, subj, metric=metric, tile=tile)
    mated, imp = {}, {}
    for i in range(23):
        for j in range(i + 1, 23):
            if metric == "cosine":
                s = emb[i] @ emb[j] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[j])
            else:
                s = -np.linalg.norm(emb[i] - emb[j])
            (mated if subj[i] == subj[j] else imp)[(i, j)] = s
    assert p.n_mated + p.n_impostor == 23 * 22 // 2
    got_m = dict(zip(zip(p.mated_a.tolist(), p.mated_b.tolist()), p.mated_score))
    got_i = dict(zip(zip(p.impostor_a.tolist(), p.impostor_b.tolist()), p.impostor_score))
    assert got_m.keys() == mated.keys() and got_i.keys() == imp.keys()
    for k in mated:
        assert got_m[k] == pytest.approx(mated[k], abs=1e-9)
    for k in imp:
        assert got_i[k] == pytest.approx(imp[k], abs=1e-9)


def test_bad_inputs():
    with pytest.raises(MetricError, match="2-D"):
        score_all_pairs(np.ones(3), np.ones(3), metric="cosine")
    with pytest.raises(MetricError, match="one entry per embedding"):
        score_all_pairs(np.ones((3, 2)), np.ones(2), metric="cosine")
    with pytest.raises(MetricError, match="NaN"):
        score_all_pairs(np.array([[np.nan, 1.0], [1.0, 1.0]]), np.array([0, 1]), metric="cosine")
    with pytest.raises(MetricError, match="metric"):
        score_all_pairs(np.ones((2, 2)), np.array([0, 1]), metric="manhattan")
