"""Thresholds at a target FMR: the smallest value whose FMR over the impostor scores is at most the
target, exactly, for one target or many.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from audit.errors import MetricError

from .uncertainty import _REL_TOL, _check_target_fmr
from .rates import _as_scores

__all__ = ["thresholds_at_fmr", "threshold_at_fmr"]


# --------------------------------------------------------------------------------------------
# thresholds at a target FMR


def _allowed_false_matches(target: float, n: int) -> int:
    """``floor(target * n)``, robust to the binary rounding of decimal targets (1e-3 * 3000 = 3)."""
    return min(n, math.floor(target * n * (1.0 + _REL_TOL)))


def _just_above(value: float, dtype: np.dtype) -> float:
    """The next representable number above ``value`` in ``dtype``, as a Python float."""
    typ = dtype.type
    return float(np.nextafter(typ(value), typ(np.inf)))


def threshold_at_fmr(impostor_scores: ArrayLike, target_fmr: float) -> float:
    """The smallest threshold whose FMR over these impostor scores is at most ``target_fmr``.

    With ``n`` impostor scores, at most ``k = floor(target_fmr * n)`` of them may match (the
    product is taken with a relative tolerance of 1e-12, so ``1e-3 * 3000`` gives ``k = 3``
    despite binary rounding). Sort the scores in descending order, ``s_1 >= s_2 >= ... >= s_n``:

    - if ``k >= n`` (only when ``target_fmr == 1``) every comparison may match and the minimum
      score is returned (FMR = 1);
    - otherwise the result is the next representable number above ``s_{k+1}``,
      ``t = nextafter(s_{k+1}, +inf)``. Then ``#{s >= t} = #{s > s_{k+1}} <= k``, so
      ``FMR(t) <= target_fmr``, while any threshold ``<= s_{k+1}`` lets at least ``k + 1`` scores
      match. ``t`` is thus the smallest such threshold.

    Tie rule and ties at the boundary: a pair matches when ``score >= threshold``. When several
    scores equal ``s_{k+1}``, all of them fall below ``t`` and the achieved FMR is *lower* than
    ``target_fmr`` (it is ``#{s > s_{k+1}} / n``); the target is never exceeded. The result is
    invariant to the order of the scores.

    ``nextafter`` is taken in the scores' own floating type (float32 for float32 scores,
    float64 otherwise), so the threshold also holds when compared against the original
    float32 array. The selection uses ``np.partition`` (O(n)), not a full sort.

    Parameters
    ----------
    impostor_scores : array_like of float, shape (n,)
        Similarity scores of impostor comparisons (all of them: one threshold for everyone);
        must not be empty.
    target_fmr : float
        Target FMR in (0, 1], e.g. ``1e-3``.

    Returns
    -------
    float
        The threshold, in the scores' units.

    Raises
    ------
    MetricError
        Empty, non-1-D or non-finite scores, or a target outside (0, 1].

    See Also
    --------
    thresholds_at_fmr : several targets with one partition.
    audit.metrics.uncertainty.insufficient_impostors : whether ``n`` supports the target.

    Examples
    --------
    >>> scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    >>> t = threshold_at_fmr(scores, 0.2)   # k = 2: 1.0 and 0.9 may match, 0.8 must not
    >>> 0.8 < t < 0.8 + 1e-12
    True
    >>> fmr(scores, t).value
    0.2
    """
    s, dtype = _as_scores(impostor_scores, "impostor_scores", allow_empty=False, allow_failed=True)
    target = _check_target_fmr(target_fmr)
    n = s.size
    k = _allowed_false_matches(target, n)
    if k >= n:
        fin = s[np.isfinite(s)]
        return float(fin.min()) if fin.size else float(np.finfo(np.float64).max)
    pos = n - k - 1  # ascending index of s_{k+1}
    value = np.partition(s, pos)[pos]
    return _just_above(float(value), dtype)


def thresholds_at_fmr(impostor_scores: ArrayLike, targets: Sequence[float]) -> np.ndarray:
    """:func:`threshold_at_fmr` for several targets, with one partition of the scores.

    Parameters
    ----------
    impostor_scores : array_like of float, shape (n,)
        Similarity scores of impostor comparisons; must not be empty.
    targets : sequence of float, shape (m,)
        Target FMRs, each in (0, 1], in any order.

    Returns
    -------
    ndarray of float64, shape (m,)
        ``thresholds[j] == threshold_at_fmr(impostor_scores, targets[j])``.

    Raises
    ------
    MetricError
        As for :func:`threshold_at_fmr`; the message names the first bad target's index.

    Examples
    --------
    >>> scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    >>> [fmr(scores, t).value for t in thresholds_at_fmr(scores, [0.1, 0.5, 1.0])]
    [0.1, 0.5, 1.0]
    """
    s, dtype = _as_scores(impostor_scores, "impostor_scores", allow_empty=False, allow_failed=True)
    try:
        tg = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricError(
            f"targets must be a 1-D sequence of numbers in (0, 1]; got {targets!r}."
        ) from None
    if tg.ndim != 1:
        raise MetricError(
            f"targets must be 1-D, shape (m,); got shape {tg.shape}. "
            "For one target use threshold_at_fmr, or wrap it in a list."
        )
    bad = np.flatnonzero(~((tg > 0.0) & (tg <= 1.0)))
    if bad.size:
        i = int(bad[0])
        raise MetricError(
            f"every target must be in (0, 1]; {bad.size} are not, the first at index {i} "
            f"({tg[i]!r}). Pass fractions such as 1e-3 (not percentages, not 0)."
        )
    n = s.size
    ks = np.array([_allowed_false_matches(float(t), n) for t in tg], dtype=np.int64)
    out = np.empty(tg.shape, dtype=np.float64)
    below = ks < n
    if below.any():
        positions = n - ks[below] - 1
        kth = np.unique(positions)
        ordered = np.sort(s) if kth.size > 16 else np.partition(s, kth)
        out[below] = [_just_above(float(v), dtype) for v in ordered[positions]]
    if not below.all():
        fin = s[np.isfinite(s)]
        out[~below] = float(fin.min()) if fin.size else float(np.finfo(np.float64).max)
    return out
