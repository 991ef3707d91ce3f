"""An optional compiled inner loop for the tile scan (numba), used when numba is installed.

One pass over a tile does what the numpy path does in four (cast to bin, add the column's cell
offset, ``bincount``, compare with the tail floor): per-cell score histograms and the positions
of the tail candidates, at about 1.5 ns a pair against 2.2 on this project's 2-core machine.
Results are identical to the numpy path (tested on both); only the time differs (see
``benchmarks/tiled_scoring.py``). ``FACE_AUDIT_NUMBA=0`` turns it off.

It runs on one thread: a parallel version (one band of rows per thread) lost to OpenBLAS's
threads, which keep spinning on the cores for a while after each matrix product.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["available", "threads", "hist_and_tail", "count_at"]


def _compile():
    if os.environ.get("FACE_AUDIT_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(S, diag, row_base, col_off, top, hist, floor, out, counts):  # pragma: no cover - compiled
        nr, nc = S.shape
        cap = out.shape[1]
        h = hist[0]
        o = out[0]
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
                h[base + col_off[j] + b] += 1
                if v >= floor:
                    if k < cap:
                        o[k] = i * nc + j
                    k += 1
        counts[0] = k

    @numba.njit(cache=True, nogil=True)
    def count(S, diag, r0, c0, grp, hi, lo, fm, out, counts):  # pragma: no cover - compiled
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
        counts[0] = k

    return (kernel, count), numba


_UNSET = object()
_KERNEL = _UNSET  # compiled on first use: importing numba takes a while, and most commands never scan
_NUMBA = None
_COUNT = None


def available() -> bool:
    """Whether the compiled kernel is in use (numba importable and not turned off)."""
    global _KERNEL, _NUMBA, _COUNT
    if _KERNEL is _UNSET:
        got = _compile()
        (_KERNEL, _COUNT), _NUMBA = ((None, None), None) if got is None else got
    return _KERNEL is not None


def threads() -> int:
    """How many bands of rows (histograms, candidate buffers) the compiled pass uses: one."""
    return 1


def hist_and_tail(S: np.ndarray, diag: bool, row_base: np.ndarray, col_off: np.ndarray, top: int,
                  hist: np.ndarray, floor: np.float32, out: np.ndarray, counts: np.ndarray) -> None:
    """Add tile ``S``'s pairs to ``hist[0]`` (shape (1, H): a flat histogram; pair (i, j) goes to
    ``row_base[i] + col_off[j] + bin``, the bin clipped to 0..top) and write the flat positions of
    values ``>= floor`` into ``out[0]`` (as many as fit). ``counts[0]`` gets how many values are
    ``>= floor`` (more than ``out[0]`` holds means the positions must be found again). Diagonal
    tiles count their strict upper triangle."""
    _KERNEL(S, diag, row_base, col_off, top, hist, floor, out, counts)


def count_at(S: np.ndarray, diag: bool, r0: int, c0: int, grp: np.ndarray, hi: np.float32, lo: np.float32,
             fm: np.ndarray, out: np.ndarray, counts: np.ndarray) -> None:
    """Count tile ``S``'s pairs with values ``>= hi`` into ``fm`` (N, G): row ``r0 + i`` against
    the group of column ``c0 + j`` and the other way round; write the flat positions of values in
    ``[lo, hi)`` (to be rescored) into ``out`` (as many as fit) and their number into ``counts[0]``.
    Diagonal tiles count their strict upper triangle."""
    _COUNT(S, diag, r0, c0, grp, hi, lo, fm, out, counts)
