"""The similarity convention (all-pairs exactness is tested with the engine in tests/engine)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.verification.protocol import similarity_matrix
from audit.errors import MetricError


def test_similarity_by_hand():
    a = np.array([[3.0, 4.0]])
    b = np.array([[3.0, 4.0], [0.0, 0.0], [-3.0, -4.0]])
    np.testing.assert_allclose(similarity_matrix(a, b, metric="euclidean"), [[0.0, -5.0, -10.0]])
    np.testing.assert_allclose(similarity_matrix(a, b[[0, 2]], metric="cosine"), [[1.0, -1.0]])


def test_bad_metric():
    with pytest.raises(MetricError, match="metric"):
        similarity_matrix(np.ones((2, 2)), np.ones((2, 2)), metric="manhattan")
