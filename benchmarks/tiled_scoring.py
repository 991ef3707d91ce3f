"""Streaming all-pairs scoring: the tiled engine against bare matrix products and a naive pipeline.

(a) N synthetic unit vectors (default 100,000 × 128, 14 groups, 5 images per subject): the bare
    float32 matrix products of the engine's tiles, then the engine (``score_tiles`` + thresholds at
    FMR 1e-3, 1e-4, 1e-5 + exact per-cell and per-subject counts at them), with 1 and 2 workers.
    Targets: engine <= 2x the bare products; peak memory < 2 GB.
(b) N = 10,000: the naive way (every pair in a pandas table, then sklearn ``roc_curve`` per cell,
    or a numpy sort if scikit-learn is missing) against the engine, checking that every per-cell
    false-match count and per-group false-non-match count is identical. Target: engine >= 20x faster.
    The vectors are quantised to multiples of 2^-10, so that float32 BLAS products are exact and
    the naive table holds the very scores the engine counts (with raw floats the last bits of a
    BLAS product depend on its blocking; the engine is immune, the naive table is not).
(d) Two-sided (probe set vs reference set): (a)'s vectors split into halves (images 0, 2, 4 of
    each subject are probes, 1 and 3 references), every probe-reference pair: the engine with
    ``sides`` against the bare products of the same rectangle.
(e) Deep thresholds: (a)'s vectors at FMR 1e-2 and 1e-3 (5×10⁷ pairs above the 1e-2 threshold),
    with the default tail cap (the 1e-2 threshold found by narrowing passes, counts by a counting
    pass) against a tail long enough to hold them all.
(c) The people-level bootstrap as the audit runs it (1000 replicates; the per-person-pair
    false-match lists from the tail, FMR and FNMR of every group at every threshold, each target-FMR
    threshold re-estimated in every replicate (the operating point), the people-level intervals,
    each group against the reference with simultaneous intervals) on (a)'s scan, against (a)'s
    scoring time, with its three parts. Target: <= 0.1x.

Each measurement runs in a fresh child process, so its peak RSS (``getrusage``; workers' peaks
added) is its own.

    python benchmarks/tiled_scoring.py                       # the full run (minutes on 2 cores)
    python benchmarks/tiled_scoring.py --without-histograms  # also: the engine without histograms
    python benchmarks/tiled_scoring.py --n 20000 --small-n 3000 --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

GROUPS = 14
PER_SUBJECT = 5
TARGETS = [1e-3, 1e-4, 1e-5]


def make_data(n: int, d: int, *, seed: int = 0, quantise: bool = False):
    """Unit vectors of n // 5 subjects (5 noisy images of a random centre each), shuffled rows."""
    rng = np.random.default_rng(seed)
    n_subj = max(1, n // PER_SUBJECT)
    subj = rng.permutation(np.arange(n) % n_subj)
    centres = rng.standard_normal((n_subj, d), dtype=np.float32)
    emb = centres[subj]
    emb += 0.9 * rng.standard_normal((n, d), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    if quantise:
        emb = np.round(emb * 1024.0) / np.float32(1024.0)  # exact float32 dot products
    grp = (np.arange(n_subj) % GROUPS)[subj]
    return emb.astype(np.float32), subj, grp


def two_sided_split(n: int) -> np.ndarray:
    """Side of each row for (d): 0 (probe) or 1 (reference), alternating in row order, so every
    subject has images on both sides (its rows are shuffled, the alternation is not)."""
    return np.arange(n) % 2


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (workers), user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss() -> int:
    from audit.engine.kernel import _peak_rss
    return _peak_rss()


# --------------------------------------------------------------------------------------------
# child measurements


def child_bare(args) -> dict:
    emb, _, _ = make_data(args.n, args.d)
    et = np.ascontiguousarray(emb.T)
    t, n = args.tile, args.n
    buf = np.empty(t * t, np.float32)
    pairs = 0
    if args.two_sided:  # the rectangle probes x references, rows regrouped by side
        side = two_sided_split(n)
        emb = np.ascontiguousarray(np.concatenate([emb[side == 0], emb[side == 1]]))
        et = np.ascontiguousarray(emb.T)
    n0 = int(np.sum(two_sided_split(n) == 0)) if args.two_sided else 0
    t0, c0_ = time.perf_counter(), cpu_seconds()
    for r0 in range(0, n0 or n, t):
        r1 = min(n0 or n, r0 + t)
        for c0 in range(n0 or r0, n, t):
            c1 = min(n, c0 + t)
            np.matmul(emb[r0:r1], et[:, c0:c1], out=buf[: (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0))
            pairs += (r1 - r0) * (c1 - c0)
    return {"seconds": time.perf_counter() - t0, "cpu": cpu_seconds() - c0_, "products": pairs, "rss": peak_rss()}


def child_engine(args) -> dict:
    if args.numpy_loop:  # before the engine is imported (its worker processes inherit it)
        os.environ["FACE_AUDIT_NUMBA"] = "0"
    import audit.metrics  # noqa: F401  (pandas, scipy: imported by any pipeline; not timed)
    from audit.engine.scan import score_tiles
    from audit.metrics.people import people_bootstrap
    from audit.metrics.reference import compare_to_reference
    from audit.verification.intervals import people_intervals

    emb, subj, grp = make_data(args.n, args.d)
    targets = [float(x) for x in args.targets.split(",")] if args.targets else TARGETS
    extra = {"max_tail_pairs": args.max_tail} if args.max_tail else {}
    t0, c0 = time.perf_counter(), cpu_seconds()
    scan = score_tiles(emb, subj, grp, max_fmr=max(targets), tile=args.tile, workers=args.workers,
                       histogram=not args.no_histogram, sides=two_sided_split(args.n) if args.two_sided else None, **extra)
    t_scan = time.perf_counter() - t0
    th = scan.thresholds_at_fmr(targets)
    counts = scan.counts_at(th)
    t_total = time.perf_counter() - t0
    out = {
        "seconds": t_total, "cpu": cpu_seconds() - c0, "scan_seconds": t_scan, "matmul_seconds": scan.stats.seconds_matmul,
        "pairs": scan.stats.n_pairs, "tail": scan.stats.tail_pairs, "passes": scan.stats.passes,
        "rescanned": counts.rescanned, "rss": scan.stats.peak_rss_bytes if args.workers > 1 else peak_rss(),
        "thresholds": th.tolist(), "overall_fmr": (counts.false_matches_total / counts.impostors_total).tolist(),
        "rescored": scan.stats.rescored,
    }
    if args.bootstrap:  # the people-level step as the audit runs it: operating points included
        t1 = time.perf_counter()
        mapping = np.arange(GROUPS)
        people = scan.people_counts(th)
        t2 = time.perf_counter()
        rep = people_bootstrap(people, mapping, GROUPS, n_replicates=args.replicates, seed=1, targets=targets)
        t3 = time.perf_counter()
        pi = people_intervals(people, rep, mapping, GROUPS)
        boot, f_lo, f_hi = pi, pi["fmr_low"], pi["fmr_high"]
        for metric, e, n in (("fmr", rep.point_fm, rep.point_imp), ("fnmr", rep.point_fnm, rep.point_mated)):
            for k in range(len(TARGETS)):
                pt = np.where(n[:GROUPS] > 0, e[:GROUPS, k] / np.maximum(n[:GROUPS], 1), np.nan)
                compare_to_reference([str(x) for x in range(GROUPS)], pt, n[:GROUPS], e[:GROUPS, k], boot[metric][:, :GROUPS, k], 0)
        t4 = time.perf_counter()
        out["bootstrap_seconds"] = t4 - t1
        out["people_counts_seconds"] = t2 - t1
        out["replicates_seconds"] = t3 - t2
        out["intervals_seconds"] = t4 - t3
        out["subjects"] = int(people.n_people)
        out["person_pairs"] = int(people.fm_a.size)
        out["fmr_ci_example"] = [float(rep.point_fmr[0, 0]), float(f_lo[0, 0]), float(f_hi[0, 0])]
    return out


def child_naive(args) -> dict:
    import pandas as pd

    try:
        from sklearn.metrics import roc_curve
        how = "sklearn roc_curve"
    except ImportError:
        roc_curve = None
        how = "numpy sort"

    def curve(scores, mated):
        """Thresholds (descending) with the impostors >= and the mated < each (tie: >= matches)."""
        n_imp, n_mat = int((~mated).sum()), int(mated.sum())
        if roc_curve is not None and n_imp and n_mat:
            fpr, tpr, thr = roc_curve(mated, scores, drop_intermediate=False)
            return thr, np.rint(fpr * n_imp).astype(np.int64), np.rint((1 - tpr) * n_mat).astype(np.int64)
        order = np.argsort(-scores, kind="stable")
        ss, m = scores[order], mated[order]
        last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), ss.size - 1]  # last index of each distinct value
        return ss[last], np.cumsum(~m)[last], n_mat - np.cumsum(m)[last]

    def at(c, t, n_mat):
        thr, fm, fnm = c
        k = int(np.searchsorted(-thr, -t, side="right")) - 1  # the lowest curve threshold >= t
        return (0, n_mat) if k < 0 else (int(fm[k]), int(fnm[k]))

    emb, subj, grp = make_data(args.n, args.d, quantise=True)
    t0 = time.perf_counter()
    s = emb @ emb.T  # float32, exact for these vectors
    i, j = np.triu_indices(args.n, 1)
    df = pd.DataFrame({
        "a": i.astype(np.int32), "b": j.astype(np.int32), "score": s[i, j].astype(np.float64),
        "mated": subj[i] == subj[j], "group_a": grp[i].astype(np.int8), "group_b": grp[j].astype(np.int8),
    })
    del s, i, j
    # one threshold for everyone, over all impostors: the smallest with FMR <= target
    thr, fm, _ = curve(df["score"].to_numpy(), df["mated"].to_numpy())
    n_imp = int((~df["mated"]).sum())
    th = [float(thr[np.flatnonzero(fm <= np.floor(t * n_imp * (1 + 1e-12)))[-1]]) for t in TARGETS]
    fm_cells = np.zeros((len(TARGETS), GROUPS, GROUPS), np.int64)
    fnm = np.zeros((len(TARGETS), GROUPS), np.int64)
    ga, gb_ = df["group_a"].to_numpy().astype(np.int64), df["group_b"].to_numpy().astype(np.int64)
    df["cell"] = np.minimum(ga, gb_) * GROUPS + np.maximum(ga, gb_)
    for cell, part in df.groupby("cell", sort=True):
        g, h = divmod(int(cell), GROUPS)
        mated = part["mated"].to_numpy()
        c = curve(part["score"].to_numpy(), mated)
        for k, t in enumerate(th):
            f, m = at(c, t, int(mated.sum()))
            fm_cells[k, g, h] = fm_cells[k, h, g] = f
            fnm[k, g] += m if g == h else 0
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pairs": int(len(df)), "rss": peak_rss(), "how": how,
            "fm_cells": fm_cells.tolist(), "fnm": fnm.tolist(), "thresholds": th}


def child_engine_small(args) -> dict:
    import audit.metrics  # noqa: F401  (pandas, scipy: imported by any pipeline; not timed)
    from audit.engine.scan import score_tiles

    emb, subj, grp = make_data(args.n, args.d, quantise=True)
    t0 = time.perf_counter()
    scan = score_tiles(emb, subj, grp, max_fmr=max(TARGETS), tile=args.tile, normalize=False)
    th = scan.thresholds_at_fmr(TARGETS)
    c = scan.counts_at(th)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pairs": scan.stats.n_pairs, "rss": peak_rss(),
            "fm_cells": c.false_matches.tolist(), "fnm": c.false_non_matches.tolist(), "thresholds": th.tolist()}


CHILDREN = {"bare": child_bare, "engine": child_engine, "naive": child_naive, "engine-small": child_engine_small}


# --------------------------------------------------------------------------------------------
# the parent


def run_child(kind: str, **kw) -> dict:
    cmd = [sys.executable, __file__, "--child", kind]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            if v:
                cmd.append(flag)
        else:
            cmd += [flag, str(v)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"child {kind} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows for (a) and (c)")
    ap.add_argument("--small-n", type=int, default=10_000, help="rows for (b)")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--tile", type=int, default=4096)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts for (a)")
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of (a); the best is reported")
    ap.add_argument("--parts", default="abc")
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--bootstrap", action="store_true")
    ap.add_argument("--no-histogram", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--two-sided", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--numpy-loop", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--targets", default="", help=argparse.SUPPRESS)
    ap.add_argument("--max-tail", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--without-histograms", action="store_true",
                    help="also time the engine with histogram=False (the cost of the per-cell histograms)")
    args = ap.parse_args()
    if args.child:
        if args.child == "engine":
            args.workers = int(args.workers)
        print(json.dumps(CHILDREN[args.child](args)))
        return

    print(f"machine: {os.cpu_count()} CPUs, numpy {np.__version__}; each row is a fresh process")
    if "a" in args.parts or "c" in args.parts:
        n = args.n
        print(f"\n(a) N={n:,} unit vectors, d={args.d}, {GROUPS} groups, {n // PER_SUBJECT:,} subjects; "
              f"{n * (n - 1) // 2:,} pairs; tile {args.tile}")
        pairs = n * (n - 1) / 2
        workers = [int(x) for x in args.workers.split(",") if x]
        # (workers, histogram off, numpy inner loop): the default engine (compiled inner loop when
        # numba is installed), then the numpy inner loop and the engine without histograms
        from audit.engine import _fused

        variants = [(w, False, False) for w in workers]
        if _fused.available():
            variants += [(w, False, True) for w in workers]
        variants += [(workers[0], True, False)] if args.without_histograms else []
        bare, eng = [], {v: [] for v in variants}
        for r in range(args.rounds):  # interleaved: the machine's load drifts between runs
            bare.append(run_child("bare", n=n, d=args.d, tile=args.tile))
            for w, nh, npl in variants:
                eng[(w, nh, npl)].append(run_child(
                    "engine", n=n, d=args.d, tile=args.tile, workers=w, replicates=args.replicates, no_histogram=nh,
                    numpy_loop=npl, bootstrap=((w, nh, npl) == variants[0] and r == 0 and "c" in args.parts)))
        base = min(b["seconds"] for b in bare)
        base_cpu = min(b["cpu"] for b in bare)
        print(f"{'measurement (best of %d interleaved rounds)' % args.rounds:44s} {'seconds':>8s} {'ns/pair':>8s} "
              f"{'x bare':>7s} {'CPU s':>7s} {'x bare':>7s} {'peak RSS':>9s}")
        print("engine = score_tiles + thresholds at the 3 FMRs + exact per-cell and per-subject counts at them")
        loop = "compiled loop" if _fused.available() else "numpy loop"
        rows = [("bare float32 matmul, same tiles", bare)] + [
            (f"engine, workers={w}, {'numpy loop' if npl else loop}{', histogram=False' if nh else ''}", eng[(w, nh, npl)])
            for w, nh, npl in variants]
        for label, runs in rows:
            b = min(runs, key=lambda x: x["seconds"])
            cpu = min(x["cpu"] for x in runs)
            print(f"{label:44s} {b['seconds']:8.2f} {b['seconds'] / pairs * 1e9:8.2f} {b['seconds'] / base:7.2f} "
                  f"{cpu:7.1f} {cpu / base_cpu:7.2f} {gb(max(x['rss'] for x in runs)):>9s}")
            if "scan_seconds" in b:
                print(f"{'   of which the one pass over the tiles':44s} {b['scan_seconds']:8.2f}")
                print(f"{'   of which matrix products (all workers)':44s} {b['matmul_seconds']:8.2f}")
        print("all runs, seconds: " + "; ".join(f"{label.split(':')[0]}: " + ", ".join(f"{x['seconds']:.1f}" for x in runs)
                                            for label, runs in rows))
        e = eng[variants[0]][0]
        print(f"thresholds at FMR {TARGETS}: {[f'{t:.6f}' for t in e['thresholds']]}, achieved "
              f"{[f'{x:.2e}' for x in e['overall_fmr']]}; tail {e['tail']:,} pairs, passes {e['passes']}, "
              f"second pass for counts: {e['rescanned']}")
        if "c" in args.parts:
            e1 = eng[variants[0]][0]
            print(f"\n(c) people-level bootstrap at N={n:,}: {e1['subjects']:,} people, {e1['person_pairs']:,} person pairs "
                  f"with false matches, {args.replicates} replicates, FMR and FNMR for {GROUPS} groups x {len(TARGETS)} "
                  "thresholds, BCa, each group against the reference")
            print(f"{'people-level step':44s} {e1['bootstrap_seconds']:8.2f} s   = {e1['bootstrap_seconds'] / e1['seconds']:.3f} "
                  f"x the scoring time ({e1['seconds']:.2f} s)")
            for key, label in (("people_counts_seconds", "listing pairs of people (TileScan.people_counts)"),
                               ("replicates_seconds", "replicates, operating points included"),
                               ("intervals_seconds", "intervals and reference comparisons")):
                print(f"{'   of which ' + label:60s} {e1[key]:8.2f} s   = {e1[key] / e1['seconds']:.3f} x")
            print(f"example: group 0 FMR at 1e-3 = {e1['fmr_ci_example'][0]:.2e}, 95% CI "
                  f"[{e1['fmr_ci_example'][1]:.2e}, {e1['fmr_ci_example'][2]:.2e}]")
    if "d" in args.parts:
        n = args.n
        w = max(int(x) for x in args.workers.split(",") if x)
        bare = [run_child("bare", n=n, d=args.d, tile=args.tile, two_sided=True) for _ in range(args.rounds)]
        eng = [run_child("engine", n=n, d=args.d, tile=args.tile, workers=w, two_sided=True) for _ in range(args.rounds)]
        b, e = min(bare, key=lambda x: x["seconds"]), min(eng, key=lambda x: x["seconds"])
        print(f"\n(d) two-sided: {n // 2:,} probes x {n - n // 2:,} references = {e['pairs']:,} pairs, tile {args.tile}")
        print(f"{'bare float32 matmul, same rectangle':44s} {b['seconds']:8.2f} s")
        print(f"{'engine, sides=..., workers=%d' % w:44s} {e['seconds']:8.2f} s   = {e['seconds'] / b['seconds']:.2f} x bare, "
              f"peak RSS {gb(e['rss'])}")
        print(f"thresholds at FMR {TARGETS}: {[f'{t:.6f}' for t in e['thresholds']]}; passes {e['passes']}")
    if "e" in args.parts:
        n = args.n
        w = max(int(x) for x in args.workers.split(",") if x)
        print(f"\n(e) N={n:,}, thresholds at FMR 1e-2 and 1e-3, workers={w}")
        print(f"{'measurement':44s} {'seconds':>8s} {'passes':>6s} {'tail':>11s} {'peak RSS':>9s}")
        for label, cap in (("default tail cap (2^23 pairs)", 0), ("tail of 2^26 pairs (holds all 5e7)", 1 << 26)):
            e = run_child("engine", n=n, d=args.d, tile=args.tile, workers=w, targets="1e-2,1e-3", max_tail=cap)
            print(f"{label:44s} {e['seconds']:8.2f} {e['passes']:6d} {e['tail']:11,} {gb(e['rss']):>9s}   thresholds "
                  f"{[f'{t:.6f}' for t in e['thresholds']]}")
    if "b" in args.parts:
        n = args.small_n
        print(f"\n(b) N={n:,} (vectors quantised to 2^-10: exact float32 products), {n * (n - 1) // 2:,} pairs")
        naive = run_child("naive", n=n, d=args.d, tile=args.tile)
        small = run_child("engine-small", n=n, d=args.d, tile=args.tile)
        print(f"{'measurement':44s} {'seconds':>8s} {'speed-up':>8s} {'peak RSS':>9s}")
        print(f"{'naive: pandas pair table + ' + naive['how'] + ' per cell':44s} {naive['seconds']:8.2f} "
              f"{1.0:8.1f} {gb(naive['rss']):>9s}")
        print(f"{'engine: score_tiles + thresholds + counts':44s} {small['seconds']:8.2f} "
              f"{naive['seconds'] / small['seconds']:8.1f} {gb(small['rss']):>9s}")
        same_cells = naive["fm_cells"] == small["fm_cells"]
        same_fnm = naive["fnm"] == small["fnm"]
        print(f"identical per-cell false matches at the 3 thresholds: {same_cells}; identical per-group false "
              f"non-matches: {same_fnm}")
        print(f"thresholds (naive: a score value; engine: just above the (k+1)-th score): "
              f"{[f'{t:.7f}' for t in naive['thresholds']]} vs {[f'{t:.7f}' for t in small['thresholds']]}")


if __name__ == "__main__":
    main()
