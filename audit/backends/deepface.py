"""Any recognition model of the deepface library, with one of its face detectors.

deepface loads weights from ``$DEEPFACE_HOME/.deepface/weights/`` (``DEEPFACE_HOME`` defaults to
the home folder) and downloads the missing ones. An audit must not fetch unpinned files at run
time, so :meth:`DeepFaceBackend.load` first checks every file the chosen model and detector need
(:data:`RECOGNITION_WEIGHTS`, :data:`DETECTOR_WEIGHTS`, read from deepface 0.0.103's source) and
raises :class:`~audit.errors.MissingWeightsError` naming the file, the folder and the URL instead
of letting deepface download. The one model that installs from the package index, ``Dlib``, is
linked in from the ``face_recognition_models`` package.

Install with ``pip install 'face-audit[deepface]'``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np

from ..errors import BackendError, MissingDependencyError, MissingWeightsError
from ..images import sha256_file_cached
from .base import MULTIPLE_FACE_POLICIES, Backend, BackendInfo, FaceResult, FaceStatus, invalid_image
from .deepface_batched import DeepFaceBatched
from .deepface_weights import (
    WeightFile,
    _DETECTOR_PACKAGES,
    _ENGINE_PACKAGES,
    _MODEL_PACKAGES,
    _locate,
    _missing_message,
    required_weights,
    weights_folder,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "DeepFaceBackend",
    "ADAPTER_VERSION",
    "DefaultThreshold",
    "deepface_default_threshold",
    "deepface_threshold_table",
]

#: Bump when a change here changes the embeddings this adapter produces.
ADAPTER_VERSION = "deepface-adapter-1"

DISTANCE_METRICS = ("cosine", "euclidean", "euclidean_l2")
NORMALIZATIONS = ("base", "raw", "Facenet", "Facenet2018", "VGGFace", "VGGFace2", "ArcFace")

# used only when deepface itself is not importable (validation without the extra installed)
_FALLBACK_MODELS = (
    "VGG-Face", "Facenet", "Facenet512", "OpenFace", "DeepFace", "DeepID",
    "ArcFace", "Dlib", "SFace", "GhostFaceNet", "Buffalo_L",
)  # fmt: skip
_FALLBACK_DETECTORS = (
    "opencv", "mtcnn", "ssd", "dlib", "retinaface", "mediapipe", "yolov8n", "yolov8m", "yolov8l",
    "yolov11n", "yolov11s", "yolov11m", "yolov11l", "yolov12n", "yolov12s", "yolov12m", "yolov12l",
    "yunet", "fastmtcnn", "centerface", "skip",
)  # fmt: skip


# ---------------------------------------------------------------------------- default thresholds


@dataclass(frozen=True)
class DefaultThreshold:
    """deepface's own tuned decision threshold for one (model, distance_metric), in two units.

    Attributes
    ----------
    model : str
        A deepface recognition model, e.g. ``"ArcFace"``.
    distance_metric : {"cosine", "euclidean", "euclidean_l2"}
        The :class:`DeepFaceBackend` option.
    deepface_value : float
        deepface's number: a *distance* (for ``"cosine"`` a cosine distance); deepface calls a
        pair the same person when ``distance <= deepface_value``.
    metric : {"cosine", "euclidean"}
        The :class:`~audit.backends.base.BackendInfo` metric the backend reports for this option.
    threshold : float
        ``deepface_value`` in that metric's native unit, as ``BackendInfo.default_threshold``
        records it: the cosine similarity ``1 - deepface_value`` for ``"cosine"``, the distance
        itself otherwise. (deepface's own rule is ``distance <= t``; face-audit's tie rule is
        ``similarity >= threshold``, and the two agree except at exact ties.)
    source : str
        The deepface version and the function the value was read from.
    """

    model: str
    distance_metric: str
    deepface_value: float
    metric: Literal["cosine", "euclidean"]
    threshold: float
    source: str


def deepface_default_threshold(model: str, distance_metric: str = "cosine") -> DefaultThreshold:
    """deepface's tuned threshold for ``model`` and ``distance_metric``; needs no weights.

    Reads ``deepface.modules.verification.find_threshold`` (falling back to the table
    ``deepface.config.threshold.thresholds`` that it reads), so the number is the one the
    installed deepface would use in ``DeepFace.verify``. An audit measures every group at this
    vendor default to show how it behaves per group.

    Parameters
    ----------
    model : str
        A deepface recognition model (VGG-Face, Facenet, Facenet512, OpenFace, DeepFace, DeepID,
        ArcFace, Dlib, SFace, GhostFaceNet, Buffalo_L).
    distance_metric : {"cosine", "euclidean", "euclidean_l2"}, default "cosine"

    Returns
    -------
    DefaultThreshold

    Raises
    ------
    MissingDependencyError
        deepface is not installed (extra ``deepface``).
    BackendError
        ``distance_metric`` is not one of the three, or deepface has no threshold for the pair.

    Examples
    --------
    >>> t = deepface_default_threshold("Dlib", "cosine")          # doctest: +SKIP
    >>> t.deepface_value, t.threshold                             # doctest: +SKIP
    (0.07, 0.93)
    """
    if distance_metric not in DISTANCE_METRICS:
        raise BackendError(f"distance_metric must be one of {DISTANCE_METRICS}, got {distance_metric!r}")
    try:
        import deepface
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading deepface's default thresholds needs the deepface package ({exc}). "
            "Install it with: pip install 'face-audit[deepface]'"
        ) from exc
    raw: float | None = None
    where = ""
    try:
        with warnings.catch_warnings():  # deepface's import may change the warning filters
            from deepface.modules.verification import find_threshold
        raw = float(find_threshold(model, distance_metric))
        where = "deepface.modules.verification.find_threshold"
    except (ImportError, ValueError, KeyError):
        try:
            from deepface.config.threshold import thresholds

            raw = float(thresholds[model][distance_metric])
            where = "deepface.config.threshold.thresholds"
        except (ImportError, KeyError, TypeError, ValueError):
            raw = None
    if raw is None:
        raise BackendError(
            f"deepface {getattr(deepface, '__version__', '?')} has no tuned threshold for model {model!r} with "
            f"distance_metric {distance_metric!r}; pass a threshold yourself or set it at a target FMR."
        )
    call = f"deepface {getattr(deepface, '__version__', '?')} {where}({model!r}, {distance_metric!r}) = {raw:g}"
    if distance_metric == "cosine":
        return DefaultThreshold(
            model, distance_metric, raw, "cosine", round(1.0 - raw, 12),
            f"{call}, a cosine distance, recorded as the cosine similarity 1 - {raw:g}",
        )  # fmt: skip
    return DefaultThreshold(model, distance_metric, raw, "euclidean", raw, f"{call}, a Euclidean distance")


def deepface_threshold_table(models: Sequence[str] | None = None) -> pd.DataFrame:
    """deepface's default threshold for every recognition model and distance metric.

    Parameters
    ----------
    models : sequence of str, optional
        Models to list; by default every model the installed deepface offers.

    Returns
    -------
    pandas.DataFrame
        One row per (model, distance_metric), in model order then ``("cosine", "euclidean",
        "euclidean_l2")``, with the columns of :class:`DefaultThreshold`. A pair deepface has
        no threshold for is left out.
    """
    import pandas as pd

    rows = []
    for model in models if models is not None else _deepface_names()[0]:
        for metric in DISTANCE_METRICS:
            try:
                t = deepface_default_threshold(model, metric)
            except MissingDependencyError:
                raise
            except BackendError:
                continue
            rows.append(
                {
                    "model": t.model,
                    "distance_metric": t.distance_metric,
                    "deepface_value": t.deepface_value,
                    "metric": t.metric,
                    "threshold": t.threshold,
                    "source": t.source,
                }
            )
    return pd.DataFrame(rows, columns=["model", "distance_metric", "deepface_value", "metric", "threshold", "source"])


# ---------------------------------------------------------------------------- helpers


def _deepface_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(recognition models, detectors) as deepface lists them; a fixed list without deepface."""
    try:
        from deepface.modules import modeling
    except Exception:  # deepface missing or broken: load() reports that
        return _FALLBACK_MODELS, _FALLBACK_DETECTORS
    table = getattr(modeling, "AVAILABLE_MODELS", None)
    if not isinstance(table, dict):
        return _FALLBACK_MODELS, _FALLBACK_DETECTORS
    models = tuple(table.get("facial_recognition", {})) or _FALLBACK_MODELS
    detectors = tuple(table.get("face_detector", {})) or _FALLBACK_DETECTORS
    if "skip" not in detectors:
        detectors = (*detectors, "skip")
    return models, detectors


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _is_no_face(exc: BaseException) -> bool:
    if type(exc).__name__ == "FaceNotDetected":
        return True
    return isinstance(exc, ValueError) and "Face could not be detected" in str(exc)


def _import_deepface() -> Any:
    """Import ``deepface.DeepFace`` without keeping its global ``warnings.filterwarnings("ignore")``."""
    with warnings.catch_warnings():  # restores the process's warning filters on exit
        from deepface import DeepFace
    return DeepFace


# ---------------------------------------------------------------------------- the backend


class DeepFaceBackend(DeepFaceBatched, Backend):
    """A deepface recognition model behind one of deepface's face detectors.

    Parameters
    ----------
    model : str, default "Dlib"
        A deepface recognition model: VGG-Face, Facenet, Facenet512, OpenFace, DeepFace, DeepID,
        ArcFace, Dlib, SFace, GhostFaceNet or Buffalo_L.
    detector : str, default "opencv"
        A deepface detector backend (opencv, ssd, dlib, mtcnn, retinaface, mediapipe, yunet,
        centerface, fastmtcnn, yolov8n ... yolov12l) or ``"skip"`` (the whole image is the face,
        so nothing is ever ``no_face``).
    align : bool, default True
        Rotate the face upright on the eye positions before embedding.
    distance_metric : {"cosine", "euclidean", "euclidean_l2"}, default "cosine"
        How pairs are compared. ``"cosine"`` gives :class:`BackendInfo` metric ``"cosine"``
        (cosine similarity); ``"euclidean"`` gives ``"euclidean"`` on the raw embeddings;
        ``"euclidean_l2"`` L2-normalises each embedding and gives ``"euclidean"``.
    multiple_faces : {"largest", "reject"}, default "largest"
        Which of several detected faces to keep (by detected box area w*h).
    expand_percentage : int, default 0
        Grow each detected box by this percentage before cropping.
    normalization : str, default "base"
        deepface's input normalisation: base, raw, Facenet, Facenet2018, VGGFace, VGGFace2, ArcFace.

    Notes
    -----
    ``enforce_detection`` is always True: with False, deepface's detectors return the whole
    image as a "face" when they find none, which would hide failures to acquire.
    ``default_threshold`` is deepface's own tuned threshold for (model, distance_metric). For
    ``"cosine"`` deepface's threshold is a cosine *distance* d; it is recorded as the similarity
    ``1 - d``, the native unit of metric ``"cosine"`` here.

    :meth:`with_recognition` gives a copy whose ONNX recognition model runs on batches of aligned
    faces (CUDA when present; ``[engine] device``), same fingerprint: see
    :mod:`audit.backends.deepface_batched`.
    """

    name = "deepface"

    def __init__(
        self,
        *,
        model: str = "Dlib",
        detector: str = "opencv",
        align: bool = True,
        distance_metric: str = "cosine",
        multiple_faces: str = "largest",
        expand_percentage: int = 0,
        normalization: str = "base",
    ) -> None:
        models, detectors = _deepface_names()
        if model not in models:
            raise BackendError(
                f"deepface backend option model must be one of {', '.join(models)}; got {model!r}"
            )
        if detector not in detectors:
            raise BackendError(
                f"deepface backend option detector must be one of {', '.join(detectors)}; got {detector!r}"
            )
        if not isinstance(align, (bool, np.bool_)):
            raise BackendError(f"deepface backend option align must be True or False, got {align!r}")
        if distance_metric not in DISTANCE_METRICS:
            raise BackendError(
                f"deepface backend option distance_metric must be one of {DISTANCE_METRICS}, got {distance_metric!r}"
            )
        if multiple_faces not in MULTIPLE_FACE_POLICIES:
            raise BackendError(
                f"deepface backend option multiple_faces must be one of {MULTIPLE_FACE_POLICIES}, got {multiple_faces!r}"
            )
        if isinstance(expand_percentage, bool) or not isinstance(expand_percentage, (int, np.integer)) or expand_percentage < 0:
            raise BackendError(
                f"deepface backend option expand_percentage must be an integer >= 0, got {expand_percentage!r}"
            )
        if normalization not in NORMALIZATIONS:
            raise BackendError(
                f"deepface backend option normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}"
            )
        self.model = model
        self.detector = detector
        self.align = bool(align)
        self.distance_metric = distance_metric
        self.multiple_faces = multiple_faces
        self.expand_percentage = int(expand_percentage)
        self.normalization = normalization
        self._reset_loaded()

    # ------------------------------------------------------------------ state and pickling

    def _reset_loaded(self) -> None:
        self._represent: Callable[..., Any] | None = None
        self._info: BackendInfo | None = None
        self._model_files: list[Path] = []
        self._engine = ""
        self._runner = None
        self._client = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_represent"] = None
        state["_info"] = None
        state["_client"] = None
        return self._drop_runner(state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"DeepFaceBackend(model={self.model!r}, detector={self.detector!r}, align={self.align}, "
            f"distance_metric={self.distance_metric!r}, multiple_faces={self.multiple_faces!r}, "
            f"expand_percentage={self.expand_percentage}, normalization={self.normalization!r})"
        )

    # ------------------------------------------------------------------ loading

    def _packages(self) -> list[tuple[str, str, tuple[str, ...]]]:
        found = [table[key] for table, key in ((_MODEL_PACKAGES, self.model), (_DETECTOR_PACKAGES, self.detector)) if key in table]
        return list(dict.fromkeys(found))

    def _check_packages(self) -> None:
        for module, install, _dists in self._packages():
            try:
                present = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                present = False
            if not present:
                raise MissingDependencyError(
                    f"deepface's model {self.model!r} with detector {self.detector!r} needs the Python "
                    f"module {module!r}, which is not installed. Install it with: {install}"
                )

    def load(self) -> None:
        """Check every weight file, then build deepface's model and detector.

        Raises
        ------
        MissingDependencyError
            deepface (extra ``deepface``) or a package the model/detector needs is missing.
        MissingWeightsError
            A weight file is absent from ``$DEEPFACE_HOME/.deepface/weights``; raised before
            deepface is asked to build anything, so it never starts a download.
        """
        if self._represent is not None:
            return
        try:
            import deepface
            from deepface.modules import modeling
        except ImportError as exc:
            raise MissingDependencyError(
                f"the deepface backend needs the deepface package ({exc}). "
                "Install it with: pip install 'face-audit[deepface]'"
            ) from exc
        try:
            from deepface.commons import backend_utils

            engine = backend_utils.get_backend_engine()
        except ImportError:  # deepface releases that run on tensorflow only
            engine = "tensorflow"
        except ValueError as exc:  # no engine installed, or DEEPFACE_BACKEND_ENGINE names a missing one
            raise MissingDependencyError(
                f"deepface cannot pick a backend engine: {exc} "
                "Install face-audit's extra with: pip install 'face-audit[deepface]'"
            ) from exc
        self._check_packages()

        folder = weights_folder()
        files = required_weights(self.model, self.detector, engine)
        found: list[Path] = []
        missing: list[WeightFile] = []
        for wf in files:
            path = _locate(wf, folder)
            if path is None:
                missing.append(wf)
            else:
                found.append(path)
        if missing:
            raise MissingWeightsError(
                _missing_message(missing, folder, f"model {self.model!r} with detector {self.detector!r} ({engine} engine)")
            )

        try:
            import cv2

            cv2.setNumThreads(1)  # workers are processes; one thread each avoids oversubscription
            cv2_version = cv2.__version__
        except ImportError as exc:
            raise MissingDependencyError(
                f"the deepface backend needs opencv ({exc}). Install it with: pip install 'face-audit[deepface]'"
            ) from exc

        DeepFace = _import_deepface()
        try:
            client = modeling.build_model(task="facial_recognition", model_name=self.model)
            if self.detector != "skip":
                modeling.build_model(task="face_detector", model_name=self.detector)
        except ImportError as exc:
            raise MissingDependencyError(
                f"deepface's model {self.model!r} or detector {self.detector!r} needs a package that is "
                f"not installed ({exc}). Install it with pip, or choose another model/detector."
            ) from exc
        except Exception as exc:
            raise BackendError(
                f"deepface could not build model {self.model!r} with detector {self.detector!r} from "
                f"{folder} ({type(exc).__name__}: {exc}). A weight file may be truncated; replace it."
            ) from exc

        combined = hashlib.sha256()
        for path in found:  # fixed order: model files, then detector files
            combined.update(sha256_file_cached(path).encode())

        threshold, source = self._default_threshold()
        version = (
            f"{ADAPTER_VERSION}; deepface {getattr(deepface, '__version__', 'unknown')}; "
            f"engine {engine} ({_ENGINE_PACKAGES.get(engine, engine)} {_version(_ENGINE_PACKAGES.get(engine, engine))}); "
            f"opencv {cv2_version}"
        )
        for _module, _install, dists in self._packages():
            dist = next((d for d in dists if _version(d) != "unknown"), dists[0])
            version += f"; {dist} {_version(dist)}"
        self._info = BackendInfo(
            backend=self.name,
            model=self.model,
            version=version,
            weights_sha256=combined.hexdigest(),
            dim=int(client.output_shape),
            metric="cosine" if self.distance_metric == "cosine" else "euclidean",
            default_threshold=threshold,
            default_threshold_source=source,
            options=self._embedding_options(),
        )
        self._represent = DeepFace.represent
        self._model_files, self._engine = found[:len(required_weights(self.model, "skip", engine))], engine  # model files first

    def _embedding_options(self) -> dict[str, Any]:
        # options that change embeddings (cosine and euclidean share them; euclidean_l2 does not)
        return {
            "detector": self.detector,
            "align": self.align,
            "expand_percentage": self.expand_percentage,
            "normalization": self.normalization,
            "multiple_faces": self.multiple_faces,
            "l2_normalize": self.distance_metric == "euclidean_l2",
            "enforce_detection": True,
        }

    def default_threshold(self) -> DefaultThreshold:
        """deepface's tuned threshold for this backend's model and distance metric (loads nothing).

        Raises :class:`~audit.errors.BackendError` when deepface has none for the pair.
        """
        return deepface_default_threshold(self.model, self.distance_metric)

    def _default_threshold(self) -> tuple[float | None, str]:
        try:
            found = self.default_threshold()
        except MissingDependencyError:
            raise
        except BackendError as exc:
            return None, str(exc)
        return found.threshold, found.source

    def info(self) -> BackendInfo:
        self.load()
        if self._info is None:  # pragma: no cover - load() sets it or raises
            raise BackendError("the deepface backend failed to load without raising an error")
        return self._info

    # ------------------------------------------------------------------ embedding

    def embed(self, image: np.ndarray) -> FaceResult:
        """Embed the largest (or only) face of an RGB ``uint8`` image of shape (H, W, 3).

        Returns a :class:`FaceResult` with a (dim,) float32 embedding (unit length for
        ``distance_metric="euclidean_l2"``), or ``no_face`` / ``multiple_faces`` / ``error``.
        """
        self.load()
        bad = invalid_image(image)
        if bad is not None:
            return bad
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        try:
            faces = self._represent(
                img_path=bgr,
                model_name=self.model,
                detector_backend=self.detector,
                enforce_detection=True,
                align=self.align,
                expand_percentage=self.expand_percentage,
                normalization=self.normalization,
            )
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _is_no_face(exc):
                return FaceResult(FaceStatus.NO_FACE, n_faces=0, detail=f"deepface's {self.detector} detector found no face")
            return FaceResult(FaceStatus.ERROR, detail=f"deepface failed on this image: {type(exc).__name__}: {exc}")
        n_faces = len(faces)
        index = self._pick_face(faces)
        if isinstance(index, FaceResult):
            return index
        return self._recognition_finish(np.asarray(faces[index]["embedding"], dtype=np.float64), n_faces)

    def _recognition_finish(self, raw: np.ndarray, n_faces: int) -> FaceResult:
        embedding = np.asarray(raw, dtype=np.float64).reshape(-1)
        if self.distance_metric == "euclidean_l2":
            norm = float(np.linalg.norm(embedding))
            if not np.isfinite(norm) or norm == 0.0:
                return FaceResult(FaceStatus.ERROR, n_faces=n_faces, detail="deepface returned a zero or non-finite embedding")
            embedding = embedding / norm
        if not np.all(np.isfinite(embedding)):
            return FaceResult(FaceStatus.ERROR, n_faces=n_faces, detail="deepface returned a non-finite embedding")
        return FaceResult(FaceStatus.OK, embedding=embedding.astype(np.float32), n_faces=n_faces)
