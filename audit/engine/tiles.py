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
index in the caller's order), as in :func:`audit.verification.analysis.analyse_verification`.

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
import os
import queue
import resource
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..verification.protocol import PairScores
from . import _fused
from ..errors import MetricError

__all__ = [
    "METRICS",
    "IMPOSTOR_MODES",
    "score_tiles",
    "TileScan",
    "ScanStats",
    "CellCounts",
    "SubjectCounts",
    "coarsen_cells",
    "score_pairs",
    "pair_scores_from_list",
    "sample_impostor_pairs",
]

#: Supported similarity metrics.
METRICS = ("cosine", "euclidean")
#: Impostor protocols of :func:`score_tiles`.
IMPOSTOR_MODES = ("all", "same_group")

_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53  # unit roundoff of float64
_F32_MAX = float(np.finfo(np.float32).max)
_CHUNK_ELEMS = 1 << 20  # elements per histogram chunk: keeps the temporaries in cache
_CANON_ELEMS = 1 << 18  # floats per canonical rescoring chunk
_IDX_BUF = 1 << 20  # first size of the compiled pass's buffer of tail candidate positions (it grows)
_OVERLAP = os.environ.get("FACE_AUDIT_TILE_OVERLAP", "1") != "0"  # products in a second thread (workers=1)


# --------------------------------------------------------------------------------------------
# numerics


def _gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product."""
    return n * u / (1.0 - n * u)


def _tree_sum(p: np.ndarray) -> np.ndarray:
    """Row sums of a float64 (n, w) array in a fixed pairwise order: the same bits for any n."""
    n, w = p.shape
    width = 1 << max(0, (w - 1).bit_length())
    if width != w:
        q = np.zeros((n, width), dtype=np.float64)
        q[:, :w] = p
        p = q
    while p.shape[1] > 1:
        h = p.shape[1] // 2
        p = p[:, :h] + p[:, h:]
    return p[:, 0].copy()


def _f32_down(x: float) -> np.float32:
    """The largest float32 <= x (``-inf`` stays ``-inf``)."""
    if x > _F32_MAX:
        return np.float32(_F32_MAX)
    if x < -_F32_MAX:
        return np.float32(-np.inf)
    f = np.float32(x)
    if float(f) > x:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def _f32_up(x: float) -> np.float32:
    """The smallest float32 >= x (``inf`` stays ``inf``)."""
    if x < -_F32_MAX:
        return np.float32(-_F32_MAX)
    if x > _F32_MAX:
        return np.float32(np.inf)
    f = np.float32(x)
    if float(f) < x:
        f = np.nextafter(f, np.float32(np.inf))
    return f


def _k_rule(target: float, n: int) -> int:
    """``floor(target × n)`` with :func:`audit.metrics.threshold_at_fmr`'s own rule.

    Exact equality with it depends on using the very same function; it is imported here, not at
    module level, so that tile workers (which never set thresholds) do not import pandas/scipy.
    """
    from ..metrics.thresholds import _allowed_false_matches

    return _allowed_false_matches(target, n)


def _just_above(value: float, dtype: np.dtype) -> float:
    from ..metrics.thresholds import _just_above as above

    return above(value, dtype)


# --------------------------------------------------------------------------------------------
# validation and preparation


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise MetricError(f"metric must be one of {METRICS}; got {metric!r}. A backend's BackendInfo.metric names it.")
    return metric


def _prepare(embeddings: np.ndarray, metric: str, normalize: bool) -> np.ndarray:
    """Validate and return the float32 rows every score is computed from (C-contiguous)."""
    _check_metric(metric)
    try:
        e = np.asarray(embeddings)
    except (TypeError, ValueError):
        raise MetricError("embeddings must be a numeric array of shape (n, d); it could not be read as an array.") from None
    if e.dtype.kind not in "iuf":
        raise MetricError(f"embeddings must be numeric, shape (n, d); got dtype {e.dtype}. Convert them with np.asarray(x, dtype=np.float32).")
    if e.ndim != 2:
        raise MetricError(f"embeddings must be a 2-D array (n, d); got shape {e.shape}. Stack one embedding per row.")
    if e.shape[1] < 1:
        raise MetricError(f"embeddings must have at least one column; got shape {e.shape}.")
    if not np.all(np.isfinite(e)):
        raise MetricError("embeddings contain NaN or infinite values; the backend output is corrupt. Give failed images a status and leave them out.")
    if metric == "cosine" and normalize:
        out = np.empty(e.shape, dtype=np.float32)
        step = max(1, _CANON_ELEMS // e.shape[1])
        for a in range(0, e.shape[0], step):  # in chunks: no N × d float64 temporaries
            x = e[a:a + step].astype(np.float64)
            norm = np.sqrt(_tree_sum(x * x))
            x /= np.maximum(norm, 1e-12)[:, None]
            out[a:a + step] = x
        return out
    return np.ascontiguousarray(e, dtype=np.float32)


def _row_sq_norms(e32: np.ndarray) -> np.ndarray:
    """Squared row norms in float64, in chunks."""
    out = np.empty(e32.shape[0], dtype=np.float64)
    step = max(1, _CANON_ELEMS // max(e32.shape[1], 1))
    for a in range(0, e32.shape[0], step):
        x = e32[a:a + step].astype(np.float64)
        out[a:a + step] = _tree_sum(x * x)
    return out


def _canonical(e32: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Canonical scores of row pairs ``(a[k], b[k])`` of prepared float32 rows; float64, shape (n,)."""
    n = a.shape[0]
    out = np.empty(n, dtype=np.float64)
    step = max(1, _CANON_ELEMS // e32.shape[1])
    for s in range(0, n, step):
        x = e32[a[s:s + step]].astype(np.float64)
        y = e32[b[s:s + step]].astype(np.float64)
        if metric == "cosine":
            out[s:s + step] = _tree_sum(x * y)
        else:
            x -= y
            out[s:s + step] = -np.sqrt(_tree_sum(x * x))
    return out


def _codes(values: np.ndarray, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values)
    if v.shape != (n,):
        raise MetricError(f"{name} must have one entry per embedding row ({n}); got shape {v.shape}.")
    labels, codes = np.unique(v, return_inverse=True)
    return labels, codes.astype(np.int64).reshape(n)


def _group_codes(groups: np.ndarray, n: int, n_groups: int | None) -> tuple[np.ndarray, int]:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise MetricError(f"groups must have one code per embedding row ({n}); got shape {g.shape}.")
    if n and g.dtype.kind not in "iu":
        raise MetricError(
            f"groups must be integer codes 0..G-1; got dtype {g.dtype}. Encode labels first, e.g. "
            "labels, codes = np.unique(column, return_inverse=True)."
        )
    g = g.astype(np.int64)
    if n and g.min() < 0:
        raise MetricError(f"groups must be codes >= 0; found {int(g.min())}.")
    top = int(g.max()) + 1 if n else 0
    if n_groups is None:
        n_groups = max(top, 1)
    elif isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < max(top, 1):
        raise MetricError(f"n_groups must be an integer >= 1 and above every group code (max code {top - 1}); got {n_groups!r}.")
    return g, int(n_groups)


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ScanStats:
    """What a scan did and what it cost.

    Attributes
    ----------
    n_rows : int
        Rows compared.
    n_pairs : int
        Pairs scanned in the matrix products (mated and impostor; each unordered pair once).
    n_tiles : int
        Tiles per pass.
    tile : int
        Rows per tile side.
    workers : int
        Processes that scanned tiles.
    passes : int
        Passes over the tiles so far: 1, plus one if the sampled tail floor proved too high (rare),
        plus one per :meth:`TileScan.counts_at` that rescanned.
    seconds : float
        Wall-clock time of :func:`score_tiles` (first pass and assembly).
    seconds_matmul : float
        Time spent in the matrix products themselves (summed over workers; with one worker the
        products run in a second thread, overlapping the counting).
    tail_pairs : int
        Impostor pairs kept exactly in the tail.
    rescored : int
        Pairs rescored canonically during the pass because their float32 value fell within
        ``delta`` of a threshold given to :func:`score_tiles`.
    delta : float
        The screening bound in raw similarity units (cosine similarity; minus the squared
        distance for Euclidean): ``|float32 tile value - canonical value| <= delta``.
    peak_rss_bytes : int
        Peak resident memory of this process plus the workers' peaks (``getrusage``).
    """

    n_rows: int
    n_pairs: int
    n_tiles: int
    tile: int
    workers: int
    passes: int
    seconds: float
    seconds_matmul: float
    tail_pairs: int
    rescored: int
    delta: float
    peak_rss_bytes: int


@dataclass(frozen=True, eq=False)
class SubjectCounts:
    """Per-subject errors and trials of one rate, the input of the subject bootstrap.

    Attributes
    ----------
    kind : {"fmr", "fnmr"}
    errors : ndarray of int64, shape (S, T)
        False matches (same-group impostor comparisons of the subject's images) or false
        non-matches (the subject's mated comparisons), at each threshold.
    trials : ndarray of int64, shape (S, T)
        The comparisons they were counted over (the same for every threshold).
    subject_group : ndarray of int64, shape (S,)
        Group code of each subject (the group of its first row).
    subject_labels : ndarray, shape (S,)
    thresholds : ndarray of float64, shape (T,)
    n_groups : int

    Notes
    -----
    An impostor comparison joins two subjects and is counted once for each of them (both its
    subjects' ``errors`` and ``trials``): the standard marginal approximation. Summed over a
    group's subjects, errors and trials are both twice the cell's, so the rate is the cell's
    rate.
    """

    kind: str
    errors: np.ndarray
    trials: np.ndarray
    subject_group: np.ndarray
    subject_labels: np.ndarray
    thresholds: np.ndarray
    n_groups: int


def coarsen_cells(cells: np.ndarray, mapping: np.ndarray, *, n_groups: int | None = None) -> np.ndarray:
    """Sum a symmetric cell matrix into a coarser grouping.

    Cell semantics as in :class:`CellCounts`: ``cells[..., g, h]`` (g != h) counts unordered pairs
    between groups g and h (the same number sits in ``[..., h, g]``); ``cells[..., g, g]`` counts
    pairs inside g. For coarse groups ``a != b`` the result is the sum over ``g -> a, h -> b``;
    for ``a == a`` it is the pairs inside every fine group of ``a`` plus the pairs between two
    different fine groups of ``a`` (each counted once).

    Parameters
    ----------
    cells : ndarray, shape (..., G, G)
        Symmetric in the last two axes.
    mapping : array_like of int, shape (G,)
        Coarse code of each fine group, 0..G'-1.
    n_groups : int, optional
        G' (default ``max(mapping) + 1``), for coarse groups without fine ones.

    Returns
    -------
    ndarray, shape (..., G', G')

    Examples
    --------
    >>> c = np.array([[1, 2, 0], [2, 3, 4], [0, 4, 5]])   # groups 0, 1, 2; merge 1 and 2
    >>> coarsen_cells(c, [0, 1, 1]).tolist()
    [[1, 2], [2, 12]]
    """
    cells = np.asarray(cells)
    m = np.asarray(mapping, dtype=np.int64)
    g = cells.shape[-1]
    if cells.ndim < 2 or cells.shape[-2] != g or m.shape != (g,):
        raise MetricError(f"cells must have shape (..., G, G) and mapping shape (G,); got {cells.shape} and {m.shape}.")
    if g and m.min() < 0:
        raise MetricError("mapping must hold coarse group codes >= 0.")
    gc = int(m.max()) + 1 if g else 0
    gc = gc if n_groups is None else int(n_groups)
    if gc < (int(m.max()) + 1 if g else 0):
        raise MetricError(f"n_groups={n_groups} is below the largest coarse code in mapping ({int(m.max())}).")
    p = np.zeros((g, gc), dtype=cells.dtype)
    p[np.arange(g), m] = 1
    full = p.T @ cells @ p  # sum over g -> a, h -> b
    diag = np.diagonal(cells, axis1=-2, axis2=-1) @ p  # (..., G')
    out = full.copy()
    idx = np.arange(gc)
    out[..., idx, idx] = (np.diagonal(full, axis1=-2, axis2=-1) + diag) // 2 if cells.dtype.kind in "iu" else (
        np.diagonal(full, axis1=-2, axis2=-1) + diag) / 2
    return out


@dataclass(frozen=True, eq=False)
class CellCounts:
    """Exact error counts per cell, per group and per subject at some thresholds.

    ``T`` thresholds, ``G`` groups, ``S`` subjects. All arrays are int64 unless noted.

    Attributes
    ----------
    thresholds : ndarray of float64, shape (T,)
        In similarity units; a pair matches when ``score >= threshold``.
    false_matches : shape (T, G, G)
        Impostor comparisons with ``score >= threshold`` per cell (symmetric; see the module
        docstring for the cell rule).
    impostors : shape (G, G)
        Impostor comparisons per cell (symmetric).
    false_non_matches : shape (T, G)
        Mated comparisons with ``score < threshold``, by the group of the pair's first row.
    mated : shape (G,)
        Mated comparisons by the group of the pair's first row.
    subject_labels : ndarray, shape (S,)
        The distinct subject ids, sorted.
    subject_group : shape (S,)
        Group of each subject's first row.
    subject_false_matches : shape (T, S, G)
        False matches of the subject's rows against rows of each group. Each impostor pair is
        counted for both its subjects.
    subject_impostors : shape (S, G)
        Impostor comparisons of the subject's rows against rows of each group.
    subject_false_non_matches : shape (T, S)
    subject_mated : shape (S,)
    mated_cross_group : int
        Mated pairs whose two rows carry different group codes (counted in the first row's group).
    rescanned : bool
        Whether a second pass over the tiles was needed to produce these counts.

    Examples
    --------
    ``counts.fmr[k, g, g]`` is group g's FMR at threshold k, ``counts.fmr[k]`` the cross-group FMR
    matrix, ``counts.fnmr[k, g]`` group g's FNMR, ``counts.coarsen(np.zeros(G, int))`` the whole
    population.
    """

    thresholds: np.ndarray
    false_matches: np.ndarray
    impostors: np.ndarray
    false_non_matches: np.ndarray
    mated: np.ndarray
    subject_labels: np.ndarray
    subject_group: np.ndarray
    subject_false_matches: np.ndarray
    subject_impostors: np.ndarray
    subject_false_non_matches: np.ndarray
    subject_mated: np.ndarray
    mated_cross_group: int
    rescanned: bool

    @property
    def n_groups(self) -> int:
        return int(self.impostors.shape[0])

    @property
    def impostors_total(self) -> int:
        """All impostor comparisons (each unordered pair once)."""
        return int(np.triu(self.impostors).sum())

    @property
    def false_matches_total(self) -> np.ndarray:
        """False matches over all impostor comparisons, shape (T,)."""
        return np.triu(self.false_matches).sum(axis=(1, 2))

    @property
    def mated_total(self) -> int:
        return int(self.mated.sum())

    @property
    def false_non_matches_total(self) -> np.ndarray:
        return self.false_non_matches.sum(axis=1)

    @property
    def fmr(self) -> np.ndarray:
        """``false_matches / impostors``, shape (T, G, G); ``nan`` for empty cells."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.impostors > 0, self.false_matches / np.maximum(self.impostors, 1), np.nan)

    @property
    def fnmr(self) -> np.ndarray:
        """``false_non_matches / mated``, shape (T, G); ``nan`` for groups without mated pairs."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.mated > 0, self.false_non_matches / np.maximum(self.mated, 1), np.nan)

    def coarsen(self, mapping: np.ndarray, *, n_groups: int | None = None) -> "CellCounts":
        """The same counts for a coarser grouping (``mapping[g]`` = coarse code of fine group g).

        ``np.zeros(G, dtype=int)`` gives the whole population as a single group.
        """
        m = np.asarray(mapping, dtype=np.int64)
        if m.shape != (self.n_groups,):
            raise MetricError(f"mapping must have one coarse code per group ({self.n_groups}); got shape {m.shape}.")
        gc = (int(m.max()) + 1 if m.size else 0) if n_groups is None else int(n_groups)

        def by_col(a: np.ndarray) -> np.ndarray:  # sum the last axis (groups) into coarse groups
            out = np.zeros(a.shape[:-1] + (gc,), dtype=a.dtype)
            np.add.at(np.moveaxis(out, -1, 0), m, np.moveaxis(a, -1, 0))
            return out

        return CellCounts(
            thresholds=self.thresholds,
            false_matches=coarsen_cells(self.false_matches, m, n_groups=gc),
            impostors=coarsen_cells(self.impostors, m, n_groups=gc),
            false_non_matches=by_col(self.false_non_matches),
            mated=by_col(self.mated),
            subject_labels=self.subject_labels,
            subject_group=m[self.subject_group],
            subject_false_matches=by_col(self.subject_false_matches),
            subject_impostors=by_col(self.subject_impostors),
            subject_false_non_matches=self.subject_false_non_matches,
            subject_mated=self.subject_mated,
            mated_cross_group=self.mated_cross_group,
            rescanned=self.rescanned,
        )

    def by_subject(self, kind: str = "fmr") -> SubjectCounts:
        """Per-subject counts of one rate, ready for :func:`audit.metrics.bootstrap.subject_bootstrap`.

        ``kind="fmr"``: each subject's false matches and impostor comparisons against rows of its
        own group (so a group's pooled rate is its same-group FMR). ``kind="fnmr"``: the
        subject's false non-matches and mated comparisons.
        """
        s = np.arange(self.subject_group.shape[0])
        t = self.thresholds.shape[0]
        if kind == "fmr":
            errors = self.subject_false_matches[:, s, self.subject_group].T
            trials = np.repeat(self.subject_impostors[s, self.subject_group][:, None], t, axis=1)
        elif kind == "fnmr":
            errors = self.subject_false_non_matches.T
            trials = np.repeat(self.subject_mated[:, None], t, axis=1)
        else:
            raise MetricError(f"kind must be 'fmr' or 'fnmr'; got {kind!r}.")
        return SubjectCounts(
            kind=kind,
            errors=np.ascontiguousarray(errors, dtype=np.int64),
            trials=np.ascontiguousarray(trials, dtype=np.int64),
            subject_group=self.subject_group.copy(),
            subject_labels=self.subject_labels,
            thresholds=self.thresholds,
            n_groups=self.n_groups,
        )


# --------------------------------------------------------------------------------------------
# the geometry of one scan (what every worker needs)


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


# --------------------------------------------------------------------------------------------
# the tail: every impostor pair that can be among the top k_max + 1


class _Tail:
    def __init__(self, k: int, margin: float, floor32: np.float32):
        self.k = k
        self.margin = margin
        self.floor32 = floor32
        self.cap = k + max(k // 4, 1 << 16)  # compact when 25% over k: bounds memory at ~1.25 k pairs
        self.vals: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.size = 0

    def raise_floor(self, value: float) -> None:
        f = _f32_down(value - self.margin)
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
        if v.size > self.k:
            kth = float(np.partition(v, v.size - self.k)[v.size - self.k])  # the k-th largest
            self.raise_floor(kth)
        keep = v >= self.floor32
        if not keep.all():
            v, r, c = v[keep], r[keep], c[keep]
        self.vals, self.rows, self.cols = [v], [r], [c]
        self.size = v.size
        self.cap = max(self.cap, self.size + max(self.size // 4, 1 << 16))  # (ties can keep more than k)


# --------------------------------------------------------------------------------------------
# the per-process tile kernel


class _Kernel:
    """Processes tiles: matrix product, tail extraction, histograms, threshold counting."""

    def __init__(self, geo: _Geometry, *, mated: tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None,
                 tail_k: int | None, tail_floor: np.float32 | None, count_thresholds: Sequence[float],
                 histogram: bool, windows: Sequence[tuple] = ()):
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
            self.tail = _Tail(tail_k, geo.margin, geo.v_min32 if tail_floor is None else max(tail_floor, geo.v_min32))
            self.seeded = tail_floor is not None
        self.thresholds = [float(x) for x in count_thresholds]
        self.bands = [_raw_band(geo, x) for x in self.thresholds]
        self.fm = np.zeros((len(self.thresholds), n, geo.n_groups), dtype=np.int64)
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


# --------------------------------------------------------------------------------------------
# running tiles: in this process or in worker processes


def _tile_pairs(t: tuple[int, int, int, int]) -> int:
    """Pairs a tile compares (a diagonal tile: its strict upper triangle)."""
    r0, r1, c0, c1 = t
    n = (r1 - r0) * (c1 - c0)
    return n - (r1 - r0) * (r1 - r0 + 1) // 2 if r0 == c0 else n


def _no_progress(pairs: int) -> None:
    return None


def _run(geo: _Geometry, tiles, *, mated, tail_k, tail_floor, thresholds, histogram, workers: int,
         progress: bool = False, desc: str = "scoring pairs", windows: Sequence[tuple] = ()) -> list[dict]:
    kw = dict(mated=mated, tail_k=tail_k, tail_floor=tail_floor, count_thresholds=thresholds, histogram=histogram,
              windows=list(windows))
    from tqdm.auto import tqdm

    total = sum(_tile_pairs(t) for t in tiles)
    with tqdm(total=total, desc=desc, unit="pair", unit_scale=True, disable=not progress, leave=True,
              mininterval=0.5) as bar:
        if workers <= 1 or len(tiles) < 2:
            kern = _Kernel(geo, **kw)
            if progress:
                kern.on_tile = bar.update
            kern.run_all(tiles, overlap=_OVERLAP)
            return [kern.result()]
        return _run_pool(geo, tiles, kw, workers=workers, bar=bar if progress else None)


_PROGRESS = None  # in a worker process: the shared pair counter the parent's bar reads


def _init_worker(counter) -> None:
    global _PROGRESS
    _PROGRESS = counter


def _count_progress(pairs: int) -> None:
    with _PROGRESS.get_lock():
        _PROGRESS.value += pairs


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


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


def _worker(args) -> dict:
    from multiprocessing import shared_memory

    shm_name, shapes, geo_small, tiles, kw = args
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        arrays = {}
        off = 0
        for key, shape in shapes:
            size = int(np.prod(shape)) * 4
            arrays[key] = np.ndarray(shape, dtype=np.float32, buffer=shm.buf, offset=off)
            off += size
        geo = _Geometry(**arrays, **geo_small)
        kern = _Kernel(geo, **kw)
        if _PROGRESS is not None:
            kern.on_tile = _count_progress
        kern.run_all(tiles, overlap=False)  # one BLAS thread here: products and counting alternate
        res = kern.result()  # private arrays only: nothing in it points into the shared block
        del geo, kern, arrays
        return res
    finally:
        shm.close()


def _run_pool(geo: _Geometry, tiles, kw: dict, *, workers: int, bar=None) -> list[dict]:
    import multiprocessing as mp
    from multiprocessing import shared_memory

    # the canonical rows are needed only to rescore pairs near a counted threshold
    e32 = geo.e32 if kw["count_thresholds"] else geo.e32[:0]
    big = [("e32", e32), ("lhs", geo.lhs), ("rhs", geo.rhs)]
    total = sum(a.nbytes for _, a in big)
    shm = shared_memory.SharedMemory(create=True, size=max(total, 1))
    try:
        off = 0
        shapes = []
        for key, a in big:
            np.ndarray(a.shape, dtype=np.float32, buffer=shm.buf, offset=off)[...] = a
            shapes.append((key, a.shape))
            off += a.nbytes
        small = {k: getattr(geo, k) for k in geo.__dataclass_fields__ if k not in ("e32", "lhs", "rhs")}
        # deal tiles round-robin so that every worker gets a share of diagonal and edge tiles
        parts = [tiles[w::workers] for w in range(workers)]
        jobs = [(shm.name, shapes, small, p, kw) for p in parts if p]
        ctx = mp.get_context("spawn")  # BLAS thread pools do not survive fork() safely
        saved = {v: os.environ.get(v) for v in _THREAD_VARS}
        counter = ctx.Value("q", 0) if bar is not None else None
        init = dict(initializer=_init_worker, initargs=(counter,)) if counter is not None else {}
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx, **init) as pool:
            try:
                # one BLAS thread per worker (the processes are the parallelism): the variables
                # must be in the environment when the workers start, before they import numpy
                for v in _THREAD_VARS:
                    os.environ[v] = "1"
                futures = [pool.submit(_worker, job) for job in jobs]
            finally:
                for v, old in saved.items():
                    if old is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = old
            try:
                if counter is not None:
                    from concurrent.futures import FIRST_EXCEPTION, wait

                    shown = 0
                    while True:
                        done, not_done = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                        now = counter.value
                        bar.update(now - shown)
                        shown = now
                        if not not_done or any(f.exception() is not None for f in done):
                            break
                return [f.result() for f in futures]
            except BrokenProcessPool as exc:
                raise MetricError(
                    "a tile worker process died (out of memory?, or the calling script lacks an "
                    "`if __name__ == '__main__':` guard, which spawned processes need). Retry with workers=1 or a "
                    "smaller tile."
                ) from exc
    finally:
        shm.close()
        shm.unlink()


# --------------------------------------------------------------------------------------------
# the scan


def _subtract_mated(fm: np.ndarray, th: np.ndarray, mated, m_scores: np.ndarray, grp: np.ndarray) -> None:
    """Remove the scanned mated pairs from pass counts ``fm`` (T, N, G): the kernel counts every
    pair of a tile, and a mated pair inside it was counted exactly when its canonical score
    reached the threshold."""
    ma, mb, in_scan, _ = mated
    for k in range(th.size):
        hit = in_scan & (m_scores >= th[k])
        np.subtract.at(fm[k], (ma[hit], grp[mb[hit]]), 1)
        np.subtract.at(fm[k], (mb[hit], grp[ma[hit]]), 1)


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


def _merge_tails(parts: list[dict], k: int, margin: float):
    """One tail from the workers' tails: sorted ascending ``(values, rows, cols, floor)``."""
    merged = _Tail(k, margin, max(p["tail"][3] for p in parts))
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
        even below the tail.
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
    parts = _run(geo, tiles, mated=mated, tail_k=tail_k, tail_floor=floor0, thresholds=fixed.tolist(),
                 histogram=histogram, workers=int(workers), progress=progress)
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
    fm_fixed = sum(p["fm"] for p in parts) if fixed.size else np.zeros((0, n, g), np.int64)
    _subtract_mated(fm_fixed, fixed, mated, m_scores, s_grp)
    tail = None
    if tail_k is not None:
        tail = _merge_tails(parts, tail_k, geo.margin)
        if floor0 is not None and not _floor_valid(tail, tail_k, geo.margin, floor0):
            # the sampled guess was above the true boundary (rare): redo the tail from scratch
            parts_t = _run(geo, tiles, mated=mated, tail_k=tail_k, tail_floor=None, thresholds=[],
                           histogram=False, workers=int(workers), progress=progress, desc="scoring pairs again (tail)")
            tail = _merge_tails(parts_t, tail_k, geo.margin)
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
        _tail_k=tail_k or 0, _max_tail=int(max_tail_pairs), _hist_global=hist_global,
    )
    scan._stats = ScanStats(passes=passes, seconds=time.perf_counter() - t_start, **stats)
    return scan


def _kth_in_band(geo: _Geometry, rows: np.ndarray, cols: np.ndarray, rank: int) -> float:
    """The canonical score of rank ``rank`` (0-based, from the top) among the band's pairs: the
    (k+1)-th largest impostor score, when ``rank = k`` minus the pairs certainly above the band."""
    band = _canonical(geo.e32, rows.astype(np.int64), cols.astype(np.int64), geo.metric)
    if not (0 <= rank < band.size):
        raise RuntimeError("threshold band does not hold the (k+1)-th largest impostor score; this is a bug")
    return float(np.partition(band, band.size - 1 - rank)[band.size - 1 - rank])


class TileScan:
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

    def thresholds_at_fmr(self, targets: Sequence[float]) -> np.ndarray:
        """Thresholds at target FMRs over all impostor comparisons of the scan.

        ``thresholds[j]`` equals :func:`audit.metrics.threshold_at_fmr` on the canonical scores of
        all impostor pairs: with ``k = floor(target × impostors)``, the next float64 above the
        (k+1)-th largest impostor score, so that at most ``k`` impostors have
        ``score >= threshold`` (ties at the boundary fall below it; the target is never exceeded).

        Parameters
        ----------
        targets : sequence of float, shape (m,)
            Each in (0, ``max_fmr``].

        Returns
        -------
        ndarray of float64, shape (m,)

        Raises
        ------
        MetricError
            No impostor comparisons, or a target outside (0, max_fmr] (rescan with a larger
            ``max_fmr``).
        """
        tg = np.asarray(targets, dtype=np.float64).reshape(-1)
        if self._tail is None or self._n_imp == 0:
            raise MetricError(
                "the scan has no impostor comparisons, so no threshold can be set at a target FMR. "
                "Check the subjects (every pair is mated?) and the impostor protocol."
            )
        bad = np.flatnonzero(~((tg > 0) & (tg <= self._max_fmr)))
        if bad.size:
            raise MetricError(
                f"every target must be in (0, max_fmr={self._max_fmr:g}]; got {tg[bad[0]]!r} at index {int(bad[0])}. "
                "Call score_tiles with max_fmr at least the largest target."
            )
        v, r, c, _ = self._tail
        geo = self._geo
        w = geo.margin
        out = np.empty(tg.shape, dtype=np.float64)
        size = v.size
        deep = []
        for j, t in enumerate(tg):
            k = _k_rule(float(t), self._n_imp)
            if k + 1 > self._tail_k:  # deeper than the capped tail: narrowing passes
                deep.append((j, k))
                continue
            if k + 1 > size:  # internal invariant: the tail holds its top k + 1
                raise RuntimeError(f"tail holds {size} pairs, fewer than k + 1 = {k + 1}; this is a bug")
            pivot = float(v[size - 1 - k])  # (k+1)-th largest screening value
            lo = int(np.searchsorted(v, _f32_down(pivot - w), side="left"))
            hi = int(np.searchsorted(v, _f32_up(pivot + w), side="right"))
            above = size - hi
            out[j] = _just_above(_kth_in_band(geo, r[lo:hi], c[lo:hi], k - above), np.dtype(np.float64))
        if deep:
            for (j, _), value in zip(deep, self._deep_thresholds([k for _, k in deep])):
                out[j] = _just_above(value, np.dtype(np.float64))
        return out

    def _deep_thresholds(self, ks: list[int]) -> list[float]:
        """The (k+1)-th largest canonical impostor score for each k, without a tail that long.

        A window of screening values certainly holds the (k+1)-th largest screening value (the
        histogram says which bin; its neighbours within the margin are added); while a window holds
        more than ``max_tail_pairs`` pairs, a pass histograms it into 4096 sub-bins and the window
        shrinks to one of them; then a pass collects its pairs and counts the impostors above it,
        and the canonical scores of the collected pairs give the value (as for the tail: every pair
        above the window scores higher, every pair below lower).
        """
        geo = self._geo
        w = geo.margin
        top = float(geo.hist_bins) + 1.0
        # (lo, hi, hist over [lo, hi), impostors above hi) per k; level 0 is the scan's histogram
        if self._hist_global is not None:
            base = (1.0, top, self._hist_global, 0)
        else:
            (above, h, _), = self._window_pass([(1.0, top, geo.hist_bins, False)], "scoring pairs (histogram)")
            base = (1.0, top, h, above)
        state = {i: base for i in range(len(ks))}
        while True:
            windows, est = {}, {}
            for i, k in enumerate(ks):
                lo, hi, h, above = state[i]
                width = (hi - lo) / h.size
                from_top = above + np.concatenate([np.cumsum(h[::-1])[::-1][1:], [0]])  # pairs in the bins above each bin
                s = int(np.flatnonzero((from_top <= k) & (k < from_top + h))[0])
                nlo, nhi = lo + s * width - w, lo + (s + 1) * width + w
                if s == h.size - 1 and hi >= top:
                    nhi = top + 1.0  # the scan's top bin also holds anything above its range
                windows[i] = (float(_f32_down(nlo)), float(_f32_up(nhi)))
                est[i] = int(h[max(0, s - 1): s + 2].sum())
            # narrow while a window holds too many pairs to collect, and while narrowing can help
            wide = [i for i in windows if est[i] > self._max_tail and windows[i][1] - windows[i][0] > 8 * w]
            if not wide:
                break
            got = self._window_pass([(*windows[i], 4096, False) for i in wide], "narrowing the threshold search")
            for i, (above, h, _) in zip(wide, got):
                state[i] = (windows[i][0], windows[i][1], h, above)
                # the new window's own histogram: the next round picks a sub-bin of it
        got = self._window_pass([(*windows[i], 0, True) for i in range(len(ks))], "collecting pairs at the thresholds")
        return [_kth_in_band(geo, r, c, k - above) for k, (above, _, (_v, r, c)) in zip(ks, got)]

    def _window_pass(self, windows: list[tuple], desc: str) -> list[tuple]:
        """One pass over the tiles for ``windows``; per window (impostors above, histogram, pairs)."""
        parts = _run(self._geo, self._tiles, mated=self._mated, tail_k=None, tail_floor=None, thresholds=[],
                     histogram=False, workers=self._workers, progress=self._progress, desc=desc, windows=windows)
        self._stats = replace(self._stats, passes=self._stats.passes + 1)
        out = []
        for i in range(len(windows)):
            res = [p["windows"][i] for p in parts]
            above = sum(x[0] for x in res)
            h = sum(x[1] for x in res) if res[0][1] is not None else None
            pairs = None
            if res[0][2] is not None:
                pairs = tuple(np.concatenate([x[2][j] for x in res]) for j in range(3))
            out.append((above, h, pairs))
        return out

    def counts_at(self, thresholds: Sequence[float], *, allow_rescan: bool = True) -> CellCounts:
        """Exact false matches per cell/subject and false non-matches per group/subject.

        Each threshold is counted from the tail when it is at or above :attr:`tail_floor`, from the
        pass counts when it was given to :func:`score_tiles`, and otherwise by a second pass over
        the tiles (all such thresholds together; ``rescanned`` says so).

        Parameters
        ----------
        thresholds : sequence of float, shape (T,)
            Similarity units; ``-inf``/``inf`` allowed.
        allow_rescan : bool, default True
            When False, a threshold that needs a second pass raises instead.

        Returns
        -------
        CellCounts

        Raises
        ------
        MetricError
            NaN thresholds, or a rescan needed while ``allow_rescan`` is False.
        """
        th = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if np.isnan(th).any():
            raise MetricError("thresholds must not be NaN; check how they were computed.")
        geo = self._geo
        n, g = geo.e32.shape[0], geo.n_groups
        fm_row = np.zeros((th.size, n, g), dtype=np.int64)
        need = []
        for k, t in enumerate(th):
            lo32, hi32 = _raw_band(geo, float(t))
            fixed_hit = np.flatnonzero(self._fixed == t)
            if self._tail is not None and lo32 >= self._tail[3]:
                fm_row[k] = self._tail_counts(float(t), lo32, hi32)
            elif fixed_hit.size:
                fm_row[k] = self._fm_fixed[fixed_hit[0]]
            elif self._tail is None and self._n_imp == 0:
                pass  # nothing to count
            else:
                need.append(k)
        rescanned = False
        if need:
            if not allow_rescan:
                raise MetricError(
                    f"threshold(s) {th[need].tolist()} lie below the exact tail (floor {self.tail_floor:.6g}) and were not "
                    "given to score_tiles; counting them needs a second pass. Pass allow_rescan=True, give them as "
                    "score_tiles(thresholds=...), or raise max_fmr."
                )
            parts = _run(geo, self._tiles, mated=self._mated, tail_k=None, tail_floor=None, thresholds=th[need].tolist(),
                         histogram=False, workers=self._workers, progress=self._progress,
                         desc="second pass (thresholds below the tail)")
            fm = sum(p["fm"] for p in parts)
            _subtract_mated(fm, th[need], self._mated, self._mated_scores, geo.grp)
            fm_row[need] = fm
            self._stats = replace(self._stats, passes=self._stats.passes + 1)
            rescanned = True
        return self._assemble(th, fm_row, rescanned)

    def false_match_rows(self, threshold: float, *, max_pairs: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Every impostor pair scoring at or above ``threshold``, as (row, row) in scan order.

        From the tail when the threshold is at or above :attr:`tail_floor`; otherwise by a pass
        that collects them, when the scan's counts show at most ``max_pairs`` (default
        ``max_tail_pairs``) of them. Returns ``None`` when there are more (nothing is collected)."""
        geo = self._geo
        t = float(threshold)
        lo32, hi32 = _raw_band(geo, t)
        if self._tail is not None and lo32 >= self._tail[3]:
            v, r, c, _ = self._tail
            i_lo = int(np.searchsorted(v, lo32, side="left"))
            i_hi = int(np.searchsorted(v, hi32, side="left"))
            br, bc = r[i_lo:i_hi].astype(np.int64), c[i_lo:i_hi].astype(np.int64)
            hit = _canonical(geo.e32, br, bc, geo.metric) >= t if br.size else np.zeros(0, bool)
            rows = np.concatenate([r[i_hi:].astype(np.int64), br[hit]])
            cols = np.concatenate([c[i_hi:].astype(np.int64), bc[hit]])
            return rows, cols
        if self._n_imp == 0 or not np.isfinite(t) and t > 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cap = self._max_tail if max_pairs is None else int(max_pairs)
        n_fm = int(self.counts_at([t]).false_matches_total[0])
        if n_fm > cap:
            return None
        if n_fm == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        top = np.float32(np.finfo(np.float32).max)
        ((_above, _h, (_v, r, c)),) = self._window_pass([(float(lo32), float(top), 0, True)], "collecting false-match pairs")
        r, c = r.astype(np.int64), c.astype(np.int64)
        hit = _canonical(geo.e32, r, c, geo.metric) >= t if r.size else np.zeros(0, bool)
        return r[hit], c[hit]

    def people_counts(self, thresholds: Sequence[float], *, max_pairs: int | None = None):
        """Per-person counts for the people-level bootstrap (:class:`audit.metrics.people.PeopleCounts`),
        or ``None`` when some threshold has more false matches than ``max_pairs`` to list.

        Cells are the scan's group codes (two-sided: side-coded). A mated pair belongs to the cell
        of its first image in the caller's order (the probe's in a two-sided scan)."""
        from audit.metrics.people import PeopleCounts

        geo = self._geo
        th = np.asarray(thresholds, np.float64).reshape(-1)
        g = geo.n_groups
        n_subj = self._subject_labels.shape[0]
        lists = [self.false_match_rows(float(t), max_pairs=max_pairs) for t in th]
        if any(x is None for x in lists):
            return None
        rows = np.concatenate([x[0] for x in lists]) if lists else np.zeros(0, np.int64)
        cols = np.concatenate([x[1] for x in lists]) if lists else np.zeros(0, np.int64)
        which = np.repeat(np.arange(th.size), [x[0].size for x in lists]) if lists else np.zeros(0, np.int64)
        onehot = np.zeros((rows.size, th.size), np.int64)
        onehot[np.arange(rows.size), which] = 1
        a, b, ca, cb, cnt = PeopleCounts.aggregate_pairs(geo.subj[rows], geo.subj[cols], geo.grp[rows], geo.grp[cols], onehot)
        images = np.bincount(geo.subj * g + geo.grp, minlength=n_subj * g).reshape(n_subj, g)
        first_cell = self._subject_first_group()
        mg = self._mated_first_group()
        msubj = geo.subj[self._mated[0]]
        miss = (self._mated_scores[:, None] < th[None, :]).astype(np.int64)  # (m, T)
        mp, _, mc, _, agg = PeopleCounts.aggregate_pairs(msubj, msubj, mg, mg, np.concatenate([np.ones((msubj.size, 1), np.int64), miss], axis=1))
        mode = "two_sided" if geo.base_groups else ("same_cell" if self._impostor_mode == "same_group" else "all")
        tail = {}
        if self._tail is not None and self._tail[0].size:  # the highest impostor scores, for the operating point
            _, tr, tc, _ = self._tail
            tr, tc = tr.astype(np.int64), tc.astype(np.int64)
            ts = _canonical(geo.e32, tr, tc, geo.metric)
            o = np.argsort(-ts, kind="stable")
            tail = dict(tail_score=ts[o], tail_a=geo.subj[tr[o]], tail_b=geo.subj[tc[o]], tail_ca=geo.grp[tr[o]], tail_cb=geo.grp[tc[o]],
                        mated_score=np.asarray(self._mated_scores, np.float64), mated_score_person=msubj.astype(np.int64),
                        mated_score_cell=mg.astype(np.int64))
        return PeopleCounts(th.copy(), first_cell.astype(np.int64), images.astype(np.int64), mode, a, b, ca, cb, cnt,
                            mp, mc, agg[:, 0].copy(), agg[:, 1:].copy(), **tail)

    def _tail_counts(self, t: float, lo32, hi32) -> np.ndarray:
        v, r, c, _ = self._tail
        geo = self._geo
        n, g = geo.e32.shape[0], geo.n_groups
        i_lo = int(np.searchsorted(v, lo32, side="left"))
        i_hi = int(np.searchsorted(v, hi32, side="left"))
        rows = [r[i_hi:]]
        cols = [c[i_hi:]]
        if i_hi > i_lo:
            br, bc = r[i_lo:i_hi].astype(np.int64), c[i_lo:i_hi].astype(np.int64)
            hit = _canonical(geo.e32, br, bc, geo.metric) >= t
            rows.append(br[hit])
            cols.append(bc[hit])
        rr = np.concatenate(rows).astype(np.int64)
        cc = np.concatenate(cols).astype(np.int64)
        out = np.bincount(rr * g + geo.grp[cc], minlength=n * g) + np.bincount(cc * g + geo.grp[rr], minlength=n * g)
        return out.reshape(n, g)

    def _assemble(self, th: np.ndarray, fm_row: np.ndarray, rescanned: bool) -> CellCounts:
        geo = self._geo
        g = geo.n_groups
        base = geo.base_groups or g  # group code modulo the side
        n_subj = self._subject_labels.shape[0]
        t = th.size
        fm_cells = np.stack([self._cells(fm_row[k]) for k in range(t)]) if t else np.zeros((0, g, g), np.int64)
        sub_fm = np.zeros((t, n_subj, g), dtype=np.int64)
        for k in range(t):
            np.add.at(sub_fm[k], geo.subj, fm_row[k])
        sub_imp = np.zeros((n_subj, g), dtype=np.int64)
        np.add.at(sub_imp, geo.subj, self._imp_row)
        # mated: by the group of the pair's first row (caller's order); subject of the pair
        mg = self._mated_first_group()
        msubj = geo.subj[self._mated[0]]
        miss = self._mated_scores[None, :] < th[:, None]  # (T, m)
        fnm = np.stack([np.bincount(mg[miss[k]], minlength=g) for k in range(t)]) if t else np.zeros((0, g), np.int64)
        sub_fnm = np.stack([np.bincount(msubj[miss[k]], minlength=n_subj) for k in range(t)]) if t else np.zeros((0, n_subj), np.int64)
        # subject's group: the group of its first row in the caller's order
        sub_group = self._subject_first_group()
        ma, mb = self._mated[0], self._mated[1]
        return CellCounts(
            thresholds=th.copy(),
            false_matches=fm_cells.astype(np.int64),
            impostors=self.impostors,
            false_non_matches=fnm.astype(np.int64),
            mated=np.bincount(mg, minlength=g).astype(np.int64),
            subject_labels=self._subject_labels,
            subject_group=sub_group.astype(np.int64),
            subject_false_matches=sub_fm,
            subject_impostors=sub_imp,
            subject_false_non_matches=sub_fnm.astype(np.int64),
            subject_mated=np.bincount(msubj, minlength=n_subj).astype(np.int64),
            mated_cross_group=int(np.sum(geo.grp[ma] % base != geo.grp[mb] % base)),
            rescanned=rescanned,
        )


# --------------------------------------------------------------------------------------------
# pair lists


def _check_index(idx: np.ndarray, name: str, n: int) -> np.ndarray:
    a = np.asarray(idx)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise MetricError(f"{name} must be a 1-D array of integer row indices; got shape {a.shape}, dtype {a.dtype}.")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= n):
        raise MetricError(f"{name} must index rows 0..{n - 1}; found {int(a.min())}..{int(a.max())}.")
    return a


def score_pairs(
    embeddings: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    *,
    metric: str = "cosine",
    normalize: bool = True,
) -> np.ndarray:
    """Canonical scores of given pairs of rows: the scores every count of :func:`score_tiles` equals.

    Cosine: rows L2-normalised in float64 and cast to float32 (as in :func:`score_tiles`), then the
    dot product of the float32 rows in float64, summed in a fixed pairwise order. Euclidean: minus
    the square root of the float64 sum of squared differences. The result for a pair does not
    depend on which other pairs are scored with it.

    Parameters
    ----------
    embeddings : array_like of float, shape (N, d)
    a_idx, b_idx : array_like of int, shape (m,)
        Row indices of the two sides.
    metric : {"cosine", "euclidean"}, default "cosine"
    normalize : bool, default True

    Returns
    -------
    ndarray of float64, shape (m,)

    Examples
    --------
    >>> e = np.array([[3.0, 4.0], [3.0, 4.0], [0.0, 1.0]])
    >>> score_pairs(e, [0, 0], [1, 2]).round(6).tolist()
    [1.0, 0.8]
    >>> score_pairs(e, [0], [2], metric="euclidean").round(6).tolist()
    [-4.242641]
    """
    e32 = _prepare(embeddings, metric, normalize)
    n = e32.shape[0]
    a = _check_index(a_idx, "a_idx", n)
    b = _check_index(b_idx, "b_idx", n)
    if a.shape != b.shape:
        raise MetricError(f"a_idx and b_idx must have the same length; got {a.size} and {b.size}.")
    return _canonical(e32, a, b, metric)


def pair_scores_from_list(
    embeddings: np.ndarray,
    subjects: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    *,
    metric: str = "cosine",
    normalize: bool = True,
) -> PairScores:
    """Score a given list of pairs (a protocol such as LFW's ``pairs.txt``) into :class:`PairScores`.

    Pairs whose rows share a subject are mated, the others impostors. Each pair is stored with
    ``a < b``; a pair listed twice is scored twice (protocols may repeat pairs on purpose).

    Parameters
    ----------
    embeddings : array_like of float, shape (N, d)
    subjects : array_like, shape (N,)
    a_idx, b_idx : array_like of int, shape (m,)
    metric, normalize
        As for :func:`score_pairs`.

    Returns
    -------
    PairScores

    Raises
    ------
    MetricError
        Bad indices, a pair of a row with itself, or the errors of :func:`score_pairs`.
    """
    e32 = _prepare(embeddings, metric, normalize)
    n = e32.shape[0]
    _, subj = _codes(subjects, "subjects", n)
    a = _check_index(a_idx, "a_idx", n)
    b = _check_index(b_idx, "b_idx", n)
    if a.shape != b.shape:
        raise MetricError(f"a_idx and b_idx must have the same length; got {a.size} and {b.size}.")
    same = np.flatnonzero(a == b)
    if same.size:
        raise MetricError(f"pair {int(same[0])} compares row {int(a[same[0]])} with itself; a protocol never does.")
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    s = _canonical(e32, lo, hi, metric)
    mated = subj[lo] == subj[hi]
    return PairScores(s[mated], lo[mated], hi[mated], s[~mated], lo[~mated], hi[~mated])


def sample_impostor_pairs(
    subjects: np.ndarray,
    n_pairs: int,
    *,
    seed: int = 0,
    groups: np.ndarray | None = None,
    same_group: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw distinct impostor pairs uniformly at random (without replacement), reproducibly.

    Parameters
    ----------
    subjects : array_like, shape (N,)
    n_pairs : int
        How many distinct unordered pairs to draw.
    seed : int, default 0
        The same seed gives the same pairs, in the same order.
    groups : array_like of int, shape (N,), optional
        Group codes; needed for ``same_group``.
    same_group : bool, default False
        Draw only pairs of two rows of the same group (NIST's same-demographic impostors).

    Returns
    -------
    a_idx, b_idx : ndarray of int64, shape (n_pairs,)
        Row indices with ``a < b``, in draw order. Score them with :func:`score_pairs`.

    Raises
    ------
    MetricError
        More pairs asked for than exist, or ``same_group`` without ``groups``.
    """
    subj = np.unique(np.asarray(subjects), return_inverse=True)[1].reshape(-1).astype(np.int64)
    n = subj.size
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 0:
        raise MetricError(f"n_pairs must be a non-negative integer; got {n_pairs!r}.")
    if same_group:
        if groups is None:
            raise MetricError("same_group=True needs groups (one integer code per row).")
        grp, _ = _group_codes(groups, n, None)
    else:
        grp = np.zeros(n, np.int64)
    # how many impostor pairs exist
    sizes = np.bincount(grp).astype(np.int64) if n else np.zeros(0, np.int64)
    pairs_total = int((sizes * (sizes - 1) // 2).sum())
    ps = np.zeros((subj.max() + 1 if n else 0, sizes.size), np.int64)
    np.add.at(ps, (subj, grp), 1)
    available = pairs_total - int((ps * (ps - 1) // 2).sum())
    if n_pairs > available:
        raise MetricError(f"asked for {n_pairs} impostor pairs, but only {available} exist under this protocol.")
    rng = np.random.default_rng(seed)
    if n_pairs == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if pairs_total <= 20_000_000 and n_pairs > available // 4:
        # dense request: enumerate every impostor pair and take a random subset
        i, j = np.triu_indices(n, 1)
        ok = (subj[i] != subj[j]) & (grp[i] == grp[j])
        i, j = i[ok], j[ok]
        pick = rng.permutation(i.size)[:n_pairs]
        return i[pick].astype(np.int64), j[pick].astype(np.int64)
    if n_pairs > available // 2:
        raise MetricError(
            f"asked for {n_pairs} of the {available} impostor pairs; sampling more than half of them is slower than "
            "scanning them all: use score_tiles instead."
        )
    order = np.argsort(grp, kind="stable")
    gs = np.concatenate([[0], np.cumsum(sizes)])
    weights = (sizes * (sizes - 1) / 2.0)
    weights = weights / weights.sum()
    seen_keys = np.empty(0, np.int64)
    got_a, got_b = [], []
    have = 0
    while have < n_pairs:
        m = max(1024, 2 * (n_pairs - have))
        gsel = rng.choice(sizes.size, size=m, p=weights)
        u = rng.random((m, 2))
        i = order[gs[gsel] + (u[:, 0] * sizes[gsel]).astype(np.int64)]
        j = order[gs[gsel] + (u[:, 1] * sizes[gsel]).astype(np.int64)]
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        ok = (lo != hi) & (subj[lo] != subj[hi])
        key = lo[ok] * n + hi[ok]
        _, first = np.unique(key, return_index=True)
        first.sort()
        key = key[first]
        key = key[~np.isin(key, seen_keys)]
        key = key[: n_pairs - have]
        seen_keys = np.concatenate([seen_keys, key])
        got_a.append(key // n)
        got_b.append(key % n)
        have += key.size
    return np.concatenate(got_a), np.concatenate(got_b)
