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
    cfg = load_config(a.config)
    times: dict[int, list[float]] = {0: [], 1000: []}
    lists: dict[int, list[float]] = {0: [], 1000: []}
    for _ in range(a.rounds):
        for b in (0, 1000):
            c = replace(cfg, run=replace(cfg.run, bootstrap=b, progress=False))
            spent.clear()
            times[b].append(run_audit(c, write=False).result.provenance["timing"]["scoring_seconds"])
            lists[b].append(sum(spent))
    for b, t in times.items():
        print(f"bootstrap={b:4d}: scoring_seconds " + ", ".join(f"{x:.2f}" for x in t)
              + "; of which TileScan.people_counts " + ", ".join(f"{x:.2f}" for x in lists[b]))
    print(f"people-level analysis adds {min(times[1000]) - min(times[0]):.2f} s "
          f"({(min(times[1000]) - min(times[0])) / min(times[0]):.1f}x the scan and tables)")


if __name__ == "__main__":
    main()
