"""Evaluate mitigation methods on held-out people: folds by subject, per-group FMR/FNMR before and after.

For each fold, every method is fitted on the other folds' people (all their mated pairs and a
seeded sample of their impostor pairs) and applied to every pair of the held-out fold's images.
Counts are pooled over the folds, so every person is tested exactly once, by a method that never
saw them. A group's FMR counts same-group impostor pairs (as the audit does); its FNMR its
people's mated pairs; the overall FMR counts every impostor pair.

Intervals: Wilson over comparisons ("if comparisons were independent"), and the audit's
people-level interval (:mod:`audit.metrics.people`: people resampled within each group, an
impostor pair of people i and j weighing ``w_i * w_j``; the intervals of
:func:`audit.verification.intervals.people_intervals`), from the pooled held-out pairs of every fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import MetricError
from ..metrics import threshold_at_fmr
from ..metrics.people import PeopleCounts, people_bootstrap
from ..verification.intervals import people_intervals
from ..metrics.uncertainty import interval_arrays
from .methods import (
    METHODS, USES_PROTECTED_ATTRIBUTE, faircal_probability, fsn_normalise, fsn_offsets, group_thresholds,
    platt_fit,
)

def _people_level(n_people: int, person_group: np.ndarray, g: int, imp_pairs: list, mated_people: list, fm_pairs: list,
                  fnm_people: list, replicates: int, seed: int) -> dict:
    """The audit's people-level intervals (FMR and FNMR by group) from the pooled held-out pairs:
    same-group impostor pairs listed per pair of people, mated pairs per person."""
    cat = np.concatenate
    ia, ib = (cat([p[0] for p in imp_pairs]).astype(np.int64), cat([p[1] for p in imp_pairs]).astype(np.int64)) if imp_pairs else (np.zeros(0, np.int64),) * 2
    fa, fb = (cat([p[0] for p in fm_pairs]).astype(np.int64), cat([p[1] for p in fm_pairs]).astype(np.int64)) if fm_pairs else (np.zeros(0, np.int64),) * 2
    mp = cat(mated_people).astype(np.int64) if mated_people else np.zeros(0, np.int64)
    fp = cat(fnm_people).astype(np.int64) if fnm_people else np.zeros(0, np.int64)
    la, lb, lca, lcb, ln = PeopleCounts.aggregate_pairs(ia, ib, person_group[ia], person_group[ib], np.ones(ia.size, np.int64))
    a, b, ca, cb, cnt = PeopleCounts.aggregate_pairs(fa, fb, person_group[fa], person_group[fb], np.ones(fa.size, np.int64))
    images = np.zeros((n_people, g), np.int64)
    images[np.arange(n_people), person_group] = 1
    mated_n = np.bincount(mp, minlength=n_people)
    fnm_n = np.bincount(fp, minlength=n_people)
    counts = PeopleCounts(np.array([0.0]), person_group.astype(np.int64), images, "listed", a, b, ca, cb, cnt,
                          np.arange(n_people, dtype=np.int64), person_group.astype(np.int64), mated_n.astype(np.int64),
                          fnm_n[:, None].astype(np.int64), imp_a=la, imp_b=lb, imp_ca=lca, imp_cb=lcb, imp_n=ln[:, 0].copy())
    mapping = np.arange(g)
    rep = people_bootstrap(counts, mapping, g, n_replicates=replicates, seed=seed)
    pi = people_intervals(counts, rep, mapping, g)  # the 1:1 audit's own group intervals
    out = {name: (pi[f"{name}_low"][:, 0], pi[f"{name}_high"][:, 0]) for name in ("fmr", "fnmr")}
    return out


__all__ = ["subject_folds", "pair_scores", "evaluate_mitigations", "MitigationTables", "RATE_COLUMNS", "SUMMARY_COLUMNS"]

RATE_COLUMNS = ["method", "group", "metric", "errors", "trials", "rate", "ci_low", "ci_high", "boot_low", "boot_high", "subjects"]
SUMMARY_COLUMNS = ["method", "label", "uses_protected_attribute", "fmr", "fnmr", "fnmr_change", "fmr_max_min", "fnmr_max_min",
                   "fmr_max_group", "fnmr_max_group"]


def subject_folds(subjects: Sequence, k: int, *, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of every row; all rows of a subject share a fold.

    Subjects are shuffled (seeded) and dealt round-robin, so fold sizes in people differ by at
    most one.

    >>> f = subject_folds(["a", "a", "b", "c", "d"], 2, seed=0)
    >>> bool(f[0] == f[1]), sorted(np.bincount(f[[0, 2, 3, 4]]).tolist())
    (True, [2, 2])
    """
    subj = np.asarray(subjects).astype(str)
    uniq = np.unique(subj)
    if k < 2 or k > len(uniq):
        raise MetricError(f"folds must be between 2 and the number of subjects ({len(uniq)}); got {k}")
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = np.empty(len(uniq), np.int64)
    fold_of[order] = np.arange(len(uniq)) % k
    return fold_of[np.searchsorted(uniq, subj)]


def pair_scores(emb: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of pairs of rows: cosine similarity, or minus the Euclidean distance.

    >>> e = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> pair_scores(e, np.array([0]), np.array([1]), "euclidean").round(4).tolist()
    [-1.4142]
    """
    x, y = emb[a].astype(np.float64), emb[b].astype(np.float64)
    if metric == "cosine":
        nx = np.linalg.norm(x, axis=1)
        ny = np.linalg.norm(y, axis=1)
        return np.einsum("ij,ij->i", x, y) / np.maximum(nx * ny, 1e-12)
    if metric == "euclidean":
        return -np.linalg.norm(x - y, axis=1)
    raise MetricError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


@dataclass(frozen=True)
class MitigationTables:
    """What :func:`evaluate_mitigations` measured (long tables with fixed columns)."""

    rates: pd.DataFrame  # RATE_COLUMNS
    summary: pd.DataFrame  # SUMMARY_COLUMNS
    folds: pd.DataFrame  # fold, method, threshold, train_people, test_people, test_mated, test_impostors
    settings: dict = field(default_factory=dict)


def _kmeans(emb: np.ndarray, k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(emb.astype(np.float64))


def evaluate_mitigations(
    embeddings: np.ndarray,
    subjects: Sequence,
    groups: Sequence[str],
    *,
    metric: str,
    target_fmr: float = 1e-3,
    methods: Sequence[str] = ("group_thresholds", "fsn", "faircal"),
    folds: int = 5,
    clusters: int = 100,
    train_impostors: int = 200_000,
    seed: int = 0,
    bootstrap: int = 1000,
    log: Callable[[str], None] = lambda m: None,
) -> MitigationTables:
    """Fit each method on k−1 folds of people, test it on the held-out fold, pool the counts.

    Parameters
    ----------
    embeddings : numpy.ndarray, shape (n, d)
        One row per acquired image.
    subjects, groups : sequences of length n
        Identity and demographic group of each row (a person's rows share a group).
    metric : {"cosine", "euclidean"}
    target_fmr : float, default 1e-3
        The overall FMR the baseline, FSN and FairCal thresholds are set to (on training
        impostors), and every group's FMR for per-group thresholds.
    methods : sequence of str
        Among ``"group_thresholds"``, ``"fsn"``, ``"faircal"``; the baseline is always included.
    folds : int, default 5
    clusters : int, default 100
        k-means clusters for FSN and FairCal (capped at a tenth of the training images).
    train_impostors : int, default 200000
        Impostor pairs sampled (seeded) from each training split; same-group ones are sampled
        separately for per-group thresholds.
    seed : int, default 0
    bootstrap : int, default 1000
        Subject-bootstrap replicates for the per-group intervals (0: none).

    Returns
    -------
    MitigationTables
    """
    from ..verification.protocol import mated_pair_indices
    from ..engine.pairs import sample_impostor_pairs

    unknown = [m for m in methods if m not in METHODS or m == "baseline"]
    if unknown:
        raise MetricError(f"unknown mitigation method(s) {unknown}; choose among {[m for m in METHODS if m != 'baseline']}")
    emb = np.asarray(embeddings)
    subj = np.asarray(subjects).astype(str)
    grp = np.asarray(groups).astype(str)
    if not (len(emb) == len(subj) == len(grp)):
        raise MetricError(f"embeddings, subjects and groups must have one row per image; got {len(emb)}, {len(subj)}, {len(grp)}")
    all_methods = ["baseline", *methods]
    group_names = sorted(set(grp.tolist()))
    gcode = np.searchsorted(group_names, grp)
    people = np.unique(subj)
    pidx = np.searchsorted(people, subj)
    fold = subject_folds(subj, folds, seed=seed)
    # per method, per person: false matches / same-group impostor comparisons, false non-matches / mated
    fm = {m: np.zeros(len(people), np.int64) for m in all_methods}
    fm_n = np.zeros(len(people), np.int64)
    fnm = {m: np.zeros(len(people), np.int64) for m in all_methods}
    fnm_n = np.zeros(len(people), np.int64)
    overall_fm = {m: 0 for m in all_methods}
    overall_imp = 0
    fold_rows = []
    # the held-out pairs by person, for the people-level intervals
    imp_pairs: list = []
    mated_people: list = []
    fm_pairs: dict = {m: [] for m in all_methods}
    fnm_people: dict = {m: [] for m in all_methods}
    for f in range(folds):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        # ---- training pairs
        ma, mb = mated_pair_indices(subj[tr])
        n_imp = int(min(train_impostors, len(tr) * (len(tr) - 1) // 2 - len(ma)))
        ia, ib = sample_impostor_pairs(subj[tr], n_imp, seed=seed + f)
        sizes = np.bincount(gcode[tr])
        n_same = int(min(train_impostors, int((sizes * (sizes - 1) // 2).sum()) - len(ma)))
        sa, sb = sample_impostor_pairs(subj[tr], n_same, seed=seed + 1000 + f, groups=gcode[tr], same_group=True)
        s_mated = pair_scores(emb[tr], ma, mb, metric)
        s_imp = pair_scores(emb[tr], ia, ib, metric)
        s_same = pair_scores(emb[tr], sa, sb, metric)
        thr = {"baseline": float(threshold_at_fmr(s_imp, target_fmr))}
        k = int(max(2, min(clusters, len(tr) // 10)))
        km = _kmeans(emb[tr], k, seed) if ("fsn" in methods or "faircal" in methods) else None
        c_tr = km.labels_.astype(np.int64) if km is not None else None
        c_te = km.predict(emb[te].astype(np.float64)).astype(np.int64) if km is not None else None
        if "group_thresholds" in methods:
            gthr = group_thresholds(s_same, grp[tr][sa], target_fmr)
        if "fsn" in methods:
            offsets, _ = fsn_offsets(s_imp, c_tr[ia], c_tr[ib], k, target_fmr)
            thr["fsn"] = float(threshold_at_fmr(fsn_normalise(s_imp, c_tr[ia], c_tr[ib], offsets), target_fmr))
        if "faircal" in methods:
            s_all = np.concatenate([s_mated, s_imp])
            y_all = np.r_[np.ones(len(s_mated), int), np.zeros(len(s_imp), int)]
            ca_all, cb_all = np.concatenate([c_tr[ma], c_tr[ia]]), np.concatenate([c_tr[mb], c_tr[ib]])
            maps = []
            for c in range(k):
                m = (ca_all == c) | (cb_all == c)
                maps.append(platt_fit(s_all[m], y_all[m]))
            thr["faircal"] = float(threshold_at_fmr(faircal_probability(s_imp, c_tr[ia], c_tr[ib], maps), target_fmr))
        # ---- held-out pairs: every pair of the fold's images
        ta, tb = np.triu_indices(len(te), k=1)
        mated = subj[te][ta] == subj[te][tb]
        s_te = pair_scores(emb[te], ta, tb, metric)
        same = grp[te][ta] == grp[te][tb]
        imp = ~mated
        pa, pb = pidx[te][ta], pidx[te][tb]
        si = imp & same
        np.add.at(fm_n, pa[si], 1)
        np.add.at(fm_n, pb[si], 1)
        np.add.at(fnm_n, pa[mated], 1)
        imp_pairs.append((pa[si], pb[si]))
        mated_people.append(pa[mated])
        overall_imp += int(imp.sum())
        decisions = {"baseline": s_te >= thr["baseline"]}
        if "group_thresholds" in methods:
            # a pair of two groups is judged at the stricter (higher) of the two groups' thresholds
            ga = np.array([gthr.get(g, thr["baseline"]) for g in grp[te][ta]])
            gb = np.array([gthr.get(g, thr["baseline"]) for g in grp[te][tb]])
            decisions["group_thresholds"] = s_te >= np.maximum(ga, gb)
            thr["group_thresholds"] = float("nan")
        if "fsn" in methods:
            decisions["fsn"] = fsn_normalise(s_te, c_te[ta], c_te[tb], offsets) >= thr["fsn"]
        if "faircal" in methods:
            decisions["faircal"] = faircal_probability(s_te, c_te[ta], c_te[tb], maps) >= thr["faircal"]
        for m, d in decisions.items():
            fm_pairs[m].append((pa[d & si], pb[d & si]))
            fnm_people[m].append(pa[mated & ~d])
            false_match = d & si
            np.add.at(fm[m], pa[false_match], 1)
            np.add.at(fm[m], pb[false_match], 1)
            np.add.at(fnm[m], pa[mated & ~d], 1)
            overall_fm[m] += int((d & imp).sum())
            fold_rows.append({"fold": f, "method": m, "threshold": thr.get(m, float("nan")),
                              "group_thresholds": dict(gthr) if m == "group_thresholds" else None,
                              "train_people": int(len(np.unique(subj[tr]))), "test_people": int(len(np.unique(subj[te]))),
                              "test_mated": int(mated.sum()), "test_impostors": int(imp.sum()), "clusters": k if m in ("fsn", "faircal") else None})
        log(f"fold {f + 1}/{folds}: {len(np.unique(subj[te]))} held-out people, {int(mated.sum())} mated and {int(imp.sum())} impostor pairs")
    # person -> group (a person's images share a group)
    person_group = np.zeros(len(people), np.int64)
    person_group[pidx] = gcode
    rows = []
    g_n = len(group_names)
    for m in all_methods:
        iv = _people_level(len(people), person_group, g_n, imp_pairs, mated_people, fm_pairs[m], fnm_people[m],
                           bootstrap, seed) if bootstrap else None
        for metric_name, errs, trials in (("fmr", fm[m], fm_n), ("fnmr", fnm[m], fnm_n)):
            for gi, g in enumerate(group_names):
                sel = person_group == gi
                e, n = int(errs[sel].sum()), int(trials[sel].sum())
                if metric_name == "fmr":  # each comparison was counted for both its people
                    e, n = e // 2, n // 2
                rows.append({"method": m, "group": g, "metric": metric_name, "errors": e, "trials": n,
                             "rate": e / n if n else np.nan,
                             "boot_low": float(iv[metric_name][0][gi]) if iv is not None else np.nan,
                             "boot_high": float(iv[metric_name][1][gi]) if iv is not None else np.nan,
                             "subjects": int(sel.sum())})
    rates = pd.DataFrame(rows)
    iv = interval_arrays(rates["errors"].to_numpy(), rates["trials"].to_numpy(), method="wilson")
    rates["ci_low"], rates["ci_high"] = np.asarray(iv.low, float), np.asarray(iv.high, float)
    rates = rates[RATE_COLUMNS]
    mated_total = int(fnm_n.sum())
    base_fnmr = int(fnm["baseline"].sum()) / mated_total if mated_total else np.nan
    summ = []
    for m in all_methods:
        r = rates[rates["method"] == m]
        fmr_g = r[(r["metric"] == "fmr") & (r["trials"] > 0)].set_index("group")["rate"]
        fnmr_g = r[(r["metric"] == "fnmr") & (r["trials"] > 0)].set_index("group")["rate"]
        fnmr = int(fnm[m].sum()) / mated_total if mated_total else np.nan

        def ratio(s: pd.Series) -> float:
            if s.empty:
                return np.nan
            return float(s.max() / s.min()) if s.min() > 0 else (np.inf if s.max() > 0 else np.nan)

        summ.append({"method": m, "label": METHODS[m], "uses_protected_attribute": USES_PROTECTED_ATTRIBUTE[m],
                     "fmr": overall_fm[m] / overall_imp if overall_imp else np.nan, "fnmr": fnmr,
                     "fnmr_change": fnmr - base_fnmr if mated_total else np.nan,
                     "fmr_max_min": ratio(fmr_g), "fnmr_max_min": ratio(fnmr_g),
                     "fmr_max_group": str(fmr_g.idxmax()) if len(fmr_g) and fmr_g.max() > 0 else "",
                     "fnmr_max_group": str(fnmr_g.idxmax()) if len(fnmr_g) and fnmr_g.max() > 0 else ""})
    settings = {"target_fmr": target_fmr, "folds": folds, "clusters": clusters, "train_impostors": train_impostors,
                "seed": seed, "bootstrap": bootstrap, "metric": metric, "methods": list(all_methods), "groups": group_names}
    return MitigationTables(rates=rates, summary=pd.DataFrame(summ, columns=SUMMARY_COLUMNS), folds=pd.DataFrame(fold_rows), settings=settings)
