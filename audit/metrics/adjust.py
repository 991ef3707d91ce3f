"""Rates within covariate strata, and group-vs-reference ratios adjusted for a covariate.

Why
---
A group's crude FMR mixes its comparisons of every age: a group photographed mostly as children
has a higher crude FMR even where, age for age, it does no worse. Comparing like with like means
comparing rates *within* strata of the covariate and pooling the within-stratum comparisons.

Strata
------
A covariate (an age band) is taken **per person** (the value of the person's first acquired
image): the people-level bootstrap's counts are per person, and a person's covariate is what
confounds. A mated pair is in its person's stratum ``s``; an impostor pair of people with strata
``s`` and ``t`` is in the *pair stratum* ``{s, t}`` (unordered; ``K`` strata give
``K (K + 1) / 2`` pair strata). Only same-group impostor pairs count, as in a group's FMR.

The Mantel–Haenszel ratio
-------------------------
For a group (``e1_s`` errors in ``n1_s`` comparisons of stratum ``s``) against a reference
(``e0_s``, ``n0_s``), with ``T_s = n1_s + n0_s``:

.. math::

    RR_{MH} = \\frac{\\sum_s e1_s\\, n0_s / T_s}{\\sum_s e0_s\\, n1_s / T_s}
            = \\frac{\\sum_s w_s\\, r1_s}{\\sum_s w_s\\, r0_s}, \\quad w_s = \\frac{n1_s\\, n0_s}{T_s}

(Mantel & Haenszel 1959; Rothman, Greenland & Lash, *Modern Epidemiology*, ch. 15). Strata where
either side has no comparison carry no weight: they are reported (``strata_missing``), not used.
With one stratum it is the crude ratio.

Intervals: the same as the crude ratio's
----------------------------------------
The replicates come from the *same* resampled people as the crude analysis (same seed, same
within-group draws; summing a replicate's strata gives the crude replicate exactly). Each
stratum's replicate rates get the crude rates' corrections (pair-level noise counted twice,
:func:`~audit.metrics.reference.remove_pair_noise`, for FMR; few people,
:func:`~audit.metrics.reference.inflate_for_few_people`), and FNMR at a target-FMR threshold is
counted at each replicate's re-estimated threshold (the operating point), as in the crude table.
Each replicate's ratio is the Mantel–Haenszel ratio of its own comparisons and corrected stratum
rates (over the strata the estimate uses); its log is floored at half an error like the crude one, and the interval is max-t
simultaneous over the ``K - 1`` comparisons of a grouping (:mod:`audit.metrics.reference`). With
one stratum every step is the crude comparison's, so the adjusted interval *is* the crude one
(tested). One difference: a small group can lose, in some replicate, every stratum it shares with
the reference; that replicate then does not count towards that comparison (rather than making the
whole family's replicate extreme, the crude rule), and a comparison undefined in more than 5% of
replicates gets no interval (0 to infinity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import MetricError

from .people import PeopleCounts, _onehot, _weight_chunks
from .reference import _floored_log, _max_t, _replicate_variance, inflate_for_few_people, remove_pair_noise, small_sample_factor

__all__ = ["StratumCounts", "stratum_counts", "pair_strata", "mantel_haenszel", "greenland_robins_variance",
           "AdjustedComparison", "adjusted_comparisons", "stratum_rate_replicates"]

_CHUNK_ELEMS = 1 << 23


def pair_strata(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unordered pair strata of ``k`` strata: ``(s, t, code)`` with ``s <= t`` listed in order
    and ``code[s, t] = code[t, s]`` the index of ``{s, t}`` (shape (k, k)).

    >>> s, t, code = pair_strata(3)
    >>> list(zip(s.tolist(), t.tolist())), int(code[2, 0])
    ([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)], 2)
    """
    s, t = np.triu_indices(k)
    code = np.zeros((k, k), np.int64)
    code[s, t] = np.arange(s.size)
    code[t, s] = np.arange(s.size)
    return s.astype(np.int64), t.astype(np.int64), code


@dataclass(frozen=True, eq=False)
class StratumCounts:
    """Errors and comparisons by group and covariate stratum, point estimate and replicates.

    ``G`` groups, ``K`` person strata, ``P = K (K + 1) / 2`` pair strata (see :func:`pair_strata`),
    ``T`` thresholds, ``B`` replicates.

    Attributes
    ----------
    fm : ndarray, shape (G, P, T); imp : ndarray, shape (G, P)
        Same-group false matches and impostor comparisons per pair stratum.
    fnm : ndarray, shape (G, K, T); mated : ndarray, shape (G, K)
    rep_fm, rep_imp, rep_fnm, rep_mated : ndarray, shapes (B, ...) of the above
        Weighted counts of each replicate (the crude bootstrap's resampled people).
    op_fnm : ndarray, shape (B, G, K, T), optional
        False non-matches at each replicate's re-estimated threshold (``nan`` where none).
    people : ndarray of int, shape (G,)
        People resampled in each group.
    """

    fm: np.ndarray
    imp: np.ndarray
    fnm: np.ndarray
    mated: np.ndarray
    rep_fm: np.ndarray
    rep_imp: np.ndarray
    rep_fnm: np.ndarray
    rep_mated: np.ndarray
    people: np.ndarray
    op_fnm: np.ndarray | None = None

    @property
    def n_strata(self) -> int:
        return int(self.mated.shape[1])


def _pair_sum(a, b, code, values, n_codes: int, WT: np.ndarray) -> np.ndarray:
    """``sum w_a w_b v`` per code over rows (a, b, code, values (R, T)); returns (b, n_codes, T).
    Rows with ``code < 0`` are left out. In chunks of rows: each row's replicate weights
    ``w_a * w_b`` (R, b), summed into its code by a sparse one-hot product."""
    from scipy import sparse

    nb = WT.shape[1]
    t = values.shape[1]
    out = np.zeros((n_codes, nb, t))
    keep = (code >= 0) & np.any(values != 0, axis=1)
    a, b, code, values = a[keep], b[keep], code[keep], values[keep].astype(np.float64)
    step = max(1, _CHUNK_ELEMS // max(1, nb))
    for s in range(0, a.size, step):
        e = min(a.size, s + step)
        prod = WT[a[s:e]] * WT[b[s:e]]  # (r, b)
        for k in range(t):
            H = sparse.csr_matrix((values[s:e, k], (code[s:e], np.arange(e - s))), shape=(n_codes, e - s))
            out[:, :, k] += H @ prod
    return np.moveaxis(out, 0, 1)


def _by_group_stratum(W: np.ndarray, N: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``sum_i W[b, i] N[i, g] S[i, k]`` as one matrix product: (b, G, K)."""
    g, k = N.shape[1], S.shape[1]
    return (W @ (N[:, :, None] * S[:, None, :]).reshape(N.shape[0], g * k)).reshape(W.shape[0], g, k)


def _impostor_trials(counts: PeopleCounts, mapping, g: int, sigma, k: int, W: np.ndarray) -> np.ndarray:
    """Same-group impostor comparisons per (group, pair stratum) for each replicate: (b, G, P)."""
    ps, pt, pcode = pair_strata(k)
    nb = W.shape[0]
    W2 = W * W
    S = _onehot(sigma, k)  # (S, K) person strata
    if counts.impostor_mode == "listed":
        ga, gb = mapping[counts.imp_ca], mapping[counts.imp_cb]
        code = np.where(ga == gb, ga * ps.size + pcode[sigma[counts.imp_a], sigma[counts.imp_b]], -1)
        q = _pair_sum(counts.imp_a, counts.imp_b, code, counts.imp_n[:, None], g * ps.size, np.ascontiguousarray(W.T))
        return q[:, :, 0].reshape(nb, g, ps.size)
    if counts.impostor_mode == "two_sided":
        half = counts.n_cells // 2
        P = counts.images[:, :half] @ _onehot(mapping[:half], g)  # (S, G)
        R = counts.images[:, half:] @ _onehot(mapping[half:], g)
        WP = _by_group_stratum(W, P, S)  # probe images by group and stratum
        WR = _by_group_stratum(W, R, S)
        self_pairs = _by_group_stratum(W2, P * R, S)
        directed = WP[:, :, :, None] * WR[:, :, None, :]  # (b, G, K, K): probe stratum, reference stratum
        directed[:, :, np.arange(k), np.arange(k)] -= self_pairs
        out = directed[:, :, ps, pt]
        off = ps != pt
        out[:, :, off] += directed[:, :, pt[off], ps[off]]
        return out
    if counts.impostor_mode == "all":
        N = (counts.images @ _onehot(mapping, g)).astype(np.float64)  # (S, G)
        A = _by_group_stratum(W, N, S)
        Q = _by_group_stratum(W2, N * N, S)
        out = A[:, :, ps] * A[:, :, pt]
        same = ps == pt
        out[:, :, same] = (A[:, :, ps[same]] ** 2 - Q[:, :, ps[same]]) / 2
        return out
    # same_cell: impostors only within a cell; a group sums its cells
    Nc = counts.images.astype(np.float64)  # (S, C)
    A = _by_group_stratum(W, Nc, S)
    Q = _by_group_stratum(W2, Nc * Nc, S)
    per = A[:, :, ps] * A[:, :, pt]
    same = ps == pt
    per[:, :, same] = (A[:, :, ps[same]] ** 2 - Q[:, :, ps[same]]) / 2
    return np.moveaxis(np.moveaxis(per, 1, 2) @ _onehot(mapping, g), 2, 1)


def _counts(counts: PeopleCounts, mapping, g: int, sigma, k: int, W: np.ndarray):
    ps, _, pcode = pair_strata(k)
    nb, t = W.shape[0], counts.thresholds.size
    imp = _impostor_trials(counts, mapping, g, sigma, k, W)
    fm = np.zeros((nb, g, ps.size, t))
    if counts.fm_a.size:
        ga, gb = mapping[counts.fm_ca], mapping[counts.fm_cb]
        code = np.where(ga == gb, ga * ps.size + pcode[sigma[counts.fm_a], sigma[counts.fm_b]], -1)
        fm = _pair_sum(counts.fm_a, counts.fm_b, code, counts.fm_counts, g * ps.size, np.ascontiguousarray(W.T)).reshape(nb, g, ps.size, t)
    mated = np.zeros((nb, g, k))
    fnm = np.zeros((nb, g, k, t))
    if counts.mated_person.size:
        col = mapping[counts.mated_cell] * k + sigma[counts.mated_person]
        A = np.zeros((counts.n_people, g * k))
        np.add.at(A, (counts.mated_person, col), counts.mated_n)
        mated = (W @ A).reshape(nb, g, k)
        for j in range(t):
            A.fill(0)
            np.add.at(A, (counts.mated_person, col), counts.mated_fnm[:, j])
            fnm[:, :, :, j] = (W @ A).reshape(nb, g, k)
    return fm, imp, fnm, mated


def _op_fnm(counts: PeopleCounts, mapping, g: int, sigma, k: int, W: np.ndarray, op_threshold: np.ndarray) -> np.ndarray:
    """False non-matches per (group, stratum) at each replicate's own threshold: (b, G, K, T)."""
    nb, t = W.shape[0], op_threshold.shape[1]
    out = np.full((nb, g, k, t), np.nan)
    if counts.mated_score is None or not counts.mated_score.size:
        return out
    H = _onehot(mapping[counts.mated_score_cell] * k + sigma[counts.mated_score_person], g * k)  # (M, G*K)
    WT = np.ascontiguousarray(W.T)
    wm = WT[counts.mated_score_person]  # (M, b)
    for j in range(t):
        th = op_threshold[:, j]
        ok = np.isfinite(th)
        if not ok.any():
            continue
        miss = counts.mated_score[:, None] < np.where(ok, th, np.inf)[None, :]
        vals = (H.T @ (wm * miss)).T.reshape(nb, g, k)
        out[ok, :, :, j] = vals[ok]
    return out


def stratum_counts(
    counts: PeopleCounts,
    mapping: np.ndarray,
    n_groups: int,
    person_stratum: np.ndarray,
    n_strata: int,
    *,
    n_replicates: int = 1000,
    seed: int = 0,
    op_threshold: np.ndarray | None = None,
) -> StratumCounts:
    """Count errors and comparisons by group and covariate stratum, with people-level replicates.

    Parameters
    ----------
    counts : PeopleCounts
        The per-person counts of the crude analysis.
    mapping : ndarray of int, shape (C,)
        Group of each cell code (as for :func:`~audit.metrics.people.people_bootstrap`).
    n_groups : int
    person_stratum : ndarray of int, shape (S,)
        Covariate stratum (``0..n_strata-1``) of each person.
    n_strata : int
    n_replicates, seed : int
        The crude bootstrap's: the replicates resample exactly the same people.
    op_threshold : ndarray, shape (B, T), optional
        Each replicate's re-estimated threshold (:attr:`PeopleReplicates.op_threshold`); gives
        ``op_fnm``.

    Examples
    --------
    Two people of one group, stratum 0 and 1, one image each; their one impostor pair is in pair
    stratum {0, 1} and falsely matches:

    >>> c = PeopleCounts(np.array([0.5]), np.zeros(2, np.int64), np.ones((2, 1), np.int64), "all",
    ...     np.array([0]), np.array([1]), np.array([0]), np.array([0]), np.array([[1]]),
    ...     np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.int64))
    >>> sc = stratum_counts(c, np.array([0]), 1, np.array([0, 1]), 2, n_replicates=0)
    >>> sc.imp.tolist(), sc.fm[:, :, 0].tolist()      # pair strata {0,0}, {0,1}, {1,1}
    ([[0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0]])
    """
    mapping = np.asarray(mapping, np.int64)
    sigma = np.asarray(person_stratum, np.int64)
    g, k = int(n_groups), int(n_strata)
    if sigma.shape != (counts.n_people,):
        raise MetricError(f"person_stratum must give a stratum for each of the {counts.n_people} people; got shape {sigma.shape}.")
    if sigma.size and (sigma.min() < 0 or sigma.max() >= k):
        raise MetricError(f"person_stratum must lie in 0..{k - 1}; found {int(sigma.min())}..{int(sigma.max())}.")
    strata = mapping[counts.person_first_cell] if counts.n_people else np.zeros(0, np.int64)
    pfm, pimp, pfnm, pmated = (x[0] for x in _counts(counts, mapping, g, sigma, k, np.ones((1, counts.n_people))))
    p, t = k * (k + 1) // 2, counts.thresholds.size
    b = int(n_replicates)
    rfm, rimp = np.zeros((b, g, p, t)), np.zeros((b, g, p))
    rfnm, rmated = np.zeros((b, g, k, t)), np.zeros((b, g, k))
    op = np.full((b, g, k, t), np.nan) if op_threshold is not None else None
    step = max(1, min(b or 1, _CHUNK_ELEMS // max(1, counts.n_people, g * p * max(t, 1) * 4)))
    for start, stop, W in _weight_chunks(strata, g, n_replicates=b, seed=seed, step=step):
        rfm[start:stop], rimp[start:stop], rfnm[start:stop], rmated[start:stop] = _counts(counts, mapping, g, sigma, k, W)
        if op is not None:
            op[start:stop] = _op_fnm(counts, mapping, g, sigma, k, W, np.asarray(op_threshold)[start:stop])
    people = np.bincount(strata, minlength=g)
    return StratumCounts(pfm, pimp, pfnm, pmated, rfm, rimp, rfnm, rmated, people, op)


def mantel_haenszel(e1, n1, e0, n0) -> np.ndarray:
    """Mantel–Haenszel rate ratio over the last axis (strata).

    ``sum(e1 n0 / T) / sum(e0 n1 / T)``, ``T = n1 + n0``, over strata where both ``n1`` and ``n0``
    are positive; ``nan`` when no stratum has both, ``inf`` when the denominator is 0 and the
    numerator is not.

    Examples
    --------
    Two strata: 10/100 against 5/200, and 2/50 against 1/50:
    ``(10*200/300 + 2*50/100) / (5*100/300 + 1*50/100) = 7.6667 / 2.1667``

    >>> float(np.round(mantel_haenszel([10, 2], [100, 50], [5, 1], [200, 50]), 6))
    3.538462
    """
    e1, n1, e0, n0 = (np.asarray(x, np.float64) for x in (e1, n1, e0, n0))
    both = (n1 > 0) & (n0 > 0)
    tot = np.where(both, n1 + n0, 1.0)
    num = np.sum(np.where(both, e1 * n0 / tot, 0.0), axis=-1)
    den = np.sum(np.where(both, e0 * n1 / tot, 0.0), axis=-1)
    used = both.any(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, np.nan))
    return np.where(used, out, np.nan)


def greenland_robins_variance(e1, n1, e0, n0) -> np.ndarray:
    """Variance of ``log`` of the Mantel–Haenszel ratio if every comparison were independent
    (Greenland & Robins 1985, binomial data), over the last axis:

    ``sum((M n1 n0 / T - e1 e0) / T) / (sum(e1 n0 / T) * sum(e0 n1 / T))``, ``M = e1 + e0``,
    over strata where both sides have comparisons. With one stratum it is
    ``1/e1 - 1/n1 + 1/e0 - 1/n0``, the log risk ratio's (Katz) variance.
    """
    e1, n1, e0, n0 = (np.asarray(x, np.float64) for x in (e1, n1, e0, n0))
    both = (n1 > 0) & (n0 > 0)
    tot = np.where(both, n1 + n0, 1.0)
    top = np.sum(np.where(both, ((e1 + e0) * n1 * n0 / tot - e1 * e0) / tot, 0.0), axis=-1)
    num = np.sum(np.where(both, e1 * n0 / tot, 0.0), axis=-1)
    den = np.sum(np.where(both, e0 * n1 / tot, 0.0), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((num > 0) & (den > 0), top / np.where(num * den > 0, num * den, 1.0), np.nan)


def _rates(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, e / np.where(n > 0, n, 1), np.nan)


def stratum_rate_replicates(sc: StratumCounts, metric: str, k: int, *, collapse: bool = False,
                            op_column: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Errors (G, X), comparisons (G, X), corrected replicate rates (B, G, X) and replicate
    comparisons (B, G, X) of threshold ``k``.

    ``X`` is the strata (pair strata for ``"fmr"``), or one column with ``collapse`` (the crude
    rate). The corrections are the crude table's: pair-level noise for FMR, few people for both;
    ``op_column`` takes FNMR replicates at each replicate's re-estimated threshold.
    """
    if metric == "fmr":
        e, n, re_, rn = sc.fm[:, :, k], sc.imp, sc.rep_fm[:, :, :, k], sc.rep_imp
    elif metric == "fnmr":
        e, n, rn = sc.fnm[:, :, k], sc.mated, sc.rep_mated
        re_ = sc.op_fnm[:, :, :, k] if op_column and sc.op_fnm is not None else sc.rep_fnm[:, :, :, k]
    else:
        raise MetricError(f"metric must be 'fmr' or 'fnmr'; got {metric!r}.")
    if collapse:
        e, n, re_, rn = e.sum(1, keepdims=True), n.sum(1, keepdims=True), re_.sum(2, keepdims=True), rn.sum(2, keepdims=True)
    b, g, x = re_.shape
    point = _rates(e, n)
    reps = _rates(re_, rn).reshape(b, g * x)  # (not -1: b may be 0, a run with bootstrap = 0)
    if metric == "fmr":
        reps = remove_pair_noise(point.reshape(-1), n.reshape(-1), reps)
    reps = inflate_for_few_people(point.reshape(-1), reps, np.repeat(sc.people, x))
    return e, n, reps.reshape(b, g, x), rn


@dataclass(frozen=True)
class AdjustedComparison:
    """One group against the reference: crude and adjusted (Mantel–Haenszel) ratios.

    Attributes
    ----------
    group, reference : str
    crude, crude_low, crude_high : float
        The crude ratio and its simultaneous people-level interval (the reference table's).
    adjusted, adjusted_low, adjusted_high : float
        The Mantel–Haenszel ratio over the strata both groups have, and its simultaneous interval.
    p_adjusted : float
        Max-t adjusted p-value of "adjusted ratio = 1".
    crude_shown, adjusted_shown : bool
        The interval excludes 1.
    strata_used : int
        Strata with comparisons in both the group and the reference.
    strata_missing : tuple of int
        Strata with comparisons in only one of the two (left out of the adjusted ratio).
    independent_low, independent_high : float
        95% interval of the adjusted ratio if every comparison were independent (Greenland–Robins).
    """

    group: str
    reference: str
    crude: float
    crude_low: float
    crude_high: float
    crude_shown: bool
    adjusted: float
    adjusted_low: float
    adjusted_high: float
    p_adjusted: float
    adjusted_shown: bool
    strata_used: int
    strata_missing: tuple
    independent_low: float
    independent_high: float


def _weighted(rates: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum w r / sum w`` over the last axis, leaving out undefined rates (replicates in which a
    stratum lost all its comparisons)."""
    ok = ~np.isnan(rates)
    ws = np.sum(np.where(ok, w, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ws > 0, np.sum(np.where(ok, w * np.nan_to_num(rates), 0.0), axis=-1) / np.where(ws > 0, ws, 1), np.nan)


#: A comparison whose adjusted ratio is undefined in more replicates than this share gets no interval.
MAX_UNDEFINED = 0.05


def _max_t_defined(lp: np.ndarray, lr: np.ndarray, confidence: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Max-t as :func:`audit.metrics.reference._max_t`, but a replicate in which a comparison is
    undefined (its group kept no comparison in the strata it shares with the reference) does not
    count towards that comparison, instead of making the whole replicate extreme; comparisons
    undefined in more than :data:`MAX_UNDEFINED` of the replicates leave the family."""
    lp = np.where(np.mean(~np.isfinite(lr), axis=0) > MAX_UNDEFINED, np.nan, lp) if lr.shape[0] else lp
    valid = np.isfinite(lr)
    with np.errstate(invalid="ignore"):
        se = np.array([np.std(lr[valid[:, j], j], ddof=1) if valid[:, j].sum() >= 2 else np.nan for j in range(lr.shape[1])])
    use = np.isfinite(se) & (se > 0) & np.isfinite(lp)
    if not use.any() or lr.shape[0] == 0:
        return se, np.nan, np.zeros(0)
    z = np.abs(lr[:, use] - lp[use]) / se[use]
    t = np.max(np.where(np.isfinite(z), z, -np.inf), axis=1)
    t = t[np.isfinite(t)]
    if not t.size:
        return se, np.nan, np.zeros(0)
    c = float(np.sort(t)[min(len(t) - 1, int(np.ceil(confidence * (len(t) - 1))))])
    return np.where(np.isfinite(lp), se, np.nan), c, t


def _family(groups, e, n, reps, rn, r: int, confidence: float, strict: bool = True, dof=None):
    """Max-t intervals of the MH ratio of each group against group ``r``: rows (k, ratio, lo, hi,
    p_adj, used, missing, gr_lo, gr_hi). Each replicate's ratio is the MH ratio of its own
    comparisons ``rn`` (B, G, X) and corrected stratum rates ``reps``. ``strict``: an undefined replicate makes the whole
    replicate extreme (the crude reference table's rule); otherwise :func:`_max_t_defined`."""
    from scipy.stats import norm

    idx = [k for k in range(len(groups)) if k != r and n[k].sum() > 0]
    if not idx or n[r].sum() <= 0:
        return []
    lp, lr, info, var_k, var_r = [], [], [], [], []
    for k in idx:
        both = (n[k] > 0) & (n[r] > 0)
        w = np.where(both, n[k] * n[r] / np.where(both, n[k] + n[r], 1), 0.0)
        ek, er = float(e[k][both].sum()), float(e[r][both].sum())
        fk, fr = 0.5 / max(float(n[k][both].sum()), 1.0), 0.5 / max(float(n[r][both].sum()), 1.0)
        sk, sr = _weighted(_rates(e[k], n[k])[None], w)[0], _weighted(_rates(e[r], n[r])[None], w)[0]
        point = _floored_log(sk, fk) - _floored_log(sr, fr) if both.any() else np.nan
        if er == 0 and ek == 0 or not both.any():
            point = np.nan  # nothing to compare: not in the family (as for the crude ratio)
        lp.append(point)
        a_, b_ = rn[:, k], rn[:, r]  # the replicate's own MH weights, over the strata the estimate uses
        wb = np.where(both & (a_ > 0) & (b_ > 0), a_ * b_ / np.where(a_ + b_ > 0, a_ + b_, 1), 0.0)
        lk, lref = _floored_log(_weighted(reps[:, k], wb), fk), _floored_log(_weighted(reps[:, r], wb), fr)
        lr.append(lk - lref)
        var_k.append(_replicate_variance(lk[:, None])[0])
        var_r.append(_replicate_variance(lref[:, None])[0])
        ratio = float(mantel_haenszel(e[k], n[k], e[r], n[r]))
        v = float(greenland_robins_variance(e[k], n[k], e[r], n[r]))
        z = norm.ppf((1 + confidence) / 2)
        gr = (float(np.exp(np.log(ratio) - z * np.sqrt(v))), float(np.exp(np.log(ratio) + z * np.sqrt(v)))) \
            if np.isfinite(v) and ratio > 0 and np.isfinite(ratio) else (np.nan, np.nan)
        missing = tuple(int(s) for s in np.flatnonzero((n[k] > 0) ^ (n[r] > 0)))
        info.append((k, ratio, ek, er, int(both.sum()), missing, gr))
    lp_a = np.array(lp, np.float64)
    lr_a = np.stack(lr, axis=1) if lr else np.zeros((reps.shape[0], 0))
    se, c, t = _max_t(lp_a, lr_a, confidence) if strict else _max_t_defined(lp_a, lr_a, confidence)
    if dof is not None:  # each group's variance is itself uncertain: the reference table's widening
        dof = np.asarray(dof, np.float64)
        se = se * small_sample_factor(np.array(var_k), dof[idx], np.array(var_r), dof[r], confidence)
    rows = []
    for j, (k, ratio, ek, er, used, missing, gr) in enumerate(info):
        if ek == 0 and er == 0 or used == 0:
            rows.append((k, float("nan"), 0.0, np.inf, 1.0, used, missing, gr))
            continue
        lpj = lp_a[j]
        if np.isfinite(c) and np.isfinite(se[j]) and se[j] > 0 and np.isfinite(lpj):
            lo, hi = float(np.exp(lpj - c * se[j])), float(np.exp(lpj + c * se[j]))
            p_adj = float((1 + np.sum(t >= abs(lpj) / se[j])) / (1 + t.size))
        else:
            lo, hi, p_adj = 0.0, np.inf, 1.0
        if ek == 0:
            lo = 0.0
        if er == 0:
            hi = np.inf
        rows.append((k, ratio, lo, hi, min(p_adj, 1.0), used, missing, gr))
    return rows


def adjusted_comparisons(
    groups: list[str],
    sc: StratumCounts,
    metric: str,
    k: int,
    reference: int,
    *,
    op_column: bool = False,
    dof: np.ndarray | None = None,
    confidence: float = 0.95,
) -> list[AdjustedComparison]:
    """Crude and Mantel–Haenszel-adjusted ratio of each group's rate to the reference's at
    threshold ``k``, each with people-level intervals simultaneous over the comparisons.

    Parameters
    ----------
    groups : list of str, length G
    sc : StratumCounts
    metric : {"fmr", "fnmr"}
    k : int
        Threshold index.
    reference : int
        Index of the reference group.
    op_column : bool
        FNMR at the operating point (a target-FMR threshold re-estimated in each replicate), as the
        crude table does for that threshold.
    dof : ndarray, shape (G,), optional
        Degrees of freedom of each group's variance (:func:`audit.metrics.reference.rate_dof`):
        both families' standard errors are widened as the reference table's are.

    Returns
    -------
    list of AdjustedComparison
        One per group with comparisons other than the reference, in ``groups`` order. Stratum
        indices in ``strata_missing`` are pair strata for FMR (:func:`pair_strata`).
    """
    ce, cn, creps, crn = stratum_rate_replicates(sc, metric, k, collapse=True, op_column=op_column)
    ae, an, areps, arn = stratum_rate_replicates(sc, metric, k, op_column=op_column)
    crude = {row[0]: row for row in _family(groups, ce, cn, creps, crn, reference, confidence, dof=dof)}
    out = []
    for row in _family(groups, ae, an, areps, arn, reference, confidence, strict=False, dof=dof):
        kk, ratio, lo, hi, p_adj, used, missing, gr = row
        c = crude.get(kk)
        c_ratio, clo, chi = (c[1], c[2], c[3]) if c is not None else (np.nan, np.nan, np.nan)
        out.append(AdjustedComparison(groups[kk], groups[reference], c_ratio, clo, chi, bool(clo > 1 or chi < 1),
                                      ratio, lo, hi, p_adj, bool(lo > 1 or hi < 1), used, missing, *gr))
    return out
