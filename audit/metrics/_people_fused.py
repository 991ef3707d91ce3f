"""Optional compiled loops for the people-level bootstrap (numba), used when numba is installed.

They replace the numpy path's chunked dense arrays in :mod:`audit.metrics.people`:

- ``count_draws``: the replicates' draws counted into uint8 weights, in both layouts (a
  replicate's row for the walk, a person's row for the quadratic form);
- ``quadratic``: ``out[col_r, k, :] += v[r, k] * W[:, a_r] * W[:, b_r]`` over person-pair rows.
  Rows come grouped by their first person ``a`` (the aggregated lists are sorted that way), so a
  run of rows of one person sums ``v * W[:, b]`` first (int16, or int32 where a run could pass
  2**15) and multiplies by ``W[:, a]`` once at its end, into int64 totals. The rows carry the
  increments between nested thresholds, so a row scored in one band is added once. Threads take
  runs of whole people (the numpy path builds a sparse matrix per group and threshold and
  multiplies it into a dense (S, B) copy of the weights);
- ``operating_point``: for each replicate, finds the first tail pair whose weight ``w_a * w_b`` no
  longer fits in the replicate's allowed false matches. It starts from a *checkpoint*: the weighted
  count of the tail pairs at or above a fixed threshold (the fixed-threshold replicates already
  hold it, per group), and walks down the tail from there, or back up, only as far as this
  replicate's threshold lies from the checkpoint; the mated comparisons are counted from the same
  checkpoint. Without one it walks from the top (the numpy path forms cumulative sums over the
  whole top of the tail for every replicate);
- ``aggregate``: :meth:`audit.metrics.people.PeopleCounts.aggregate_pairs` by a counting sort.

All do the same exact integer arithmetic as the numpy path, so the replicate counts are
identical (tested on both). ``FACE_AUDIT_NUMBA=0`` turns them off.
"""

from __future__ import annotations

import numpy as np

from ..compiled import numba_or_none

__all__ = ["available", "usable", "aggregate", "count_draws", "quadratic", "prepare_walk", "operating_point", "MAX_WEIGHT"]

#: Weights the compiled loops take are below this: they are held as uint8 (255 marks "too many").
MAX_WEIGHT = 255
#: Largest integer a run of rows may sum to in int32 before the run's total is moved to int64.
_RUN_LIMIT = 2 ** 31 - 1


def _compile():
    numba = numba_or_none()
    if numba is None:
        return None

    @numba.njit(cache=True, nogil=True, parallel=True)
    def quad(pa, pb, col, vals, WT, starts, parts, proto):  # pragma: no cover - compiled
        t = vals.shape[1]
        nb = WT.shape[1]
        ncol = parts.shape[1]
        one = proto[0]  # the run sums' integer type: int16 where they stay small, else int32
        for ch in numba.prange(starts.size - 1):  # runs of rows, whole people, per task
            acc = parts[ch]
            run = np.zeros((ncol, t, nb), proto.dtype)
            tmp = np.zeros(nb, proto.dtype)
            first = np.full(ncol, t, np.int64)  # per column: the first increment a run touched
            r = starts[ch]
            end = starts[ch + 1]
            while r < end:
                a = pa[r]
                while r < end and pa[r] == a:  # z[c, k] = sum of d * W[b] over person a's rows
                    c = col[r]
                    wb = WT[pb[r]]
                    for k in range(t):
                        d = vals[r, k]
                        if d != 0:
                            z = run[c, k]
                            if k < first[c]:
                                first[c] = k
                            if d == 1:
                                for x in range(nb):
                                    z[x] += one * wb[x]
                            else:
                                dd = one * d
                                for x in range(nb):
                                    z[x] += dd * wb[x]
                    r += 1
                wa = WT[a]
                for c in range(ncol):  # the value at k is the sum of the increments up to k; times W[a]
                    f = first[c]
                    if f < t:
                        for x in range(nb):
                            tmp[x] = 0
                        for k in range(f, t):
                            z = run[c, k]
                            o = acc[c, k]
                            for x in range(nb):
                                tmp[x] += z[x]
                                z[x] = 0
                                o[x] += np.int64(wa[x]) * np.int64(tmp[x])
                        first[c] = t

    @numba.njit(cache=True, nogil=True, parallel=True)
    def draws(u, mem, W, WT):  # pragma: no cover - compiled
        b, m = u.shape
        for x in numba.prange(b):
            w = W[x]
            for i in range(m):
                d = min(np.int64(u[x, i] * m), m - 1)  # floor(u * m), as the numpy path draws
                p = mem[d]
                if w[p] < 255:  # saturates: a weight of 255 sends the caller to the numpy path
                    w[p] += 1
                    WT[p, x] = w[p]

    @numba.njit(cache=True, nogil=True, parallel=True)
    def op(W, allowed, sc, ta, tb, tcol, start, fm0, msc, mp, mcol, mstart, fnm0, ncol, fm, fnm, sb):  # pragma: no cover - compiled
        nb = W.shape[0]
        full = sc.size
        last = ncol - 1  # the whole population; tcol == last marks a cross-group pair (population only)
        for x in numba.prange(nb):
            w = W[x]
            lim = allowed[x]
            acc = np.zeros(ncol)
            for c in range(ncol):
                acc[c] = fm0[x, c]  # the checkpoint: pairs above `start`, weighted (zeros at the top)
            cum = acc[last]
            j = -1
            if cum <= lim:  # down the tail: add pairs until the next one does not fit
                q = start
                while q < full:
                    ww = np.float64(w[ta[q]]) * np.float64(w[tb[q]])
                    if cum + ww > lim:
                        j = q
                        break
                    cum += ww
                    if tcol[q] != last:
                        acc[tcol[q]] += ww
                    q += 1
            else:  # back up the tail: remove pairs until the rest fits; the last removed is the first that does not
                q = start - 1
                while q >= 0:
                    ww = np.float64(w[ta[q]]) * np.float64(w[tb[q]])
                    cum -= ww
                    if tcol[q] != last:
                        acc[tcol[q]] -= ww
                    if cum <= lim:
                        j = q
                        break
                    q -= 1
            if j < 0:  # the stored tail is too short for this replicate
                sb[x] = np.nan
                for c in range(ncol):
                    fm[x, c] = np.nan
                    fnm[x, c] = np.nan
                continue
            s = sc[j]
            sb[x] = s
            q = j - 1
            while q >= 0 and sc[q] == s:  # ties with the first pair that does not fit are left out too
                ww = np.float64(w[ta[q]]) * np.float64(w[tb[q]])
                cum -= ww
                if tcol[q] != last:
                    acc[tcol[q]] -= ww
                q -= 1
            acc[last] = cum
            for c in range(ncol):
                fm[x, c] = acc[c]
                fnm[x, c] = fnm0[x, c]  # mated comparisons below the checkpoint, weighted
            # a miss scores at or below s: from the checkpoint's mated count, add or remove the ones between
            stop = np.searchsorted(msc, s, side="right")
            if stop >= mstart:
                for m in range(mstart, stop):
                    wm = np.float64(w[mp[m]])
                    if mcol[m] >= 0:
                        fnm[x, mcol[m]] += wm
                    fnm[x, last] += wm
            else:
                for m in range(stop, mstart):
                    wm = np.float64(w[mp[m]])
                    if mcol[m] >= 0:
                        fnm[x, mcol[m]] -= wm
                    fnm[x, last] -= wm

    @numba.njit(cache=True, nogil=True, parallel=True)
    def agg(a, b, ca, cb, cnt, ns, nc):  # pragma: no cover - compiled
        n = a.size
        t = cnt.shape[1]
        lo = np.empty(n, np.int64)  # the pair ordered: lower (person, cell) first
        minor = np.empty(n, np.int64)
        for i in numba.prange(n):
            x, y, cx, cy = a[i], b[i], ca[i], cb[i]
            if x > y or (x == y and cx > cy):
                x, y, cx, cy = y, x, cy, cx
            lo[i] = x
            minor[i] = (y * nc + cx) * nc + cy
        start = np.zeros(ns + 1, np.int64)  # a counting sort by the first person
        for i in range(n):
            start[lo[i] + 1] += 1
        for p in range(ns):
            start[p + 1] += start[p]
        fill = start[:-1].copy()
        idx = np.empty(n, np.int64)
        for i in range(n):
            idx[fill[lo[i]]] = i
            fill[lo[i]] += 1
        uniq = np.zeros(ns, np.int64)
        for p in numba.prange(ns):  # within a person: sort the rest of the key, count distinct keys
            s0, s1 = start[p], start[p + 1]
            if s1 > s0:
                seg = idx[s0:s1]
                o = np.argsort(minor[seg], kind="mergesort")
                idx[s0:s1] = seg[o]
                u = 1
                for q in range(s0 + 1, s1):
                    if minor[idx[q]] != minor[idx[q - 1]]:
                        u += 1
                uniq[p] = u
        out_start = np.zeros(ns + 1, np.int64)
        for p in range(ns):
            out_start[p + 1] = out_start[p] + uniq[p]
        m = out_start[ns]
        ua = np.empty(m, np.int64)
        um = np.empty(m, np.int64)
        summed = np.zeros((m, t), np.int64)
        for p in numba.prange(ns):
            o = out_start[p] - 1
            for q in range(start[p], start[p + 1]):
                i = idx[q]
                if q == start[p] or minor[i] != minor[idx[q - 1]]:
                    o += 1
                    ua[o] = p
                    um[o] = minor[i]
                for k in range(t):
                    summed[o, k] += cnt[i, k]
        return ua, um, summed

    return quad, op, draws, agg


_UNSET = object()
_KERNELS = _UNSET  # compiled on first use


def available() -> bool:
    """Whether the compiled loops are in use (numba importable and not turned off)."""
    global _KERNELS
    if _KERNELS is _UNSET:
        _KERNELS = _compile()
    return _KERNELS is not None


def usable(W: np.ndarray) -> bool:
    """Whether the compiled loops are in use and exact for these weights (a person drawn
    :data:`MAX_WEIGHT` times or more in a replicate, astronomically unlikely, takes the numpy path)."""
    return available() and (W.size == 0 or float(W.max()) < MAX_WEIGHT)


def quadratic(pa: np.ndarray, pb: np.ndarray, col: np.ndarray, vals: np.ndarray, W: np.ndarray, ncol: int,
              *, WT: np.ndarray | None = None) -> np.ndarray | None:
    """``out[c, k, x] = sum over rows r with col[r] == c of vals[r, k] * W[x, pa[r]] * W[x, pb[r]]``
    (``W`` the (B, S) replicate weights, below :data:`MAX_WEIGHT`), shape (ncol, T, B), float64
    holding exact integers. ``WT`` may give ``W.T`` as contiguous uint8 already (S, B). ``None``
    where a run's sums could pass int32 (the caller takes the numpy path)."""
    nb = W.shape[0] if W is not None else WT.shape[1]
    t = vals.shape[1]
    out = np.zeros((ncol, t, nb))
    if pa.size == 0 or nb == 0:
        return out
    pa = np.ascontiguousarray(pa, np.int64)
    if np.any(pa[1:] < pa[:-1]):  # runs of one person: group the rows (a stable order keeps the rest)
        o = np.argsort(pa, kind="stable")
        pa, pb, col, vals = pa[o], np.asarray(pb)[o], np.asarray(col)[o], np.asarray(vals)[o]
    # columns from the fewest counts to the most, as increments: nested thresholds (the pairs at or
    # above a higher one are among those above a lower one) give each row one nonzero increment
    # where the rows scored in one band, and the run sums add them back up
    order = np.argsort(np.asarray(vals).sum(axis=0), kind="stable")
    inc = np.diff(np.asarray(vals, np.int64)[:, order], axis=1, prepend=0)
    if WT is None:
        WT = np.ascontiguousarray(np.asarray(W).T, np.uint8)
    # a run's sums stay below 2**31: the increments' sizes over a person's rows, times the largest weight
    bound = np.bincount(pa, weights=np.abs(inc).sum(axis=1).astype(np.float64)).max(initial=0.0) * float(WT.max(initial=0))
    if bound >= _RUN_LIMIT:
        return None
    proto = np.ones(1, np.int16 if bound < 2 ** 15 else np.int32)  # int16 sums: twice the lanes
    threads = numba_or_none().get_num_threads()
    n = pa.size
    cuts = [0]
    for i in range(1, 4 * threads):  # runs of whole people per task, about equal in rows
        p = int(np.searchsorted(pa, pa[min(n - 1, i * n // (4 * threads))], side="left"))
        if p > cuts[-1]:
            cuts.append(p)
    cuts.append(n)
    parts = np.zeros((len(cuts) - 1, ncol, t, nb), np.int64)
    _KERNELS[0](pa, np.ascontiguousarray(pb, np.int64), np.ascontiguousarray(col, np.int64), inc, WT,
                np.array(cuts, np.int64), parts, proto)
    out[:, order] = parts.sum(axis=0)
    return out


def count_draws(u: np.ndarray, members: np.ndarray, W: np.ndarray, WT: np.ndarray) -> None:
    """Add one stratum's draws to uint8 weights ``W`` (b, S) and to their transpose ``WT`` (S, b):
    replicate ``x`` draws person ``members[floor(u[x, i] * m)]`` for each of its ``m`` uniform
    doubles ``u[x]`` (the numpy path's rule). Counts saturate at 255 (:data:`MAX_WEIGHT`: the
    caller takes the numpy path)."""
    _KERNELS[2](np.ascontiguousarray(u, np.float64), np.ascontiguousarray(members, np.int64), W, WT)


def aggregate(a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray, cnt: np.ndarray, ns: int, nc: int) -> tuple[np.ndarray, ...]:
    """:meth:`audit.metrics.people.PeopleCounts.aggregate_pairs`, compiled: the same rows in the
    same order (by person, person, cell, cell), by a counting sort on the first person and a sort
    of each person's rows. ``cnt`` (n, T) int64; people below ``ns``, cells below ``nc``."""
    ua, um, summed = _KERNELS[3](a, b, ca, cb, np.ascontiguousarray(cnt, np.int64), ns, nc)
    cbu, rest = um % nc, um // nc
    return ua, rest // nc, rest % nc, cbu, summed


def prepare_walk(score: np.ndarray, ta: np.ndarray, tb: np.ndarray, tcol: np.ndarray, mated_score: np.ndarray,
                 mated_person: np.ndarray, mated_col: np.ndarray, ncol: int) -> tuple:
    """The tail and the mated scores as :func:`operating_point` reads them (once for every target):
    the tail descending with its people and column (``tcol``: the pair's group, or -1 for a
    cross-group pair), the mated scores ascending with their person and group."""
    msc = np.ascontiguousarray(mated_score, np.float64)
    order = np.argsort(msc, kind="stable")
    return (np.ascontiguousarray(score, np.float64), np.ascontiguousarray(ta, np.int64), np.ascontiguousarray(tb, np.int64),
            np.where(np.asarray(tcol) >= 0, tcol, ncol - 1).astype(np.int64), msc[order],
            np.ascontiguousarray(mated_person, np.int64)[order], np.ascontiguousarray(mated_col, np.int64)[order], int(ncol))


def operating_point(W: np.ndarray, allowed: np.ndarray, tail: tuple, *, start: int = 0, fm0: np.ndarray | None = None,
                    mated_start: int = 0, fnm0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per replicate (rows of ``W``, uint8): the score ``s`` of the first tail pair whose weight does
    not fit in ``allowed``, the weighted false matches above ``s`` per column (the pair's group's,
    and the last column every pair) and the weighted mated comparisons at or below ``s``. ``nan``
    where the tail is too short. ``tail`` comes from :func:`prepare_walk`.

    The checkpoint: ``fm0`` (B, ncol) are the weighted pairs among the first ``start`` of the tail
    and ``fnm0`` (B, ncol) the weighted mated comparisons among the ``mated_start`` lowest mated
    scores (``None`` and 0: the walk starts at the top of the tail and the bottom of the mated
    scores). Returns ``fm (B, ncol), fnm (B, ncol), s (B,)``."""
    nb = W.shape[0]
    sc, ta, tb, tcol, msc, mp, mcol, ncol = tail
    fm, fnm, sb = np.empty((nb, ncol)), np.empty((nb, ncol)), np.empty(nb)
    zeros = np.zeros((nb, ncol))
    _KERNELS[1](np.ascontiguousarray(W, np.uint8), np.ascontiguousarray(allowed, np.float64), sc, ta, tb, tcol, int(start),
                zeros if fm0 is None else np.ascontiguousarray(fm0, np.float64), msc, mp, mcol, int(mated_start),
                zeros if fnm0 is None else np.ascontiguousarray(fnm0, np.float64), int(ncol), fm, fnm, sb)
    return fm, fnm, sb
