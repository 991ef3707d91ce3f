"""Coverage of face-audit's intervals when people recur across pairs (issue: intervals that cover).

Simulates datasets in which each person appears in many pairs, runs face-audit's people-level
bootstrap and group-vs-reference comparisons on each (the library functions the audit runs:
``audit.metrics.people.people_bootstrap``, ``audit.metrics.reference``), and prints, per setting:

- coverage (± Monte Carlo standard error) and mean width of each group's FMR and FNMR interval:
  people-level (the bootstrap) and Wilson's ("if every comparison were independent");
- coverage of the reference-group ratio intervals (all K-1 at once, and one by one) at a true ratio 2;
- how often "difference shown" is claimed when every group's true rate is equal (family-wise, per
  metric), and the power at a true ratio of 2.

The model (score units: higher = more alike; one fixed threshold t = 0):

    impostor score of images of people i != j in group g:  mu_g + u_i + u_j + e,  u ~ N(0, tau_imp), e ~ N(0, 1 - 2 tau_imp)
    mated score of two images of person i in group g:       nu_g + v_i + e',      v ~ N(0, tau_mat), e' ~ N(0, 1 - tau_mat)

so every score has variance 1 and the true FMR and FNMR of group g are Phi(mu_g) and Phi(-nu_g).
Pairs sharing a person share u_i (or v_i). People have 2 to 6 images (uniform). Given the person
effects, each person pair's false matches are binomial over its n_i * n_j image pairs (and a
person's false non-matches over their n_i (n_i - 1) / 2 mated pairs), which is the model's exact
distribution, so no pair list needs materialising.

    python benchmarks/interval_coverage.py                      # the full grid, 400 datasets a setting
    python benchmarks/interval_coverage.py --datasets 50 --quick
    python benchmarks/interval_coverage.py --api-check 3        # the same intervals through audit.from_scores

``--api-check N`` draws N small datasets with every score materialised, audits each through the
public API (``audit.from_scores``, the path a user's scores file takes) and checks that its
people-level intervals and reference comparisons are the ones this benchmark computes from counts:
the coverage figures are the audit's own.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import norm

from audit.metrics import interval_arrays
from audit.metrics.people import PeopleCounts, people_bootstrap
from audit.metrics.reference import compare_to_reference, percentile_interval
from audit.verification.intervals import people_intervals

SETTINGS = {"independent": (0.0, 0.0), "weak": (0.02, 0.05), "moderate": (0.08, 0.2), "strong": (0.25, 0.5)}
FMR = (0.01, 0.02)   # reference group, other groups (true ratio 2); the null uses the first for all
FNMR = (0.05, 0.10)


def simulate(rng, k: int, n: int, tau_imp: float, tau_mat: float, ratio2: bool) -> tuple[PeopleCounts, np.ndarray, np.ndarray]:
    """One dataset as PeopleCounts (same-group impostors), with the true FMR and FNMR per group."""
    fmr = np.array([FMR[0]] + [FMR[1] if ratio2 else FMR[0]] * (k - 1))
    fnmr = np.array([FNMR[0]] + [FNMR[1] if ratio2 else FNMR[0]] * (k - 1))
    mu, nu = norm.ppf(fmr), -norm.ppf(fnmr)
    s = k * n
    group = np.repeat(np.arange(k), n)
    imgs = rng.integers(2, 7, size=s)
    u = rng.normal(0, np.sqrt(tau_imp), s) if tau_imp else np.zeros(s)
    v = rng.normal(0, np.sqrt(tau_mat), s) if tau_mat else np.zeros(s)
    sd_e, sd_m = np.sqrt(1 - 2 * tau_imp), np.sqrt(1 - tau_mat)
    fa, fb, fc = [], [], []
    for g in range(k):
        idx = np.flatnonzero(group == g)
        i, j = np.triu_indices(idx.size, 1)
        a, b = idx[i], idx[j]
        p = norm.sf(-(mu[g] + u[a] + u[b]) / sd_e)  # P(score >= 0)
        c = rng.binomial(imgs[a] * imgs[b], p)
        hit = c > 0
        fa.append(a[hit]); fb.append(b[hit]); fc.append(c[hit])
    fa, fb, fc = (np.concatenate(x).astype(np.int64) for x in (fa, fb, fc))
    mated_n = imgs * (imgs - 1) // 2
    fnm = rng.binomial(mated_n, norm.cdf(-(nu[group] + v) / sd_m))
    images = np.zeros((s, k), np.int64)
    images[np.arange(s), group] = imgs
    counts = PeopleCounts(np.array([0.0]), group.astype(np.int64), images, "same_cell", fa, fb, group[fa], group[fb], fc[:, None],
                          np.arange(s, dtype=np.int64), group.astype(np.int64), mated_n.astype(np.int64), fnm[:, None].astype(np.int64))
    return counts, fmr, fnmr


def one(args) -> dict:
    k, n, setting, ratio2, seed, replicates = args
    tau_imp, tau_mat = SETTINGS[setting]
    rng = np.random.default_rng(seed)
    counts, fmr, fnmr = simulate(rng, k, n, tau_imp, tau_mat, ratio2)
    rep = people_bootstrap(counts, np.arange(k), k, n_replicates=replicates, seed=seed)
    pi = people_intervals(counts, rep, np.arange(k), k)  # the audit's own intervals (audit.verification.intervals)
    out = {}
    for metric, truth, e, t in (("fmr", fmr, rep.point_fm[:k, 0], rep.point_imp[:k]),
                                ("fnmr", fnmr, rep.point_fnm[:k, 0], rep.point_mated[:k])):
        reps = pi[metric][:, :k, 0]  # corrected as the audit corrects them
        lo, hi = percentile_interval(reps)
        out[f"{metric}_pct_cover"] = np.mean((lo <= truth) & (truth <= hi))
        lo, hi = pi[f"{metric}_low"][:, 0], pi[f"{metric}_high"][:, 0]
        w = interval_arrays(e.astype(np.int64), t.astype(np.int64), method="wilson")
        out[f"{metric}_people_cover"] = np.mean((lo <= truth) & (truth <= hi))
        out[f"{metric}_people_width"] = np.mean(hi - lo)
        out[f"{metric}_wilson_cover"] = np.mean((w.low <= truth) & (truth <= w.high))
        out[f"{metric}_wilson_width"] = np.mean(w.high - w.low)
        point = np.where(t > 0, e / np.where(t > 0, t, 1), np.nan)
        cmp_ = compare_to_reference([str(g) for g in range(k)], point, t, e, reps, 0, dof=pi["dof"][metric][:k, 0])
        true_ratio = truth[1:] / truth[0]
        covered = [c.ratio_low <= r <= c.ratio_high for c, r in zip(cmp_, true_ratio)]
        out[f"{metric}_ratio_cover_all"] = float(all(covered)) if covered else np.nan
        out[f"{metric}_ratio_cover_each"] = float(np.mean(covered)) if covered else np.nan
        out[f"{metric}_shown_any"] = float(any(c.shown for c in cmp_))
        out[f"{metric}_shown_each"] = float(np.mean([c.shown for c in cmp_])) if cmp_ else np.nan
    return out


def materialise(rng, k: int, n: int, tau_imp: float, tau_mat: float):
    """A dataset of the same model with every same-group pair's score (for ``--api-check``)."""
    import pandas as pd

    fmr, fnmr = np.array([FMR[0]] + [FMR[1]] * (k - 1)), np.array([FNMR[0]] + [FNMR[1]] * (k - 1))
    mu, nu = norm.ppf(fmr), -norm.ppf(fnmr)
    s = k * n
    group = np.repeat(np.arange(k), n)
    imgs = rng.integers(2, 7, size=s)
    u = rng.normal(0, np.sqrt(tau_imp), s)
    v = rng.normal(0, np.sqrt(tau_mat), s)
    person = np.repeat(np.arange(s), imgs)
    sid = np.array([f"i{x:05d}" for x in range(person.size)])
    i, j = np.triu_indices(person.size, 1)
    keep = group[person[i]] == group[person[j]]
    i, j = i[keep], j[keep]
    pi, pj = person[i], person[j]
    mated = pi == pj
    g = group[pi]
    score = np.where(mated, nu[g] + v[pi] + rng.normal(0, np.sqrt(1 - tau_mat), i.size),
                     mu[g] + u[pi] + u[pj] + rng.normal(0, np.sqrt(1 - 2 * tau_imp), i.size))
    pairs = pd.DataFrame({"sample_a": sid[i], "sample_b": sid[j], "score": score})
    samples = pd.DataFrame({"sample_id": sid, "subject": [f"p{x:04d}" for x in person], "group": [f"g{x}" for x in group[person]]})
    fa, fb = pi[~mated & (score >= 0)], pj[~mated & (score >= 0)]
    ones = np.ones(fa.size, np.int64)
    a, b, ca, cb, cnt = PeopleCounts.aggregate_pairs(fa, fb, group[fa], group[fb], ones)
    images = np.zeros((s, k), np.int64)
    images[np.arange(s), group] = imgs
    fnm = np.bincount(pi[mated & (score < 0)], minlength=s)
    counts = PeopleCounts(np.array([0.0]), group.astype(np.int64), images, "same_cell", a, b, ca, cb, cnt,
                          np.arange(s, dtype=np.int64), group.astype(np.int64), (imgs * (imgs - 1) // 2).astype(np.int64),
                          fnm[:, None].astype(np.int64))
    return pairs, samples, counts


def api_check(n_datasets: int, replicates: int = 200, seed: int = 7) -> float:
    """Largest difference between this benchmark's intervals and ``audit.from_scores``'s."""
    import audit

    worst = 0.0
    for d in range(n_datasets):
        rng = np.random.default_rng(seed + d)
        k = 2 + 2 * (d % 2)
        pairs, samples, counts = materialise(rng, k, 12, 0.08, 0.2)
        res = audit.from_scores(pairs, samples, groups=["group"], target_fmr=[], fixed=[0.0], bootstrap=replicates, seed=seed + d)
        rep = people_bootstrap(counts, np.arange(k), k, n_replicates=replicates, seed=seed + d)
        pi = people_intervals(counts, rep, np.arange(k), k)
        r = res.rates[res.rates.grouping == "group"].set_index(["group", "metric"])
        for metric, e, t in (("fmr", rep.point_fm[:k, 0], rep.point_imp[:k]), ("fnmr", rep.point_fnm[:k, 0], rep.point_mated[:k])):
            point = np.where(t > 0, e / np.where(t > 0, t, 1), np.nan)
            reps = pi[metric][:, :k, 0]
            lo, hi = pi[f"{metric}_low"][:, 0], pi[f"{metric}_high"][:, 0]
            got = r.xs(metric, level="metric").loc[[f"g{x}" for x in range(k)]]
            assert (got.errors.to_numpy() == e).all() and (got.trials.to_numpy() == t).all(), "counts differ"
            worst = max(worst, float(np.nanmax(np.abs(got.boot_low.to_numpy() - lo))), float(np.nanmax(np.abs(got.boot_high.to_numpy() - hi))))
            cmp_ = compare_to_reference([f"g{x}" for x in range(k)], point, t, e, reps, int(np.argmax(t)), dof=pi["dof"][metric][:k, 0])
            ref = res.reference[(res.reference.grouping == "group") & (res.reference.metric == metric)].set_index("group")
            for c in cmp_:
                worst = max(worst, abs(ref.loc[c.group, "ratio_low"] - c.ratio_low) if np.isfinite(c.ratio_low) else 0.0)
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=int, default=400, help="datasets per setting (default 400)")
    ap.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates (default 1000, the audit's default)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="only 30 people per group, 2 groups")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--api-check", type=int, default=0, metavar="N",
                    help="only check, on N materialised datasets, that audit.from_scores reports these very intervals")
    a = ap.parse_args(argv)
    if a.api_check:
        worst = api_check(a.api_check)
        print(f"api check: {a.api_check} dataset(s) through audit.from_scores; largest difference from this benchmark's "
              f"intervals: {worst:.3g}")
        return 0 if worst < 1e-9 else 1
    people = (30,) if a.quick else (15, 30, 60)
    groups = (2,) if a.quick else (2, 4)
    print(f"# coverage: {a.datasets} datasets per setting, {a.replicates} replicates, nominal 95%; "
          f"mean ± Monte Carlo s.e. (percent)")
    cols = ["fmr_pct_cover", "fnmr_pct_cover", "fmr_people_cover", "fmr_wilson_cover", "fnmr_people_cover", "fnmr_wilson_cover", "fmr_ratio_cover_all",
            "fnmr_ratio_cover_all", "fmr_shown_any", "fnmr_shown_any"]
    print("| setting | people/group | groups | truth | FMR percentile | FNMR percentile | FMR people | FMR Wilson | FNMR people | FNMR Wilson | "
          "FMR ratio (all K-1) | FNMR ratio (all K-1) | FMR diff. shown | FNMR diff. shown | FMR width people / Wilson | FNMR width people / Wilson |")
    print("|---" * 16 + "|")
    t0 = time.perf_counter()
    seeds = itertools.count(a.seed * 1_000_000)
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        for setting, n, k, ratio2 in itertools.product(SETTINGS, people, groups, (False, True)):
            jobs = [(k, n, setting, ratio2, next(seeds), a.replicates) for _ in range(a.datasets)]
            res = list(pool.map(one, jobs, chunksize=8))

            def stat(key: str) -> str:
                x = np.array([r[key] for r in res], dtype=float)
                x = x[~np.isnan(x)]
                if not x.size:
                    return "–"
                return f"{100 * x.mean():.1f} ± {100 * x.std(ddof=1) / np.sqrt(x.size):.1f}"

            def width(key: str) -> str:
                return f"{np.nanmean([r[key] for r in res]):.4f}"

            cells = [stat(c) for c in cols]
            if not ratio2:
                cells[6] = cells[7] = "–"  # ratio coverage is reported at a true ratio of 2
            print(f"| {setting} | {n} | {k} | {'ratio 2' if ratio2 else 'equal'} | " + " | ".join(cells)
                  + f" | {width('fmr_people_width')} / {width('fmr_wilson_width')} | {width('fnmr_people_width')} / {width('fnmr_wilson_width')} |",
                  flush=True)
    print(f"# {time.perf_counter() - t0:.0f} s; 'diff. shown' under 'equal' is the family-wise false-claim rate "
          "(nominal at most 5%), under 'ratio 2' the power.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
