"""1:N search: the :class:`SearchBackend` interface, exact blocked search, and faiss indexes.

A search backend holds an enrolled gallery and returns, for each probe, its ``k`` best gallery
*entries* with their scores. Scores are similarities (higher = more alike): cosine similarity,
or minus the Euclidean distance, in the units :meth:`audit.backends.base.BackendInfo.to_similarity`
gives, so a candidate is returned at threshold ``t`` when ``score >= t``.

Backends
--------
:class:`ExactSearch`
    Exact top-k by blocked matrix products: tiles of probes × the full gallery in float32
    (``np.argpartition`` per tile), then the few candidates near the k-th score are rescored in
    float64 and ordered by ``(score descending, gallery position ascending)``. The result is the
    same for every tile size and BLAS: it equals a brute-force float64 ``argsort`` of every score
    (see :func:`canonical_scores`). Memory: the gallery (``n × d`` float32) plus one tile of
    ``tile × n`` float32 scores and int64 positions (``max_tile_bytes``, 512 MiB by default),
    so galleries of 10^6 embeddings fit in a few GB.
:class:`FaissSearch`
    ``index="flat"`` (``IndexFlatIP``/``IndexFlatL2``: exact up to float32 rounding), ``"hnsw"``
    (``IndexHNSWFlat``) or ``"ivf"`` (``IndexIVFFlat``), approximate; returned candidates are
    rescored in float64 like :class:`ExactSearch`. Report its :func:`recall_at_k` against exact
    search (the runner does). Needs the ``faiss`` extra (``pip install faiss-cpu``).

Writing a backend that searches on its own side
-----------------------------------------------
A cloud collection (Amazon Rekognition ``IndexFaces`` + ``SearchFacesByImage``, a vendor's
on-premise matcher) plugs in by subclassing :class:`SearchBackend` with ``inputs = "images"``:

- :meth:`SearchBackend.enrol` receives the gallery images' file paths and integer ids: index
  each (e.g. ``IndexFaces`` with ``ExternalImageId=str(id)``); an image the service cannot index
  raises nothing, it is simply absent (report it through :meth:`SearchBackend.describe`);
- :meth:`SearchBackend.search` receives probe image paths and ``k``: search each (e.g.
  ``SearchFacesByImage`` with ``MaxFaces=k`` and ``FaceMatchThreshold`` at the service's
  minimum) and return :class:`SearchHits`, mapping the service's ids back to the integer ids and
  its similarity to the score (Rekognition's 0–100 similarity as is; declare the same units in
  the backend's :class:`~audit.backends.base.BackendInfo` so that fixed thresholds such as 80
  convert). A service that returns fewer than ``k`` candidates (it drops those below its own
  floor) pads with score ``-inf`` and id ``-1``: FPIR and FNIR below that floor are then not
  measurable, and the report says the candidate lists were truncated.

Embedding-based backends keep ``inputs = "embeddings"``. :class:`CollectionSearch` adapts any
:class:`audit.backends.scoring.CollectionSearchBackend` (such as
:class:`audit.backends.rekognition.RekognitionBackend`) to this interface.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from .split import IdentificationError

__all__ = [
    "SearchHits",
    "SearchBackend",
    "ExactSearch",
    "CollectionSearch",
    "SEARCH_BACKENDS",
    "make_search_backend",
    "canonical_scores",
    "recall_at_k",
    "brute_force_search",
]

_U32 = 2.0 ** -24
_U64 = 2.0 ** -53


@dataclass(frozen=True, eq=False)
class SearchHits:
    """The candidate lists of a batch of searches.

    Attributes
    ----------
    scores : ndarray of float64, shape (n_probes, k)
        Similarity of each candidate, each row in descending order; ``-inf`` pads a row that has
        fewer than ``k`` candidates.
    ids : ndarray of int64, shape (n_probes, k)
        Gallery id of each candidate (as given to :meth:`SearchBackend.enrol`); ``-1`` pads.

    ``scores, ids = hits`` unpacks it.
    """

    scores: np.ndarray
    ids: np.ndarray

    def __post_init__(self) -> None:
        s = np.asarray(self.scores, dtype=np.float64)
        i = np.asarray(self.ids)
        if s.ndim != 2 or i.shape != s.shape:
            raise IdentificationError(f"SearchHits needs scores and ids of one shape (n_probes, k); got {s.shape} and {i.shape}")
        if i.size and not np.issubdtype(i.dtype, np.integer):
            raise IdentificationError(f"SearchHits.ids must be integers, got dtype {i.dtype}")
        if np.isnan(s).any():
            raise IdentificationError("SearchHits.scores contain NaN; pad missing candidates with -inf and id -1")
        object.__setattr__(self, "scores", s)
        object.__setattr__(self, "ids", i.astype(np.int64))

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.scores
        yield self.ids

    @property
    def k(self) -> int:
        return int(self.scores.shape[1])


class SearchBackend(ABC):
    """A 1:N search engine holding an enrolled gallery.

    Subclasses set ``name``, validate options in ``__init__`` and implement :meth:`enrol`,
    :meth:`search` and :attr:`size`. ``inputs`` says what :meth:`enrol` and :meth:`search`
    receive: ``"embeddings"`` (float arrays of shape (n, d)) or ``"images"`` (sequences of image
    file paths, for services that embed and search on their own side). ``exact`` says whether
    the top-k is exact (the runner reports recall@k of inexact backends against
    :class:`ExactSearch`).
    """

    name: ClassVar[str] = ""
    inputs: ClassVar[str] = "embeddings"
    exact: ClassVar[bool] = False

    @abstractmethod
    def enrol(self, gallery: Any, ids: Sequence[int] | np.ndarray) -> None:
        """Enrol the gallery, replacing any earlier one.

        Parameters
        ----------
        gallery : ndarray of shape (n, d), or sequence of n image paths (``inputs = "images"``)
        ids : array_like of int, shape (n,)
            Distinct non-negative ids, returned by :meth:`search`.
        """

    @abstractmethod
    def search(self, probes: Any, k: int) -> SearchHits:
        """The ``k`` best gallery entries of each probe, best first.

        Parameters
        ----------
        probes : ndarray of shape (m, d), or sequence of m image paths
        k : int
            ``1 <= k <=`` :attr:`size`.

        Returns
        -------
        SearchHits
            Shape (m, k); ties in score are ordered by enrolment position (exact backends).
        """

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of enrolled entries."""

    def describe(self) -> dict[str, Any]:
        """Name, exactness and parameters, for provenance."""
        return {"name": self.name, "exact": self.exact, "inputs": self.inputs}

    # ------------------------------------------------------------------ shared checks
    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise IdentificationError(f"k must be an integer >= 1, got {k!r}")
        if self.size == 0:
            raise IdentificationError("the gallery is empty: enrol() at least one entry before searching")
        if k > self.size:
            raise IdentificationError(
                f"k = {k} is larger than the gallery ({self.size} entries); a candidate list cannot be longer than the "
                f"gallery. Use k <= {self.size} or enrol more subjects."
            )
        return int(k)


# ------------------------------------------------------------------------------ embeddings
def _as_matrix(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise IdentificationError(f"{name} must be a 2-D array (n, d) of embeddings, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise IdentificationError(f"{name} must be numeric, got dtype {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise IdentificationError(f"{name} have dimension {a.shape[1]}, but the gallery's embeddings have {dim}")
    if not np.all(np.isfinite(a)):
        raise IdentificationError(f"{name} contain NaN or infinite values; the backend output is corrupt")
    return a


def _check_ids(ids: Any, n: int) -> np.ndarray:
    i = np.asarray(ids)
    if i.shape != (n,):
        raise IdentificationError(f"ids must have one entry per gallery entry ({n}), got shape {i.shape}")
    if n and not np.issubdtype(i.dtype, np.integer):
        raise IdentificationError(f"ids must be integers, got dtype {i.dtype}")
    i = i.astype(np.int64)
    if n and i.min() < 0:
        raise IdentificationError("ids must be >= 0 (-1 marks padding in search results)")
    u, c = np.unique(i, return_counts=True)
    if (c > 1).any():
        raise IdentificationError(f"gallery id {int(u[c > 1][0])} is given {int(c[c > 1][0])} times; each entry needs its own id")
    return i


def _prepare(x: np.ndarray, metric: str, *, chunk: int = 16384) -> np.ndarray:
    """A float32 copy of the rows, L2-normalised (in float64, chunk by chunk) for cosine."""
    if metric not in ("cosine", "euclidean"):
        raise IdentificationError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    x = np.asarray(x)
    out = np.empty(x.shape, np.float32)
    for a in range(0, x.shape[0], chunk):
        c = x[a:a + chunk].astype(np.float64)
        if metric == "cosine":
            c /= np.maximum(np.sqrt(np.einsum("ij,ij->i", c, c)), 1e-12)[:, None]
        out[a:a + chunk] = c
    return out


def _sq_norms(x32: np.ndarray, *, chunk: int = 16384) -> np.ndarray:
    """Squared row norms in float64 (chunk by chunk)."""
    out = np.empty(x32.shape[0], np.float64)
    for a in range(0, x32.shape[0], chunk):
        c = x32[a:a + chunk].astype(np.float64)
        out[a:a + chunk] = np.einsum("ij,ij->i", c, c)
    return out


def canonical_scores(probes32: np.ndarray, gallery32: np.ndarray, metric: str) -> np.ndarray:
    """The reference score of each (probe, gallery) pair given row by row: shape (m, n), float64.

    ``probes32[i]`` against ``gallery32[i]`` when both have m rows (pairs), computed in float64
    from the float32 (for cosine: already normalised) vectors with numpy's pairwise sum:
    cosine ``sum(p * g)``, euclidean ``-sqrt(sum((p - g)**2))``. Exact search orders candidates
    by this score, so its output does not depend on the tile size or the BLAS.
    """
    p = probes32.astype(np.float64)
    g = gallery32.astype(np.float64)
    if metric == "cosine":
        return (p * g).sum(axis=-1)
    return -np.sqrt(((p - g) ** 2).sum(axis=-1))


def brute_force_search(probes: np.ndarray, gallery: np.ndarray, k: int, *, metric: str) -> SearchHits:
    """Reference top-k: every canonical score, then a stable argsort. For tests; O(m·n·d) memory."""
    p = _prepare(_as_matrix(probes, "probes"), metric)
    g = _prepare(_as_matrix(gallery, "gallery embeddings"), metric)
    s = canonical_scores(p[:, None, :], g[None, :, :], metric)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return SearchHits(np.take_along_axis(s, order, axis=1), order)


class ExactSearch(SearchBackend):
    """Exact top-k by blocked float32 matrix products with float64 rescoring near the cut.

    Parameters
    ----------
    metric : {"cosine", "euclidean"}
        Cosine normalises rows; scores are cosine similarities. Euclidean scores are minus the
        distance.
    tile : int, optional
        Probes per block. Default: as many as fit in ``max_tile_bytes``.
    max_tile_bytes : int, default 256 MiB
        Budget for one block's scores (float32) and candidate mask (bool): 5 bytes per
        (probe, gallery entry).
    block : int, default 64
        Width of the column blocks whose maxima bound the k-th score from below (see Notes).

    Notes
    -----
    Each block computes screening scores ``P @ G.T`` in float32 (for euclidean the monotone
    ``2 p·g - |g|²``). Per row, the k-th largest of the maxima of column blocks of width
    ``block`` is a lower bound ``L`` of the row's k-th largest score (they are k distinct entries),
    found with ``np.partition`` over ``n / block`` values instead of ``n``; only the few entries
    ``>= L - delta`` are kept, their k-th largest found exactly, and every entry whose screening
    score is within ``delta`` of it is kept, where ``delta`` is (with a margin)
    twice the bound on the rounding error of a length-d dot product in float32 and float64
    (``(gamma_d^32 + gamma_d^64) max|p| max|g|`` for cosine, about 3e-5 for unit 512-D vectors):
    any entry of the exact top k is then among them. Those few entries are rescored canonically
    (:func:`canonical_scores`) and the best k kept by ``(score desc, position asc)``. So the
    result equals :func:`brute_force_search` exactly.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g, p = rng.normal(size=(50, 8)), rng.normal(size=(3, 8))
    >>> s = ExactSearch(metric="cosine", tile=2); s.enrol(g, np.arange(50))
    >>> hits = s.search(p, 5)
    >>> bool((hits.ids == brute_force_search(p, g, 5, metric="cosine").ids).all())
    True
    """

    name = "exact"
    exact = True

    def __init__(self, *, metric: str = "cosine", tile: int | None = None, max_tile_bytes: int = 256 * 2 ** 20,
                 block: int = 64) -> None:
        if metric not in ("cosine", "euclidean"):
            raise IdentificationError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
            raise IdentificationError(f"tile must be an integer >= 1, got {tile!r}")
        if isinstance(max_tile_bytes, bool) or not isinstance(max_tile_bytes, int) or max_tile_bytes < 1:
            raise IdentificationError(f"max_tile_bytes must be a positive integer, got {max_tile_bytes!r}")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise IdentificationError(f"block must be an integer >= 1, got {block!r}")
        self.block = block
        self.metric = metric
        self.tile = tile
        self.max_tile_bytes = max_tile_bytes
        self._g = np.empty((0, 0), np.float32)
        self._ids = np.empty(0, np.int64)
        self._sq = np.empty(0, np.float32)
        self._gmax = 0.0
        self.enrol_seconds = 0.0

    @property
    def size(self) -> int:
        return int(self._g.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held for the gallery."""
        return int(self._g.nbytes + self._ids.nbytes + self._sq.nbytes)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "metric": self.metric, "tile": self.tile, "max_tile_bytes": self.max_tile_bytes,
                "block": self.block}

    def enrol(self, gallery: Any, ids: Sequence[int] | np.ndarray) -> None:
        t0 = time.perf_counter()
        g = _as_matrix(gallery, "gallery embeddings")
        self._ids = _check_ids(ids, g.shape[0])
        self._g = _prepare(g, self.metric)
        sq = _sq_norms(self._g)
        self._sq = sq.astype(np.float32)
        self._gmax = float(np.sqrt(sq.max())) if sq.size else 0.0
        self.enrol_seconds = time.perf_counter() - t0

    def _tile_rows(self) -> int:
        if self.tile is not None:
            return self.tile
        return max(1, min(4096, self.max_tile_bytes // max(1, 5 * self.size)))

    def search(self, probes: Any, k: int) -> SearchHits:
        k = self._check_k(k)
        p = _prepare(_as_matrix(probes, "probes", self._g.shape[1]), self.metric)
        m, n = p.shape[0], self.size
        out_s = np.empty((m, k), np.float64)
        out_i = np.empty((m, k), np.int64)
        if m == 0:
            return SearchHits(out_s, out_i)
        d = p.shape[1]
        gam32 = d * _U32 / (1 - d * _U32)
        gam64 = d * _U64 / (1 - d * _U64)
        pmax = float(np.sqrt(_sq_norms(p).max()))
        gm = self._gmax
        if self.metric == "cosine":  # |screen - exact| <= gam32 |p||g|, |canonical - exact| <= gam64 |p||g|
            half = (gam32 + gam64) * pmax * gm
        else:  # screen 2 p.g - |g|^2 (float32) against |p|^2 - canonical squared distance (float64)
            half = 2 * gam32 * pmax * gm + 2 * _U32 * (gm * gm + 2 * pmax * gm) + 2 * gam64 * (pmax + gm) ** 2
        delta = 3.0 * half + 1e-30  # twice the bound, with a margin
        gT = self._g.T
        step = self._tile_rows()
        for a in range(0, m, step):
            b = min(m, a + step)
            pt = p[a:b]
            s = pt @ gT                                     # (t, n) float32
            if self.metric == "euclidean":
                s *= 2.0
                s -= self._sq[None, :]
            t = b - a
            B = self.block
            nb = n // B
            if B > 1 and nb + (n - nb * B) > k:  # a lower bound of the k-th score from block maxima
                pool = s[:, : nb * B].reshape(t, nb, B).max(axis=2)
                if n > nb * B:
                    pool = np.concatenate([pool, s[:, nb * B:]], axis=1)
                low = np.partition(pool, pool.shape[1] - k, axis=1)[:, pool.shape[1] - k]
            else:
                low = np.partition(s, n - k, axis=1)[:, n - k]
            rows_i, cols_i = np.nonzero(s >= (low - delta)[:, None])
            bounds = np.searchsorted(rows_i, np.arange(t + 1))
            for r in range(t):
                cand = cols_i[bounds[r]:bounds[r + 1]]
                if cand.size > k:
                    vals = s[r, cand]
                    kth = np.partition(vals, cand.size - k)[cand.size - k]
                    cand = cand[vals >= kth - delta]
                sc = canonical_scores(pt[r][None, :], self._g[cand], self.metric)
                order = np.lexsort((cand, -sc))[:k]
                out_s[a + r] = sc[order]
                out_i[a + r] = self._ids[cand[order]]
        return SearchHits(out_s, out_i)


class CollectionSearch(SearchBackend):
    """A server-side collection search (:class:`audit.backends.scoring.CollectionSearchBackend`,
    e.g. Amazon Rekognition ``IndexFaces`` + ``SearchFacesByImage``) as a :class:`SearchBackend`.

    ``inputs = "images"``: :meth:`enrol` indexes the gallery image paths into a new collection and
    :meth:`search` searches it with probe image paths, mapping the service's external image ids
    back to gallery ids; scores are the service's similarity (Rekognition: 0-100). Gallery images
    the service could not index are absent from every candidate list (:meth:`describe` counts
    them); a probe the service could not search gets an empty list. Delete the collection with
    ``service.cleanup()`` (or use the service as a context manager).

    Parameters
    ----------
    service : CollectionSearchBackend
    """

    name = "collection"
    inputs = "images"
    exact = True  # the service's own answer is the system under audit, not an approximation of one

    def __init__(self, service: Any) -> None:
        from ..backends.scoring import CollectionSearchBackend

        if not isinstance(service, CollectionSearchBackend):
            raise IdentificationError(f"CollectionSearch needs a CollectionSearchBackend, got {type(service).__name__}")
        self.service = service
        self.collection_id: str | None = None
        self._by_external: dict[str, int] = {}
        self._n = 0
        self.not_indexed: list[str] = []
        self.not_searched = 0
        self.enrol_seconds = 0.0

    @property
    def size(self) -> int:
        return self._n

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "service": getattr(self.service, "name", type(self.service).__name__),
                "collection_id": self.collection_id, "gallery_not_indexed": len(self.not_indexed),
                "probes_not_searched": self.not_searched}

    def enrol(self, gallery: Any, ids: Sequence[int] | np.ndarray) -> None:
        t0 = time.perf_counter()
        paths = [str(x) for x in gallery]
        ids_ = _check_ids(ids, len(paths))
        by_path = dict(zip(paths, ids_.tolist()))
        index = self.service.index_faces(paths)
        self.collection_id = index.collection_id
        self._by_external = {ext: by_path[p] for ext, p in index.paths_by_external_id().items() if p in by_path}
        self.not_indexed = [r.path for r in index.results if r.status.value != "ok" and r.path in by_path]
        self._n = len(paths)
        self.enrol_seconds = time.perf_counter() - t0

    def search(self, probes: Any, k: int) -> SearchHits:
        k = self._check_k(k)
        paths = [str(x) for x in probes]
        out_s = np.full((len(paths), k), -np.inf)
        out_i = np.full((len(paths), k), -1, np.int64)
        self.not_searched = 0
        for res in self.service.iter_search(paths, collection_id=self.collection_id, max_faces=k):
            if not res.ok:
                self.not_searched += 1
                continue
            got = [(float(m.similarity), self._by_external[m.external_image_id]) for m in res.matches
                   if m.external_image_id in self._by_external]
            got.sort(key=lambda x: (-x[0], x[1]))
            for j, (sc, i) in enumerate(got[:k]):
                out_s[res.index, j], out_i[res.index, j] = sc, i
        return SearchHits(out_s, out_i)


def _faiss_search():
    from .search_faiss import FaissSearch  # noqa: PLC0415  (the optional faiss backends live apart)

    return FaissSearch


#: Search backends by name (``search = "..."`` in an identification config).
SEARCH_BACKENDS = {
    "exact": lambda metric, **o: ExactSearch(metric=metric, **o),
    "faiss-flat": lambda metric, **o: _faiss_search()(index="flat", metric=metric, **o),
    "faiss-hnsw": lambda metric, **o: _faiss_search()(index="hnsw", metric=metric, **o),
    "faiss-ivf": lambda metric, **o: _faiss_search()(index="ivf", metric=metric, **o),
}


def make_search_backend(name: str, *, metric: str, **options: Any) -> SearchBackend:
    """A search backend by name: ``"exact"``, ``"faiss-flat"``, ``"faiss-hnsw"``, ``"faiss-ivf"``.

    Raises
    ------
    IdentificationError
        An unknown name or a bad option.
    MissingDependencyError
        A faiss backend without faiss installed (names the ``faiss`` extra).
    """
    if name not in SEARCH_BACKENDS:
        raise IdentificationError(f"unknown search backend {name!r}; known: {sorted(SEARCH_BACKENDS)}")
    try:
        return SEARCH_BACKENDS[name](metric, **options)
    except TypeError as exc:
        raise IdentificationError(f"search backend {name!r}: bad option ({exc})") from exc


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of each probe's exact top-k that an approximate search also returned.

    ``recall@k = mean_i |A_i ∩ E_i| / |E_i|`` over probes, ignoring ``-1`` padding in ``E``.

    Examples
    --------
    >>> recall_at_k(np.array([[1, 2], [3, 9]]), np.array([[2, 1], [3, 4]]))
    0.75
    """
    a = np.asarray(approx_ids)
    e = np.asarray(exact_ids)
    if a.shape != e.shape or a.ndim != 2:
        raise IdentificationError(f"approx_ids and exact_ids must have one shape (n, k); got {a.shape} and {e.shape}")
    valid = e >= 0
    hit = (e[:, :, None] == a[:, None, :]).any(axis=2) & valid
    per = hit.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    return float(per.mean()) if per.size else math.nan
