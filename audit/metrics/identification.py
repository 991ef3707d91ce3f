"""1:N identification metrics: FPIR, FNIR, CMC, the threshold at a target FPIR, and tests of
whether false matches fall on one group more than its share.

Pure numpy/scipy over candidate lists: no I/O, no backends, no groups-as-code. Definitions follow
NIST FRVT 1:N (NISTIR 8271, 8280 §6) and ISO/IEC 19795-1.

Inputs
------
A *search* compares one probe with every enrolled gallery subject and returns a *candidate list*:
up to ``k`` gallery subjects with their scores, best first.

candidate_scores : ndarray of float, shape (n, k)
    Similarity of each candidate (higher = more alike), each row in descending order. A list with
    fewer than ``k`` candidates is padded with ``-inf`` (a probe that failed to acquire, or a
    search service that returned fewer candidates).
candidate_subjects : ndarray of int, shape (n, k)
    Subject code of each candidate (``-1`` for padding).
probe_subjects : ndarray of int, shape (n,)
    Subject code of each probe. A probe is *mated* when its subject is enrolled (its mate can be
    in the list) and *non-mated* when it is not.

Tie rule: a candidate is *returned* at threshold ``t`` when ``score >= t`` (a tie is returned),
as :mod:`audit.metrics.rates` has it for 1:1.

- **FPIR(t)** (false positive identification rate): the share of non-mated searches whose top
  candidate scores ``>= t``. With a candidate list of any length this is the same as "any
  candidate ``>= t``", since the list is sorted.
- **FNIR(t, R)** (false negative identification rate): the share of mated searches whose mate is
  *not* returned at rank ``<= R`` with score ``>= t``.
- **CMC / rank-k identification rate** (threshold-free): the share of mated searches whose mate is
  at rank ``<= k``. ``FNIR(-inf, k) = 1 - rank-k rate``.
- **Threshold at a target FPIR**: the smallest threshold whose FPIR over *all* non-mated
  searches is at most the target (:func:`threshold_at_fpir`); then every group is measured at
  that one threshold.

Rates carry their counts and a 95% interval (:class:`audit.metrics.rates.Rate`), Wilson's unless
``method="clopper-pearson"`` is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from audit.errors import MetricError

from .rates import Rate, rate_from_counts
from .thresholds import _allowed_false_matches, _just_above
from .uncertainty import _check_target_fmr, interval_arrays

__all__ = [
    "MateHits",
    "CMC_COLUMNS",
    "SHARE_TEST_COLUMNS",
    "CANDIDATE_TEST_COLUMNS",
    "find_mates",
    "fpir_counts",
    "fnir_counts",
    "fpir",
    "fnir",
    "cmc",
    "threshold_at_fpir",
    "false_candidate_mask",
    "share_tests",
    "candidate_share_tests",
]

#: Columns of the DataFrame :func:`cmc` returns.
CMC_COLUMNS = ["rank", "hits", "searches", "value", "ci_low", "ci_high", "ci_method"]

#: Columns of the DataFrame :func:`candidate_share_tests` returns (one row per group, in input order).
CANDIDATE_TEST_COLUMNS = ["gallery_subjects", "gallery_share", "false_candidates", "candidate_share", "ratio", "binom_p"]

#: Columns of the DataFrame :func:`share_tests` returns (one row per group, in input order).
SHARE_TEST_COLUMNS = [
    "total", "total_share", "flagged", "flagged_share", "ratio",
    "binom_p", "fisher_odds_ratio", "fisher_p",
]


@dataclass(frozen=True, eq=False)
class MateHits:
    """Where each probe's mate is in its candidate list.

    Attributes
    ----------
    rank : ndarray of int64, shape (n,)
        1-based rank of the first candidate whose subject is the probe's; ``0`` when the mate is
        not in the list (always so for non-mated probes).
    score : ndarray of float64, shape (n,)
        That candidate's score; ``-inf`` when the mate is not in the list.
    """

    rank: np.ndarray
    score: np.ndarray


# ------------------------------------------------------------------------------ validation
def _lists(candidate_scores: ArrayLike, candidate_subjects: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(candidate_scores, dtype=np.float64)
    c = np.asarray(candidate_subjects)
    if s.ndim != 2:
        raise MetricError(f"candidate_scores must be a 2-D array (searches, k), got shape {s.shape}")
    if c.shape != s.shape:
        raise MetricError(
            f"candidate_subjects must have the shape of candidate_scores {s.shape}, got {c.shape}; "
            "pass one subject code per candidate (-1 for padding)"
        )
    if not np.issubdtype(c.dtype, np.integer):
        raise MetricError(f"candidate_subjects must hold integer subject codes, got dtype {c.dtype}")
    if np.isnan(s).any() or np.isposinf(s).any():
        raise MetricError("candidate_scores contain NaN or +inf; pad missing candidates with -inf instead")
    rising = s[:, 1:] > s[:, :-1]
    if rising.any():
        bad = int(np.flatnonzero(rising.any(axis=1))[0])
        raise MetricError(
            f"each candidate list must be sorted best first (descending scores); row {bad} is not: {s[bad].tolist()}"
        )
    return s, c.astype(np.int64)


def _vector(x: ArrayLike, name: str, n: int | None = None, *, dtype=np.float64) -> np.ndarray:
    v = np.asarray(x, dtype=dtype)
    if v.ndim != 1:
        raise MetricError(f"{name} must be a 1-D array, got shape {v.shape}")
    if n is not None and v.shape[0] != n:
        raise MetricError(f"{name} must have {n} entries (one per search), got {v.shape[0]}")
    return v


def _top_scores(x: ArrayLike, name: str = "top_scores") -> np.ndarray:
    v = _vector(x, name)
    if np.isnan(v).any() or np.isposinf(v).any():
        raise MetricError(f"{name} contain NaN or +inf; a search that returned no candidate has top score -inf")
    return v


def _thresholds(thresholds: ArrayLike) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or np.isnan(t).any():
        raise MetricError(f"thresholds must be a number or a 1-D array of numbers (no NaN), got {thresholds!r}")
    return t


def _rank(rank: int, name: str = "rank") -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise MetricError(f"{name} must be an integer >= 1, got {rank!r}")
    return int(rank)


# ------------------------------------------------------------------------------ counting core
def find_mates(candidate_scores: ArrayLike, candidate_subjects: ArrayLike, probe_subjects: ArrayLike) -> MateHits:
    """Locate each probe's mate in its candidate list.

    Parameters
    ----------
    candidate_scores : array_like of float, shape (n, k)
        Each row sorted best first; ``-inf`` pads missing candidates.
    candidate_subjects : array_like of int, shape (n, k)
        ``-1`` pads missing candidates.
    probe_subjects : array_like of int, shape (n,)

    Returns
    -------
    MateHits
        The first (best-ranked) candidate of the probe's subject; rank 0 and score ``-inf`` when
        absent. A padded slot never counts as the mate.

    Examples
    --------
    >>> h = find_mates([[0.9, 0.5], [0.8, 0.1]], [[7, 3], [4, 5]], [3, 9])
    >>> h.rank.tolist(), h.score.tolist()
    ([2, 0], [0.5, -inf])
    """
    s, c = _lists(candidate_scores, candidate_subjects)
    p = _vector(probe_subjects, "probe_subjects", s.shape[0], dtype=np.int64)
    hit = (c == p[:, None]) & (c >= 0) & np.isfinite(s)
    found = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    rank = np.where(found, first + 1, 0).astype(np.int64)
    score = np.where(found, s[np.arange(s.shape[0]), first] if s.shape[1] else -np.inf, -np.inf).astype(np.float64)
    return MateHits(rank=rank, score=score)


def fpir_counts(top_scores: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """False positives of non-mated searches at each threshold: ``#{top_score >= t}``.

    Parameters
    ----------
    top_scores : array_like of float, shape (n,)
        Best candidate score of each non-mated search (``-inf`` when it returned none).
    thresholds : float or array_like of float, shape (m,)

    Returns
    -------
    ndarray of int64, shape (m,)

    Examples
    --------
    >>> fpir_counts([0.3, 0.5, 0.5, -np.inf], [0.5, 0.6]).tolist()   # a tie is returned
    [2, 0]
    """
    s = np.sort(_top_scores(top_scores))
    t = _thresholds(thresholds)
    return (s.size - np.searchsorted(s, t, side="left")).astype(np.int64)


def fnir_counts(mate_rank: ArrayLike, mate_score: ArrayLike, thresholds: ArrayLike, *, rank: int = 1) -> np.ndarray:
    """Misses of mated searches at each threshold: mate not at rank ``<= rank`` with score ``>= t``.

    Parameters
    ----------
    mate_rank : array_like of int, shape (n,)
        1-based rank of the mate, ``0`` when absent (:attr:`MateHits.rank`).
    mate_score : array_like of float, shape (n,)
        The mate's score, ``-inf`` when absent.
    thresholds : float or array_like of float, shape (m,)
    rank : int, default 1
        The largest rank that counts as found (NIST's ``R``).

    Returns
    -------
    ndarray of int64, shape (m,)

    Examples
    --------
    >>> fnir_counts([1, 2, 0, 1], [0.7, 0.9, -np.inf, 0.5], [0.5, 0.7], rank=1).tolist()
    [2, 3]
    """
    r = _vector(mate_rank, "mate_rank", dtype=np.int64)
    s = _vector(mate_score, "mate_score", r.shape[0])
    if np.isnan(s).any():
        raise MetricError("mate_score contains NaN; an absent mate has score -inf")
    R = _rank(rank)
    eligible = np.sort(s[(r >= 1) & (r <= R)])
    t = _thresholds(thresholds)
    found = eligible.size - np.searchsorted(eligible, t, side="left")
    return (r.shape[0] - found).astype(np.int64)


def fpir(top_scores: ArrayLike, threshold: float, *, confidence: float = 0.95, method: str = "wilson") -> Rate:
    """FPIR at one threshold, with counts and an interval (``method``: ``"wilson"`` or
    ``"clopper-pearson"``).

    Examples
    --------
    >>> r = fpir([0.3, 0.5, 0.5, -np.inf], 0.5)
    >>> r.errors, r.trials, r.value
    (2, 4, 0.5)
    """
    s = _top_scores(top_scores)
    e = int(fpir_counts(s, [threshold])[0])
    return rate_from_counts(e, int(s.size), confidence=confidence, method=method)


def fnir(mate_rank: ArrayLike, mate_score: ArrayLike, threshold: float, *, rank: int = 1,
         confidence: float = 0.95, method: str = "wilson") -> Rate:
    """FNIR at one threshold and rank, with counts and an interval (``method``: ``"wilson"`` or
    ``"clopper-pearson"``).

    Examples
    --------
    >>> r = fnir([1, 2, 0, 1], [0.7, 0.9, -np.inf, 0.5], 0.5, rank=2)
    >>> r.errors, r.trials
    (1, 4)
    """
    r = _vector(mate_rank, "mate_rank", dtype=np.int64)
    e = int(fnir_counts(r, mate_score, [threshold], rank=rank)[0])
    return rate_from_counts(e, int(r.size), confidence=confidence, method=method)


def cmc(mate_rank: ArrayLike, *, max_rank: int, confidence: float = 0.95, method: str = "wilson") -> pd.DataFrame:
    """Cumulative match characteristic: the rank-k identification rate for k = 1..max_rank.

    Threshold-free: a mated search is a hit at rank k when its mate is among its first k
    candidates, whatever the score.

    Parameters
    ----------
    mate_rank : array_like of int, shape (n,)
        Of mated searches only (0 = mate absent from the list).
    max_rank : int
        Usually the candidate list length ``k``.
    confidence : float, default 0.95
        Two-sided coverage of the intervals.
    method : {"wilson", "clopper-pearson"}, default "wilson"
        Interval method (:func:`audit.metrics.interval_arrays`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CMC_COLUMNS`, one row per rank; ``value = hits / searches`` with an
        interval by ``method`` (``nan`` when there are no mated searches).

    Examples
    --------
    >>> cmc([1, 2, 0, 1], max_rank=3)[["rank", "hits", "value"]].values.tolist()
    [[1.0, 2.0, 0.5], [2.0, 3.0, 0.75], [3.0, 3.0, 0.75]]
    """
    r = _vector(mate_rank, "mate_rank", dtype=np.int64)
    K = _rank(max_rank, "max_rank")
    ranks = np.arange(1, K + 1)
    found = r[r >= 1]
    hits = np.searchsorted(np.sort(found), ranks, side="right").astype(np.int64)
    n = np.full(K, r.size, dtype=np.int64)
    ci = interval_arrays(hits, n, method=method, confidence=confidence)
    value = hits / r.size if r.size else np.full(K, np.nan)
    return pd.DataFrame({
        "rank": ranks, "hits": hits, "searches": n, "value": value,
        "ci_low": np.asarray(ci.low), "ci_high": np.asarray(ci.high), "ci_method": ci.method,
    }, columns=CMC_COLUMNS)


def threshold_at_fpir(nonmated_top_scores: ArrayLike, target_fpir: float) -> float:
    """The smallest threshold whose FPIR over these non-mated searches is at most the target.

    The same rule as :func:`audit.metrics.threshold_at_fmr`, on the top candidate score of each
    non-mated search: with ``n`` searches at most ``k = floor(target_fpir * n)`` may return a
    candidate. With the finite top scores in descending order ``s_1 >= s_2 >= ...``:

    - if at most ``k`` searches returned any candidate at all, every candidate may be returned and
      the lowest finite top score is returned (``-inf`` when no search returned a candidate);
    - otherwise ``t = nextafter(s_{k+1}, +inf)`` (float64): ``#{s >= t} = #{s > s_{k+1}} <= k``,
      and any threshold ``<= s_{k+1}`` returns ``k + 1`` or more.

    Ties: searches whose top score equals ``s_{k+1}`` all fall below ``t``, so the achieved FPIR
    can be below the target; it never exceeds it. The result does not depend on the order of the
    scores.

    Parameters
    ----------
    nonmated_top_scores : array_like of float, shape (n,)
        Every non-mated search (one threshold for everyone), ``-inf`` for those with no candidate;
        must not be empty.
    target_fpir : float
        In (0, 1].

    Returns
    -------
    float

    Raises
    ------
    MetricError
        No searches, NaN or +inf scores, or a target outside (0, 1].

    Examples
    --------
    >>> s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    >>> t = threshold_at_fpir(s, 0.2)    # k = 2: 1.0 and 0.9 may be returned, 0.8 must not
    >>> 0.8 < t < 0.8 + 1e-12, fpir(s, t).value
    (True, 0.2)
    """
    s = _top_scores(nonmated_top_scores, "nonmated_top_scores")
    if s.size == 0:
        raise MetricError("threshold_at_fpir needs at least one non-mated search; the probe set has none")
    target = _check_target_fmr(target_fpir, "target_fpir")
    n = s.size
    k = _allowed_false_matches(target, n)
    finite = s[np.isfinite(s)]
    if k >= finite.size:
        return float(finite.min()) if finite.size else -math.inf
    pos = finite.size - k - 1
    value = np.partition(finite, pos)[pos]
    return _just_above(float(value), np.dtype(np.float64))


def false_candidate_mask(candidate_scores: ArrayLike, candidate_subjects: ArrayLike, probe_subjects: ArrayLike,
                         threshold: float) -> np.ndarray:
    """Which candidates are false matches at ``threshold``: returned (``score >= threshold``) and
    of another subject than the probe's.

    For a non-mated probe every returned candidate is false; for a mated probe every returned
    candidate other than its mate's subject.

    Returns
    -------
    ndarray of bool, shape (n, k)

    Examples
    --------
    >>> false_candidate_mask([[0.9, 0.8], [0.7, -np.inf]], [[3, 4], [5, -1]], [3, 1], 0.75).tolist()
    [[False, True], [False, False]]
    """
    s, c = _lists(candidate_scores, candidate_subjects)
    p = _vector(probe_subjects, "probe_subjects", s.shape[0], dtype=np.int64)
    t = float(threshold)
    if math.isnan(t):
        raise MetricError("threshold must be a number, got NaN")
    return (s >= t) & (c >= 0) & (c != p[:, None])


def share_tests(flagged: Sequence[int] | np.ndarray, totals: Sequence[int] | np.ndarray, *,
                fisher: bool = True) -> pd.DataFrame:
    """Do flagged items fall on a group more than its share? One-sided exact tests per group.

    With ``N = sum(totals)`` items (probes) of which ``F = sum(flagged)`` are flagged (had a false
    match), group ``g`` holds ``n_g`` items and ``f_g`` flagged ones.

    - **Binomial** (``binom_p``): under the null each flagged item falls in group ``g`` with
      probability ``n_g / N``; ``P(X >= f_g)`` for ``X ~ Binomial(F, n_g / N)``
      (``scipy.stats.binomtest(..., alternative="greater")``).
    - **Fisher** (``fisher_p``, ``fisher_odds_ratio``): the 2×2 table group vs the rest × flagged
      vs not, ``[[f_g, n_g - f_g], [F - f_g, (N - n_g) - (F - f_g)]]``, one-sided
      (``alternative="greater"``: the group's odds of being flagged exceed the rest's).

    ``ratio = (f_g / F) / (n_g / N)``: 1 means the group gets its share of the flags, 2 twice it.
    Tests are ``nan`` where undefined (no flagged item; a group that is everything or empty).
    Both treat items as independent; several probes of one subject are not, so read the p-values
    as indications when subjects have many probes.

    Parameters
    ----------
    flagged : array_like of int, shape (g,)
    totals : array_like of int, shape (g,)
        ``0 <= flagged <= totals``.
    fisher : bool, default True
        Set False where a 2×2 table does not describe the data (e.g. false candidates against
        gallery subjects, which are not the same units); the Fisher columns are then ``nan``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SHARE_TEST_COLUMNS`, one row per group in input order.

    Examples
    --------
    The ACLU's 2018 test of Amazon Rekognition: 28 of 535 members of Congress were falsely
    matched; 11 of the 28 were people of colour, who were about 20% of Congress (107 of 535):

    >>> t = share_tests([11, 17], [107, 428])
    >>> round(float(t.ratio[0]), 2), round(float(t.binom_p[0]), 4)
    (1.96, 0.0149)
    """
    f = np.asarray(flagged)
    n = np.asarray(totals)
    for name, v in (("flagged", f), ("totals", n)):
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer) and not (v.size == 0):
            raise MetricError(f"{name} must be a 1-D array of integer counts, got {v!r}")
    if f.shape != n.shape:
        raise MetricError(f"flagged and totals must have the same shape, got {f.shape} and {n.shape}")
    f = f.astype(np.int64)
    n = n.astype(np.int64)
    if np.any(f < 0) or np.any(f > n):
        raise MetricError(f"each group needs 0 <= flagged <= totals; got flagged={f.tolist()}, totals={n.tolist()}")
    N, F = int(n.sum()), int(f.sum())
    rows = []
    for fg, ng in zip(f.tolist(), n.tolist()):
        share = ng / N if N else math.nan
        fshare = fg / F if F else math.nan
        ratio = fshare / share if (F and share > 0) else math.nan
        binom_p = math.nan
        if F and 0 < share < 1:
            binom_p = float(stats.binomtest(fg, F, share, alternative="greater").pvalue)
        elif F and share == 1:
            binom_p = 1.0
        odds, fisher_p = math.nan, math.nan
        if fisher and F and 0 < ng < N:
            res = stats.fisher_exact([[fg, ng - fg], [F - fg, (N - ng) - (F - fg)]], alternative="greater")
            odds, fisher_p = float(res.statistic), float(res.pvalue)
        rows.append((ng, share, fg, fshare, ratio, binom_p, odds, fisher_p))
    return pd.DataFrame(rows, columns=SHARE_TEST_COLUMNS)


def candidate_share_tests(false_candidates: Sequence[int] | np.ndarray, gallery_subjects: Sequence[int] | np.ndarray) -> pd.DataFrame:
    """Do false candidates fall on a gallery group more than its share of enrolled subjects?

    With ``C = sum(false_candidates)`` false candidates returned over all searches and
    ``S = sum(gallery_subjects)`` enrolled subjects, group ``g`` (``s_g`` subjects) was returned
    ``c_g`` times. Under the null every false candidate is group ``g`` with probability
    ``s_g / S``: ``binom_p = P(X >= c_g)``, ``X ~ Binomial(C, s_g / S)``, one-sided. ``ratio`` is
    ``(c_g / C) / (s_g / S)``. A subject returned for many probes counts each time, and those
    draws are not independent: read the p-value as an indication.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CANDIDATE_TEST_COLUMNS`, one row per group in input order; tests ``nan``
        when no false candidate was returned.

    Examples
    --------
    >>> t = candidate_share_tests([6, 2], [10, 30])
    >>> t.ratio.round(2).tolist(), round(float(t.binom_p[0]), 4)
    ([3.0, 0.33], 0.0042)
    """
    c = np.asarray(false_candidates)
    s = np.asarray(gallery_subjects)
    for name, v in (("false_candidates", c), ("gallery_subjects", s)):
        if v.ndim != 1 or (v.size and not np.issubdtype(v.dtype, np.integer)) or (v.size and v.min() < 0):
            raise MetricError(f"{name} must be a 1-D array of non-negative integer counts, got {v!r}")
    if c.shape != s.shape:
        raise MetricError(f"false_candidates and gallery_subjects must have the same shape, got {c.shape} and {s.shape}")
    C, S = int(c.sum()), int(s.sum())
    rows = []
    for cg, sg in zip(c.astype(np.int64).tolist(), s.astype(np.int64).tolist()):
        share = sg / S if S else math.nan
        cshare = cg / C if C else math.nan
        ratio = cshare / share if (C and share > 0) else math.nan
        p = math.nan
        if C and 0 < share < 1:
            p = float(stats.binomtest(cg, C, share, alternative="greater").pvalue)
        elif C and share == 1:
            p = 1.0
        rows.append((sg, share, cg, cshare, ratio, p))
    return pd.DataFrame(rows, columns=CANDIDATE_TEST_COLUMNS)
