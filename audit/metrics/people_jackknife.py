"""Leave-one-person-out rates of every group, in closed form, for the BCa acceleration and the
degrees of freedom of the people-level intervals (:mod:`audit.verification.intervals`)."""

from __future__ import annotations

import numpy as np

from .people import PeopleCounts, _counts, _mated_per_person, _onehot

__all__ = ["people_jackknife"]


def people_jackknife(counts: PeopleCounts, mapping: np.ndarray, n_groups: int, *, point=None) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-person-out FMR and FNMR of every group, in closed form (no refit).

    Removing person i removes every pair they take part in: the false matches and mated counts
    lose person i's marginal sums, and the impostor trials follow the same closed forms as the
    bootstrap with ``w_i = 0``. Used for the BCa acceleration of the people-level intervals.

    ``point`` may give the full-sample counts ``(fm, imp, fnm, mated)`` already computed (a
    :class:`PeopleReplicates`' ``point_*`` for the same counts and mapping).

    Returns
    -------
    fmr, fnmr : ndarray of float64, shape (S, G + 1, T)
        Rates with each person left out (``nan`` where no comparisons remain).
    """
    mapping = np.asarray(mapping, np.int64)
    g = int(n_groups)
    s = counts.n_people
    if point is None:
        pfm, pimp, pfnm, pmated = (x[0] for x in _counts(counts, mapping, g, np.ones((1, s))))
    else:
        pfm, pimp, pfnm, pmated = point

    def marginal(a, b, rows_group, values):  # (S, G+1, T) sums over the rows touching each person
        v = values if values.ndim == 2 else values[:, None]
        out = np.zeros((s, g + 1, v.shape[1]))
        col = np.where(rows_group >= 0, rows_group, g)  # cross-group rows: only the population's column
        ia, ib = a * (g + 1) + col, b * (g + 1) + col
        for k in range(v.shape[1]):
            per = (np.bincount(ia, weights=v[:, k], minlength=s * (g + 1))
                   + np.bincount(ib, weights=v[:, k], minlength=s * (g + 1))).reshape(s, g + 1)
            out[:, :g, k] = per[:, :g]
            out[:, g, k] = per.sum(axis=1)
        return out

    fm = pfm[None] - (marginal(counts.fm_a, counts.fm_b, np.where(mapping[counts.fm_ca] == mapping[counts.fm_cb], mapping[counts.fm_ca], -1),
                                counts.fm_counts.astype(np.float64)) if counts.fm_a.size else 0.0)
    if counts.impostor_mode == "listed":
        same = np.where(mapping[counts.imp_ca] == mapping[counts.imp_cb], mapping[counts.imp_ca], -1)
        imp = pimp[None] - marginal(counts.imp_a, counts.imp_b, same, counts.imp_n.astype(np.float64))[:, :, 0]
    elif counts.impostor_mode == "two_sided":
        half = counts.n_cells // 2
        P = counts.images[:, :half] @ _onehot(mapping[:half], g)
        R = counts.images[:, half:] @ _onehot(mapping[half:], g)
        P = np.concatenate([P, P.sum(1, keepdims=True)], axis=1)
        R = np.concatenate([R, R.sum(1, keepdims=True)], axis=1)
        imp = (P.sum(0) - P) * (R.sum(0) - R) - ((P * R).sum(0) - P * R)
    elif counts.impostor_mode == "all":
        N = counts.images @ _onehot(mapping, g)
        N = np.concatenate([N, N.sum(1, keepdims=True)], axis=1)
        imp = ((N.sum(0) - N) ** 2 - ((N * N).sum(0) - N * N)) / 2
    else:
        Nc = counts.images.astype(np.float64)
        per_cell = ((Nc.sum(0) - Nc) ** 2 - ((Nc * Nc).sum(0) - Nc * Nc)) / 2
        imp = per_cell @ np.concatenate([_onehot(mapping, g), np.ones((mapping.size, 1))], axis=1)
    mine = _mated_per_person(counts, mapping, g)
    mine_n, mine_f = mine[:, :, 0], mine[:, :, 1:]
    fnm = pfnm[None] - mine_f
    mated = pmated[None] - mine_n
    with np.errstate(invalid="ignore", divide="ignore"):
        fmr = np.where(imp[:, :, None] > 0, fm / np.where(imp > 0, imp, 1)[:, :, None], np.nan)
        fnmr = np.where(mated[:, :, None] > 0, fnm / np.where(mated > 0, mated, 1)[:, :, None], np.nan)
    return fmr, fnmr
