"""Optional compiled inner loops for the tile scan (numba), used when numba is installed.

One pass over a tile does what the numpy path does in four (cast to bin, add the column's cell
offset, ``bincount``, compare with the tail floor): per-cell score histograms and the positions
of the tail candidates, at about 1.5 ns a pair against 2.2 on this project's 2-core machine. A
second loop counts a threshold (per row and opposite group) and finds the band of pairs to
rescore in one pass instead of six. A third computes canonical scores
(:func:`audit.engine.numerics._canonical`) pair by pair, in parallel over pairs, with no
temporaries of size pairs × d: the same float64 operations in the same pairwise order as the numpy
path, so the same bits.
Results are identical to the numpy path (tested on both); only the time differs (see
``benchmarks/tiled_scoring.py``). ``FACE_AUDIT_NUMBA=0`` turns it off.

The scan's loops run on one thread: a parallel version (one band of rows per thread) lost to OpenBLAS's
threads, which keep spinning on the cores for a while after each matrix product.
"""

from __future__ import annotations

import threading

import numpy as np

from ..compiled import numba_or_none

__all__ = ["available", "hist_and_tail", "count_at", "canonical", "order_desc"]


def _compile():
    numba = numba_or_none()
    if numba is None:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(S, diag, row_base, col_off, top, hist, floor, out):  # pragma: no cover - compiled
        nr, nc = S.shape
        cap = out.shape[0]
        k = 0
        for i in range(nr):
            base = row_base[i]
            j0 = i + 1 if diag else 0  # diagonal tile: only the strict upper triangle
            for j in range(j0, nc):
                v = S[i, j]
                b = np.int64(v)  # screening values are in bin units: truncation is the bin
                if b < 0:
                    b = 0
                elif b > top:
                    b = top
                hist[base + col_off[j] + b] += 1
                if v >= floor:
                    if k < cap:
                        out[k] = i * nc + j
                    k += 1
        return k

    @numba.njit(cache=True, nogil=True)
    def count(S, diag, r0, c0, grp, hi, lo, fm, out):  # pragma: no cover - compiled
        nr, nc = S.shape
        cap = out.shape[0]
        k = 0
        for i in range(nr):
            gi = grp[r0 + i]
            j0 = i + 1 if diag else 0
            for j in range(j0, nc):
                v = S[i, j]
                if v >= hi:
                    fm[r0 + i, grp[c0 + j]] += 1
                    fm[c0 + j, gi] += 1
                elif v >= lo:
                    if k < cap:
                        out[k] = i * nc + j
                    k += 1
        return k

    # The canonical score, the numpy path's operations exactly: float64 products (cosine) or
    # squared float64 differences (Euclidean), zero padding to ``width`` (a power of two), then
    # p[:h] + p[h:] halvings (which write below d only: the padding stays zero). The two loops
    # below share this body; neither calls the other (a compiled function that calls another
    # through a closure is compiled again in every process instead of loaded from numba's cache).
    @numba.njit(cache=True, nogil=True)
    def canon_serial(E, a, b, euclid, width, out):  # pragma: no cover - compiled
        d = E.shape[1]
        buf = np.zeros(width, np.float64)
        for k in range(a.shape[0]):
            x = E[a[k]]
            y = E[b[k]]
            if euclid:
                for j in range(d):
                    t = np.float64(x[j]) - np.float64(y[j])
                    buf[j] = t * t
            else:
                for j in range(d):
                    buf[j] = np.float64(x[j]) * np.float64(y[j])
            h = width // 2
            while h >= 1:
                for j in range(h):
                    buf[j] = buf[j] + buf[j + h]
                h //= 2
            out[k] = -np.sqrt(buf[0]) if euclid else buf[0]

    @numba.njit(cache=True, nogil=True, parallel=True)
    def canon_parallel(E, a, b, euclid, width, out):  # pragma: no cover - compiled
        d = E.shape[1]
        n = a.shape[0]
        step = 8192
        for blk in numba.prange((n + step - 1) // step):
            buf = np.zeros(width, np.float64)
            for k in range(blk * step, min(n, blk * step + step)):
                x = E[a[k]]
                y = E[b[k]]
                if euclid:
                    for j in range(d):
                        t = np.float64(x[j]) - np.float64(y[j])
                        buf[j] = t * t
                else:
                    for j in range(d):
                        buf[j] = np.float64(x[j]) * np.float64(y[j])
                h = width // 2
                while h >= 1:
                    for j in range(h):
                        buf[j] = buf[j] + buf[j + h]
                    h //= 2
                out[k] = -np.sqrt(buf[0]) if euclid else buf[0]

    @numba.njit(cache=True, nogil=True)
    def block_order(a, b, shift, nb):  # pragma: no cover - compiled
        # a counting sort of pairs by (a >> shift, b >> shift): pairs of the same two blocks of rows
        # together, so that the rows they read stay in cache
        n = a.shape[0]
        start = np.zeros(nb * nb + 1, np.int64)
        for k in range(n):
            start[(a[k] >> shift) * nb + (b[k] >> shift) + 1] += 1
        for q in range(nb * nb):
            start[q + 1] += start[q]
        perm = np.empty(n, np.int64)
        for k in range(n):
            key = (a[k] >> shift) * nb + (b[k] >> shift)
            perm[start[key]] = k
            start[key] += 1
        return perm

    @numba.njit(cache=True, nogil=True, parallel=True)
    def gather(a, b, perm, pa, pb):  # pragma: no cover - compiled
        for i in numba.prange(perm.shape[0]):
            pa[i] = a[perm[i]]
            pb[i] = b[perm[i]]

    @numba.njit(cache=True, nogil=True, parallel=True)
    def scatter(x, perm, out):  # pragma: no cover - compiled
        for i in numba.prange(perm.shape[0]):
            out[perm[i]] = x[i]

    @numba.njit(cache=True, nogil=True)
    def sort_desc(x, budget):  # pragma: no cover - compiled
        # a stable insertion sort, highest first, of nearly sorted values; gives up (False) after
        # ``budget`` moves
        n = x.shape[0]
        keys = x.copy()
        o = np.arange(n)
        moves = 0
        for i in range(1, n):
            key = keys[i]
            idx = o[i]
            j = i - 1
            while j >= 0 and keys[j] < key:
                keys[j + 1] = keys[j]
                o[j + 1] = o[j]
                j -= 1
            moves += i - 1 - j
            keys[j + 1] = key
            o[j + 1] = idx
            if moves > budget:
                return o, False
        return o, True

    return kernel, count, canon_serial, canon_parallel, sort_desc, (block_order, gather, scatter)


_UNSET = object()
_KERNEL = _UNSET  # compiled on first use: importing numba takes a while, and most commands never scan
_COUNT = _CANON_SERIAL = _CANON_PARALLEL = _SORT_DESC = _BLOCKS = None
_PARALLEL_PAIRS = 1 << 15  # fewer pairs than this are scored on one thread (a parallel region's start-up)
_PARALLEL_LOCK = threading.Lock()  # one parallel region at a time (not every threading layer allows more)
_BLOCK_PAIRS = 1 << 20  # from this many pairs, rows larger than a cache are read block by block
_CACHE_BYTES = 16 << 20
_BLOCK_BYTES = 2 << 20  # rows per block: two blocks stay in the last-level cache


def available() -> bool:
    """Whether the compiled kernels are in use (numba importable and not turned off)."""
    global _KERNEL, _COUNT, _CANON_SERIAL, _CANON_PARALLEL, _SORT_DESC, _BLOCKS
    if _KERNEL is _UNSET:
        _KERNEL, _COUNT, _CANON_SERIAL, _CANON_PARALLEL, _SORT_DESC, _BLOCKS = _compile() or (None,) * 6
    return _KERNEL is not None


def hist_and_tail(S: np.ndarray, diag: bool, row_base: np.ndarray, col_off: np.ndarray, top: int,
                  hist: np.ndarray, floor: np.float32, out: np.ndarray) -> int:
    """Add tile ``S``'s pairs to the flat histogram ``hist`` (pair (i, j) goes to ``row_base[i] +
    col_off[j] + bin``, the bin clipped to 0..top) and write the flat positions of values
    ``>= floor`` into ``out`` (as many as fit). Returns how many values are ``>= floor`` (more
    than ``out`` holds means the positions must be found again). Diagonal tiles count their
    strict upper triangle."""
    return int(_KERNEL(S, diag, row_base, col_off, top, hist, floor, out))


def count_at(S: np.ndarray, diag: bool, r0: int, c0: int, grp: np.ndarray, hi: np.float32, lo: np.float32,
             fm: np.ndarray, out: np.ndarray) -> int:
    """Count tile ``S``'s pairs with values ``>= hi`` into ``fm`` (N, G): row ``r0 + i`` against
    the group of column ``c0 + j`` and the other way round; write the flat positions of values in
    ``[lo, hi)`` (to be rescored) into ``out`` (as many as fit) and return their number.
    Diagonal tiles count their strict upper triangle."""
    return int(_COUNT(S, diag, r0, c0, grp, hi, lo, fm, out))


def canonical(e32: np.ndarray, a: np.ndarray, b: np.ndarray, euclidean: bool) -> np.ndarray:
    """Canonical scores of row pairs ``(a[k], b[k])`` of float32 rows ``e32`` (C-contiguous):
    the same float64 values, bit for bit, as :func:`audit.engine.numerics._canonical`'s numpy path.
    Many pairs are scored on all of numba's threads; a million or more, when the rows do not fit
    in a cache, in the order of their blocks of rows (each pair's value is the same either way)."""
    n = a.shape[0]
    out = np.empty(n, dtype=np.float64)
    if n:
        width = 1 << max(0, (e32.shape[1] - 1).bit_length())
        if n < _PARALLEL_PAIRS:
            _CANON_SERIAL(e32, a, b, bool(euclidean), width, out)
        elif n >= _BLOCK_PAIRS and e32.nbytes > _CACHE_BYTES and min(int(a.min()), int(b.min())) >= 0:
            # pairs in random order (the tail, by score) read two rows from memory each; scored in
            # the order of their blocks of rows instead, they read them from cache (2x faster)
            block_order, gather, scatter = _BLOCKS
            rows = e32.shape[0]
            shift = max((_BLOCK_BYTES // (4 * e32.shape[1])).bit_length() - 1, (rows - 1).bit_length() - 10, 0)
            with _PARALLEL_LOCK:
                perm = block_order(a, b, shift, ((rows - 1) >> shift) + 1)
                pa, pb = np.empty_like(a), np.empty_like(b)
                gather(a, b, perm, pa, pb)
                scores = np.empty(n, dtype=np.float64)
                _CANON_PARALLEL(e32, pa, pb, bool(euclidean), width, scores)
                del pa, pb
                scatter(scores, perm, out)
        else:
            with _PARALLEL_LOCK:
                _CANON_PARALLEL(e32, a, b, bool(euclidean), width, out)
    return out


def order_desc(x: np.ndarray) -> np.ndarray:
    """The stable order of ``x`` from highest to lowest (``np.argsort(-x, kind="stable")``), fast
    when ``x`` is nearly in that order already (the tail's canonical scores in the order of its
    screening values: each is out of place by a few float32 roundings at most)."""
    if available() and x.size > 1:
        o, done = _SORT_DESC(x, 8 * x.size)
        if done:
            return o
    return np.argsort(-x, kind="stable")
