"""What listing the per-person counts costs (``TileScan.people_counts``, the input of the
people-level bootstrap) at N = 10^5 on the synthetic data of ``benchmarks/tiled_scoring.py``
(part c: 14 groups, 5 images a person, tail of max_fmr = 1e-3), with the compiled loops (numba)
and with the numpy path, alternating in one process on one scan; and its parts: the canonical
rescoring of the operating point's tail, the ordering of that tail, ``PeopleCounts.aggregate_pairs``.

    python benchmarks/people_counts_cost.py [--n 100000] [--workers 2] [--rounds 2]

(``PYTHONPATH=<an older checkout> python benchmarks/people_counts_cost.py`` times an older engine.)

The scan itself (about 25 s at N = 10^5 on two cores) is timed once and printed for scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiled_scoring import TARGETS, make_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()

    from audit.engine import _fused
    from audit.engine.numerics import _canonical
    from audit.engine.scan import score_tiles
    from audit.metrics.people import PeopleCounts

    compiled = _fused.available()
    emb, subj, grp = make_data(a.n, a.d)
    t0 = time.perf_counter()
    scan = score_tiles(emb, subj, grp, max_fmr=max(TARGETS), workers=a.workers)
    th = scan.thresholds_at_fmr(TARGETS)
    scan.counts_at(th)
    t_scan = time.perf_counter() - t0
    geo = scan._geo
    if hasattr(scan, "_top_floor"):
        tr, tc = scan._top_of_tail(scan._top_floor())
    else:  # an engine before the compiled canonical score (for a before/after): its whole tail
        tr, tc = (x.astype(np.int64) for x in scan._tail[1:3])
    order = getattr(_fused, "order_desc", lambda x: np.argsort(-x, kind="stable"))
    print(f"N={a.n:,}, d={a.d}: scan, thresholds and counts {t_scan:.2f} s (workers={a.workers}); "
          f"operating-point tail {tr.size:,} pairs; compiled loops: {compiled}")

    agg_time = [0.0]
    agg = PeopleCounts.aggregate_pairs

    def timed_agg(*args, **kw):
        t = time.perf_counter()
        out = agg(*args, **kw)
        agg_time[0] += time.perf_counter() - t
        return out

    PeopleCounts.aggregate_pairs = staticmethod(timed_agg)
    loops = {"compiled": True, "numpy": False} if compiled else {"numpy": False}
    saved = _fused._KERNEL
    res: dict[str, dict[str, list[float]]] = {k: {"people_counts": [], "aggregate_pairs": [], "canonical": [], "order": []} for k in loops}
    first = None
    for _ in range(a.rounds):
        for name, on in loops.items():
            _fused._KERNEL = saved if on else None
            agg_time[0] = 0.0
            t = time.perf_counter()
            pc = scan.people_counts(th)
            res[name]["people_counts"].append(time.perf_counter() - t)
            res[name]["aggregate_pairs"].append(agg_time[0])
            t = time.perf_counter()
            ts = _canonical(geo.e32, tr, tc, geo.metric)
            res[name]["canonical"].append(time.perf_counter() - t)
            t = time.perf_counter()
            order(ts)
            res[name]["order"].append(time.perf_counter() - t)
            if first is None:
                first = pc
            else:  # the same counts and tail, bit for bit, whichever loops
                assert np.array_equal(first.tail_score, pc.tail_score) and np.array_equal(first.fm_counts, pc.fm_counts)
    _fused._KERNEL = saved
    print(f"{'seconds (best of ' + str(a.rounds) + ')':40s} " + " ".join(f"{k:>10s}" for k in loops))
    for part, label in (("people_counts", "TileScan.people_counts"),
                        ("canonical", "  canonical scores of the tail"),
                        ("order", "  ordering the tail by score"),
                        ("aggregate_pairs", "  PeopleCounts.aggregate_pairs (2 calls)")):
        print(f"{label:40s} " + " ".join(f"{min(res[k][part]):10.2f}" for k in loops))


if __name__ == "__main__":
    main()
