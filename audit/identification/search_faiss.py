"""Approximate 1:N search with faiss (flat, HNSW, IVF indexes): the optional faiss extra.

Exact search (:class:`~audit.identification.search.ExactSearch`) is the reference; recall_at_k
measures how much of its top-k an approximate index returns.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from ..errors import MissingDependencyError
from .split import IdentificationError
from .search import (
    SearchBackend,
    SearchHits,
    _as_matrix,
    _check_ids,
    _prepare,
    canonical_scores,
)


class FaissSearch(SearchBackend):
    """Search with a faiss index: ``"flat"`` (exact up to float32), ``"hnsw"`` or ``"ivf"`` (approximate).

    Parameters
    ----------
    index : {"hnsw", "ivf", "flat"}, default "hnsw"
    metric : {"cosine", "euclidean"}
    hnsw_m : int, default 32
        HNSW graph degree.
    ef_construction, ef_search : int, default 200, 128
        HNSW beam widths when building and searching (``ef_search`` is raised to ``k`` if lower).
    nlist : int, optional
        IVF cells (default ``4 * sqrt(n)``, at least 1).
    nprobe : int, default 16
        IVF cells visited per search.
    train_size : int, default 100_000
        IVF training sample (seeded).
    threads : int, optional
        faiss OpenMP threads (default: faiss's own).

    Returned candidates are rescored canonically (as :class:`ExactSearch` scores them) and
    reordered by ``(score desc, position asc)``.
    """

    name = "faiss"

    def __init__(self, *, index: str = "hnsw", metric: str = "cosine", hnsw_m: int = 32, ef_construction: int = 200,
                 ef_search: int = 128, nlist: int | None = None, nprobe: int = 16, train_size: int = 100_000,
                 threads: int | None = None, seed: int = 0) -> None:
        if index not in ("hnsw", "ivf", "flat"):
            raise IdentificationError(f"faiss index must be 'hnsw', 'ivf' or 'flat', got {index!r}")
        if metric not in ("cosine", "euclidean"):
            raise IdentificationError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        for nm, v in (("hnsw_m", hnsw_m), ("ef_construction", ef_construction), ("ef_search", ef_search),
                      ("nprobe", nprobe), ("train_size", train_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise IdentificationError(f"{nm} must be an integer >= 1, got {v!r}")
        self.index_kind = index
        self.metric = metric
        self.params = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search,
                       "nlist": nlist, "nprobe": nprobe, "train_size": train_size, "threads": threads, "seed": seed}
        self._faiss = _import_faiss()
        if threads is not None:
            self._faiss.omp_set_num_threads(int(threads))
        self._index = None
        self._g = np.empty((0, 0), np.float32)
        self._ids = np.empty(0, np.int64)
        self.enrol_seconds = 0.0

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.index_kind == "flat"

    @property
    def size(self) -> int:
        return int(self._g.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory of the faiss index (serialised size) plus the float32 copy kept for rescoring."""
        if self._index is None:
            return 0
        return int(self._faiss.serialize_index(self._index).nbytes + self._g.nbytes + self._ids.nbytes)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "exact": self.exact, "index": self.index_kind, "metric": self.metric,
                "faiss_version": getattr(self._faiss, "__version__", "?"), **self.params}

    def enrol(self, gallery: Any, ids: Sequence[int] | np.ndarray) -> None:
        faiss = self._faiss
        t0 = time.perf_counter()
        g = _as_matrix(gallery, "gallery embeddings")
        self._ids = _check_ids(ids, g.shape[0])
        self._g = _prepare(g, self.metric)
        n, d = self._g.shape
        fmetric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        if self.index_kind == "flat":
            index = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
        elif self.index_kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.params["hnsw_m"], fmetric)
            index.hnsw.efConstruction = self.params["ef_construction"]
        else:
            nlist = self.params["nlist"] or max(1, int(4 * math.sqrt(n)))
            nlist = min(nlist, n)
            quantizer = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, fmetric)
            rng = np.random.default_rng(self.params["seed"])
            train = self._g if n <= self.params["train_size"] else self._g[np.sort(rng.choice(n, self.params["train_size"], replace=False))]
            index.train(train)
            self.params["nlist"] = nlist
        index.add(self._g)
        self._index = index
        self.enrol_seconds = time.perf_counter() - t0

    def search(self, probes: Any, k: int) -> SearchHits:
        k = self._check_k(k)
        p = _prepare(_as_matrix(probes, "probes", self._g.shape[1]), self.metric)
        if self.index_kind == "hnsw":
            self._index.hnsw.efSearch = max(self.params["ef_search"], k)
        elif self.index_kind == "ivf":
            self._index.nprobe = self.params["nprobe"]
        _, pos = self._index.search(p, k)
        m = p.shape[0]
        out_s = np.full((m, k), -np.inf)
        out_i = np.full((m, k), -1, np.int64)
        for r in range(m):
            cand = pos[r][pos[r] >= 0]
            if cand.size == 0:
                continue
            sc = canonical_scores(p[r][None, :], self._g[cand], self.metric)
            order = np.lexsort((cand, -sc))
            out_s[r, : cand.size] = sc[order]
            out_i[r, : cand.size] = self._ids[cand[order]]
        return SearchHits(out_s, out_i)


def _import_faiss():
    try:
        import faiss  # noqa: PLC0415  (optional extra, imported where needed)
    except ImportError as exc:
        raise MissingDependencyError(
            "the faiss search backend needs faiss; install the extra: pip install 'face-audit[faiss]' (or pip install faiss-cpu)"
        ) from exc
    return faiss
