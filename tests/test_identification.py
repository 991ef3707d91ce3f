"""1:N identification: galleries and probes, exact and approximate search, thresholds, the ACLU-style
table, the result's JSON, the report, the gate, the config, and end to end on London."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audit.errors import ConfigError, FaceAuditError, MissingDependencyError, ResultsError
from audit.gate import GateError, evaluate, policy_from_dict
from audit.identification import (
    ExactSearch,
    GalleryProbeSplit,
    IdentificationError,
    IdentificationResult,
    SearchBackend,
    SearchHits,
    analyse_identification,
    brute_force_search,
    choose_identification_thresholds,
    cross_dataset_split,
    identification_config_from_dict,
    lfw_singletons_split,
    london_half_split,
    read_result,
    recall_at_k,
    run_identification,
    search_split,
    split_gallery_probes,
)
from audit.identification.result import ID_TABLE_COLUMNS
from audit.verification.result import AuditResult

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from fake_backend import QuadrantColourBackend  # noqa: E402


# ----------------------------------------------------------------------------------- fixtures
def frame(rows):
    """rows: (sample_id, subject, group[, expression]) -> a samples frame with sha256 = 'h' + sample_id."""
    cols = ["sample_id", "subject", "group", "expression"][: len(rows[0])]
    df = pd.DataFrame(rows, columns=cols)
    df["sha256"] = "h" + df["sample_id"]
    return df


def tiny_split() -> tuple[GalleryProbeSplit, dict[str, np.ndarray]]:
    """Gallery A, B, C (2-D unit vectors at angles 0, 60, 120 degrees); probes chosen so that the
    candidate lists are easy to work out by hand (cosine = cos of the angle difference)."""
    ang = {"gA": 0, "gB": 60, "gC": 120,          # gallery
           "pA": 10, "pB": 100, "pC": 170,        # mated: A's mate at rank 1; B's probe is nearer C; C's nearest is C
           "nX": 30, "nY": 200}                   # non-mated: X between A and B; Y far from all
    vec = {k: np.array([math.cos(math.radians(a)), math.sin(math.radians(a))]) for k, a in ang.items()}
    gallery = frame([("gA", "A", "g1"), ("gB", "B", "g2"), ("gC", "C", "g1")])
    probes = frame([("pA", "A", "g1"), ("pB", "B", "g2"), ("pC", "C", "g1"), ("nX", "X", "g2"), ("nY", "Y", "g1")])
    probes["mated"] = [True, True, True, False, False]
    return GalleryProbeSplit(gallery, probes, ("group",)), vec


def tiny_result(threshold_targets=(0.5,), fixed=(0.9,)) -> IdentificationResult:
    split, vec = tiny_split()
    g = np.stack([vec[s] for s in split.gallery["sample_id"]])
    p = np.stack([vec[s] for s in split.probes["sample_id"]])
    cands = search_split(split, ExactSearch(metric="cosine"), k=3, gallery_inputs=g, probe_inputs=p)
    th = choose_identification_thresholds(split, cands, target_fpir=threshold_targets, fixed_native=fixed)
    t = analyse_identification(split, cands, th, groupings=[("group",)], rank=1, bootstrap_replicates=200)
    samples = pd.concat([split.gallery.assign(role="gallery"),
                         split.probes.assign(role=np.where(split.probes["mated"], "mated", "nonmated"))])
    samples = samples.assign(dataset="tiny", status="ok", n_faces=1, detail="", path="")
    samples = samples.reindex(columns=ID_TABLE_COLUMNS["samples"] + ["group"])
    return IdentificationResult(
        title='Tiny <search> & "friends"', provenance={"tool_version": "test", "protocol": {"gallery_subjects": 3}},
        groupings=("group",), thresholds=t.thresholds, k=3, rank=1, samples=samples, composition=t.composition,
        fta=t.fta, rates=t.rates, cmc=t.cmc, false_matches=t.false_matches, candidates=t.candidates,
        cross_fpir=t.cross_fpir, disparity=t.disparity, score_hist=t.score_hist, searches=t.searches,
        warnings=t.warnings,
    )


# ----------------------------------------------------------------------------------- splits
def test_split_bad_inputs_each_raise_identification_error():
    g = frame([("a", "A", "x"), ("b", "B", "x")])
    p = frame([("c", "A", "x"), ("d", "C", "x")])
    p["mated"] = [True, False]
    GalleryProbeSplit(g, p)                                           # fine
    bad = p.assign(mated=[True, True])
    with pytest.raises(IdentificationError, match="marked mated but its subject 'C' is not enrolled"):
        GalleryProbeSplit(g, bad)
    bad = p.assign(subject=["A", "B"], mated=[True, False])
    with pytest.raises(IdentificationError, match="marked non-mated but its subject 'B' is enrolled"):
        GalleryProbeSplit(g, bad)
    with pytest.raises(IdentificationError, match="gallery is empty"):
        GalleryProbeSplit(g.iloc[:0], p.assign(mated=False))
    with pytest.raises(IdentificationError, match="enrolled 2 times"):
        GalleryProbeSplit(pd.concat([g, g.iloc[:1]]), p)
    with pytest.raises(IdentificationError, match="same image bytes"):
        GalleryProbeSplit(g.assign(sha256=["s", "s"]), p)
    with pytest.raises(IdentificationError, match="also in the gallery"):
        GalleryProbeSplit(g, p.assign(sha256=["ha", "hd"]))
    with pytest.raises(IdentificationError, match="appears 2 times"):
        GalleryProbeSplit(g, pd.concat([p, p.iloc[:1]]))
    assert issubclass(IdentificationError, ValueError) and issubclass(IdentificationError, FaceAuditError)


def test_split_gallery_probes_rules_and_seed():
    rows = [(f"{s}_{i}", s, "x" if int(s[1:]) % 2 else "y") for s in [f"s{j}" for j in range(10)] for i in range(3)]
    df = frame(rows)
    a = split_gallery_probes(df, nonmated_fraction=0.3, seed=4, gallery_per_subject=2, stratify="group")
    assert a.n_gallery_subjects == 7 and len(a.gallery) == 14 and a.n_mated == 7 and a.n_nonmated == 9
    assert a.gallery.groupby("subject").size().eq(2).all()
    b = split_gallery_probes(df.sample(frac=1, random_state=3), nonmated_fraction=0.3, seed=4, gallery_per_subject=2,
                             stratify="group")  # row order does not matter
    assert set(a.gallery["sample_id"]) == set(b.gallery["sample_id"])
    assert set(a.probes["sample_id"]) == set(b.probes["sample_id"])
    c = split_gallery_probes(df, nonmated_fraction=0.3, seed=5, gallery_per_subject=2, stratify="group")
    assert set(c.probes.loc[~c.probes.mated, "subject"]) != set(a.probes.loc[~a.probes.mated, "subject"])
    capped = split_gallery_probes(df, nonmated_fraction=0.3, seed=4, max_probes_per_subject=1)
    assert capped.probes.groupby("subject").size().max() == 1
    with pytest.raises(IdentificationError, match="gallery is empty"):
        split_gallery_probes(df, nonmated_fraction=1.0)
    with pytest.raises(IdentificationError, match="nonmated_fraction"):
        split_gallery_probes(df, nonmated_fraction=1.5)


def test_enrolment_only_uses_acquired_images():
    df = frame([("a1", "A", "x"), ("a2", "A", "x"), ("a3", "A", "x"), ("b1", "B", "x")])
    df["status"] = ["no_face", "ok", "ok", "no_face"]
    s = split_gallery_probes(df, nonmated_fraction=0.0)
    assert s.gallery["sample_id"].tolist() == ["a2"]
    assert s.probes["sample_id"].tolist() == ["a1", "a3"]             # the failed image still searches (and fails)
    assert any("could be enrolled" in w for w in s.warnings)          # B had nothing to enrol


def test_london_half_and_lfw_singletons_presets():
    rows = []
    for j in range(8):
        rows += [(f"neutral/{j:03d}", f"{j:03d}", "x" if j < 4 else "y", "neutral"),
                 (f"smiling/{j:03d}", f"{j:03d}", "x" if j < 4 else "y", "smiling")]
    s = london_half_split(frame(rows), stratify="group")
    assert s.scenario == "london-half" and s.n_gallery_subjects == 4 and s.n_mated == 4 and s.n_nonmated == 4
    assert s.gallery["sample_id"].str.startswith("neutral").all() and s.probes["sample_id"].str.startswith("smiling").all()
    assert s.probes.loc[~s.probes.mated, "group"].value_counts().tolist() == [2, 2]   # stratified
    lfw = frame([(f"{p}/{i}", p, "x") for p, n in (("a", 3), ("b", 2), ("c", 1), ("d", 1), ("e", 5)) for i in range(n)])
    s = lfw_singletons_split(lfw)
    assert s.gallery["sample_id"].tolist() == ["a/0", "b/0", "e/0"]
    assert s.n_mated == 2 + 1 + 4 and set(s.probes.loc[~s.probes.mated, "subject"]) == {"c", "d"}
    s = lfw_singletons_split(lfw, mated_subjects=2, nonmated_subjects=1, max_probes_per_subject=2, seed=1)
    assert s.n_gallery_subjects == 2 and s.n_nonmated == 1 and s.probes.groupby("subject").size().max() <= 2


def test_cross_dataset_split_namespaces_ids_and_refuses_shared_images():
    g = frame([("a", "1", "x"), ("b", "2", "y")])
    p = frame([("c", "1", "x"), ("d", "9", "y")])
    s = cross_dataset_split(g.assign(dataset="x"), p)
    assert s.n_mated == 0 and s.n_nonmated == 2                       # different datasets: different people
    assert s.gallery["sample_id"].tolist() == ["gallery:a", "gallery:b"]
    s = cross_dataset_split(g, p, shared_subjects=True)
    assert s.probes["mated"].tolist() == [True, False]
    with pytest.raises(IdentificationError, match="in both the gallery dataset and the probe dataset"):
        cross_dataset_split(g, p.assign(sha256=["ha", "hz"]))


# ----------------------------------------------------------------------------------- search
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("tile", [1, 7, 64, None])
def test_exact_search_equals_brute_force(metric, tile):
    rng = np.random.default_rng(1)
    g = rng.normal(size=(300, 16)).astype(np.float32)
    g[50] = g[10]                                      # exact ties: the lower position comes first
    g[51] = g[10]
    p = np.vstack([rng.normal(size=(40, 16)), g[10:11] + 1e-3]).astype(np.float32)
    s = ExactSearch(metric=metric, tile=tile)
    ids = np.arange(1000, 1300)
    s.enrol(g, ids)
    hits = s.search(p, 9)
    ref = brute_force_search(p, g, 9, metric=metric)
    assert np.array_equal(hits.ids, ids[ref.ids])
    assert np.array_equal(hits.scores, ref.scores)
    last = hits.ids[-1].tolist()
    assert last[:3] == [1010, 1050, 1051]
    scores, ids_ = hits                                # unpacks like a tuple
    assert scores.shape == (41, 9) and ids_.dtype == np.int64


def test_exact_search_bad_input():
    s = ExactSearch()
    with pytest.raises(IdentificationError, match="gallery is empty"):
        s.search(np.ones((1, 3)), 1)
    s.enrol(np.eye(3), [0, 1, 2])
    with pytest.raises(IdentificationError, match="larger than the gallery"):
        s.search(np.ones((1, 3)), 4)
    with pytest.raises(IdentificationError, match="dimension"):
        s.search(np.ones((1, 4)), 1)
    with pytest.raises(IdentificationError, match="given 2 times"):
        s.enrol(np.eye(3), [0, 0, 1])
    with pytest.raises(IdentificationError, match="NaN"):
        s.enrol(np.full((2, 3), np.nan), [0, 1])


def test_subject_level_candidates_take_each_subjects_best_image():
    g = frame([("a1", "A", "x"), ("a2", "A", "x"), ("b1", "B", "x"), ("c1", "C", "x")])
    p = frame([("p", "A", "x")]).assign(mated=True)
    split = GalleryProbeSplit(g, p)
    vec = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    c = search_split(split, ExactSearch(), k=3, gallery_inputs=vec, probe_inputs=np.array([[0.95, 0.05]]))
    assert c.subject_names[c.subjects[0]].tolist() == ["A", "B", "C"]   # A once, with its best image
    assert c.entries[0].tolist()[1:] == [2, 3]
    with pytest.raises(IdentificationError, match="larger than the gallery"):
        search_split(split, ExactSearch(), k=4, gallery_inputs=vec, probe_inputs=np.array([[1.0, 0.0]]))


def test_a_search_backend_that_searches_on_its_own_side_plugs_in():
    class ListService(SearchBackend):
        """Searches 'images' (here: names looked up in a dict) and returns fewer than k when below its floor."""
        name, inputs, exact = "list-service", "images", True

        def __init__(self, vectors):
            self.vectors, self.gallery, self.ids = vectors, None, None

        @property
        def size(self):
            return 0 if self.ids is None else len(self.ids)

        def enrol(self, gallery, ids):
            self.gallery, self.ids = np.stack([self.vectors[x] for x in gallery]), np.asarray(ids)

        def search(self, probes, k):
            sc = np.stack([self.vectors[x] for x in probes]) @ self.gallery.T
            order = np.argsort(-sc, axis=1, kind="stable")[:, :k]
            s = np.take_along_axis(sc, order, axis=1)
            ids = np.where(s >= 0.0, self.ids[order], -1)         # the service drops negative scores
            return SearchHits(np.where(s >= 0.0, s, -np.inf), ids)

    split, vec = tiny_split()
    svc = ListService(vec)
    c = search_split(split, svc, k=3, gallery_inputs=split.gallery["sample_id"].tolist(),
                     probe_inputs=split.probes["sample_id"].tolist())
    ref = search_split(split, ExactSearch(), k=3, gallery_inputs=np.stack([vec[s] for s in split.gallery["sample_id"]]),
                       probe_inputs=np.stack([vec[s] for s in split.probes["sample_id"]]))
    keep = np.isfinite(c.scores)
    assert np.array_equal(c.subjects[keep], ref.subjects[keep]) and (~keep).any()
    th = choose_identification_thresholds(split, c, target_fpir=[0.5])
    t = analyse_identification(split, c, th, groupings=[("group",)], bootstrap_replicates=0)
    assert any("fewer than k candidates" in w for w in t.warnings)


def test_faiss_indexes_and_recall():
    faiss = pytest.importorskip("faiss")  # noqa: F841
    from audit.identification import FaissSearch

    rng = np.random.default_rng(0)
    g = rng.normal(size=(2000, 32)).astype(np.float32)
    p = (g[:100] + 0.3 * rng.normal(size=(100, 32))).astype(np.float32)
    exact = ExactSearch(metric="cosine")
    exact.enrol(g, np.arange(2000))
    e = exact.search(p, 10)
    flat = FaissSearch(index="flat", metric="cosine")
    flat.enrol(g, np.arange(2000))
    assert flat.exact and recall_at_k(flat.search(p, 10).ids, e.ids) == 1.0
    hnsw = FaissSearch(index="hnsw", metric="cosine", hnsw_m=16, ef_search=64)
    hnsw.enrol(g, np.arange(2000))
    h = hnsw.search(p, 10)
    assert not hnsw.exact and recall_at_k(h.ids, e.ids) > 0.8
    assert (h.ids[:, 0] == e.ids[:, 0]).mean() > 0.95                 # the mate is easy to find
    ivf = FaissSearch(index="ivf", metric="euclidean", nlist=16, nprobe=16)   # every cell visited: exact
    ivf.enrol(g, np.arange(2000))
    ex2 = ExactSearch(metric="euclidean")
    ex2.enrol(g, np.arange(2000))
    assert recall_at_k(ivf.search(p, 10).ids, ex2.search(p, 10).ids) == 1.0


def test_faiss_missing_names_the_extra(monkeypatch):
    from audit.identification import FaissSearch

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingDependencyError, match=r"face-audit\[faiss\]"):
        FaissSearch()


def test_recall_at_k_by_hand():
    assert recall_at_k(np.array([[1, 2], [3, 9]]), np.array([[2, 1], [3, 4]])) == 0.75
    assert recall_at_k(np.array([[5, -1]]), np.array([[5, -1]])) == 1.0


# ----------------------------------------------------------------------------------- analysis
def test_tiny_split_by_hand():
    split, vec = tiny_split()
    g = np.stack([vec[s] for s in split.gallery["sample_id"]])
    p = np.stack([vec[s] for s in split.probes["sample_id"]])
    c = search_split(split, ExactSearch(), k=3, gallery_inputs=g, probe_inputs=p)
    names = c.subject_names
    # pA (10 deg): A (10 away), B (50), C (110); pB (100): C (20), B (40), A (100); pC (170): C, B, A
    assert [names[r].tolist() for r in c.subjects[:3]] == [["A", "B", "C"], ["C", "B", "A"], ["C", "B", "A"]]
    # nX (30 deg): A and B both 30 degrees away: a tie, A (gallery position 0) first; nY (200): C (80), B (140), A (160)
    assert names[c.subjects[3]].tolist() == ["A", "B", "C"] and c.scores[3, 0] == pytest.approx(c.scores[3, 1])
    cos = lambda d: math.cos(math.radians(d))  # noqa: E731
    assert c.scores[3, 0] == pytest.approx(cos(30), abs=1e-6) and c.scores[4, 0] == pytest.approx(cos(80), abs=1e-6)
    th = choose_identification_thresholds(split, c, target_fpir=[0.5], fixed_native=[c.scores[3, 0]], rank=1)
    t50, t30 = th
    # non-mated top scores: cos 30 = .866 and cos 80 = .174; FPIR <= .5 allows 1 of 2: just above .174
    assert c.scores[4, 0] < t50.value < c.scores[4, 0] + 1e-12
    assert (t50.false_positives, t50.nonmated_searches, t50.achieved_fpir) == (1, 2, 0.5)
    # FNIR at rank 1: pB's mate is at rank 2 -> miss; pA (cos 10) and pC (cos 10) found
    assert (t50.misses, t50.mated_searches) == (1, 3)
    # at exactly cos 30 the tie counts as returned: nX is still a false positive
    assert t30.false_positives == 1
    tables = analyse_identification(split, c, th, groupings=[("group",)], rank=1, bootstrap_replicates=0)
    r = tables.rates.set_index(["grouping", "group", "threshold_name", "metric"])
    assert r.loc[("group", "g2", t50.name, "fpir"), ["errors", "trials"]].tolist() == [1, 1]    # nX
    assert r.loc[("group", "g1", t50.name, "fpir"), ["errors", "trials"]].tolist() == [0, 1]    # nY
    assert r.loc[("group", "g2", t50.name, "fnir"), ["errors", "trials"]].tolist() == [1, 1]    # pB
    assert r.loc[("group", "g1", t50.name, "fnir"), ["errors", "trials"]].tolist() == [0, 2]
    # ACLU-style: probes with a candidate of another identity >= t50 (just above cos 80): pA (B at cos 50),
    # pB (C at cos 20) and nX; not pC (B at cos 110 < 0) nor nY (its top, cos 80, is just below t50).
    fm = tables.false_matches
    fm = fm[(fm.grouping == "group") & (fm.threshold_name == t50.name) & (fm.probe_set == "all")].set_index("group")
    assert fm.loc["g1", ["probes", "with_false"]].tolist() == [3, 1]      # pA
    assert fm.loc["g2", ["probes", "with_false"]].tolist() == [2, 2]      # pB, nX
    assert fm.loc["g2", "binom_p"] == pytest.approx(stats.binomtest(2, 3, 2 / 5, alternative="greater").pvalue)
    assert fm.loc["g2", "fisher_p"] == pytest.approx(stats.fisher_exact([[2, 0], [1, 2]], alternative="greater").pvalue)
    # cross-group FPIR: nX (g2) returned A (g1) on top
    cf = tables.cross_fpir
    cf = cf[(cf.grouping == "group") & (cf.threshold_name == t50.name)].set_index(["probe_group", "candidate_group"])
    assert cf.loc[("g2", "g1"), ["false_positives", "searches"]].tolist() == [1, 1]
    assert cf.loc[("g2", "g2"), "false_positives"] == 0
    cmc = tables.cmc[(tables.cmc.grouping == "all")]
    assert cmc["hits"].tolist() == [2, 3, 3]


def test_failed_probes_excluded_or_counted_as_misses():
    split, vec = tiny_split()
    g = np.stack([vec[s] for s in split.gallery["sample_id"]])
    searched = np.array([False, True, True, True, True])               # pA failed to acquire
    p = np.stack([vec[s] for s in split.probes["sample_id"][searched]])
    c = search_split(split, ExactSearch(), k=3, gallery_inputs=g, probe_inputs=p, searched=searched)
    for rule, misses, mated in (("exclude", 1, 2), ("miss", 2, 3)):
        (t,) = choose_identification_thresholds(split, c, target_fpir=[0.5], failed_probes=rule)
        assert (t.misses, t.mated_searches) == (misses, mated)


def test_invariance_to_relabelling_groups():
    a = tiny_result()
    split, vec = tiny_split()
    relabel = {"g1": "zz", "g2": "aa"}
    split2 = GalleryProbeSplit(split.gallery.assign(group=split.gallery.group.map(relabel)),
                               split.probes.assign(group=split.probes.group.map(relabel)), ("group",))
    g = np.stack([vec[s] for s in split2.gallery["sample_id"]])
    p = np.stack([vec[s] for s in split2.probes["sample_id"]])
    c = search_split(split2, ExactSearch(), k=3, gallery_inputs=g, probe_inputs=p)
    th = choose_identification_thresholds(split2, c, target_fpir=[0.5], fixed_native=[0.9])
    b = analyse_identification(split2, c, th, groupings=[("group",)], bootstrap_replicates=200)
    ra = a.rates.assign(group=a.rates.group.map(lambda x: relabel.get(x, x))).sort_values(["grouping", "group", "threshold_name", "metric"])
    rb = b.rates.sort_values(["grouping", "group", "threshold_name", "metric"])
    cols = ["grouping", "group", "threshold_name", "metric", "errors", "trials"]
    assert ra[cols].reset_index(drop=True).equals(rb[cols].reset_index(drop=True))


def test_interval_method_for_fta_fpir_fnir_and_cmc():
    from audit.errors import MetricError
    from audit.metrics import clopper_pearson_interval

    split, vec = tiny_split()
    g = np.stack([vec[s] for s in split.gallery["sample_id"]])
    p = np.stack([vec[s] for s in split.probes["sample_id"]])
    c = search_split(split, ExactSearch(), k=3, gallery_inputs=g, probe_inputs=p)
    th = choose_identification_thresholds(split, c, target_fpir=[0.5], fixed_native=[0.9])
    w = analyse_identification(split, c, th, groupings=[("group",)], bootstrap_replicates=0)
    cp = analyse_identification(split, c, th, groupings=[("group",)], bootstrap_replicates=0, interval="clopper-pearson")
    for name, e, n in (("rates", "errors", "trials"), ("fta", "failures", "attempts"), ("cmc", "hits", "searches")):
        a, b = getattr(w, name), getattr(cp, name)
        assert set(a.ci_method) == {"wilson"} and set(b.ci_method) == {"clopper-pearson"}
        same = [col for col in a.columns if col not in ("ci_low", "ci_high", "ci_method")]
        pd.testing.assert_frame_equal(a[same], b[same])
        for r in b.itertuples(index=False):
            ci = clopper_pearson_interval(int(getattr(r, e)), int(getattr(r, n)))
            assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), abs=0, nan_ok=True)
        has = a[a[n] > 0]
        # at most 5 searches per rate here: the exact interval is the wider one and holds the rate
        assert ((b.loc[has.index, "ci_low"] <= has.value) & (has.value <= b.loc[has.index, "ci_high"])).all()
        assert ((b.loc[has.index, "ci_high"] - b.loc[has.index, "ci_low"]) > (has.ci_high - has.ci_low)).all()
    with pytest.raises(MetricError, match="interval must be one of"):
        analyse_identification(split, c, th, groupings=[("group",)], bootstrap_replicates=0, interval="exact")


def test_config_run_interval_is_shared_with_identification(tmp_path):
    raw = _cfg()
    raw["run"] = {"interval": "clopper_pearson"}
    assert identification_config_from_dict(raw, path=tmp_path / "c.toml").base.run.interval == "clopper-pearson"
    assert identification_config_from_dict(_cfg(), path=tmp_path / "c.toml").base.run.interval == "wilson"
    raw["run"] = {"interval": "agresti-coull"}
    with pytest.raises(ConfigError, match=re.escape("c.toml: field 'run.interval'")):
        identification_config_from_dict(raw, path=tmp_path / "c.toml")


# ----------------------------------------------------------------------------------- result, report, gate
def test_result_json_round_trip_and_tables(tmp_path):
    r = tiny_result()
    path = tmp_path / "results.json"
    r.to_json(path)
    data = json.loads(path.read_text())
    assert data["result_kind"] == "identification"
    back = IdentificationResult.from_json(path)
    assert back.thresholds == r.thresholds and (back.k, back.rank) == (3, 1)
    for name in ID_TABLE_COLUMNS:
        pd.testing.assert_frame_equal(getattr(back, name).reset_index(drop=True), getattr(r, name).reset_index(drop=True),
                                      check_dtype=False)
    assert isinstance(read_result(path), IdentificationResult)
    with pytest.raises(ResultsError, match="not a 1:1 audit result"):
        AuditResult.from_json(path)
    london = REPO / "reports" / "london-dlib" / "results.json"
    assert isinstance(read_result(london), AuditResult)
    with pytest.raises(ResultsError, match="not an identification result"):
        IdentificationResult.from_json(london)
    files = r.write_tables(tmp_path / "tables")
    assert {f.name for f in files} == {f"{n}.csv" for n in ID_TABLE_COLUMNS} | {"thresholds.csv"}
    assert "<h4>Tiny &lt;search&gt;" in r._repr_html_()
    with pytest.raises(ResultsError, match="lacks the columns"):
        IdentificationResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "rates": pd.DataFrame({"x": []})})


def test_report_renders_self_contained_and_escaped(tmp_path):
    from audit.report import write_any_report
    from audit.report.identification import render_identification_html

    r = tiny_result()
    html = render_identification_html(r)
    assert html == render_identification_html(IdentificationResult.from_dict(json.loads(r.to_json())))  # deterministic
    assert "<script" not in html.lower() and "Tiny &lt;search&gt; &amp; &#34;friends&#34;" in html
    assert "default-src 'none'" in html
    # nothing is loaded from elsewhere; the only relative links are to the files written beside the page
    assert not re.search(r'(src|href)="(?!data:|#|https?://|results\.json"|tables/[a-z_]+\.csv")', html)
    assert 'href="results.json"' in html and 'href="tables/rates.csv"' in html
    assert not re.search(r'src="https?://', html)
    imgs = re.findall(r"<img [^>]*>", html)
    assert imgs and all('alt="' in i and 'alt=""' not in i for i in imgs)
    for needle in ("Who is falsely matched", "Share of false matches", "Binomial p", "Cross-group FPIR", "CMC",
                   "Who the false candidates are", "Limitations", "Provenance"):
        assert needle in html
    path = write_any_report(r, tmp_path)
    assert path.read_text(encoding="utf-8") == html
    # the interval method is named as the result's tables say
    assert "95% Wilson intervals" in html and "Clopper" not in html
    cp = IdentificationResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                 **{n: getattr(r, n).assign(ci_method="clopper-pearson") for n in ("rates", "fta", "cmc")}})
    cp_html = render_identification_html(cp)
    assert "95% Clopper–Pearson (exact) intervals" in cp_html and "Wilson" not in cp_html


def test_gate_reads_fpir_and_fnir_of_identification_results(tmp_path):
    r = tiny_result()
    path = tmp_path / "results.json"
    r.to_json(path)
    name = r.thresholds[0].name
    policy = policy_from_dict({"rule": [
        {"name": "fpir", "kind": "fpir", "grouping": "group", "threshold": name, "max": 0.5},
        {"name": "fnir", "kind": "fnir", "grouping": "*", "threshold": name, "max": 0.5},
        {"name": "fta", "kind": "fta", "grouping": "*", "max": 0.0},
    ]})
    rep = evaluate(policy, read_result(path))
    by = rep.checks.set_index(["rule", "group"])
    assert by.loc[("fpir", "g2"), "status"] == "fail" and by.loc[("fpir", "g1"), "status"] == "pass"
    assert by.loc[("fnir", "g2"), "status"] == "fail" and not rep.passed
    assert (rep.checks.loc[rep.checks.rule == "fta", "status"] == "pass").all()
    with pytest.raises(GateError, match="reads a 1:N identification result"):
        evaluate(policy, AuditResult.from_json(REPO / "reports" / "london-dlib" / "results.json"))
    with pytest.raises(GateError, match="not a metric"):
        evaluate(policy_from_dict({"rule": [{"name": "r", "kind": "rate", "grouping": "*", "threshold": name,
                                             "metric": "fmr", "max": 1}]}), r)


# ----------------------------------------------------------------------------------- config
def _cfg(**ident):
    raw = {"title": "t", "dataset": {"name": "london"}, "backend": {"name": "dlib"},
           "identification": {"scenario": "london-half", **ident}}
    return raw


def test_config_parses_and_errors_name_file_and_field(tmp_path):
    cfg = identification_config_from_dict(_cfg(k=5, rank=2, target_fpir=[1e-3, 1e-2], fixed=[0.5]), path=tmp_path / "c.toml")
    s = cfg.identification
    assert (s.k, s.rank, s.target_fpir, s.fixed, s.search) == (5, 2, (1e-2, 1e-3), (0.5,), "exact")
    for ident, field in (({"k": 0}, "identification.k"), ({"rank": 11}, "identification.rank"),
                         ({"scenario": "mugshots"}, "identification.scenario"), ({"colour": 1}, "identification.colour"),
                         ({"target_fpir": [2]}, "identification.target_fpir"), ({"search": "annoy"}, "identification.search"),
                         ({"failed_probes": "skip"}, "identification.failed_probes"),
                         ({"scenario": "cross-dataset"}, "identification.probes"),
                         ({"enrol_rule": 3}, "identification.enrol_rule")):
        with pytest.raises(ConfigError, match=re.escape(f"c.toml: field '{field}'")):
            identification_config_from_dict(_cfg(**ident), path=tmp_path / "c.toml")
    raw = _cfg()
    raw["thresholds"] = {"target_fmr": [1e-3]}
    with pytest.raises(ConfigError, match="field 'thresholds'"):
        identification_config_from_dict(raw, path=tmp_path / "c.toml")
    raw = _cfg()
    del raw["identification"]
    with pytest.raises(ConfigError, match="field 'identification'"):
        identification_config_from_dict(raw, path=tmp_path / "c.toml")


def test_example_configs_parse():
    from audit.identification import load_identification_config

    for name in ("london-identification-dlib.toml", "lfw-identification-dlib.toml"):
        cfg = load_identification_config(REPO / "examples" / name)
        assert cfg.identification.k >= 1 and cfg.base.backend.name == "dlib"


# ----------------------------------------------------------------------------------- end to end
def _london_config(tmp_path, **ident):
    return {
        "title": "London 1:N (test)",
        "dataset": {"name": "london", "groupings": [["ethnicity"], ["gender"]], "subjects": 12},
        "backend": {"name": "dlib", "options": {"upsample": 1, "multiple_faces": "largest"}},
        "identification": {"scenario": "london-half", "k": 3, "target_fpir": [0.2], "bootstrap_replicates": 100, **ident},
        "run": {"seed": 0, "progress": False, "cache_dir": str(tmp_path / "cache")},
        "output": {"dir": str(tmp_path / "out")},
    }


def test_end_to_end_with_a_fake_backend(tmp_path, shared_dir):
    cfg = _london_config(tmp_path)
    run = run_identification(cfg, data_dir=shared_dir, workers=1, backend=QuadrantColourBackend())
    res = run.result
    assert run.embed.computed == 18                     # 6 enrolled x 2 images + 6 smiling non-mated probes
    assert res.provenance["protocol"]["gallery_subjects"] == 6 and res.provenance["protocol"]["nonmated_probes"] == 6
    assert (run.output_dir / "index.html").is_file() and (run.output_dir / "tables" / "false_matches.csv").is_file()
    again = run_identification(cfg, data_dir=shared_dir, workers=1, backend=QuadrantColourBackend())
    assert again.embed.computed == 0
    cols = ["grouping", "group", "threshold_name", "metric", "errors", "trials"]
    assert again.result.rates[cols].equals(res.rates[cols])
    # [run] interval reaches the 1:N rates and the provenance (the embeddings come from the cache)
    assert res.provenance["protocol"]["interval"] == "wilson" and set(res.rates.ci_method) == {"wilson"}
    cp = run_identification({**cfg, "run": {**cfg["run"], "interval": "clopper-pearson"}}, data_dir=shared_dir, workers=1,
                            backend=QuadrantColourBackend(), write=False).result
    assert cp.provenance["protocol"]["interval"] == "clopper-pearson"
    assert {*cp.rates.ci_method, *cp.fta.ci_method, *cp.cmc.ci_method} == {"clopper-pearson"}
    assert cp.rates[cols].equals(res.rates[cols])
    try:
        import faiss  # noqa: F401
    except ImportError:
        return
    cfg["identification"]["search"] = "faiss-hnsw"        # approximate: recall@k against exact search is recorded
    approx = run_identification(cfg, data_dir=shared_dir, workers=1, backend=QuadrantColourBackend(), write=False)
    search = approx.result.provenance["search"]
    assert search["index"] == "hnsw" and search["exact"] is False
    assert search["recall_at_k"] == 1.0 and search["recall_probes"] == 12   # 6 gallery subjects: HNSW is exact here


@pytest.mark.slow
def test_london_subset_end_to_end_with_dlib(tmp_path, shared_dir):
    pytest.importorskip("dlib")
    cfg = _london_config(tmp_path, fixed=[0.6], backend_default=False, search="exact")
    run = run_identification(cfg, data_dir=shared_dir, workers=2)
    res = run.result
    assert res.provenance["backend"]["backend"] == "dlib" and res.provenance["backend"]["metric"] == "euclidean"
    assert [t.name for t in res.thresholds] == ["FPIR=2e-1", "fixed 0.6"]
    t = res.threshold("fixed 0.6")
    assert t.value == -0.6 and t.native_value == 0.6
    # dlib finds every London mate at rank 1 (the 1:1 audit has FNMR 0 at 0.6)
    assert t.misses == 0 and t.mated_searches == 6
    assert res.cmc[(res.cmc.grouping == "all") & (res.cmc["rank"] == 1)]["value"].iloc[0] == 1.0
    assert set(res.rates["metric"]) == {"fpir", "fnir"} and (res.rates.errors <= res.rates.trials).all()
    fm = res.false_matches[(res.false_matches.grouping == "all") & (res.false_matches.probe_set == "nonmated")]
    assert fm.set_index("threshold_name").loc["fixed 0.6", "with_false"] == t.false_positives
    html = (run.output_dir / "index.html").read_text(encoding="utf-8")
    assert "London 1:N (test)" in html and "<script" not in html


def test_committed_identification_reports_load_and_the_example_policy_fails(tmp_path, capsys):
    from audit.gate import gate_main

    lon = read_result(REPO / "reports" / "london-identification-dlib" / "results.json")
    assert isinstance(lon, IdentificationResult) and lon.provenance["protocol"]["gallery_subjects"] == 51
    assert set(lon.rates.loc[lon.rates.grouping == "ethnicity", "group"]) == {
        "White", "Black", "East Asian", "West Asian", "East Asian/White"}
    lfw = read_result(REPO / "reports" / "lfw-identification-dlib" / "results.json")
    assert lfw.provenance["protocol"]["scenario"] == "lfw-singletons" and set(lfw.groupings) == {"gender"}
    policy = REPO / "examples" / "policies" / "london-identification.toml"
    assert gate_main([str(policy), str(REPO / "reports" / "london-identification-dlib" / "results.json")]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_cross_dataset_end_to_end_with_a_fake_backend(tmp_path, shared_dir):
    if not (shared_dir / "lfw" / "pairs.txt").is_file():
        pytest.skip("LFW is not in ../shared/datasets")
    cfg = {
        "title": "London probes against an LFW gallery (test)",
        "dataset": {"name": "lfw", "groupings": [["gender"]], "subjects": 5},
        "backend": {"name": "quadrant-colour"},
        "identification": {"scenario": "cross-dataset", "k": 2, "target_fpir": [0.5], "backend_default": False,
                           "bootstrap_replicates": 0, "probe_rule": {"expression": "smiling"},
                           "probes": {"name": "london", "subjects": 4}},
        "run": {"seed": 0, "progress": False, "cache_dir": str(tmp_path / "cache")},
    }
    run = run_identification(cfg, data_dir=shared_dir, workers=1, backend=QuadrantColourBackend(), write=False)
    res = run.result
    prot = res.provenance["protocol"]
    assert (prot["gallery_subjects"], prot["mated_probes"], prot["nonmated_probes"]) == (5, 0, 4)
    assert run.embed.computed == 5 + 4                    # one enrolled image per LFW identity, one smiling photo each
    assert set(res.samples["dataset"]) == {"lfw", "london"}
    assert res.samples.loc[res.samples.role == "gallery", "sample_id"].str.startswith("lfw:").all()
    (t,) = res.thresholds
    assert t.nonmated_searches == 4 and t.achieved_fpir <= 0.5


def test_collection_search_adapts_a_server_side_collection():
    from audit.backends.base import FaceStatus
    from audit.backends.scoring import CollectionSearchBackend, GalleryIndex, IndexResult, SearchMatch, SearchResult
    from audit.identification import CollectionSearch

    split, vec = tiny_split()
    path = {s: f"/img/{s}.jpg" for s in vec}

    class Stub(CollectionSearchBackend):
        """A collection in memory: 0-100 similarity, cannot index gC, cannot search nY."""
        name = "stub"

        def create_collection(self):
            return "c1"

        def index_faces(self, gallery, *, collection_id=None):
            res = [IndexResult(p, FaceStatus.NO_FACE, f"x-{i}") if p.endswith("gC.jpg")
                   else IndexResult(p, FaceStatus.OK, f"x-{i}", face_id=f"f{i}") for i, p in enumerate(gallery)]
            self.gallery = {r.external_image_id: vec[r.path.split("/")[-1][:-4]] for r in res if r.face_id}
            return GalleryIndex("c1", tuple(res))

        def iter_search(self, probes, *, collection_id, max_faces=None, start=0):
            for i, p in enumerate(probes):
                name = p.split("/")[-1][:-4]
                if name == "nY":
                    yield SearchResult(i, p, FaceStatus.NO_FACE)
                    continue
                ms = sorted((SearchMatch(e, e, 50 * (1 + float(vec[name] @ g))) for e, g in self.gallery.items()),
                            key=lambda m: -m.similarity)
                yield SearchResult(i, p, FaceStatus.OK, tuple(ms[:max_faces]))

        def delete_collection(self, collection_id, *, force=False):
            pass

        def cleanup(self):
            return []

    cs = CollectionSearch(Stub())
    c = search_split(split, cs, k=3, gallery_inputs=[path[s] for s in split.gallery["sample_id"]],
                     probe_inputs=[path[s] for s in split.probes["sample_id"]])
    names = c.subject_names
    assert names[c.subjects[0, :2]].tolist() == ["A", "B"] and c.subjects[0, 2] == -1     # C was never indexed
    assert c.scores[0, 0] == pytest.approx(50 * (1 + math.cos(math.radians(10))))
    assert (c.subjects[4] == -1).all()                                                   # nY could not be searched
    assert cs.describe()["gallery_not_indexed"] == 1 and cs.describe()["probes_not_searched"] == 1
    with pytest.raises(IdentificationError, match="CollectionSearchBackend"):
        CollectionSearch(object())
