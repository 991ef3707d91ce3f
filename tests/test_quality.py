"""Duplicates, near-duplicates, the duplicate policies and wrong-face flags, on small hand-made
inputs and on real dlib embeddings of the London set (from the embedding cache)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.errors import ConfigError
from audit.quality import duplicate_exclusions, find_duplicates, near_duplicate_bound, wrong_faces


def _samples():
    # a/b: the same file under two people; c/d: the same file twice for one person;
    # e: a re-encoded copy of f (another person); g, h: ordinary
    return pd.DataFrame({
        "sample_id": list("abcdefgh"),
        "subject": ["1", "2", "3", "3", "4", "5", "6", "6"],
        "sha256": ["x", "x", "y", "y", "e", "f", "g", "h"],
        "n_faces": [1, 1, 1, 1, 1, 1, 1, 3],
    })


def _emb():
    base = np.eye(8)
    e = base.copy()
    e[1] = e[0]                     # exact copy: identical embedding
    e[3] = e[2]
    e[4] = e[5] + 0.005 * base[6]   # near copy of f
    e[7] = e[6] + 0.3 * base[7]     # another photo of person 6
    return e


def test_exact_and_near_duplicates_across_and_within():
    d = find_duplicates(_samples(), np.arange(8), _emb(), metric="euclidean", bound=0.01)
    got = d[["kind", "scope", "sample_a", "sample_b"]].values.tolist()
    assert got == [["exact", "across subjects", "a", "b"], ["exact", "within subject", "c", "d"], ["near", "across subjects", "e", "f"]]
    assert d.loc[2, "distance"] == pytest.approx(0.005)
    assert not d["excluded"].any()
    # without embeddings (a scores file) only exact copies are found
    assert len(find_duplicates(_samples(), np.arange(8), None)) == 2


@pytest.mark.parametrize("policy, excluded", [
    ("default", {"a", "b"}),               # exact copies across subjects: every copy
    ("exclude", {"a", "b", "e", "f", "d"}),  # and near copies across subjects, and the later copy within one
    ("warn", set()),
    ("keep", set()),
])
def test_each_policy(policy, excluded):
    d = find_duplicates(_samples(), np.arange(8), _emb(), metric="euclidean", bound=0.01)
    out, listed = duplicate_exclusions(d, policy)
    assert out == excluded
    assert listed["excluded"].tolist() == [(a in excluded or b in excluded) for a, b in zip(listed.sample_a, listed.sample_b)]


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="data.duplicates.*'drop'"):
        duplicate_exclusions(find_duplicates(_samples(), np.arange(8), None), "drop")


def test_bounds_are_backend_specific():
    assert near_duplicate_bound("dlib") == 0.09
    assert near_duplicate_bound("deepface", "Dlib") == 0.0015
    assert near_duplicate_bound("deepface", "ArcFace") is None  # not measured: near duplicates not looked for


def test_wrong_face_and_several_faces():
    s = _samples().iloc[[0, 2, 3, 4, 5, 6, 7]].reset_index(drop=True)  # people 1, 3 (2 images), 4, 5, 6 (2 images)
    s.loc[:, "subject"] = ["1", "3", "3", "4", "4", "6", "6"]
    e = np.eye(7)
    e[2] = e[1] + 0.05 * e[6]     # person 3: two close images
    e[4] = e[0] + 0.02 * e[5]     # person 4's second image is person 1's face
    e[3] = e[3] + 0.0             # person 4's first image: its own
    e[6] = e[5] + 0.1 * e[0]      # person 6: two close images
    w = wrong_faces(s, np.arange(7), e, metric="euclidean")
    assert w[["sample_id", "nearest_other_subject"]].values.tolist()[0] == ["f", "1"]
    assert w.loc[0, "own_distance"] > 1 and w.loc[0, "nearest_other_distance"] == pytest.approx(0.02)
    assert w["reason"].str.contains("faces detected").sum() == 1 and w["n_faces"].max() == 3
    assert len(w) == 2


@pytest.mark.xdist_group("london_dlib")
def test_real_london_dlib_embeddings_have_no_duplicates_and_plant_one(london_dlib):
    samples, ok_rows, emb = london_dlib
    d = find_duplicates(samples, ok_rows, emb, metric="euclidean", bound=near_duplicate_bound("dlib"))
    assert d.empty  # 204 distinct photos: closest different photos of one person 0.096 > 0.09
    assert wrong_faces(samples, ok_rows, emb, metric="euclidean").query("n_faces <= 1").empty
    # plant: person 002's neutral photo relabelled as person 001's (a wrong face) and a byte copy
    s = samples.copy()
    i = int(np.flatnonzero(s["sample_id"] == "neutral_front/002_03.jpg")[0])
    s.loc[i, "subject"] = "001"
    w = wrong_faces(s, ok_rows, emb, metric="euclidean")
    assert "neutral_front/002_03.jpg" in set(w["sample_id"]) and set(w["nearest_other_subject"]) >= {"002"}


@pytest.fixture(scope="module")
def london_dlib(shared_dir, london_dlib_cache):
    from audit.backends.registry import create_backend
    from audit.datasets import load_dataset, load_manifest
    from audit.store import EmbeddingStore

    info = create_backend("dlib", upsample=1, multiple_faces="largest").info()
    table = load_dataset(load_manifest("london"), data_dir=shared_dir)
    with EmbeddingStore(london_dlib_cache / "embeddings", info) as store:
        got = store.get_many(table.data["sha256"])
    res = [got[h] for h in table.data["sha256"]]
    ok = np.flatnonzero([r.status.value == "ok" for r in res])
    samples = table.data.assign(n_faces=[r.n_faces for r in res])
    return samples, ok, np.stack([res[i].embedding for i in ok])
