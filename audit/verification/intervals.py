"""People-level intervals for the 1:1 tables: the replicates behind each rate's interval, the
group-vs-reference comparisons and the joint disparity summaries (FDR, IR, GARBE), and DET points.

Pure computation, used by :mod:`audit.verification.analysis`; the statistics are in
:mod:`audit.metrics.people` and :mod:`audit.metrics.reference` (see docs/protocols.md).
"""

from __future__ import annotations

from functools import partial
from typing import Mapping, Sequence

import numpy as np

from ..datasets.table import grouping_id, join_group_values
from ..metrics.people import PeopleCounts
from ..metrics.people_jackknife import people_jackknife
from ..metrics.reference import (
    bca_interval,
    cluster_rate_interval,
    dyadic_rate_interval,
    inflate_for_few_people,
    percentile_interval,
    remove_pair_noise,
)
from ..errors import MetricError
from ..metrics import (
    fairness_discrepancy_rate,
    garbe,
    inequity_rate,
)


def _joint_summaries(weights: Mapping[str, float] | None) -> list:
    """FDR, IR and GARBE as functions of (FMR by group, FNMR by group), with the given weights."""
    w = {"fdr_alpha": 0.5, "garbe_alpha": 0.5, "inequity_alpha": 1.0, "inequity_beta": 1.0}
    unknown = sorted(set(weights or {}) - set(w))
    if unknown:
        raise MetricError(f"unknown disparity weight(s) {unknown}; known: {sorted(w)}")
    w.update({k: float(v) for k, v in (weights or {}).items()})
    return [
        partial(fairness_discrepancy_rate, alpha=w["fdr_alpha"]),
        partial(inequity_rate, alpha=w["inequity_alpha"], beta=w["inequity_beta"]),
        partial(garbe, alpha=w["garbe_alpha"]),
    ]


#: Columns the analysis adds to the schema's fixed ones (optional for readers of older results).
EXTRA_COLUMNS = {"rates": ["boot_low", "boot_high", "design_effect", "effective_trials", "estimand", "alt_low", "alt_high"],
                 "disparity": ["ci_low", "ci_high", "pair_ci_low", "pair_ci_high"]}

#: Impostor pairs kept (highest scores first) to re-estimate target-FMR thresholds in each replicate.
TAIL_PAIRS = 1 << 20

#: How a single rate's interval is labelled when the input gave no identities.
PAIRS_INDEPENDENT = "(pairs assumed independent)"

#: What a people-level interval is for: the rate at the threshold's value, held fixed ...
ESTIMAND_FIXED = "rate at this threshold value (threshold held fixed)"
#: ... or the rate at the operating point: a target-FMR threshold re-estimated in every replicate.
ESTIMAND_OPERATING = "rate at the operating point (threshold re-estimated at the target FMR in each resample)"
#: How group-vs-reference intervals are made.
REFERENCE_METHOD = "people bootstrap, max-t simultaneous over the comparisons"


def people_intervals(people: PeopleCounts, rep, mapping: np.ndarray, g: int) -> dict:
    """People-level replicates ready for intervals and comparisons, and each group's intervals.

    Two estimands (see docs/protocols.md): the rate at the threshold's value (threshold held fixed)
    and, for thresholds set at a target FMR, the rate at the operating point (the threshold
    re-estimated in every replicate). The default is the operating point for an FNMR at a
    target-FMR threshold ("FNMR at FMR = 1e-3" depends on where that threshold falls) and the fixed
    threshold otherwise (a group's FMR at the value an operator configures); ``alt_*`` holds the
    other one where it exists.

    FMR replicates are corrected for pair-level noise counted twice
    (:func:`audit.metrics.reference.remove_pair_noise`), all for few people
    (:func:`audit.metrics.reference.inflate_for_few_people`); these feed the group comparisons.
    A fixed-threshold FMR interval is :func:`audit.metrics.reference.dyadic_rate_interval` (the
    dyadic-robust variance on the log scale, t quantile; BCa where it has no answer, as with no
    false matches); a fixed-threshold FNMR interval is
    :func:`audit.metrics.reference.cluster_rate_interval` (logit scale, t quantile at ``S - 1``; BCa,
    the acceleration from the leave-one-person-out rates, where it has no answer);
    operating-point intervals are percentile intervals (a jackknife would re-estimate the threshold).
    ``dof`` holds each column's degrees of freedom, which widen the group comparisons alike.
    """
    b, t = rep.n_replicates, people.thresholds.size
    n_people = np.append(np.bincount(rep.strata, minlength=g), rep.strata.size)  # per group, then the population
    per_col = np.repeat(n_people, t)

    def adjust(point, reps, trials=None):
        flat = reps.reshape(b, -1)
        if trials is not None:
            flat = remove_pair_noise(point.reshape(-1), np.repeat(trials, t), flat)
        return inflate_for_few_people(point.reshape(-1), flat, per_col).reshape(reps.shape)

    fmr = adjust(rep.point_fmr, rep.fmr, rep.point_imp)
    fnmr = adjust(rep.point_fnmr, rep.fnmr)
    jf, jn = people_jackknife(people, mapping, g, point=(rep.point_fm, rep.point_imp, rep.point_fnm, rep.point_mated))
    members = np.repeat((rep.strata[:, None] == np.arange(g)[None, :]), t, axis=1)  # (S, G*T)
    shape = (g, t)

    def bca(point, reps, jack):
        lo, hi = bca_interval(point[:g].reshape(-1), reps[:, :g].reshape(b, -1), jack[:, :g].reshape(jack.shape[0], -1), members)
        return lo.reshape(shape), hi.reshape(shape)

    # impostor rates: dyadic-robust variance, log scale, t quantile (for every column, the whole
    # population's too: its degrees of freedom serve the comparisons with "overall")
    everyone = np.concatenate([members, np.ones((members.shape[0], t), bool)], axis=1)
    lo, hi, fmr_dof = dyadic_rate_interval(rep.point_fmr.reshape(-1), rep.point_fm.reshape(-1), np.repeat(rep.point_imp, t),
                                           rep.fmr.reshape(b, -1), jf.reshape(jf.shape[0], -1), everyone,
                                           np.repeat(n_people, t), return_dof=True)
    blo, bhi = bca(rep.point_fmr, fmr, jf)  # where the dyadic interval has no answer (no false matches)
    fmr_iv = (np.where(np.isnan(lo[:g * t]), blo.reshape(-1), lo[:g * t]).reshape(shape),
              np.where(np.isnan(hi[:g * t]), bhi.reshape(-1), hi[:g * t]).reshape(shape))
    # mated rates: each comparison belongs to one person: logit scale, t quantile at S - 1
    lo, hi = cluster_rate_interval(rep.point_fnmr[:g].reshape(-1), rep.point_fnm[:g].reshape(-1), np.repeat(rep.point_mated[:g], t),
                                   rep.fnmr[:, :g].reshape(b, -1), np.repeat(n_people[:g], t))
    blo, bhi = bca(rep.point_fnmr, fnmr, jn)  # where it has no answer (no errors, or only errors)
    fnmr_iv = (np.where(np.isnan(lo), blo.reshape(-1), lo).reshape(shape), np.where(np.isnan(hi), bhi.reshape(-1), hi).reshape(shape))

    out = {"fixed": {"fmr": fmr, "fnmr": fnmr}}
    # degrees of freedom of each column's variance (G + 1, T), for the group comparisons
    out["dof"] = {"fmr": fmr_dof.reshape(g + 1, t), "fnmr": np.repeat(np.maximum(n_people - 1.0, 1.0)[:, None], t, axis=1)}
    fixed_iv = {"fmr": fmr_iv, "fnmr": fnmr_iv}
    nan = np.full(shape, np.nan)
    op_iv: dict = {"fmr": (nan, nan), "fnmr": (nan, nan)}
    op_reps: dict = {}
    op_cols = np.zeros(t, bool)
    if rep.op_fm is not None:
        op_cols = np.isfinite(rep.op_threshold).mean(axis=0) >= 0.9  # the stored tail suffices for (almost) every resample
        op_reps = {"fmr": adjust(rep.point_fmr, rep.op_fmr, rep.point_imp), "fnmr": adjust(rep.point_fnmr, rep.op_fnmr)}
        for m in ("fmr", "fnmr"):
            lo, hi = percentile_interval(op_reps[m][:, :g])
            op_iv[m] = (np.where(op_cols[None, :], lo, np.nan), np.where(op_cols[None, :], hi, np.nan))
    # defaults: FNMR at a target-FMR threshold at the operating point, everything else at a fixed threshold
    out["fmr"] = fmr
    out["fnmr"] = np.where(op_cols[None, None, :], op_reps.get("fnmr", fnmr), fnmr) if op_cols.any() else fnmr
    out["fmr_low"], out["fmr_high"] = fixed_iv["fmr"]
    out["fmr_alt_low"], out["fmr_alt_high"] = op_iv["fmr"]
    sel = op_cols[None, :]
    out["fnmr_low"] = np.where(sel, op_iv["fnmr"][0], fixed_iv["fnmr"][0])
    out["fnmr_high"] = np.where(sel, op_iv["fnmr"][1], fixed_iv["fnmr"][1])
    out["fnmr_alt_low"] = np.where(sel, fixed_iv["fnmr"][0], np.nan)
    out["fnmr_alt_high"] = np.where(sel, fixed_iv["fnmr"][1], np.nan)
    out["estimand"] = {"fmr": [ESTIMAND_FIXED] * t, "fnmr": [ESTIMAND_OPERATING if op else ESTIMAND_FIXED for op in op_cols]}
    return out


def _div(a: float, b: float) -> float:
    if not (np.isfinite(a) or np.isinf(a)) or np.isnan(b):
        return np.nan
    if b == 0:
        return np.inf if a > 0 else np.nan
    return float(a / b)


def _summary_bounds(summary: str, sim: tuple[np.ndarray, np.ndarray], used: list[int]) -> tuple[float, float]:
    """Bounds for max/min or max/geometric mean implied by simultaneous per-group intervals."""
    low, high = sim[0][used], sim[1][used]
    if np.isnan(low).any() or np.isnan(high).any():
        return (np.nan, np.nan)
    if summary == "max_min_ratio":
        lo, hi = _div(low.max(), high.min()), _div(high.max(), low.min())
    else:
        with np.errstate(divide="ignore"):
            gm_hi, gm_lo = float(np.exp(np.mean(np.log(high)))), float(np.exp(np.mean(np.log(low))))
        lo, hi = _div(low.max(), gm_hi), _div(high.max(), gm_lo)
    return (max(1.0, lo) if np.isfinite(lo) else lo, hi)


def _reference_index(reference, cols: Sequence[str], cats: list[str], trials: np.ndarray):
    """The reference group of a grouping: ``"overall"``, the group a ``{column: value}`` mapping
    names (when it names every column of the grouping), else the group with the most comparisons.
    ``None`` when the grouping has fewer than two groups with comparisons."""
    if int(np.sum(trials > 0)) < 2 and reference != "overall":
        return None
    if reference == "overall":
        return "overall"
    if isinstance(reference, Mapping) and cols and all(c in reference for c in cols):
        name = join_group_values([str(reference[c]) for c in cols])
        if name in cats:
            return cats.index(name)
        raise MetricError(f"analysis.reference names group {name!r}, which grouping {grouping_id(cols)!r} does not have; "
                          f"its groups are {cats}. Fix [analysis] reference in the config.")
    return int(np.argmax(trials))


def joint_replicates(summary: str, fmr: np.ndarray, fnmr: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """FDR, Inequity Rate or GARBE of every replicate at once (vectorised over replicates).

    Parameters
    ----------
    summary : {"fairness_discrepancy_rate", "inequity_rate", "garbe"}
    fmr, fnmr : ndarray, shape (B, G)
        Replicate rates; a group is used in a replicate where both are defined (as the dict-based
        functions of :mod:`audit.metrics.disparity` use the groups that have both).
    weights : mapping
        ``fdr_alpha``, ``inequity_alpha``, ``inequity_beta``, ``garbe_alpha``.

    Returns
    -------
    ndarray of float64, shape (B,)
        ``nan`` where fewer than two groups are used. Equal to the scalar functions replicate by
        replicate (tested).
    """
    ok = ~np.isnan(fmr) & ~np.isnan(fnmr)
    m = ok.sum(axis=1)
    fm = np.where(ok, fmr, np.nan)
    fn = np.where(ok, fnmr, np.nan)
    out = np.full(fm.shape[0], np.nan)
    use = m >= 2
    if not use.any():
        return out
    fm, fn, mu = fm[use], fn[use], m[use]
    with np.errstate(invalid="ignore", divide="ignore"):
        fmax, fmin = np.nanmax(fm, axis=1), np.nanmin(fm, axis=1)
        nmax, nmin = np.nanmax(fn, axis=1), np.nanmin(fn, axis=1)
        if summary == "fairness_discrepancy_rate":
            a = weights["fdr_alpha"]
            val = 1.0 - (a * (fmax - fmin) + (1.0 - a) * (nmax - nmin))
        elif summary == "inequity_rate":
            def ratio(hi, lo):
                return np.where(lo > 0, hi / np.where(lo > 0, lo, 1), np.where(hi > 0, np.inf, 1.0))
            a, b = weights["inequity_alpha"], weights["inequity_beta"]
            val = (1.0 if a == 0 else ratio(fmax, fmin) ** a) * (1.0 if b == 0 else ratio(nmax, nmin) ** b)
        elif summary == "garbe":
            def gini(x):
                xs = np.sort(x, axis=1)  # nan last
                i = np.arange(1, x.shape[1] + 1)[None, :]
                coef = np.where(i <= mu[:, None], 2 * i - mu[:, None] - 1, 0)
                num = np.nansum(coef * np.nan_to_num(xs), axis=1)
                tot = np.nansum(x, axis=1)
                return np.where(tot > 0, num / ((mu - 1) * np.where(tot > 0, tot, 1)), 0.0)
            a = weights["garbe_alpha"]
            val = a * gini(fm) + (1.0 - a) * gini(fn)
        else:
            raise MetricError(f"unknown joint summary {summary!r}")
    out[use] = val
    return out


def _joint_interval(fn, boot: dict, g: int, k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a summary of FMR and FNMR together over the people-bootstrap
    replicates (FMR and FNMR of replicate ``r`` come from the same resampled people)."""
    kw = dict(fn.keywords)
    name = fn.func.__name__
    weights = {"fdr_alpha": kw.get("alpha", 0.5), "garbe_alpha": kw.get("alpha", 0.5),
               "inequity_alpha": kw.get("alpha", 1.0), "inequity_beta": kw.get("beta", 1.0)}
    vals = joint_replicates(name, boot["fmr"][:, :g, k], boot["fnmr"][:, :g, k], weights)
    lo, hi = percentile_interval(vals[:, None], confidence)
    return float(lo[0]), float(hi[0])


def _det_from_hist(gid: str, name: str, hist: np.ndarray, edges: np.ndarray, gen_sorted: np.ndarray, n_imp: int, max_points: int = 200) -> list:
    """DET points at histogram bin edges: FMR = impostors in bins at or above the edge, FNMR = mated
    scores below it. Exact at the edges up to the histogram's float32 screening."""
    tail = np.cumsum(hist[::-1])[::-1]  # impostors in bin i and above
    nz = np.flatnonzero(hist)
    if not nz.size:
        return []
    idx = np.arange(max(0, nz[0]), min(len(hist), nz[-1] + 2))
    if idx.size > max_points:
        idx = np.unique(np.linspace(idx[0], idx[-1], max_points).round().astype(int))
    out = []
    for i in idx:
        t = float(edges[i])
        fmr = (tail[i] if i < len(tail) else 0) / n_imp
        fnmr = np.searchsorted(gen_sorted, t, side="left") / gen_sorted.size
        out.append((gid, name, t, float(fmr), float(fnmr)))
    return out
