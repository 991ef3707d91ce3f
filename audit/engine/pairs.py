"""Pair lists: canonical scores of given pairs, a protocol's pair list split into mated and
impostor scores, and reproducible samples of impostor pairs."""

from __future__ import annotations

import numpy as np

from ..verification.protocol import PairScores
from ..errors import MetricError
from .numerics import _canonical, _codes, _group_codes, _prepare

__all__ = ["score_pairs", "pair_scores_from_list", "sample_impostor_pairs"]


def _check_index(idx: np.ndarray, name: str, n: int) -> np.ndarray:
    a = np.asarray(idx)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise MetricError(f"{name} must be a 1-D array of integer row indices; got shape {a.shape}, dtype {a.dtype}.")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= n):
        raise MetricError(f"{name} must index rows 0..{n - 1}; found {int(a.min())}..{int(a.max())}.")
    return a


def score_pairs(
    embeddings: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    *,
    metric: str = "cosine",
    normalize: bool = True,
) -> np.ndarray:
    """Canonical scores of given pairs of rows: the scores every count of :func:`score_tiles` equals.

    Cosine: rows L2-normalised in float64 and cast to float32 (as in :func:`score_tiles`), then the
    dot product of the float32 rows in float64, summed in a fixed pairwise order. Euclidean: minus
    the square root of the float64 sum of squared differences. The result for a pair does not
    depend on which other pairs are scored with it.

    Parameters
    ----------
    embeddings : array_like of float, shape (N, d)
    a_idx, b_idx : array_like of int, shape (m,)
        Row indices of the two sides.
    metric : {"cosine", "euclidean"}, default "cosine"
    normalize : bool, default True

    Returns
    -------
    ndarray of float64, shape (m,)

    Examples
    --------
    >>> e = np.array([[3.0, 4.0], [3.0, 4.0], [0.0, 1.0]])
    >>> score_pairs(e, [0, 0], [1, 2]).round(6).tolist()
    [1.0, 0.8]
    >>> score_pairs(e, [0], [2], metric="euclidean").round(6).tolist()
    [-4.242641]
    """
    e32 = _prepare(embeddings, metric, normalize)
    n = e32.shape[0]
    a = _check_index(a_idx, "a_idx", n)
    b = _check_index(b_idx, "b_idx", n)
    if a.shape != b.shape:
        raise MetricError(f"a_idx and b_idx must have the same length; got {a.size} and {b.size}.")
    return _canonical(e32, a, b, metric)


def pair_scores_from_list(
    embeddings: np.ndarray,
    subjects: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    *,
    metric: str = "cosine",
    normalize: bool = True,
) -> PairScores:
    """Score a given list of pairs (a protocol such as LFW's ``pairs.txt``) into :class:`PairScores`.

    Pairs whose rows share a subject are mated, the others impostors. Each pair is stored with
    ``a < b``; a pair listed twice is scored twice (protocols may repeat pairs on purpose).

    Parameters
    ----------
    embeddings : array_like of float, shape (N, d)
    subjects : array_like, shape (N,)
    a_idx, b_idx : array_like of int, shape (m,)
    metric, normalize
        As for :func:`score_pairs`.

    Returns
    -------
    PairScores

    Raises
    ------
    MetricError
        Bad indices, a pair of a row with itself, or the errors of :func:`score_pairs`.
    """
    e32 = _prepare(embeddings, metric, normalize)
    n = e32.shape[0]
    _, subj = _codes(subjects, "subjects", n)
    a = _check_index(a_idx, "a_idx", n)
    b = _check_index(b_idx, "b_idx", n)
    if a.shape != b.shape:
        raise MetricError(f"a_idx and b_idx must have the same length; got {a.size} and {b.size}.")
    same = np.flatnonzero(a == b)
    if same.size:
        raise MetricError(f"pair {int(same[0])} compares row {int(a[same[0]])} with itself; a protocol never does.")
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    s = _canonical(e32, lo, hi, metric)
    mated = subj[lo] == subj[hi]
    return PairScores(s[mated], lo[mated], hi[mated], s[~mated], lo[~mated], hi[~mated])


def sample_impostor_pairs(
    subjects: np.ndarray,
    n_pairs: int,
    *,
    seed: int = 0,
    groups: np.ndarray | None = None,
    same_group: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw distinct impostor pairs uniformly at random (without replacement), reproducibly.

    Parameters
    ----------
    subjects : array_like, shape (N,)
    n_pairs : int
        How many distinct unordered pairs to draw.
    seed : int, default 0
        The same seed gives the same pairs, in the same order.
    groups : array_like of int, shape (N,), optional
        Group codes; needed for ``same_group``.
    same_group : bool, default False
        Draw only pairs of two rows of the same group (NIST's same-demographic impostors).

    Returns
    -------
    a_idx, b_idx : ndarray of int64, shape (n_pairs,)
        Row indices with ``a < b``, in draw order. Score them with :func:`score_pairs`.

    Raises
    ------
    MetricError
        More pairs asked for than exist, or ``same_group`` without ``groups``.
    """
    subj = np.unique(np.asarray(subjects), return_inverse=True)[1].reshape(-1).astype(np.int64)
    n = subj.size
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 0:
        raise MetricError(f"n_pairs must be a non-negative integer; got {n_pairs!r}.")
    if same_group:
        if groups is None:
            raise MetricError("same_group=True needs groups (one integer code per row).")
        grp, _ = _group_codes(groups, n, None)
    else:
        grp = np.zeros(n, np.int64)
    # how many impostor pairs exist
    sizes = np.bincount(grp).astype(np.int64) if n else np.zeros(0, np.int64)
    pairs_total = int((sizes * (sizes - 1) // 2).sum())
    ps = np.zeros((subj.max() + 1 if n else 0, sizes.size), np.int64)
    np.add.at(ps, (subj, grp), 1)
    available = pairs_total - int((ps * (ps - 1) // 2).sum())
    if n_pairs > available:
        raise MetricError(f"asked for {n_pairs} impostor pairs, but only {available} exist under this protocol.")
    rng = np.random.default_rng(seed)
    if n_pairs == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if pairs_total <= 20_000_000 and n_pairs > available // 4:
        # dense request: enumerate every impostor pair and take a random subset
        i, j = np.triu_indices(n, 1)
        ok = (subj[i] != subj[j]) & (grp[i] == grp[j])
        i, j = i[ok], j[ok]
        pick = rng.permutation(i.size)[:n_pairs]
        return i[pick].astype(np.int64), j[pick].astype(np.int64)
    if n_pairs > available // 2:
        raise MetricError(
            f"asked for {n_pairs} of the {available} impostor pairs; sampling more than half of them is slower than "
            "scanning them all: use score_tiles instead."
        )
    order = np.argsort(grp, kind="stable")
    gs = np.concatenate([[0], np.cumsum(sizes)])
    weights = (sizes * (sizes - 1) / 2.0)
    weights = weights / weights.sum()
    seen_keys = np.empty(0, np.int64)
    got_a, got_b = [], []
    have = 0
    while have < n_pairs:
        m = max(1024, 2 * (n_pairs - have))
        gsel = rng.choice(sizes.size, size=m, p=weights)
        u = rng.random((m, 2))
        i = order[gs[gsel] + (u[:, 0] * sizes[gsel]).astype(np.int64)]
        j = order[gs[gsel] + (u[:, 1] * sizes[gsel]).astype(np.int64)]
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        ok = (lo != hi) & (subj[lo] != subj[hi])
        key = lo[ok] * n + hi[ok]
        _, first = np.unique(key, return_index=True)
        first.sort()
        key = key[first]
        key = key[~np.isin(key, seen_keys)]
        key = key[: n_pairs - have]
        seen_keys = np.concatenate([seen_keys, key])
        got_a.append(key // n)
        got_b.append(key % n)
        have += key.size
    return np.concatenate(got_a), np.concatenate(got_b)
