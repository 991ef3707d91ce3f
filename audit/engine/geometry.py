"""The geometry of one scan (what every tile worker needs): the augmented rows whose single
float32 product gives a pair's screening value in histogram-bin units, the screening bound, the
tiles that cover the compared pairs once, and the band of screening values to rescore at a
threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .numerics import _U32, _U64, _f32_down, _f32_up, _gamma, _row_sq_norms


@dataclass
class _Geometry:
    """Everything a tile kernel needs, in scan (group-sorted) order.

    The screening value of a pair is ``v = s·R + off``, computed in ONE float32 matrix product
    of augmented rows, where ``R`` is the raw similarity (cosine: ``a·b``; Euclidean:
    ``2a·b - |a|² - |b|²``, minus the squared distance). ``v`` is in histogram-bin units (bin b
    holds ``b <= v < b + 1``, b = 1..hist_bins), so binning a tile is a single cast to int, and
    ``|v - (s·R_canonical + off)| <= delta`` (bin units).
    """

    metric: str
    e32: np.ndarray  # (N, d) prepared rows: the canonical scores are computed from these
    lhs: np.ndarray  # (N, k) augmented left rows
    rhs: np.ndarray  # (k, N) augmented right rows (a separate buffer: never numpy's syrk path)
    subj: np.ndarray  # (N,) subject codes
    grp: np.ndarray  # (N,) group codes
    n_groups: int
    group_starts: np.ndarray  # (G + 1,)
    scale: float  # s
    offset: float  # off
    delta: float  # screening bound, bin units
    margin: float  # tail margin (3 delta), bin units
    v_min32: np.float32  # every real screening value is >= this (and > the sentinel)
    sentinel32: np.float32  # written over the lower triangle of diagonal tiles: bin 0
    hist_bins: int
    tile: int
    # two-sided scans (probe vs reference): codes 0..B-1 are side 0's groups, B..2B-1 side 1's
    # (B = base_groups, G = 2B); only pairs across the sides are compared. 0: one set.
    base_groups: int = 0


def _geometry(e32_sorted, subj, grp, n_groups, metric, tile, hist_bins, base_groups=0) -> _Geometry:
    n, d = e32_sorted.shape
    sq = _row_sq_norms(e32_sorted)
    m2 = max(float(sq.max()) if n else 0.0, 1e-30)
    lo, hi = (-m2, m2) if metric == "cosine" else (-4.0 * m2, 0.0)

    def bound(s: float, off: float) -> float:
        """|v32 - (s R_canonical + off)| in bin units (Higham's gamma bounds, then doubled)."""
        if metric == "cosine":
            k = d + 1
            terms = s * m2 * (1 + _U32) + abs(off)
            inputs = _U32 * s * m2
            canon = _gamma(d, _U64) * s * m2
        else:
            k = d + 2
            terms = (4.0 * s * m2 + abs(off)) * (1 + _U32)
            inputs = 5.0 * _U32 * s * m2 + _U32 * abs(off)
            canon = _gamma(d + 2, _U64) * 4.0 * s * m2 + 2.0 * _U64 * s * m2
        return 2.0 * (_gamma(k, _U32) * terms + inputs + canon)

    s0 = hist_bins / (hi - lo)
    pad = 8.0 * bound(s0, 1.0 - lo * s0) / s0
    lo, hi = lo - pad, hi + pad
    s = float(np.float32(hist_bins / (hi - lo)))
    off = float(np.float32(1.0 - lo * s))
    delta = bound(s, off)
    lo = (1.0 - off) / s  # bin 1 starts here exactly (in R units)
    # (the float32 roundings of s·a, off - s|a|² and |b|² are inside the bound)
    if metric == "cosine":
        lhs = np.empty((n, d + 1), np.float32)
        np.multiply(e32_sorted, np.float32(s), out=lhs[:, :d])
        lhs[:, d] = off
        rhs = np.empty((d + 1, n), np.float32)
        rhs[:d] = e32_sorted.T
        rhs[d] = 1.0
    else:
        lhs = np.empty((n, d + 2), np.float32)
        np.multiply(e32_sorted, np.float32(2.0 * s), out=lhs[:, :d])
        lhs[:, d] = off - s * sq
        lhs[:, d + 1] = -s
        rhs = np.empty((d + 2, n), np.float32)
        rhs[:d] = e32_sorted.T
        rhs[d] = 1.0
        rhs[d + 1] = sq
    group_starts = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(grp, minlength=n_groups), out=group_starts[1:])
    return _Geometry(
        metric=metric, e32=e32_sorted, lhs=lhs, rhs=rhs, subj=subj, grp=grp, n_groups=n_groups,
        group_starts=group_starts, scale=s, offset=off, delta=delta, margin=3.0 * delta,
        v_min32=_f32_down(s * (lo + pad) + off - 2.0 * delta), sentinel32=np.float32(0.5),
        hist_bins=hist_bins, tile=tile, base_groups=base_groups,
    )


def _raw_band(geo: _Geometry, t: float) -> tuple[np.float32, np.float32]:
    """Float32 bounds ``(lo, hi)`` on screening values for threshold ``t`` (similarity units).

    ``v >= hi`` implies canonical score ``>= t``; ``v < lo`` implies canonical score ``< t``;
    pairs with ``lo <= v < hi`` are rescored. Both are clamped to ``v_min32`` so that the
    sentinel written over the lower triangle of diagonal tiles never counts.
    """
    if geo.metric == "cosine":
        r_lo = r_hi = t
    elif t > 0:
        r_lo = r_hi = math.inf  # -distance <= 0 < t: nothing matches
    elif t == -math.inf:
        r_lo = r_hi = -math.inf
    else:
        q = t * t  # score >= t  <=>  squared distance <= t² (a 1e-9 slack covers sqrt's rounding)
        r_lo, r_hi = -q * (1.0 + 1e-9), -q * (1.0 - 1e-9)
    s, off, d = geo.scale, geo.offset, geo.delta * (1.0 + 1e-6)
    lo = s * r_lo + off
    hi = s * r_hi + off
    lo -= d + 1e-12 * (abs(lo) + abs(off)) if math.isfinite(lo) else 0.0
    hi += d + 1e-12 * (abs(hi) + abs(off)) if math.isfinite(hi) else 0.0
    lo32, hi32 = _f32_down(lo), _f32_up(hi)
    return max(lo32, geo.v_min32), max(hi32, geo.v_min32)


def _screen_to_raw(geo: _Geometry, v: float) -> float:
    """The raw similarity ``R`` whose screening value is ``v`` (inverse of ``s·R + off``)."""
    return (v - geo.offset) / geo.scale


def _tiles(geo: _Geometry, n: int, mode: str) -> list[tuple[int, int, int, int]]:
    """Tiles ``(r0, r1, c0, c1)`` covering the compared pairs once: the upper triangle of one set
    (or of each group's block), or, two-sided, the rectangle side 0 x side 1 (or each group's)."""
    t = geo.tile
    gs = geo.group_starts
    b = geo.base_groups
    if b:  # rectangles: rows of side 0 against columns of side 1, never a diagonal tile
        if mode == "all":
            blocks = [(0, int(gs[b]), int(gs[b]), n)]
        else:
            blocks = [(int(gs[g]), int(gs[g + 1]), int(gs[b + g]), int(gs[b + g + 1])) for g in range(b)]
        return [(r0, min(r0 + t, r1), c0, min(c0 + t, c1))
                for r0_, r1, c0_, c1 in blocks if r1 > r0_ and c1 > c0_
                for r0 in range(r0_, r1, t) for c0 in range(c0_, c1, t)]
    if mode == "all":
        spans = [(0, n)]
    else:
        spans = [(int(gs[g]), int(gs[g + 1])) for g in range(geo.n_groups) if gs[g + 1] > gs[g]]
    out = []
    for s, e in spans:
        starts = list(range(s, e, t))
        for i, r0 in enumerate(starts):
            r1 = min(r0 + t, e)
            for c0 in starts[i:]:
                out.append((r0, r1, c0, min(c0 + t, e)))
    return out


def _comparable(geo: _Geometry, grp_a: np.ndarray, grp_b: np.ndarray, mode: str) -> np.ndarray:
    """Whether pairs of rows with group codes ``grp_a``, ``grp_b`` (broadcast) are compared at all
    (subjects aside): same group under ``same_group``; across the sides when two-sided."""
    b = geo.base_groups
    if not b:
        return (grp_a == grp_b) if mode == "same_group" else np.ones(np.broadcast(grp_a, grp_b).shape, bool)
    ok = (grp_a // b) != (grp_b // b)
    if mode == "same_group":
        ok &= (grp_a % b) == (grp_b % b)
    return ok


def _segments(geo: _Geometry, a: int, b: int) -> list[tuple[int, int, int]]:
    """Group segments ``(start, stop, group)`` of rows [a, b) in scan order."""
    gs = geo.group_starts
    g0 = int(np.searchsorted(gs, a, side="right")) - 1
    out = []
    g = g0
    while g < geo.n_groups and gs[g] < b:
        s, e = max(int(gs[g]), a), min(int(gs[g + 1]), b)
        if e > s:
            out.append((s, e, g))
        g += 1
    return out


def _tile_pairs(t: tuple[int, int, int, int]) -> int:
    """Pairs a tile compares (a diagonal tile: its strict upper triangle)."""
    r0, r1, c0, c1 = t
    n = (r1 - r0) * (c1 - c0)
    return n - (r1 - r0) * (r1 - r0 + 1) // 2 if r0 == c0 else n
