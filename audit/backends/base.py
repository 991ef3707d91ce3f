"""The abstract recognition backend and the dataclasses it returns.

A backend is the only code that touches pixels or models. It turns one RGB image into one
:class:`FaceResult`: an embedding and the status ``ok``, or a failure status with a reason.
It knows nothing of groups, pairs or metrics.

Scores: a backend declares its ``metric`` once in :class:`BackendInfo`. For ``"cosine"`` the
score of a pair is the cosine similarity (higher = more alike); for ``"euclidean"`` the native
score is the Euclidean distance, and the comparison layer negates it once so that everywhere
downstream a pair matches when ``similarity >= threshold``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Sequence

import numpy as np

from ..errors import BackendError, UnreadableImageError
from ..images import read_rgb

__all__ = [
    "FaceStatus",
    "FaceResult",
    "BackendInfo",
    "Backend",
    "MULTIPLE_FACE_POLICIES",
    "choose_face",
    "invalid_image",
]

MULTIPLE_FACE_POLICIES = ("largest", "reject")
METRICS = ("cosine", "euclidean", "similarity", "distance")


class FaceStatus(str, Enum):
    """What happened to one image.

    ``ok``: one face was embedded (with ``multiple_faces = "largest"`` an image with several
    faces is ``ok`` and ``n_faces`` says how many were seen). ``no_face``: the detector found none.
    ``multiple_faces``: several were found and the policy is ``"reject"``. ``unreadable``: the
    bytes could not be decoded. ``error``: the backend failed on this image for another reason.
    Every status but ``ok`` counts as a failure to acquire (FTA).
    """

    OK = "ok"
    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    UNREADABLE = "unreadable"
    ERROR = "error"


@dataclass(frozen=True)
class FaceResult:
    """The outcome of embedding one image.

    Attributes
    ----------
    status : FaceStatus
    embedding : numpy.ndarray of shape (d,), float32, or None
        Present exactly when ``status`` is ``ok``.
    n_faces : int
        Faces the detector found (0 when it never ran).
    detail : str
        A human-readable reason for a failure; never contains pixel data.
    """

    status: FaceStatus
    embedding: np.ndarray | None = None
    n_faces: int = 0
    detail: str = ""

    def __post_init__(self) -> None:
        status = FaceStatus(self.status)
        object.__setattr__(self, "status", status)
        if status is FaceStatus.OK:
            if self.embedding is None:
                raise BackendError("a FaceResult with status 'ok' needs an embedding")
            emb = np.asarray(self.embedding, dtype=np.float32).reshape(-1)
            if not np.all(np.isfinite(emb)):
                raise BackendError("the backend returned an embedding with NaN or infinite values")
            object.__setattr__(self, "embedding", emb)
        elif self.embedding is not None:
            raise BackendError(f"a FaceResult with status {status.value!r} must not carry an embedding")

    @property
    def ok(self) -> bool:
        return self.status is FaceStatus.OK


@dataclass(frozen=True)
class BackendInfo:
    """Identity of a loaded backend: what the embedding cache and the provenance record.

    Attributes
    ----------
    backend : str
        Registry name (``"dlib"``, ``"deepface"``).
    model : str
        Model name within the backend (``"dlib_resnet_v1"``, ``"Dlib"``, ``"ArcFace"``).
    version : str
        Versions of the code that produce embeddings (face-audit's adapter and the library).
    weights_sha256 : str
        sha256 of the weight file(s); several files are hashed in a fixed order.
    dim : int
        Embedding length.
    metric : {"cosine", "euclidean", "similarity", "distance"}
        How two embeddings are compared; ``"euclidean"`` scores are distances. Sources that hand
        over scores rather than embeddings (a vendor's scores file) declare ``"similarity"``
        (higher = more alike) or ``"distance"`` (lower = more alike).
    default_threshold : float or None
        The library's own decision threshold in native units (a distance for ``"euclidean"``).
    default_threshold_source : str
        Where that default comes from.
    options : dict
        Options that change embeddings (detector, alignment, face policy, ...).
    """

    backend: str
    model: str
    version: str
    weights_sha256: str
    dim: int
    metric: Literal["cosine", "euclidean", "similarity", "distance"]
    default_threshold: float | None = None
    default_threshold_source: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise BackendError(f"BackendInfo.metric must be one of {METRICS}, got {self.metric!r}")
        object.__setattr__(self, "options", dict(self.options))

    @property
    def fingerprint(self) -> str:
        """sha256 over everything that determines an embedding: the cache key's backend half."""
        payload = json.dumps(
            {
                "backend": self.backend,
                "model": self.model,
                "version": self.version,
                "weights_sha256": self.weights_sha256,
                "options": self.options,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def higher_is_similar(self) -> bool:
        return self.metric in ("cosine", "similarity")

    def to_similarity(self, native: float) -> float:
        """Convert a native score or threshold (a distance for euclidean) to similarity units."""
        return float(native) if self.higher_is_similar else -float(native)

    def to_native(self, similarity: float) -> float:
        """Inverse of :meth:`to_similarity`."""
        return float(similarity) if self.higher_is_similar else -float(similarity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
            "metric": self.metric,
            "default_threshold": self.default_threshold,
            "default_threshold_source": self.default_threshold_source,
            "options": dict(self.options),
            "fingerprint": self.fingerprint,
        }


def invalid_image(image: object) -> FaceResult | None:
    """The ``error`` result for an input that is not a non-empty RGB ``uint8`` array of shape
    (H, W, 3), or None when the image is fine. Backends call it first in :meth:`Backend.embed`."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        found = (
            f"an array of shape {image.shape} and dtype {image.dtype}"
            if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        return FaceResult(
            FaceStatus.ERROR,
            detail=f"expected an RGB uint8 array of shape (H, W, 3), got {found}; read images with audit.images.read_rgb",
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        return FaceResult(FaceStatus.ERROR, detail=f"the image is empty (shape {image.shape})")
    return None


def choose_face(areas: Sequence[float], policy: str) -> int | None:
    """Pick which detected face to embed.

    Parameters
    ----------
    areas : sequence of float, length n_faces
        Area of each detected face box.
    policy : {"largest", "reject"}
        ``"largest"`` keeps the face with the largest box (ties: the first);
        ``"reject"`` refuses images with more than one face.

    Returns
    -------
    int or None
        Index of the face to embed, or None when the image must be given a failure status
        (no face, or several under ``"reject"``).
    """
    if policy not in MULTIPLE_FACE_POLICIES:
        raise BackendError(
            f"multiple_faces policy must be one of {MULTIPLE_FACE_POLICIES}, got {policy!r}"
        )
    n = len(areas)
    if n == 0:
        return None
    if n > 1 and policy == "reject":
        return None
    return int(np.argmax(np.asarray(areas, dtype=float)))


class Backend(ABC):
    """A face recognition system under audit.

    Subclasses set ``name`` (the registry key), accept their options as keyword arguments in
    ``__init__`` (validate them there, load nothing), load weights in :meth:`load`, and
    implement :meth:`embed`. Instances must be picklable before :meth:`load` so that worker
    processes can build their own copy.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def load(self) -> None:
        """Load models and weights. Idempotent. Raises MissingDependencyError/MissingWeightsError."""

    @abstractmethod
    def info(self) -> BackendInfo:
        """Describe the loaded backend (calls :meth:`load` if needed)."""

    @abstractmethod
    def embed(self, image: np.ndarray) -> FaceResult:
        """Embed the face in one image.

        Parameters
        ----------
        image : numpy.ndarray of shape (H, W, 3), uint8, RGB

        Returns
        -------
        FaceResult
            Never raises for a problem with this image; returns a failure status instead.
        """

    def embed_paths(self, paths: Sequence[str | Path]) -> list[FaceResult]:
        """Embed several image files, in order. This default embeds them one by one; backends with a
        batched recognition step (:mod:`audit.backends.onnx_batch`) run it once for the batch."""
        return [self.embed_path(p) for p in paths]

    def embed_path(self, path: str | Path) -> FaceResult:
        """Read an image file and embed it; unreadable files give status ``unreadable``."""
        try:
            image = read_rgb(path)
        except UnreadableImageError as exc:
            return FaceResult(FaceStatus.UNREADABLE, detail=str(exc))
        try:
            return self.embed(image)
        except (MemoryError, KeyboardInterrupt):
            raise
        except BackendError:
            raise
        except Exception as exc:  # a per-image failure must not stop the run
            return FaceResult(FaceStatus.ERROR, detail=f"{type(exc).__name__}: {exc}")
