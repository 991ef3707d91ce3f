"""What a scan returns: its cost (:class:`ScanStats`) and exact error counts per cell, group and
subject (:class:`CellCounts`, :class:`SubjectCounts`), with :func:`coarsen_cells` to sum cells into
a coarser grouping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MetricError

__all__ = ["ScanStats", "SubjectCounts", "CellCounts", "coarsen_cells"]


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
        Impostor pairs kept exactly in the tail (with those kept for a threshold given to
        :func:`score_tiles` below it, when they fit under ``max_tail_pairs``).
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
