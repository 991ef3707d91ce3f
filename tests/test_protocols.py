"""Pair protocols: a given pair list (LFW pairs.txt or CSV), same-group impostors, sampled impostors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.verification.protocol import mated_pair_indices, read_pair_list
from audit.verification.config import config_from_dict
from audit.errors import ConfigError, DataError
from audit.verification.runner import run_audit

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


# ---------------------------------------------------------------------------- two-sided


def _deg(d):
    return [np.cos(np.radians(d)), np.sin(np.radians(d))]


TWO_SIDED = pd.DataFrame({
    "sample_id": ["a_p", "a_r", "b_p", "b_r", "c_r", "x"],
    "subject": ["a", "a", "b", "b", "c", "x"],
    "group": ["A", "A", "B", "B", "A", "A"],
    "side": ["probe", "enrol", "probe", "enrol", "enrol", "other"],
})
# cosine scores: a_p-a_r .985 (mated), a_p-b_r 0, a_p-c_r .866, b_p-a_r .342, b_p-b_r .985 (mated), b_p-c_r .643
TWO_SIDED_EMB = np.array([_deg(0), _deg(10), _deg(80), _deg(90), _deg(30), _deg(5)])


def _run_two_sided(tmp_path, protocol, threshold=0.5):
    np.save(tmp_path / "emb.npy", TWO_SIDED_EMB)
    TWO_SIDED.to_csv(tmp_path / "samples.csv", index=False)
    cfg = config_from_dict({
        "embeddings": {"path": "emb.npy", "samples": "samples.csv", "groups": ["group"]},
        "thresholds": {"target_fmr": [], "fixed": [threshold]},
        "run": {"bootstrap": 0},
        "protocol": protocol,
    }, path=tmp_path / "c.toml")
    return run_audit(cfg, write=False).result


def test_two_sided_protocol_by_hand(tmp_path):
    res = _run_two_sided(tmp_path, {"probe": {"side": "probe"}, "reference": {"side": "enrol"}})
    proto = res.provenance["protocol"]
    assert proto["mated_comparisons"] == 2 and proto["impostor_comparisons"] == 4
    assert proto["kind"].startswith("two-sided") and proto["sides"]["probe"] == {"side": ["probe"]}
    assert any("1 of 6 image(s) are in neither" in w for w in res.warnings)
    assert "x" not in set(res.samples["sample_id"])  # left out of the audit, not only of comparisons
    c = res.cross_fmr[res.cross_fmr.grouping == "group"].set_index(["group_a", "group_b"])
    # directional: probes of B against references of A (b_p-a_r .342, b_p-c_r .643) vs A against B (a_p-b_r 0)
    assert c.loc[("B", "A"), "comparisons"] == 2 and c.loc[("B", "A"), "false_matches"] == 1
    assert c.loc[("A", "B"), "comparisons"] == 1 and c.loc[("A", "B"), "false_matches"] == 0
    assert c.loc[("A", "A"), "comparisons"] == 1 and c.loc[("A", "A"), "false_matches"] == 1  # a_p-c_r .866
    assert c.loc[("B", "B"), "comparisons"] == 0
    r = res.rates[(res.rates.grouping == "group")].set_index(["group", "metric"])
    assert r.loc[("A", "fmr"), "errors"] == 1 and r.loc[("A", "fmr"), "trials"] == 1
    assert r.loc[("A", "fnmr"), "trials"] == 1 and r.loc[("B", "fnmr"), "trials"] == 1
    overall = res.rates[(res.rates.grouping == "all") & (res.rates.metric == "fmr")].iloc[0]
    assert overall["errors"] == 2 and overall["trials"] == 4
    # swapping the sides transposes the matrix
    swapped = _run_two_sided(tmp_path, {"probe": {"side": "enrol"}, "reference": {"side": "probe"}})
    s = swapped.cross_fmr[swapped.cross_fmr.grouping == "group"].set_index(["group_a", "group_b"])
    assert s.loc[("A", "B"), "false_matches"] == 1 and s.loc[("A", "B"), "comparisons"] == 2


def test_two_sided_protocol_same_group_impostors(tmp_path):
    res = _run_two_sided(tmp_path, {"probe": {"side": "probe"}, "reference": {"side": ["enrol"]}, "impostors": "same_group"})
    assert res.provenance["protocol"]["impostor_comparisons"] == 1  # a_p-c_r only


@pytest.mark.parametrize("protocol,match", [
    ({"probe": {"side": "probe"}}, "needs both probe and reference"),
    ({"probe": {"side": "probe"}, "reference": {"side": "probe"}}, "same images"),
    ({"probe": {"side": "probe"}, "reference": {"side": "enrol"}, "pairs": "p.csv"}, "remove pairs"),
    ({"probe": "smiling", "reference": {"side": "enrol"}}, "protocol.probe"),
    ({"probe": {"side": []}, "reference": {"side": "enrol"}}, "protocol.probe.side"),
])
def test_two_sided_config_errors(tmp_path, protocol, match):
    with pytest.raises(ConfigError, match=match):
        _run_two_sided(tmp_path, protocol)


@pytest.mark.parametrize("protocol,match", [
    ({"probe": {"pose": "front"}, "reference": {"side": "enrol"}}, "column 'pose'.*sample_id"),
    ({"probe": {"side": "smiling"}, "reference": {"side": "enrol"}}, "selects no image.*'enrol'"),
    ({"probe": {"group": "A"}, "reference": {"side": "enrol"}}, "both select 2 image"),
])
def test_two_sided_selection_errors_name_the_field(tmp_path, protocol, match):
    with pytest.raises(ConfigError, match=match) as e:
        _run_two_sided(tmp_path, protocol)
    assert "c.toml" in str(e.value) and "protocol." in str(e.value)


def _two_sided_scores(tmp_path, rows):
    TWO_SIDED.to_csv(tmp_path / "samples.csv", index=False)
    pd.DataFrame(rows, columns=["sample_a", "sample_b", "score"]).to_csv(tmp_path / "scores.csv", index=False)
    cfg = config_from_dict({
        "scores": {"path": "scores.csv", "samples": "samples.csv", "groups": ["group"], "two_sided": True},
        "thresholds": {"target_fmr": [], "fixed": [0.5]},
        "run": {"bootstrap": 0},
    }, path=tmp_path / "c.toml")
    return run_audit(cfg, write=False).result


def test_two_sided_scores_file_equals_the_two_sided_engine_run(tmp_path):
    ids = list(TWO_SIDED.sample_id)
    probes, refs = ["a_p", "b_p"], ["a_r", "b_r", "c_r"]
    rows = [(p, r, float(TWO_SIDED_EMB[ids.index(p)] @ TWO_SIDED_EMB[ids.index(r)])) for p in probes for r in refs]
    from_scores = _two_sided_scores(tmp_path, rows)
    from_engine = _run_two_sided(tmp_path, {"probe": {"side": "probe"}, "reference": {"side": "enrol"}})
    sides = from_scores.provenance["protocol"]["sides"]
    assert sides["probe"] == "sample_a of the scores file"
    assert (sides["probe_images_acquired"], sides["reference_images_acquired"]) == (2, 3)  # x is in no pair
    cols = ["grouping", "group_a", "group_b", "false_matches", "comparisons"]
    pd.testing.assert_frame_equal(from_scores.cross_fmr[cols].reset_index(drop=True), from_engine.cross_fmr[cols].reset_index(drop=True))
    rcols = ["grouping", "group", "metric", "errors", "trials"]
    pd.testing.assert_frame_equal(from_scores.rates[rcols].reset_index(drop=True), from_engine.rates[rcols].reset_index(drop=True))


def test_two_sided_scores_file_rejects_a_sample_on_both_sides(tmp_path):
    with pytest.raises(DataError, match=r"'b_r' is a probe \(sample_a\) on row 3 and a reference \(sample_b\) on row 2"):
        _two_sided_scores(tmp_path, [("a_p", "b_r", 0.1), ("b_r", "c_r", 0.2)])


def test_disparity_weights_reach_the_provenance_and_the_report(emb_dir):
    from audit.report.html import render_html

    cfg = config_from_dict({
        "embeddings": {"path": "emb.npy", "samples": "samples.csv", "groups": ["group"]},
        "thresholds": {"target_fmr": [], "fixed": [0.0]},
        "disparity": {"fdr_alpha": 0.8, "inequity_beta": 0.0},
    }, path=emb_dir / "c.toml")
    res = run_audit(cfg, write=False).result
    assert res.provenance["protocol"]["disparity_weights"] == {"fdr_alpha": 0.8, "garbe_alpha": 0.5, "inequity_alpha": 1.0, "inequity_beta": 0.0}
    html = render_html(res)
    assert "Weights here: α = 0.8." in html and "Weights here: α = 1, β = 0." in html
