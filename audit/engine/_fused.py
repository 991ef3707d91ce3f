"""Optional compiled inner loops for the tile scan (numba), used when numba is installed.

One pass over a tile does what the numpy path does in four (cast to bin, add the column's cell
offset, ``bincount``, compare with the tail floor): per-cell score histograms and the positions
of the tail candidates, at about 1.5 ns a pair against 2.2 on this project's 2-core machine. A
second loop counts a threshold (per row and opposite group) and finds the band of pairs to
rescore in one pass instead of six.
Results are identical to the numpy path (tested on both); only the time differs (see
``benchmarks/tiled_scoring.py``). ``FACE_AUDIT_NUMBA=0`` turns it off.

It runs on one thread: a parallel version (one band of rows per thread) lost to OpenBLAS's
threads, which keep spinning on the cores for a while after each matrix product.
"""

from __future__ import annotations

import numpy as np

from ..compiled import numba_or_none

__all__ = ["available", "hist_and_tail", "count_at"]


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

    return kernel, count


_UNSET = object()
_KERNEL = _UNSET  # compiled on first use: importing numba takes a while, and most commands never scan
_COUNT = None


def available() -> bool:
    """Whether the compiled kernels are in use (numba importable and not turned off)."""
    global _KERNEL, _COUNT
    if _KERNEL is _UNSET:
        _KERNEL, _COUNT = _compile() or (None, None)
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
