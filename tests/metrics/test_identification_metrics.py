"""1:N metrics on candidate lists small enough to check by hand (ties at the threshold included)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from audit.errors import MetricError
from audit.metrics.identification import (
    candidate_share_tests,
    cmc,
    false_candidate_mask,
    find_mates,
    fnir,
    fnir_counts,
    fpir,
    fpir_counts,
    share_tests,
    threshold_at_fpir,
)

# Gallery subjects A=0, B=1, C=2. Six searches, k = 3, best first.
#   p1 mated A   : A .9, B .5, C .2   -> mate rank 1, score .9
#   p2 mated B   : A .7, B .6, C .1   -> mate rank 2, score .6
#   p3 mated C   : A .4, B .3, C .2   -> mate rank 3, score .2
#   p4 non-mated : B .6, A .5, C .1   -> top .6
#   p5 non-mated : C .5, A .4, B .3   -> top .5
#   p6 non-mated : A .3, B .2, C .1   -> top .3
SCORES = np.array([[.9, .5, .2], [.7, .6, .1], [.4, .3, .2], [.6, .5, .1], [.5, .4, .3], [.3, .2, .1]])
SUBJECTS = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [1, 0, 2], [2, 0, 1], [0, 1, 2]])
PROBES = np.array([0, 1, 2, -1, -1, -1])
MATED = PROBES >= 0


def hits():
    return find_mates(SCORES, SUBJECTS, PROBES)


def test_find_mates_ranks_and_scores():
    h = hits()
    assert h.rank.tolist() == [1, 2, 3, 0, 0, 0]
    assert h.score[:3].tolist() == [.9, .6, .2]
    assert np.isneginf(h.score[3:]).all()


def test_padding_never_counts_as_mate():
    h = find_mates([[0.9, -np.inf]], [[3, -1]], [-1])
    assert h.rank.tolist() == [0]


def test_fpir_by_hand_with_ties_at_the_threshold():
    top = SCORES[~MATED, 0]                                   # .6, .5, .3
    assert fpir_counts(top, [0.5, 0.6, 0.6 + 1e-12, 0.3, 0.0]).tolist() == [2, 1, 0, 3, 3]
    r = fpir(top, 0.5)                                        # .5 is a tie: returned
    assert (r.errors, r.trials, r.value) == (2, 3, 2 / 3)
    assert r.ci_method == "wilson" and r.ci_low < 2 / 3 < r.ci_high


def test_a_search_with_no_candidate_is_never_a_false_positive():
    assert fpir_counts([0.6, -np.inf], [-1e9]).tolist() == [1]


def test_fnir_by_hand_at_ranks_and_ties():
    h = hits()
    r, s = h.rank[MATED], h.score[MATED]
    assert fnir_counts(r, s, [0.6], rank=1).tolist() == [2]   # p2 at rank 2, p3 at rank 3
    assert fnir_counts(r, s, [0.6], rank=2).tolist() == [1]   # p2's mate scores .6 = t: returned
    assert fnir_counts(r, s, [0.2], rank=3).tolist() == [0]   # p3's mate at .2 = t: returned
    assert fnir_counts(r, s, [0.2 + 1e-12], rank=3).tolist() == [1]
    assert fnir_counts(r, s, [-np.inf], rank=3).tolist() == [0]
    f = fnir(r, s, 0.6, rank=2)
    assert (f.errors, f.trials) == (1, 3)


def test_fnir_at_no_threshold_is_one_minus_the_cmc():
    h = hits()
    c = cmc(h.rank[MATED], max_rank=3)
    assert c["hits"].tolist() == [1, 2, 3]
    assert c["value"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    for k in (1, 2, 3):
        miss = fnir_counts(h.rank[MATED], h.score[MATED], [-np.inf], rank=k)[0]
        assert miss / 3 == pytest.approx(1 - c["value"][k - 1])


def test_cmc_with_no_mated_searches_is_nan():
    c = cmc(np.zeros(0, np.int64), max_rank=2)
    assert c["searches"].tolist() == [0, 0] and c["value"].isna().all()


@pytest.mark.parametrize("target, expected_fpir", [(1 / 3, 1 / 3), (0.5, 1 / 3), (0.2, 0.0), (1.0, 1.0), (2 / 3, 2 / 3)])
def test_threshold_at_fpir_is_the_smallest_meeting_the_target(target, expected_fpir):
    top = np.array([0.6, 0.5, 0.3])
    t = threshold_at_fpir(top, target)
    got = fpir(top, t).value
    assert got == pytest.approx(expected_fpir) and got <= target + 1e-12
    # minimal: any lower threshold that changes the count breaks the target
    lower = np.nextafter(t, -np.inf)
    if got < 1.0:
        assert fpir(top, lower).value > target


def test_threshold_at_fpir_with_ties_stays_below_the_target():
    top = np.array([0.6, 0.6, 0.3])
    t = threshold_at_fpir(top, 1 / 3)                        # k = 1, but .6 is tied: neither may match
    assert 0.6 < t < 0.6 + 1e-12
    assert fpir(top, t).value == 0.0


def test_threshold_at_fpir_with_empty_candidate_lists():
    top = np.array([0.6, -np.inf, -np.inf, 0.5])
    t = threshold_at_fpir(top, 0.5)                          # k = 2 >= 2 searches with a candidate
    assert t == 0.5 and fpir(top, t).value == 0.5
    assert threshold_at_fpir([-np.inf, -np.inf], 0.1) == -math.inf


def test_threshold_at_fpir_rejects_bad_input():
    with pytest.raises(MetricError, match="at least one non-mated search"):
        threshold_at_fpir([], 0.1)
    with pytest.raises(MetricError, match="target_fpir"):
        threshold_at_fpir([0.1], 0)
    with pytest.raises(MetricError, match="NaN"):
        threshold_at_fpir([np.nan], 0.1)


def test_false_candidates_by_hand():
    m = false_candidate_mask(SCORES, SUBJECTS, PROBES, 0.5)
    assert m.tolist() == [
        [False, True, False],    # p1 (A): B at .5 is a tie, so returned, and wrong
        [True, False, False],    # p2 (B): A .7 wrong, B .6 its own
        [False, False, False],   # p3: nothing at or above .5
        [True, True, False],     # p4 non-mated: B .6, A .5
        [True, False, False],    # p5 non-mated: C .5
        [False, False, False],
    ]


def test_candidate_lists_must_be_sorted_and_shaped():
    with pytest.raises(MetricError, match="sorted best first"):
        find_mates([[0.1, 0.9]], [[0, 1]], [0])
    with pytest.raises(MetricError, match="shape"):
        find_mates([[0.9, 0.1]], [[0]], [0])
    with pytest.raises(MetricError, match="rank must be"):
        fnir_counts([1], [0.5], [0.1], rank=0)


def test_share_tests_match_scipy_on_a_hand_case():
    # has_false from the case above at t = .5: p1, p2, p4, p5; groups X = {p1, p2, p4}, Y = {p3, p5, p6}
    t = share_tests([3, 1], [3, 3])
    assert t["total"].tolist() == [3, 3] and t["flagged"].tolist() == [3, 1]
    assert t["total_share"].tolist() == [0.5, 0.5]
    assert t["flagged_share"].tolist() == [0.75, 0.25]
    assert t["ratio"].tolist() == pytest.approx([1.5, 0.5])
    # binomial: P(Bin(4, 1/2) >= 3) = 5/16; Fisher: hypergeometric P(X >= 3), N=6, K=4 flagged, n=3 -> 4/20
    assert t["binom_p"][0] == pytest.approx(5 / 16)
    assert t["fisher_p"][0] == pytest.approx(4 / 20)
    assert t["binom_p"][0] == pytest.approx(stats.binomtest(3, 4, 0.5, alternative="greater").pvalue)
    res = stats.fisher_exact([[3, 0], [1, 2]], alternative="greater")
    assert t["fisher_p"][0] == pytest.approx(res.pvalue) and math.isinf(t["fisher_odds_ratio"][0])
    assert t["binom_p"][1] == pytest.approx(stats.binomtest(1, 4, 0.5, alternative="greater").pvalue)


def test_share_tests_aclu_congress():
    t = share_tests([11, 17], [107, 428])
    assert t["ratio"][0] == pytest.approx((11 / 28) / (107 / 535))
    assert t["binom_p"][0] == pytest.approx(stats.binomtest(11, 28, 107 / 535, alternative="greater").pvalue)


def test_share_tests_edge_cases():
    t = share_tests([0, 0], [5, 5])                          # no false match: nothing to test
    assert t["binom_p"].isna().all() and t["fisher_p"].isna().all()
    one = share_tests([2], [5])                              # a single group is everything
    assert one["binom_p"][0] == 1.0 and math.isnan(one["fisher_p"][0])
    with pytest.raises(MetricError, match="flagged <= totals"):
        share_tests([3], [2])


def test_candidate_share_tests_allow_more_candidates_than_subjects():
    t = candidate_share_tests([6, 2], [10, 30])
    assert t["ratio"].tolist() == pytest.approx([3.0, 1 / 3])
    assert t["binom_p"][0] == pytest.approx(stats.binomtest(6, 8, 0.25, alternative="greater").pvalue)
    t = candidate_share_tests([50, 0], [1, 1])               # one person returned 50 times
    assert t["binom_p"][0] == pytest.approx(0.5 ** 50)


def test_relabelling_groups_permutes_the_tests():
    a = share_tests([3, 1, 4], [10, 20, 30])
    b = share_tests([4, 3, 1], [30, 10, 20])
    assert a.iloc[[2, 0, 1]].reset_index(drop=True).equals(b)
