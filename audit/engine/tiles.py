"""The tiled all-pairs engine's public names, from the modules that hold them.

The engine is split by job: :mod:`.scan` (:func:`score_tiles`, :class:`TileScan`; its docstring
describes the method), :mod:`.counts` (results), :mod:`.numerics` and :mod:`.geometry` (the
screening bound and the tiles), :mod:`.tail` and :mod:`.thresholds` (the exact tail and the
narrowing passes), :mod:`.counting` (counts at thresholds), :mod:`.kernel` (one pass over tiles),
:mod:`.workers` (processes), :mod:`._fused` (the compiled loop) and :mod:`.pairs` (pair lists).
"""

from .counts import CellCounts, ScanStats, SubjectCounts, coarsen_cells
from .numerics import IMPOSTOR_MODES, METRICS
from .pairs import pair_scores_from_list, sample_impostor_pairs, score_pairs
from .scan import TileScan, score_tiles

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
