"""People-level bootstrap for pair data: intervals that resample *people*, weighting each pair right.

Why
---
An impostor comparison joins two people; a mated comparison belongs to one. Comparisons that share
a person are correlated (a "lamb" is falsely matched with many others), so an interval that treats
comparisons as independent (Wilson, Clopper–Pearson) is too narrow. Resampling people fixes that,
*if* each pair carries the right weight in a replicate.

What is resampled
-----------------
In a replicate, each stratum's ``S_g`` people are drawn ``S_g`` times with replacement (a
stratified bootstrap: a person's stratum is the group of their first image, so every replicate keeps
each group's number of people). ``w_i`` is how often person i was drawn. Then

- an impostor pair of images of people i and j (``i != j``) counts ``w_i * w_j`` times: every copy of
  i meets every copy of j. A person drawn twice is not two people, so copies of one person never
  form impostor pairs;
- a mated pair of person i counts ``w_i`` times.

A group's replicate FMR is ``sum(w_i w_j F_ij) / sum(w_i w_j N_ij)`` over the pairs of people in
the group (``F_ij`` false matches and ``N_ij`` impostor comparisons between their images there);
its replicate FNMR is ``sum(w_i E_i) / sum(w_i M_i)``. With every weight 1 these are the point
estimates. An image counts in its own group (an image-level label such as an age band may put one
person's images in different groups): the weights follow the person, the cell follows the image,
exactly as in the point estimate.

Exact and fast
--------------
Impostor trials need no pair list. When every pair of images of different people is compared (all
pairs), the trials of a group are ``((sum_i w_i n_i)**2 - sum_i w_i**2 n_i**2) / 2`` with ``n_i``
person i's images in the group; in a two-sided protocol (probes against references) they are
``(sum_i w_i p_i) (sum_j w_j r_j) - sum_i w_i**2 p_i r_i``. Protocols that compare listed pairs
give their trials as a per-person-pair list. False matches always come as a per-person-pair list:
the pairs above a threshold (the engine's tail already holds them), aggregated by (person, person,
cell, cell). A replicate is then a few matrix products: ``W @ n`` for the trials and
``(W[:, a] * W[:, b]) @ F`` for the false matches, in chunks of replicates.

The weights come from ``numpy.random.SeedSequence(seed, spawn_key=(stratum,))``: the same seed gives
the same replicates (and a test rebuilds them by drawing people and recounting every pair).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from audit.errors import MetricError

from . import _people_fused
from .uncertainty import _REL_TOL

__all__ = ["PeopleCounts", "PeopleReplicates", "people_weights", "people_bootstrap", "IMPOSTOR_MODES"]

#: How impostor trials are formed: every pair of images of different people ("all"), only pairs
#: within one cell ("same_cell"), probe images against reference images ("two_sided"), or a listed
#: set of pairs whose per-person-pair counts are given ("listed").
IMPOSTOR_MODES = ("all", "same_cell", "two_sided", "listed")

_CHUNK_ELEMS = 1 << 24  # replicates x pairs per chunk (bounds memory at ~128 MB of float64)
_COMPILED_ELEMS = 1 << 28  # replicates x people the compiled path holds at once (twice, as uint8: 512 MB)


@dataclass(frozen=True, eq=False)
class PeopleCounts:
    """Everything the people-level bootstrap needs, at ``T`` thresholds over ``C`` cell codes.

    ``S`` people, ``P`` person pairs with false matches, ``Q`` (person, cell) mated rows.

    Attributes
    ----------
    thresholds : ndarray of float64, shape (T,)
    person_first_cell : ndarray of int64, shape (S,)
        Cell code of each person's first image (their stratum is that cell's group).
    images : ndarray of int64, shape (S, C)
        Acquired images of each person in each cell code (two-sided: probe codes ``0..C/2-1``, then
        reference codes).
    impostor_mode : {"all", "same_cell", "two_sided", "listed"}
    fm_a, fm_b, fm_ca, fm_cb : ndarray of int64, shape (P,)
        The two people (``fm_a != fm_b``) and the cells of their images, of each aggregated
        false-match row.
    fm_counts : ndarray of int64, shape (P, T)
        False matches of that row at each threshold (rows may be zero at some thresholds).
    imp_a, imp_b, imp_ca, imp_cb, imp_n : ndarray of int64, shape (L,)
        ``"listed"`` only: impostor comparisons per (person, person, cell, cell).
    mated_person, mated_cell : ndarray of int64, shape (Q,)
    mated_n : ndarray of int64, shape (Q,)
        Mated comparisons of that person whose pair's first image is in that cell.
    mated_fnm : ndarray of int64, shape (Q, T)
        Their false non-matches at each threshold.
    """

    thresholds: np.ndarray
    person_first_cell: np.ndarray
    images: np.ndarray
    impostor_mode: str
    fm_a: np.ndarray
    fm_b: np.ndarray
    fm_ca: np.ndarray
    fm_cb: np.ndarray
    fm_counts: np.ndarray
    mated_person: np.ndarray
    mated_cell: np.ndarray
    mated_n: np.ndarray
    mated_fnm: np.ndarray
    imp_a: np.ndarray | None = None
    imp_b: np.ndarray | None = None
    imp_ca: np.ndarray | None = None
    imp_cb: np.ndarray | None = None
    imp_n: np.ndarray | None = None
    # for the operating-point estimand (a threshold re-estimated in every replicate): the highest
    # impostor scores, descending, with their people and cells, and every mated score
    tail_score: np.ndarray | None = None
    tail_a: np.ndarray | None = None
    tail_b: np.ndarray | None = None
    tail_ca: np.ndarray | None = None
    tail_cb: np.ndarray | None = None
    mated_score: np.ndarray | None = None   # (m,) every mated comparison
    mated_score_person: np.ndarray | None = None
    mated_score_cell: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.impostor_mode not in IMPOSTOR_MODES:
            raise MetricError(f"impostor_mode must be one of {IMPOSTOR_MODES}; got {self.impostor_mode!r}.")
        if self.impostor_mode == "listed" and self.imp_n is None:
            raise MetricError("impostor_mode 'listed' needs the per-person-pair impostor counts (imp_a, imp_b, imp_ca, imp_cb, imp_n).")
        if np.any(self.fm_a == self.fm_b):
            raise MetricError("a false-match row joins a person with themself; impostor pairs join two different people.")

    @property
    def n_people(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.images.shape[1])

    @staticmethod
    def aggregate_pairs(person_a, person_b, cell_a, cell_b, counts) -> tuple[np.ndarray, ...]:
        """Sum rows with the same (person, person, cell, cell), ordering each pair so that the
        lower (person, cell) comes first (an unordered pair of images). ``counts`` has shape
        (n,) or (n, T). Returns ``(a, b, ca, cb, summed counts)``."""
        a, b = np.asarray(person_a, np.int64), np.asarray(person_b, np.int64)
        ca, cb = np.asarray(cell_a, np.int64), np.asarray(cell_b, np.int64)
        cnt = np.asarray(counts, np.int64)
        cnt2 = cnt[:, None] if cnt.ndim == 1 else cnt
        if a.size == 0:
            return a, b, ca, cb, cnt2.reshape(0, cnt2.shape[1] if cnt2.ndim == 2 else 1)
        ns, nc = int(max(a.max(), b.max())) + 1, int(max(ca.max(), cb.max())) + 1
        if _people_fused.available() and a.size > 1 and float(ns) * ns * nc * nc < 2.0 ** 62 and min(a.min(), b.min(), ca.min(), cb.min()) >= 0:
            return _people_fused.aggregate(a, b, ca, cb, cnt2, ns, nc)
        swap = (a > b) | ((a == b) & (ca > cb))
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        ca, cb = np.where(swap, cb, ca), np.where(swap, ca, cb)
        if float(ns) * ns * nc * nc < 2.0 ** 62:  # one int64 key: a sort of scalars, not of rows
            key = ((a * ns + b) * nc + ca) * nc + cb
            uk, inv = np.unique(key, return_inverse=True)
            cb_u, rest = uk % nc, uk // nc
            ca_u, rest = rest % nc, rest // nc
            uniq = np.stack([rest // ns, rest % ns, ca_u, cb_u], axis=1)
        else:
            uniq, inv = np.unique(np.stack([a, b, ca, cb], axis=1), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        summed = np.zeros((uniq.shape[0], cnt2.shape[1]), np.int64)
        for k in range(cnt2.shape[1]):
            summed[:, k] = np.bincount(inv, weights=cnt2[:, k], minlength=uniq.shape[0]).astype(np.int64)
        return uniq[:, 0], uniq[:, 1], uniq[:, 2], uniq[:, 3], summed


@dataclass(frozen=True, eq=False)
class PeopleReplicates:
    """Replicate false-match and false-non-match counts, per group, of one grouping.

    ``B`` replicates, ``G`` groups plus one last column for the whole population, ``T`` thresholds.

    Attributes
    ----------
    fm, imp : ndarray of float64, shape (B, G + 1, T) and (B, G + 1)
        Weighted same-group false matches and impostor comparisons (last column: every impostor
        pair of the population, cross-group ones included).
    fnm, mated : ndarray of float64, shape (B, G + 1, T) and (B, G + 1)
    point_fm, point_imp, point_fnm, point_mated : the same with every weight 1 (the point estimate's
        exact counts; shapes without the B axis).
    strata : ndarray of int64, shape (S,)
        Stratum (group) each person was resampled in.
    seed, n_replicates : int
    op_fm, op_fnm : ndarray of float64, shape (B, G + 1, T), optional
        At the operating point: for a threshold set at a target FMR (``targets``), the weighted
        false matches and false non-matches at the threshold re-estimated in each replicate from
        the resampled population's impostor scores (``nan`` for other thresholds, and where the
        stored tail is too short for a replicate). ``op_threshold`` (B, T) holds those thresholds.
    """

    fm: np.ndarray
    imp: np.ndarray
    fnm: np.ndarray
    mated: np.ndarray
    point_fm: np.ndarray
    point_imp: np.ndarray
    point_fnm: np.ndarray
    point_mated: np.ndarray
    strata: np.ndarray
    seed: int
    n_replicates: int
    op_fm: np.ndarray | None = None
    op_fnm: np.ndarray | None = None
    op_threshold: np.ndarray | None = None

    @property
    def op_fmr(self) -> np.ndarray | None:
        return None if self.op_fm is None else self._ratio(self.op_fm, self.imp[:, :, None])

    @property
    def op_fnmr(self) -> np.ndarray | None:
        return None if self.op_fnm is None else self._ratio(self.op_fnm, self.mated[:, :, None])

    @staticmethod
    def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    @property
    def fmr(self) -> np.ndarray:
        """Replicate FMRs, shape (B, G + 1, T); ``nan`` where a replicate has no impostors there."""
        return self._ratio(self.fm, self.imp[:, :, None])

    @property
    def fnmr(self) -> np.ndarray:
        """Replicate FNMRs, shape (B, G + 1, T)."""
        return self._ratio(self.fnm, self.mated[:, :, None])

    @property
    def point_fmr(self) -> np.ndarray:
        return self._ratio(self.point_fm, self.point_imp[:, None])

    @property
    def point_fnmr(self) -> np.ndarray:
        return self._ratio(self.point_fnm, self.point_mated[:, None])


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise MetricError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _weight_chunks(strata: np.ndarray, n_groups: int, *, n_replicates: int, seed: int, step: int, dtype=np.float64):
    """Yield ``(start, stop, W)`` for consecutive chunks of replicates.

    Stratum ``g``'s people are drawn ``S_g`` times with replacement from
    ``SeedSequence(seed, spawn_key=(g,))``, as ``floor(u * S_g)`` of uniform doubles (one 64-bit
    draw each, so the replicates do not depend on the chunk size). ``dtype=np.uint8`` (compiled
    loops only) counts the draws into uint8 weights and yields their transpose too, ``(start,
    stop, W, W.T)``; the caller checks none reaches 255."""
    strata = np.asarray(strata, np.int64)
    members = [np.flatnonzero(strata == g) for g in range(n_groups)]
    rngs = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(g,))) for g in range(n_groups)]
    for start in range(0, n_replicates, step):
        stop = min(n_replicates, start + step)
        b = stop - start
        W = np.zeros((b, strata.size), dtype)
        WT = np.zeros((strata.size, b), dtype) if W.dtype == np.uint8 else None  # the compiled loops read both layouts
        for mem, rng in zip(members, rngs):
            m = mem.size
            if m == 0:
                continue
            if W.dtype == np.uint8:
                _people_fused.count_draws(rng.random((b, m)), mem, W, WT)
                continue
            draws = np.minimum((rng.random((b, m)) * m).astype(np.int64), m - 1)
            W[:, mem] = np.bincount((draws + (np.arange(b) * m)[:, None]).reshape(-1), minlength=b * m).reshape(b, m)
        yield (start, stop, W) if WT is None else (start, stop, W, WT)


def people_weights(strata: np.ndarray, n_groups: int, *, n_replicates: int, seed: int) -> np.ndarray:
    """Multinomial weights ``W`` (how often each person is drawn in each replicate), shape (B, S):
    the ones :func:`people_bootstrap` uses for the same strata and seed.

    Examples
    --------
    >>> w = people_weights(np.array([0, 0, 1]), 2, n_replicates=4, seed=0)
    >>> w.shape, w[:, :2].sum(axis=1).tolist(), w[:, 2].tolist()
    ((4, 3), [2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0])
    """
    chunks = list(_weight_chunks(strata, n_groups, n_replicates=n_replicates, seed=seed, step=max(1, n_replicates)))
    return chunks[0][2] if chunks else np.zeros((0, np.asarray(strata).size))


def _onehot(codes: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((codes.size, n), np.float64)
    ok = codes >= 0
    m[np.flatnonzero(ok), codes[ok]] = 1.0
    return m


def _counts(counts: PeopleCounts, mapping: np.ndarray, g: int, W: np.ndarray, *, with_fm: bool = True) -> tuple[np.ndarray, ...]:
    """Weighted counts for the replicates in ``W`` (shape (b, S)): fm (b, G+1, T), imp (b, G+1),
    fnm (b, G+1, T), mated (b, G+1). ``with_fm=False`` leaves fm at zero (computed elsewhere)."""
    b = W.shape[0]
    t = counts.thresholds.size
    W2 = W * W
    # ---- impostor trials
    if counts.impostor_mode == "listed":
        imp = _quadratic(counts.imp_a, counts.imp_b, counts.imp_ca, counts.imp_cb, counts.imp_n[:, None], counts.n_people,
                         mapping, g, W)[:, :, 0]
    elif counts.impostor_mode == "two_sided":
        half = counts.n_cells // 2
        P = counts.images[:, :half] @ _onehot(mapping[:half], g)   # probe images per person and group
        R = counts.images[:, half:] @ _onehot(mapping[half:], g)   # reference images
        P = np.concatenate([P, P.sum(1, keepdims=True)], axis=1)
        R = np.concatenate([R, R.sum(1, keepdims=True)], axis=1)
        imp = (W @ P) * (W @ R) - W2 @ (P * R)
    else:
        if counts.impostor_mode == "all":
            N = counts.images @ _onehot(mapping, g)
            N = np.concatenate([N, N.sum(1, keepdims=True)], axis=1)
            imp = ((W @ N) ** 2 - W2 @ (N * N)) / 2
        else:  # same_cell: impostors only within a cell; a group sums its cells
            Nc = counts.images.astype(np.float64)
            per_cell = ((W @ Nc) ** 2 - W2 @ (Nc * Nc)) / 2  # (b, C)
            H = np.concatenate([_onehot(mapping, g), np.ones((mapping.size, 1))], axis=1)
            imp = per_cell @ H
    # ---- false matches: per person pair, same group only (plus everything for the population)
    fm = np.zeros((b, g + 1, t))
    if counts.fm_a.size and with_fm:
        fm[:] = _quadratic(counts.fm_a, counts.fm_b, counts.fm_ca, counts.fm_cb, counts.fm_counts, counts.n_people, mapping, g, W)
    # ---- mated: one product with every person's mated counts and misses, per group
    fnm = np.zeros((b, g + 1, t))
    mated = np.zeros((b, g + 1))
    if counts.mated_person.size:
        M = W @ _mated_per_person(counts, mapping, g).reshape(counts.n_people, -1)
        M = M.reshape(b, g + 1, 1 + t)
        mated, fnm = M[:, :, 0].copy(), M[:, :, 1:].copy()
    return fm, imp, fnm, mated


def _mated_per_person(counts: PeopleCounts, mapping: np.ndarray, g: int) -> np.ndarray:
    """Each person's mated comparisons (``[:, :, 0]``) and false non-matches at each threshold
    (``[:, :, 1 + k]``) per group, the last group column every group's: shape (S, G + 1, 1 + T)."""
    s, t = counts.n_people, counts.thresholds.size
    grp = mapping[counts.mated_cell]
    ok = grp >= 0
    key = counts.mated_person[ok] * g + grp[ok]
    out = np.zeros((s, g + 1, 1 + t))
    for i in range(1 + t):
        v = (counts.mated_n if i == 0 else counts.mated_fnm[:, i - 1]).astype(np.float64)
        out[:, :g, i] = np.bincount(key, weights=v[ok], minlength=s * g).reshape(s, g)
        out[:, g, i] = np.bincount(counts.mated_person, weights=v, minlength=s)
    return out


def _quadratic(pa, pb, pca, pcb, values, n_people: int, mapping: np.ndarray, g: int, W: np.ndarray,
               WT: np.ndarray | None = None) -> np.ndarray:
    """``sum_p w_a w_b v_p`` over each group's person-pair rows (and over all of them), for every
    replicate: per column, the quadratic form ``w^T F w`` of the sparse person-by-person matrix F,
    as ``rowsum(W^T * (F @ W^T))`` (a sparse-dense product: P x B multiply-adds, compiled). Each
    row is multiplied once: the population's column is the groups' columns plus the cross-group rows.
    ``values`` has shape (P, T); returns (b, G + 1, T). ``WT`` may give ``W.T`` as contiguous uint8
    already, for the compiled loops."""
    from scipy import sparse

    s = n_people
    b = W.shape[0]
    t = values.shape[1]
    ga, gb = mapping[pca], mapping[pcb]
    same = np.where(ga == gb, ga, -1)
    if b == 1 and np.all(W == 1):  # the point estimate (and the jackknife's): every weight 1
        col = np.where(same >= 0, same, g)
        out = np.stack([np.bincount(col, weights=values[:, k], minlength=g + 1) for k in range(t)], axis=1)[None]
        out[:, g] += out[:, :g].sum(axis=1)
        return out
    if _people_fused.usable(W):  # one compiled pass; the last column collects the cross-group rows
        q = _people_fused.quadratic(pa, pb, np.where(same >= 0, same, g), values, W, g + 1, WT=WT)
        if q is not None:  # (None: sums too large for its integer runs; the numpy path takes them)
            out = q.transpose(2, 0, 1).copy()
            out[:, g] += out[:, :g].sum(axis=1)
            return out
    WT = np.ascontiguousarray(W.T, np.float64)  # (S, b): a person's replicate weights contiguous
    out = np.zeros((b, g + 1, t))
    cross = np.zeros((b, t))
    for j in np.unique(same):  # each row once: its group's column, or the cross-group part
        rows = np.flatnonzero(same == j)
        for k in range(t):
            v = values[rows, k].astype(np.float64)
            nz = v != 0
            if not nz.any():
                continue
            a, c = pa[rows][nz], pb[rows][nz]
            left, a_code = np.unique(a, return_inverse=True)  # only the people with rows here
            F = sparse.csr_matrix((v[nz], (a_code.reshape(-1), c)), shape=(left.size, s))
            q = (WT[left] * (F @ WT)).sum(axis=0)
            if j >= 0:
                out[:, j, k] = q
            else:
                cross[:, k] = q
    out[:, g] = out[:, :g].sum(axis=1) + cross  # the whole population: every group's pairs and the cross-group ones
    return out


def _operating_point(counts: PeopleCounts, mapping: np.ndarray, g: int, W: np.ndarray, imp_all: np.ndarray,
                     target: float, checkpoint=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replicate false matches and false non-matches (b, G + 1) at the threshold re-estimated at
    ``target`` in each replicate, and that threshold (b,).

    The weighted impostor scores, highest first, are counted until their weight would exceed
    ``target * trials`` (the replicate's allowed false matches, ``floor`` as in
    :func:`audit.metrics.threshold_at_fmr`); the threshold is the next float above the first score
    that does not fit, so a pair matches when it scores higher than that score. With every weight
    1 this is exactly the point estimate's threshold.

    ``checkpoint`` (compiled path, ``W`` uint8): ``(threshold, fm, fnm, point_fm, point_fnm, tail)``, the
    replicates' weighted counts at a fixed threshold (fm (b, G + 1) of the pairs at or above it,
    fnm of the mated comparisons below it) and the point estimate's. Where the point estimate's
    counts show that the stored tail holds every pair at or above it, each replicate's walk starts
    there instead of at the top of the tail (the same result, reached in fewer steps). ``tail`` is
    :func:`_people_fused.prepare_walk`'s."""
    allowed = np.minimum(np.floor(target * imp_all * (1.0 + _REL_TOL)), imp_all)  # threshold_at_fmr's own rule
    if checkpoint is not None:  # one compiled walk per replicate, from the checkpoint
        t, fm0, fnm0, pfm, pfnm, tail = checkpoint
        start = int(np.count_nonzero(counts.tail_score >= t))
        mstart = int(np.count_nonzero(counts.mated_score < t))
        use_fm, use_fnm = start == pfm[g], mstart == pfnm[g]  # the tail and the mated scores agree with the counts
        fm, fnm, s_b = _people_fused.operating_point(W, allowed, tail, start=start if use_fm else 0, fm0=fm0 if use_fm else None,
                                                     mated_start=mstart if use_fnm else 0, fnm0=fnm0 if use_fnm else None)
        return fm, fnm, np.nextafter(s_b, np.inf)
    full = counts.tail_score.size
    WT = np.ascontiguousarray(W.T)  # (S, b): gathering a person's weights reads one contiguous row
    # only the top of the tail is needed: weights average 1, so about `allowed` pairs fit; look at
    # 1.5x that, and deeper (doubling) only when some resample needs more
    depth = min(full, int(1.5 * np.nanmax(allowed, initial=0.0)) + 64)
    while True:
        sc = counts.tail_score[:depth]
        ww = WT[counts.tail_a[:depth]] * WT[counts.tail_b[:depth]]  # (P, b), highest score first
        cum = np.cumsum(ww, axis=0)
        j = np.sum(cum <= allowed[None, :], axis=0)  # items that fit, per resample
        if depth == full or not np.any(j >= depth):
            break
        depth = min(full, 2 * depth)  # some resample needs more of the tail (its heavy hitters were left out)
    ok = j < sc.size  # otherwise the stored tail is too short for this replicate
    s_b = np.where(ok, sc[np.minimum(j, sc.size - 1)], np.nan)
    # ties: every pair scoring the same as the first that does not fit is left out too
    match = sc[:, None] > s_b[None, :]
    ga, gb = mapping[counts.tail_ca[:depth]], mapping[counts.tail_cb[:depth]]
    same = np.where(ga == gb, ga, -1)
    H = np.concatenate([_onehot(same, g), np.ones((same.size, 1))], axis=1)
    fm = (H.T @ (ww * match)).T  # (b, G + 1)
    Hm = np.concatenate([_onehot(mapping[counts.mated_score_cell], g), np.ones((counts.mated_score_cell.size, 1))], axis=1)
    miss = counts.mated_score[:, None] <= s_b[None, :]  # score < next float above s_b
    fnm = (Hm.T @ (WT[counts.mated_score_person] * miss)).T
    fm[~ok], fnm[~ok] = np.nan, np.nan
    return fm, fnm, np.where(ok, np.nextafter(s_b, np.inf), np.nan)


def _numpy_replicates(counts, mapping, g, strata, n_replicates, seed, targets, op_cols):
    """The replicates in chunks of float64 weights (the numpy path; the compiled one's fallback)."""
    t = counts.thresholds.size
    fm = np.zeros((n_replicates, g + 1, t))
    imp = np.zeros((n_replicates, g + 1))
    fnm = np.zeros((n_replicates, g + 1, t))
    mated = np.zeros((n_replicates, g + 1))
    width = max(counts.n_people, 1)  # memory per replicate: the (S,) weights and one sparse product's (S,) column
    step = max(1, min(n_replicates or 1, _CHUNK_ELEMS // width))
    op_fm = op_fnm = op_th = None
    if op_cols:
        op_fm, op_fnm = np.full((n_replicates, g + 1, t), np.nan), np.full((n_replicates, g + 1, t), np.nan)
        op_th = np.full((n_replicates, t), np.nan)
        # the numpy path holds (tail depth, replicates) arrays
        step = max(1, min(step, _CHUNK_ELEMS // max(1, counts.tail_score.size, counts.mated_score.size)))
    for start, stop, W in _weight_chunks(strata, g, n_replicates=n_replicates, seed=seed, step=step):
        fm[start:stop], imp[start:stop], fnm[start:stop], mated[start:stop] = _counts(counts, mapping, g, W)
        for k in op_cols:
            op_fm[start:stop, :, k], op_fnm[start:stop, :, k], op_th[start:stop, k] = _operating_point(
                counts, mapping, g, W, imp[start:stop, g], float(targets[k]))
    return fm, imp, fnm, mated, op_fm, op_fnm, op_th


def _compiled_replicates(counts, mapping, g, strata, n_replicates, seed, targets, op_cols, pfm, pfnm):
    """The replicates with the compiled loops: every replicate's weights held at once as uint8
    (the false matches in one pass over the person-pair rows; the operating points walk from the
    fixed-threshold counts). ``None`` when a weight reaches :data:`_people_fused.MAX_WEIGHT`."""
    t = counts.thresholds.size
    ((_, _, Wu8, WTu8),) = _weight_chunks(strata, g, n_replicates=n_replicates, seed=seed, step=n_replicates, dtype=np.uint8)
    if Wu8.size and int(Wu8.max()) >= _people_fused.MAX_WEIGHT:  # (the draws saturate there)
        return None
    imp = np.zeros((n_replicates, g + 1))
    fnm = np.zeros((n_replicates, g + 1, t))
    mated = np.zeros((n_replicates, g + 1))
    step = max(1, min(n_replicates, _CHUNK_ELEMS // max(counts.n_people, 1)))
    for start in range(0, n_replicates, step):  # the dense sums (trials, mated) in float64 chunks
        stop = min(n_replicates, start + step)
        _, imp[start:stop], fnm[start:stop], mated[start:stop] = _counts(counts, mapping, g, Wu8[start:stop].astype(np.float64),
                                                                         with_fm=False)
    fm = np.zeros((n_replicates, g + 1, t))
    if counts.fm_a.size:
        fm = _quadratic(counts.fm_a, counts.fm_b, counts.fm_ca, counts.fm_cb, counts.fm_counts, counts.n_people, mapping, g, Wu8, WT=WTu8)
    op_fm = op_fnm = op_th = None
    if op_cols:
        op_fm, op_fnm = np.full((n_replicates, g + 1, t), np.nan), np.full((n_replicates, g + 1, t), np.nan)
        op_th = np.full((n_replicates, t), np.nan)
        ga, gb = mapping[counts.tail_ca], mapping[counts.tail_cb]
        tail = _people_fused.prepare_walk(counts.tail_score, counts.tail_a, counts.tail_b, np.where(ga == gb, ga, -1),
                                          counts.mated_score, counts.mated_score_person, mapping[counts.mated_score_cell], g + 1)
        for k in op_cols:
            cp = (float(counts.thresholds[k]), fm[:, :, k], fnm[:, :, k], pfm[:, k], pfnm[:, k], tail)
            op_fm[:, :, k], op_fnm[:, :, k], op_th[:, k] = _operating_point(counts, mapping, g, Wu8, imp[:, g], float(targets[k]), cp)
    return fm, imp, fnm, mated, op_fm, op_fnm, op_th


def people_bootstrap(
    counts: PeopleCounts,
    mapping: np.ndarray,
    n_groups: int,
    *,
    n_replicates: int = 1000,
    seed: int = 0,
    targets=None,
) -> PeopleReplicates:
    """Resample people within groups and recount every group's FMR and FNMR exactly.

    Parameters
    ----------
    counts : PeopleCounts
    mapping : ndarray of int, shape (C,)
        Group (``0..n_groups-1``) of each cell code.
    n_groups : int
        G.
    n_replicates : int, default 1000
        B (0 gives only the point estimate's counts).
    seed : int, default 0
    targets : sequence of float or None, shape (T,), optional
        The target FMR each threshold was set at (``None`` for a given threshold). With the tail
        stored in ``counts``, the operating-point replicates (``op_fm``, ``op_fnm``) are computed
        for those thresholds.

    Returns
    -------
    PeopleReplicates
        Replicate counts with a last column for the whole population; with all weights 1 they
        equal the point estimate's exact counts (``point_*``).

    Examples
    --------
    Three people of one group, two images each, all pairs compared; people 0 and 1 have one false
    match between them:

    >>> c = PeopleCounts(np.array([0.5]), np.zeros(3, np.int64), np.full((3, 1), 2), "all",
    ...     np.array([0]), np.array([1]), np.array([0]), np.array([0]), np.array([[1]]),
    ...     np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.int64))
    >>> r = people_bootstrap(c, np.array([0]), 1, n_replicates=0)
    >>> float(r.point_fm[0, 0]), float(r.point_imp[0])    # 3 pairs of people x 4 image pairs each
    (1.0, 12.0)
    """
    n_replicates = _check_int(n_replicates, "n_replicates", 0)
    seed = _check_int(seed, "seed", 0)
    mapping = np.asarray(mapping, np.int64)
    if mapping.shape != (counts.n_cells,):
        raise MetricError(f"mapping must give a group for each of the {counts.n_cells} cell codes; got shape {mapping.shape}.")
    g = int(n_groups)
    strata = mapping[counts.person_first_cell] if counts.n_people else np.zeros(0, np.int64)
    ones = np.ones((1, counts.n_people))
    pfm, pimp, pfnm, pmated = (x[0] for x in _counts(counts, mapping, g, ones))
    op_cols = [k for k, tg in enumerate(targets or []) if tg is not None] if counts.tail_score is not None else []
    out = None
    if _people_fused.available() and 0 < n_replicates * counts.n_people <= _COMPILED_ELEMS:
        out = _compiled_replicates(counts, mapping, g, strata, n_replicates, seed, targets, op_cols, pfm, pfnm)
    if out is None:
        out = _numpy_replicates(counts, mapping, g, strata, n_replicates, seed, targets, op_cols)
    fm, imp, fnm, mated, op_fm, op_fnm, op_th = out
    return PeopleReplicates(fm, imp, fnm, mated, pfm, pimp, pfnm, pmated, strata, seed, n_replicates, op_fm, op_fnm, op_th)
