"""GPU paths: ONNX models through onnxruntime's CUDA provider with batching (the backends'
recognition step: :mod:`audit.backends.onnx_batch`, re-exported here), and the scan's matrix
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
from typing import Any

import numpy as np

from ..backends.onnx_batch import CPU_EP, CUDA_EP, OnnxBatchRunner, onnx_providers  # noqa: F401 (re-exported)
from ..errors import MissingDependencyError

__all__ = ["onnx_providers", "OnnxBatchRunner", "matmul_device", "DeviceTileRunner"]


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
