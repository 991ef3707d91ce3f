"""Pair protocols: a given pair list (LFW pairs.txt or CSV), same-group impostors, sampled impostors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.comparisons import mated_pair_indices, read_pair_list
from audit.config import config_from_dict
from audit.errors import ConfigError, DataError
from audit.pipeline import run_audit

SAMPLES = pd.DataFrame({
    "sample_id": ["a1", "a2", "b1", "c1", "c2", "d1", "e1"],
    "subject": ["a", "a", "b", "c", "c", "d", "e"],
    "group": ["A", "A", "A", "B", "B", "B", "A"],
})


@pytest.fixture
def emb_dir(tmp_path):
    np.save(tmp_path / "emb.npy", np.random.default_rng(3).normal(size=(7, 6)))
    SAMPLES.to_csv(tmp_path / "samples.csv", index=False)
    return tmp_path


def _run(tmp_path, protocol):
    cfg = config_from_dict({
        "embeddings": {"path": "emb.npy", "samples": "samples.csv", "groups": ["group"]},
        "thresholds": {"target_fmr": [], "fixed": [0.0]},
        "protocol": protocol,
    }, path=tmp_path / "c.toml")
    return run_audit(cfg, write=False).result


def test_mated_pair_indices_by_hand():
    a, b = mated_pair_indices(np.array(["x", "y", "x", "x", "z"]))
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 2), (0, 3), (2, 3)]


def test_csv_pair_list(emb_dir):
    (emb_dir / "pairs.csv").write_text("sample_a,sample_b\na1,a2\na1,b1\nc1,d1\n")
    res = _run(emb_dir, {"pairs": "pairs.csv"})
    assert res.provenance["protocol"]["mated_comparisons"] == 1
    assert res.provenance["protocol"]["impostor_comparisons"] == 2
    assert res.provenance["protocol"]["kind"].startswith("pair_list")


def test_same_group_impostors_leave_cross_cells_empty(emb_dir):
    res = _run(emb_dir, {"impostors": "same_group"})
    # group A: a1 a2 b1 e1 -> impostors a-b (2), a-e (2), b-e (1) = 5; group B: c1 c2 d1 -> c-d (2)
    assert res.provenance["protocol"]["impostor_comparisons"] == 7
    c = res.cross_fmr[(res.cross_fmr.grouping == "group")]
    assert c[(c.group_a == "A") & (c.group_b == "B")].comparisons.iloc[0] == 0
    assert c[(c.group_a == "A") & (c.group_b == "A")].comparisons.iloc[0] == 5


def test_sampled_impostors_are_seeded(emb_dir):
    r1 = _run(emb_dir, {"sample_impostors": 6})
    r2 = _run(emb_dir, {"sample_impostors": 6})
    assert r1.provenance["protocol"]["impostor_comparisons"] == 6 and r1.provenance["protocol"]["mated_comparisons"] == 2
    assert r1.cross_fmr.equals(r2.cross_fmr)


def test_protocol_config_errors(tmp_path):
    base = {"dataset": {"name": "london"}, "backend": {"name": "dlib"}}
    with pytest.raises(ConfigError, match="protocol.impostors"):
        config_from_dict({**base, "protocol": {"impostors": "some"}}, path=tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="choose one of"):
        config_from_dict({**base, "protocol": {"pairs": "p.txt", "sample_impostors": 3}}, path=tmp_path / "c.toml")


def test_lfw_pairs_txt_maps_to_dataset_images(shared_dir):
    from audit.datasets import load_dataset

    t = load_dataset("lfw", data_dir=shared_dir, download=False)
    a, b = read_pair_list(shared_dir / "lfw" / "pairs.txt", t.data["sample_id"].tolist())
    subj = t.data["subject"].to_numpy()
    assert len(a) == 6000 and int((subj[a] == subj[b]).sum()) == 3000


def test_bad_pair_lines_are_named(tmp_path):
    (tmp_path / "p.txt").write_text("10\t300\nAbel_Pacheco\t1\n")
    with pytest.raises(DataError, match=r"p.txt:2: expected 'name n1 n2'"):
        read_pair_list(tmp_path / "p.txt", ["x"])
    (tmp_path / "q.txt").write_text("10\t300\nAbel_Pacheco\t1\t4\n")
    with pytest.raises(DataError, match=r"q.txt:2: names 'lfw-deepfunneled/Abel_Pacheco/Abel_Pacheco_0001.jpg'"):
        read_pair_list(tmp_path / "q.txt", ["x"])
