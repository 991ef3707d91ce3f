"""1:1 verification analysis: from pair scores and labels to the tables of an AuditResult.

Pure computation (no I/O, no backends). Definitions, following NIST FRVT Part 3 (NISTIR 8280)
and ISO/IEC 19795-1:

- **FMR of a group**: share of *same-group* impostor comparisons (both images in the group) with
  ``score >= threshold``. Trials = those comparisons.
- **FNMR of a group**: share of mated comparisons of the group's subjects with ``score < threshold``.
- **Cross-group FMR**: the same over the impostor comparisons whose two images fall in groups
  (A, B); an unordered pair of different groups counts in cell (A, B) and cell (B, A), so the
  matrix is symmetric and its diagonal holds the groups' FMRs. In a two-sided protocol (probe set
  vs reference set) the matrix is directional: cell (A, B) holds the pairs of a probe of A with a
  reference image of B, and FNMR counts in the probe's group.
- **FTA of a group**: share of the group's images whose status is not ``ok``. Comparisons are made
  between acquired images only, so FMR and FNMR exclude failed images (FTA is reported beside them).
- **Thresholds**: one for everyone. A target-FMR threshold is the smallest value whose FMR over
  *all* impostor comparisons is at most the target (:func:`audit.metrics.threshold_at_fmr`);
  fixed thresholds and the backend's default are given in the backend's units.
- **Insufficient**: an FMR whose trials are fewer than ``3 / FMR`` (the target FMR, or the overall
  achieved FMR for a given threshold) cannot show a rate that small and is flagged.

Every rate carries its counts and a 95% interval: Wilson's by default, Clopper–Pearson's (exact,
wider) with ``interval="clopper-pearson"``; the ``ci_method`` column says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..backends.base import BackendInfo
from .protocol import PairScores
from ..datasets.table import group_labels, grouping_id, join_group_values
from ..engine.tiles import coarsen_cells
from ..metrics.people import PeopleCounts, people_bootstrap
from ..metrics.reference import (
    compare_to_reference,
    design_effect,
    simultaneous_rate_bounds,
)
from ..metrics.uncertainty import check_interval_method
from ..metrics import (
    insufficient_impostors,
    interval_arrays,
    summarize,
    threshold_at_fmr,
)
from .result import TABLE_COLUMNS
from ..results import ThresholdInfo, distinct_labels, rate_label as _fmt_rate, value_label as _fmt_g
from .intervals import (
    EXTRA_COLUMNS,
    PAIRS_INDEPENDENT,
    REFERENCE_METHOD,
    TAIL_PAIRS,
    _det_from_hist,
    _div,
    _joint_interval,
    _joint_summaries,
    people_intervals,
    _reference_index,
    _summary_bounds,
)

__all__ = ["VerificationTables", "choose_thresholds", "analyse_verification", "OVERALL"]

OVERALL = "all"          # grouping id of the whole population
OVERALL_GROUP = "All"
HIST_BINS = 60


@dataclass(frozen=True)
class VerificationTables:
    """The computed tables, ready to go into an :class:`~audit.verification.result.AuditResult`."""

    thresholds: tuple[ThresholdInfo, ...]
    composition: pd.DataFrame
    fta: pd.DataFrame
    rates: pd.DataFrame
    cross_fmr: pd.DataFrame
    disparity: pd.DataFrame
    score_hist: pd.DataFrame
    det: pd.DataFrame
    reference: pd.DataFrame
    warnings: tuple[str, ...]


def threshold_specs(
    target_values: Sequence[tuple[float, float]],
    *,
    fixed_native: Sequence[float],
    info: BackendInfo,
    backend_default: bool,
) -> list[tuple[str, str, float, float | None]]:
    """(name, kind, similarity value, target) of every operating threshold: one per
    (target FMR, threshold found for it), then the fixed values, then the backend's default.

    Names are unique: targets and fixed values get as many significant digits as it takes to tell
    them apart (``FMR=2e-3`` and ``FMR=1.5e-3``; ``fixed 0.6`` and ``fixed 0.6004``), so tables keyed
    by name never merge two thresholds; every row also carries the threshold's exact value."""
    t_names = distinct_labels([t for t, _ in target_values], _fmt_rate)
    specs: list[tuple[str, str, float, float | None]] = [
        (f"FMR={n}", "target_fmr", float(v), float(t)) for n, (t, v) in zip(t_names, target_values)
    ]
    names = distinct_labels(fixed_native, _fmt_g)
    specs += [(f"fixed {n}", "fixed", info.to_similarity(v), None) for n, v in zip(names, fixed_native)]
    if backend_default and info.default_threshold is not None:
        specs.append((f"default {info.default_threshold:g}", "backend_default", info.to_similarity(info.default_threshold), None))
    return specs


def choose_thresholds(
    pairs: PairScores,
    *,
    target_fmr: Sequence[float],
    fixed_native: Sequence[float],
    info: BackendInfo,
    backend_default: bool,
) -> tuple[ThresholdInfo, ...]:
    """Fix the operating thresholds on all impostor comparisons (targets) or take them as given,
    for materialised pair scores (the tiled engine has :meth:`~audit.engine.tiles.TileScan.thresholds_at_fmr`).

    Returns one :class:`ThresholdInfo` per target FMR (in the given order), then per fixed value,
    then the backend's default (when asked and the backend has one).
    """
    imp = pairs.impostor_score
    targets = [(t, threshold_at_fmr(imp, t) if imp.size else np.inf) for t in target_fmr]
    specs = threshold_specs(targets, fixed_native=fixed_native, info=info, backend_default=backend_default)
    rows = 1 + max((int(a.max()) for a in (pairs.mated_a, pairs.mated_b, pairs.impostor_a, pairs.impostor_b) if a.size), default=0)
    one_cell = cell_data_from_pairs(pairs, np.zeros(rows, np.int64), 1, [s[2] for s in specs], bins=1)
    return thresholds_from_counts(specs, one_cell, info)


def _codes(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    cats = sorted(labels.unique().tolist())
    lookup = {c: i for i, c in enumerate(cats)}
    return labels.map(lookup).to_numpy(np.int64), cats


@dataclass(frozen=True, eq=False)
class CellData:
    """Exact counts per finest cell (the intersection of every grouping's columns), from which
    every grouping's tables are summed. Built by :func:`cell_data_from_pairs` (materialised pair
    scores: a scores file, a pair list) or :func:`cell_data_from_scan` (the tiled engine).

    Attributes
    ----------
    thresholds : ndarray, shape (T,)
    false_matches : ndarray of int64, shape (T, C, C)
        Symmetric; an impostor pair of different cells counts in both (A, B) and (B, A).
    impostors : ndarray of int64, shape (C, C)
    false_non_matches : ndarray of int64, shape (T, C)
    mated : ndarray of int64, shape (C,)
    mated_scores : ndarray, shape (m,); mated_cell : ndarray of int64, shape (m,)
        Every mated score and the cell of its pair's first image.
    edges : ndarray, shape (B + 1,); impostor_hist : ndarray of int64, shape (C, C, B)
        Impostor score histograms per cell (for plots and DET curves only).
    mated_cross_cell : int
        Mated pairs whose two images fall in different cells.
    """

    thresholds: np.ndarray
    false_matches: np.ndarray
    impostors: np.ndarray
    false_non_matches: np.ndarray
    mated: np.ndarray
    mated_scores: np.ndarray
    mated_cell: np.ndarray
    edges: np.ndarray
    impostor_hist: np.ndarray
    mated_cross_cell: int
    subject_cell: np.ndarray | None = None             # (S,) cell of each subject's first image
    subject_false_matches: np.ndarray | None = None    # (T, S, C) against images of each cell
    subject_impostors: np.ndarray | None = None        # (S, C)
    subject_false_non_matches: np.ndarray | None = None  # (T, S)
    subject_mated: np.ndarray | None = None            # (S,)
    # 2: a two-sided scan (probe vs reference): the cell axes hold 2C codes, c for a probe image
    # of cell c and C + c for a reference image; block [:C, C:] is the directional matrix
    n_sides: int = 1
    # per-person counts for the people-level bootstrap (None: identities unknown, or too many
    # false matches to list; see audit.metrics.people)
    people: PeopleCounts | None = None


def cell_data_from_pairs(
    pairs: PairScores, cells: np.ndarray, n_cells: int, thresholds: Sequence[float], *, bins: int = 2048,
    subjects: np.ndarray | None = None, side: np.ndarray | None = None,
) -> CellData:
    """Count materialised pair scores per cell. ``cells`` gives the cell of each acquired row;
    with ``subjects`` (one per acquired row) the per-subject counts for the bootstrap are kept too.
    With ``side`` (0 probe, 1 reference per acquired row) the cells are side-coded (``c`` and
    ``n_cells + c``) and the result is two-sided (``n_sides = 2``)."""
    n_sides = 1
    if side is not None:
        cells = np.asarray(cells, np.int64) + n_cells * np.asarray(side, np.int64)
        n_cells, n_sides = 2 * n_cells, 2
    th = np.asarray(thresholds, dtype=np.float64)
    c = n_cells
    ia, ib = cells[pairs.impostor_a], cells[pairs.impostor_b]
    same = ia == ib
    cell, cell_t = ia * c + ib, ib * c + ia

    def sym(mask: np.ndarray | None) -> np.ndarray:
        m = np.ones(cell.shape, bool) if mask is None else mask
        return (np.bincount(cell[m], minlength=c * c) + np.bincount(cell_t[m & ~same], minlength=c * c)).reshape(c, c)

    fm = np.stack([sym(pairs.impostor_score >= t) for t in th]) if th.size else np.zeros((0, c, c), np.int64)
    ma, mb = cells[pairs.mated_a], cells[pairs.mated_b]
    fnm = np.stack([np.bincount(ma[pairs.mated_score < t], minlength=c) for t in th]) if th.size else np.zeros((0, c), np.int64)
    every = np.concatenate([pairs.mated_score, pairs.impostor_score])
    every = every[np.isfinite(every)]  # failed comparisons (-inf) fall in the lowest bin
    lo, hi = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    b = np.clip(np.searchsorted(edges, pairs.impostor_score, side="right") - 1, 0, bins - 1)
    hist = (np.bincount(cell * bins + b, minlength=c * c * bins) + np.bincount((cell_t * bins + b)[~same], minlength=c * c * bins)).reshape(c, c, bins)
    subj_parts: dict = {}
    if subjects is not None:
        labels_s, scode = np.unique(np.asarray(subjects), return_inverse=True)
        n_s = len(labels_s)
        first_row = np.full(n_s, len(scode), dtype=np.int64)
        np.minimum.at(first_row, scode, np.arange(len(scode)))
        sa, sb = scode[pairs.impostor_a], scode[pairs.impostor_b]

        def per_subject(mask: np.ndarray | None) -> np.ndarray:
            m = np.ones(sa.shape, bool) if mask is None else mask
            return (np.bincount(sa[m] * c + ib[m], minlength=n_s * c) + np.bincount(sb[m] * c + ia[m], minlength=n_s * c)).reshape(n_s, c)

        sm = scode[pairs.mated_a]
        fm_any = np.stack([pairs.impostor_score >= t for t in th], axis=1).astype(np.int64) if th.size else np.zeros((sa.size, 0), np.int64)
        hit = fm_any.any(axis=1)
        fa, fb, fca, fcb, fcnt = PeopleCounts.aggregate_pairs(sa[hit], sb[hit], ia[hit], ib[hit], fm_any[hit])
        la, lb, lca, lcb, ln = PeopleCounts.aggregate_pairs(sa, sb, ia, ib, np.ones(sa.size, np.int64))
        miss = np.stack([pairs.mated_score < t for t in th], axis=1).astype(np.int64) if th.size else np.zeros((sm.size, 0), np.int64)
        mp, _, mc, _, magg = PeopleCounts.aggregate_pairs(sm, sm, ma, ma, np.concatenate([np.ones((sm.size, 1), np.int64), miss], axis=1))
        images = np.bincount(scode * c + cells, minlength=n_s * c).reshape(n_s, c)
        top = np.argsort(-pairs.impostor_score, kind="stable")[:TAIL_PAIRS]  # the highest impostor scores
        subj_parts["people"] = PeopleCounts(th.copy(), cells[first_row].astype(np.int64), images.astype(np.int64), "listed",
                                            fa, fb, fca, fcb, fcnt, mp, mc, magg[:, 0].copy(), magg[:, 1:].copy(),
                                            imp_a=la, imp_b=lb, imp_ca=lca, imp_cb=lcb, imp_n=ln[:, 0].copy(),
                                            tail_score=pairs.impostor_score[top].astype(np.float64), tail_a=sa[top], tail_b=sb[top],
                                            tail_ca=ia[top], tail_cb=ib[top], mated_score=pairs.mated_score.astype(np.float64),
                                            mated_score_person=sm.astype(np.int64), mated_score_cell=ma.astype(np.int64))
        subj_parts.update(
            subject_cell=cells[first_row].astype(np.int64),
            subject_false_matches=np.stack([per_subject(pairs.impostor_score >= t) for t in th]) if th.size else np.zeros((0, n_s, c), np.int64),
            subject_impostors=per_subject(None),
            subject_false_non_matches=np.stack([np.bincount(sm[pairs.mated_score < t], minlength=n_s) for t in th]) if th.size else np.zeros((0, n_s), np.int64),
            subject_mated=np.bincount(sm, minlength=n_s).astype(np.int64),
        )
    return CellData(th, fm.astype(np.int64), sym(None).astype(np.int64), fnm.astype(np.int64), np.bincount(ma, minlength=c).astype(np.int64),
                    pairs.mated_score.copy(), ma.astype(np.int64), edges, hist.astype(np.int64),
                    int(np.sum(ma % (n_cells // n_sides) != mb % (n_cells // n_sides))), **subj_parts, n_sides=n_sides)


def cell_data_from_scan(scan, counts, *, people: bool = True) -> CellData:
    """Adapt a :class:`~audit.engine.tiles.TileScan` and its :class:`~audit.engine.tiles.CellCounts`.

    ``people=False`` leaves out the per-person counts (``CellData.people`` is None): nothing but
    the people-level bootstrap and the confounder adjustment reads them, and listing them costs a
    rescoring of the tail (a run with ``bootstrap = 0`` and no ``adjust_for`` needs neither)."""
    hist = scan.impostor_hist
    c = scan.n_groups
    if hist is None:
        hist = np.zeros((c, c, 1), np.int64)
    return CellData(
        np.asarray(counts.thresholds, np.float64), counts.false_matches, counts.impostors, counts.false_non_matches, counts.mated,
        scan.mated_scores, scan.mated_group.astype(np.int64), scan.hist_edges, hist, int(getattr(counts, "mated_cross_group", 0)),
        subject_cell=counts.subject_group.astype(np.int64), subject_false_matches=counts.subject_false_matches,
        subject_impostors=counts.subject_impostors, subject_false_non_matches=counts.subject_false_non_matches,
        subject_mated=counts.subject_mated, n_sides=2 if getattr(scan, "base_groups", 0) else 1,
        people=scan.people_counts(counts.thresholds) if people and hasattr(scan, "people_counts") else None,
    )


def thresholds_from_counts(
    specs: Sequence[tuple[str, str, float, float | None]], data: CellData, info: BackendInfo
) -> tuple[ThresholdInfo, ...]:
    """ThresholdInfo for each (name, kind, similarity value, target) from whole-population counts."""
    n_imp = int(data.impostors.sum() - np.trace(data.impostors)) // 2 + int(np.trace(data.impostors))
    n_gen = int(data.mated.sum())
    out = []
    for k, (name, kind, value, target) in enumerate(specs):
        f = data.false_matches[k]
        fm = int(f.sum() - np.trace(f)) // 2 + int(np.trace(f))
        achieved = fm / n_imp if n_imp else float("nan")
        fnmr = int(data.false_non_matches[k].sum()) / n_gen if n_gen else float("nan")
        if target is not None:
            insufficient = insufficient_impostors(n_imp, target)
        else:
            insufficient = bool(achieved > 0 and insufficient_impostors(n_imp, achieved)) if n_imp else True
        out.append(ThresholdInfo(name, kind, float(value), info.to_native(value), target, achieved, fm, n_imp, fnmr, insufficient))
    return tuple(out)


def analyse_verification(
    samples: pd.DataFrame,
    ok_rows: np.ndarray,
    pairs: PairScores,
    thresholds: Sequence[ThresholdInfo],
    *,
    groupings: Sequence[Sequence[str]],
    bootstrap: int = 1000,
    seed: int = 0,
    interval: str = "wilson",
    disparity_weights: Mapping[str, float] | None = None,
    reference: Mapping[str, str] | str | None = None,
) -> VerificationTables:
    """Compute every table from materialised pair scores (see :func:`analyse_cells`).

    Parameters
    ----------
    samples : pandas.DataFrame
        One row per image with ``subject``, ``status`` and the group columns.
    ok_rows : numpy.ndarray of int, shape (n_ok,)
        Row positions in ``samples`` of the acquired images; pair indices refer to this array.
    pairs : PairScores
    thresholds : sequence of ThresholdInfo
    groupings : sequence of sequences of str
    bootstrap : int, default 1000
    seed : int, default 0
    interval : {"wilson", "clopper-pearson"}, default "wilson"
        Each rate's 95% interval (see :func:`analyse_cells`).
    disparity_weights : mapping, optional
        FDR, IR and GARBE weights (see :func:`analyse_cells`).
    """
    _check_interval(interval)
    samples = samples.reset_index(drop=True)
    cells, labels, columns = finest_cells(samples, ok_rows, groupings)
    subjects = samples["subject"].to_numpy()[ok_rows]
    data = cell_data_from_pairs(pairs, cells, len(labels), [t.value for t in thresholds], subjects=subjects)
    return analyse_cells(samples, data, labels, columns, thresholds, groupings=groupings, bootstrap=bootstrap, seed=seed,
                         interval=interval, disparity_weights=disparity_weights, reference=reference)


def _check_interval(interval: str) -> str:
    return check_interval_method(interval, "interval")


def finest_cells(samples: pd.DataFrame, ok_rows: np.ndarray, groupings: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[tuple[str, ...]], tuple[str, ...]]:
    """Cell code of each acquired row over the union of the groupings' columns.

    Returns the codes (n_ok,), the cell labels (one tuple of values per code) and the columns."""
    columns = tuple(dict.fromkeys(c for g in groupings for c in g))
    if not columns:
        return np.zeros(len(ok_rows), np.int64), [()], ()
    sub = samples.iloc[ok_rows][list(columns)].astype(str)
    keys = list(sub.itertuples(index=False, name=None))
    labels = sorted(set(keys))
    lookup = {k: i for i, k in enumerate(labels)}
    return np.array([lookup[k] for k in keys], dtype=np.int64), labels, columns


def _rebin(hist: np.ndarray, mated: np.ndarray, edges: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trim empty outer bins and merge neighbours so at most ``max_bins`` remain."""
    b = hist.shape[-1]
    mh = np.histogram(mated, bins=edges)[0] if mated.size else np.zeros(b, np.int64)
    total = hist.reshape(-1, b).sum(0) + mh
    nz = np.flatnonzero(total)
    lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, b)
    step = max(1, -(-(hi - lo) // max_bins))
    hi = min(b, lo + step * (-(-(hi - lo) // step)))
    starts = np.arange(lo, hi, step)
    new_edges = np.append(edges[starts], edges[min(hi, b)])
    merged = np.add.reduceat(hist[..., lo:hi], starts - lo, axis=-1)
    return merged, new_edges, starts


def analyse_cells(
    samples: pd.DataFrame,
    data: CellData,
    cell_labels: Sequence[tuple[str, ...]],
    columns: Sequence[str],
    thresholds: Sequence[ThresholdInfo],
    *,
    groupings: Sequence[Sequence[str]],
    bootstrap: int = 1000,
    seed: int = 0,
    interval: str = "wilson",
    disparity_weights: Mapping[str, float] | None = None,
    reference: Mapping[str, str] | str | None = None,
) -> VerificationTables:
    """Per-group FMR, FNMR, FTA, cross-group FMR, disparity, histograms and DET curves, summed
    from the finest cells for every grouping (and the whole population, grouping ``"all"``).

    With ``bootstrap`` replicates (0 turns it off) and per-person counts in ``data``, every FMR and
    FNMR also gets a people-level interval (``boot_low``/``boot_high`` of ``rates``, the other
    estimand's in ``alt_low``/``alt_high``, which one in ``estimand``; ``design_effect`` and
    ``effective_trials``; see :func:`people_intervals` and :mod:`audit.metrics.people`); every
    max/min and max/geometric-mean disparity gets bounds from simultaneous per-group intervals
    (``ci_low``/``ci_high``), a max/min row also the bounds of its two named groups' ratio
    (``pair_ci_low``/``pair_ci_high``, which the executive summary states); and the ``reference``
    table compares each group with the reference group (``reference``: a ``{column: value}``
    mapping, ``"overall"``, or None for the group with the most comparisons) with intervals
    simultaneous over the comparisons (:func:`audit.metrics.reference.compare_to_reference`).

    Every FTA, FMR and FNMR gets a 95% interval from its counts (``ci_low``/``ci_high``, method in
    ``ci_method``): ``interval="wilson"`` (default) or ``"clopper-pearson"`` (exact, wider).

    ``disparity_weights`` sets the joint summaries' weights: ``fdr_alpha`` (0.5), ``garbe_alpha``
    (0.5), ``inequity_alpha`` and ``inequity_beta`` (1 and 1); see :class:`~audit.verification.config.DisparityConfig`.

    Score histograms and DET curves come from the per-cell impostor histograms (and the exact mated
    scores): they are drawn at the histogram's resolution. Every rate and count is exact.
    """
    _check_interval(interval)
    joint = _joint_summaries(disparity_weights)
    samples = samples.reset_index(drop=True)
    warnings: list[str] = []
    identities = data.people is not None or data.subject_cell is not None  # False: a scores file with only a mated flag
    label = interval if identities else f"{interval} {PAIRS_INDEPENDENT}"
    failed = (samples["status"] != "ok").to_numpy()
    col_pos = {c: i for i, c in enumerate(columns)}
    all_groupings: list[tuple[str, pd.Series, list[str]]] = [(OVERALL, pd.Series(OVERALL_GROUP, index=samples.index), [])]
    all_groupings += [(grouping_id(cols), group_labels(samples, cols), list(cols)) for cols in groupings]
    comp_rows, fta_rows, rate_rows, cross_rows, disp_rows, hist_rows, det_rows, ref_rows = [], [], [], [], [], [], [], []
    if data.mated_cross_cell:
        warnings.append(f"{data.mated_cross_cell} mated pair(s) join images with different group labels; counted in the first image's group")

    hist_all, edges_all, starts = _rebin(data.impostor_hist, data.mated_scores, data.edges, HIST_BINS)
    for gid, labels, cols in all_groupings:
        codes_all, cats = _codes(labels)
        g = len(cats)
        for c, name in enumerate(cats):
            mask = codes_all == c
            comp_rows.append((gid, name, int(samples.loc[mask, "subject"].nunique()) if identities else None, int(mask.sum())))
        fails = np.bincount(codes_all, weights=failed, minlength=g).astype(np.int64)
        tries = np.bincount(codes_all, minlength=g).astype(np.int64)
        ci = interval_arrays(fails, tries, method=interval)
        for c, name in enumerate(cats):
            fta_rows.append((gid, name, int(fails[c]), int(tries[c]), fails[c] / tries[c] if tries[c] else np.nan, ci.low[c], ci.high[c], interval))

        lookup = {n: i for i, n in enumerate(cats)}
        base_mapping = np.array([lookup[join_group_values([lab[col_pos[c]] for c in cols]) if cols else OVERALL_GROUP] for lab in cell_labels], dtype=np.int64)
        mapping = np.tile(base_mapping, data.n_sides)  # two-sided: probe codes, then reference codes
        present = np.zeros(g, bool)
        present[np.unique(mapping)] = True
        fm = coarsen_cells(data.false_matches, mapping, n_groups=g) if data.false_matches.size else np.zeros((0, g, g), np.int64)
        imp = coarsen_cells(data.impostors, mapping, n_groups=g)
        fnm = np.zeros((len(thresholds), g), np.int64)
        np.add.at(fnm.T, mapping, data.false_non_matches.T)
        gen = np.bincount(mapping, weights=data.mated, minlength=g).astype(np.int64)
        hist = coarsen_cells(np.moveaxis(hist_all, -1, 0), mapping, n_groups=g)
        full_hist = coarsen_cells(np.moveaxis(data.impostor_hist, -1, 0), mapping, n_groups=g)
        mated_group = mapping[data.mated_cell] if data.mated_cell.size else np.zeros(0, np.int64)
        fmr_by_group: dict[str, dict[str, float]] = {t.name: {} for t in thresholds}
        fnmr_by_group: dict[str, dict[str, float]] = {t.name: {} for t in thresholds}
        rep = (people_bootstrap(data.people, mapping, g, n_replicates=bootstrap, seed=seed, targets=[t.target_fmr for t in thresholds])
               if bootstrap and data.people is not None and len(thresholds) else None)
        boot = None
        if rep is not None:
            pi = people_intervals(data.people, rep, mapping, g)
            boot = {"fmr": pi["fmr"], "fnmr": pi["fnmr"]}  # each column's default estimand
            fixed_boot = pi["fixed"]
        for c, name in enumerate(cats):
            n_i, n_g = int(imp[c, c]), int(gen[c])
            f_c, n_c = fm[:, c, c], fnm[:, c]
            ci_f = interval_arrays(f_c, np.full_like(f_c, n_i), method=interval)
            ci_n = interval_arrays(n_c, np.full_like(n_c, n_g), method=interval)
            for k, t in enumerate(thresholds):
                fmr_v = f_c[k] / n_i if n_i else np.nan
                fnmr_v = n_c[k] / n_g if n_g else np.nan
                basis = t.target_fmr if t.target_fmr is not None else t.achieved_fmr
                insufficient = bool(n_i == 0 or (basis is not None and basis > 0 and insufficient_impostors(n_i, basis)))
                if boot is not None:
                    bf, bn = (pi["fmr_low"][c, k], pi["fmr_high"][c, k]), (pi["fnmr_low"][c, k], pi["fnmr_high"][c, k])
                    af, an = (pi["fmr_alt_low"][c, k], pi["fmr_alt_high"][c, k]), (pi["fnmr_alt_low"][c, k], pi["fnmr_alt_high"][c, k])
                    deff_f, neff_f = design_effect(np.array([fmr_v]), np.array([n_i]), fixed_boot["fmr"][:, c, k:k + 1])
                    deff_n, neff_n = design_effect(np.array([fnmr_v]), np.array([n_g]), fixed_boot["fnmr"][:, c, k:k + 1])
                    ef, en = (float(deff_f[0]), float(neff_f[0])), (float(deff_n[0]), float(neff_n[0]))
                    # the "too few comparisons" flag counts effective comparisons (people recur across pairs)
                    if basis is not None and basis > 0 and np.isfinite(ef[1]):
                        insufficient = bool(insufficient or insufficient_impostors(int(np.floor(ef[1])), basis))
                else:
                    bf = bn = af = an = (np.nan, np.nan)
                    ef = en = (np.nan, np.nan)
                est_f = pi["estimand"]["fmr"][k] if boot is not None else None
                est_n = pi["estimand"]["fnmr"][k] if boot is not None else None
                rate_rows.append((gid, name, t.name, t.value, "fmr", int(f_c[k]), n_i, fmr_v, ci_f.low[k], ci_f.high[k], label, insufficient,
                                  *bf, *ef, est_f, *af))
                rate_rows.append((gid, name, t.name, t.value, "fnmr", int(n_c[k]), n_g, fnmr_v, ci_n.low[k], ci_n.high[k], label, n_g == 0,
                                  *bn, *en, est_n, *an))
                if n_i:
                    fmr_by_group[t.name][name] = fmr_v
                if n_g:
                    fnmr_by_group[t.name][name] = fnmr_v
            gen_c = np.sort(data.mated_scores[mated_group == c])
            mh = np.histogram(gen_c, bins=edges_all)[0] if gen_c.size else np.zeros(len(edges_all) - 1, np.int64)
            for kind, h in (("mated", mh), ("impostor", hist[:, c, c])):
                hist_rows += [(gid, name, kind, float(edges_all[b]), float(edges_all[b + 1]), int(h[b])) for b in range(len(h))]
            if gen_c.size and n_i:
                det_rows += _det_from_hist(gid, name, full_hist[:, c, c], data.edges, gen_c, n_i)
        cross_fm, cross_imp = fm, imp
        if data.n_sides == 2:  # directional: rows are the probe's group, columns the reference's
            c0 = base_mapping.size
            p = np.zeros((c0, g), dtype=np.int64)
            p[np.arange(c0), base_mapping] = 1
            cross_fm = p.T @ data.false_matches[:, :c0, c0:] @ p
            cross_imp = p.T @ data.impostors[:c0, c0:] @ p
        for k, t in enumerate(thresholds):
            for a in range(g):
                for b in range(g):
                    n = int(cross_imp[a, b])
                    cross_rows.append((gid, t.name, t.value, cats[a], cats[b], int(cross_fm[k, a, b]), n, cross_fm[k, a, b] / n if n else np.nan))
        if gid != OVERALL:
            counts_of = {"fmr": (np.stack([fm[:, c, c] for c in range(g)], axis=1), np.diag(imp)),
                         "fnmr": (fnm, gen)}  # errors (T, G), trials (G,)
            ref_index = _reference_index(reference, cols, cats, np.diag(imp))
            for k, t in enumerate(thresholds):
                for metric, by in (("fmr", fmr_by_group[t.name]), ("fnmr", fnmr_by_group[t.name])):
                    errs, trials = counts_of[metric][0][k], counts_of[metric][1]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        point = np.where(trials > 0, errs / np.where(trials > 0, trials, 1), np.nan)
                    sim = simultaneous_rate_bounds(point, trials, errs, boot[metric][:, :g, k]) if boot is not None else None
                    for d in summarize(by):
                        lo_hi = (np.nan, np.nan)
                        pair = (np.nan, np.nan)
                        if sim is not None and d.summary in ("max_min_ratio", "max_geomean_ratio") and d.groups_used >= 2:
                            lo_hi = _summary_bounds(d.summary, sim, [cats.index(x) for x in by])
                            if d.summary == "max_min_ratio" and d.group_high and d.group_low:
                                h, lw = cats.index(d.group_high), cats.index(d.group_low)
                                pair = (_div(sim[0][h], sim[1][lw]), _div(sim[1][h], sim[0][lw]))
                        disp_rows.append((gid, t.name, metric, d.summary, d.value, d.group_high, d.group_low, d.groups_used, d.note,
                                          *lo_hi, *pair))
                    if boot is not None and ref_index is not None:
                        dof = pi["dof"][metric][:, k]
                        ref_kw = {"dof": dof[:g]}
                        if ref_index == "overall":
                            tot_e = rep.point_fm[g, k] if metric == "fmr" else rep.point_fnm[g, k]
                            tot_n = rep.point_imp[g] if metric == "fmr" else rep.point_mated[g]
                            ref_kw.update(reference_point=(tot_e / tot_n if tot_n else np.nan, tot_n, tot_e),
                                          reference_replicates=boot[metric][:, g, k], reference_dof=dof[g])
                        for cmp_ in compare_to_reference(cats, point, trials, errs, boot[metric][:, :g, k], ref_index, **ref_kw):
                            ref_rows.append((gid, t.name, t.value, metric, cmp_.group, cmp_.reference, cmp_.ratio, cmp_.ratio_low,
                                             cmp_.ratio_high, cmp_.difference, cmp_.diff_low, cmp_.diff_high, cmp_.p_adjusted,
                                             cmp_.shown, cmp_.comparisons, REFERENCE_METHOD, pi["estimand"][metric][k]))
                # summaries of FMR and FNMR together (over groups that have both)
                fm_by, fn_by = fmr_by_group[t.name], fnmr_by_group[t.name]
                for fn in joint:
                    d = fn(fm_by, fn_by)
                    lo_hi = _joint_interval(fn, boot, g, k) if boot is not None and d.groups_used >= 2 else (np.nan, np.nan)
                    disp_rows.append((gid, t.name, "fmr+fnmr", d.summary, d.value, d.group_high, d.group_low, d.groups_used, d.note,
                                      *lo_hi, np.nan, np.nan))

    def frame(name: str, rows: list) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=TABLE_COLUMNS[name] + EXTRA_COLUMNS.get(name, []))

    return VerificationTables(
        thresholds=tuple(thresholds),
        composition=frame("composition", comp_rows),
        fta=frame("fta", fta_rows),
        rates=frame("rates", rate_rows),
        cross_fmr=frame("cross_fmr", cross_rows),
        disparity=frame("disparity", disp_rows),
        score_hist=frame("score_hist", hist_rows),
        det=frame("det", det_rows),
        reference=frame("reference", ref_rows),
        warnings=tuple(warnings),
    )


