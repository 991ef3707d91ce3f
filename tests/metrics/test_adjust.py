"""Rates by covariate stratum and the Mantel–Haenszel adjusted ratio: hand-computed values, an
explicit resample-and-recount of every replicate, and the crude ratio as the one-stratum case."""

from __future__ import annotations

import numpy as np
import pytest

from audit.verification.protocol import PairScores
from audit.engine.tiles import score_tiles
from audit.metrics.adjust import (
    adjusted_comparisons,
    greenland_robins_variance,
    mantel_haenszel,
    pair_strata,
    stratum_counts,
)
from audit.metrics.people import people_bootstrap, people_weights
from audit.metrics.reference import compare_to_reference
from audit.verification.analysis import cell_data_from_pairs
from audit.verification.intervals import people_intervals


def _dataset(seed=3, people=9, cells=3):
    """People with 1-3 images; an image's cell is usually its person's, sometimes another."""
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


def test_mantel_haenszel_by_hand():
    # stratum 1: group 10/100, reference 5/200 (T 300); stratum 2: 2/50 against 1/50 (T 100)
    # numerator 10*200/300 + 2*50/100 = 6.6667 + 1 = 7.6667; denominator 5*100/300 + 1*50/100 = 2.1667
    assert mantel_haenszel([10, 2], [100, 50], [5, 1], [200, 50]) == pytest.approx(7.666666667 / 2.166666667)
    # a stratum the reference lacks carries no weight (the group's 40/40 there changes nothing)
    assert mantel_haenszel([10, 2, 40], [100, 50, 40], [5, 1, 0], [200, 50, 0]) == pytest.approx(3.538461538)
    # one stratum: the crude ratio
    assert mantel_haenszel([6], [200], [3], [300]) == pytest.approx((6 / 200) / (3 / 300))
    # confounding removed: within each stratum the rates are equal, so MH = 1, while the crude
    # ratio is (60+2)/(1000+1000) over (6+20)/(100+10000) = 0.031 / 0.002574 = 12.0
    e1, n1, e0, n0 = [60, 2], [1000, 1000], [6, 20], [100, 10000]
    assert mantel_haenszel(e1, n1, e0, n0) == pytest.approx(1.0)
    assert (62 / 2000) / (26 / 10100) == pytest.approx(12.04, abs=0.01)
    # vectorised over replicates: rows are independent sets of strata
    np.testing.assert_allclose(mantel_haenszel([[10, 2], [6, 0]], [[100, 50], [200, 1]], [[5, 1], [3, 0]], [[200, 50], [300, 1]]),
                               [3.538461538, 3.0])
    assert np.isnan(mantel_haenszel([1], [10], [0], [0]))  # no stratum with both sides
    assert mantel_haenszel([1], [10], [0], [10]) == np.inf


def test_greenland_robins_variance_by_hand():
    # one stratum: Katz's variance of the log risk ratio, 1/a - 1/n1 + 1/b - 1/n0
    assert greenland_robins_variance([6], [200], [3], [300]) == pytest.approx(1 / 6 - 1 / 200 + 1 / 3 - 1 / 300)
    # two strata, by hand: stratum 1 (T 300): (15*100*200/300 - 50)/300 = (1000 - 50)/300 = 3.16667
    # stratum 2 (T 100): (3*50*50/100 - 2)/100 = (75 - 2)/100 = 0.73; sum 3.89667
    # over (7.6667 * 2.1667) = 16.6111: 0.234582
    assert greenland_robins_variance([10, 2], [100, 50], [5, 1], [200, 50]) == pytest.approx(3.896666667 / (7.666666667 * 2.166666667))


def test_pair_strata_are_unordered():
    s, t, code = pair_strata(4)
    assert s.size == 10 and np.all(s <= t)
    assert np.all(code == code.T) and sorted(code[np.triu_indices(4)].tolist()) == list(range(10))


def _explicit(subj, cell, sigma, pairs, w, mapping, g, k, th):
    """Draw person i w_i times, rebuild every pair and count it in its group and (pair) stratum."""
    _, _, code = pair_strata(k)
    p = k * (k + 1) // 2
    fm, imp = np.zeros((g, p, th.size)), np.zeros((g, p))
    fnm, mated = np.zeros((g, k, th.size)), np.zeros((g, k))
    for a, b, s in zip(pairs.impostor_a, pairs.impostor_b, pairs.impostor_score):
        ga, gb = mapping[cell[a]], mapping[cell[b]]
        if ga != gb:
            continue
        copies = w[subj[a]] * w[subj[b]]
        c = code[sigma[subj[a]], sigma[subj[b]]]
        imp[ga, c] += copies
        fm[ga, c] += copies * (s >= th)
    for a, s in zip(pairs.mated_a, pairs.mated_score):
        copies = w[subj[a]]
        mated[mapping[cell[a]], sigma[subj[a]]] += copies
        fnm[mapping[cell[a]], sigma[subj[a]]] += copies * (s < th)
    return fm, imp, fnm, mated


def test_stratum_replicates_equal_an_explicit_resample_and_recount():
    subj, cell, emb = _dataset(seed=4, people=12)
    pairs = _all_pairs(subj, emb)
    th = np.array([0.1, 0.4])
    sigma = np.array([0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2])
    data = cell_data_from_pairs(pairs, cell, 3, th, subjects=subj)
    for mapping, g in ((np.array([0, 1, 2]), 3), (np.array([0, 1, 0]), 2)):
        sc = stratum_counts(data.people, mapping, g, sigma, 3, n_replicates=10, seed=5)
        rep = people_bootstrap(data.people, mapping, g, n_replicates=10, seed=5)
        w_all = people_weights(rep.strata, g, n_replicates=10, seed=5)
        for b in range(10):
            fm, imp, fnm, mated = _explicit(subj, cell, sigma, pairs, w_all[b], mapping, g, 3, th)
            np.testing.assert_allclose(sc.rep_fm[b], fm)
            np.testing.assert_allclose(sc.rep_imp[b], imp)
            np.testing.assert_allclose(sc.rep_fnm[b], fnm)
            np.testing.assert_allclose(sc.rep_mated[b], mated)
        # the same resampled people as the crude bootstrap: strata sum to its replicates
        np.testing.assert_allclose(sc.rep_fm.sum(2), rep.fm[:, :g])
        np.testing.assert_allclose(sc.rep_imp.sum(2), rep.imp[:, :g])
        np.testing.assert_allclose(sc.rep_fnm.sum(2), rep.fnm[:, :g])
        fm, imp, fnm, mated = _explicit(subj, cell, sigma, pairs, np.ones(12), mapping, g, 3, th)
        np.testing.assert_allclose(sc.fm, fm)
        np.testing.assert_allclose(sc.imp, imp)
        np.testing.assert_allclose(sc.mated, mated)


def _listed(subj, cell, emb, mode, sides):
    """The pairs a scan of ``mode`` compares, as a list."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.triu_indices(subj.size, 1)
    if mode == "two_sided":
        keep = sides[i] != sides[j]
        i, j = i[keep], j[keep]
        i, j = np.where(sides[i] == 0, i, j), np.where(sides[i] == 0, j, i)  # probe first
    s = np.sum(e[i] * e[j], axis=1)
    mated = subj[i] == subj[j]
    imp = ~mated & ((cell[i] == cell[j]) if mode == "same_group" else True)
    return PairScores(s[mated], i[mated], j[mated], s[imp], i[imp], j[imp])


@pytest.mark.parametrize("mode", ["all", "same_group", "two_sided"])
def test_closed_form_trials_equal_the_listed_pairs(mode):
    subj, cell, emb = _dataset(seed=5, people=14)
    sigma = np.arange(14) % 3
    th = np.array([0.05, 0.4])
    sides = (np.arange(subj.size) % 2).astype(np.int64) if mode == "two_sided" else None
    scan = score_tiles(emb, subj, cell, n_groups=3, max_fmr=0.5, impostors="same_group" if mode == "same_group" else "all",
                       sides=sides, tile=16)
    people = scan.people_counts(th)
    mapping = np.tile(np.array([0, 1, 0]), people.n_cells // 3)
    listed = cell_data_from_pairs(_listed(subj, cell, emb, mode, sides), cell, 3, th, subjects=subj, side=sides).people
    a = stratum_counts(people, mapping, 2, sigma, 3, n_replicates=6, seed=2)
    b = stratum_counts(listed, mapping, 2, sigma, 3, n_replicates=6, seed=2)
    for x, y in ((a.imp, b.imp), (a.fm, b.fm), (a.rep_imp, b.rep_imp), (a.rep_fm, b.rep_fm), (a.rep_mated, b.rep_mated)):
        np.testing.assert_allclose(x, y)


@pytest.mark.parametrize("operating_point", [False, True])
def test_one_stratum_gives_the_crude_comparison(operating_point):
    """With a single stratum every step is the crude reference comparison's: same ratio, same
    interval (FNMR at a target-FMR threshold at each replicate's re-estimated threshold too)."""
    subj, cell, emb = _dataset(seed=8, people=40, cells=3)
    pairs = _all_pairs(subj, emb)
    imp = np.sort(pairs.impostor_score)[::-1]
    th = np.array([np.nextafter(imp[int(0.05 * imp.size)], np.inf), 0.35])  # the first at FMR 0.05
    data = cell_data_from_pairs(pairs, cell, 3, th, subjects=subj)
    mapping, g = np.array([0, 1, 2]), 3
    targets = [0.05, None] if operating_point else None
    rep = people_bootstrap(data.people, mapping, g, n_replicates=200, seed=3, targets=targets)
    pi = people_intervals(data.people, rep, mapping, g)
    op = rep.op_threshold if operating_point else None
    op_cols = np.isfinite(op).mean(axis=0) >= 0.9 if operating_point else np.zeros(2, bool)
    assert op_cols.tolist() == ([True, False] if operating_point else [False, False])
    sc = stratum_counts(data.people, mapping, g, np.zeros(data.people.n_people, np.int64), 1, n_replicates=200, seed=3, op_threshold=op)
    groups = ["a", "b", "c"]
    for k in range(th.size):
        for metric, e, n in (("fmr", rep.point_fm[:g, k], rep.point_imp[:g]), ("fnmr", rep.point_fnm[:g, k], rep.point_mated[:g])):
            crude = compare_to_reference(groups, e / n, n, e, pi[metric][:, :g, k], 0)
            adj = adjusted_comparisons(groups, sc, metric, k, 0, op_column=bool(metric == "fnmr" and op_cols[k]))
            assert [c.group for c in crude] == [a.group for a in adj] == ["b", "c"]
            for c, a in zip(crude, adj):
                for got in ((a.crude, a.crude_low, a.crude_high), (a.adjusted, a.adjusted_low, a.adjusted_high)):
                    np.testing.assert_allclose(got, (c.ratio, c.ratio_low, c.ratio_high))
                assert a.p_adjusted == pytest.approx(c.p_adjusted)
                assert a.strata_used == 1 and a.strata_missing == ()


def test_planted_confounding_is_removed():
    """Group 1 is mostly stratum 1, where everyone errs more; within strata the groups are alike."""
    rng = np.random.default_rng(0)
    n = 160
    group = np.repeat([0, 1], n // 2)
    stratum = np.where(rng.random(n) < np.where(group == 0, 0.15, 0.85), 1, 0)
    subj = np.repeat(np.arange(n), 2)
    # a person's images sit near a random point; stratum 1 people crowd together (more false matches)
    centre = rng.normal(size=(n, 16)) + np.where(stratum == 1, 2.0, 0.0)[:, None] * np.eye(16)[0]
    emb = centre[subj] + 0.35 * rng.normal(size=(subj.size, 16))
    pairs = _all_pairs(subj, emb)
    imp = np.sort(pairs.impostor_score)
    th = np.array([imp[int(0.99 * imp.size)]])
    data = cell_data_from_pairs(pairs, group[subj], 2, th, subjects=subj)
    sc = stratum_counts(data.people, np.array([0, 1]), 2, stratum, 2, n_replicates=300, seed=1)
    (a,) = adjusted_comparisons(["g0", "g1"], sc, "fmr", 0, 0)
    assert a.crude > 2 and a.crude_low > 1  # the crude comparison shows a difference
    assert a.adjusted_low < 1 < a.adjusted_high and abs(np.log(a.adjusted)) < abs(np.log(a.crude)) / 3
    assert a.strata_used == 3
