"""The per-process tile kernel: one pass over a list of tiles (matrix product, tail candidates,
histograms, threshold counts with their band rescored canonically, narrowing windows), whose
result is a dict of accumulators that merge by summation (tail: by :func:`merge_tails`)."""

from __future__ import annotations

import os
import queue
import resource
import threading
import time
from typing import Sequence

import numpy as np

from . import _fused
from .geometry import _Geometry, _raw_band, _segments, _tile_pairs
from .numerics import _canonical
from .tail import _Tail

_CHUNK_ELEMS = 1 << 20  # elements per histogram chunk: keeps the temporaries in cache
_IDX_BUF = 1 << 20  # first size of the compiled pass's buffer of tail candidate positions (it grows)


def _no_progress(pairs: int) -> None:
    return None


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes.

    Linux's ``VmHWM`` where available: ``getrusage``'s ``ru_maxrss`` of a spawned process also
    counts the parent's resident memory at the moment of the fork that preceded the exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Kernel:
    """Processes tiles: matrix product, tail extraction, histograms, threshold counting."""

    def __init__(self, geo: _Geometry, *, mated: tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None,
                 tail_k: int | None, tail_floor: np.float32 | None, count_thresholds: Sequence[float],
                 histogram: bool, windows: Sequence[tuple] = (), tail_holds: Sequence[float] = (), tail_limit: int = 0):
        self.geo = geo
        n = geo.lhs.shape[0]
        t = min(geo.tile, max(n, 1))
        self.S = np.empty(t * t, dtype=np.float32)
        self.m1 = np.empty(t * t, dtype=bool)
        self.m2 = np.empty(t * t, dtype=bool) if count_thresholds or windows else None
        self.tri = np.tri(min(t, 256), dtype=bool)  # lower triangle and diagonal of a 256-block
        self.ibuf = np.empty(min(_CHUNK_ELEMS, t * t), dtype=np.int32)  # float32 -> int32 casts fastest
        self.hist = np.zeros((geo.n_groups, geo.n_groups, geo.hist_bins + 2), dtype=np.int64) if histogram else None
        self.tail = None
        self.seeded = False  # whether the tail floor is already a usable bound
        if tail_k is not None:
            self.tail = _Tail(tail_k, geo.margin, geo.v_min32 if tail_floor is None else max(tail_floor, geo.v_min32),
                              tail_holds, tail_limit)
            self.seeded = tail_floor is not None
        self.thresholds = [float(x) for x in count_thresholds]
        self.bands = [_raw_band(geo, x) for x in self.thresholds]
        # per-row counts of a counting pass: one row's false matches against one group are at most
        # n - 1, so int32 holds them exactly below 2**31 rows and halves a task's largest array
        self.fm = np.zeros((len(self.thresholds), n, geo.n_groups), dtype=np.int32 if n < 2**31 else np.int64)
        self.mated = mated  # (ma, mb, in_scan, by_tile) in scan order
        self.on_tile = _no_progress  # called with each finished tile's pair count
        self.idx_buf: np.ndarray | None = None  # tail candidate positions from the compiled pass
        self.band_buf: np.ndarray | None = None  # band positions from the compiled counting pass
        self.seconds_matmul = 0.0
        self.rescored = 0
        # windows (lo32, hi32, n_sub, collect) of screening values: per window the impostor pairs
        # above hi32, a histogram of those inside (n_sub bins) and, when collecting, the pairs inside
        self.windows = [(np.float32(lo), np.float32(hi), int(nsub), bool(col)) for lo, hi, nsub, col in windows]
        self.w_above = [0] * len(self.windows)
        self.w_hist = [np.zeros(nsub, np.int64) if nsub else None for _, _, nsub, _ in self.windows]
        self.w_pairs: list[list] = [[] for _ in self.windows]

    # -- one tile
    def run_all(self, tiles, *, overlap: bool) -> None:
        """Process tiles in order. With ``overlap``, a second thread computes the next tile's
        matrix product (BLAS releases the GIL) while this one accumulates the current tile."""
        if not overlap or len(tiles) < 2:
            for t in tiles:
                self.accumulate(t, self.product(t, self.S))
                self.on_tile(_tile_pairs(t))
            return
        bufs = (self.S, np.empty_like(self.S))
        free = (threading.Semaphore(1), threading.Semaphore(1))
        ready: queue.Queue = queue.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for i, t in enumerate(tiles):
                    free[i % 2].acquire()
                    if stop.is_set():
                        return
                    ready.put((i, t, self.product(t, bufs[i % 2])))
            except BaseException as exc:  # handed to the consumer, raised there
                ready.put(exc)

        th = threading.Thread(target=produce, name="face-audit-tile-products", daemon=True)
        th.start()
        try:
            for _ in range(len(tiles)):
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                i, t, S = item
                self.accumulate(t, S)
                free[i % 2].release()
                self.on_tile(_tile_pairs(t))
        finally:
            stop.set()
            for f in free:
                f.release()
            th.join()

    def product(self, tile: tuple[int, int, int, int], buf: np.ndarray) -> np.ndarray:
        """The tile's screening values, in ``buf``."""
        geo = self.geo
        r0, r1, c0, c1 = tile
        S = buf[: (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0)
        t0 = time.perf_counter()
        np.matmul(geo.lhs[r0:r1], geo.rhs[:, c0:c1], out=S)
        self.seconds_matmul += time.perf_counter() - t0
        return S

    def accumulate(self, tile: tuple[int, int, int, int], S: np.ndarray) -> None:
        geo = self.geo
        r0, r1, c0, c1 = tile
        nr = r1 - r0
        diag = r0 == c0
        if diag:  # the sentinel over the lower triangle and the diagonal, block by block
            bs = self.tri.shape[0]
            for a in range(0, nr, bs):
                b = min(nr, a + bs)
                S[a:b, :a] = geo.sentinel32
                np.copyto(S[a:b, a:b], geo.sentinel32, where=self.tri[: b - a, : b - a])
        mated_here = None
        if self.mated is not None:
            mated_here = self.mated[3].get((r0, c0))
        if self.tail is not None:
            self._seed_tail(S, diag, 0 if mated_here is None else mated_here.size)
        if self.hist is not None and _fused.available():
            # one compiled pass: histograms and tail candidates
            idx = self._fused(S, r0, c0, diag)
            if self.tail is not None:
                self._tail_add(S, idx, r0, c0)
            self._unhist_mated(S, r0, c0, mated_here)
        else:
            if self.tail is not None:
                m = self.m1[: S.size].reshape(S.shape)
                np.greater_equal(S, self.tail.floor32, out=m)
                self._tail_add(S, np.flatnonzero(m), r0, c0)
            if self.hist is not None:
                self._hist(S, r0, r1, c0, c1, diag, mated_here)
        for k in range(len(self.thresholds)):
            self._count(S, r0, r1, c0, c1, k)
        for w in range(len(self.windows)):
            self._window(S, r0, c0, w, mated_here)

    def _window(self, S, r0, c0, w, mated_here) -> None:
        """One window's accumulators: impostor pairs above it, its sub-histogram, its pairs."""
        geo = self.geo
        lo, hi, nsub, collect = self.windows[w]
        nc = S.shape[1]
        above = int(np.count_nonzero(S > hi))  # (the sentinel is below every window)
        if mated_here is not None and mated_here.size:
            ma, mb = self.mated[0][mated_here], self.mated[1][mated_here]
            above -= int(np.count_nonzero(S[ma - r0, mb - c0] > hi))
        self.w_above[w] += above
        m = self.m1[: S.size].reshape(S.shape)
        m2 = self.m2[: S.size].reshape(S.shape)
        np.greater_equal(S, lo, out=m)
        np.less_equal(S, hi, out=m2)
        np.logical_and(m, m2, out=m)
        idx = np.flatnonzero(m)
        if not idx.size:
            return
        rows = idx // nc + r0
        cols = idx % nc + c0
        keep = geo.subj[rows] != geo.subj[cols]
        vals = S.ravel()[idx[keep]]
        if nsub:
            b = ((vals.astype(np.float64) - float(lo)) * (nsub / (float(hi) - float(lo)))).astype(np.int64)
            np.clip(b, 0, nsub - 1, out=b)
            self.w_hist[w] += np.bincount(b, minlength=nsub)
        if collect:
            self.w_pairs[w].append((vals, rows[keep].astype(np.int32), cols[keep].astype(np.int32)))

    def _fused(self, S, r0, c0, diag) -> np.ndarray | None:
        """Histograms of the tile and (with a tail) the flat positions of its values >= the floor,
        in one compiled pass (:mod:`audit.engine._fused`)."""
        geo = self.geo
        nr, nc = S.shape
        g_all, nb2 = geo.n_groups, geo.hist_bins + 2
        if self.idx_buf is None:
            self.idx_buf = np.empty(min(S.size, _IDX_BUF), dtype=np.int64)
        row_base = geo.grp[r0:r0 + nr].astype(np.int64) * (g_all * nb2)
        col_off = geo.grp[c0:c0 + nc].astype(np.int64) * nb2
        floor = self.tail.floor32 if self.tail is not None else np.float32(np.inf)
        k = _fused.hist_and_tail(S, diag, row_base, col_off, nb2 - 1, self.hist.reshape(-1), floor, self.idx_buf)
        if self.tail is None:
            return None
        if k <= self.idx_buf.size:
            return self.idx_buf[:k]
        # more candidates than the buffer holds (early tiles, before the floor rises): find them
        # with numpy (the histogram is already counted) and keep a larger buffer
        self.idx_buf = np.empty(min(S.size, 2 * k), dtype=np.int64)
        m = self.m1[: S.size].reshape(S.shape)
        np.greater_equal(S, floor, out=m)  # (the sentinel below the diagonal is under every floor)
        return np.flatnonzero(m)

    def _seed_tail(self, S, diag, n_mated) -> None:
        tail = self.tail
        nr, nc = S.shape
        if not self.seeded and tail.size < tail.k:
            # no floor yet: if this tile alone holds k impostor pairs, its (k + mated)-th largest
            # value bounds the global k-th largest impostor value from below
            upper = nr * (nr - 1) // 2 if diag else nr * nc
            rank = tail.k + n_mated
            if upper >= rank:
                flat = S.ravel().copy()
                kth = float(np.partition(flat, flat.size - rank)[flat.size - rank])
                del flat
                tail.raise_floor(kth)
                self.seeded = True

    def _tail_add(self, S, idx: np.ndarray, r0, c0) -> None:
        """Add the impostor pairs among the tile's flat positions ``idx`` (values >= the floor)."""
        tail = self.tail
        nc = S.shape[1]
        if idx.size:
            vals = S.ravel()[idx]
            rows = idx // nc
            cols = idx - rows * nc
            rows += r0
            cols += c0
            keep = self.geo.subj[rows] != self.geo.subj[cols]
            tail.add(vals[keep], rows[keep].astype(np.int32), cols[keep].astype(np.int32))

    def _hist(self, S, r0, r1, c0, c1, diag, mated_here) -> None:
        geo = self.geo
        g_all, nb2 = geo.n_groups, geo.hist_bins + 2
        nc = c1 - c0
        # the screening value is in bin units, so truncation is the bin (0: the sentinel); adding
        # (column group) × nb2 makes one bincount per row group cover every cell of the tile
        coloff = geo.grp[c0:c1].astype(np.int32) * np.int32(nb2)
        step = max(1, self.ibuf.size // nc)
        for ra, rb, g in _segments(geo, r0, r1):
            for a in range(ra, rb, step):
                b = min(a + step, rb)
                c = a - r0 if diag else 0  # diagonal tile: columns left of row a are all sentinel
                k = (b - a) * (nc - c)
                iv = self.ibuf[:k].reshape(b - a, nc - c)
                np.copyto(iv, S[a - r0:b - r0, c:], casting="unsafe")
                np.add(iv, coloff[c:], out=iv)
                cnt = np.bincount(self.ibuf[:k], minlength=g_all * nb2)
                if cnt.size > g_all * nb2:  # cannot happen (the range is padded); keep the counts anyway
                    cnt[g_all * nb2 - 1] += cnt[g_all * nb2:].sum()
                    cnt = cnt[: g_all * nb2]
                self.hist[g] += cnt.reshape(g_all, nb2)
        self._unhist_mated(S, r0, c0, mated_here)

    def _unhist_mated(self, S, r0, c0, mated_here) -> None:
        """Take the tile's mated pairs back out of the histograms (they were binned with the rest)."""
        geo = self.geo
        nb2 = geo.hist_bins + 2
        if mated_here is not None and mated_here.size:
            ma, mb = self.mated[0][mated_here], self.mated[1][mated_here]
            iv = S[ma - r0, mb - c0].astype(np.intp)  # the same truncation as the tile's
            np.minimum(iv, nb2 - 1, out=iv)
            np.add.at(self.hist, (geo.grp[ma], geo.grp[mb], iv), -1)

    def _count(self, S, r0, r1, c0, c1, k) -> None:
        geo = self.geo
        lo32, hi32 = self.bands[k]
        nr, nc = S.shape
        fm = self.fm[k]
        if _fused.available():  # one compiled pass: the counts and the band to rescore
            if self.band_buf is None:
                self.band_buf = np.empty(min(S.size, _IDX_BUF), dtype=np.int64)
            nb = _fused.count_at(S, r0 == c0, r0, c0, geo.grp, hi32, lo32, fm, self.band_buf)
            if nb <= self.band_buf.size:
                idx = self.band_buf[:nb]
            else:  # a crowded band (ties at the threshold): find it with numpy, keep a larger buffer
                self.band_buf = np.empty(min(S.size, 2 * nb), dtype=np.int64)
                band = self.m2[: nr * nc].reshape(nr, nc)
                np.greater_equal(S, lo32, out=band)
                hi = self.m1[: nr * nc].reshape(nr, nc)
                np.less(S, hi32, out=hi)
                band &= hi  # (the sentinel below the diagonal is under every band)
                idx = np.flatnonzero(band)
            self._rescore_band(idx, nc, r0, c0, k)
            return
        hi = self.m1[: nr * nc].reshape(nr, nc)
        np.greater_equal(S, hi32, out=hi)
        hu = hi.view(np.uint8)
        rsegs = _segments(geo, r0, r1)
        csegs = _segments(geo, c0, c1)
        cstarts = np.array([a - c0 for a, _, _ in csegs], dtype=np.intp)
        rstarts = np.array([a - r0 for a, _, _ in rsegs], dtype=np.intp)
        row_counts = np.add.reduceat(hu, cstarts, axis=1, dtype=np.int64)  # (nr, n col segments)
        for j, (_, _, h) in enumerate(csegs):
            fm[r0:r1, h] += row_counts[:, j]
        col_counts = np.add.reduceat(hu, rstarts, axis=0, dtype=np.int64)  # (n row segments, nc)
        for j, (_, _, g) in enumerate(rsegs):
            fm[c0:c1, g] += col_counts[j]
        band = self.m2[: nr * nc].reshape(nr, nc)
        np.greater_equal(S, lo32, out=band)
        np.not_equal(band, hi, out=band)  # hi is inside lo: the difference is the band
        self._rescore_band(np.flatnonzero(band), nc, r0, c0, k)

    def _rescore_band(self, idx: np.ndarray, nc: int, r0: int, c0: int, k: int) -> None:
        """Count the band's pairs (flat positions ``idx``) whose canonical score reaches threshold k."""
        geo = self.geo
        fm = self.fm[k]
        if idx.size:
            rows = idx // nc + r0
            cols = idx % nc + c0
            hit = _canonical(geo.e32, rows, cols, geo.metric) >= self.thresholds[k]
            self.rescored += int(idx.size)
            rows, cols = rows[hit], cols[hit]
            np.add.at(fm, (rows, geo.grp[cols]), 1)
            np.add.at(fm, (cols, geo.grp[rows]), 1)

    def result(self) -> dict:
        out = {
            "hist": self.hist,
            "fm": self.fm,
            "seconds_matmul": self.seconds_matmul,
            "rescored": self.rescored,
            "rss": _peak_rss(),
            "pid": os.getpid(),
        }
        if self.tail is not None:
            v, r, c = self.tail.arrays()
            out["tail"] = (v, r, c, self.tail.floor32)
        if self.windows:
            out["windows"] = [
                (self.w_above[w], self.w_hist[w],
                 tuple(np.concatenate([p[i] for p in self.w_pairs[w]]) if self.w_pairs[w] else
                       np.empty(0, (np.float32, np.int32, np.int32)[i]) for i in range(3)) if self.windows[w][3] else None)
                for w in range(len(self.windows))
            ]
        return out


def merge_fm(parts: list[dict]) -> np.ndarray:
    """The per-row counts (T, N, G) of a pass's kernels, summed in int64 (each part may be int32)."""
    out = np.zeros(parts[0]["fm"].shape, np.int64)
    for part in parts:
        out += part["fm"]
    return out
