"""Exact 1:N search over gallery shards, here or on Ray, with an exact top-k merge.

The gallery is cut into contiguous shards, each an :class:`~audit.identification.search.ExactSearch`
enrolled with its entries' *global positions* as ids. A probe's top k within each shard is exact
and ordered by ``(canonical score descending, position ascending)``; the global top k is among
the union of the shards' top k (an entry beaten by k others in its shard is beaten by them
globally), and sorting the union by the same key gives exactly what one
:class:`~audit.identification.search.ExactSearch` over the whole gallery returns: the same scores
(each pair's canonical score does not depend on the other rows) and the same tie order.

``engine="ray"`` holds each shard in a Ray actor (the gallery is sent once, at enrolment; probes
go to every actor through the object store); ``engine="local"`` searches the shards in turn here,
which bounds the memory of one block of scores by the shard instead of the gallery.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .search import SEARCH_BACKENDS, ExactSearch, SearchBackend, SearchHits, _as_matrix, _check_ids
from .split import IdentificationError

__all__ = ["ShardedSearch", "merge_top_k"]


def merge_top_k(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top lists ``(scores, positions)``, each (m, k_s), into the global top k.

    Order: score descending, then position ascending (the exact search's tie rule).

    Examples
    --------
    >>> s, p = merge_top_k([(np.array([[0.9, 0.5]]), np.array([[3, 1]])), (np.array([[0.9, 0.7]]), np.array([[0, 7]]))], 3)
    >>> s.tolist(), p.tolist()
    ([[0.9, 0.9, 0.7]], [[0, 3, 7]])
    """
    scores = np.concatenate([np.asarray(s, np.float64) for s, _ in parts], axis=1)
    pos = np.concatenate([np.asarray(p, np.int64) for _, p in parts], axis=1)
    out_s = np.empty((scores.shape[0], k), np.float64)
    out_p = np.empty((scores.shape[0], k), np.int64)
    for r in range(scores.shape[0]):
        o = np.lexsort((pos[r], -scores[r]))[:k]
        out_s[r], out_p[r] = scores[r, o], pos[r, o]
    return out_s, out_p


class _Shard:
    """One shard (also the body of a Ray actor)."""

    def __init__(self, metric: str, options: dict) -> None:
        self.search_ = ExactSearch(metric=metric, **options)

    def enrol(self, gallery: np.ndarray, positions: np.ndarray) -> int:
        self.search_.enrol(gallery, positions)
        return self.search_.size

    def search(self, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        hits = self.search_.search(probes, min(k, self.search_.size))
        return hits.scores, hits.ids


class ShardedSearch(SearchBackend):
    """Exact top-k over ``shards`` gallery shards (``search = "exact-sharded"``).

    Parameters
    ----------
    metric : {"cosine", "euclidean"}
    shards : int, default 2
        Contiguous parts of the gallery (fewer when the gallery has fewer entries).
    engine : {"local", "ray"}, default "local"
        Where the shards live: here, or one Ray actor each (on the cluster joined, or a local
        Ray instance started on first use).
    **options
        Passed to each shard's :class:`~audit.identification.search.ExactSearch` (``tile``,
        ``max_tile_bytes``, ``block``).
    """

    name = "exact-sharded"
    exact = True

    def __init__(self, *, metric: str = "cosine", shards: int = 2, engine: str = "local", **options: Any) -> None:
        if metric not in ("cosine", "euclidean"):
            raise IdentificationError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise IdentificationError(f"shards must be an integer >= 1, got {shards!r}")
        if engine not in ("local", "ray"):
            raise IdentificationError(f"engine must be 'local' or 'ray', got {engine!r}")
        ExactSearch(metric=metric, **options)  # validates the options now
        self.metric, self.shards, self.engine, self.options = metric, shards, engine, dict(options)
        self._parts: list[Any] = []
        self._ids = np.empty(0, np.int64)
        self._dim = None

    @property
    def size(self) -> int:
        return int(self._ids.size)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "metric": self.metric, "shards": self.shards, "engine": self.engine, **self.options}

    def enrol(self, gallery: Any, ids: Sequence[int] | np.ndarray) -> None:
        g = _as_matrix(gallery, "gallery embeddings")
        self._ids = _check_ids(ids, g.shape[0])
        self._dim = g.shape[1]
        n = g.shape[0]
        bounds = np.linspace(0, n, min(self.shards, max(n, 1)) + 1).astype(np.int64)
        spans = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if self.engine == "ray":
            from ..engine.ray_runtime import connect

            ray = connect()
            actor = ray.remote(_Shard)  # Ray's actor default: no CPU held while idle, so shards may outnumber CPUs
            self._parts = [actor.remote(self.metric, self.options) for _ in spans]
            ray.get([p.enrol.remote(g[a:b], np.arange(a, b)) for p, (a, b) in zip(self._parts, spans)])
        else:
            self._parts = []
            for a, b in spans:
                s = _Shard(self.metric, self.options)
                s.enrol(g[a:b], np.arange(a, b))
                self._parts.append(s)

    def search(self, probes: Any, k: int) -> SearchHits:
        k = self._check_k(k)
        p = _as_matrix(probes, "probes", self._dim)
        if p.shape[0] == 0:
            return SearchHits(np.empty((0, k)), np.empty((0, k), np.int64))
        if self.engine == "ray":
            from ..engine.ray_runtime import require_ray

            ray = require_ray()
            ref = ray.put(np.asarray(p))
            parts = ray.get([s.search.remote(ref, k) for s in self._parts])
        else:
            parts = [s.search(p, k) for s in self._parts]
        scores, pos = merge_top_k(parts, k)
        return SearchHits(scores, self._ids[pos])


SEARCH_BACKENDS.setdefault("exact-sharded", lambda metric, **o: ShardedSearch(metric=metric, **o))
