"""The tiled engine against the naive computation over all materialised pairs.

"Naive" means: score every pair with :func:`score_pairs` (the canonical scores), then
``threshold_at_fmr`` / ``error_counts`` / boolean masks per cell. The engine must give exactly the
same thresholds and counts, whatever the tile size, row order, group labels or worker count.
Embeddings are quantised so that many scores tie exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import audit.engine.kernel as kernel_mod
import audit.engine.scan as scan_mod
from audit.verification.protocol import similarity_matrix
from audit.engine.counts import coarsen_cells
from audit.engine.pairs import pair_scores_from_list, sample_impostor_pairs, score_pairs
from audit.engine.scan import score_tiles
from audit.errors import MetricError
from audit.metrics import error_counts, thresholds_at_fmr

TARGETS = [5e-2, 1e-2, 1e-3, 1e-4, 1e-5]


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def inner_loop(request, monkeypatch):
    """Every engine test runs with the compiled inner loop (numba, when installed) and without it
    (worker processes read FACE_AUDIT_NUMBA when they import the engine)."""
    from audit.engine import _fused

    if request.param == "compiled":
        if not _fused.available():
            pytest.skip("numba is not installed: the compiled inner loop is not in use")
    else:
        monkeypatch.setattr(_fused, "_KERNEL", None)
        monkeypatch.setenv("FACE_AUDIT_NUMBA", "0")
    return request.param


def make(seed: int, n: int, *, d: int = 8, groups: int = 4, per_subject: float = 2.5, quantise: bool = True,
         flip: float = 0.02):
    """Rows of subjects with 1..k images; groups by subject, a few rows relabelled."""
    rng = np.random.default_rng(seed)
    n_subj = max(1, int(n / per_subject))
    subj = rng.integers(0, n_subj, n)
    centre = rng.normal(size=(n_subj, d))
    emb = centre[subj] + 0.9 * rng.normal(size=(n, d))
    if quantise:
        emb = np.clip(np.round(emb), -1, 1)  # entries in {-1, 0, 1}: few distinct scores, many ties
    grp = rng.integers(0, groups, n_subj)[subj]
    flipped = rng.random(n) < flip  # inconsistent labels exist in real data
    grp[flipped] = rng.integers(0, groups, int(flipped.sum()))
    return emb, subj, grp


def naive(emb, subj, grp, g, metric, thresholds, *, same_group=False):
    n = len(subj)
    i, j = np.triu_indices(n, 1)
    s = score_pairs(emb, i, j, metric=metric)
    mated = subj[i] == subj[j]
    gi, gj = grp[i], grp[j]
    imp = ~mated & (gi == gj if same_group else True)
    cell = np.minimum(gi, gj) * g + np.maximum(gi, gj)

    def sym(x):
        c = np.bincount(x, minlength=g * g).reshape(g, g)
        return c + c.T - np.diag(np.diag(c))

    labels, sc = np.unique(subj, return_inverse=True)

    def stack(parts, shape):
        return np.stack(parts) if parts else np.zeros((0,) + shape, np.int64)

    out = {
        "scores": s, "mated": mated, "imp": imp, "impostors": sym(cell[imp]),
        "fm": stack([sym(cell[imp & (s >= t)]) for t in thresholds], (g, g)),
        "fnm": stack([np.bincount(gi[mated & (s < t)], minlength=g) for t in thresholds], (g,)),
        "mated_by_group": np.bincount(gi[mated], minlength=g),
    }
    sub_fm = np.zeros((len(thresholds), labels.size, g), np.int64)
    for k, t in enumerate(thresholds):
        hit = imp & (s >= t)
        np.add.at(sub_fm[k], (sc[i[hit]], gj[hit]), 1)
        np.add.at(sub_fm[k], (sc[j[hit]], gi[hit]), 1)
    sub_imp = np.zeros((labels.size, g), np.int64)
    np.add.at(sub_imp, (sc[i[imp]], gj[imp]), 1)
    np.add.at(sub_imp, (sc[j[imp]], gi[imp]), 1)
    out["sub_fm"], out["sub_imp"] = sub_fm, sub_imp
    out["sub_fnm"] = stack([np.bincount(sc[i[mated & (s < t)]], minlength=labels.size) for t in thresholds], (labels.size,))
    return out


def assert_counts_equal(c, ref):
    np.testing.assert_array_equal(c.impostors, ref["impostors"])
    np.testing.assert_array_equal(c.false_matches, ref["fm"])
    np.testing.assert_array_equal(c.false_non_matches, ref["fnm"])
    np.testing.assert_array_equal(c.mated, ref["mated_by_group"])
    np.testing.assert_array_equal(c.subject_false_matches, ref["sub_fm"])
    np.testing.assert_array_equal(c.subject_impostors, ref["sub_imp"])
    np.testing.assert_array_equal(c.subject_false_non_matches, ref["sub_fnm"])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thresholds_and_counts_equal_naive(seed, metric):
    emb, subj, grp = make(seed, 900, quantise=seed != 2)
    scan = score_tiles(emb, subj, grp, metric=metric, max_fmr=5e-2, tile=256)
    th = scan.thresholds_at_fmr(TARGETS)
    ref0 = naive(emb, subj, grp, 4, metric, [])
    np.testing.assert_array_equal(th, thresholds_at_fmr(ref0["scores"][ref0["imp"]], TARGETS))
    # at the targets (from the tail), and at thresholds below the tail (a second pass)
    extra = np.array([th[0] - 0.25, -1.0, 0.0, -np.inf, np.inf])
    for probe, rescan in ((th, False), (np.concatenate([th, extra]), True)):
        c = scan.counts_at(probe)
        assert c.rescanned is rescan
        ref = naive(emb, subj, grp, 4, metric, probe)
        assert_counts_equal(c, ref)
        ec = error_counts(ref["scores"][ref["mated"]], ref["scores"][ref["imp"]], probe)
        np.testing.assert_array_equal(c.false_matches_total, ec.false_matches)
        np.testing.assert_array_equal(c.false_non_matches_total, ec.false_non_matches)
        assert c.impostors_total == ec.impostors and c.mated_total == ec.genuines
    assert scan.stats.passes == 2


def test_ties_are_exercised():
    emb, subj, grp = make(0, 900)
    ref = naive(emb, subj, grp, 4, "cosine", [])
    s = ref["scores"][ref["imp"]]
    assert np.unique(s).size < s.size / 20  # heavy ties
    th = thresholds_at_fmr(s, [1e-2])
    assert np.sum(s == np.nextafter(th[0], -np.inf)) > 1  # a tie sits right at the boundary


def test_thresholds_given_in_advance_need_no_second_pass():
    emb, subj, grp = make(3, 600)
    fixed = [-0.2, 0.0, 0.35]
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, thresholds=fixed, tile=128)
    c = scan.counts_at(fixed, allow_rescan=False)
    assert not c.rescanned and scan.stats.passes == 1
    assert_counts_equal(c, naive(emb, subj, grp, 4, "cosine", fixed))
    with pytest.raises(MetricError, match="second pass"):
        scan.counts_at([-0.5], allow_rescan=False)
    assert scan.counts_at([scan.tail_floor + 1e-9], allow_rescan=False).rescanned is False


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_tile_size_does_not_change_results(metric):
    emb, subj, grp = make(4, 130, groups=3)
    probe_extra = [-0.1, 0.2] if metric == "cosine" else [-2.0, -1.0]
    results = []
    for tile in (1, 7, 64, 4096):
        scan = score_tiles(emb, subj, grp, metric=metric, max_fmr=5e-2, tile=tile, thresholds=probe_extra[:1])
        th = scan.thresholds_at_fmr([5e-2, 1e-2, 1e-3])
        c = scan.counts_at(np.concatenate([th, probe_extra]))
        np.testing.assert_array_equal(scan.impostor_hist.sum(axis=-1), c.impostors)
        results.append((th, c))
    th0, c0 = results[0]
    for th, c in results[1:]:
        np.testing.assert_array_equal(th, th0)
        for name in ("false_matches", "impostors", "false_non_matches", "subject_false_matches", "subject_impostors"):
            np.testing.assert_array_equal(getattr(c, name), getattr(c0, name))
    ref = naive(emb, subj, grp, 3, metric, c0.thresholds)
    assert_counts_equal(c0, ref)


def test_permuting_rows_and_relabelling_groups_changes_nothing():
    # labels consistent within a subject: with inconsistent ones, "the group of a mated pair's
    # first row" depends on the row order by definition
    emb, subj, grp = make(5, 700, groups=5, flip=0.0)
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=100)
    th = scan.thresholds_at_fmr([1e-2, 1e-3])
    probe = np.concatenate([th, [0.1]])
    c = scan.counts_at(probe)
    rng = np.random.default_rng(0)
    perm = rng.permutation(700)
    relabel = np.array([3, 0, 4, 1, 2])  # old group g -> new code relabel[g]
    scan2 = score_tiles(emb[perm], subj[perm], relabel[grp[perm]], max_fmr=1e-2, tile=64)
    np.testing.assert_array_equal(scan2.thresholds_at_fmr([1e-2, 1e-3]), th)
    c2 = scan2.counts_at(probe)
    inv = np.argsort(relabel)  # new code -> old group
    np.testing.assert_array_equal(c2.false_matches[:, relabel][:, :, relabel], c.false_matches)
    np.testing.assert_array_equal(c2.impostors[relabel][:, relabel], c.impostors)
    np.testing.assert_array_equal(c2.false_non_matches[:, relabel], c.false_non_matches)
    np.testing.assert_array_equal(c2.subject_false_matches[:, :, relabel], c.subject_false_matches)
    np.testing.assert_array_equal(inv[c2.subject_group], c.subject_group)
    # the mated pairs, mapped back to the first scan's rows, are the same pairs with the same scores
    back = perm[scan2.mated_a], perm[scan2.mated_b]
    k1 = dict(zip(zip(np.minimum(*back).tolist(), np.maximum(*back).tolist()), scan2.mated_scores.tolist()))
    k0 = dict(zip(zip(scan.mated_a.tolist(), scan.mated_b.tolist()), scan.mated_scores.tolist()))
    assert k0 == k1


def test_two_workers_give_the_same_counts():
    emb, subj, grp = make(6, 500)
    one = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64, thresholds=[0.0])
    two = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64, thresholds=[0.0], workers=2)
    assert two.stats.workers == 2
    np.testing.assert_array_equal(one.thresholds_at_fmr([1e-2, 1e-3]), two.thresholds_at_fmr([1e-2, 1e-3]))
    probe = np.concatenate([one.thresholds_at_fmr([1e-2]), [0.0]])
    a, b = one.counts_at(probe), two.counts_at(probe)
    np.testing.assert_array_equal(a.subject_false_matches, b.subject_false_matches)
    np.testing.assert_array_equal(one.impostor_hist.sum(-1), two.impostor_hist.sum(-1))


def test_a_wrong_floor_guess_is_caught(monkeypatch):
    emb, subj, grp = make(7, 500)
    ref_scan = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64)
    monkeypatch.setattr(scan_mod, "_guess_floor", lambda geo, *a: np.float32(geo.offset + geo.scale * 0.99))
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64)
    assert scan.stats.passes == 2  # the tail was redone without the guess
    np.testing.assert_array_equal(scan.thresholds_at_fmr([1e-2, 1e-4]), ref_scan.thresholds_at_fmr([1e-2, 1e-4]))


def test_same_group_impostors():
    emb, subj, grp = make(8, 800)
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, impostors="same_group", tile=100)
    ref0 = naive(emb, subj, grp, 4, "cosine", [], same_group=True)
    th = scan.thresholds_at_fmr([1e-2, 1e-3])
    np.testing.assert_array_equal(th, thresholds_at_fmr(ref0["scores"][ref0["imp"]], [1e-2, 1e-3]))
    probe = np.concatenate([th, [0.0]])
    c = scan.counts_at(probe)
    ref = naive(emb, subj, grp, 4, "cosine", probe, same_group=True)
    assert_counts_equal(c, ref)
    off = ~np.eye(4, dtype=bool)
    assert not c.impostors[off].any() and not c.false_matches[:, off].any()


def test_coarsen_equals_a_scan_with_coarse_codes():
    emb, subj, grp = make(9, 600, groups=6)
    mapping = np.array([0, 1, 1, 2, 0, 2])
    fine = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=128)
    coarse = score_tiles(emb, subj, mapping[grp], max_fmr=1e-2, tile=128)
    th = fine.thresholds_at_fmr([1e-2, 1e-3])
    probe = np.concatenate([th, [0.05]])
    a, b = fine.counts_at(probe).coarsen(mapping), coarse.counts_at(probe)
    for name in ("false_matches", "impostors", "false_non_matches", "mated", "subject_group",
                 "subject_false_matches", "subject_impostors", "subject_false_non_matches"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    whole = fine.counts_at(probe).coarsen(np.zeros(6, int))
    assert whole.impostors[0, 0] == fine.impostors_total
    np.testing.assert_array_equal(whole.false_matches[:, 0, 0], fine.counts_at(probe).false_matches_total)
    # Histograms (for plots only) bin float32 screening values; another row order changes the BLAS
    # blocking, which may move a value lying on a bin edge by one ulp into the neighbouring bin.
    # Every cell keeps its total, and no pair moves further than the next bin.
    h_fine = coarsen_cells(fine.impostor_hist.transpose(2, 0, 1), mapping).transpose(1, 2, 0)
    np.testing.assert_array_equal(h_fine.sum(axis=2), coarse.impostor_hist.sum(axis=2))
    drift = np.abs(np.cumsum(h_fine, axis=2) - np.cumsum(coarse.impostor_hist, axis=2))
    assert drift.max() <= 2 and np.abs(h_fine - coarse.impostor_hist).sum() <= 8


def test_coarsen_cells_by_hand():
    c = np.array([[1, 2, 0], [2, 3, 4], [0, 4, 5]])
    np.testing.assert_array_equal(coarsen_cells(c, [0, 1, 1]), [[1, 2], [2, 12]])
    np.testing.assert_array_equal(coarsen_cells(c, [0, 0, 0]), [[1 + 2 + 0 + 3 + 4 + 5]])


def test_by_subject_counts_pool_to_the_group_rates():
    emb, subj, grp = make(10, 600)
    grp = np.unique(subj, return_inverse=True)[1] % 4  # consistent labels: subject groups are exact
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=128)
    c = scan.counts_at(scan.thresholds_at_fmr([1e-2, 1e-3]))
    f = c.by_subject("fmr")
    for g in range(4):
        sel = f.subject_group == g
        np.testing.assert_array_equal(f.errors[sel].sum(0), 2 * c.false_matches[:, g, g])
        assert np.all(f.trials[sel].sum(0) == 2 * c.impostors[g, g])
    m = c.by_subject("fnmr")
    for g in range(4):
        sel = m.subject_group == g
        np.testing.assert_array_equal(m.errors[sel].sum(0), c.false_non_matches[:, g])
    with pytest.raises(MetricError):
        c.by_subject("far")


def test_histograms_match_the_naive_histogram_up_to_edge_rounding():
    emb, subj, grp = make(11, 500, d=16, quantise=False)
    scan = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64, hist_bins=200)
    ref = naive(emb, subj, grp, 4, "cosine", [])
    h_naive, _ = np.histogram(ref["scores"][ref["imp"]], bins=scan.hist_edges)
    h = np.triu(np.moveaxis(scan.impostor_hist, -1, 0)).sum(axis=(1, 2))
    assert h.sum() == ref["imp"].sum()
    assert np.abs(h - h_naive).sum() <= 4  # only pairs within ~1e-6 of an edge may move


def test_edge_cases():
    rng = np.random.default_rng(0)
    # a group with one subject (two images): no same-group impostors; an empty group (code 3)
    emb = rng.normal(size=(7, 4))
    subj = np.array([0, 0, 1, 2, 3, 4, 5])
    grp = np.array([2, 2, 0, 0, 1, 1, 0])
    scan = score_tiles(emb, subj, grp, n_groups=4, max_fmr=0.5, tile=3)
    c = scan.counts_at(scan.thresholds_at_fmr([0.5, 0.1]))
    assert c.impostors[2, 2] == 0 and np.isnan(c.fmr[:, 2, 2]).all()
    assert not c.impostors[3].any() and np.isnan(c.fnmr[:, 3]).all() and np.isnan(c.fmr[:, 3, 3]).all()
    assert c.mated[2] == 1 and c.impostors_total == 21 - 1
    assert_counts_equal(c, naive(emb, subj, grp, 4, "cosine", c.thresholds))
    # one row: nothing to compare
    one = score_tiles(rng.normal(size=(1, 4)), [7], [0])
    assert one.impostors_total == 0 and one.counts_at([0.5]).false_matches.sum() == 0
    with pytest.raises(MetricError, match="no impostor"):
        one.thresholds_at_fmr([1e-2])
    # every pair mated: FNMR only
    same = score_tiles(rng.normal(size=(5, 4)), np.zeros(5), np.array([0, 1, 0, 1, 0]))
    cs = same.counts_at([0.0])
    assert cs.impostors_total == 0 and cs.mated_total == 10 and cs.mated_cross_group == 6
    with pytest.raises(MetricError):
        same.thresholds_at_fmr([1e-2])
    # no rows at all
    empty = score_tiles(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
    assert empty.counts_at([0.1]).impostors_total == 0


def test_zero_vectors_and_duplicate_rows():
    emb = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
    subj = np.arange(5)
    grp = np.zeros(5, int)
    for metric in ("cosine", "euclidean"):
        scan = score_tiles(emb, subj, grp, metric=metric, max_fmr=0.5, tile=2)
        ref = naive(emb, subj, grp, 1, metric, [])
        s = ref["scores"][ref["imp"]]
        np.testing.assert_array_equal(scan.thresholds_at_fmr([0.5, 0.1]), thresholds_at_fmr(s, [0.5, 0.1]))
        probe = [0.0, -0.0, 1.0, -1.0] if metric == "cosine" else [0.0, -1e-300, -3.0, 1.0]
        assert_counts_equal(scan.counts_at(probe), naive(emb, subj, grp, 1, metric, probe))


def test_score_pairs_is_canonical_and_close_to_similarity_matrix():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 16))
    a, b = np.triu_indices(40, 1)
    for metric in ("cosine", "euclidean"):
        s = score_pairs(emb, a, b, metric=metric)
        np.testing.assert_allclose(s, similarity_matrix(emb, emb, metric=metric)[a, b], atol=2e-6)
        alone = np.array([score_pairs(emb, [x], [y], metric=metric)[0] for x, y in zip(a[:50], b[:50])])
        np.testing.assert_array_equal(alone, s[:50])  # the same bits in any batch
        np.testing.assert_array_equal(score_pairs(emb, b, a, metric=metric), s)  # symmetric
    with pytest.raises(MetricError, match="same length"):
        score_pairs(emb, [0, 1], [2])
    with pytest.raises(MetricError, match="index rows"):
        score_pairs(emb, [0], [40])


def test_pair_list_protocol():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(6, 4))
    subj = np.array(["a", "a", "b", "b", "c", "d"])
    p = pair_scores_from_list(emb, subj, [1, 2, 4, 0], [0, 3, 5, 5])
    assert p.n_mated == 2 and p.n_impostor == 2
    assert p.mated_a.tolist() == [0, 2] and p.mated_b.tolist() == [1, 3]
    np.testing.assert_array_equal(p.impostor_score, score_pairs(emb, [4, 0], [5, 5]))
    with pytest.raises(MetricError, match="itself"):
        pair_scores_from_list(emb, subj, [1], [1])


def test_sampled_impostors():
    subj = np.repeat(np.arange(300), 3)
    grp = (np.arange(300) % 3)[subj]
    a, b = sample_impostor_pairs(subj, 5000, seed=4)
    a2, b2 = sample_impostor_pairs(subj, 5000, seed=4)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert np.all(a < b) and np.all(subj[a] != subj[b])
    assert np.unique(a * 900 + b).size == 5000
    c, d = sample_impostor_pairs(subj, 2000, seed=5, groups=grp, same_group=True)
    assert np.all(grp[c] == grp[d]) and np.all(subj[c] != subj[d])
    small = np.array([0, 0, 1, 2])
    e, f = sample_impostor_pairs(small, 5, seed=0)  # all 5 impostor pairs of 4 rows
    assert sorted(zip(e.tolist(), f.tolist())) == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    with pytest.raises(MetricError, match="only 5"):
        sample_impostor_pairs(small, 6)
    with pytest.raises(MetricError, match="groups"):
        sample_impostor_pairs(small, 1, same_group=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(metric="manhattan"), "metric"),
        (dict(max_fmr=1.0), "max_fmr"),
        (dict(max_fmr=0), "max_fmr"),
        (dict(impostors="cross"), "impostors"),
        (dict(tile=0), "tile"),
        (dict(n_groups=1), "n_groups"),
    ],
)
def test_bad_options(kwargs, match):
    emb = np.ones((4, 2))
    with pytest.raises(MetricError, match=match):
        score_tiles(emb, [0, 1, 2, 3], [0, 1, 0, 1], **kwargs)


def test_bad_inputs():
    with pytest.raises(MetricError, match="2-D"):
        score_tiles(np.ones(3), [0, 1, 2], [0, 0, 0])
    with pytest.raises(MetricError, match="NaN"):
        score_tiles(np.array([[np.nan, 1.0], [1.0, 1.0]]), [0, 1], [0, 0])
    with pytest.raises(MetricError, match="integer codes"):
        score_tiles(np.ones((2, 2)), [0, 1], [0.0, 1.0])
    with pytest.raises(MetricError, match=">= 0"):
        score_tiles(np.ones((2, 2)), [0, 1], [0, -1])
    with pytest.raises(MetricError, match="one entry per"):
        score_tiles(np.ones((2, 2)), [0], [0, 0])
    scan = score_tiles(np.random.default_rng(0).normal(size=(30, 3)), np.arange(30), np.zeros(30, int), max_fmr=0.01)
    with pytest.raises(MetricError, match="max_fmr"):
        scan.thresholds_at_fmr([0.05])
    with pytest.raises(MetricError, match="NaN"):
        scan.counts_at([np.nan])


# ---------------------------------------------------------------------------- two-sided scans


def naive_two_sided(emb, subj, grp, side, g, metric, thresholds, *, same_group=False):
    """Every (side-0 row, side-1 row) pair scored canonically; directional cells (probe g, ref h)."""
    p, r = np.flatnonzero(side == 0), np.flatnonzero(side == 1)
    i, j = np.repeat(p, r.size), np.tile(r, p.size)
    s = score_pairs(emb, i, j, metric=metric)
    mated = subj[i] == subj[j]
    gi, gj = grp[i], grp[j]
    imp = ~mated & (gi == gj if same_group else True)
    cell = gi * g + gj
    labels, sc = np.unique(subj, return_inverse=True)

    def directional(mask):
        return np.bincount(cell[mask], minlength=g * g).reshape(g, g)

    out = {
        "scores": s, "mated": mated, "imp": imp, "impostors": directional(imp),
        "fm": np.stack([directional(imp & (s >= t)) for t in thresholds]),
        "fnm": np.stack([np.bincount(gi[mated & (s < t)], minlength=g) for t in thresholds]),
        "mated_by_group": np.bincount(gi[mated], minlength=g),
        "sub_fnm": np.stack([np.bincount(sc[i[mated & (s < t)]], minlength=labels.size) for t in thresholds]),
    }
    sub_fm = np.zeros((len(thresholds), labels.size, g), np.int64)
    for k, t in enumerate(thresholds):
        hit = imp & (s >= t)
        np.add.at(sub_fm[k], (sc[i[hit]], gj[hit]), 1)
        np.add.at(sub_fm[k], (sc[j[hit]], gi[hit]), 1)
    out["sub_fm"] = sub_fm
    return out


@pytest.mark.parametrize("metric,same_group,workers", [("cosine", False, 1), ("euclidean", False, 1),
                                                       ("cosine", True, 1), ("cosine", False, 2)])
def test_two_sided_scan_equals_naive_and_is_directional(metric, same_group, workers):
    emb, subj, grp = make(11, 700, quantise=metric == "cosine")
    rng = np.random.default_rng(3)
    side = (rng.random(len(subj)) < 0.4).astype(int)  # an unbalanced split: 40% references
    mode = "same_group" if same_group else "all"
    scan = score_tiles(emb, subj, grp, metric=metric, max_fmr=5e-2, tile=96, sides=side, impostors=mode,
                       n_groups=4, workers=workers)
    assert scan.n_groups == 8 and scan.base_groups == 4
    ref0 = naive_two_sided(emb, subj, grp, side, 4, metric, [0.0], same_group=same_group)
    assert scan.impostors_total == int(ref0["imp"].sum())
    th = scan.thresholds_at_fmr([5e-2, 1e-2, 1e-3])
    np.testing.assert_array_equal(th, thresholds_at_fmr(ref0["scores"][ref0["imp"]], [5e-2, 1e-2, 1e-3]))
    probe = np.concatenate([th, [th[0] - 0.3]])  # the last one needs a second pass
    c = scan.counts_at(probe)
    ref = naive_two_sided(emb, subj, grp, side, 4, metric, probe, same_group=same_group)
    # the directional block: rows = side 0's group, columns = side 1's group
    np.testing.assert_array_equal(c.impostors[:4, 4:], ref["impostors"])
    np.testing.assert_array_equal(c.false_matches[:, :4, 4:], ref["fm"])
    for blk in (c.impostors[:4, :4], c.impostors[4:, 4:], c.false_matches[:, :4, :4], c.false_matches[:, 4:, 4:]):
        assert not blk.any()  # nothing within a side is compared
    if not same_group:
        assert not np.array_equal(ref["impostors"], ref["impostors"].T)  # really asymmetric
        assert not np.array_equal(ref["fm"][0], ref["fm"][0].T)
    # the usual G-group counts by coarsening the sides away
    sym = c.coarsen(np.r_[np.arange(4), np.arange(4)])
    np.testing.assert_array_equal(sym.impostors, ref["impostors"] + ref["impostors"].T - np.diag(np.diag(ref["impostors"])))
    np.testing.assert_array_equal(sym.false_non_matches, ref["fnm"])  # in the side-0 image's group
    np.testing.assert_array_equal(sym.mated, ref["mated_by_group"])
    np.testing.assert_array_equal(sym.subject_false_matches, ref["sub_fm"])
    np.testing.assert_array_equal(sym.subject_false_non_matches, ref["sub_fnm"])
    assert c.mated_total == int(ref["mated"].sum())
    np.testing.assert_array_equal(np.sort(scan.mated_scores), np.sort(ref["scores"][ref["mated"]]))
    assert (side[scan.mated_a] == 0).all() and (side[scan.mated_b] == 1).all()
    hist = scan.impostor_hist
    np.testing.assert_array_equal(hist.sum(-1)[:4, 4:], ref["impostors"])


def test_two_sided_scan_rejects_bad_sides():
    emb, subj, grp = make(12, 50)
    with pytest.raises(MetricError, match="one value per row"):
        score_tiles(emb, subj, grp, sides=np.zeros(10, int))
    with pytest.raises(MetricError, match="0/1"):
        score_tiles(emb, subj, grp, sides=np.full(50, 2))


def test_compiled_pass_with_a_tiny_candidate_buffer_gives_the_same_scan(inner_loop, monkeypatch):
    """The compiled pass writes tail candidates into a buffer that grows; overflowing it on the
    early tiles (before the floor rises) must not change anything."""
    emb, subj, grp = make(13, 600)
    ref = score_tiles(emb, subj, grp, max_fmr=5e-2, tile=128, thresholds=[0.0])
    monkeypatch.setattr(kernel_mod, "_IDX_BUF", 4)
    small = score_tiles(emb, subj, grp, max_fmr=5e-2, tile=128, thresholds=[0.0])
    th = ref.thresholds_at_fmr([5e-2, 1e-3])
    np.testing.assert_array_equal(th, small.thresholds_at_fmr([5e-2, 1e-3]))
    probe = np.concatenate([th, [0.0, -0.3]])  # 0.0 counted in the scan, -0.3 by a second pass
    assert_counts_equal(small.counts_at(probe), _as_ref(ref.counts_at(probe)))
    assert_counts_equal(small.counts_at(probe), naive(emb, subj, grp, 4, "cosine", probe))
    np.testing.assert_array_equal(ref.impostor_hist, small.impostor_hist)


def _as_ref(c):
    return {"impostors": c.impostors, "fm": c.false_matches, "fnm": c.false_non_matches, "mated_by_group": c.mated,
            "sub_fm": c.subject_false_matches, "sub_imp": c.subject_impostors, "sub_fnm": c.subject_false_non_matches}


def test_compiled_and_numpy_histograms_are_identical(monkeypatch):
    from audit.engine import _fused

    if not _fused.available():
        pytest.skip("numba is not installed")
    emb, subj, grp = make(14, 700, quantise=False)
    for kw in ({}, {"sides": np.arange(700) % 3 == 0}):
        compiled = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=100, **kw)
        with monkeypatch.context() as m:
            m.setattr(_fused, "_KERNEL", None)
            plain = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=100, **kw)
        np.testing.assert_array_equal(compiled.impostor_hist, plain.impostor_hist)
        th = plain.thresholds_at_fmr([1e-2, 1e-3])
        np.testing.assert_array_equal(compiled.thresholds_at_fmr([1e-2, 1e-3]), th)
        assert compiled.stats.tail_pairs == plain.stats.tail_pairs


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_bar_counts_every_pair(workers, capsys):
    emb, subj, grp = make(15, 400)
    quiet = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64, workers=workers)
    loud = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=64, workers=workers, progress=True)
    err = capsys.readouterr().err
    assert "scoring pairs" in err and "79.8k/79.8k" in err  # 400 * 399 / 2 = 79,800 pairs
    np.testing.assert_array_equal(quiet.thresholds_at_fmr([1e-2]), loud.thresholds_at_fmr([1e-2]))
    loud.counts_at([-0.9])  # below the tail: the second pass shows its own bar
    assert "second pass" in capsys.readouterr().err


@pytest.mark.parametrize("max_tail,hist", [(50, True), (50, False), (3, True)])
def test_thresholds_deeper_than_a_capped_tail_equal_naive(max_tail, hist):
    """With the tail capped far below max_fmr × impostors, deep thresholds come from narrowing
    passes (histogram bin, sub-histograms, a collecting pass) and equal the naive ones exactly."""
    emb, subj, grp = make(16, 800, quantise=False)
    ref0 = naive(emb, subj, grp, 4, "cosine", [])
    imp = ref0["scores"][ref0["imp"]]
    targets = [5e-2, 1e-2, 1e-3, 1e-4]
    scan = score_tiles(emb, subj, grp, max_fmr=5e-2, tile=128, max_tail_pairs=max_tail, histogram=hist)
    th = scan.thresholds_at_fmr(targets)
    np.testing.assert_array_equal(th, thresholds_at_fmr(imp, targets))
    assert scan.stats.passes >= 2  # at least one collecting pass
    c = scan.counts_at(th)
    assert_counts_equal(c, naive(emb, subj, grp, 4, "cosine", th))


def test_deep_thresholds_with_heavy_ties_and_two_sided_scans():
    emb, subj, grp = make(17, 700)  # entries in {-1, 0, 1}: many equal scores at every threshold
    side = np.arange(700) % 2
    ref0 = naive_two_sided(emb, subj, grp, side, 4, "cosine", [0.0])
    imp = ref0["scores"][ref0["imp"]]
    scan = score_tiles(emb, subj, grp, max_fmr=5e-2, tile=96, sides=side, n_groups=4, max_tail_pairs=10)
    th = scan.thresholds_at_fmr([5e-2, 1e-2, 1e-3])
    np.testing.assert_array_equal(th, thresholds_at_fmr(imp, [5e-2, 1e-2, 1e-3]))


def test_counting_pass_rows_are_int32_in_each_part_and_merge_in_int64(inner_loop):
    """A counting pass's per-row counts (N x G per threshold, the largest array of a task at scale)
    are int32 in each worker/task (one row's count against a group is at most N - 1) and are summed
    in int64; the counts stay the naive ones (checked with both inner loops)."""
    from audit.engine.workers import _run

    emb, subj, grp = make(3, 300)
    scan = score_tiles(emb, subj, grp, max_fmr=5e-2, tile=64)
    probe = [-0.2, 0.1]
    parts = _run(scan._geo, scan._tiles, mated=scan._mated, tail_k=None, tail_floor=None, thresholds=probe,
                 histogram=False, workers=1)
    assert parts[0]["fm"].dtype == np.int32 and parts[0]["fm"].shape == (2, 300, 4)
    merged = kernel_mod.merge_fm(parts + parts)
    assert merged.dtype == np.int64
    np.testing.assert_array_equal(merged, 2 * parts[0]["fm"].astype(np.int64))
    assert_counts_equal(scan.counts_at(probe), naive(emb, subj, grp, 4, "cosine", probe))


@pytest.mark.parametrize("workers", [1, 2])
def test_pairs_at_a_given_threshold_below_the_tail_are_listed_without_a_pass(inner_loop, workers):
    """A threshold given to the scan below its tail (a backend's default): the tail keeps every pair
    that can reach it (while they fit under max_tail_pairs), so its impostor pairs are listed with
    no second pass; the pairs, counts and per-person counts equal the naive ones and a scan's
    without it. Over the cap, the scan drops it and a pass lists the same pairs."""
    from dataclasses import fields

    emb, subj, grp = make(21, 700, quantise=False)
    ref = naive(emb, subj, grp, 4, "cosine", [])
    i, j = np.triu_indices(700, 1)
    imp = ref["imp"]
    s = ref["scores"][imp]
    t = float(np.sort(s)[::-1][int(0.1 * s.size)])  # about FMR 0.1; the tail (max_fmr 1e-2) ends far above
    want = {(a, b) for a, b in zip(i[imp][s >= t].tolist(), j[imp][s >= t].tolist())}
    assert 20_000 < len(want) < 30_000

    def listed(scan):
        r, c = scan.false_match_rows(t, max_pairs=100_000)
        a, b = scan._order[r], scan._order[c]
        got = list(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
        assert len(got) == len(set(got))
        return set(got)

    plain = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=128)  # (results never depend on workers)
    held = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=128, workers=workers, thresholds=[t, 0.9])
    capped = score_tiles(emb, subj, grp, max_fmr=1e-2, tile=128, workers=workers, thresholds=[t], max_tail_pairs=10_000)
    assert plain.tail_floor > t >= held.tail_floor and capped.tail_floor > t
    assert held.stats.tail_pairs >= len(want) and capped.stats.tail_pairs < 10_000
    assert listed(held) == want and held.stats.passes == 1  # from the tail
    assert listed(plain) == want and plain.stats.passes == 3  # a counting pass, then a collecting one
    assert listed(capped) == want and capped.stats.passes == 2  # (counted in the scan) a collecting pass
    th = plain.thresholds_at_fmr([1e-2, 1e-3])
    np.testing.assert_array_equal(held.thresholds_at_fmr([1e-2, 1e-3]), th)
    ref_t = naive(emb, subj, grp, 4, "cosine", [*th, t])
    for scan in (held, capped):
        assert_counts_equal(scan.counts_at([*th, t]), ref_t)
    a, b = plain.people_counts([*th, t]), held.people_counts([*th, t])
    assert a.tail_score.size == plain.stats.tail_pairs  # the operating point's tail: the same pairs, not the kept extra
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name
    assert np.all(np.diff(b.tail_score) <= 0)
    # the per-person-pair false matches by hand: every naive impostor pair at each threshold,
    # as (lower (person, group), higher (person, group)) -> count per threshold
    labels, code = np.unique(subj, return_inverse=True)
    want_pp: dict[tuple, np.ndarray] = {}
    si, sj = ref["scores"], imp
    for k, thr in enumerate([*th, t]):
        for x, y in zip(i[sj & (si >= thr)], j[sj & (si >= thr)]):
            key = tuple(sorted([(code[x], grp[x]), (code[y], grp[y])]))
            want_pp.setdefault(key, np.zeros(3, np.int64))[k] += 1
    got_pp = {((pa, ga), (pb, gb)): row for pa, pb, ga, gb, row in zip(b.fm_a, b.fm_b, b.fm_ca, b.fm_cb, b.fm_counts)}
    assert got_pp.keys() == want_pp.keys()
    assert all(np.array_equal(got_pp[key], want_pp[key]) for key in want_pp)
