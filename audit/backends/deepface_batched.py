"""The deepface backend's batched recognition path (see :mod:`audit.backends.onnx_batch`).

deepface 0.0.103 on its ``onnx`` engine runs each recognition model (VGG-Face, Facenet,
Facenet512, OpenFace, DeepFace, DeepID, ArcFace, GhostFaceNet, SFace) as an
``OnnxFacialRecognition`` client whose ``model`` is an ``onnxruntime.InferenceSession`` built by
``deepface.commons.onnx_utils.build_session`` from ``$DEEPFACE_HOME/.deepface/weights/<file>.onnx``
(providers from ``DEEPFACE_ONNX_PROVIDERS``, default "cuda,cpu"). ``DeepFace.represent`` detects
and aligns the faces of one image (``detection.extract_faces``), resizes and normalises each
(``preprocessing.resize_image``, ``normalize_input``) and calls the client's ``forward`` on them.

The batched path makes the same calls in the same order for each image of a batch, keeps the face
the backend's policy chooses, and calls ``forward`` once on the stacked faces of the whole batch,
on a copy of the client whose ``model`` is a session of the same file built by
:class:`~audit.backends.onnx_batch.OnnxBatchRunner` (CUDA when asked for), fed ``batch`` rows at a
time. So each model's own pre- and post-processing (SFace's channel order, VGG-Face's L2 norm) is
deepface's. deepface's SFace client feeds its graph one face at a time (the fp32 file fixes the
batch at 1); its faces still go to the chosen provider. Models that do not run on onnxruntime
(Dlib, Buffalo_L, or any model on the tensorflow/pytorch engines) have no batched path: device
"auto" keeps today's path for them, "cpu"/"cuda" are refused.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import BackendError
from .base import FaceResult, FaceStatus, choose_face
from .onnx_batch import BatchedRecognition, OnnxBatchRunner

__all__ = ["DeepFaceBatched"]


class _ChunkedSession:
    """Stands in for deepface's InferenceSession: the runner's session, ``batch`` rows per run."""

    def __init__(self, runner: OnnxBatchRunner) -> None:
        self.runner = runner

    def get_inputs(self):
        return self.runner.session.get_inputs()

    def get_providers(self):
        return self.runner.providers

    def run(self, output_names, feed: dict) -> list:
        (name, x), = feed.items()
        b = self.runner.batch_size
        outs = [self.runner.session.run(output_names, {name: x[a:a + b]})[0] for a in range(0, x.shape[0], b)]
        return [np.concatenate(outs) if outs else np.empty((0,), np.float32)]


class DeepFaceBatched(BatchedRecognition):
    """The hooks of :class:`~audit.backends.onnx_batch.BatchedRecognition` for
    :class:`~audit.backends.deepface.DeepFaceBackend` (which sets ``model``, ``detector``, ``align``,
    ``expand_percentage``, ``normalization``, ``multiple_faces`` and, in ``load``, ``_engine`` and
    ``_model_files``)."""

    def _pick_face(self, faces: list) -> int | FaceResult:
        """Index of the face deepface found that is embedded, or the result that says why none is
        (no face, several under ``multiple_faces = "reject"``, no facial area)."""
        n_faces = len(faces)
        try:
            areas = [float(f["facial_area"]["w"]) * float(f["facial_area"]["h"]) for f in faces]
        except (KeyError, TypeError) as exc:
            return FaceResult(FaceStatus.ERROR, n_faces=n_faces, detail=f"deepface returned no facial_area ({exc})")
        index = choose_face(areas, self.multiple_faces)
        if index is None:
            if n_faces == 0:
                return FaceResult(FaceStatus.NO_FACE, detail=f"deepface's {self.detector} detector found no face")
            return FaceResult(FaceStatus.MULTIPLE_FACES, n_faces=n_faces,
                              detail=f"deepface's {self.detector} detector found {n_faces} faces and multiple_faces='reject'")
        return index

    _client: Any = None

    def _build_runner(self, device: str, batch_size: int) -> OnnxBatchRunner | None:
        from deepface.modules import modeling

        client = modeling.build_model(task="facial_recognition", model_name=self.model)  # deepface caches it
        onnx_files = [p for p in getattr(self, "_model_files", ()) if str(p).endswith(".onnx")]
        session = getattr(client, "model", None)
        if len(onnx_files) != 1 or not hasattr(session, "get_providers") or not hasattr(client, "forward"):
            if device == "auto":
                return None  # no GPU path for this model: today's path
            raise BackendError(
                f"deepface's model {self.model!r} does not run on onnxruntime here (engine {getattr(self, '_engine', '?')!r}), "
                "so it has no batched recognition path. Use an ONNX model (ArcFace, Facenet512, SFace, ...) on deepface's "
                "onnx engine (DEEPFACE_BACKEND_ENGINE=onnx), or set [engine] recognition = \"native\"."
            )
        runner = OnnxBatchRunner(onnx_files[0], device=device, batch_size=batch_size)
        batched = copy.copy(client)  # deepface's cached client keeps its own session
        batched.model = _ChunkedSession(runner)
        self._client = batched
        return runner

    def _recognition_prepare(self, image: np.ndarray) -> FaceResult | tuple[np.ndarray, int]:
        from deepface.modules import detection, preprocessing

        from .deepface import _is_no_face

        bgr = np.ascontiguousarray(image[:, :, ::-1])
        if self.detector != "skip":
            try:
                faces = detection.extract_faces(img_path=bgr, detector_backend=self.detector, grayscale=False,
                                                enforce_detection=True, align=self.align,
                                                expand_percentage=self.expand_percentage, anti_spoofing=False, max_faces=None)
            except Exception as exc:
                if _is_no_face(exc):
                    return FaceResult(FaceStatus.NO_FACE, n_faces=0, detail=f"deepface's {self.detector} detector found no face")
                return FaceResult(FaceStatus.ERROR, detail=f"deepface failed on this image: {type(exc).__name__}: {exc}")
        else:  # as DeepFace.represent: the whole image, flipped to RGB here and back below
            rgb = bgr[:, :, ::-1]
            faces = [{"face": rgb, "facial_area": {"x": 0, "y": 0, "w": rgb.shape[0], "h": rgb.shape[1]}}]
        n_faces = len(faces)
        index = self._pick_face(faces)
        if isinstance(index, FaceResult):
            return index
        self._batch_runner()  # the client (and its input size) before the first face
        target = self._client.input_shape
        face = faces[index]["face"][:, :, ::-1]
        face = preprocessing.resize_image(img=face, target_size=(target[1], target[0]))
        face = preprocessing.normalize_input(img=face, normalization=self.normalization)
        return np.asarray(face)[0], n_faces

    def _recognition_run(self, rows: np.ndarray) -> Any:
        self._batch_runner()
        out = self._client.forward(rows)
        return np.asarray(out, dtype=np.float64).reshape(rows.shape[0], -1)
