"""Coverage of the age-adjusted (Mantel–Haenszel) ratio's interval when people recur across pairs
and age confounds the group comparison (issue: confounders must not write the headline).

Two groups; each person is a child or an adult; group 0 has ``--child-share`` 20% children, group
1 has 70%. Within a pair stratum (child-child, child-adult, adult-adult) the true FMR of group 1 is
``ratio`` times group 0's, and so is its FNMR within an age band: the adjusted ratio's target is
``ratio`` exactly, while the crude ratio is pushed up by group 1's children (who err more).

    impostor score of people i != j of group g, strata s, t:  mu_{g,st} + u_i + u_j + e      (Phi(mu) = FMR_{g,st})
    mated score of person i of group g, stratum s:             nu_{g,s} + v_i + e'

with person effects u, v (variances ``tau``) and every score of variance 1, as in
``benchmarks/interval_coverage.py``. Each dataset is run through the library's own functions
(``audit.metrics.adjust.stratum_counts`` and ``adjusted_comparisons``: the audit's path), and the
script prints, per setting, the coverage (± Monte Carlo s.e.) and mean log-width of the adjusted
interval, and how often a difference is "shown" by the adjusted and by the crude ratio.

    python benchmarks/adjusted_coverage.py                  # 200 datasets a setting, 1000 replicates
    python benchmarks/adjusted_coverage.py --datasets 40 --replicates 400
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import norm

from audit.metrics.adjust import adjusted_comparisons, pair_strata, stratum_counts
from audit.metrics.people import PeopleCounts

SETTINGS = {"independent": (0.0, 0.0), "weak": (0.02, 0.05), "moderate": (0.08, 0.2)}
FMR = {(0, 0): 0.04, (0, 1): 0.004, (1, 1): 0.01}   # pair strata (0 child, 1 adult), group 0
FNMR = (0.15, 0.05)                                  # child, adult; group 0


def simulate(rng, n: int, tau_imp: float, tau_mat: float, ratio: float, child_share: tuple[float, float]):
    s = 2 * n
    group = np.repeat([0, 1], n)
    age = (rng.random(s) >= np.array(child_share)[group]).astype(np.int64)  # 0 child, 1 adult
    imgs = rng.integers(2, 7, size=s)
    u = rng.normal(0, np.sqrt(tau_imp), s) if tau_imp else np.zeros(s)
    v = rng.normal(0, np.sqrt(tau_mat), s) if tau_mat else np.zeros(s)
    sd_e, sd_m = np.sqrt(1 - 2 * tau_imp), np.sqrt(1 - tau_mat)
    fa, fb, fc = [], [], []
    for g in (0, 1):
        idx = np.flatnonzero(group == g)
        i, j = np.triu_indices(idx.size, 1)
        a, b = idx[i], idx[j]
        lo, hi = np.minimum(age[a], age[b]), np.maximum(age[a], age[b])
        fmr = np.array([FMR[(x, y)] for x, y in zip(lo, hi)]) * (ratio if g else 1.0)
        p = norm.sf(-(norm.ppf(fmr) + u[a] + u[b]) / sd_e)
        c = rng.binomial(imgs[a] * imgs[b], p)
        hit = c > 0
        fa.append(a[hit]); fb.append(b[hit]); fc.append(c[hit])
    fa, fb, fc = (np.concatenate(x).astype(np.int64) for x in (fa, fb, fc))
    fnmr = np.array(FNMR)[age] * np.where(group == 1, ratio, 1.0)
    mated_n = imgs * (imgs - 1) // 2
    fnm = rng.binomial(mated_n, norm.cdf((norm.ppf(fnmr) - v) / sd_m))
    images = np.zeros((s, 2), np.int64)
    images[np.arange(s), group] = imgs
    counts = PeopleCounts(np.array([0.0]), group.astype(np.int64), images, "same_cell", fa, fb, group[fa], group[fb], fc[:, None],
                          np.arange(s, dtype=np.int64), group.astype(np.int64), mated_n.astype(np.int64), fnm[:, None].astype(np.int64))
    return counts, age


def one(args) -> dict:
    n, setting, ratio, seed, replicates, child_share = args
    rng = np.random.default_rng(seed)
    counts, age = simulate(rng, n, *SETTINGS[setting], ratio, child_share)
    sc = stratum_counts(counts, np.arange(2), 2, age, 2, n_replicates=replicates, seed=seed)
    out = {}
    for metric in ("fmr", "fnmr"):
        cmp_ = adjusted_comparisons(["g0", "g1"], sc, metric, 0, 0)
        if not cmp_ or not np.isfinite(cmp_[0].adjusted):
            out[f"{metric}_defined"] = 0.0
            continue
        c = cmp_[0]
        out[f"{metric}_defined"] = 1.0
        out[f"{metric}_cover"] = float(c.adjusted_low <= ratio <= c.adjusted_high)
        out[f"{metric}_logwidth"] = float(np.log(c.adjusted_high / c.adjusted_low)) if c.adjusted_low > 0 and np.isfinite(c.adjusted_high) else np.nan
        out[f"{metric}_adj_shown"] = float(c.adjusted_shown)
        out[f"{metric}_crude_shown"] = float(c.crude_shown)
        out[f"{metric}_crude"] = float(np.log(c.crude)) if 0 < c.crude < np.inf else np.nan
        out[f"{metric}_adjusted"] = float(np.log(c.adjusted)) if 0 < c.adjusted < np.inf else np.nan
        out[f"{metric}_indep_cover"] = float(c.independent_low <= ratio <= c.independent_high)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--people", default="30,60", help="people per group")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--child-share", default="0.2,0.7")
    args = ap.parse_args()
    share = tuple(float(x) for x in args.child_share.split(","))
    people = [int(x) for x in args.people.split(",")]
    t0 = time.perf_counter()
    print(f"adjusted-ratio coverage: 2 groups (children {share[0]:.0%} / {share[1]:.0%}), {args.datasets} datasets a setting, "
          f"{args.replicates} replicates; nominal 95%")
    print(f"{'setting':12} {'people':>6} {'ratio':>5} {'metric':>6} | {'adj. cover':>14} {'log width':>9} {'indep. cover':>12} | "
          f"{'adj. shown':>10} {'crude shown':>11} | {'mean log crude':>14} {'mean log adj':>12}")
    with ProcessPoolExecutor(args.workers) as pool:
        for setting, n, ratio in itertools.product(SETTINGS, people, (1.0, 2.0)):
            jobs = [(n, setting, ratio, 10_000 * n + d + (7 if ratio > 1 else 0) * 1_000_003, args.replicates, share) for d in range(args.datasets)]
            res = list(pool.map(one, jobs, chunksize=4))
            for metric in ("fmr", "fnmr"):
                rows = [r for r in res if r.get(f"{metric}_defined")]
                if not rows:
                    continue

                def col(k):
                    return np.array([r[k] for r in rows], float)

                cov = col(f"{metric}_cover")
                se = np.sqrt(cov.mean() * (1 - cov.mean()) / cov.size)
                print(f"{setting:12} {n:6d} {ratio:5.1f} {metric:>6} | {cov.mean():7.1%} ± {se:4.1%} {np.nanmean(col(f'{metric}_logwidth')):9.2f} "
                      f"{col(f'{metric}_indep_cover').mean():12.1%} | {col(f'{metric}_adj_shown').mean():10.1%} "
                      f"{col(f'{metric}_crude_shown').mean():11.1%} | {np.nanmean(col(f'{metric}_crude')):14.2f} "
                      f"{np.nanmean(col(f'{metric}_adjusted')):12.2f}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
