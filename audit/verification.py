"""1:1 verification analysis: from pair scores and labels to the tables of an AuditResult.

Pure computation (no I/O, no backends). Definitions, following NIST FRVT Part 3 (NISTIR 8280)
and ISO/IEC 19795-1:

- **FMR of a group**: share of *same-group* impostor comparisons (both images in the group) with
  ``score >= threshold``. Trials = those comparisons.
- **FNMR of a group**: share of mated comparisons of the group's subjects with ``score < threshold``.
- **Cross-group FMR**: the same over the impostor comparisons whose two images fall in groups
  (A, B); an unordered pair of different groups counts in cell (A, B) and cell (B, A), so the
  matrix is symmetric and its diagonal holds the groups' FMRs.
- **FTA of a group**: share of the group's images whose status is not ``ok``. Comparisons are made
  between acquired images only, so FMR and FNMR exclude failed images (FTA is reported beside them).
- **Thresholds**: one for everyone. A target-FMR threshold is the smallest value whose FMR over
  *all* impostor comparisons is at most the target (:func:`audit.metrics.threshold_at_fmr`);
  fixed thresholds and the backend's default are given in the backend's units.
- **Insufficient**: an FMR whose trials are fewer than ``3 / FMR`` (the target FMR, or the overall
  achieved FMR for a given threshold) cannot show a rate that small and is flagged.

Every rate carries its counts and a 95% Wilson interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .backends.base import BackendInfo
from .comparisons import PairScores
from .datasets.table import group_labels, grouping_id
from .metrics import (
    det_curve,
    error_counts,
    insufficient_impostors,
    summarize,
    threshold_at_fmr,
    wilson_interval_arrays,
)
from .results import TABLE_COLUMNS, ThresholdInfo

__all__ = ["VerificationTables", "choose_thresholds", "analyse_verification", "OVERALL"]

OVERALL = "all"          # grouping id of the whole population
OVERALL_GROUP = "All"
CI_METHOD = "wilson"
HIST_BINS = 60


@dataclass(frozen=True)
class VerificationTables:
    """The computed tables, ready to go into an :class:`~audit.results.AuditResult`."""

    thresholds: tuple[ThresholdInfo, ...]
    composition: pd.DataFrame
    fta: pd.DataFrame
    rates: pd.DataFrame
    cross_fmr: pd.DataFrame
    disparity: pd.DataFrame
    score_hist: pd.DataFrame
    det: pd.DataFrame
    warnings: tuple[str, ...]


def _fmt_rate(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def choose_thresholds(
    pairs: PairScores,
    *,
    target_fmr: Sequence[float],
    fixed_native: Sequence[float],
    info: BackendInfo,
    backend_default: bool,
) -> tuple[ThresholdInfo, ...]:
    """Fix the operating thresholds on all impostor comparisons (targets) or take them as given.

    Returns one :class:`ThresholdInfo` per target FMR (in the given order), then per fixed value,
    then the backend's default (when asked and the backend has one).
    """
    imp, gen = pairs.impostor_score, pairs.mated_score
    specs: list[tuple[str, str, float, float | None]] = []
    for t in target_fmr:
        specs.append((f"FMR={_fmt_rate(t)}", "target_fmr", threshold_at_fmr(imp, t) if imp.size else np.inf, float(t)))
    for v in fixed_native:
        specs.append((f"fixed {v:g}", "fixed", info.to_similarity(v), None))
    if backend_default and info.default_threshold is not None:
        specs.append((f"default {info.default_threshold:g}", "backend_default", info.to_similarity(info.default_threshold), None))
    values = np.array([s[2] for s in specs], dtype=np.float64)
    counts = error_counts(gen, imp, values)
    out = []
    for k, (name, kind, value, target) in enumerate(specs):
        n_imp = int(counts.impostors)
        fm = int(counts.false_matches[k])
        achieved = fm / n_imp if n_imp else float("nan")
        fnmr = int(counts.false_non_matches[k]) / int(counts.genuines) if counts.genuines else float("nan")
        if target is not None:
            insufficient = insufficient_impostors(n_imp, target)
        else:
            insufficient = bool(achieved > 0 and insufficient_impostors(n_imp, achieved)) if n_imp else True
        out.append(ThresholdInfo(name, kind, float(value), info.to_native(value), target, achieved, fm, n_imp, fnmr, insufficient))
    return tuple(out)


def _codes(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    cats = sorted(labels.unique().tolist())
    lookup = {c: i for i, c in enumerate(cats)}
    return labels.map(lookup).to_numpy(np.int64), cats


def analyse_verification(
    samples: pd.DataFrame,
    ok_rows: np.ndarray,
    pairs: PairScores,
    thresholds: Sequence[ThresholdInfo],
    *,
    groupings: Sequence[Sequence[str]],
) -> VerificationTables:
    """Compute per-group FMR, FNMR, FTA, cross-group FMR, disparity, histograms and DET curves.

    Parameters
    ----------
    samples : pandas.DataFrame
        One row per image with ``subject``, ``status`` and the group columns.
    ok_rows : numpy.ndarray of int, shape (n_ok,)
        Row positions in ``samples`` of the acquired images, in embedding-matrix order: pair
        indices in ``pairs`` refer to positions in this array.
    pairs : PairScores
    thresholds : sequence of ThresholdInfo
    groupings : sequence of sequences of str
        Group columns of each grouping (``[["ethnicity"], ["ethnicity", "gender"]]``).
    """
    samples = samples.reset_index(drop=True)
    warnings: list[str] = []
    th_values = np.array([t.value for t in thresholds], dtype=np.float64)
    all_groupings: list[tuple[str, pd.Series]] = [(OVERALL, pd.Series(OVERALL_GROUP, index=samples.index))]
    all_groupings += [(grouping_id(cols), group_labels(samples, cols)) for cols in groupings]

    comp_rows, fta_rows, rate_rows, cross_rows, disp_rows, hist_rows, det_rows = [], [], [], [], [], [], []
    every = np.concatenate([pairs.mated_score, pairs.impostor_score])
    edges = np.linspace(every.min(), every.max(), HIST_BINS + 1) if every.size else np.linspace(0, 1, HIST_BINS + 1)
    failed = (samples["status"] != "ok").to_numpy()

    for gid, labels in all_groupings:
        codes_all, cats = _codes(labels)
        # composition and FTA by group
        for c, name in enumerate(cats):
            mask = codes_all == c
            comp_rows.append((gid, name, int(samples.loc[mask, "subject"].nunique()), int(mask.sum())))
        fails = np.bincount(codes_all, weights=failed, minlength=len(cats)).astype(np.int64)
        tries = np.bincount(codes_all, minlength=len(cats)).astype(np.int64)
        ci = wilson_interval_arrays(fails, tries)
        for c, name in enumerate(cats):
            fta_rows.append((gid, name, int(fails[c]), int(tries[c]), fails[c] / tries[c] if tries[c] else np.nan, ci.low[c], ci.high[c], CI_METHOD))

        codes = codes_all[ok_rows]
        g = len(cats)
        ia, ib = codes[pairs.impostor_a], codes[pairs.impostor_b]
        ma, mb = codes[pairs.mated_a], codes[pairs.mated_b]
        if np.any(ma != mb):
            warnings.append(f"grouping {gid}: {int(np.sum(ma != mb))} mated pair(s) join images with different group labels; counted in the first image's group")
        same = ia == ib
        fmr_by_group: dict[str, dict[str, float]] = {t.name: {} for t in thresholds}
        fnmr_by_group: dict[str, dict[str, float]] = {t.name: {} for t in thresholds}
        for c, name in enumerate(cats):
            imp_c = pairs.impostor_score[same & (ia == c)]
            gen_c = pairs.mated_score[ma == c]
            counts = error_counts(gen_c, imp_c, th_values)
            fm, fnm = counts.false_matches, counts.false_non_matches
            n_i, n_g = int(counts.impostors), int(counts.genuines)
            ci_f = wilson_interval_arrays(fm, np.full_like(fm, n_i))
            ci_n = wilson_interval_arrays(fnm, np.full_like(fnm, n_g))
            for k, t in enumerate(thresholds):
                fmr_v = fm[k] / n_i if n_i else np.nan
                fnmr_v = fnm[k] / n_g if n_g else np.nan
                basis = t.target_fmr if t.target_fmr is not None else t.achieved_fmr
                insufficient = bool(n_i == 0 or (basis is not None and basis > 0 and insufficient_impostors(n_i, basis)))
                rate_rows.append((gid, name, t.name, t.value, "fmr", int(fm[k]), n_i, fmr_v, ci_f.low[k], ci_f.high[k], CI_METHOD, insufficient))
                rate_rows.append((gid, name, t.name, t.value, "fnmr", int(fnm[k]), n_g, fnmr_v, ci_n.low[k], ci_n.high[k], CI_METHOD, n_g == 0))
                if n_i:
                    fmr_by_group[t.name][name] = fmr_v
                if n_g:
                    fnmr_by_group[t.name][name] = fnmr_v
            for kind, sc in (("mated", gen_c), ("impostor", imp_c)):
                h, _ = np.histogram(sc, bins=edges)
                hist_rows += [(gid, name, kind, float(edges[b]), float(edges[b + 1]), int(h[b])) for b in range(HIST_BINS)]
            if gen_c.size and imp_c.size:
                det = det_curve(gen_c, imp_c)
                det_rows += [(gid, name, float(r.threshold), float(r.fmr), float(r.fnmr)) for r in det.itertuples(index=False)]
        # cross-group FMR matrix: cell index a*g+b, unordered pairs counted in both orders
        cell = ia * g + ib
        cell_t = ib * g + ia
        n_cell = np.bincount(cell, minlength=g * g) + np.bincount(cell_t[~same], minlength=g * g)
        for k, t in enumerate(thresholds):
            hit = pairs.impostor_score >= t.value
            fm_cell = np.bincount(cell[hit], minlength=g * g) + np.bincount(cell_t[hit & ~same], minlength=g * g)
            for a in range(g):
                for b in range(g):
                    n = int(n_cell[a * g + b])
                    cross_rows.append((gid, t.name, t.value, cats[a], cats[b], int(fm_cell[a * g + b]), n, fm_cell[a * g + b] / n if n else np.nan))
        if gid != OVERALL:
            for t in thresholds:
                for metric, by in (("fmr", fmr_by_group[t.name]), ("fnmr", fnmr_by_group[t.name])):
                    for d in summarize(by):
                        disp_rows.append((gid, t.name, metric, d.summary, d.value, d.group_high, d.group_low, d.groups_used, d.note))

    def frame(name: str, rows: list) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=TABLE_COLUMNS[name])

    return VerificationTables(
        thresholds=tuple(thresholds),
        composition=frame("composition", comp_rows),
        fta=frame("fta", fta_rows),
        rates=frame("rates", rate_rows),
        cross_fmr=frame("cross_fmr", cross_rows),
        disparity=frame("disparity", disp_rows),
        score_hist=frame("score_hist", hist_rows),
        det=frame("det", det_rows),
        warnings=tuple(warnings),
    )
