"""Candidate people-level FNMR intervals on the coverage benchmark's model (how the audit's was chosen).

Exploratory, for issue 9: the audit's FNMR interval (``cluster_rate_interval``: logit scale,
``V_boot S/(S-1)``, t quantile at ``S - 1``) against the BCa interval it replaced and other
candidates. Each dataset is drawn by ``interval_coverage.simulate`` (one fixed threshold), both
groups' FNMR intervals are checked against the truth, and coverage (percent) / mean width are
printed per setting, for equal true rates ("eq") and a true ratio of 2 ("r2").

    python benchmarks/fnmr_interval_variants.py --datasets 200 --people 30 60 --groups 2 4

Candidates: ``BCa (before)``; log scale with the normal quantile (``log z``), with ``t(S-1)`` and
with t at the jackknife's Satterthwaite degrees of freedom (``log t-jk``); logit scale with
``t(S-1)`` (the audit's); a Wilson interval at the effective number of comparisons
``p (1 - p) / V`` with ``t(S-1)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import norm
from scipy.stats import t as tdist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interval_coverage import SETTINGS, simulate  # noqa: E402

from audit.metrics.people import people_bootstrap  # noqa: E402
from audit.metrics.people_jackknife import people_jackknife  # noqa: E402
from audit.metrics.reference import bca_interval, cluster_rate_interval, inflate_for_few_people, jackknife_dof  # noqa: E402

Z = norm.ppf(0.975)


def one(args) -> dict:
    setting, n, k, d, ratio2, reps = args
    ti, tm = SETTINGS[setting]
    rng = np.random.default_rng(7 * 100_000 + d + (50_000 if ratio2 else 0))
    counts, _, fnmr = simulate(rng, k, n, ti, tm, ratio2)
    rep = people_bootstrap(counts, np.arange(k), k, n_replicates=reps, seed=d)
    _, jn = people_jackknife(counts, np.arange(k), k)
    members = rep.strata[:, None] == np.arange(k)[None, :]
    e, m = rep.point_fnm[:k, 0], rep.point_mated[:k]
    p = e / m
    r = rep.fnmr[:, :k, 0]
    out = {"BCa (before)": bca_interval(p, inflate_for_few_people(p, r, np.full(k, n)), jn[:, :k, 0], members)}
    vb = np.nanvar(r, axis=0, ddof=1) * n / (n - 1)
    qs = tdist.ppf(0.975, n - 1)
    qj = tdist.ppf(0.975, np.maximum(jackknife_dof(jn[:, :k, 0], members), 1))
    with np.errstate(all="ignore"):
        se = np.sqrt(vb) / p
        for name, q in (("log z", Z), ("log t(S-1)", qs), ("log t-jk", qj)):
            out[name] = (p * np.exp(-q * se), p * np.exp(q * se))
        out["logit t(S-1) (audit)"] = cluster_rate_interval(p, e, m, r, np.full(k, n))
        neff = p * (1 - p) / vb
        den = 1 + qs * qs / neff
        c = (p + qs * qs / (2 * neff)) / den
        h = qs * np.sqrt(p * (1 - p) / neff + qs * qs / (4 * neff * neff)) / den
        out["wilson-neff t(S-1)"] = (c - h, c + h)
    return {name: ((lo <= fnmr) & (fnmr <= hi), hi - lo) for name, (lo, hi) in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--people", type=int, nargs="+", default=[30, 60])
    ap.add_argument("--groups", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--replicates", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        for n in a.people:
            for k in a.groups:
                for setting in SETTINGS:
                    for ratio2 in (False, True):
                        res = list(ex.map(one, [(setting, n, k, d, ratio2, a.replicates) for d in range(a.datasets)], chunksize=10))
                        cells = [f"{name} {100 * np.mean([x[name][0] for x in res]):.1f}/{np.nanmean([x[name][1] for x in res]):.3f}"
                                 for name in res[0]]
                        print(f"{setting:11s} people {n} groups {k} {'r2' if ratio2 else 'eq'}: " + " | ".join(cells), flush=True)
    print(f"# {time.perf_counter() - t0:.0f} s, {a.datasets} datasets per setting; coverage % / mean width, nominal 95%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
