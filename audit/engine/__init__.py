"""How work is spread and pairs are scored, one job per module.

- :mod:`.local`: embedding over a local process pool, feeding the embedding store.
- :mod:`.scan`: the tiled all-pairs scan (:func:`~.scan.score_tiles`, :class:`~.scan.TileScan`);
  :mod:`.counts` holds its results (:class:`~.counts.CellCounts`, :class:`~.counts.ScanStats`).
- :mod:`.numerics`, :mod:`.geometry`: the screening bound, the canonical score, the tiles.
- :mod:`.tail`, :mod:`.thresholds`: the exact tail and thresholds at target FMRs (with the
  narrowing passes below a capped tail).
- :mod:`.counting`: counts at thresholds (from the tail, or a counting pass).
- :mod:`.kernel`: one pass over a list of tiles; :mod:`.workers`: running passes in this process
  or in worker processes; :mod:`._fused`: the compiled (numba) inner loop.
- :mod:`.pairs`: pair lists (canonical scores of given pairs, sampled impostors).
- :mod:`.tiles`: the public names of the tiled engine in one place.
- :mod:`.select`: choosing the engine (``[engine]``, ``--engine ray``) for a block of code.
- :mod:`.ray_runtime`, :mod:`.ray_scan`, :mod:`.ray_embed`: Ray (the optional ``ray`` extra):
  joining or starting a cluster, the scan's passes as Ray tasks, embedding through Ray Data.
- :mod:`.gpu`: onnxruntime's CUDA provider with batching, and the scan's products on a GPU.
"""

from .local import EmbedStats, default_workers, embed_missing

__all__ = ["EmbedStats", "default_workers", "embed_missing"]
