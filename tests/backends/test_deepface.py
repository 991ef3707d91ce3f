"""The deepface backend: offline weight checks, statuses, and deepface's Dlib model on real faces.

Every test runs with DEEPFACE_HOME in a temporary folder and the network blocked, and asserts
that nothing tried to connect or download.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

deepface = pytest.importorskip("deepface", reason="the deepface extra is not installed")

from audit.backends import deepface as adapter  # noqa: E402
from audit.backends.base import FaceStatus  # noqa: E402
from audit.backends.deepface import ADAPTER_VERSION, DeepFaceBackend, required_weights  # noqa: E402
from audit.errors import BackendError, MissingWeightsError  # noqa: E402
from audit.images import sha256_file  # noqa: E402

DLIB_FILE = "dlib_face_recognition_resnet_model_v1.dat"
needs_dlib_weights = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None,
    reason="deepface's Dlib model needs dlib and face_recognition_models installed",
)


@pytest.fixture(scope="module")
def datasets(shared_dir) -> Path:
    """../shared/datasets (or FACE_AUDIT_MIRROR); tests/conftest.py skips when it is absent."""
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


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _engine() -> str:
    from deepface.commons import backend_utils

    return backend_utils.get_backend_engine()


class _NetworkGuard:
    """Blocks sockets and deepface's downloader, recording every attempt."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.attempts: list[str] = []
        from deepface.commons import weight_utils

        def refuse(what):
            def _refuse(*args, **kwargs):
                self.attempts.append(f"{what}{args[:2]}")
                raise OSError(f"network access attempted in an offline test: {what}")

            return _refuse

        mp.setattr(socket.socket, "connect", refuse("socket.connect"))
        mp.setattr(socket, "create_connection", refuse("socket.create_connection"))
        mp.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
        mp.setattr(weight_utils, "ensure_source_is_reachable", refuse("deepface.ensure_source_is_reachable"))
        mp.setattr(weight_utils.gdown, "download", refuse("gdown.download"))


@pytest.fixture
def offline(monkeypatch):
    guard = _NetworkGuard(monkeypatch)
    yield guard
    assert guard.attempts == [], f"something tried to use the network: {guard.attempts}"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An empty DEEPFACE_HOME, set while the module's shared backend loads."""
    return tmp_path_factory.mktemp("deepface_home")


@pytest.fixture(scope="module")
def backend(home):
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("deepface's Dlib model needs dlib and face_recognition_models installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPFACE_HOME", str(home))
        guard = _NetworkGuard(mp)
        b = DeepFaceBackend(model="Dlib", detector="opencv")
        b.load()
        assert guard.attempts == []
    return b


@pytest.fixture(scope="module")
def faces(datasets, tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    out = tmp_path_factory.mktemp("deepface_inputs")
    big = _resized(london(datasets, 1), 400)
    small = _resized(london(datasets, 2), 200)
    canvas = np.full((400, 620, 3), 128, np.uint8)
    canvas[:, :400] = big
    canvas[100:300, 420:] = small
    paths = {}
    for name, arr in (("big.png", big), ("small.png", small), ("two_faces.png", canvas)):
        paths[name] = out / name
        Image.fromarray(arr).save(paths[name])
    paths["flat_gray.png"] = out / "flat_gray.png"
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(paths["flat_gray.png"])
    paths["empty.jpg"] = out / "empty.jpg"
    paths["empty.jpg"].write_bytes(b"")
    return paths


# ---------------------------------------------------------------------------- options


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(BackendError) as err:
        DeepFaceBackend(model="ArcFace2")
    message = str(err.value)
    assert "'ArcFace2'" in message
    for name in ("VGG-Face", "Facenet512", "ArcFace", "Dlib", "SFace", "GhostFaceNet"):
        assert name in message


def test_unknown_detector_lists_the_valid_names():
    with pytest.raises(BackendError) as err:
        DeepFaceBackend(detector="haar")
    message = str(err.value)
    for name in ("opencv", "retinaface", "mtcnn", "yunet", "skip"):
        assert name in message


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"distance_metric": "angular"}, "distance_metric"),
        ({"align": "yes"}, "align"),
        ({"multiple_faces": "first"}, "multiple_faces"),
        ({"expand_percentage": -5}, "expand_percentage"),
        ({"expand_percentage": 2.5}, "expand_percentage"),
        ({"normalization": "imagenet"}, "normalization"),
    ],
)
def test_invalid_options_raise_clear_errors(kwargs, word):
    with pytest.raises(BackendError, match=word):
        DeepFaceBackend(**kwargs)


# ---------------------------------------------------------------------------- offline weights


def test_missing_weights_name_file_folder_and_url(tmp_path, monkeypatch, offline, faces):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    backend = DeepFaceBackend(model="ArcFace")
    with pytest.raises(MissingWeightsError) as err:
        backend.load()
    message = str(err.value)
    folder = tmp_path / ".deepface" / "weights"
    (expected,) = [wf for wf in required_weights("ArcFace", "opencv", _engine()) if "arcface" in wf.file_name]
    assert expected.file_name in message
    assert str(folder) in message
    assert "https://" in message and expected.urls[0] in message
    assert not (folder / expected.file_name).exists()
    # embedding goes through load(): the error stops the run instead of becoming a per-image status
    with pytest.raises(MissingWeightsError):
        backend.embed_path(faces["big.png"])


@needs_dlib_weights
def test_missing_detector_weights_are_reported_too(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        DeepFaceBackend(model="Dlib", detector="yunet").load()
    message = str(err.value)
    assert "face_detection_yunet_2023mar.onnx" in message
    assert "opencv_zoo" in message
    # the Dlib model's own file was linked in from face_recognition_models, so it is not missing
    assert (tmp_path / ".deepface" / "weights" / DLIB_FILE).is_file()
    assert DLIB_FILE not in message


def test_weights_table_matches_deepface_source():
    """Every model and detector deepface offers is in the table, with the names and URLs its source uses."""
    from deepface.modules import modeling

    engine = _engine()

    def source_of(task: str, name: str) -> str:
        sources = modeling.AVAILABLE_MODELS[task][name]
        dotted = sources.get(engine) or sources.get("any")
        module = dotted.rpartition(".")[0]
        return Path(importlib.util.find_spec(module).origin).read_text()

    for name in modeling.AVAILABLE_MODELS["facial_recognition"]:
        src = source_of("facial_recognition", name)
        for wf in required_weights(name, "skip", engine):
            assert Path(wf.file_name).name in src, (name, wf.file_name)
            for url in wf.urls:
                assert url in src, (name, url)
    for name in modeling.AVAILABLE_MODELS["face_detector"]:
        if name == "retinaface":
            continue  # its weights are loaded by the retina-face package, checked by file name below
        src = source_of("face_detector", name)
        for wf in required_weights("Dlib", name, engine):
            if wf.file_name == DLIB_FILE or (wf.opencv_data and name != "opencv"):
                continue
            assert wf.file_name in src, (name, wf.file_name)
            for url in wf.urls:
                assert (url if not wf.opencv_data else url.rsplit("/", 1)[0]) in src, (name, url)
    assert any(wf.file_name.startswith("retinaface.") for wf in required_weights("Dlib", "retinaface", engine))


# ---------------------------------------------------------------------------- Dlib model on real faces


@pytest.mark.slow
def test_dlib_weights_are_linked_in_and_info_is_complete(backend, home):
    linked = home / ".deepface" / "weights" / DLIB_FILE
    assert linked.is_file()
    import face_recognition_models

    original = Path(face_recognition_models.face_recognition_model_location())
    assert linked.resolve() == original.resolve() or sha256_file(linked) == sha256_file(original)

    info = backend.info()
    assert info.backend == "deepface" and info.model == "Dlib"
    assert info.dim == 128
    assert info.metric == "cosine" and info.higher_is_similar
    assert info.default_threshold == pytest.approx(1 - 0.07)  # deepface's Dlib cosine distance 0.07
    assert "find_threshold" in info.default_threshold_source
    assert ADAPTER_VERSION in info.version and deepface.__version__ in info.version
    import cv2

    cascades = Path(cv2.__file__).parent / "data"
    expected = hashlib.sha256(
        "".join(
            sha256_file(p)
            for p in (original, cascades / "haarcascade_frontalface_default.xml", cascades / "haarcascade_eye.xml")
        ).encode()
    ).hexdigest()
    assert info.weights_sha256 == expected
    assert info.options["detector"] == "opencv" and info.options["enforce_detection"] is True


@pytest.mark.slow
def test_fingerprint_is_stable_and_tracks_options(backend, home, monkeypatch, offline):
    monkeypatch.setenv("DEEPFACE_HOME", str(home))
    fingerprint = backend.info().fingerprint
    assert DeepFaceBackend(model="Dlib").info().fingerprint == fingerprint
    assert pickle.loads(pickle.dumps(backend)).info().fingerprint == fingerprint
    # cosine and euclidean compare the same embeddings; euclidean_l2 normalises them
    assert DeepFaceBackend(distance_metric="euclidean").info().fingerprint == fingerprint
    assert DeepFaceBackend(distance_metric="euclidean_l2").info().fingerprint != fingerprint
    assert DeepFaceBackend(align=False).info().fingerprint != fingerprint


@pytest.mark.slow
def test_same_person_is_closer_than_different_people(backend, datasets, offline):
    subjects = (1, 2)
    neutral = {s: backend.embed_path(london(datasets, s)) for s in subjects}
    smiling = {s: backend.embed_path(london(datasets, s, smiling=True)) for s in subjects}
    for s in subjects:
        assert neutral[s].ok and smiling[s].ok, (neutral[s], smiling[s])
        assert neutral[s].embedding.shape == (128,) and neutral[s].n_faces == 1
    for s in subjects:
        mated = cosine(neutral[s].embedding, smiling[s].embedding)
        impostors = [cosine(neutral[s].embedding, smiling[t].embedding) for t in subjects if t != s]
        assert mated > max(impostors), (s, mated, impostors)


@pytest.mark.slow
def test_euclidean_l2_gives_unit_embeddings(backend, home, faces, monkeypatch, offline):
    monkeypatch.setenv("DEEPFACE_HOME", str(home))
    l2 = DeepFaceBackend(distance_metric="euclidean_l2")
    info = l2.info()
    assert info.metric == "euclidean" and info.default_threshold == pytest.approx(0.4)
    result = l2.embed_path(faces["big.png"])
    assert result.ok
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)
    raw = backend.embed_path(faces["big.png"]).embedding
    assert np.allclose(result.embedding, raw / np.linalg.norm(raw), atol=1e-6)


# ---------------------------------------------------------------------------- statuses


@pytest.mark.slow
def test_statuses(backend, faces, offline):
    assert backend.embed_path(faces["empty.jpg"]).status is FaceStatus.UNREADABLE
    # enforce_detection stays on: a flat image is no_face, not a whole-image "face"
    flat = backend.embed_path(faces["flat_gray.png"])
    assert flat.status is FaceStatus.NO_FACE and flat.n_faces == 0 and flat.embedding is None
    bad = backend.embed(np.zeros((20, 20), np.uint8))
    assert bad.status is FaceStatus.ERROR and "RGB" in bad.detail


@pytest.mark.slow
def test_two_faces_reject_and_largest(backend, home, faces, monkeypatch, offline):
    monkeypatch.setenv("DEEPFACE_HOME", str(home))
    rejected = DeepFaceBackend(multiple_faces="reject").embed_path(faces["two_faces.png"])
    assert rejected.status is FaceStatus.MULTIPLE_FACES and rejected.n_faces == 2

    largest = backend.embed_path(faces["two_faces.png"])
    assert largest.ok and largest.n_faces == 2
    big = backend.embed_path(faces["big.png"]).embedding
    small = backend.embed_path(faces["small.png"]).embedding
    assert cosine(largest.embedding, big) > cosine(largest.embedding, small)
    assert cosine(largest.embedding, big) > 0.97


@pytest.mark.slow
def test_determinism_and_pickling(backend, home, faces, monkeypatch, offline):
    monkeypatch.setenv("DEEPFACE_HOME", str(home))
    first = backend.embed_path(faces["big.png"]).embedding
    assert np.array_equal(backend.embed_path(faces["big.png"]).embedding, first)

    before = pickle.loads(pickle.dumps(DeepFaceBackend()))
    assert before._represent is None
    assert np.array_equal(before.embed_path(faces["big.png"]).embedding, first)

    after = pickle.loads(pickle.dumps(backend))
    assert after._represent is None and backend._represent is not None
    assert np.array_equal(after.embed_path(faces["big.png"]).embedding, first)


def test_importing_deepface_keeps_the_process_warning_filters(tmp_path):
    # deepface runs warnings.filterwarnings("ignore") when imported; the adapter undoes it.
    # A fresh interpreter, because this process may have imported deepface already.
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "from audit.backends.deepface import _import_deepface\n"
        "before = list(warnings.filters)\n"
        "_import_deepface()\n"
        "import sys; assert 'deepface.DeepFace' in sys.modules\n"
        "assert list(warnings.filters) == before, warnings.filters[:3]\n"
    )
    env = {**os.environ, "DEEPFACE_HOME": str(tmp_path), "PYTHONPATH": str(Path(adapter.__file__).parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
