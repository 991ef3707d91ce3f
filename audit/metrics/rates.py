"""False match and false non-match rates, thresholds at a target FMR, and DET curves.

Pure numpy/pandas: no I/O. Scores are similarities (higher means more alike) and a comparison
MATCHES when ``score >= threshold``; a score equal to the threshold counts as a match. So

- FMR(t)  = #{impostor scores >= t} / #impostor scores   (false matches)
- FNMR(t) = #{genuine scores  <  t} / #genuine scores    (false non-matches)

Counting over many thresholds goes through one core (:func:`error_counts`): the scores are
sorted once and every threshold is located with ``np.searchsorted(..., side="left")``, which
encodes the tie rule: ``searchsorted(sorted, t, "left")`` is the number of scores ``< t``.
:func:`fmr` and :func:`fnmr` at a single threshold count with the same comparisons
(``>= t`` and ``< t``) without sorting.

Scores must be 1-D and finite; NaN or infinite scores raise :class:`~audit.errors.MetricError`
(a backend that failed on a pair should have given it a status, not a NaN score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from audit.errors import MetricError

from .uncertainty import check_interval_method, Interval, clopper_pearson_interval, wilson_interval

__all__ = [
    "Rate",
    "ErrorCounts",
    "CI_METHODS",
    "rate_from_counts",
    "fmr",
    "fnmr",
    "error_counts",
    "det_curve",
]

#: The interval methods a :class:`Rate` can carry.
CI_METHODS = ("wilson", "clopper-pearson")

#: Columns of the DataFrame returned by :func:`det_curve`, in order.
DET_COLUMNS = ["threshold", "fmr", "fnmr"]


@dataclass(frozen=True)
class Rate:
    """An error rate with the counts behind it and a confidence interval.

    Attributes
    ----------
    value : float
        ``errors / trials``; ``nan`` when ``trials == 0``.
    errors : int
        Number of errors (false matches for an FMR, false non-matches for an FNMR).
    trials : int
        Number of comparisons the errors were counted over.
    ci_low, ci_high : float
        Bounds of the confidence interval; ``nan`` when ``trials == 0``.
    ci_method : str
        ``"wilson"`` or ``"clopper-pearson"``.
    """

    value: float
    errors: int
    trials: int
    ci_low: float
    ci_high: float
    ci_method: str


@dataclass(frozen=True, eq=False)
class ErrorCounts:
    """Error counts at many thresholds (the counting core under FMR, FNMR and DET curves).

    Attributes
    ----------
    false_matches : ndarray of int64, shape (m,)
        ``#{impostor scores >= thresholds[j]}``.
    impostors : int
        Number of impostor scores.
    false_non_matches : ndarray of int64, shape (m,)
        ``#{genuine scores < thresholds[j]}``.
    genuines : int
        Number of genuine (mated) scores.
    thresholds : ndarray of float64, shape (m,)
        The thresholds, in the order given.

    All arrays are read-only.
    """

    false_matches: np.ndarray
    impostors: int
    false_non_matches: np.ndarray
    genuines: int
    thresholds: np.ndarray

    @property
    def fmr(self) -> np.ndarray:
        """``false_matches / impostors``, shape (m,); all ``nan`` when there are no impostors."""
        if self.impostors == 0:
            return np.full(self.false_matches.shape, np.nan)
        return self.false_matches / self.impostors

    @property
    def fnmr(self) -> np.ndarray:
        """``false_non_matches / genuines``, shape (m,); all ``nan`` when there are no genuines."""
        if self.genuines == 0:
            return np.full(self.false_non_matches.shape, np.nan)
        return self.false_non_matches / self.genuines


# --------------------------------------------------------------------------------------------
# validation


def _as_scores(x: ArrayLike, name: str, *, allow_empty: bool, allow_failed: bool = False) -> tuple[np.ndarray, np.dtype]:
    """Return ``(scores as float64, the floating dtype the scores came in)``.

    The second item is float16/float32 for such inputs and float64 otherwise; thresholds are
    placed just above a score in that dtype so that they also work when compared in it.
    """
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise MetricError(
            f"{name} must be a 1-D array of real numbers; it could not be read as an array "
            f"({exc}). Pass a numpy array or a list of floats."
        ) from None
    if a.dtype.kind not in "iuf":
        raise MetricError(
            f"{name} must be a 1-D array of real numbers; got dtype {a.dtype}. "
            "Convert the scores to floats first (missing scores must be removed, not None)."
        )
    if a.ndim != 1:
        raise MetricError(
            f"{name} must be 1-D, shape (n,); got shape {a.shape}. "
            "Flatten it, or pass one array per kind of comparison."
        )
    if a.size == 0 and not allow_empty:
        raise MetricError(
            f"{name} must not be empty; got 0 scores. "
            "A threshold cannot be set without impostor comparisons: check the pairing protocol."
        )
    dtype = a.dtype if a.dtype in (np.float16, np.float32) else np.dtype(np.float64)
    s = a.astype(np.float64, copy=False)
    finite = np.isfinite(s)
    if allow_failed:
        finite |= s == -np.inf  # a failed comparison: never a match
    if not finite.all():
        bad = np.flatnonzero(~finite)
        n_nan = int(np.isnan(s[bad]).sum())
        raise MetricError(
            f"{name} must be finite; found {bad.size} non-finite score(s) ({n_nan} NaN, "
            f"{bad.size - n_nan} infinite), the first at index {int(bad[0])}. "
            "Remove failed comparisons (give them a status) before computing rates."
        )
    return s, dtype


def _check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise MetricError(
            f"threshold must be a real number; got {threshold!r}. Pass a similarity value."
        ) from None
    if math.isnan(t):
        raise MetricError(
            "threshold must be a number; got NaN. Check how the threshold was computed "
            "(threshold_at_fmr never returns NaN)."
        )
    return t


def _check_thresholds(thresholds: ArrayLike) -> np.ndarray:
    try:
        t = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricError(
            f"thresholds must be a 1-D array of real numbers; got {thresholds!r}."
        ) from None
    if t.ndim != 1:
        raise MetricError(
            f"thresholds must be 1-D, shape (m,); got shape {t.shape}. "
            "Wrap a single threshold in a list."
        )
    nan = np.flatnonzero(np.isnan(t))
    if nan.size:
        raise MetricError(
            f"thresholds must not be NaN; found {nan.size} NaN(s), the first at index "
            f"{int(nan[0])}. Check how the thresholds were computed."
        )
    return t


def _check_method(method: str) -> str:
    return check_interval_method(method)


# --------------------------------------------------------------------------------------------
# counting core


def _false_matches_sorted(impostor_sorted: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``#{s >= t}`` for each t, on ascending scores: ties count as matches."""
    return impostor_sorted.size - np.searchsorted(impostor_sorted, thresholds, side="left")


def _false_non_matches_sorted(genuine_sorted: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``#{s < t}`` for each t, on ascending scores: ties count as matches."""
    return np.searchsorted(genuine_sorted, thresholds, side="left")


def _counts_sorted(
    genuine_sorted: np.ndarray, impostor_sorted: np.ndarray, thresholds: np.ndarray
) -> ErrorCounts:
    fm = _false_matches_sorted(impostor_sorted, thresholds).astype(np.int64, copy=False)
    fnm = _false_non_matches_sorted(genuine_sorted, thresholds).astype(np.int64, copy=False)
    thr = np.array(thresholds, dtype=np.float64)  # a copy: read-only without touching the caller's
    for arr in (fm, fnm, thr):
        arr.setflags(write=False)
    return ErrorCounts(
        false_matches=fm,
        impostors=int(impostor_sorted.size),
        false_non_matches=fnm,
        genuines=int(genuine_sorted.size),
        thresholds=thr,
    )


def error_counts(
    genuine_scores: ArrayLike, impostor_scores: ArrayLike, thresholds: ArrayLike
) -> ErrorCounts:
    """Count false matches and false non-matches at many thresholds at once.

    Each score array is sorted once; each threshold is then located by binary search, so the
    cost is O((n + m) log n) for n scores and m thresholds. Tie rule: a score equal to the
    threshold is a match, so

    - ``false_matches[j] = #{impostor >= thresholds[j]}``
    - ``false_non_matches[j] = #{genuine < thresholds[j]}``

    Parameters
    ----------
    genuine_scores : array_like of float, shape (n_genuine,)
        Similarity scores of mated comparisons; may be empty (all counts 0).
    impostor_scores : array_like of float, shape (n_impostor,)
        Similarity scores of impostor comparisons; may be empty (all counts 0).
    thresholds : array_like of float, shape (m,)
        Thresholds in any order; ``-inf``/``inf`` are allowed, NaN is not.

    Returns
    -------
    ErrorCounts
        Counts aligned with ``thresholds``, plus the totals; ``.fmr`` and ``.fnmr`` give rates.

    Raises
    ------
    MetricError
        Scores that are not 1-D or not finite; thresholds that are not 1-D or contain NaN.

    Examples
    --------
    >>> c = error_counts([0.5, 0.7, 0.9], [0.1, 0.3, 0.5], [0.3, 0.5])
    >>> c.false_matches.tolist(), c.false_non_matches.tolist()
    ([2, 1], [0, 0])
    """
    g, _ = _as_scores(genuine_scores, "genuine_scores", allow_empty=True)
    i, _ = _as_scores(impostor_scores, "impostor_scores", allow_empty=True)
    t = _check_thresholds(thresholds)
    return _counts_sorted(np.sort(g), np.sort(i), t)


# --------------------------------------------------------------------------------------------
# single rates


def rate_from_counts(
    errors: int, trials: int, *, confidence: float = 0.95, method: str = "wilson"
) -> Rate:
    """Build a :class:`Rate` from counts, with its confidence interval.

    Use it where the counts come from an accumulator rather than from an array of scores.

    Parameters
    ----------
    errors : int
        Number of errors, ``0 <= errors <= trials``.
    trials : int
        Number of comparisons, ``>= 0``.
    confidence : float, default 0.95
        Two-sided coverage of the interval, strictly between 0 and 1.
    method : {"wilson", "clopper-pearson"}, default "wilson"
        Interval method.

    Returns
    -------
    Rate
        ``value = errors / trials`` (``nan`` and a ``nan`` interval when ``trials == 0``).

    Raises
    ------
    MetricError
        Bad counts, ``confidence`` outside (0, 1), or an unknown ``method``.

    Examples
    --------
    >>> r = rate_from_counts(2, 10)
    >>> r.value, r.errors, r.trials, r.ci_method
    (0.2, 2, 10, 'wilson')
    """
    _check_method(method)
    ci: Interval
    if method == "wilson":
        ci = wilson_interval(errors, trials, confidence=confidence)
    else:
        ci = clopper_pearson_interval(errors, trials, confidence=confidence)
    e, n = int(errors), int(trials)
    value = e / n if n else math.nan
    return Rate(value=value, errors=e, trials=n, ci_low=ci.low, ci_high=ci.high, ci_method=method)


def fmr(
    impostor_scores: ArrayLike,
    threshold: float,
    *,
    confidence: float = 0.95,
    method: str = "wilson",
) -> Rate:
    """False match rate: the share of impostor comparisons that match at ``threshold``.

    ``FMR = #{impostor >= threshold} / #impostor``. A score equal to the threshold is a match
    (and so, for impostors, a false match).

    Parameters
    ----------
    impostor_scores : array_like of float, shape (n,)
        Similarity scores of impostor (non-mated) comparisons. May be empty: the rate is then
        ``nan`` with 0 trials.
    threshold : float
        Decision threshold in the same (similarity) units.
    confidence : float, default 0.95
        Two-sided coverage of the interval, strictly between 0 and 1.
    method : {"wilson", "clopper-pearson"}, default "wilson"
        Interval method.

    Returns
    -------
    Rate
        With ``errors`` the false matches and ``trials = n``.

    Raises
    ------
    MetricError
        Scores that are not 1-D or not finite, a NaN threshold, a bad ``confidence`` or
        ``method``.

    Examples
    --------
    >>> r = fmr([0.1, 0.4, 0.5, 0.9], 0.5)   # 0.5 and 0.9 match: 0.5 == threshold counts
    >>> r.errors, r.trials, r.value
    (2, 4, 0.5)
    """
    _check_method(method)
    s, _ = _as_scores(impostor_scores, "impostor_scores", allow_empty=True)
    t = _check_threshold(threshold)
    errors = int(np.count_nonzero(s >= t))
    return rate_from_counts(errors, int(s.size), confidence=confidence, method=method)


def fnmr(
    genuine_scores: ArrayLike,
    threshold: float,
    *,
    confidence: float = 0.95,
    method: str = "wilson",
) -> Rate:
    """False non-match rate: the share of mated comparisons that do not match at ``threshold``.

    ``FNMR = #{genuine < threshold} / #genuine``. A score equal to the threshold is a match (so
    it is not a false non-match).

    Parameters
    ----------
    genuine_scores : array_like of float, shape (n,)
        Similarity scores of genuine (mated) comparisons. May be empty: the rate is then ``nan``
        with 0 trials.
    threshold : float
        Decision threshold in the same (similarity) units.
    confidence : float, default 0.95
        Two-sided coverage of the interval, strictly between 0 and 1.
    method : {"wilson", "clopper-pearson"}, default "wilson"
        Interval method.

    Returns
    -------
    Rate
        With ``errors`` the false non-matches and ``trials = n``.

    Raises
    ------
    MetricError
        As for :func:`fmr`.

    Examples
    --------
    >>> r = fnmr([0.2, 0.5, 0.8, 0.9], 0.5)   # only 0.2 fails: 0.5 == threshold matches
    >>> r.errors, r.trials, r.value
    (1, 4, 0.25)
    """
    _check_method(method)
    s, _ = _as_scores(genuine_scores, "genuine_scores", allow_empty=True)
    t = _check_threshold(threshold)
    errors = int(np.count_nonzero(s < t))
    return rate_from_counts(errors, int(s.size), confidence=confidence, method=method)


# --------------------------------------------------------------------------------------------
# DET curve


def _merged_unique(a_sorted: np.ndarray, b_sorted: np.ndarray) -> np.ndarray:
    """Distinct values of two ascending arrays, ascending (a stable sort merges two runs fast)."""
    both = np.sort(np.concatenate([a_sorted, b_sorted]), kind="stable")
    if both.size == 0:
        return both
    first = np.empty(both.size, dtype=bool)
    first[0] = True
    np.not_equal(both[1:], both[:-1], out=first[1:])
    return both[first]


def _decimate(thresholds: np.ndarray, impostor_sorted: np.ndarray, max_points: int) -> np.ndarray:
    """Indices (ascending) of at most ``max_points`` of ``thresholds``: first, last, log-FMR spread.

    Works from the sorted impostor scores without computing the FMR at every threshold: the
    first threshold where at most ``c`` impostors match is the first one above ``s_{c+1}``, the
    (c+1)-th largest impostor score.
    """
    n_rows = thresholds.size
    keep = {0, n_rows - 1}
    n = impostor_sorted.size
    if max_points >= 4 and n:
        # the smallest positive false-match count: impostors tied at the top score
        c_min = n - int(np.searchsorted(impostor_sorted, impostor_sorted[-1], side="left"))
        if c_min < n:
            levels = np.logspace(np.log10(c_min), np.log10(n), max_points - 2)
            levels[0], levels[-1] = c_min, n  # exact ends: keep the smallest FMR > 0
            allowed = np.minimum(np.floor(levels).astype(np.int64), n)
            below = allowed < n
            boundary = impostor_sorted[n - allowed[below] - 1]  # s_{c+1}, descending rank
            idx = np.searchsorted(thresholds, boundary, side="right")
            keep.update(int(j) for j in idx if j < n_rows)  # c = n: row 0, already kept
    room = max_points - len(keep)
    if room > 0:
        fill = np.round(np.linspace(0, n_rows - 1, room)).astype(np.int64)
        keep.update(int(j) for j in fill)
    return np.array(sorted(keep), dtype=np.int64)


def det_curve(
    genuine_scores: ArrayLike,
    impostor_scores: ArrayLike,
    *,
    max_points: int | None = 200,
) -> pd.DataFrame:
    """Detection error trade-off: FMR and FNMR at every distinct score, optionally thinned.

    Candidate thresholds are the distinct values of the union of both score arrays, ascending.
    At each threshold ``t`` (tie rule: ``score >= t`` matches)

    - ``fmr  = #{impostor >= t} / #impostor``  (non-increasing in ``t``)
    - ``fnmr = #{genuine  <  t} / #genuine``   (non-decreasing in ``t``)

    computed with one sort of each array and ``np.searchsorted`` (see :func:`error_counts`), no
    per-threshold loop. When there are more than ``max_points`` thresholds the rows are thinned
    to at most ``max_points``: the first and last rows are always kept, then rows where the FMR
    first falls to levels evenly spaced in ``log10(FMR)`` over its positive range, and the
    remaining budget goes to rows evenly spaced in threshold rank (which also covers the
    FMR = 0 tail and the case without impostors).

    Parameters
    ----------
    genuine_scores : array_like of float, shape (n_genuine,)
        Similarity scores of mated comparisons. May be empty: ``fnmr`` is then all ``nan``.
    impostor_scores : array_like of float, shape (n_impostor,)
        Similarity scores of impostor comparisons. May be empty: ``fmr`` is then all ``nan``.
    max_points : int or None, default 200
        Most rows to return (at least 2); ``None`` keeps every distinct threshold.

    Returns
    -------
    pandas.DataFrame
        Columns exactly ``["threshold", "fmr", "fnmr"]`` (float64), one row per threshold,
        thresholds strictly increasing, index ``0..rows-1``.

    Raises
    ------
    MetricError
        Both arrays empty, scores not 1-D or not finite, or a bad ``max_points``.

    Examples
    --------
    >>> det_curve([0.6, 0.9], [0.1, 0.6]).to_dict("list")
    {'threshold': [0.1, 0.6, 0.9], 'fmr': [1.0, 0.5, 0.0], 'fnmr': [0.0, 0.0, 0.5]}
    """
    if max_points is not None and (
        isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer))
        or max_points < 2
    ):
        raise MetricError(
            f"max_points must be an integer >= 2 or None; got {max_points!r}. "
            "Pass e.g. max_points=200, or None to keep every threshold."
        )
    g, _ = _as_scores(genuine_scores, "genuine_scores", allow_empty=True)
    i, _ = _as_scores(impostor_scores, "impostor_scores", allow_empty=True)
    if g.size == 0 and i.size == 0:
        raise MetricError(
            "det_curve needs scores; got 0 genuine and 0 impostor scores. "
            "Pass at least one non-empty array."
        )
    g_sorted = np.sort(g)
    i_sorted = np.sort(i)
    thresholds = _merged_unique(g_sorted, i_sorted)
    if max_points is not None and thresholds.size > max_points:
        thresholds = thresholds[_decimate(thresholds, i_sorted, int(max_points))]
    counts = _counts_sorted(g_sorted, i_sorted, thresholds)
    return pd.DataFrame(
        {"threshold": counts.thresholds, "fmr": counts.fmr, "fnmr": counts.fnmr},
        columns=DET_COLUMNS,
    )
