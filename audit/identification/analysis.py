"""1:N analysis: search a gallery by subject, fix thresholds, and compute the result's tables.

Pure computation over a :class:`~audit.identification.split.GalleryProbeSplit`, embeddings and a
:class:`~audit.identification.search.SearchBackend` (no files, no reports).

Candidate lists are by **subject**: a search returns the ``k`` best enrolled *subjects*, each
scored by its best gallery image (with one image per subject this is the entry list itself). The
entry-level search asks the backend for ``k × m`` entries (``m`` the most images any subject
enrols), which always contains the ``k`` best subjects.

Failed probes: a probe image that failed to acquire has an empty candidate list. With
``failed_probes = "exclude"`` (default, as the 1:1 audit excludes failed images) it counts in
no rate and shows in the FTA table; with ``"miss"`` (NIST FRVT 1:N) it counts as a search that
returned nothing: a miss for a mated probe, a correct rejection for a non-mated one.

Definitions (see :mod:`audit.metrics.identification`): FPIR of a group = share of its non-mated
searches whose top candidate scores ``>= threshold``; FNIR = share of its mated searches whose
mate is not returned at rank ``<= R`` with score ``>= threshold``; thresholds at a target FPIR are
fixed over *all* non-mated searches and applied to every group. A probe "with a false
candidate" (the ACLU-style table) is a non-mated probe with any candidate ``>= threshold``, or a
mated probe with a candidate of another identity ``>= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..datasets.table import group_labels, grouping_id
from ..metrics import insufficient_impostors, interval_arrays, summarize
from ..metrics.uncertainty import check_interval_method
from ..metrics.identification import (
    cmc as cmc_table,
    false_candidate_mask,
    find_mates,
    share_tests,
    threshold_at_fpir,
)
from ..results import distinct_labels, rate_label as _fmt_rate, value_label as _fmt_g
from .result import ID_TABLE_COLUMNS, IdentificationThreshold
from .search import SearchBackend
from .split import GalleryProbeSplit, IdentificationError

__all__ = [
    "CandidateLists",
    "IdentificationTables",
    "search_split",
    "choose_identification_thresholds",
    "analyse_identification",
    "FAILED_PROBES",
    "OVERALL",
    "OVERALL_GROUP",
]

OVERALL = "all"
OVERALL_GROUP = "All"
FAILED_PROBES = ("exclude", "miss")
HIST_BINS = 60
PROBE_SETS = ("all", "nonmated", "mated")


@dataclass(frozen=True, eq=False)
class CandidateLists:
    """Subject-level candidate lists of every probe of a split.

    Attributes
    ----------
    scores : ndarray of float64, shape (n_probes, k)
        Best first; ``-inf`` pads (every slot of a probe that was not searched).
    subjects : ndarray of int64, shape (n_probes, k)
        Index into ``subject_names`` of each candidate; ``-1`` pads.
    entries : ndarray of int64, shape (n_probes, k)
        Row of the split's gallery holding the candidate's best-scoring image; ``-1`` pads.
    subject_names : ndarray of str, shape (n_subjects,)
        The enrolled subjects (sorted).
    searched : ndarray of bool, shape (n_probes,)
        Whether the probe was searched (it was acquired).
    k : int
    """

    scores: np.ndarray
    subjects: np.ndarray
    entries: np.ndarray
    subject_names: np.ndarray
    searched: np.ndarray
    k: int

    def probe_codes(self, probe_subjects: Sequence[str]) -> np.ndarray:
        """Subject code of each probe; ``-1`` for subjects not enrolled."""
        lookup = {s: i for i, s in enumerate(self.subject_names.tolist())}
        return np.array([lookup.get(str(s), -1) for s in probe_subjects], dtype=np.int64)


def _collapse(ids: np.ndarray, scores: np.ndarray, entry_subject: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep each row's first candidate of every subject, then the first k such (vectorised)."""
    n, kk = ids.shape
    valid = ids >= 0
    subj = np.where(valid, entry_subject[np.where(valid, ids, 0)], -1)
    # first occurrence of each subject in a row: sort by (row, subject, position), mark changes
    key_sub = np.where(valid, subj, np.iinfo(np.int64).max)
    order = np.lexsort((np.broadcast_to(np.arange(kk), (n, kk)).ravel(), key_sub.ravel(), np.repeat(np.arange(n), kk)))
    flat_sub = key_sub.ravel()[order]
    flat_row = np.repeat(np.arange(n), kk)[order]
    first_sorted = np.ones(order.size, dtype=bool)
    first_sorted[1:] = (flat_sub[1:] != flat_sub[:-1]) | (flat_row[1:] != flat_row[:-1])
    first = np.zeros(n * kk, dtype=bool)
    first[order] = first_sorted
    first = first.reshape(n, kk) & valid
    keep = first & (np.cumsum(first, axis=1) <= k)
    out_s = np.full((n, k), -np.inf)
    out_c = np.full((n, k), -1, np.int64)
    out_e = np.full((n, k), -1, np.int64)
    rows, cols = np.nonzero(keep)
    slot = np.cumsum(keep, axis=1)[rows, cols] - 1
    out_s[rows, slot] = scores[rows, cols]
    out_c[rows, slot] = subj[rows, cols]
    out_e[rows, slot] = ids[rows, cols]
    return out_s, out_c, out_e


def search_split(
    split: GalleryProbeSplit,
    backend: SearchBackend,
    *,
    k: int,
    gallery_inputs: Any,
    probe_inputs: Any,
    searched: np.ndarray | None = None,
) -> CandidateLists:
    """Enrol the split's gallery in ``backend`` and search it with the probes, by subject.

    Parameters
    ----------
    split : GalleryProbeSplit
    backend : SearchBackend
    k : int
        Candidate subjects per search; at most the number of enrolled subjects.
    gallery_inputs : ndarray (n_gallery, d) or sequence of n_gallery paths
        One per gallery row, in the split's order (embeddings, or image paths for a backend
        whose ``inputs`` is ``"images"``).
    probe_inputs : ndarray (n_searched, d) or sequence of n_searched paths
        One per *searched* probe, in the split's order.
    searched : ndarray of bool, shape (n_probes,), optional
        Which probes ``probe_inputs`` covers (default: all).

    Raises
    ------
    IdentificationError
        ``k`` larger than the number of enrolled subjects (or < 1), or inputs of the wrong length.
    """
    n_sub = split.n_gallery_subjects
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise IdentificationError(f"k must be an integer >= 1, got {k!r}")
    if k > n_sub:
        raise IdentificationError(
            f"k = {k} is larger than the gallery ({n_sub} enrolled subjects); a candidate list cannot name more subjects "
            f"than are enrolled. Use k <= {n_sub}."
        )
    P = len(split.probes)
    searched = np.ones(P, dtype=bool) if searched is None else np.asarray(searched, dtype=bool)
    if searched.shape != (P,):
        raise IdentificationError(f"searched must have one flag per probe ({P}), got shape {searched.shape}")
    if len(gallery_inputs) != len(split.gallery):
        raise IdentificationError(f"gallery_inputs has {len(gallery_inputs)} rows; the gallery has {len(split.gallery)}")
    if len(probe_inputs) != int(searched.sum()):
        raise IdentificationError(f"probe_inputs has {len(probe_inputs)} rows; {int(searched.sum())} probes are searched")
    names, entry_subject = np.unique(split.gallery["subject"].astype(str).to_numpy(), return_inverse=True)
    m = int(np.bincount(entry_subject).max())
    kk = min(len(split.gallery), k * m)
    backend.enrol(gallery_inputs, np.arange(len(split.gallery), dtype=np.int64))
    scores = np.full((P, k), -np.inf)
    subjects = np.full((P, k), -1, np.int64)
    entries = np.full((P, k), -1, np.int64)
    if searched.any():
        hits = backend.search(probe_inputs, kk)
        if hits.scores.shape != (int(searched.sum()), kk):
            raise IdentificationError(
                f"search backend {backend.name!r} returned candidate lists of shape {hits.scores.shape}, expected "
                f"{(int(searched.sum()), kk)}; pad missing candidates with score -inf and id -1"
            )
        if np.any(hits.ids >= len(split.gallery)):
            raise IdentificationError(f"search backend {backend.name!r} returned an id that was never enrolled")
        s, c, e = _collapse(hits.ids, hits.scores, entry_subject.astype(np.int64), k)
        scores[searched], subjects[searched], entries[searched] = s, c, e
    return CandidateLists(scores, subjects, entries, names, searched, int(k))


# ------------------------------------------------------------------------------ thresholds
def _outcomes(split: GalleryProbeSplit, cands: CandidateLists, *, rank: int, failed_probes: str):
    if failed_probes not in FAILED_PROBES:
        raise IdentificationError(f"failed_probes must be one of {list(FAILED_PROBES)}, got {failed_probes!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not (1 <= rank <= cands.k):
        raise IdentificationError(f"rank must be an integer in [1, k = {cands.k}], got {rank!r}")
    mated = split.probes["mated"].to_numpy(bool)
    included = cands.searched | (failed_probes == "miss")
    codes = cands.probe_codes(split.probes["subject"].astype(str))
    hits = find_mates(cands.scores, cands.subjects, np.where(mated, codes, -1))
    return mated, included, codes, hits


def choose_identification_thresholds(
    split: GalleryProbeSplit,
    cands: CandidateLists,
    *,
    target_fpir: Sequence[float],
    fixed_native: Sequence[float] = (),
    info: Any = None,
    backend_default: bool = False,
    rank: int = 1,
    failed_probes: str = "exclude",
) -> tuple[IdentificationThreshold, ...]:
    """One threshold per target FPIR (fixed on *all* non-mated searches), per fixed value, then the
    backend's default (its 1:1 threshold, when asked and it has one).

    ``info`` (a :class:`~audit.backends.base.BackendInfo`) converts native values; without it
    fixed values are taken as similarities.
    """
    mated, included, _, hits = _outcomes(split, cands, rank=rank, failed_probes=failed_probes)
    top_nm = cands.scores[~mated & included, 0]
    n_nm, n_m = int(top_nm.size), int((mated & included).sum())
    to_sim = info.to_similarity if info is not None else float
    to_native = info.to_native if info is not None else float
    specs: list[tuple[str, str, float, float | None]] = []
    for name, t in zip(distinct_labels(target_fpir, _fmt_rate), target_fpir):
        if n_nm == 0:
            raise IdentificationError("a threshold at a target FPIR needs non-mated searches; this probe set has none "
                                      "(give fixed thresholds, or leave some subjects out of the gallery)")
        specs.append((f"FPIR={name}", "target_fpir", threshold_at_fpir(top_nm, t), float(t)))
    for name, v in zip(distinct_labels(fixed_native, _fmt_g), fixed_native):
        specs.append((f"fixed {name}", "fixed", to_sim(v), None))
    if backend_default and info is not None and getattr(info, "default_threshold", None) is not None:
        specs.append((f"default {info.default_threshold:g}", "backend_default", to_sim(info.default_threshold), None))
    out = []
    ms = hits.score[mated & included]
    mr = hits.rank[mated & included]
    for name, kind, value, target in specs:
        fp = int((top_nm >= value).sum())
        miss = int(n_m - ((mr >= 1) & (mr <= rank) & (ms >= value)).sum())
        achieved = fp / n_nm if n_nm else float("nan")
        basis = target if target is not None else achieved
        insufficient = bool(n_nm == 0 or (basis > 0 and insufficient_impostors(n_nm, basis)))
        out.append(IdentificationThreshold(
            name, kind, float(value), to_native(value), target, achieved, fp, n_nm,
            miss / n_m if n_m else float("nan"), miss, n_m, insufficient,
        ))
    return tuple(out)


# ------------------------------------------------------------------------------ tables
@dataclass(frozen=True)
class IdentificationTables:
    """The computed tables, ready to go into an :class:`~audit.identification.result.IdentificationResult`."""

    thresholds: tuple[IdentificationThreshold, ...]
    composition: pd.DataFrame
    fta: pd.DataFrame
    rates: pd.DataFrame
    cmc: pd.DataFrame
    false_matches: pd.DataFrame
    candidates: pd.DataFrame
    cross_fpir: pd.DataFrame
    disparity: pd.DataFrame
    score_hist: pd.DataFrame
    searches: pd.DataFrame
    warnings: tuple[str, ...]


def _bootstrap(errors: np.ndarray, trials: np.ndarray, subj: np.ndarray, grp: np.ndarray, n_groups: int,
               labels: list[str], replicates: int, seed: int):
    """Subject bootstrap of per-group rates: units are (subject, group) pairs of the selected probes.

    errors : (n_probes, T) 0/1 per probe and threshold; trials : (n_probes,) ones.
    """
    from ..metrics.bootstrap import subject_bootstrap

    if errors.shape[0] == 0:
        return None
    key = pd.MultiIndex.from_arrays([subj, grp])
    unit, uniq = pd.factorize(key)
    n_units = len(uniq)
    e = np.zeros((n_units, errors.shape[1]), np.int64)
    np.add.at(e, unit, errors.astype(np.int64))
    n = np.bincount(unit, weights=trials, minlength=n_units).astype(np.int64)
    unit_group = np.array([g for _, g in uniq], dtype=np.int64)
    return subject_bootstrap(e, n, unit_group, n_groups=n_groups, group_labels=labels,
                             n_replicates=replicates, seed=seed)


def analyse_identification(
    split: GalleryProbeSplit,
    cands: CandidateLists,
    thresholds: Sequence[IdentificationThreshold],
    *,
    groupings: Sequence[Sequence[str]],
    rank: int = 1,
    failed_probes: str = "exclude",
    bootstrap_replicates: int = 1000,
    seed: int = 0,
    interval: str = "wilson",
) -> IdentificationTables:
    """Compute every table of an identification result.

    Parameters
    ----------
    split : GalleryProbeSplit
        With a ``status`` column on gallery and probes (all ``ok`` is assumed when absent).
    cands : CandidateLists
        From :func:`search_split`.
    thresholds : sequence of IdentificationThreshold
        From :func:`choose_identification_thresholds`.
    groupings : sequence of sequences of str
        Label columns of each grouping; probes are grouped by their labels, candidates by the
        gallery image's labels.
    rank : int, default 1
        FNIR counts a mate as found at rank ``<= rank``.
    failed_probes : {"exclude", "miss"}
    bootstrap_replicates : int, default 1000
        Subject bootstrap replicates (probe subjects resampled within each group); 0 turns it off.
    seed : int
    interval : {"wilson", "clopper-pearson"}, default "wilson"
        The 95% interval of every FTA, FPIR, FNIR and CMC rate (``ci_low``/``ci_high``; the method
        is in ``ci_method``): Wilson's, or Clopper–Pearson's (exact, wider).
    """
    check_interval_method(interval, "interval")
    probes, gallery = split.probes, split.gallery
    mated, included, codes, hits = _outcomes(split, cands, rank=rank, failed_probes=failed_probes)
    warnings: list[str] = []
    th = [t.value for t in thresholds]
    T = len(th)
    top = cands.scores[:, 0]
    probe_subj = probes["subject"].astype(str).to_numpy()
    fc = [false_candidate_mask(cands.scores, cands.subjects, codes, t) for t in th]
    # a non-mated probe's code is -1, so every returned candidate of it is false; a mated probe's own subject is not
    has_false = np.stack([m.any(axis=1) for m in fc], axis=1) if T else np.zeros((len(probes), 0), bool)
    fp = np.stack([(top >= t) for t in th], axis=1) if T else has_false
    found = np.stack([(hits.rank >= 1) & (hits.rank <= rank) & (hits.score >= t) for t in th], axis=1) if T else has_false
    nm_sel = ~mated & included
    m_sel = mated & included
    if cands.searched.any():
        padded = np.isneginf(cands.scores[cands.searched]).any()
        if padded:
            warnings.append("some searched probes returned fewer than k candidates (the search backend truncated its lists); "
                            "FPIR and FNIR at thresholds below the lowest returned score are not measurable")
    gal_status_ok = (gallery["status"].astype(str) == "ok").all() if "status" in gallery.columns else True
    if not gal_status_ok:
        warnings.append("some gallery images have a status other than 'ok' but were enrolled")

    all_groupings: list[tuple[str, pd.Series, pd.Series]] = [
        (OVERALL, pd.Series(OVERALL_GROUP, index=probes.index), pd.Series(OVERALL_GROUP, index=gallery.index))]
    all_groupings += [(grouping_id(cols), group_labels(probes, cols), group_labels(gallery, cols)) for cols in groupings]

    rows: dict[str, list] = {name: [] for name in ID_TABLE_COLUMNS if name not in ("samples", "searches")}
    every = np.concatenate([hits.score[m_sel], top[nm_sel]])
    every = every[np.isfinite(every)]
    edges = np.linspace(every.min(), every.max(), HIST_BINS + 1) if every.size and every.min() < every.max() else \
        np.linspace((every.min() if every.size else 0.0) - 0.5, (every.max() if every.size else 1.0) + 0.5, HIST_BINS + 1)
    p_status = probes["status"].astype(str).to_numpy() if "status" in probes.columns else np.full(len(probes), "ok")
    g_status = gallery["status"].astype(str).to_numpy() if "status" in gallery.columns else np.full(len(gallery), "ok")

    for gid, p_lab, g_lab in all_groupings:
        cats = sorted(set(p_lab.astype(str)) | set(g_lab.astype(str)))
        lookup = {c: i for i, c in enumerate(cats)}
        G = len(cats)
        pc = p_lab.astype(str).map(lookup).to_numpy(np.int64)
        gc = g_lab.astype(str).map(lookup).to_numpy(np.int64)

        # composition and FTA
        fails = np.zeros(G, np.int64)
        tries = np.zeros(G, np.int64)
        for c, name in enumerate(cats):
            for role, frame, codes_r, status, sel in (
                ("gallery", gallery, gc, g_status, np.ones(len(gallery), bool)),
                ("mated", probes, pc, p_status, mated),
                ("nonmated", probes, pc, p_status, ~mated),
            ):
                msk = (codes_r == c) & sel
                if msk.any():
                    rows["composition"].append((gid, name, role, int(frame.loc[msk, "subject"].nunique()), int(msk.sum()),
                                                int((status[msk] == "ok").sum())))
                fails[c] += int((status[msk] != "ok").sum())
                tries[c] += int(msk.sum())
        ci = interval_arrays(fails, tries, method=interval)
        for c, name in enumerate(cats):
            if tries[c]:
                rows["fta"].append((gid, name, int(fails[c]), int(tries[c]), fails[c] / tries[c], ci.low[c], ci.high[c], interval))

        # FPIR / FNIR with per-rate (Wilson or Clopper-Pearson) and subject-bootstrap intervals
        boot = {}
        if bootstrap_replicates:
            boot["fpir"] = _bootstrap(fp[nm_sel], np.ones(int(nm_sel.sum())), probe_subj[nm_sel], pc[nm_sel], G, cats,
                                      bootstrap_replicates, seed)
            boot["fnir"] = _bootstrap(~found[m_sel], np.ones(int(m_sel.sum())), probe_subj[m_sel], pc[m_sel], G, cats,
                                      bootstrap_replicates, seed)
        by_metric: dict[str, dict[str, dict[str, float]]] = {"fpir": {t.name: {} for t in thresholds},
                                                            "fnir": {t.name: {} for t in thresholds}}
        for metric, sel, err in (("fpir", nm_sel, fp), ("fnir", m_sel, ~found)):
            for c, name in enumerate(cats):
                msk = sel & (pc == c)
                n = int(msk.sum())
                if n == 0 and not (msk | ((pc == c) & (mated if metric == "fnir" else ~mated))).any():
                    continue  # the group has no probe of this kind at all (e.g. a gallery-only group)
                e = err[msk].sum(axis=0).astype(np.int64) if T else np.zeros(0, np.int64)
                w = interval_arrays(e, np.full(T, n, np.int64), method=interval)
                subj_n = int(pd.unique(probe_subj[msk]).size)
                b = boot.get(metric)
                for j, t in enumerate(thresholds):
                    v = e[j] / n if n else np.nan
                    if metric == "fpir":
                        basis = t.target_fpir if t.target_fpir is not None else t.achieved_fpir
                        insufficient = bool(n == 0 or (basis is not None and basis > 0 and insufficient_impostors(n, basis)))
                    else:
                        insufficient = n == 0
                    bl = float(b.low[c, j]) if b is not None and n else np.nan
                    bh = float(b.high[c, j]) if b is not None and n else np.nan
                    rows["rates"].append((gid, name, t.name, t.value, metric, int(e[j]), n, v, w.low[j], w.high[j], interval,
                                          insufficient, subj_n, bl, bh))
                    if n:
                        by_metric[metric][t.name][name] = v

        # CMC of mated searches
        for c, name in enumerate(cats):
            msk = m_sel & (pc == c)
            if not msk.any():
                continue
            for r in cmc_table(hits.rank[msk], max_rank=cands.k, method=interval).itertuples(index=False):
                rows["cmc"].append((gid, name, int(r.rank), int(r.hits), int(r.searches), r.value, r.ci_low, r.ci_high, r.ci_method))

        # ACLU-style table and false-candidate demographics
        gal_subjects = np.array([gallery.loc[gc == c, "subject"].nunique() for c in range(G)], np.int64)
        for j, t in enumerate(thresholds):
            for pset in PROBE_SETS:
                sel = included & (np.ones_like(mated) if pset == "all" else (~mated if pset == "nonmated" else mated))
                n_g = np.bincount(pc[sel], minlength=G)
                f_g = np.bincount(pc[sel & has_false[:, j]], minlength=G)
                present = [c for c in range(G) if n_g[c] > 0]
                if present:
                    tests = share_tests(f_g[present], n_g[present])
                    for c, r in zip(present, tests.itertuples(index=False)):
                        rows["false_matches"].append((gid, cats[c], t.name, t.value, pset, int(r.total), r.total_share,
                                                      int(r.flagged), r.flagged_share, r.ratio, r.binom_p,
                                                      r.fisher_odds_ratio, r.fisher_p))
                fmask = fc[j] & sel[:, None]
                ent = cands.entries[fmask]
                cand_grp = gc[ent] if ent.size else np.zeros(0, np.int64)
                cand_sub = cands.subjects[fmask]
                counts = np.bincount(cand_grp, minlength=G)
                distinct = np.array([np.unique(cand_sub[cand_grp == c]).size for c in range(G)], np.int64)
                gpresent = [c for c in range(G) if gal_subjects[c] > 0]
                ct = _candidate_tests(counts[gpresent], gal_subjects[gpresent])
                for c, r in zip(gpresent, ct):
                    rows["candidates"].append((gid, cats[c], t.name, t.value, pset, int(counts[c]), r[0], int(distinct[c]),
                                               int(gal_subjects[c]), r[1], r[2], r[3]))

            # cross-group FPIR: non-mated searches by probe group x the top candidate's group
            hit = nm_sel & fp[:, j]
            top_grp = np.where(cands.entries[:, 0] >= 0, gc[np.maximum(cands.entries[:, 0], 0)], -1)
            n_by = np.bincount(pc[nm_sel], minlength=G)
            cell = np.bincount(pc[hit] * G + top_grp[hit], minlength=G * G).reshape(G, G)
            for a in range(G):
                if n_by[a] == 0:
                    continue
                for b in range(G):
                    if gal_subjects[b] == 0:
                        continue
                    rows["cross_fpir"].append((gid, t.name, t.value, cats[a], cats[b], int(cell[a, b]), int(n_by[a]),
                                               cell[a, b] / n_by[a]))

        # disparity summaries (bootstrap intervals for the two ratio summaries)
        if gid != OVERALL:
            from ..metrics.bootstrap import bootstrap_disparity

            for j, t in enumerate(thresholds):
                for metric in ("fpir", "fnir"):
                    b = boot.get(metric)
                    for d in summarize(by_metric[metric][t.name]):
                        lo = hi = np.nan
                        if b is not None and d.summary in ("max_min_ratio", "max_geomean_ratio"):
                            bi = bootstrap_disparity(b, d.summary, column=j)
                            lo, hi = bi.low, bi.high
                        rows["disparity"].append((gid, t.name, metric, d.summary, d.value, d.group_high, d.group_low,
                                                  d.groups_used, d.note, lo, hi))

        # score histograms by probe group
        for c, name in enumerate(cats):
            for kind, sc in (("mate", hits.score[m_sel & (pc == c)]), ("nonmated_top", top[nm_sel & (pc == c)])):
                if not ((pc == c) & (m_sel if kind == "mate" else nm_sel)).any():
                    continue
                h, _ = np.histogram(sc[np.isfinite(sc)], bins=edges)
                rows["score_hist"] += [(gid, name, kind, float(edges[i]), float(edges[i + 1]), int(h[i])) for i in range(HIST_BINS)]

    names = cands.subject_names
    searches = pd.DataFrame({
        "sample_id": probes["sample_id"].to_numpy(),
        "subject": probe_subj,
        "mated": mated,
        "status": p_status,
        "searched": cands.searched,
        "top_subject": np.where(cands.subjects[:, 0] >= 0, names[np.maximum(cands.subjects[:, 0], 0)], ""),
        "top_score": top,
        "mate_rank": hits.rank,
        "mate_score": hits.score,
    }, columns=ID_TABLE_COLUMNS["searches"])

    def frame(name: str) -> pd.DataFrame:
        return pd.DataFrame(rows[name], columns=ID_TABLE_COLUMNS[name])

    return IdentificationTables(
        thresholds=tuple(thresholds), composition=frame("composition"), fta=frame("fta"), rates=frame("rates"),
        cmc=frame("cmc"), false_matches=frame("false_matches"), candidates=frame("candidates"),
        cross_fpir=frame("cross_fpir"), disparity=frame("disparity"), score_hist=frame("score_hist"),
        searches=searches, warnings=tuple(warnings),
    )


def _candidate_tests(counts: np.ndarray, gallery_subjects: np.ndarray) -> list[tuple[float, float, float, float]]:
    """(candidate_share, gallery_share, ratio, binom_p) per gallery group: do false candidates fall on
    a group more than its share of enrolled subjects? One-sided binomial test on the candidate count."""
    from ..metrics.identification import candidate_share_tests

    t = candidate_share_tests(counts, gallery_subjects)
    return list(zip(t["candidate_share"], t["gallery_share"], t["ratio"], t["binom_p"]))
