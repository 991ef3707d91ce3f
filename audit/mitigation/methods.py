"""Mitigation methods as pure functions of scores, groups and clusters (numpy; no I/O).

Each method is fitted on *training* pairs and applied to *held-out* pairs (other people):

- :func:`group_thresholds`: one threshold per demographic group, each set on that group's own
  same-group impostor scores at the target FMR, so every group's FMR is (about) the target.
  **It uses the protected attribute at decision time**: a comparison is judged by the threshold
  of its group, so the system must know (or guess) each person's group.
- Fair Score Normalization (Terhörst et al. 2020), :func:`fsn_offsets` and
  :func:`fsn_normalise`: embeddings are clustered (k-means, unsupervised: no group labels); a
  threshold ``thr(c)`` is set at the target FMR on the impostor scores of pairs with a member in
  cluster ``c``, and the global one ``thr_G`` on all impostors; a pair's score becomes
  ``ŝ = s − ½ (Δ(c_i) + Δ(c_j))`` with ``Δ(c) = thr(c) − thr_G`` (clusters whose impostor scores
  run high are shifted down). One global threshold on ``ŝ`` follows.
- FairCal-style calibration (Salvador et al. 2022), :func:`platt_fit` and
  :func:`faircal_probability`: per cluster, a calibration map from score to the probability of a
  mated pair is fitted on the pairs with a member in the cluster (here Platt scaling, a logistic
  regression on the score; FairCal used beta calibration); a pair's probability is the average of
  its two clusters' maps weighted by their numbers of training pairs,
  ``p = (n_ci θ_ci(s) + n_cj θ_cj(s)) / (n_ci + n_cj)``. One global threshold on ``p`` follows.

Thresholds come from :func:`audit.metrics.threshold_at_fmr` (a pair matches when its score is at
or above the threshold; the returned threshold's FMR on the given impostors is at most the
target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import MetricError
from ..metrics import threshold_at_fmr

__all__ = [
    "METHODS", "USES_PROTECTED_ATTRIBUTE", "group_thresholds", "apply_group_thresholds", "fsn_offsets", "fsn_normalise",
    "PlattMap", "platt_fit", "faircal_probability",
]

#: Method ids -> what the report calls them.
METHODS = {
    "baseline": "One threshold for everyone (no mitigation)",
    "group_thresholds": "Per-group thresholds (equal FMR)",
    "fsn": "Fair Score Normalization (Terhörst et al. 2020)",
    "faircal": "FairCal-style cluster calibration (Salvador et al. 2022)",
}
#: Whether a method needs each person's demographic group when it decides.
USES_PROTECTED_ATTRIBUTE = {"baseline": False, "group_thresholds": True, "fsn": False, "faircal": False}


def group_thresholds(scores: np.ndarray, groups: Sequence[str], target_fmr: float, *, fallback: float | None = None) -> dict[str, float]:
    """A threshold per group, each at ``target_fmr`` on that group's impostor scores.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
        Same-group impostor scores (higher is more alike).
    groups : sequence of str, shape (n,)
        The group of each score's pair.
    target_fmr : float in (0, 1]
    fallback : float, optional
        The threshold of a group without impostor scores (default: that of all scores).

    Returns
    -------
    dict of str to float

    Examples
    --------
    >>> t = group_thresholds([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.7, 0.6], list("aaaabbbb"), 0.25)
    >>> t["a"] > 0.3 and t["a"] <= 0.4, t["b"] > 0.8 and t["b"] <= 0.9
    (True, True)
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups).astype(str)
    if s.shape != g.shape:
        raise MetricError(f"scores and groups must have the same length; got {s.shape} and {g.shape}")
    overall = threshold_at_fmr(s, target_fmr) if s.size else np.inf
    out = {}
    for grp in sorted(set(g.tolist())):
        sub = s[g == grp]
        out[grp] = float(threshold_at_fmr(sub, target_fmr)) if sub.size else float(overall if fallback is None else fallback)
    return out


def apply_group_thresholds(scores: np.ndarray, groups: Sequence[str], thresholds: Mapping[str, float], *, default: float) -> np.ndarray:
    """Match decisions (``score >= threshold of the pair's group``); groups not in ``thresholds`` get ``default``.

    >>> apply_group_thresholds([0.5, 0.5], ["a", "z"], {"a": 0.4}, default=0.6).tolist()
    [True, False]
    """
    s = np.asarray(scores, dtype=np.float64)
    thr = np.array([thresholds.get(str(x), default) for x in np.asarray(groups).astype(str)], dtype=np.float64)
    return s >= thr


def fsn_offsets(impostor_scores: np.ndarray, cluster_a: np.ndarray, cluster_b: np.ndarray, n_clusters: int, target_fmr: float,
                *, min_pairs: int | None = None) -> tuple[np.ndarray, float]:
    """Fair Score Normalization's per-cluster offsets ``Δ(c) = thr(c) − thr_G``.

    Parameters
    ----------
    impostor_scores : array_like of float, shape (n,)
        Training impostor scores.
    cluster_a, cluster_b : array_like of int, shape (n,)
        The clusters of each pair's two images.
    n_clusters : int
    target_fmr : float
    min_pairs : int, optional
        A cluster with fewer impostor pairs than this keeps offset 0 (default ``ceil(3 /
        target_fmr)``, the rule-of-three minimum for resolving the target).

    Returns
    -------
    offsets : numpy.ndarray of float, shape (n_clusters,)
    thr_global : float

    Examples
    --------
    >>> s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    >>> off, g = fsn_offsets(s, np.array([0, 0, 0, 0, 1, 1, 1, 1]), np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2, 0.25, min_pairs=1)
    >>> bool(off[0] < 0 < off[1])
    True
    """
    s = np.asarray(impostor_scores, dtype=np.float64)
    a, b = np.asarray(cluster_a, np.int64), np.asarray(cluster_b, np.int64)
    if not (s.shape == a.shape == b.shape):
        raise MetricError(f"scores and cluster arrays must have one entry per pair; got {s.shape}, {a.shape}, {b.shape}")
    need = int(np.ceil(3.0 / target_fmr)) if min_pairs is None else int(min_pairs)
    thr_g = float(threshold_at_fmr(s, target_fmr))
    off = np.zeros(n_clusters, dtype=np.float64)
    for c in range(n_clusters):
        m = (a == c) | (b == c)
        if int(m.sum()) >= max(need, 1):
            off[c] = float(threshold_at_fmr(s[m], target_fmr)) - thr_g
    return off, thr_g


def fsn_normalise(scores: np.ndarray, cluster_a: np.ndarray, cluster_b: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``ŝ = s − ½ (Δ(c_a) + Δ(c_b))``.

    >>> fsn_normalise(np.array([0.5]), np.array([0]), np.array([1]), np.array([0.2, -0.1])).round(3).tolist()
    [0.45]
    """
    off = np.asarray(offsets, dtype=np.float64)
    return np.asarray(scores, dtype=np.float64) - 0.5 * (off[np.asarray(cluster_a, np.int64)] + off[np.asarray(cluster_b, np.int64)])


@dataclass(frozen=True)
class PlattMap:
    """``p(s) = 1 / (1 + exp(−(w s + b)))``; ``n`` training pairs it was fitted on."""

    w: float
    b: float
    n: int

    def __call__(self, s: np.ndarray) -> np.ndarray:
        z = self.w * np.asarray(s, dtype=np.float64) + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def platt_fit(scores: np.ndarray, mated: np.ndarray, *, c: float = 1e4) -> PlattMap:
    """Fit a Platt map (logistic regression of ``mated`` on the score; scikit-learn, weak L2 ``1/c``).

    With only one class the map is flat at that class's share (w = 0).

    >>> m = platt_fit(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    >>> bool(m(np.array([0.9]))[0] > 0.5 > m(np.array([0.1]))[0])
    True
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(mated).astype(int)
    if s.shape != y.shape or s.ndim != 1:
        raise MetricError(f"scores and mated must be 1-d of the same length; got {s.shape} and {y.shape}")
    if s.size == 0:
        return PlattMap(0.0, 0.0, 0)
    if y.min() == y.max():
        p = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return PlattMap(0.0, float(np.log(p / (1 - p))), int(s.size))
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=1000)
    lr.fit(s[:, None], y)
    return PlattMap(float(lr.coef_[0, 0]), float(lr.intercept_[0]), int(s.size))


def faircal_probability(scores: np.ndarray, cluster_a: np.ndarray, cluster_b: np.ndarray, maps: Sequence[PlattMap]) -> np.ndarray:
    """FairCal's pair probability: the two clusters' calibrated probabilities weighted by their training pairs.

    A pair whose clusters have no training pairs gets the unweighted mean of the two maps.

    >>> maps = [PlattMap(0.0, 0.0, 30), PlattMap(0.0, 2.0, 10)]  # flat maps: 0.5 and 0.881
    >>> float(faircal_probability(np.array([0.3]), np.array([0]), np.array([1]), maps).round(4)[0])
    0.5952
    """
    s = np.asarray(scores, dtype=np.float64)
    a, b = np.asarray(cluster_a, np.int64), np.asarray(cluster_b, np.int64)
    n = np.array([m.n for m in maps], dtype=np.float64)
    pa, pb = np.empty_like(s), np.empty_like(s)
    for c, m in enumerate(maps):
        ia, ib = a == c, b == c
        if ia.any():
            pa[ia] = m(s[ia])
        if ib.any():
            pb[ib] = m(s[ib])
    wa, wb = n[a], n[b]
    tot = wa + wb
    return np.where(tot > 0, (wa * pa + wb * pb) / np.where(tot > 0, tot, 1.0), 0.5 * (pa + pb))
