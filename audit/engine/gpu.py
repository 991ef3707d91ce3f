"""GPU paths: ONNX models through onnxruntime's CUDA provider with batching, and the scan's matrix
products on a GPU (CuPy or torch), screened and rescored exactly as on the CPU.

The scan on a GPU
-----------------
:class:`DeviceTileRunner` uploads the augmented rows once per pass and computes each tile's float32
product on the device, copied into the host buffer the kernel counts from (a second thread
computes the next tile while this one counts). Screening is unchanged: the bound ``delta`` of
:mod:`audit.engine.geometry` is Higham's bound for a float32 dot product summed in *any* order,
with or without fused multiply-adds, which covers cuBLAS; TF32 (10-bit mantissas) is not covered,
so it is turned off (torch: ``allow_tf32 = False``, ``float32_matmul_precision = "highest"``;
CuPy: ``CUPY_TF32`` must not be 1). Pairs near a threshold are rescored canonically on the CPU as
always, so thresholds and counts equal the CPU engine's exactly. What moves to the GPU is the
product; the counting stays on the CPU, so the gain is bounded by how fast the CPU counts
(``benchmarks/gpu_engine.py`` prints both).

Not run on a GPU in this project's CI (no GPU there): the selection and fall-back logic and the
runner's plumbing are tested on the CPU (``tests/engine/test_gpu.py``).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import MissingDependencyError

__all__ = ["onnx_providers", "OnnxBatchRunner", "matmul_device", "DeviceTileRunner"]

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def onnx_providers(device: str = "auto", *, available: Sequence[str] | None = None) -> list[str]:
    """onnxruntime execution providers for ``device``: ``"cpu"``; ``"cuda"`` (an error when the
    CUDA provider is absent); ``"auto"`` (CUDA when present, else the CPU)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if available is None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("ONNX models need onnxruntime: pip install 'face-audit[deepface]' (or onnxruntime-gpu)") from None
        available = ort.get_available_providers()
    if device == "cpu":
        return [CPU_EP]
    if CUDA_EP in available:
        return [CUDA_EP, CPU_EP]
    if device == "cuda":
        raise MissingDependencyError(
            f"device 'cuda' asked for, but onnxruntime offers only {list(available)}: install onnxruntime-gpu "
            "(in place of onnxruntime) on a machine with an NVIDIA GPU and CUDA, or use device 'auto'/'cpu'"
        )
    return [CPU_EP]


class OnnxBatchRunner:
    """An ONNX model run on batches along the first axis, on the best provider for ``device``.

    Parameters
    ----------
    model : path or bytes
        An ONNX model whose first input has a free batch dimension.
    device : {"auto", "cpu", "cuda"}, default "auto"
    batch_size : int, default 64
        Rows per ``run`` (GPUs want large batches; outputs do not depend on it beyond float rounding
        of the provider's kernels).
    """

    def __init__(self, model: str | os.PathLike | bytes, *, device: str = "auto", batch_size: int = 64) -> None:
        import onnxruntime as ort

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        src = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(src, sess_options=opts, providers=onnx_providers(device))
        self.providers = list(self.session.get_providers())
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = int(batch_size)

    @property
    def on_gpu(self) -> bool:
        return self.providers[:1] == [CUDA_EP]

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for every row of ``x`` (float32), in batches."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        outs = [self.session.run(None, {self.input_name: x[a:a + self.batch_size]})[0]
                for a in range(0, x.shape[0], self.batch_size)]
        return np.concatenate(outs) if outs else np.empty((0,), np.float32)


class _Cupy:
    name = "cupy"

    def __init__(self, cp) -> None:
        if os.environ.get("CUPY_TF32", "0") == "1":
            raise MissingDependencyError("CUPY_TF32=1 makes CuPy's float32 products TF32, outside the screening bound; unset it")
        self.cp = cp

    def upload(self, a: np.ndarray):
        return self.cp.asarray(a)

    def matmul_into(self, a, b, out: np.ndarray) -> None:
        self.cp.matmul(a, b).get(out=out)


class _Torch:
    name = "torch"

    def __init__(self, torch) -> None:
        torch.backends.cuda.matmul.allow_tf32 = False  # TF32 is outside the screening bound
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        self.torch = torch
        self.dev = torch.device("cuda")

    def upload(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.dev)

    def matmul_into(self, a, b, out: np.ndarray) -> None:
        out[...] = (a @ b).cpu().numpy()


def matmul_device(device: str = "auto"):
    """A GPU for the scan's products, or None: CuPy first, then torch. ``"cuda"`` raises when
    neither finds a GPU; ``"auto"`` falls back to None (the CPU); ``"cpu"`` is None."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        return None
    why = []
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return _Cupy(cupy)
        why.append("CuPy sees no GPU")
    except ImportError:
        why.append("CuPy is not installed")
    except Exception as exc:  # a CUDA driver error: no usable GPU
        why.append(f"CuPy: {type(exc).__name__}: {exc}")
    try:
        import torch

        if torch.cuda.is_available():
            return _Torch(torch)
        why.append("torch sees no GPU")
    except ImportError:
        why.append("torch is not installed")
    if device == "cuda":
        raise MissingDependencyError(
            "device 'cuda' asked for, but " + "; ".join(why) + ". Install the gpu extra (pip install 'face-audit[gpu]', "
            "CuPy for CUDA 12) on a machine with an NVIDIA GPU, or use device 'auto'/'cpu'"
        )
    return None


class DeviceTileRunner:
    """Runs the scan's passes in this process with the products on ``device`` (see the module
    docstring); a drop-in ``engine`` for :func:`audit.engine.scan.score_tiles`."""

    kind = "gpu"
    workers = 1

    def __init__(self, device: Any) -> None:
        self.device = device

    def run_tiles(self, geo, tiles, kw: dict, *, progress: bool = False, desc: str = "scoring pairs") -> list[dict]:
        import time

        from tqdm.auto import tqdm

        from .geometry import _tile_pairs
        from .kernel import _Kernel

        kern = _Kernel(geo, **kw)
        d_lhs, d_rhs = self.device.upload(geo.lhs), self.device.upload(geo.rhs)

        def product(tile, buf):
            r0, r1, c0, c1 = tile
            S = buf[: (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0)
            t0 = time.perf_counter()
            self.device.matmul_into(d_lhs[r0:r1], d_rhs[:, c0:c1], S)
            kern.seconds_matmul += time.perf_counter() - t0
            return S

        kern.product = product
        with tqdm(total=sum(_tile_pairs(t) for t in tiles), desc=desc, unit="pair", unit_scale=True, disable=not progress,
                  leave=True, mininterval=0.5) as bar:
            if progress:
                kern.on_tile = bar.update
            kern.run_all(tiles, overlap=True)  # the next product on the device while this thread counts
        return [kern.result()]
