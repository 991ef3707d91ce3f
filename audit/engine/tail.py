"""The exact tail: every impostor pair whose screening value can be among the top ``k + 1``.

A floor is guessed from a sample of rows (and verified after the pass), raised as tiles arrive, and
the workers' tails merge into one (another worker's floor is valid for every worker). The
(k+1)-th largest canonical score is then found among the few pairs within the margin of the
(k+1)-th largest screening value.
"""

from __future__ import annotations

import numpy as np

from .geometry import _comparable, _Geometry
from .numerics import _canonical, _f32_down


class _Tail:
    """The candidates of one process. ``holds`` (float32 screening values, e.g. the lower edges of
    the bands of thresholds given to the scan) keep the floor at or below the lowest hold while at
    most ``limit`` pairs lie at or above it, so that the tail also lists every pair that can reach
    that threshold; a hold with more pairs is dropped (the floor then rises as usual)."""

    def __init__(self, k: int, margin: float, floor32: np.float32, holds=(), limit: int = 0):
        self.k = k
        self.margin = margin
        self.holds = sorted(np.float32(h) for h in holds if np.float32(h) < np.float32(np.inf))
        self.limit = int(limit)
        if self.holds and self.holds[0] < floor32:
            floor32 = self.holds[0]
        self.floor32 = floor32
        self.cap = k + max(k // 4, 1 << 16)  # compact when 25% over k: bounds memory at ~1.25 k pairs
        self.vals: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.size = 0

    def raise_floor(self, value: float) -> None:
        f = _f32_down(value - self.margin)
        if self.holds and self.holds[0] < f:
            f = self.holds[0]
        if f > self.floor32:
            self.floor32 = f

    def add(self, v: np.ndarray, r: np.ndarray, c: np.ndarray) -> None:
        if v.size:
            self.vals.append(v)
            self.rows.append(r)
            self.cols.append(c)
            self.size += v.size
            if self.size > self.cap:
                self.compact()

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.vals) != 1:
            self.vals = [np.concatenate(self.vals) if self.vals else np.empty(0, np.float32)]
            self.rows = [np.concatenate(self.rows) if self.rows else np.empty(0, np.int32)]
            self.cols = [np.concatenate(self.cols) if self.cols else np.empty(0, np.int32)]
        return self.vals[0], self.rows[0], self.cols[0]

    def compact(self) -> None:
        v, r, c = self.arrays()
        while self.holds and v.size > self.limit and np.count_nonzero(v >= self.holds[0]) > self.limit:
            self.holds.pop(0)  # too many pairs to list at that threshold: a pass will collect them if asked
        if v.size > self.k:
            kth = float(np.partition(v, v.size - self.k)[v.size - self.k])  # the k-th largest
            self.raise_floor(kth)
        keep = v >= self.floor32
        if not keep.all():
            v, r, c = v[keep], r[keep], c[keep]
        self.vals, self.rows, self.cols = [v], [r], [c]
        self.size = v.size
        self.cap = max(self.cap, self.size + max(self.size // 4, 1 << 16))  # (ties can keep more than k)


def _merge_tails(parts: list[dict], k: int, margin: float, holds=(), limit: int = 0):
    """One tail from the workers' tails: sorted ascending ``(values, rows, cols, floor)``."""
    merged = _Tail(k, margin, np.float32(-np.inf), holds, limit)
    merged.floor32 = max(p["tail"][3] for p in parts)  # (not lowered to a hold: below it a worker kept nothing)
    for p in parts:
        v, r, c, _ = p.pop("tail")  # released as soon as merged (memory)
        keep = v >= merged.floor32  # another worker's floor is valid for every worker
        merged.add(v[keep], r[keep], c[keep])
        del v, r, c, keep
    merged.compact()
    v, r, c = merged.arrays()
    o = np.argsort(v, kind="stable")
    return v[o], r[o], c[o], merged.floor32


def _floor_valid(tail, k: int, margin: float, floor0: np.float32) -> bool:
    """Whether a guessed floor was low enough: the tail must hold k pairs at or above
    ``floor0 + margin`` (then the global k-th largest value is at least that)."""
    v = tail[0]
    return v.size >= k and _f32_down(float(v[v.size - k]) - margin) >= floor0


def _guess_floor(geo: _Geometry, k: int, n_imp: int, mode: str) -> np.float32 | None:
    """A likely lower bound for the tail floor from a sample of rows (verified after the pass).

    Screens the impostor pairs of up to 128 random rows (a fixed seed: the results never depend
    on it, only the speed) and returns their ``3 p``-quantile from the top (``p = k / n_imp``)
    minus the margin, or None when the sample is too small to say.
    """
    n = geo.e32.shape[0]
    if n < 64 or k * 8 > n_imp:
        return None
    rng = np.random.default_rng(0x5EED)
    rows = np.sort(rng.choice(n, size=min(n, 128), replace=False))
    vals = []
    for i in range(0, rows.size, 16):
        r = rows[i:i + 16]
        v = geo.lhs[r] @ geo.rhs
        ok = geo.subj[None, :] != geo.subj[r][:, None]  # drops self and mated pairs
        if mode == "same_group" or geo.base_groups:
            ok &= _comparable(geo, geo.grp[r][:, None], geo.grp[None, :], mode)
        vals.append(v[ok])
    sample = np.concatenate(vals)
    c = int(3.0 * k / n_imp * sample.size) + 20
    if c >= sample.size:
        return None
    guess = float(np.partition(sample, sample.size - c)[sample.size - c])
    return _f32_down(guess - geo.margin)


def _kth_in_band(geo: _Geometry, rows: np.ndarray, cols: np.ndarray, rank: int) -> float:
    """The canonical score of rank ``rank`` (0-based, from the top) among the band's pairs: the
    (k+1)-th largest impostor score, when ``rank = k`` minus the pairs certainly above the band."""
    band = _canonical(geo.e32, rows.astype(np.int64), cols.astype(np.int64), geo.metric)
    if not (0 <= rank < band.size):
        raise RuntimeError("threshold band does not hold the (k+1)-th largest impostor score; this is a bug")
    return float(np.partition(band, band.size - 1 - rank)[band.size - 1 - rank])
