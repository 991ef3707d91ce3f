"""The process-pool engine: same results with 1 and 2 workers, resume after a kill, cache hits."""

from __future__ import annotations

import numpy as np
import pytest

from audit.datasets import load_dataset
from audit.engine import embed_missing
from audit.store import EmbeddingStore
from fake_backend import QuadrantColourBackend


@pytest.fixture(scope="module")
def london_paths(shared_dir):
    t = load_dataset("london", data_dir=shared_dir, download=False).subset_subjects(8, seed=1)
    return dict(zip(t.data["sha256"], t.data["path"]))


def test_one_and_two_workers_agree_and_second_pass_is_cached(tmp_path, london_paths):
    b = QuadrantColourBackend()
    with EmbeddingStore(tmp_path / "w1", b.info()) as s1, EmbeddingStore(tmp_path / "w2", b.info()) as s2:
        st1 = embed_missing(b, london_paths, s1, workers=1, batch_size=3, progress=False)
        st2 = embed_missing(b, london_paths, s2, workers=2, batch_size=3, progress=False)
        assert st1.computed == st2.computed == len(london_paths)
        r1, r2 = s1.get_many(london_paths), s2.get_many(london_paths)
        for sha in london_paths:
            np.testing.assert_array_equal(r1[sha].embedding, r2[sha].embedding)
        again = embed_missing(b, london_paths, s2, workers=2, progress=False)
        assert (again.computed, again.cached) == (0, len(london_paths))


def test_resume_after_interruption(tmp_path, london_paths):
    b = QuadrantColourBackend()
    shas = list(london_paths)
    with EmbeddingStore(tmp_path, b.info()) as s:
        # a run that stored the first 5 results and was then killed
        first = {sha: london_paths[sha] for sha in shas[:5]}
        embed_missing(b, first, s, workers=1, progress=False)
        st = embed_missing(b, london_paths, s, workers=1, progress=False)
        assert (st.computed, st.cached) == (len(shas) - 5, 5)


def test_unreadable_file_is_a_status_not_a_crash(tmp_path):
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    b = QuadrantColourBackend()
    with EmbeddingStore(tmp_path / "s", b.info()) as s:
        embed_missing(b, {"deadbeef": str(bad)}, s, workers=1, progress=False)
        r = s.get_many(["deadbeef"])["deadbeef"]
    assert r.status.value == "unreadable" and "empty" in r.detail
