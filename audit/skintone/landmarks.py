"""Face landmarks (dlib's 68-point model) and the skin mask drawn from them.

The 68-point shape predictor ships in the ``face_recognition_models`` package (the ``dlib``
extra; dlib-models, CC0 1.0 per its notice, trained on iBUG 300-W). Faces are found with dlib's
HOG detector on a copy scaled to at most ``max_side`` pixels; the largest face is used.

Mask (:func:`skin_mask`): the polygon of the jaw line (points 0–16) closed along the eyebrows
(26–17), less the eyes (36–41, 42–47, each grown by a margin), the eyebrows (17–21, 22–26 drawn
as thick lines), the nostrils and lower nose (31–35 with 30) and the mouth (48–59). What is left
is mostly cheeks, nose bridge and chin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BackendError, MissingDependencyError

__all__ = ["LandmarkDetector", "Landmarks", "skin_mask"]


@dataclass(frozen=True)
class Landmarks:
    """68 (x, y) points of the largest face, in the image's pixel coordinates, and how many faces were found."""

    points: np.ndarray  # shape (68, 2), float64
    n_faces: int


class LandmarkDetector:
    """dlib HOG face detector + 68-point shape predictor.

    Parameters
    ----------
    max_side : int, default 640
        Images are scaled down to at most this many pixels on their long side for detection
        (landmarks are mapped back to full resolution).
    upsample : int, default 1
        dlib's detector upsampling (finds smaller faces, slower).
    undetected : {"skip", "whole_image"}, default "skip"
        When no face is found: None (the image is not measured), or landmarks placed in the
        whole image inset by 7% (for datasets of face crops such as FairFace; ``n_faces`` 0).
    """

    def __init__(self, *, max_side: int = 640, upsample: int = 1, undetected: str = "skip") -> None:
        if undetected not in ("skip", "whole_image"):
            raise BackendError(f"undetected must be \"skip\" or \"whole_image\", got {undetected!r}")
        self.max_side, self.upsample, self.undetected = int(max_side), int(upsample), undetected
        self._detector = self._predictor = None
        self.model_path: Path | None = None

    def load(self) -> None:
        if self._predictor is not None:
            return
        try:
            import dlib
            import face_recognition_models
        except ImportError as exc:
            raise MissingDependencyError("skin-tone measurement needs dlib and its landmark model: pip install 'face-audit[dlib]'") from exc
        self.model_path = Path(face_recognition_models.pose_predictor_model_location())
        if not self.model_path.is_file():
            raise BackendError(f"dlib's 68-point landmark model is missing at {self.model_path}; reinstall face_recognition_models")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(self.model_path))

    def detect(self, rgb: np.ndarray) -> Landmarks | None:
        """Landmarks of the largest face, or None when no face is found."""
        import dlib
        from PIL import Image

        if self._predictor is None:
            self.load()
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb if scale == 1.0 else np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
        small = np.ascontiguousarray(small)
        faces = self._detector(small, self.upsample)
        if len(faces) == 0 and self.undetected == "whole_image":
            # an already-cropped face: landmarks inside the image inset by 7% on each side
            sh, sw = small.shape[:2]
            faces = [dlib.rectangle(round(0.07 * sw), round(0.07 * sh), round(0.93 * sw), round(0.93 * sh))]
            n = 0
        elif len(faces) == 0:
            return None
        else:
            n = len(faces)
        face = max(faces, key=lambda r: r.width() * r.height())
        shape = self._predictor(small, face)
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64) / scale
        return Landmarks(points=pts, n_faces=n)


def skin_mask(shape_hw: tuple[int, int], points: np.ndarray, *, margin: float = 0.04) -> np.ndarray:
    """The skin region of a face as a boolean mask of shape ``shape_hw``.

    Parameters
    ----------
    shape_hw : (int, int)
        Image height and width.
    points : numpy.ndarray, shape (68, 2)
        dlib's 68 landmarks (x, y).
    margin : float, default 0.04
        How far the excluded features are grown, as a share of the face width.

    Examples
    --------
    >>> pts = np.zeros((68, 2)); pts[:17, 0] = np.linspace(10, 90, 17); pts[:17, 1] = 60 + 30 * np.sin(np.linspace(0, np.pi, 17))
    >>> pts[17:27] = np.c_[np.linspace(15, 85, 10), np.full(10, 30)]
    >>> pts[27:] = (50, 200)  # features far outside: nothing cut out
    >>> bool(skin_mask((100, 100), pts)[60, 50]), bool(skin_mask((100, 100), pts)[5, 5])
    (True, False)
    """
    from PIL import Image, ImageDraw

    h, w = int(shape_hw[0]), int(shape_hw[1])
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (68, 2):
        raise BackendError(f"expected 68 landmarks of shape (68, 2), got {p.shape}")
    width = float(np.ptp(p[:17, 0])) or 1.0
    grow = max(1, int(round(margin * width)))
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    outline = np.concatenate([p[0:17], p[26:16:-1]])
    d.polygon([tuple(q) for q in outline], fill=255)

    def cut(idx, *, closed=True):
        q = [tuple(x) for x in p[idx]]
        if closed:
            d.polygon(q, fill=0)
            d.line(q + [q[0]], fill=0, width=2 * grow)
        else:
            d.line(q, fill=0, width=2 * grow)

    cut(list(range(36, 42)))
    cut(list(range(42, 48)))
    cut(list(range(17, 22)), closed=False)
    cut(list(range(22, 27)), closed=False)
    cut([31, 32, 33, 34, 35, 30])
    cut(list(range(48, 60)))
    return np.asarray(img) > 0
