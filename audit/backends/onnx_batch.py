"""A backend's recognition step on batches of aligned faces through onnxruntime, on a GPU when present.

Detection and alignment stay what each backend does today, one image at a time; only the last step
(the recognition network on the aligned face) changes: the faces of a batch of images are stacked
and run through one :class:`OnnxBatchRunner` session, on onnxruntime's CUDA provider when asked for
and present, else its CPU provider. Backends that offer it mix in :class:`BatchedRecognition`
(``opencv-sface``, and ``deepface`` for its ONNX recognition models).

Why the backend fingerprint does not change
-------------------------------------------
The batched path feeds the recognition network the same input (same weights, detection, alignment
and preprocessing) and differs from today's path only in the inference engine's arithmetic:
onnxruntime's kernels instead of OpenCV's DNN (SFace), another provider or batch size (float32
summation order). Measured on the 204 London photos (``benchmarks/gpu_engine.py --parts b``):
SFace's raw features differ by at most 5.25e-6 (of values up to 5.14), unit embeddings by 4.1e-7,
cosine to today's at least 0.99999998; batch size changes nothing beyond that (``tests/backends/test_batched_recognition.py``). That is the size of the difference
between two CPUs' instruction sets, which one fingerprint already covers (deepface's own sessions
also pick the CUDA provider whenever onnxruntime-gpu is installed, under the same fingerprint). So
embeddings from either path share one cache entry, and a cache filled on a GPU serves a CPU run.

Graphs whose *activations* are quantised (QuantizeLinear, QLinearConv, integer convolutions)
are refused: their int8 rounding differs between engines by more than float rounding. Weight-only
quantisation (DequantizeLinear on initialisers, as in the int8bq SFace file) computes in float32
and is accepted.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import BackendError, MissingDependencyError, UnreadableImageError
from ..images import read_rgb
from .base import FaceResult, FaceStatus, invalid_image

__all__ = ["onnx_providers", "OnnxBatchRunner", "free_batch_model", "BatchedRecognition", "RECOGNITION_DEVICES",
           "CUDA_EP", "CPU_EP"]

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
RECOGNITION_DEVICES = ("cpu", "cuda", "auto")
#: operators that quantise activations: their integer rounding is the engine's own
_ACTIVATION_QUANT_OPS = {"QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                         "MatMulInteger", "QLinearAdd", "QLinearMul"}


def onnx_providers(device: str = "auto", *, available: Sequence[str] | None = None) -> list[str]:
    """onnxruntime execution providers for ``device``: ``"cpu"``; ``"cuda"`` (an error when the
    CUDA provider is absent); ``"auto"`` (CUDA when present, else the CPU)."""
    if device not in RECOGNITION_DEVICES:
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
    threads : int, optional
        onnxruntime's intra-op threads on the CPU. Default: ``$OMP_NUM_THREADS`` when set (1 in
        face-audit's worker processes and Ray actors), else onnxruntime's own choice.
    """

    def __init__(self, model: str | os.PathLike | bytes, *, device: str = "auto", batch_size: int = 64,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is None and (os.environ.get("OMP_NUM_THREADS") or "").isdigit():
            threads = int(os.environ["OMP_NUM_THREADS"])
        if threads:
            opts.intra_op_num_threads = int(threads)
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


def free_batch_model(data: bytes, *, what: str = "the ONNX model") -> bytes:
    """``data`` (an ONNX model) rewritten for onnxruntime with a free batch axis.

    OpenCV-zoo graphs (SFace) fix the batch at 1, and their block-quantised builds also list every
    weight as a graph input that nothing feeds (OpenCV ignores them; onnxruntime demands them).
    This drops graph inputs no node reads, makes the first axis of the first input and of the
    outputs symbolic, and forgets the stored intermediate shapes. Weights and operators are
    untouched. Needs the ``onnx`` package (``pip install 'face-audit[onnx]'``).

    Raises
    ------
    BackendError
        The graph quantises activations (see the module docstring), naming ``what``.
    """
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(
            f"running {what} on onnxruntime in batches needs the onnx package ({exc}): pip install 'face-audit[onnx]'"
        ) from exc
    m = onnx.load_from_string(data)
    g = m.graph
    quant = sorted({n.op_type for n in g.node} & _ACTIVATION_QUANT_OPS)
    if quant:
        raise BackendError(
            f"{what} quantises activations ({', '.join(quant)}): its integer rounding differs between OpenCV and "
            "onnxruntime, so the batched path would change embeddings beyond float rounding. Use a float32 or "
            "weight-only (int8bq) build, or set [engine] recognition = \"native\"."
        )
    used = {i for n in g.node for i in n.input}
    keep = [v for v in g.input if v.name in used]
    del g.input[:]
    g.input.extend(keep)
    for v in [*g.input[:1], *g.output]:
        dims = v.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "N"
    del g.value_info[:]
    return m.SerializeToString()


def _cuda_offered() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return CUDA_EP in ort.get_available_providers()


class _Prepared:
    __slots__ = ("row", "n_faces")

    def __init__(self, row: np.ndarray, n_faces: int) -> None:
        self.row, self.n_faces = row, n_faces


class BatchedRecognition:
    """Mixin for a :class:`~audit.backends.base.Backend` whose recognition step is an ONNX model.

    A subclass implements :meth:`_recognition_prepare` (detection and alignment of one image: a
    failure :class:`FaceResult`, or the network's input row and the number of faces found),
    :meth:`_recognition_run` (the network on stacked rows, raw outputs) and
    :meth:`_recognition_finish` (one raw output to the :class:`FaceResult` today's path returns).
    :meth:`with_recognition` returns a copy that embeds through that path.
    """

    recognition_device: str | None = None  # None: today's path; "cpu" | "cuda" | "auto"
    recognition_batch: int = 64

    def with_recognition(self, device: str | None, batch_size: int = 64):
        """A copy of this backend that runs its recognition step on batches on ``device``:
        ``"cuda"`` (an error without onnxruntime's CUDA provider), ``"cpu"`` (onnxruntime's CPU
        provider: the same path, checkable on any machine), ``"auto"`` (CUDA when present, else
        today's path), or None (today's path)."""
        if device is not None and device not in RECOGNITION_DEVICES:
            raise BackendError(f"recognition device must be one of {RECOGNITION_DEVICES} or None, got {device!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise BackendError(f"recognition batch size must be an integer >= 1, got {batch_size!r}")
        other = object.__new__(type(self))  # shares the loaded models (copy.copy would pickle them away)
        other.__dict__.update(self.__dict__)
        other.recognition_device, other.recognition_batch = device, int(batch_size)
        other._runner = None
        other._auto_native = False
        return other

    def _drop_runner(self, state: dict) -> dict:
        state["_runner"] = None
        state["_auto_native"] = False
        return state

    def batched_recognition_active(self) -> bool:
        """Whether :meth:`embed_paths` takes the batched path. Loads the backend and builds the
        session on first call, so that a missing provider, package or ONNX model raises here."""
        if self.recognition_device is None or getattr(self, "_auto_native", False):
            return False
        if self.recognition_device == "auto" and not _cuda_offered():
            self._auto_native = True  # no CUDA provider: today's path, without building anything
            return False
        runner = self._batch_runner()
        if self.recognition_device == "auto" and (runner is None or not runner.on_gpu):
            self._auto_native = True  # no GPU (or no ONNX step) here: today's path
            self._runner = None
            return False
        return runner is not None

    def _batch_runner(self) -> OnnxBatchRunner | None:
        if getattr(self, "_runner", None) is None:
            self.load()  # type: ignore[attr-defined]
            self._runner = self._build_runner(self.recognition_device or "cpu", self.recognition_batch)
        return self._runner

    def recognition_providers(self) -> list[str]:
        """onnxruntime's providers of the batched path ([] on today's path)."""
        if not self.batched_recognition_active():
            return []
        runner = self._batch_runner()
        return [] if runner is None else list(runner.providers)

    def embed_paths(self, paths: Sequence[str]) -> list[FaceResult]:
        """Embed several image files: on the batched path when active (one network run for the
        batch's faces), else one by one as :meth:`embed_path` does."""
        if not self.batched_recognition_active():
            return [self.embed_path(p) for p in paths]  # type: ignore[attr-defined]
        out: list[FaceResult | None] = [None] * len(paths)
        todo: list[tuple[int, _Prepared]] = []
        for i, p in enumerate(paths):
            try:
                image = read_rgb(p)
            except UnreadableImageError as exc:
                out[i] = FaceResult(FaceStatus.UNREADABLE, detail=str(exc))
                continue
            bad = invalid_image(image)
            if bad is not None:
                out[i] = bad
                continue
            try:
                prep = self._recognition_prepare(image)
            except (MemoryError, KeyboardInterrupt, BackendError):
                raise
            except Exception as exc:  # a per-image failure must not stop the run
                out[i] = FaceResult(FaceStatus.ERROR, detail=f"{type(exc).__name__}: {exc}")
                continue
            if isinstance(prep, FaceResult):
                out[i] = prep
            else:
                todo.append((i, _Prepared(*prep)))
        if todo:
            raw = np.asarray(self._recognition_run(np.stack([t.row for _, t in todo])))
            raw = raw.reshape(len(todo), -1)
            for (i, t), r in zip(todo, raw):
                out[i] = self._recognition_finish(r, t.n_faces)
        return [r for r in out if r is not None]

    # ------------------------------------------------------------------ subclass hooks

    def _build_runner(self, device: str, batch_size: int) -> OnnxBatchRunner | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _recognition_prepare(self, image: np.ndarray) -> FaceResult | tuple[np.ndarray, int]:  # pragma: no cover
        raise NotImplementedError

    def _recognition_run(self, rows: np.ndarray) -> Any:
        runner = self._batch_runner()
        if runner is None:  # pragma: no cover - _build_runner raises instead
            raise BackendError("internal: the batched recognition path has no runner")
        return runner.run(rows)

    def _recognition_finish(self, raw: np.ndarray, n_faces: int) -> FaceResult:  # pragma: no cover - abstract
        raise NotImplementedError
