"""Embedding throughput (images/s) of each backend with 1 and 2 worker processes.

Each measurement embeds the same London images into a fresh, empty cache, so every image is
computed. Worker start-up (process spawn + model load) is included: it is what a user waits for.

    python benchmarks/embed_throughput.py --images 48
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

from audit.backends.registry import create_backend  # noqa: E402
from audit.datasets import load_dataset  # noqa: E402
from audit.engine import embed_missing  # noqa: E402
from audit.store import EmbeddingStore  # noqa: E402

BACKENDS = {
    "dlib": ("dlib", {}),
    "deepface-Dlib": ("deepface", {"model": "Dlib", "detector": "opencv"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48, help="London images to embed per measurement")
    ap.add_argument("--data-dir", default=os.environ.get("FACE_AUDIT_MIRROR", str(REPO.parent / "shared" / "datasets")))
    ap.add_argument("--backends", nargs="*", default=list(BACKENDS))
    args = ap.parse_args()
    table = load_dataset("london", data_dir=args.data_dir, download=False)
    df = table.data.iloc[: args.images]
    paths = dict(zip(df["sha256"], df["path"]))
    print(f"{len(paths)} London images (1350x1350), {os.cpu_count()} CPUs")
    print(f"{'backend':16s} {'workers':>7s} {'seconds':>8s} {'img/s':>7s} {'speed-up':>8s}")
    for label in args.backends:
        name, opts = BACKENDS[label]
        base = None
        for workers in (1, 2):
            backend = create_backend(name, **opts)
            backend.load()
            with tempfile.TemporaryDirectory() as tmp, EmbeddingStore(tmp, backend.info()) as store:
                t0 = time.perf_counter()
                stats = embed_missing(backend, paths, store, workers=workers, batch_size=4, progress=False)
                secs = time.perf_counter() - t0
            rate = stats.computed / secs
            base = base or rate
            print(f"{label:16s} {workers:7d} {secs:8.1f} {rate:7.2f} {rate / base:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
