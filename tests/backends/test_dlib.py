"""The dlib backend on real faces (London set, FairFace) and on synthetic bad inputs in tmp_path."""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib", reason="the dlib extra is not installed")
face_recognition_models = pytest.importorskip("face_recognition_models", reason="the dlib extra is not installed")

from audit.backends.base import FaceStatus  # noqa: E402
from audit.backends.dlib import ADAPTER_VERSION, DESCRIPTOR_FILE, PREDICTOR_FILE, DlibBackend  # noqa: E402
from audit.errors import BackendError, MissingDependencyError, MissingWeightsError  # noqa: E402
from audit.images import read_rgb, sha256_file  # noqa: E402


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


def dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


@pytest.fixture(scope="module")
def backend() -> DlibBackend:
    b = DlibBackend()
    b.load()
    return b


@pytest.fixture(scope="module")
def images(datasets, tmp_path_factory) -> dict[str, Path]:
    """Synthetic inputs, all derived from real faces and written to a temporary folder."""
    from PIL import Image

    out = tmp_path_factory.mktemp("dlib_inputs")
    face = _resized(london(datasets, 1), 400)  # subject 001, face about 160 px wide
    small = _resized(london(datasets, 2), 200)  # subject 002
    paths: dict[str, Path] = {}

    def save(name: str, im: Image.Image, **kw) -> None:
        paths[name] = out / name
        im.save(paths[name], **kw)

    save("face.png", Image.fromarray(face))
    save("small.png", Image.fromarray(small))
    (out / "empty.jpg").write_bytes(b"")
    paths["empty.jpg"] = out / "empty.jpg"
    full = london(datasets, 1).read_bytes()
    (out / "truncated.jpg").write_bytes(full[: len(full) // 3])
    paths["truncated.jpg"] = out / "truncated.jpg"
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:60, :60] = 0  # a transparent corner, composited onto white by read_rgb
    save("rgba.png", Image.fromarray(np.dstack([face, alpha]), "RGBA"))
    gray = Image.fromarray(face).convert("L")
    save("gray.png", gray)
    save("gray16.png", Image.fromarray((np.asarray(gray).astype(np.uint16) * 257)).convert("I;16"))
    # stored rotated 90 degrees counter-clockwise; EXIF orientation 6 says "rotate 90 clockwise to view"
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(face, k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif_rotated.jpg", rotated, exif=exif.tobytes(), quality=95)
    save("upright.jpg", Image.fromarray(face), quality=95)
    save("flat_gray.png", Image.fromarray(np.full((300, 300, 3), 128, np.uint8)))
    canvas = np.full((400, 620, 3), 128, np.uint8)
    canvas[:, :400] = face
    canvas[100:300, 420:] = small
    save("two_faces.png", Image.fromarray(canvas))
    return paths


# ---------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"upsample": -1}, "upsample"),
        ({"upsample": 1.5}, "upsample"),
        ({"upsample": True}, "upsample"),
        ({"max_detect_side": 10}, "max_detect_side"),
        ({"max_detect_side": "800"}, "max_detect_side"),
        ({"multiple_faces": "all"}, "multiple_faces"),
        ({"jitter": -2}, "jitter"),
        ({"weights_dir": 3}, "weights_dir"),
    ],
)
def test_invalid_options_raise_clear_errors(kwargs, word):
    with pytest.raises(BackendError, match=word):
        DlibBackend(**kwargs)


def test_missing_dlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'face-audit\[dlib\]'"):
        DlibBackend().load()


def test_missing_weights_name_file_folder_and_url(tmp_path):
    backend = DlibBackend(weights_dir=tmp_path)
    with pytest.raises(MissingWeightsError) as err:
        backend.load()
    message = str(err.value)
    assert PREDICTOR_FILE in message and DESCRIPTOR_FILE in message
    assert str(tmp_path) in message
    assert "dlib.net/files/" in message


def test_weights_dir_with_the_same_files_gives_the_same_hash(tmp_path, backend):
    models = Path(face_recognition_models.face_recognition_model_location()).parent
    for name in (PREDICTOR_FILE, DESCRIPTOR_FILE):
        (tmp_path / name).symlink_to(models / name)
    other = DlibBackend(weights_dir=tmp_path)
    assert other.info().weights_sha256 == backend.info().weights_sha256
    assert other.info().fingerprint == backend.info().fingerprint


# ---------------------------------------------------------------------------- info


def test_info_fields(backend):
    import dlib

    info = backend.info()
    assert info.backend == "dlib"
    assert info.model == "dlib_resnet_v1"
    assert info.dim == 128
    assert info.metric == "euclidean" and not info.higher_is_similar
    assert info.default_threshold == 0.6
    assert "dlib.net" in info.default_threshold_source
    assert ADAPTER_VERSION in info.version and dlib.__version__ in info.version
    models = Path(face_recognition_models.face_recognition_model_location()).parent
    expected = hashlib.sha256(
        (sha256_file(models / PREDICTOR_FILE) + sha256_file(models / DESCRIPTOR_FILE)).encode()
    ).hexdigest()
    assert info.weights_sha256 == expected
    assert info.options["upsample"] == 1 and info.options["max_detect_side"] == 800
    assert "weights_dir" not in info.options


def test_fingerprint_is_stable_and_tracks_options(backend):
    assert DlibBackend().info().fingerprint == backend.info().fingerprint
    assert pickle.loads(pickle.dumps(backend)).info().fingerprint == backend.info().fingerprint
    assert DlibBackend(upsample=0).info().fingerprint != backend.info().fingerprint
    assert DlibBackend(multiple_faces="reject").info().fingerprint != backend.info().fingerprint
    # dlib treats num_jitters 0 and 1 alike: the same embeddings, the same cache key
    assert DlibBackend(jitter=1).info().fingerprint == backend.info().fingerprint


# ---------------------------------------------------------------------------- statuses


def test_unreadable_files(backend, images):
    for name in ("empty.jpg", "truncated.jpg"):
        result = backend.embed_path(images[name])
        assert result.status is FaceStatus.UNREADABLE, name
        assert result.embedding is None and result.n_faces == 0
        assert name in result.detail


def test_no_face_in_a_flat_image(backend, images):
    result = backend.embed_path(images["flat_gray.png"])
    assert result.status is FaceStatus.NO_FACE
    assert result.n_faces == 0 and result.embedding is None


def test_bad_arrays_give_error_status(backend):
    for bad in (np.zeros((50, 50), np.uint8), np.zeros((50, 50, 3), np.float32), np.zeros((0, 5, 3), np.uint8), "x"):
        result = backend.embed(bad)
        assert result.status is FaceStatus.ERROR
        assert result.detail


def test_image_formats_all_give_the_same_person(backend, images):
    reference = backend.embed_path(images["face.png"])
    assert reference.ok and reference.n_faces == 1
    assert reference.embedding.shape == (128,) and reference.embedding.dtype == np.float32
    for name, limit in (("rgba.png", 0.1), ("upright.jpg", 0.1), ("gray.png", 0.45), ("gray16.png", 0.45)):
        result = backend.embed_path(images[name])
        assert result.ok, (name, result)
        assert dist(result.embedding, reference.embedding) < limit, name


def test_exif_rotated_face_is_embedded_upright(backend, images):
    from PIL import Image

    upright = backend.embed_path(images["upright.jpg"])
    rotated = backend.embed_path(images["exif_rotated.jpg"])
    assert rotated.ok
    assert dist(rotated.embedding, upright.embedding) < 0.05
    # the stored pixels really are sideways: without the EXIF tag the face is not found upright
    with Image.open(images["exif_rotated.jpg"]) as im:
        raw = np.asarray(im.convert("RGB"))
    sideways = backend.embed(raw)
    assert not sideways.ok or dist(sideways.embedding, upright.embedding) > 0.2


def test_two_faces_reject_and_largest(backend, images):
    rejecting = DlibBackend(multiple_faces="reject")
    result = rejecting.embed_path(images["two_faces.png"])
    assert result.status is FaceStatus.MULTIPLE_FACES
    assert result.n_faces == 2 and result.embedding is None

    largest = backend.embed_path(images["two_faces.png"])
    assert largest.ok and largest.n_faces == 2
    big = backend.embed_path(images["face.png"]).embedding
    small = backend.embed_path(images["small.png"]).embedding
    assert dist(largest.embedding, big) < 0.05
    assert dist(largest.embedding, small) > 0.4


# ---------------------------------------------------------------------------- determinism, pickling


def test_same_image_twice_gives_identical_embeddings(backend, images):
    a = backend.embed_path(images["face.png"]).embedding
    b = backend.embed_path(images["face.png"]).embedding
    assert np.array_equal(a, b)


def test_jitter_is_deterministic(images):
    jittered = DlibBackend(jitter=3)
    a = jittered.embed_path(images["face.png"]).embedding
    b = jittered.embed_path(images["face.png"]).embedding
    assert np.array_equal(a, b)
    plain = DlibBackend().embed_path(images["face.png"]).embedding
    assert not np.array_equal(a, plain) and dist(a, plain) < 0.3  # same person, slightly moved


def test_pickle_before_and_after_load(backend, images):
    expected = backend.embed_path(images["face.png"]).embedding

    fresh = DlibBackend()
    copy_before = pickle.loads(pickle.dumps(fresh))
    assert copy_before._encoder is None
    assert np.array_equal(copy_before.embed_path(images["face.png"]).embedding, expected)

    data = pickle.dumps(backend)  # loaded: the dlib objects are left out
    assert len(data) < 10_000
    copy_after = pickle.loads(data)
    assert copy_after._encoder is None and backend._encoder is not None
    assert np.array_equal(copy_after.embed_path(images["face.png"]).embedding, expected)


@pytest.mark.slow
def test_embeds_in_a_spawned_worker_process(backend, images):
    expected = backend.embed_path(images["face.png"]).embedding
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result = pool.submit(backend.embed_path, images["face.png"]).result(timeout=120)
    assert result.ok and np.array_equal(result.embedding, expected)


# ---------------------------------------------------------------------------- real faces


@pytest.mark.slow
def test_same_person_is_closer_than_different_people(backend, datasets):
    subjects = (1, 2, 3, 4, 5)
    neutral = {s: backend.embed_path(london(datasets, s)) for s in subjects}
    smiling = {s: backend.embed_path(london(datasets, s, smiling=True)) for s in subjects}
    for s in subjects:
        assert neutral[s].ok and smiling[s].ok and neutral[s].n_faces == 1
    for s in subjects:
        mated = dist(neutral[s].embedding, smiling[s].embedding)
        impostors = [dist(neutral[s].embedding, smiling[t].embedding) for t in subjects if t != s]
        assert mated < 0.6 < min(impostors), (s, mated, impostors)


@pytest.mark.slow
def test_downscaled_detection_matches_full_resolution(datasets):
    path = london(datasets, 3)
    assert read_rgb(path).shape == (1350, 1350, 3)
    downscaled = DlibBackend(upsample=0).embed_path(path)  # detects on 800x800
    full = DlibBackend(upsample=0, max_detect_side=None).embed_path(path)
    assert downscaled.ok and full.ok
    # landmarks and chip come from the full-resolution image either way
    assert dist(downscaled.embedding, full.embedding) < 0.06
