"""Streaming all-pairs comparison: tiled scoring into per-cell accumulators, never N² scores.

:func:`score_tiles` compares every unordered pair of rows once (or, with
``impostors="same_group"``, every pair inside each group) in blocked float32 matrix products and
feeds each tile into accumulators; it returns a :class:`TileScan`. From it,
:meth:`TileScan.thresholds_at_fmr` gives thresholds at target FMRs over all impostor comparisons
and :meth:`TileScan.counts_at` gives a :class:`CellCounts`: false matches and impostor
comparisons per cell (group of image A × group of image B), false non-matches per group, and the
same counts per subject for the subject bootstrap (:mod:`audit.metrics.bootstrap`).

Typical use::

    scan = score_tiles(emb, subjects, groups, metric="cosine", max_fmr=1e-3)
    th = scan.thresholds_at_fmr([1e-3, 1e-4, 1e-5])
    counts = scan.counts_at(th)            # no second pass: thresholds >= scan.tail_floor
    counts.fmr[:, g, g], counts.fnmr[:, g] # per-group rates; counts.fmr[k] is the cross-FMR matrix

Scores, tie rule, cells
-----------------------
Scores are similarities: cosine similarity (rows L2-normalised first), or minus the Euclidean
distance, so a pair matches when ``score >= threshold`` (a tie is a match), as in
:mod:`audit.metrics.rates`. An impostor pair of rows in groups ``(g, h)`` belongs to cell
``(g, h)`` and to cell ``(h, g)``: cell matrices are symmetric, the diagonal holds the groups'
same-group counts, and an unordered pair of different groups is counted once in each of the two
cells. A mated pair (two rows of one subject) belongs to the group of its first row (the lower row
index in the caller's order), as in :func:`audit.verification.analyse_verification`.

Pass the finest grouping you need (the intersection of all groupings, e.g. ethnicity × gender):
:meth:`CellCounts.coarsen` and :func:`coarsen_cells` sum cells into any coarser grouping,
including the whole population, without another pass.

Exactness
---------
Every count and threshold equals what :func:`audit.metrics.threshold_at_fmr` and
:func:`audit.metrics.error_counts` give on the materialised scores of all pairs as computed by
:func:`score_pairs` (the *canonical* score: the float64 dot product, in a fixed pairwise order,
of the float32 embeddings; for Euclidean, minus the square root of the float64 sum of squared
differences). The tiles are float32 BLAS products whose last bits depend on the BLAS, the tile
shape and the thread count, so they only *screen*: a tile value and the canonical value differ by
at most ``delta``, a rigorous bound from Higham's error analysis of a float32 dot product
(doubled for safety; about 3e-5 for cosine on unit vectors of dimension 128, see
:attr:`ScanStats.delta`). A pair whose screening value is further than ``delta`` from a
threshold is decided by it; the few pairs inside the band are rescored canonically. Results are
therefore identical for any tile size, row order, BLAS and number of workers.

The screening value is computed in bin units by ONE product of augmented rows
(``[s·a, off] · [b, 1]``; for Euclidean ``[2s·a, off - s|a|², -s] · [b, 1, |b|²]``), so that a
tile's histogram is a single cast to int and a ``bincount``; no other pass touches all N² values
except the one comparison that feeds the tail.

- **Thresholds at a target FMR** come from an exact tail: the scan keeps every impostor pair
  whose screening value can be among the top ``k_max + 1 = floor(max_fmr × impostors) + 1``
  (a floor guessed from a sample of rows, verified at the end, then raised as tiles arrive).
  Memory: 12 bytes per kept pair, about ``1.25 × max_fmr × impostors`` pairs (75 MB for
  5·10^9 pairs at ``max_fmr=1e-3``).
- **Counts at a threshold** at or above :attr:`TileScan.tail_floor` come from the tail too, with
  their rows, so per-cell and per-subject counts need no second pass. Thresholds given to
  :func:`score_tiles` (``thresholds=``, e.g. a vendor's default) are counted during the pass.
  Any other threshold makes :meth:`TileScan.counts_at` run a second pass over the tiles (the
  same matrix products; it is reported in :attr:`CellCounts.rescanned`).
- **Mated pairs** are few (O(N × images per subject)): all are scored canonically and kept.
- **Score histograms** (:attr:`TileScan.impostor_hist`, per cell) count the float32 screening
  values: a pair within ``delta`` of a bin edge may sit in the neighbouring bin. They are for
  plots and approximate DET curves; every count that feeds a rate is exact. They are the most
  expensive accumulator after the product (``histogram=False`` skips them).

Speed: with ``workers=1`` the products run in a second thread (BLAS releases the GIL) while this
one counts the previous tile; ``workers=2`` or more spawns processes with one BLAS thread each.
Set ``FACE_AUDIT_TILE_OVERLAP=0`` to turn the overlap off.

Memory is O(N·d + cells × bins + tail): the rows sorted by group (so a tile touches few cells),
one float32 tile with its masks, the histograms, the tail and per-row counts (N × groups per
threshold). Nothing of size N² is ever held.

Impostor protocols
------------------
``impostors="all"`` (default) scans every pair. ``impostors="same_group"`` scans only pairs
inside each group (NIST FRVT's same-sex/same-age impostors): thresholds are then fixed over those
comparisons and off-diagonal cells are empty. Sampled impostors: :func:`sample_impostor_pairs`
then :func:`score_pairs` (or :func:`pair_scores_from_list`, which also splits mated from impostor
pairs for a given pair list such as LFW's ``pairs.txt``).
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from ..errors import MetricError
from .counting import CountingMixin, _subtract_mated
from .counts import CellCounts, ScanStats, SubjectCounts, coarsen_cells
from .geometry import _comparable, _geometry, _raw_band, _screen_to_raw, _tiles
from .kernel import _peak_rss, merge_fm
from .numerics import (
    IMPOSTOR_MODES,
    METRICS,
    _canonical,
    _codes,
    _group_codes,
    _k_rule,
    _prepare,
)
from .tail import _floor_valid, _guess_floor, _merge_tails
from .thresholds import ThresholdsMixin
from .workers import _run

__all__ = [
    "METRICS",
    "IMPOSTOR_MODES",
    "score_tiles",
    "TileScan",
    "ScanStats",
    "CellCounts",
    "SubjectCounts",
    "coarsen_cells",
]


def _mated_pairs(subj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)``, ``i < j``, of rows with the same subject code (scan order)."""
    n = subj.shape[0]
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    perm = np.argsort(subj, kind="stable")
    sizes = np.bincount(subj)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    a_parts, b_parts = [], []
    for m in np.unique(sizes[sizes >= 2]):
        st = starts[sizes == m]
        iu, ju = np.triu_indices(int(m), 1)
        a_parts.append(perm[(st[:, None] + iu[None, :]).ravel()])
        b_parts.append(perm[(st[:, None] + ju[None, :]).ravel()])
    if not a_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo.astype(np.int64), hi.astype(np.int64)


def score_tiles(
    embeddings: np.ndarray,
    subjects: np.ndarray,
    groups: np.ndarray,
    *,
    metric: str = "cosine",
    n_groups: int | None = None,
    max_fmr: float = 1e-2,
    thresholds: Sequence[float] = (),
    impostors: str = "all",
    sides: np.ndarray | None = None,
    tile: int = 4096,
    hist_bins: int = 2048,
    histogram: bool = True,
    normalize: bool = True,
    workers: int = 1,
    progress: bool = False,
    max_tail_pairs: int = 1 << 23,
    engine=None,
) -> "TileScan":
    """Score all pairs in tiles and accumulate per-cell counts, histograms and an exact tail.

    Parameters
    ----------
    embeddings : array_like of float, shape (N, d)
        One embedding per acquired image. Cast to float32 once (for ``metric="cosine"`` each row
        is first L2-normalised in float64, unless ``normalize=False``); every score is computed
        from those float32 rows.
    subjects : array_like, shape (N,)
        Subject id of each row (any sortable values). Pairs of rows with the same id are mated.
    groups : array_like of int, shape (N,)
        Group code of each row, 0..G-1: the cell coding (pass the finest grouping you need and
        :meth:`CellCounts.coarsen` it).
    metric : {"cosine", "euclidean"}, default "cosine"
        Euclidean scores are minus the distance (higher = more alike).
    n_groups : int, optional
        G, when some codes have no rows (default: the largest code + 1).
    max_fmr : float, default 1e-2
        The largest target FMR :meth:`TileScan.thresholds_at_fmr` will be asked for, in (0, 1).
        It sizes the exact tail: about ``1.25 × max_fmr × impostors`` pairs of 12 bytes (per
        worker), plus temporaries when it is compacted.
    thresholds : sequence of float, default ()
        Thresholds (similarity units) known in advance, such as a vendor's default: they are
        counted during this pass, so :meth:`TileScan.counts_at` needs no second pass for them
        even below the tail. The tail also keeps every pair that can reach the lowest of them
        while those are at most ``max_tail_pairs`` (then the next lowest, and so on), so that
        :meth:`TileScan.false_match_rows` lists their impostor pairs without another pass.
    impostors : {"all", "same_group"}, default "all"
        Which non-mated pairs are impostor comparisons: every one, or only those inside a group
        (off-diagonal cells are then empty and thresholds are fixed on same-group impostors).
    sides : array_like of bool or {0, 1}, shape (N,), optional
        Two-sided scan (probe set vs reference set): only pairs of a side-0 row and a side-1 row
        are compared, mated and impostor alike. The scan's group codes are then ``g`` for a
        side-0 row of group g and ``G + g`` for a side-1 row (``2G`` codes): cell ``(g, G + h)``
        counts pairs of a side-0 image of g with a side-1 image of h, so the cross-group matrix
        ``counts.false_matches[:, :G, G:]`` is directional (not symmetric), and
        ``counts.coarsen(np.r_[np.arange(G), np.arange(G)])`` gives the usual G-group counts.
        False non-matches count in the side-0 image's group.
    tile : int, default 4096
        Rows per tile side. Results do not depend on it. Memory: about ``tile² × 9`` bytes with
        one worker (two product buffers, so that the next product overlaps the counting),
        ``tile² × 5`` per worker process otherwise.
    hist_bins : int, default 2048
        Histogram bins per cell over the range of possible scores.
    histogram : bool, default True
        Accumulate the per-cell score histograms (the most expensive accumulator after the
        matrix product).
    normalize : bool, default True
        For cosine, L2-normalise the rows (in float64) before scoring.
    workers : int, default 1
        Processes scanning tiles (spawned, each with one BLAS thread; the operands are shared
        through shared memory, not copied). 1 scans here: the BLAS's own threads compute the
        next product while this thread counts the current tile. A script that uses
        ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    progress : bool, default False
        A tqdm bar on stderr counting the pairs scored (also for a second pass of
        :meth:`TileScan.counts_at`).
    max_tail_pairs : int, default 2**23
        The most impostor pairs the exact tail keeps (12 bytes each; with the candidates and
        temporaries of its upkeep a worker peaks at several times that). When ``max_fmr ×
        impostors`` is larger (from about 1.3·10⁵ images at ``max_fmr=1e-3``), the tail keeps the
        top ``max_tail_pairs`` and a threshold deeper than that is found by narrowing passes instead: the per-cell histograms locate its bin, a
        sub-histogram pass narrows the bin while it holds more pairs than this, and a last pass
        collects the few pairs left; counts at such thresholds take a counting pass. Memory then
        stays O(N·d + cells × bins + max_tail_pairs), whatever N.
    engine : optional
        Who runs the passes over the tiles: None runs them here (``workers``), or the engine made
        active by :func:`audit.engine.select.use_engine`; a :class:`audit.engine.ray_scan.RayTileRunner`
        runs them as Ray tasks, a :class:`audit.engine.gpu.DeviceTileRunner` computes the products
        on a GPU. Results are identical whoever runs them (only the screening is spread).

    Returns
    -------
    TileScan

    Raises
    ------
    MetricError
        Bad shapes, non-finite embeddings, group codes that are not integers 0..G-1, an unknown
        metric or protocol, ``max_fmr`` outside (0, 1), a bad tile size.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.normal(size=(300, 16))
    >>> subj = np.repeat(np.arange(100), 3)
    >>> grp = subj % 2
    >>> scan = score_tiles(emb, subj, grp, max_fmr=0.1, tile=64)
    >>> th = scan.thresholds_at_fmr([0.01])
    >>> c = scan.counts_at(th)
    >>> int(c.impostors_total), int(c.mated_total), bool(c.false_matches_total[0] <= 0.01 * 44550)
    (44550, 300, True)
    """
    t_start = time.perf_counter()
    e32 = _prepare(embeddings, metric, normalize)
    n = e32.shape[0]
    subject_labels, subj = _codes(subjects, "subjects", n)
    grp, g = _group_codes(groups, n, n_groups)
    if impostors not in IMPOSTOR_MODES:
        raise MetricError(f"impostors must be one of {IMPOSTOR_MODES}; got {impostors!r}.")
    base = 0
    if sides is not None:
        side = np.asarray(sides)
        if side.shape != (n,):
            raise MetricError(f"sides must have one value per row, shape ({n},); got shape {side.shape}.")
        if side.dtype != bool:
            if side.dtype.kind not in "iu" or (side.size and not np.isin(side, (0, 1)).all()):
                raise MetricError("sides must hold booleans or 0/1 (0: probe side, 1: reference side).")
        side = side.astype(np.int64)
        base, g = g, 2 * g
        grp = grp + side * base
    try:
        mf = float(max_fmr)
    except (TypeError, ValueError):
        raise MetricError(f"max_fmr must be a number in (0, 1); got {max_fmr!r}.") from None
    if not (0.0 < mf < 1.0):
        raise MetricError(f"max_fmr must be in (0, 1); got {max_fmr!r}. Pass the largest target FMR you need, e.g. 1e-2.")
    for name, v, low in (("tile", tile, 1), ("hist_bins", hist_bins, 1), ("workers", workers, 1), ("max_tail_pairs", max_tail_pairs, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise MetricError(f"{name} must be an integer >= {low}; got {v!r}.")
    fixed = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if np.isnan(fixed).any():
        raise MetricError("thresholds must not be NaN.")

    # rows sorted by group, then subject: a tile touches few cells, a subject's rows are adjacent
    order = np.lexsort((np.arange(n), subj, grp))
    e_sorted = e32[order]
    del e32  # the caller's array (or our normalised copy) is not needed any more
    geo = _geometry(e_sorted, subj[order], grp[order], g, metric, int(tile), int(hist_bins), base)
    del e_sorted
    s_subj, s_grp = geo.subj, geo.grp

    # mated pairs: all of them (two-sided: those across the sides), scored canonically
    ma, mb = _mated_pairs(s_subj)
    if base:
        across = (s_grp[ma] // base) != (s_grp[mb] // base)
        ma, mb = ma[across], mb[across]  # scan order puts side 0 first: ma is the side-0 row
    m_scores = _canonical(geo.e32, ma, mb, metric)
    in_scan = _comparable(geo, s_grp[ma], s_grp[mb], impostors)
    tiles = _tiles(geo, n, impostors)
    starts = np.array(sorted({t[0] for t in tiles}), dtype=np.int64)
    cstarts = np.array(sorted({t[2] for t in tiles}), dtype=np.int64)  # (two-sided: not the row starts)
    by_tile: dict[tuple[int, int], np.ndarray] = {}
    if ma.size and tiles:
        sel = np.flatnonzero(in_scan)
        bi = starts[np.searchsorted(starts, ma[sel], side="right") - 1]
        bj = cstarts[np.searchsorted(cstarts, mb[sel], side="right") - 1]
        key = bi * (n + 1) + bj
        o = np.argsort(key, kind="stable")
        ks, first = np.unique(key[o], return_index=True)
        for k, chunk in zip(ks.tolist(), np.split(sel[o], first[1:])):
            by_tile[(k // (n + 1), k % (n + 1))] = chunk

    # impostor comparisons per row and opposite group (combinatorial: no pass needed)
    n_subj = subject_labels.shape[0]
    per_subj_group = np.zeros((n_subj, g), dtype=np.int64)
    np.add.at(per_subj_group, (s_subj, s_grp), 1)
    sizes = np.bincount(s_grp, minlength=g).astype(np.int64)
    imp_row = sizes[None, :] - per_subj_group[s_subj]  # (N, G): rows of h minus the subject's own
    if impostors == "same_group" or base:
        imp_row = np.where(_comparable(geo, s_grp[:, None], np.arange(g)[None, :], impostors), imp_row, 0)
    n_imp = int(imp_row.sum()) // 2
    tail_k = min(_k_rule(mf, n_imp) + 1, int(max_tail_pairs)) if n_imp else None

    mated = (ma, mb, in_scan, by_tile)
    floor0 = _guess_floor(geo, tail_k, n_imp, impostors) if tail_k is not None else None
    if engine is None:
        from .select import active_tile_runner

        engine = active_tile_runner()
    # the tail also keeps every pair that can reach a given threshold while they fit under the cap:
    # their impostor pairs (per-person false matches) are then listed without another pass
    holds = [float(_raw_band(geo, float(t))[0]) for t in fixed] if tail_k is not None else []
    hold = dict(tail_holds=holds, tail_limit=int(max_tail_pairs))
    parts = _run(geo, tiles, mated=mated, tail_k=tail_k, tail_floor=floor0, thresholds=fixed.tolist(),
                 histogram=histogram, workers=int(workers), progress=progress, engine=engine, **hold)
    passes = 1

    # merge the workers' accumulators
    hist = hist_global = None
    if histogram:
        hist = sum(p["hist"] for p in parts)
        hist[..., hist.shape[-1] - 2] += hist[..., hist.shape[-1] - 1]
        hist = hist[..., 1:-1]  # drop the sentinel bin 0 and the folded top
        hist_global = hist.sum(axis=(0, 1))  # every scanned impostor pair once (bin j: j + 1 <= v < j + 2)
        iu = np.triu_indices(g, 1)
        hist[iu[1], iu[0]] = hist[iu]
    fm_fixed = merge_fm(parts) if fixed.size else np.zeros((0, n, g), np.int64)
    _subtract_mated(fm_fixed, fixed, mated, m_scores, s_grp)
    tail = None
    if tail_k is not None:
        tail = _merge_tails(parts, tail_k, geo.margin, holds, int(max_tail_pairs))
        if floor0 is not None and not _floor_valid(tail, tail_k, geo.margin, floor0):
            # the sampled guess was above the true boundary (rare): redo the tail from scratch
            parts_t = _run(geo, tiles, mated=mated, tail_k=tail_k, tail_floor=None, thresholds=[],
                           histogram=False, workers=int(workers), progress=progress, desc="scoring pairs again (tail)",
                           engine=engine, **hold)
            tail = _merge_tails(parts_t, tail_k, geo.margin, holds, int(max_tail_pairs))
            parts = parts + parts_t
            passes += 1
    stats = dict(
        n_rows=n, n_pairs=int(sum((t[1] - t[0]) * (t[3] - t[2]) - ((t[1] - t[0]) * (t[1] - t[0] + 1) // 2 if t[0] == t[2] else 0) for t in tiles)),
        n_tiles=len(tiles), tile=int(tile), workers=min(int(workers), max(len(tiles), 1)),
        seconds_matmul=sum(p["seconds_matmul"] for p in parts), rescored=sum(p["rescored"] for p in parts),
        tail_pairs=0 if tail is None else int(tail[0].size), delta=geo.delta / geo.scale,
        peak_rss_bytes=_peak_rss() + (sum(p["rss"] for p in parts) if workers > 1 and len(tiles) > 1 else 0),
    )
    scan = TileScan(
        _geo=geo, _order=order, _subject_labels=subject_labels, _impostor_mode=impostors, _tiles=tiles,
        _mated=mated, _mated_scores=m_scores, _imp_row=imp_row, _n_imp=n_imp, _tail=tail, _max_fmr=mf,
        _fixed=fixed, _fm_fixed=fm_fixed, _hist=hist, _workers=int(workers), _histogram=histogram, _progress=bool(progress),
        _tail_k=tail_k or 0, _max_tail=int(max_tail_pairs), _hist_global=hist_global, _engine=engine,
    )
    scan._stats = ScanStats(passes=passes, seconds=time.perf_counter() - t_start, **stats)
    return scan


class TileScan(ThresholdsMixin, CountingMixin):
    """The accumulators of one tiled scan (returned by :func:`score_tiles`; do not build directly).

    Holds the prepared float32 rows (O(N·d)) for canonical rescoring and second passes, the mated
    pairs and scores, the exact impostor tail, the per-cell histograms and the counts of the
    thresholds given to :func:`score_tiles`. Its public attributes are read-only.

    Attributes
    ----------
    metric : str
    n_groups : int
    n_rows : int
    subject_labels : ndarray, shape (S,)
    impostors : ndarray of int64, shape (G, G)
        Impostor comparisons per cell (symmetric; two-sided scans: see ``sides`` of
        :func:`score_tiles`).
    impostors_total : int
    mated_a, mated_b : ndarray of int64, shape (m,)
        Rows (caller's order, ``a < b``; two-sided: ``a`` on side 0, ``b`` on side 1) of every
        mated pair.
    mated_scores : ndarray of float64, shape (m,)
        Their canonical scores.
    mated_group : ndarray of int64, shape (m,)
        Group of each mated pair's first row.
    hist_edges : ndarray of float64, shape (hist_bins + 1,)
        Histogram bin edges in similarity units (approximate to a float32 rounding).
    impostor_hist : ndarray of int64, shape (G, G, hist_bins) or None
        Impostor comparisons per cell and bin (symmetric in the cell axes), screening values.
    tail_floor : float
        Counts at thresholds ``>= tail_floor`` need no second pass (similarity units).
    max_fmr : float
    stats : ScanStats
    """

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)

    # -- plain attributes
    @property
    def metric(self) -> str:
        return self._geo.metric

    @property
    def n_groups(self) -> int:
        return self._geo.n_groups

    @property
    def n_rows(self) -> int:
        return int(self._geo.e32.shape[0])

    @property
    def subject_labels(self) -> np.ndarray:
        return self._subject_labels

    @property
    def max_fmr(self) -> float:
        return self._max_fmr

    @property
    def stats(self) -> ScanStats:
        return self._stats

    @property
    def impostors_total(self) -> int:
        return self._n_imp

    @property
    def impostors(self) -> np.ndarray:
        return self._cells(self._imp_row)

    @property
    def mated_a(self) -> np.ndarray:
        a, b = self._order[self._mated[0]], self._order[self._mated[1]]
        return a if self._geo.base_groups else np.minimum(a, b)

    @property
    def mated_b(self) -> np.ndarray:
        a, b = self._order[self._mated[0]], self._order[self._mated[1]]
        return b if self._geo.base_groups else np.maximum(a, b)

    @property
    def mated_scores(self) -> np.ndarray:
        return self._mated_scores.copy()

    @property
    def mated_group(self) -> np.ndarray:
        return self._mated_first_group()

    @property
    def hist_edges(self) -> np.ndarray:
        geo = self._geo
        r = _screen_to_raw(geo, 1.0 + np.arange(geo.hist_bins + 1, dtype=np.float64))
        return r if geo.metric == "cosine" else -np.sqrt(np.maximum(-r, 0.0))

    @property
    def impostor_hist(self) -> np.ndarray | None:
        return None if self._hist is None else self._hist.copy()

    @property
    def tail_floor(self) -> float:
        if self._tail is None:
            return math.inf
        geo = self._geo
        r = _screen_to_raw(geo, float(self._tail[3]) + geo.delta * (1.0 + 1e-5))
        r += 1e-9 * (1.0 + abs(r))
        if geo.metric == "cosine":
            return r
        return 0.0 if r >= 0 else -math.sqrt(-r / (1.0 + 1e-9)) * (1.0 - 1e-9)

    @property
    def base_groups(self) -> int:
        """G of a two-sided scan (its codes are 0..2G-1: side 0's groups, then side 1's); 0 otherwise."""
        return self._geo.base_groups

    # -- helpers
    def _mated_first_group(self) -> np.ndarray:
        ma, mb = self._mated[0], self._mated[1]
        if self._geo.base_groups:
            return self._geo.grp[ma]  # two-sided: the side-0 (probe) image's group
        first = np.where(self._order[ma] < self._order[mb], ma, mb)
        return self._geo.grp[first]

    def _subject_first_group(self) -> np.ndarray:
        """Group code of each subject's first row in the caller's order, shape (S,)."""
        geo = self._geo
        n_subj = self._subject_labels.shape[0]
        if not n_subj:
            return np.zeros(0, np.int64)
        first_row = np.full(n_subj, np.iinfo(np.int64).max)
        np.minimum.at(first_row, geo.subj, self._order)
        inv = np.empty_like(self._order)
        inv[self._order] = np.arange(self._order.size)
        return geo.grp[inv[first_row]]

    def _cells(self, per_row: np.ndarray) -> np.ndarray:
        """(N, G) per-row counts against each group -> symmetric (G, G) cell counts."""
        geo = self._geo
        g = geo.n_groups
        out = np.zeros((g, g), dtype=np.int64)
        gs = geo.group_starts
        for a in range(g):
            out[a] = per_row[gs[a]:gs[a + 1]].sum(axis=0)
        idx = np.arange(g)
        out[idx, idx] //= 2  # same-group pairs were counted from both rows
        return out
