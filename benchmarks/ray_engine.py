"""The Ray engine on this machine against the local engine: the all-pairs scan and embedding.

(a) Scan: N synthetic unit vectors (default 100,000 × 128, 14 groups, 5 images per subject, as in
    ``benchmarks/tiled_scoring.py``): ``score_tiles`` + thresholds at FMR 1e-3, 1e-4, 1e-5 + exact
    per-cell and per-subject counts, with the local engine (2 worker processes) and with its passes
    as Ray tasks on a local Ray instance of 2 CPUs. Checks that thresholds and counts are identical
    and prints the ratio (target: Ray <= 1.25x local). Ray's start-up is printed apart: a cluster
    pays it once, not per scan.
(b) Embedding: London's images with a real backend (default opencv-sface), 2 local worker
    processes against 2 Ray Data actors, each into an empty store; images/s, and a check that the
    embeddings are identical.

    python benchmarks/ray_engine.py                     # both parts (a few minutes on 2 cores)
    python benchmarks/ray_engine.py --parts a --n 20000 --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

TARGETS = [1e-3, 1e-4, 1e-5]


def scan_once(emb, subj, grp, engine, workers):
    from audit.engine.scan import score_tiles

    t0 = time.perf_counter()
    scan = score_tiles(emb, subj, grp, metric="cosine", max_fmr=1e-3, tile=4096, workers=workers, engine=engine)
    th = scan.thresholds_at_fmr(TARGETS)
    counts = scan.counts_at(th)
    return time.perf_counter() - t0, th, counts


def part_a(args) -> None:
    from tiled_scoring import GROUPS, make_data

    from audit.engine import ray_runtime
    from audit.engine.ray_scan import RayTileRunner

    emb, subj, grp = make_data(args.n, args.d)
    t0 = time.perf_counter()
    ray_runtime.connect(num_cpus=args.cpus, object_store_memory=args.object_store_mb << 20)
    print(f"(a) N = {args.n:,} x {args.d}, {GROUPS} groups, {args.n * (args.n - 1) // 2:.3g} pairs; "
          f"Ray start-up (local instance, {args.cpus} CPUs): {time.perf_counter() - t0:.1f} s")
    runner = RayTileRunner()
    scan_once(emb[:3000], subj[:3000], grp[:3000], runner, 1)  # warm the Ray workers (imports, numba cache)
    best = {"local": np.inf, "ray": np.inf}
    ref = None
    for r in range(args.rounds):
        for name in ("local", "ray"):
            sec, th, counts = scan_once(emb, subj, grp, runner if name == "ray" else None, args.cpus)
            best[name] = min(best[name], sec)
            print(f"  round {r + 1}: {name:5s} {sec:7.2f} s")
            if ref is None:
                ref = (th, counts)
            else:
                assert np.array_equal(ref[0], th), "thresholds differ"
                for f in ("false_matches", "impostors", "false_non_matches", "subject_false_matches", "subject_impostors"):
                    assert np.array_equal(getattr(ref[1], f), getattr(counts, f)), f
    ratio = best["ray"] / best["local"]
    print(f"  best: local {best['local']:.2f} s, ray {best['ray']:.2f} s: ray/local = {ratio:.2f}x "
          f"(target <= 1.25x); thresholds and counts identical: True")
    print(f"  pairs/s: local {args.n * (args.n - 1) / 2 / best['local']:.3g}, ray {args.n * (args.n - 1) / 2 / best['ray']:.3g}")
    ray_runtime.disconnect()


def part_b(args) -> None:
    from audit.backends.registry import create_backend
    from audit.datasets import load_dataset
    from audit.engine import ray_runtime
    from audit.engine.local import embed_missing
    from audit.engine.ray_embed import embed_missing_ray
    from audit.store import EmbeddingStore

    data = Path(os.environ.get("FACE_AUDIT_MIRROR", REPO.parent / "shared" / "datasets"))
    table = load_dataset("london", data_dir=data, download=False)
    paths = dict(zip(table.data["sha256"], table.data["path"]))
    backend = create_backend(args.backend)
    backend.load()
    info = backend.info()
    t0 = time.perf_counter()
    ray_runtime.connect(num_cpus=args.cpus, object_store_memory=args.object_store_mb << 20)
    print(f"(b) {len(paths)} London images, backend {info.backend}:{info.model}; Ray start-up {time.perf_counter() - t0:.1f} s")
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in ("local", "ray"):
                with EmbeddingStore(Path(tmp) / f"{name}{r}", info) as store:
                    fn = embed_missing_ray if name == "ray" else embed_missing
                    t = time.perf_counter()
                    st = fn(backend, paths, store, workers=args.cpus, batch_size=8, progress=False)
                    wall = time.perf_counter() - t
                    got[name] = store.get_many(paths)
                print(f"  round {r + 1}: {name:5s} {st.computed} images in {wall:.1f} s: {st.computed / wall:.1f} images/s "
                      f"({args.cpus} {'actors' if name == 'ray' else 'processes'}, model loading included)")
    same = all((got["local"][s].embedding is None and got["ray"][s].embedding is None) or
               np.array_equal(got["local"][s].embedding, got["ray"][s].embedding) for s in paths)
    print(f"  embeddings identical: {same}")
    ray_runtime.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="ab")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--object-store-mb", type=int, default=512)
    ap.add_argument("--backend", default="opencv-sface")
    args = ap.parse_args()
    if "a" in args.parts:
        part_a(args)
    if "b" in args.parts:
        part_b(args)


if __name__ == "__main__":
    main()
