"""What the people-level intervals add to a real audit: LFW all pairs (dlib, cached embeddings),
the pipeline's scoring time with ``[run] bootstrap = 0`` against the default 1,000 replicates,
alternating in one process so that both see the same machine.

    FACE_AUDIT_MIRROR=../shared/datasets python benchmarks/people_bootstrap_cost.py [CONFIG] [--rounds 2]

Needs the config's embeddings in the cache (a first ``face-audit run`` computes them).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from audit.verification.config import load_config
from audit.verification.runner import run_audit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default="examples/lfw-dlib.toml")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    from audit.engine.scan import TileScan

    listing = TileScan.people_counts
    spent: list[float] = []

    def timed(self, *args, **kw):  # the per-person counts the bootstrap reads, timed apart
        t = time.perf_counter()
        out = listing(self, *args, **kw)
        spent.append(time.perf_counter() - t)
        return out

    TileScan.people_counts = timed
    import numpy as np

    from audit.metrics import _people_fused
    from audit.metrics.people import _weight_chunks
    from audit.verification import analysis

    boot = analysis.people_bootstrap
    calls: list[tuple] = []
    replicating: list[float] = []

    def timed_boot(counts, mapping, g, **kw):  # the replicates themselves, timed apart
        t = time.perf_counter()
        out = boot(counts, mapping, g, **kw)
        replicating.append(time.perf_counter() - t)
        calls.append((out.strata, g, kw.get("n_replicates", 1000)))
        return out

    analysis.people_bootstrap = timed_boot
    cfg = load_config(a.config)
    times: dict[int, list[float]] = {0: [], 1000: []}
    lists: dict[int, list[float]] = {0: [], 1000: []}
    reps: list[float] = []
    for _ in range(a.rounds):
        for b in (0, 1000):
            c = replace(cfg, run=replace(cfg.run, bootstrap=b, progress=False))
            spent.clear()
            replicating.clear()
            times[b].append(run_audit(c, write=False).result.provenance["timing"]["scoring_seconds"])
            lists[b].append(sum(spent))
            if b:
                reps.append(sum(replicating))
    for b, t in times.items():
        print(f"bootstrap={b:4d}: scoring_seconds " + ", ".join(f"{x:.2f}" for x in t)
              + "; of which TileScan.people_counts " + ", ".join(f"{x:.2f}" for x in lists[b])
              + ("; of which people_bootstrap (the replicates) " + ", ".join(f"{x:.2f}" for x in reps) if b else ""))
    base = min(times[0])
    print(f"people-level analysis adds {min(times[1000]) - base:.2f} s ({(min(times[1000]) - base) / base:.2f}x the scan and tables)")
    # a floor: only drawing the replicates' weights (who is drawn how often), as the bootstrap does,
    # for the same groupings: 1,000 x people uniform doubles per grouping
    dtype = np.uint8 if _people_fused.available() else np.float64
    draws = []
    for _ in range(max(3, a.rounds)):
        t = time.perf_counter()
        for strata, g, n in calls[-len(calls) // a.rounds:]:
            for _chunk in _weight_chunks(strata, g, n_replicates=n, seed=0, step=n, dtype=dtype):
                pass
        draws.append(time.perf_counter() - t)
    print(f"drawing the weights alone ({len(calls) // a.rounds} groupings, {calls[-1][0].size:,} people, "
          f"{calls[-1][2]} replicates): {min(draws):.3f} s = {min(draws) / base:.3f}x the scan and tables")


if __name__ == "__main__":
    main()
