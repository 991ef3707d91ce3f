"""The people-level bootstrap: replicates equal an explicit resample-and-recount, and the point
estimate's counts equal the cell counts, on every impostor protocol."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from audit.verification.protocol import PairScores
from audit.engine.scan import score_tiles
from audit.errors import MetricError
from audit.metrics.people import PeopleCounts, people_bootstrap, people_weights
from audit.verification.analysis import cell_data_from_pairs, cell_data_from_scan


@pytest.fixture(params=["compiled", "numpy"])
def loops(request, monkeypatch):
    """Run a test on the compiled loops (numba) and on the numpy path: both must give the same
    replicates."""
    from audit.metrics import _people_fused

    if request.param == "compiled":
        if not _people_fused.available():
            pytest.skip("numba is not installed (the `fast` extra)")
    else:
        monkeypatch.setattr(_people_fused, "_KERNELS", None)
    return request.param


def _dataset(seed=3, people=9, cells=3):
    """People with 1-3 images; an image's cell is usually its person's, sometimes another (an
    image-level label such as an age band)."""
    rng = np.random.default_rng(seed)
    subj, cell = [], []
    for p in range(people):
        home = p % cells
        for _ in range(rng.integers(1, 4)):
            subj.append(p)
            cell.append(home if rng.random() < 0.8 else (home + 1) % cells)
    subj, cell = np.array(subj), np.array(cell)
    emb = rng.normal(size=(subj.size, 8)) + 1.5 * rng.normal(size=(people, 8))[subj]
    return subj, cell, emb


def _all_pairs(subj, emb):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.triu_indices(subj.size, 1)
    s = np.sum(e[i] * e[j], axis=1)
    mated = subj[i] == subj[j]
    return PairScores(s[mated], i[mated], j[mated], s[~mated], i[~mated], j[~mated])


def _explicit(subj, cell, pairs, w, mapping, g, th):
    """Draw person i w_i times, rebuild every pair of the resampled population and count."""
    fm = np.zeros((g + 1, th.size))
    imp = np.zeros(g + 1)
    fnm = np.zeros((g + 1, th.size))
    mated = np.zeros(g + 1)
    for a, b, s in zip(pairs.impostor_a, pairs.impostor_b, pairs.impostor_score):
        copies = w[subj[a]] * w[subj[b]]  # every copy of one person meets every copy of the other
        ga, gb = mapping[cell[a]], mapping[cell[b]]
        for col in ([ga] if ga == gb else []) + [g]:
            imp[col] += copies
            fm[col] += copies * (s >= th)
    for a, s in zip(pairs.mated_a, pairs.mated_score):
        copies = w[subj[a]]  # a copy's own mated pairs; copies of one person are not two people
        for col in (mapping[cell[a]], g):
            mated[col] += copies
            fnm[col] += copies * (s < th)
    return fm, imp, fnm, mated


def test_replicates_equal_an_explicit_resample_and_recount(loops):
    subj, cell, emb = _dataset()
    pairs = _all_pairs(subj, emb)
    th = np.array([0.1, 0.3, 0.6])
    data = cell_data_from_pairs(pairs, cell, 3, th, subjects=subj)
    for mapping, g in ((np.array([0, 1, 2]), 3), (np.array([0, 1, 0]), 2), (np.zeros(3, np.int64), 1)):
        rep = people_bootstrap(data.people, mapping, g, n_replicates=12, seed=7)
        w_all = people_weights(rep.strata, g, n_replicates=12, seed=7)
        for b in range(12):
            fm, imp, fnm, mated = _explicit(subj, cell, pairs, w_all[b], mapping, g, th)
            np.testing.assert_allclose(rep.fm[b], fm)
            np.testing.assert_allclose(rep.imp[b], imp)
            np.testing.assert_allclose(rep.fnm[b], fnm)
            np.testing.assert_allclose(rep.mated[b], mated)
        # the point estimate is the replicate with every weight 1
        fm, imp, fnm, mated = _explicit(subj, cell, pairs, np.ones(subj.max() + 1), mapping, g, th)
        np.testing.assert_allclose(rep.point_fm, fm)
        np.testing.assert_allclose(rep.point_imp, imp)
        np.testing.assert_allclose(rep.point_fnm, fnm)


def test_a_person_drawn_twice_is_not_two_people():
    # two people, one image each, one impostor pair: a replicate drawing person 0 twice has no pair
    c = PeopleCounts(np.array([0.0]), np.zeros(2, np.int64), np.ones((2, 1), np.int64), "all",
                     np.array([0]), np.array([1]), np.array([0]), np.array([0]), np.array([[1]]),
                     *(np.zeros(0, np.int64),) * 3, np.zeros((0, 1), np.int64))
    rep = people_bootstrap(c, np.array([0]), 1, n_replicates=200, seed=1)
    w = people_weights(rep.strata, 1, n_replicates=200, seed=1)
    both = (w[:, 0] == 1) & (w[:, 1] == 1)
    assert both.any() and (~both).any()
    np.testing.assert_array_equal(rep.imp[:, 0], np.where(both, 1.0, 0.0))
    assert np.all(np.isnan(rep.fmr[~both, 0, 0]))
    np.testing.assert_array_equal(rep.fmr[both, 0, 0], 1.0)


@pytest.mark.parametrize("mode", ["all", "same_group", "two_sided"])
def test_engine_counts_equal_the_listed_pairs(mode, loops):
    """The closed-form trials of a scan equal the per-pair counts of the same pairs listed."""
    subj, cell, emb = _dataset(seed=5, people=14)
    th = np.array([0.05, 0.4])
    sides = None
    if mode == "two_sided":
        sides = (np.arange(subj.size) % 2).astype(np.int64)
    scan = score_tiles(emb, subj, cell, n_groups=3, max_fmr=0.5, impostors="same_group" if mode == "same_group" else "all",
                       sides=sides, tile=16)
    counts = scan.counts_at(th)
    people = scan.people_counts(th)
    n_codes = people.n_cells
    mapping = np.tile(np.array([0, 1, 2]), n_codes // 3)
    rep = people_bootstrap(people, mapping, 3, n_replicates=0)
    # point estimate equals the engine's counts, per group and for the population
    same_fm = np.stack([counts.false_matches[:, c, c] for c in range(counts.false_matches.shape[1])], axis=1)
    co = counts.coarsen(mapping) if n_codes != 3 else counts
    diag_fm = np.stack([co.false_matches[:, c, c] for c in range(3)], axis=1)
    np.testing.assert_array_equal(rep.point_fm[:3].T, diag_fm)
    np.testing.assert_array_equal(rep.point_imp[:3], np.diag(co.impostors))
    np.testing.assert_array_equal(rep.point_fm[3], counts.false_matches_total)
    assert rep.point_imp[3] == counts.impostors_total
    np.testing.assert_array_equal(rep.point_fnm[:3].T, co.false_non_matches)
    np.testing.assert_array_equal(rep.point_mated[:3], co.mated)
    assert same_fm.shape[0] == th.size
    # the same replicates from a scan and from the pairs listed (materialised)
    data = cell_data_from_scan(scan, counts)
    assert data.people is not None
    rep_scan = people_bootstrap(data.people, mapping, 3, n_replicates=20, seed=4)
    listed = _listed_like(scan, people)
    rep_list = people_bootstrap(listed, mapping, 3, n_replicates=20, seed=4)
    np.testing.assert_allclose(rep_scan.imp, rep_list.imp)
    np.testing.assert_allclose(rep_scan.fm, rep_list.fm)


def _listed_like(scan, people):
    """The scan's impostor pairs enumerated (naively) as a 'listed' PeopleCounts."""
    geo = scan._geo
    n = geo.subj.size
    i, j = np.triu_indices(n, 1)
    keep = geo.subj[i] != geo.subj[j]
    if people.impostor_mode == "same_cell":
        keep &= geo.grp[i] == geo.grp[j]
    if people.impostor_mode == "two_sided":
        half = people.n_cells // 2
        keep &= (geo.grp[i] >= half) != (geo.grp[j] >= half)
    i, j = i[keep], j[keep]
    a, b, ca, cb, n_ = PeopleCounts.aggregate_pairs(geo.subj[i], geo.subj[j], geo.grp[i], geo.grp[j], np.ones(i.size, np.int64))
    return PeopleCounts(people.thresholds, people.person_first_cell, people.images, "listed", people.fm_a, people.fm_b,
                        people.fm_ca, people.fm_cb, people.fm_counts, people.mated_person, people.mated_cell, people.mated_n,
                        people.mated_fnm, imp_a=a, imp_b=b, imp_ca=ca, imp_cb=cb, imp_n=n_[:, 0])


def test_weights_do_not_depend_on_chunking_and_keep_strata_sizes():
    strata = np.array([0, 0, 0, 1, 1, 2])
    w = people_weights(strata, 3, n_replicates=50, seed=9)
    for g, size in ((0, 3), (1, 2), (2, 1)):
        np.testing.assert_array_equal(w[:, strata == g].sum(axis=1), size)
    subj, cell, emb = _dataset()
    data = cell_data_from_pairs(_all_pairs(subj, emb), cell, 3, [0.2], subjects=subj)
    import audit.metrics.people as people_mod
    whole = people_bootstrap(data.people, np.arange(3), 3, n_replicates=30, seed=2)
    old = people_mod._CHUNK_ELEMS
    people_mod._CHUNK_ELEMS = 1  # one replicate per chunk
    try:
        chunked = people_bootstrap(data.people, np.arange(3), 3, n_replicates=30, seed=2)
    finally:
        people_mod._CHUNK_ELEMS = old
    np.testing.assert_array_equal(whole.fm, chunked.fm)
    np.testing.assert_array_equal(whole.imp, chunked.imp)


def test_self_pairs_are_refused():
    with pytest.raises(MetricError, match="themself"):
        PeopleCounts(np.array([0.0]), np.zeros(1, np.int64), np.ones((1, 1), np.int64), "all",
                     np.array([0]), np.array([0]), np.array([0]), np.array([0]), np.array([[1]]),
                     *(np.zeros(0, np.int64),) * 3, np.zeros((0, 1), np.int64))


def test_aggregate_pairs_sums_unordered_pairs():
    a, b, ca, cb, n = PeopleCounts.aggregate_pairs([2, 0, 0], [0, 2, 2], [1, 0, 0], [0, 1, 1], [1, 2, 3])
    assert (a.tolist(), b.tolist(), ca.tolist(), cb.tolist(), n[:, 0].tolist()) == ([0], [2], [0], [1], [6])
    assert list(itertools.chain(n.shape)) == [1, 1]


def test_operating_point_replicates_re_estimate_the_threshold_in_each_resample(loops):
    """A threshold set at a target FMR is found anew in each resample: from every impostor score
    repeated w_a * w_b times, as threshold_at_fmr would on the resampled population."""
    from audit.metrics import threshold_at_fmr

    subj, cell, emb = _dataset(seed=11, people=12)
    pairs = _all_pairs(subj, emb)
    target = 0.05
    t0 = threshold_at_fmr(pairs.impostor_score, target)
    data = cell_data_from_pairs(pairs, cell, 3, [t0, 0.9], subjects=subj)
    mapping = np.array([0, 1, 2])
    rep = people_bootstrap(data.people, mapping, 3, n_replicates=15, seed=3, targets=[target, None])
    assert np.isnan(rep.op_fm[:, :, 1]).all()  # a given threshold has no operating point
    w_all = people_weights(rep.strata, 3, n_replicates=15, seed=3)
    for b in range(15):
        w = w_all[b]
        copies = (w[subj[pairs.impostor_a]] * w[subj[pairs.impostor_b]]).astype(int)
        if copies.sum() == 0:
            continue
        t_b = threshold_at_fmr(np.repeat(pairs.impostor_score, copies), target)
        assert rep.op_threshold[b, 0] == pytest.approx(t_b, abs=0, rel=1e-12) or (
            np.sum(copies * (pairs.impostor_score >= rep.op_threshold[b, 0])) == np.sum(copies * (pairs.impostor_score >= t_b)))
        fm, _, fnm, _ = _explicit(subj, cell, pairs, w, mapping, 3, np.array([t_b]))
        np.testing.assert_allclose(rep.op_fm[b, :, 0], fm[:, 0])
        np.testing.assert_allclose(rep.op_fnm[b, :, 0], fnm[:, 0])
    # with every weight 1 it is the point estimate's threshold
    ones = people_bootstrap(data.people, mapping, 3, n_replicates=0, targets=[target, None])
    np.testing.assert_allclose(ones.point_fm[:, 0], _explicit(subj, cell, pairs, np.ones(12), mapping, 3, np.array([t0]))[0][:, 0])


def test_compiled_and_numpy_loops_give_identical_replicates(monkeypatch):
    """On a larger dataset with tied scores, cross-group pairs, several thresholds, replicate
    chunks and a tail too short for some resamples, the compiled loops reproduce the numpy path's
    replicates exactly (both do exact integer arithmetic in float64)."""
    from audit.metrics import _people_fused, threshold_at_fmr

    if not _people_fused.available():
        pytest.skip("numba is not installed (the `fast` extra)")
    subj, cell, emb = _dataset(seed=21, people=60, cells=4)
    pairs = _all_pairs(subj, emb)
    pairs = PairScores(np.round(pairs.mated_score, 2), pairs.mated_a, pairs.mated_b,
                       np.round(pairs.impostor_score, 2), pairs.impostor_a, pairs.impostor_b)  # many ties
    targets = [0.02, 0.1, None]
    th = [threshold_at_fmr(pairs.impostor_score, t) for t in targets[:2]] + [0.5]
    data = cell_data_from_pairs(pairs, cell, 4, th, subjects=subj)
    people = data.people
    depth = int(np.sum(pairs.impostor_score >= th[0])) + 5  # enough for some resamples at 0.02, not for all
    short = people.__class__(**{**people.__dict__, **{k: getattr(people, k)[:depth] for k in
                                                      ("tail_score", "tail_a", "tail_b", "tail_ca", "tail_cb")}})
    for counts in (people, short):
        for mapping, g in ((np.array([0, 1, 2, 3]), 4), (np.array([0, 1, 0, 1]), 2)):
            compiled = people_bootstrap(counts, mapping, g, n_replicates=300, seed=5, targets=targets)
            with monkeypatch.context() as m:
                m.setattr(_people_fused, "_KERNELS", None)
                plain = people_bootstrap(counts, mapping, g, n_replicates=300, seed=5, targets=targets)
            for f in ("fm", "imp", "fnm", "mated", "op_fm", "op_fnm", "op_threshold"):
                np.testing.assert_array_equal(getattr(compiled, f), getattr(plain, f), err_msg=f)
            ran_out = np.isnan(compiled.op_threshold[:, 0])
            assert ran_out.any() and not ran_out.all() if counts is short else not ran_out.any()
