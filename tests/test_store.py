"""The embedding store: round trip, keys, atomic batches, permissions."""

from __future__ import annotations

import stat

import numpy as np
import pytest

from audit.backends.base import BackendInfo, FaceResult, FaceStatus
from audit.store import EmbeddingStore


def _info(**kw):
    base = dict(backend="fake", model="m", version="1", weights_sha256="ab" * 32, dim=3, metric="cosine", options={"a": 1})
    base.update(kw)
    return BackendInfo(**base)


def test_round_trip_including_failures(tmp_path):
    with EmbeddingStore(tmp_path, _info()) as s:
        assert s.missing(["x", "y", "x"]) == ["x", "y"]
        s.put_many({
            "x": FaceResult(FaceStatus.OK, np.array([1.0, 2.0, 3.0]), n_faces=2),
            "y": FaceResult(FaceStatus.NO_FACE, detail="no face found"),
        })
        got = s.get_many(["x", "y", "z"])
    assert set(got) == {"x", "y"}
    assert got["x"].status is FaceStatus.OK and got["x"].n_faces == 2
    np.testing.assert_array_equal(got["x"].embedding, np.array([1, 2, 3], np.float32))
    assert got["y"].status is FaceStatus.NO_FACE and got["y"].embedding is None and got["y"].detail == "no face found"
    with EmbeddingStore(tmp_path, _info()) as s:  # persisted
        assert len(s) == 2 and s.missing(["x", "y"]) == []


def test_any_change_to_backend_identity_misses_the_cache(tmp_path):
    with EmbeddingStore(tmp_path, _info()) as s:
        s.put_many({"x": FaceResult(FaceStatus.OK, np.ones(3))})
    for change in ({"version": "2"}, {"weights_sha256": "cd" * 32}, {"options": {"a": 2}}, {"model": "other"}):
        with EmbeddingStore(tmp_path, _info(**change)) as s:
            assert s.missing(["x"]) == ["x"], change


def test_files_are_private(tmp_path):
    root = tmp_path / "emb"
    with EmbeddingStore(root, _info()) as s:
        path = s.path
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_batch_leaves_nothing_half_written(tmp_path):
    with EmbeddingStore(tmp_path, _info()) as s:
        s.put_many({"a": FaceResult(FaceStatus.OK, np.ones(3))})

        class Boom(dict):
            def items(self):
                yield "b", FaceResult(FaceStatus.OK, np.ones(3))
                raise RuntimeError("killed mid-batch")

        with pytest.raises(RuntimeError):
            s.put_many(Boom())
        assert s.missing(["a", "b"]) == ["b"]
