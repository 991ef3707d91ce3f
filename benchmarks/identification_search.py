"""1:N search throughput: exact blocked search against a naive per-probe loop, and faiss indexes.

A gallery of synthetic 512-D unit embeddings with identity structure (cluster centres for
"look-alike" populations, one vector per enrolled identity) is searched by probes that are noisy
copies of enrolled identities (mated) or fresh identities (non-mated). For each method the table
gives the time to enrol, search throughput (probes/s), memory (index bytes and the peak extra
resident memory of the search), and recall@k against exact search.

The naive loop (``scores = G @ p`` per probe, then ``np.argsort``) is timed on fewer probes and its
throughput extrapolated per probe; the exact search must return the same top-k on those probes.

Run (about 2-4 minutes on 2 cores)::

    python benchmarks/identification_search.py                 # 300,000 x 512, 2,000 probes, naive on 200
    python benchmarks/identification_search.py --gallery 20000 --probes 500 --naive-probes 100 --no-hnsw

Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.identification.search import ExactSearch, recall_at_k  # noqa: E402


# ------------------------------------------------------------------------------ memory
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM) on Linux; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Peak:
    """Peak extra resident memory (MB) of a block, above what was resident when it started."""

    def __enter__(self):
        self.ok = _reset_peak()
        self.base = _rss_mb()
        return self

    def __exit__(self, *exc):
        self.extra = max(0.0, _peak_mb() - self.base) if self.ok else float("nan")
        return False


# ------------------------------------------------------------------------------ data
def synthetic(n: int, d: int, n_probes: int, *, seed: int = 0, centres: int = 2000, chunk: int = 50_000):
    """Unit gallery (n, d) float32 and probes: half noisy copies of enrolled vectors, half new identities."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    g = np.empty((n, d), np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        x = c[rng.integers(0, centres, b - a)] + 1.2 * rng.standard_normal((b - a, d)).astype(np.float32) / np.sqrt(d)
        g[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    m = n_probes // 2
    mated = g[rng.integers(0, n, m)] + 0.6 * rng.standard_normal((m, d)).astype(np.float32) / np.sqrt(d)
    fresh = c[rng.integers(0, centres, n_probes - m)] + 1.2 * rng.standard_normal((n_probes - m, d)).astype(np.float32) / np.sqrt(d)
    p = np.vstack([mated, fresh]).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return g, p


# ------------------------------------------------------------------------------ methods
def naive(g: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """One matrix-vector product and a full argsort per probe."""
    ids = np.empty((p.shape[0], k), np.int64)
    with Peak() as mem:
        t0 = time.perf_counter()
        for i in range(p.shape[0]):
            s = g @ p[i]
            ids[i] = np.argsort(-s, kind="stable")[:k]
        dt = time.perf_counter() - t0
    return ids, dt, mem.extra


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gallery", type=int, default=300_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--probes", type=int, default=2000, help="probes for the fast paths")
    ap.add_argument("--naive-probes", type=int, default=200, help="probes for the naive loop (extrapolated)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--no-hnsw", action="store_true", help="skip HNSW (its build is the slowest step)")
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=32)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    g, p = synthetic(args.gallery, args.dim, args.probes)
    print(f"# gallery {args.gallery:,} x {args.dim} float32 ({g.nbytes / 2**20:,.0f} MiB), {args.probes:,} probes "
          f"(half mated), k = {args.k}; data made in {time.perf_counter() - t0:.1f} s")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}, "
          f"python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []

    # naive loop: the gallery array itself is the index; enrol = normalise + copy
    t = time.perf_counter()
    g_naive = np.ascontiguousarray(g / np.linalg.norm(g, axis=1, keepdims=True), dtype=np.float32)
    enrol_naive = time.perf_counter() - t
    pn = p[: args.naive_probes]
    naive_ids, naive_s, naive_mem = naive(g_naive, pn, args.k)
    naive_rate = pn.shape[0] / naive_s
    print(f"# naive loop: {naive_s:.1f} s for {pn.shape[0]} probes", file=sys.stderr, flush=True)
    rows.append(("naive loop (G @ p, argsort)", enrol_naive, naive_rate, g_naive.nbytes / 2**20, naive_mem, float("nan"),
                 f"{pn.shape[0]} probes, extrapolated"))
    del g_naive

    exact = ExactSearch(metric="cosine")
    exact.enrol(g, np.arange(args.gallery))
    with Peak() as mem:
        t = time.perf_counter()
        e = exact.search(p, args.k)
        exact_s = time.perf_counter() - t
    print(f"# exact: enrol {exact.enrol_seconds:.1f} s, search {exact_s:.1f} s", file=sys.stderr, flush=True)
    same = np.array_equal(e.ids[: pn.shape[0]], naive_ids)
    agree = recall_at_k(naive_ids, e.ids[: pn.shape[0]])
    rows.append(("exact blocked (ExactSearch)", exact.enrol_seconds, p.shape[0] / exact_s, exact.nbytes / 2**20, mem.extra, 1.0,
                 f"tile {exact._tile_rows()} probes; top-{args.k} identical to naive: {same} (overlap {agree:.4f})"))

    if not args.no_faiss:
        try:
            import faiss  # noqa: F401

            from audit.identification.search_faiss import FaissSearch
        except ImportError:
            print("# faiss not installed (pip install faiss-cpu): faiss rows skipped")
        else:
            kinds = [("faiss IndexFlatIP", dict(index="flat"))]
            kinds.append((f"faiss IVFFlat nlist={args.nlist} nprobe={args.nprobe}",
                          dict(index="ivf", nlist=args.nlist, nprobe=args.nprobe, train_size=50_000)))
            if not args.no_hnsw:
                kinds.append((f"faiss HNSWFlat M={args.hnsw_m} efC={args.ef_construction} efS={args.ef_search}",
                              dict(index="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                                   ef_search=args.ef_search)))
            for label, opts in kinds:
                fs = FaissSearch(metric="cosine", **opts)
                fs.enrol(g, np.arange(args.gallery))
                with Peak() as mem:
                    t = time.perf_counter()
                    h = fs.search(p, args.k)
                    s = time.perf_counter() - t
                print(f"# {label}: enrol {fs.enrol_seconds:.1f} s, search {s:.1f} s", file=sys.stderr, flush=True)
                rows.append((label, fs.enrol_seconds, p.shape[0] / s, fs.nbytes / 2**20, mem.extra,
                             recall_at_k(h.ids, e.ids), f"top-1 agreement {(h.ids[:, 0] == e.ids[:, 0]).mean():.4f}"))
                del fs

    w = max(len(r[0]) for r in rows)
    print()
    print(f"| {'method':<{w}} | enrol s | probes/s | x naive | index MiB | search peak extra MiB | recall@{args.k} | note |")
    print(f"|{'-' * (w + 2)}|--------:|---------:|--------:|----------:|----------------------:|----------:|------|")
    for name, enrol_s, rate, mib, extra, rec, note in rows:
        rec_s = "—" if np.isnan(rec) else f"{rec:.4f}"
        extra_s = "—" if np.isnan(extra) else f"{extra:,.0f}"
        print(f"| {name:<{w}} | {enrol_s:7.2f} | {rate:8,.0f} | {rate / naive_rate:7.1f} | {mib:9,.0f} | {extra_s:>21} | "
              f"{rec_s:>9} | {note} |")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    print(f"\n# exact search of {p.shape[0]:,} probes: {exact_s:.2f} s; naive loop: {naive_s / pn.shape[0] * 1000:.1f} ms per probe; "
          f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
