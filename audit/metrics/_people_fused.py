"""Optional compiled loops for the people-level bootstrap (numba), used when numba is installed.

Two loops replace the numpy path's chunked dense arrays in :mod:`audit.metrics.people`:

- ``quadratic``: ``out[col_r, k, :] += v[r, k] * W[:, a_r] * W[:, b_r]`` over person-pair rows, one
  pass, the replicate axis innermost and contiguous (the numpy path builds a sparse matrix per
  group and threshold and multiplies it into a dense (S, B) copy of the weights);
- ``operating_point``: for each replicate, walks the impostor tail from the highest score,
  adding ``w_a * w_b`` until the replicate's allowed false matches are exceeded, and counts the
  group false matches above that score and the mated comparisons at or below it (the numpy path
  forms cumulative sums over the whole top of the tail for every replicate).

Both do the same integer-valued float64 arithmetic as the numpy path, so the replicate counts are
identical (tested on both). ``FACE_AUDIT_NUMBA=0`` turns them off.
"""

from __future__ import annotations

import numpy as np

from ..compiled import numba_or_none

__all__ = ["available", "usable", "quadratic", "operating_point"]

#: Largest weight the compiled loops take: float32 holds products of weights up to 2**12 exactly.
MAX_WEIGHT = 4096


def _compile():
    numba = numba_or_none()
    if numba is None:
        return None

    @numba.njit(cache=True, nogil=True, parallel=True)
    def quad(pa, pb, col, vals, WTb, nb, out):  # pragma: no cover - compiled
        n, t = vals.shape
        nblk, _, blk = WTb.shape
        for y in numba.prange(nblk):  # a block of replicates per task: its (S, blk) weights stay in cache
            x0 = y * blk
            nx = min(blk, nb - x0)
            W = WTb[y]
            acc = np.zeros((out.shape[0], t, blk))
            ww = np.empty(blk, np.float64)
            for r in range(n):
                wa = W[pa[r]]
                wb = W[pb[r]]
                for x in range(blk):
                    ww[x] = np.float64(wa[x] * wb[x])
                c = col[r]
                for k in range(t):
                    v = vals[r, k]
                    if v != 0:
                        o = acc[c, k]
                        for x in range(blk):
                            o[x] += v * ww[x]
            for c in range(out.shape[0]):
                for k in range(t):
                    for x in range(nx):
                        out[c, k, x0 + x] = acc[c, k, x]

    @numba.njit(cache=True, nogil=True, parallel=True)
    def op(W, allowed, sc, ta, tb, tcol, msc_order, msc, mp, mcol, ncol, fm, fnm, sb):  # pragma: no cover - compiled
        nb = W.shape[0]
        full = sc.size
        nm = msc_order.size
        last = ncol - 1  # the whole population; tcol == last marks a cross-group pair (population only)
        for x in numba.prange(nb):
            w = W[x]
            lim = allowed[x]
            acc = np.zeros(ncol)
            cum = 0.0
            j = full
            for q in range(full):  # add pairs until the next one does not fit
                ww = np.float64(w[ta[q]] * w[tb[q]])
                if cum + ww > lim:
                    j = q
                    break
                cum += ww
                acc[tcol[q]] += ww
            if j == full:  # the stored tail is too short for this replicate
                sb[x] = np.nan
                for c in range(ncol):
                    fm[x, c] = np.nan
                    fnm[x, c] = np.nan
                continue
            s = sc[j]
            sb[x] = s
            q = j - 1
            while q >= 0 and sc[q] == s:  # ties with the first pair that does not fit are left out too
                ww = np.float64(w[ta[q]] * w[tb[q]])
                cum -= ww
                acc[tcol[q]] -= ww
                q -= 1
            acc[last] = cum
            for c in range(ncol):
                fm[x, c] = acc[c]
                fnm[x, c] = 0.0
            for i in range(nm):  # mated scores ascending: a miss scores at or below s
                m = msc_order[i]
                if msc[m] > s:
                    break
                wm = w[mp[m]]
                c = mcol[m]
                if c >= 0:
                    fnm[x, c] += wm
                fnm[x, last] += wm

    return quad, op


_UNSET = object()
_KERNELS = _UNSET  # compiled on first use


def available() -> bool:
    """Whether the compiled loops are in use (numba importable and not turned off)."""
    global _KERNELS
    if _KERNELS is _UNSET:
        _KERNELS = _compile()
    return _KERNELS is not None


#: Replicates per block in :func:`quadratic`: a block's weights, (S, 256) float32, stay near the core.
BLOCK = 256


def usable(W: np.ndarray) -> bool:
    """Whether the compiled loops are in use and exact for these weights (a person drawn more than
    :data:`MAX_WEIGHT` times in a replicate, astronomically unlikely, takes the numpy path)."""
    return available() and (W.size == 0 or float(W.max()) <= MAX_WEIGHT)


def quadratic(pa: np.ndarray, pb: np.ndarray, col: np.ndarray, vals: np.ndarray, W: np.ndarray, ncol: int) -> np.ndarray:
    """``out[c, k, x] = sum over rows r with col[r] == c of vals[r, k] * W[x, pa[r]] * W[x, pb[r]]``
    (``W`` the (B, S) replicate weights), shape (ncol, T, B). The weights are small integers:
    float32 holds them and their products exactly, and the sums are float64, so the result equals
    the numpy path's."""
    nb, s = W.shape
    blk = min(BLOCK, -(-max(nb, 1) // 8) * 8)  # a point estimate (one replicate) is not padded to a full block
    nblk = max(1, -(-nb // blk))
    WTb = np.zeros((nblk, s, blk), np.float32)  # per block of replicates: a person's weights contiguous
    for y in range(nblk):
        part = W[y * blk:(y + 1) * blk].T
        WTb[y, :, :part.shape[1]] = part
    out = np.zeros((ncol, vals.shape[1], nb))
    _KERNELS[0](np.ascontiguousarray(pa, np.int32), np.ascontiguousarray(pb, np.int32), np.ascontiguousarray(col, np.int64),
                np.ascontiguousarray(vals, np.float64), WTb, nb, out)
    return out


def operating_point(W: np.ndarray, allowed: np.ndarray, score: np.ndarray, ta: np.ndarray, tb: np.ndarray,
                    tcol: np.ndarray, mated_score: np.ndarray, mated_person: np.ndarray, mated_col: np.ndarray,
                    ncol: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per replicate (rows of ``W``): the score ``s`` of the first tail pair whose weight does not fit
    in ``allowed``, the weighted false matches above ``s`` per column (``tcol``: the pair's group
    or -1, the last column every pair) and the weighted mated comparisons at or below ``s``.
    ``nan`` where the tail is too short. Returns ``fm (B, ncol), fnm (B, ncol), s (B,)``."""
    nb = W.shape[0]
    fm, fnm, sb = np.empty((nb, ncol)), np.empty((nb, ncol)), np.empty(nb)
    msc = np.ascontiguousarray(mated_score, np.float64)
    order = np.argsort(msc, kind="stable").astype(np.int64)
    # weights as float32 (small integers: their products are exact) and people as int32 keep a
    # replicate's row of weights and the walk's streams small in cache
    _KERNELS[1](W.astype(np.float32), np.ascontiguousarray(allowed, np.float64),
                np.ascontiguousarray(score, np.float64), np.ascontiguousarray(ta, np.int32), np.ascontiguousarray(tb, np.int32),
                np.where(np.asarray(tcol) >= 0, tcol, ncol - 1).astype(np.int64), order, msc, np.ascontiguousarray(mated_person, np.int64),
                np.ascontiguousarray(mated_col, np.int64), int(ncol), fm, fnm, sb)
    return fm, fnm, sb
