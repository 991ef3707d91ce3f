"""Mitigation methods against hand computation on tiny inputs, and the held-out evaluation's counting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.errors import ConfigError, MetricError
from audit.metrics import fmr, threshold_at_fmr
from audit.mitigation.evaluate import RATE_COLUMNS, SUMMARY_COLUMNS, evaluate_mitigations, pair_scores, subject_folds
from audit.mitigation.methods import (
    PlattMap, apply_group_thresholds, faircal_probability, fsn_normalise, fsn_offsets, group_thresholds, platt_fit,
)
from audit.mitigation.runner import MitigationResult, mitigation_config_from_dict, read_mitigation_result
from audit.report.mitigation import render_mitigation_html


def test_group_thresholds_give_each_group_the_target():
    a = [0.1, 0.2, 0.3, 0.4]
    b = [0.6, 0.7, 0.8, 0.9]
    t = group_thresholds(a + b, ["a"] * 4 + ["b"] * 4, 0.25)
    # one false match of four allowed in each group: the threshold lies just above the second-highest score
    assert 0.3 < t["a"] <= 0.4 and 0.8 < t["b"] <= 0.9
    assert fmr(a, t["a"]).value == 0.25 and fmr(b, t["b"]).value == 0.25
    d = apply_group_thresholds([0.4, 0.4, 0.95], ["a", "b", "b"], t, default=0.5)
    assert d.tolist() == [True, False, True]
    with pytest.raises(MetricError):
        group_thresholds([0.1], ["a", "b"], 0.1)


def test_fsn_by_hand_equalises_cluster_fmr():
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    c = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    off, thr_g = fsn_offsets(s, c, c, 2, 0.25, min_pairs=1)
    assert thr_g == pytest.approx(threshold_at_fmr(s, 0.25))
    assert off.tolist() == pytest.approx([threshold_at_fmr(s[:4], 0.25) - thr_g, threshold_at_fmr(s[4:], 0.25) - thr_g])
    norm = fsn_normalise(s, c, c, off)
    # within one cluster the pair's shift is that cluster's whole offset: ŝ = s − Δ(c)
    assert norm.tolist() == pytest.approx((s - off[c]).tolist())
    t = threshold_at_fmr(norm, 0.25)
    assert fmr(norm[:4], t).value == fmr(norm[4:], t).value == 0.25
    # a cross-cluster pair takes the mean of the two offsets
    assert fsn_normalise(np.array([0.5]), np.array([0]), np.array([1]), off)[0] == pytest.approx(0.5 - 0.5 * (off[0] + off[1]))
    # too few pairs: offset 0
    off2, _ = fsn_offsets(s, c, c, 3, 0.25)
    assert off2.tolist() == [0.0, 0.0, 0.0]


def test_platt_and_faircal_by_hand():
    m = platt_fit(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1]), c=1.0)
    assert m(np.array([0.5]))[0] == pytest.approx(0.5, abs=1e-3)  # symmetric data: the midpoint is even odds
    flat = platt_fit(np.array([0.2, 0.3]), np.array([0, 0]))
    assert flat.w == 0.0 and flat(np.array([5.0]))[0] < 1e-5
    maps = [PlattMap(0.0, 0.0, 30), PlattMap(0.0, np.log(3.0), 10)]  # flat at 0.5 and at 0.75
    p = faircal_probability(np.array([0.1, 0.1, 0.1]), np.array([0, 1, 0]), np.array([1, 1, 0]), maps)
    assert p.tolist() == pytest.approx([(30 * 0.5 + 10 * 0.75) / 40, 0.75, 0.5])
    maps0 = [PlattMap(0.0, 0.0, 0), PlattMap(0.0, np.log(3.0), 0)]
    assert faircal_probability(np.array([0.1]), np.array([0]), np.array([1]), maps0)[0] == pytest.approx(0.625)


def test_subject_folds_keep_people_together_and_are_seeded():
    subj = np.repeat(np.arange(10).astype(str), 3)
    f = subject_folds(subj, 3, seed=1)
    assert all(len(set(f[subj == s])) == 1 for s in np.unique(subj))
    assert sorted(np.bincount(f)) == [9, 9, 12]
    assert (subject_folds(subj, 3, seed=1) == f).all()
    perm = np.random.default_rng(0).permutation(len(subj))
    assert (subject_folds(subj[perm], 3, seed=1) == f[perm]).all()
    with pytest.raises(MetricError):
        subject_folds(subj, 11)


def _data(n=40, per=2, seed=0):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n), per).astype(str)
    grp = np.where(np.arange(n) % 2 == 0, "A", "B")[np.repeat(np.arange(n), per)]
    centres = rng.normal(size=(n, 8))
    emb = centres[np.repeat(np.arange(n), per)] + 0.3 * rng.normal(size=(n * per, 8))
    return emb, subj, grp


def test_held_out_counts_match_the_folds_by_hand():
    emb, subj, grp = _data()
    res = evaluate_mitigations(emb, subj, grp, metric="euclidean", target_fmr=0.05, methods=["group_thresholds"], folds=2,
                               train_impostors=500, bootstrap=50)
    assert list(res.rates.columns) == RATE_COLUMNS and list(res.summary.columns) == SUMMARY_COLUMNS
    folds = subject_folds(subj, 2, seed=0)
    same_imp = {"A": 0, "B": 0}
    for f in range(2):
        te = np.flatnonzero(folds == f)
        a, b = np.triu_indices(len(te), 1)
        keep = (grp[te][a] == grp[te][b]) & (subj[te][a] != subj[te][b])
        for g in same_imp:
            same_imp[g] += int((keep & (grp[te][a] == g)).sum())
    r = res.rates.set_index(["method", "group", "metric"])
    for g in ("A", "B"):
        assert r.loc[("baseline", g, "fmr"), "trials"] == same_imp[g]
        assert r.loc[("baseline", g, "fnmr"), "trials"] == 20  # 20 people x one mated pair
        assert r.loc[("group_thresholds", g, "fmr"), "trials"] == same_imp[g]
    # the baseline's score threshold per fold is the training impostors' at the target
    base = res.folds[res.folds["method"] == "baseline"]
    assert len(base) == 2 and base["threshold"].notna().all()


def test_evaluation_invariant_to_group_names():
    emb, subj, grp = _data()
    a = evaluate_mitigations(emb, subj, grp, metric="cosine", target_fmr=0.05, methods=["fsn", "faircal"], folds=2, clusters=4,
                             train_impostors=500, bootstrap=0)
    b = evaluate_mitigations(emb, subj, np.where(grp == "A", "Z", "Y"), metric="cosine", target_fmr=0.05, methods=["fsn", "faircal"],
                             folds=2, clusters=4, train_impostors=500, bootstrap=0)
    assert a.summary[["fmr", "fnmr"]].equals(b.summary[["fmr", "fnmr"]])
    assert sorted(a.rates["errors"]) == sorted(b.rates["errors"])


def test_pair_scores():
    e = np.array([[3.0, 4.0], [3.0, 4.0], [-3.0, -4.0]])
    assert pair_scores(e, np.array([0, 0]), np.array([1, 2]), "cosine").tolist() == pytest.approx([1.0, -1.0])
    assert pair_scores(e, np.array([0]), np.array([2]), "euclidean").tolist() == pytest.approx([-10.0])
    with pytest.raises(MetricError):
        pair_scores(e, np.array([0]), np.array([1]), "l1")


@pytest.mark.parametrize("mit,field", [({}, "mitigation.grouping"), ({"grouping": ["gender"], "target_fmr": 2}, "mitigation.target_fmr"),
                                       ({"grouping": ["gender"], "methods": ["magic"]}, "mitigation.methods"),
                                       ({"grouping": ["gender"], "folds": 1}, "mitigation.folds"), ({"grouping": ["gender"], "k": 3}, "mitigation.k")])
def test_config_errors_name_the_field(tmp_path, mit, field):
    raw = {"dataset": {"name": "lfw"}, "backend": {"name": "dlib"}, "mitigation": mit}
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        mitigation_config_from_dict(raw, path=tmp_path / "c.toml")


def test_result_round_trip_and_report(tmp_path):
    emb, subj, grp = _data()
    grp = np.where(grp == "A", "<i>A</i>", "B")
    t = evaluate_mitigations(emb, subj, grp, metric="euclidean", target_fmr=0.05, methods=["group_thresholds", "fsn"], folds=2,
                             clusters=4, train_impostors=500, bootstrap=50)
    res = MitigationResult("t <b>", {"settings": t.settings, "grouping": ["gender"]}, t.rates, t.summary,
                           t.folds.astype({"group_thresholds": str}), ("note",))
    res.to_json(tmp_path / "results.json")
    back = read_mitigation_result(tmp_path / "results.json")
    pd.testing.assert_frame_equal(back.rates, res.rates, check_dtype=False)
    html = render_mitigation_html(res)
    assert "&lt;i&gt;A&lt;/i&gt;" in html and "<i>A</i>" not in html
    assert "protected attribute at decision time" in html
