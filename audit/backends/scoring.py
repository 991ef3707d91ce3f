"""Backends that score pairs (or search galleries) instead of returning embeddings.

Cloud services such as Amazon Rekognition never hand out a face template: they answer "how
similar are these two faces?" (1:1, :class:`PairScoringBackend`) or "which faces of this
collection look like this one?" (1:N, :class:`CollectionSearchBackend`). The audit then works on
those scores directly: a mated or impostor pair is scored by one call, and a pair matches when
``similarity >= threshold`` exactly as with embeddings.

Failures are results here too. Every pair gets a :class:`PairResult`; an image the service
rejects (no face, undecodable, too large) becomes that pair's status, never an exception. Only
problems that would fail every later call as well (no credentials, no permission, throttling that
outlasts the retries) stop a run, with :class:`PartialRunError`, which keeps every result
obtained before it so that a rerun sends only what is left.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Sequence

from ..errors import BackendError
from .base import FaceStatus

__all__ = [
    "PairResult",
    "ScoringInfo",
    "PartialRunError",
    "PairScoringBackend",
    "IndexResult",
    "GalleryIndex",
    "SearchMatch",
    "SearchResult",
    "CollectionSearchBackend",
]

PathLike = str | Path


@dataclass(frozen=True)
class PairResult:
    """The outcome of scoring one pair of images.

    Attributes
    ----------
    index : int
        Position of the pair in the sequence given to ``compare`` (resumed runs keep the caller's
        own numbering by passing the remaining pairs with ``start=``).
    path_a, path_b : str
        The two images (for Rekognition: source, then target).
    status : FaceStatus
        ``ok``: the service compared the faces. ``no_face``: it found no face in one of the
        images (``detail`` says which). ``unreadable``: an image could not be decoded.
        ``error``: the service refused the image for another reason (too large, ...).
    similarity : float or None
        The service's similarity (Rekognition: 0-100) of the best matching face. Present for
        ``ok``. For ``no_face`` it is 0.0: the service compared and returned no matching face,
        which is the decision its user would see ("no match"); analyses that score failures to
        acquire as non-matches use it, analyses of FTA use ``status``. None when no comparison
        was made (``unreadable``, ``error``).
    detail : str
        Why a pair is not ``ok``; notes on an ``ok`` one (several faces in the target, ...).
    n_faces_b : int
        Faces the service saw in image b (0 when unknown).
    """

    index: int
    path_a: str
    path_b: str
    status: FaceStatus
    similarity: float | None = None
    detail: str = ""
    n_faces_b: int = 0

    def __post_init__(self) -> None:
        status = FaceStatus(self.status)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "path_a", str(self.path_a))
        object.__setattr__(self, "path_b", str(self.path_b))
        if self.similarity is not None:
            value = float(self.similarity)
            if not math.isfinite(value):
                raise BackendError(f"a PairResult similarity must be finite, got {self.similarity!r}")
            object.__setattr__(self, "similarity", value)
        if status is FaceStatus.OK and self.similarity is None:
            raise BackendError("a PairResult with status 'ok' needs a similarity")
        if status is FaceStatus.NO_FACE and self.similarity not in (None, 0.0):
            raise BackendError(f"a PairResult with status 'no_face' has similarity 0.0 or None, got {self.similarity}")
        if status in (FaceStatus.UNREADABLE, FaceStatus.ERROR) and self.similarity is not None:
            raise BackendError(f"a PairResult with status {status.value!r} must not carry a similarity")

    @property
    def ok(self) -> bool:
        return self.status is FaceStatus.OK


@dataclass(frozen=True)
class ScoringInfo:
    """Identity of a pair-scoring or search service, for provenance and caches.

    Attributes
    ----------
    backend : str
        Name (``"rekognition"``).
    model : str
        The service and operation (the model behind a cloud API is usually not versioned per call).
    version : str
        Adapter, client library versions and anything the service reports about its model.
    score_min, score_max : float
        The range of ``similarity`` (Rekognition: 0 and 100); higher means more alike.
    default_threshold : float or None
        The service's own default decision threshold, in similarity units.
    default_threshold_source : str
        Where that default is documented.
    options : dict
        Settings that change scores (region, quality filter, ...).
    """

    backend: str
    model: str
    version: str
    score_min: float
    score_max: float
    default_threshold: float | None = None
    default_threshold_source: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.score_min < self.score_max:
            raise BackendError(f"ScoringInfo needs score_min < score_max, got {self.score_min} and {self.score_max}")
        object.__setattr__(self, "options", dict(self.options))

    @property
    def fingerprint(self) -> str:
        """sha256 over everything that determines a score: the cache key's backend half."""
        payload = json.dumps(
            {"backend": self.backend, "model": self.model, "version": self.version, "options": self.options},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "version": self.version,
            "score_min": self.score_min,
            "score_max": self.score_max,
            "default_threshold": self.default_threshold,
            "default_threshold_source": self.default_threshold_source,
            "options": dict(self.options),
            "fingerprint": self.fingerprint,
        }


class PartialRunError(BackendError):
    """A run stopped by a problem that is not about one image; what was done is kept.

    Attributes
    ----------
    completed : list
        Results obtained before the stop, in order (:class:`PairResult`, :class:`IndexResult`,
        :class:`SearchResult`, ...). Store them: they were paid for.
    remaining : list
        The inputs not done, the failing one first; pass them to the same method to resume.
    collection_id : str or None
        The collection being filled or searched, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        completed: Sequence[Any] = (),
        remaining: Sequence[Any] = (),
        collection_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.completed = list(completed)
        self.remaining = list(remaining)
        self.collection_id = collection_id


class PairScoringBackend(ABC):
    """A face recognition system that scores pairs of images (1:1 verification).

    Subclasses set ``name``, validate options in ``__init__`` (sending and loading nothing),
    connect in :meth:`load`, and implement :meth:`iter_compare`. Instances must be picklable
    before and after :meth:`load` (connections are dropped and made again).

    Resuming: :meth:`iter_compare` yields each :class:`PairResult` as soon as it is known, so a
    caller that stores every result as it arrives loses nothing when a run stops; :meth:`compare`
    returns them all, and when the run stops it raises :class:`PartialRunError` whose
    ``completed`` holds the results so far and ``remaining`` the pairs left. Either way, rerun
    with the pairs left (``start=`` keeps the indices).
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def load(self) -> None:
        """Connect to the service (or load the model). Idempotent; sends no request."""

    @abstractmethod
    def info(self) -> ScoringInfo:
        """Describe the service and the settings that change its scores."""

    @abstractmethod
    def iter_compare(self, pairs: Iterable[tuple[PathLike, PathLike]], *, start: int = 0) -> Iterator[PairResult]:
        """Score each pair in order, yielding one :class:`PairResult` per pair.

        Parameters
        ----------
        pairs : iterable of (path_a, path_b)
        start : int, default 0
            The ``index`` of the first pair (to keep a resumed run's numbering).

        Raises
        ------
        PartialRunError
            The run cannot go on (credentials, permissions, retries exhausted); the results
            yielded so far are in ``completed`` too.
        """

    def compare(self, pairs: Sequence[tuple[PathLike, PathLike]], *, start: int = 0) -> list[PairResult]:
        """Score every pair; a list of :class:`PairResult` in the order of ``pairs``.

        Raises
        ------
        PartialRunError
            As :meth:`iter_compare`; ``completed`` holds every result of this call so far.
        """
        pairs = list(pairs)
        done: list[PairResult] = []
        try:
            for result in self.iter_compare(pairs, start=start):
                done.append(result)
        except PartialRunError as exc:
            exc.completed = list(done)
            exc.remaining = pairs[len(done):]
            raise
        return done


@dataclass(frozen=True)
class IndexResult:
    """The outcome of adding one gallery image to a collection.

    Attributes
    ----------
    path : str
    status : FaceStatus
        ``ok`` when a face was indexed (the largest one), ``no_face`` when none was, ``unreadable``
        or ``error`` when the image was refused.
    external_image_id : str
        The id the image was indexed under (derived from its path; see the backend).
    face_id : str or None
        The service's id of the indexed face (``ok`` only).
    n_faces : int
        Faces seen in the image (indexed plus not indexed).
    detail : str
    """

    path: str
    status: FaceStatus
    external_image_id: str
    face_id: str | None = None
    n_faces: int = 0
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", FaceStatus(self.status))
        object.__setattr__(self, "path", str(self.path))
        if (self.status is FaceStatus.OK) != (self.face_id is not None):
            raise BackendError("an IndexResult has a face_id exactly when its status is 'ok'")

    @property
    def ok(self) -> bool:
        return self.status is FaceStatus.OK


@dataclass(frozen=True)
class GalleryIndex:
    """A filled collection: its id, one :class:`IndexResult` per gallery image, the model version."""

    collection_id: str
    results: tuple[IndexResult, ...]
    face_model_version: str = ""

    def paths_by_external_id(self) -> dict[str, str]:
        """``external_image_id -> path`` of the indexed images, to map search matches back."""
        return {r.external_image_id: r.path for r in self.results if r.status is FaceStatus.OK}


@dataclass(frozen=True)
class SearchMatch:
    """One gallery face returned for a probe."""

    external_image_id: str
    face_id: str
    similarity: float
    gallery_path: str | None = None  # known when this backend instance indexed the image


@dataclass(frozen=True)
class SearchResult:
    """The outcome of searching a collection with one probe image.

    Attributes
    ----------
    index : int
        Position of the probe in the sequence searched.
    probe_path : str
    status : FaceStatus
        ``ok`` (``matches`` may still be empty when the collection is), ``no_face`` (no face in the
        probe), ``unreadable`` or ``error``.
    matches : tuple of SearchMatch
        Most similar first, at most ``max_faces``.
    detail : str
    """

    index: int
    probe_path: str
    status: FaceStatus
    matches: tuple[SearchMatch, ...] = ()
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", FaceStatus(self.status))
        object.__setattr__(self, "probe_path", str(self.probe_path))
        object.__setattr__(self, "matches", tuple(self.matches))
        if self.status is not FaceStatus.OK and self.matches:
            raise BackendError("a SearchResult that is not 'ok' must not carry matches")

    @property
    def ok(self) -> bool:
        return self.status is FaceStatus.OK


class CollectionSearchBackend(ABC):
    """A face recognition system that searches a server-side gallery (1:N identification).

    The backend creates the collections it fills and deletes them in :meth:`cleanup` (also run
    on leaving a ``with`` block). Storage is usually billed per face and month, so clean up.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def create_collection(self) -> str:
        """Create an empty collection, remember it for :meth:`cleanup`, and return its id."""

    @abstractmethod
    def index_faces(self, gallery: Sequence[PathLike], *, collection_id: str | None = None) -> GalleryIndex:
        """Add the largest face of each gallery image to a collection (a new one by default).

        Raises
        ------
        PartialRunError
            The run cannot go on; ``completed`` holds the :class:`IndexResult` so far and
            ``collection_id`` the collection, so that indexing resumes with ``remaining``.
        """

    @abstractmethod
    def iter_search(
        self, probes: Iterable[PathLike], *, collection_id: str, max_faces: int | None = None, start: int = 0
    ) -> Iterator[SearchResult]:
        """Search the collection with each probe in order, yielding one :class:`SearchResult` each."""

    def search(self, probe: PathLike, *, collection_id: str, max_faces: int | None = None) -> SearchResult:
        """Search the collection with one probe image."""
        return next(iter(self.iter_search([probe], collection_id=collection_id, max_faces=max_faces)))

    @abstractmethod
    def delete_collection(self, collection_id: str, *, force: bool = False) -> None:
        """Delete a collection this instance created (``force=True``: any collection)."""

    @abstractmethod
    def cleanup(self) -> list[str]:
        """Delete every collection this instance created; return their ids."""

    def __enter__(self) -> CollectionSearchBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
