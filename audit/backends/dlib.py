"""dlib's face recognition pipeline: HOG detector, 5-point landmarks, aligned chip, ResNet descriptor.

This is the model behind the ``face_recognition`` package: a 128-D descriptor trained so that two
photos of the same person lie within Euclidean distance 0.6 of each other. Weights come from the
``face_recognition_models`` package (or a folder given as ``weights_dir``); nothing is downloaded.

Install with ``pip install 'face-audit[dlib]'``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError, MissingDependencyError, MissingWeightsError
from ..images import sha256_file_cached
from .base import MULTIPLE_FACE_POLICIES, Backend, BackendInfo, FaceResult, FaceStatus, choose_face, invalid_image

__all__ = ["DlibBackend", "ADAPTER_VERSION", "PREDICTOR_FILE", "DESCRIPTOR_FILE"]

#: Bump when a change here changes the embeddings this adapter produces.
ADAPTER_VERSION = "dlib-adapter-1"

PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_WEIGHT_URLS = {
    PREDICTOR_FILE: "https://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2",
    DESCRIPTOR_FILE: "https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",
}

CHIP_SIZE = 150  # the descriptor network's input size
CHIP_PADDING = 0.25  # dlib's default, the padding the network was trained with
DEFAULT_THRESHOLD = 0.6
DEFAULT_THRESHOLD_SOURCE = (
    "dlib's documented same-person distance threshold (dlib.net face_recognition.py example)"
)
# HOG scans an 80x80 window: a smaller detection image cannot hold a face at upsample=0
_MIN_DETECT_SIDE = 80

def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BackendError(f"dlib backend option {name} must be an integer, got {value!r}")
    if value < minimum:
        raise BackendError(f"dlib backend option {name} must be >= {minimum}, got {value}")
    return int(value)


def _models_folder() -> Path:
    """The ``models/`` folder of the face_recognition_models package, found without importing it:
    the package imports ``pkg_resources`` (setuptools), which Python 3.12+ no longer provides."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "models"
    try:
        import face_recognition_models
    except ModuleNotFoundError as exc:
        if exc.name == "pkg_resources":
            raise MissingDependencyError(
                "face_recognition_models is installed but cannot be imported: it needs pkg_resources, which comes with "
                "setuptools and is not part of Python 3.12+. Install it with: pip install setuptools "
                "(or reinstall with pip install 'face-audit[dlib]', which declares it)."
            ) from exc
        raise MissingDependencyError(
            "the dlib backend needs the weights of the face_recognition_models package, "
            "which is not installed. Install it with: pip install 'face-audit[dlib]' "
            "(or pass weights_dir= a folder holding the two .dat files)."
        ) from exc
    return Path(face_recognition_models.face_recognition_model_location()).parent


class DlibBackend(Backend):
    """dlib's HOG detector + 5-point alignment + 128-D ResNet descriptor (Euclidean distances).

    Parameters
    ----------
    upsample : int, default 1
        How many times the detector upsamples the (possibly downscaled) image; each doubles the
        side, finding smaller faces at about 4x the cost.
    max_detect_side : int or None, default 800
        Detection runs on a copy downscaled so that its longer side is at most this many pixels
        (HOG cost grows with the pixel count); landmarks and the aligned chip are then taken from
        the full-resolution image. None detects on the full image. At least 80.
    multiple_faces : {"largest", "reject"}, default "largest"
        What to do with several detected faces (see :func:`~audit.backends.base.choose_face`).
    jitter : int, default 0
        dlib's ``num_jitters``: average the descriptor over this many randomly jittered copies
        of the chip. dlib treats 0 and 1 alike (no jittering). dlib keeps its jitter's random
        generator inside the model, so each jittered image gets a freshly loaded model (about
        0.1 s): the result then depends on the image alone, not on what was embedded before.
    weights_dir : str or Path, optional
        A folder holding ``shape_predictor_5_face_landmarks.dat`` and
        ``dlib_face_recognition_resnet_model_v1.dat``. By default they come from the
        ``face_recognition_models`` package.

    Examples
    --------
    >>> from audit.backends.dlib import DlibBackend
    >>> backend = DlibBackend(upsample=1)
    >>> result = backend.embed_path("face.jpg")           # doctest: +SKIP
    >>> result.status.value, result.embedding.shape       # doctest: +SKIP
    ('ok', (128,))
    """

    name = "dlib"

    def __init__(
        self,
        *,
        upsample: int = 1,
        max_detect_side: int | None = 800,
        multiple_faces: str = "largest",
        jitter: int = 0,
        weights_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.upsample = _check_int("upsample", upsample, 0)
        self.max_detect_side = (
            None if max_detect_side is None else _check_int("max_detect_side", max_detect_side, _MIN_DETECT_SIDE)
        )
        if multiple_faces not in MULTIPLE_FACE_POLICIES:
            raise BackendError(
                f"dlib backend option multiple_faces must be one of {MULTIPLE_FACE_POLICIES}, "
                f"got {multiple_faces!r}"
            )
        self.multiple_faces = multiple_faces
        self.jitter = _check_int("jitter", jitter, 0)
        if weights_dir is not None and not isinstance(weights_dir, (str, os.PathLike)):
            raise BackendError(f"dlib backend option weights_dir must be a path, got {weights_dir!r}")
        self.weights_dir = None if weights_dir is None else str(weights_dir)
        self._reset_loaded()

    # ------------------------------------------------------------------ state and pickling

    def _reset_loaded(self) -> None:
        self._dlib: Any = None
        self._detector: Any = None
        self._predictor: Any = None
        self._encoder: Any = None
        self._descriptor_path: str | None = None
        self._info: BackendInfo | None = None

    def __getstate__(self) -> dict[str, Any]:
        # dlib's model objects do not pickle; a worker reloads them lazily (weights hashes are cached)
        state = self.__dict__.copy()
        for key in ("_dlib", "_detector", "_predictor", "_encoder", "_info"):
            state[key] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"DlibBackend(upsample={self.upsample}, max_detect_side={self.max_detect_side}, "
            f"multiple_faces={self.multiple_faces!r}, jitter={self.jitter}, weights_dir={self.weights_dir!r})"
        )

    # ------------------------------------------------------------------ loading

    def _weight_paths(self) -> tuple[Path, Path]:
        if self.weights_dir is not None:
            folder = Path(self.weights_dir).expanduser()
            source = f"the folder given as weights_dir ({folder})"
        else:
            folder = _models_folder()
            source = f"the face_recognition_models package ({folder})"
        paths = (folder / PREDICTOR_FILE, folder / DESCRIPTOR_FILE)
        missing = [p for p in paths if not p.is_file()]
        if missing:
            lines = "; ".join(
                f"{p.name} (download {_WEIGHT_URLS[p.name]} and decompress it with bunzip2)" for p in missing
            )
            raise MissingWeightsError(
                f"the dlib backend expects its weight files in {source}, but {folder} lacks: {lines}. "
                f"Put them in {folder}, or reinstall face_recognition_models."
            )
        return paths

    def load(self) -> None:
        """Import dlib, load the detector, landmark model and descriptor, and hash the weights."""
        if self._encoder is not None:
            return
        try:
            import dlib
        except ImportError as exc:
            raise MissingDependencyError(
                f"the dlib backend needs the dlib package ({exc}). "
                "Install it with: pip install 'face-audit[dlib]'"
            ) from exc
        predictor_path, descriptor_path = self._weight_paths()
        try:
            detector = dlib.get_frontal_face_detector()
            predictor = dlib.shape_predictor(str(predictor_path))
            encoder = dlib.face_recognition_model_v1(str(descriptor_path))
        except RuntimeError as exc:
            raise BackendError(
                f"dlib could not read its weight files {predictor_path} and {descriptor_path} ({exc}); "
                "they may be truncated or compressed (.bz2 files must be decompressed)."
            ) from exc
        combined = hashlib.sha256()
        for path in (predictor_path, descriptor_path):  # fixed order
            combined.update(sha256_file_cached(path).encode())
        info = BackendInfo(
            backend=self.name,
            model="dlib_resnet_v1",
            version=f"{ADAPTER_VERSION}; dlib {dlib.__version__}",
            weights_sha256=combined.hexdigest(),
            dim=128,
            metric="euclidean",
            default_threshold=DEFAULT_THRESHOLD,
            default_threshold_source=DEFAULT_THRESHOLD_SOURCE,
            options=self._embedding_options(),
        )
        self._dlib, self._detector, self._predictor, self._encoder = dlib, detector, predictor, encoder
        self._descriptor_path = str(descriptor_path)
        self._info = info

    def _embedding_options(self) -> dict[str, Any]:
        # options that change embeddings; weights_dir does not (the weights hash covers it)
        return {
            "detector": "hog",
            "upsample": self.upsample,
            "max_detect_side": self.max_detect_side,
            "multiple_faces": self.multiple_faces,
            "jitter": self.jitter if self.jitter > 1 else 0,
            "landmarks": "5-point",
            "chip_size": CHIP_SIZE,
            "chip_padding": CHIP_PADDING,
        }

    def info(self) -> BackendInfo:
        self.load()
        if self._info is None:  # pragma: no cover - load() sets it or raises
            raise BackendError("the dlib backend failed to load without raising an error")
        return self._info

    # ------------------------------------------------------------------ embedding

    def _detect(self, image: np.ndarray) -> list[Any]:
        """Face rectangles in full-resolution coordinates."""
        dlib = self._dlib
        h, w = image.shape[:2]
        longest = max(h, w)
        if self.max_detect_side is None or longest <= self.max_detect_side:
            return list(self._detector(image, self.upsample))
        from PIL import Image

        scale = self.max_detect_side / longest
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))
        sx, sy = w / size[0], h / size[1]
        return [
            dlib.rectangle(
                int(round(r.left() * sx)),
                int(round(r.top() * sy)),
                int(round((r.right() + 1) * sx)) - 1,
                int(round((r.bottom() + 1) * sy)) - 1,
            )
            for r in self._detector(small, self.upsample)
        ]

    def embed(self, image: np.ndarray) -> FaceResult:
        """Embed the largest (or only) face of an RGB ``uint8`` image of shape (H, W, 3).

        Returns a :class:`FaceResult` with a (128,) float32 embedding, or a failure status:
        ``no_face``, ``multiple_faces`` (policy ``"reject"``), ``error`` (bad array or a dlib
        failure). Raises only when the backend itself cannot load.
        """
        self.load()
        bad = invalid_image(image)
        if bad is not None:
            return bad
        try:
            image = np.ascontiguousarray(image)
            rects = self._detect(image)
            n_faces = len(rects)
            index = choose_face([r.width() * r.height() for r in rects], self.multiple_faces)
            if index is None:
                if n_faces == 0:
                    return FaceResult(FaceStatus.NO_FACE, n_faces=0, detail="dlib's HOG detector found no face")
                return FaceResult(
                    FaceStatus.MULTIPLE_FACES,
                    n_faces=n_faces,
                    detail=f"dlib's HOG detector found {n_faces} faces and multiple_faces='reject'",
                )
            shape = self._predictor(image, rects[index])
            chip = self._dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            encoder = self._encoder
            if self.jitter > 1:
                # dlib draws jitter from a random generator kept inside the model object, so a
                # jittered descriptor would depend on every image embedded before it. A fresh
                # model (about 0.1 s to load) makes it depend on this image alone.
                encoder = self._dlib.face_recognition_model_v1(self._descriptor_path)
            descriptor = encoder.compute_face_descriptor(chip, self.jitter)
            embedding = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a per-image failure must not stop the run
            return FaceResult(FaceStatus.ERROR, detail=f"dlib failed on this image: {type(exc).__name__}: {exc}")
        if embedding.shape != (128,) or not np.all(np.isfinite(embedding)):
            return FaceResult(
                FaceStatus.ERROR,
                n_faces=n_faces,
                detail=f"dlib returned an invalid descriptor of shape {embedding.shape}",
            )
        return FaceResult(FaceStatus.OK, embedding=embedding, n_faces=n_faces)
