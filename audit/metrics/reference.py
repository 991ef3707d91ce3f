"""Group-against-reference comparisons with simultaneous people-level intervals.

Each group of a grouping is compared with one reference group (or with the whole population) by
the ratio and the difference of their rates. The intervals come from people-level bootstrap
replicates (:mod:`audit.metrics.people`) and hold *simultaneously* over the ``K - 1`` comparisons
of one grouping, metric and threshold (max-t):

.. math::

    z_k = \\frac{\\hat\\theta_k - \\theta_k}{\\mathrm{se}_k}, \\quad
    c = q_{0.95}\\Big(\\max_k |z^{(b)}_k|\\Big), \\quad
    \\hat\\theta_k \\pm c\\, \\mathrm{se}_k

with ``theta`` the log ratio (or the difference), ``se_k`` the standard deviation of its
replicates and ``z^{(b)}_k = (theta^{(b)}_k - hat theta_k) / se_k``. So "difference shown" (an
interval that excludes parity) holds at a family-wise error rate of 5% over the comparisons made;
``p_adjusted`` is the single-step max-t adjusted p-value (Westfall & Young).

Zero rates: a rate with no errors has a log of minus infinity. The log ratio is taken of rates
floored at half an error (``0.5 / trials``, the point estimate's trials) so that it stays finite;
the reported point ratio is not floored, and an interval is widened to 0 (no errors in the group)
or to infinity (no errors in the reference) so that the floor never narrows it.

The same max-t construction over the groups' own (floored log) rates gives intervals that hold for
all groups at once; a maximum over minimum ratio (or maximum over geometric mean) is then bounded by
``max(low) / min(high)`` and ``max(high) / min(low)``: a statement valid for the max/min summary,
which a percentile interval of the maximum is not (a maximum is biased upwards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import MetricError

__all__ = ["Comparison", "compare_to_reference", "simultaneous_rate_bounds", "percentile_interval", "design_effect",
           "dyadic_rate_interval", "cluster_rate_interval", "jackknife_dof", "rate_dof", "small_sample_factor"]


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring ``nan`` replicates ('lower'/'higher' order
    statistics, so no interpolation crosses an infinite value). ``nan`` where no replicate is defined."""
    from .bootstrap import _order_stat

    x = np.asarray(replicates, np.float64)
    if x.shape[0] == 0:
        shape = x.shape[1:]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    return _order_stat(x, (1 - confidence) / 2, "lower"), _order_stat(x, (1 + confidence) / 2, "higher")


def _replicate_variance(replicates: np.ndarray) -> np.ndarray:
    """Variance (ddof 1) of each column's defined replicates; ``nan`` with fewer than two."""
    r = np.asarray(replicates, np.float64)
    if r.shape[0] < 2:  # (numpy's nanvar warns on no replicates: a run with bootstrap = 0)
        return np.full(r.shape[1:], np.nan)
    ok = np.sum(~np.isnan(r), axis=0) >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.nanvar(np.where(ok, r, 0.0), axis=0, ddof=1), np.nan)


def design_effect(rate: np.ndarray, trials: np.ndarray, replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Design effect and effective number of comparisons of each rate.

    ``deff = var_people / var_binomial`` with ``var_people`` the variance of the people-level
    replicates and ``var_binomial = p (1 - p) / n`` the variance if every comparison were
    independent; ``n_eff = n / deff``. Where ``p`` is 0 or 1 (no binomial variance) the design effect
    is ``nan`` and ``n_eff`` is ``n``.

    Parameters
    ----------
    rate, trials : ndarray, shape (...)
    replicates : ndarray, shape (B, ...)

    Examples
    --------
    >>> d, n = design_effect(np.array([0.1]), np.array([100]), np.array([[0.0], [0.2]]))
    >>> round(float(d[0]), 3), round(float(n[0]), 1)    # var 0.02 vs 0.0009
    (22.222, 4.5)
    """
    p = np.asarray(rate, np.float64)
    n = np.asarray(trials, np.float64)
    r = np.asarray(replicates, np.float64)
    var_p = _replicate_variance(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_b = p * (1 - p) / n
        deff = np.where((var_b > 0) & np.isfinite(var_p), var_p / np.where(var_b > 0, var_b, 1), np.nan)
        n_eff = np.where(np.isfinite(deff) & (deff > 0), n / deff, n)
    return deff, n_eff


def _floored_log(rate: np.ndarray, floor: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.maximum(rate, floor))


def _max_t(point: np.ndarray, reps: np.ndarray, confidence: float) -> tuple[np.ndarray, float, np.ndarray]:
    """se (K,), the max-t critical value, and the max-|z| of every replicate (B,)."""
    valid = np.isfinite(reps)
    with np.errstate(invalid="ignore"):
        se = np.array([np.std(reps[valid[:, k], k], ddof=1) if valid[:, k].sum() >= 2 else np.nan for k in range(reps.shape[1])])
    use = np.isfinite(se) & (se > 0) & np.isfinite(point)
    if not use.any() or reps.shape[0] == 0:
        return se, np.nan, np.zeros(0)
    z = np.abs(reps[:, use] - point[use]) / se[use]
    z = np.where(np.isfinite(z), z, np.inf)  # an undefined replicate counts as extreme (conservative)
    t = z.max(axis=1)
    c = float(np.sort(t)[min(len(t) - 1, int(np.ceil(confidence * (len(t) - 1))))])
    return se, c, t


@dataclass(frozen=True)
class Comparison:
    """One group against the reference: ratio and difference with simultaneous intervals.

    Attributes
    ----------
    group, reference : str
    ratio, ratio_low, ratio_high : float
        ``rate(group) / rate(reference)`` and its simultaneous interval (``inf`` when the
        reference has no errors).
    difference, diff_low, diff_high : float
        ``rate(group) - rate(reference)`` and its simultaneous interval.
    p_adjusted : float
        Max-t adjusted p-value of "ratio = 1".
    shown : bool
        The ratio's interval excludes 1 (a difference shown at a family-wise 5%).
    comparisons : int
        K - 1, the size of the family.
    """

    group: str
    reference: str
    ratio: float
    ratio_low: float
    ratio_high: float
    difference: float
    diff_low: float
    diff_high: float
    p_adjusted: float
    shown: bool
    comparisons: int


def compare_to_reference(
    groups: list[str],
    rates: np.ndarray,
    trials: np.ndarray,
    errors: np.ndarray,
    replicates: np.ndarray,
    reference: int | str,
    *,
    reference_point: tuple[float, float, float] | None = None,
    reference_replicates: np.ndarray | None = None,
    dof: np.ndarray | None = None,
    reference_dof: float | None = None,
    confidence: float = 0.95,
) -> list[Comparison]:
    """Compare each group's rate with a reference's, simultaneously over the comparisons made.

    Parameters
    ----------
    groups : list of str, length G
    rates, trials, errors : ndarray, shape (G,)
        Point estimates and their counts.
    replicates : ndarray, shape (B, G)
        People-level bootstrap replicates of the rates (``nan`` where undefined).
    reference : int or "overall"
        Index of the reference group, or ``"overall"`` to compare every group with the whole
        population (then ``reference_point`` = (rate, trials, errors) and ``reference_replicates``
        (B,) describe it).
    dof : ndarray, shape (G,), optional
        Degrees of freedom of each group's people-level variance (``inf``: as good as known), as
        its own interval uses them (:func:`dyadic_rate_interval`, :func:`cluster_rate_interval`);
        ``reference_dof`` the same for ``"overall"``. Each comparison's standard error is then
        widened by ``t_q(df) / z_q``, ``df`` the Satterthwaite combination of the group's and the
        reference's (the max-t critical value itself comes from the replicates): with few people,
        or a few people carrying most errors, a variance is itself uncertain.
    confidence : float, default 0.95
        Family-wise coverage of the intervals.

    Returns
    -------
    list of Comparison
        One per group with trials other than the reference, in ``groups`` order.

    Examples
    --------
    >>> reps = np.array([[0.02, 0.01], [0.03, 0.012], [0.025, 0.009], [0.018, 0.011]])
    >>> c = compare_to_reference(["A", "B"], np.array([0.024, 0.01]), np.array([1000, 1000]),
    ...                          np.array([24, 10]), reps, 1)
    >>> c[0].group, c[0].reference, round(c[0].ratio, 2), round(c[0].difference, 3)
    ('A', 'B', 2.4, 0.014)
    """
    rates = np.asarray(rates, np.float64)
    trials = np.asarray(trials, np.float64)
    errors = np.asarray(errors, np.float64)
    reps = np.asarray(replicates, np.float64)
    if reference == "overall":
        if reference_point is None or reference_replicates is None:
            raise MetricError("reference 'overall' needs reference_point and reference_replicates.")
        ref_rate, ref_trials, ref_errors = (float(x) for x in reference_point)
        ref_reps = np.asarray(reference_replicates, np.float64)
        ref_name = "overall"
        idx = [k for k in range(len(groups)) if trials[k] > 0]
    else:
        r = int(reference)
        ref_rate, ref_trials, ref_errors = float(rates[r]), float(trials[r]), float(errors[r])
        ref_reps = reps[:, r]
        ref_name = groups[r]
        idx = [k for k in range(len(groups)) if k != r and trials[k] > 0]
    if not idx or ref_trials <= 0:
        return []
    floor = 0.5 / trials[idx]
    ref_floor = 0.5 / ref_trials
    lp = _floored_log(rates[idx], floor) - _floored_log(np.array(ref_rate), ref_floor)
    lr = _floored_log(reps[:, idx], floor) - _floored_log(ref_reps, ref_floor)[:, None]
    if ref_errors == 0:  # a group without errors against a reference without errors makes no claim: not in the family
        lp = np.where(errors[idx] == 0, np.nan, lp)
    se_r, c_r, t_r = _max_t(lp, lr, confidence)
    dp = rates[idx] - ref_rate
    dr = reps[:, idx] - ref_reps[:, None]
    se_d, c_d, _ = _max_t(dp, dr, confidence)
    if dof is not None:
        if reference == "overall":
            ref_df = np.inf if reference_dof is None else float(reference_dof)
        else:
            ref_df = float(np.asarray(dof, np.float64)[int(reference)])
        v_ref = _replicate_variance(_floored_log(ref_reps, ref_floor)[:, None])[0]
        f = small_sample_factor(_replicate_variance(_floored_log(reps[:, idx], floor)), np.asarray(dof, np.float64)[idx],
                                v_ref, ref_df, confidence)
        se_r, se_d = se_r * f, se_d * f
    out = []
    k_fam = len(idx)
    for j, k in enumerate(idx):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rates[k] / ref_rate if ref_rate > 0 else (np.inf if rates[k] > 0 else np.nan)
        if errors[k] == 0 and ref_errors == 0:  # 0 / 0: nothing to compare
            out.append(Comparison(groups[k], ref_name, float("nan"), 0.0, np.inf, 0.0,
                                  float(dp[j] - c_d * se_d[j]) if np.isfinite(c_d) and se_d[j] > 0 else -1.0,
                                  float(dp[j] + c_d * se_d[j]) if np.isfinite(c_d) and se_d[j] > 0 else 1.0, 1.0, False, k_fam))
            continue
        if np.isfinite(c_r) and np.isfinite(se_r[j]) and se_r[j] > 0:
            lo, hi = float(np.exp(lp[j] - c_r * se_r[j])), float(np.exp(lp[j] + c_r * se_r[j]))
            z = abs(lp[j]) / se_r[j]
            p_adj = float((1 + np.sum(t_r >= z)) / (1 + t_r.size))
        else:
            lo, hi, p_adj = 0.0, np.inf, 1.0
        if errors[k] == 0:
            lo = 0.0
        if ref_errors == 0:
            hi = np.inf
        if np.isfinite(c_d) and np.isfinite(se_d[j]) and se_d[j] > 0:
            dlo, dhi = float(dp[j] - c_d * se_d[j]), float(dp[j] + c_d * se_d[j])
        else:
            dlo, dhi = -1.0, 1.0
        shown = bool(lo > 1 or hi < 1)
        out.append(Comparison(groups[k], ref_name, float(ratio), lo, hi, float(dp[j]), dlo, dhi, min(p_adj, 1.0), shown, k_fam))
    return out


def small_sample_factor(v: np.ndarray, dof: np.ndarray, v_ref, ref_dof, confidence: float = 0.95) -> np.ndarray:
    """``t_q(df) / z_q`` for comparisons of groups with variances ``v`` and degrees of freedom
    ``dof`` against a reference with ``v_ref``, ``ref_dof`` (broadcast): ``df`` is the
    Satterthwaite degrees of freedom of the sum of the two variances. 1 where both are as good as
    known (``inf``) or a variance is undefined."""
    from scipy.stats import norm
    from scipy.stats import t as tdist

    v, v_ref = np.asarray(v, np.float64), np.asarray(v_ref, np.float64)
    dof, ref_dof = np.asarray(dof, np.float64), np.asarray(ref_dof, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        part = np.where(np.isfinite(dof) & (v > 0), v * v / np.maximum(dof, 1.0), 0.0)
        part_ref = np.where(np.isfinite(ref_dof) & (v_ref > 0), v_ref * v_ref / np.maximum(ref_dof, 1.0), 0.0)
        df = (v + v_ref) ** 2 / (part + part_ref)
    alpha = (1 + confidence) / 2
    ok = np.isfinite(df) & (df > 0) & np.isfinite(v) & np.isfinite(v_ref)
    return np.where(ok, tdist.ppf(alpha, np.where(ok, np.maximum(df, 1.0), 1.0)) / norm.ppf(alpha), 1.0)


def rate_dof(metric: str, point: np.ndarray, errors: np.ndarray, trials: np.ndarray, replicates: np.ndarray,
             jackknife: np.ndarray, members: np.ndarray | None, people: np.ndarray) -> np.ndarray:
    """Degrees of freedom of each column's people-level variance, as its interval uses them: for
    ``"fmr"`` those of :func:`dyadic_rate_interval` (``inf`` where comparisons behave as
    independent), for ``"fnmr"`` ``S - 1`` (:func:`cluster_rate_interval`). ``replicates`` are the
    raw people-bootstrap replicates of the rates."""
    if metric == "fmr":
        return dyadic_rate_interval(point, errors, trials, replicates, jackknife, members, people, return_dof=True)[2]
    if metric == "fnmr":
        return np.maximum(np.asarray(people, np.float64) - 1.0, 1.0)
    raise MetricError(f"metric must be 'fmr' or 'fnmr'; got {metric!r}.")


def simultaneous_rate_bounds(rates: np.ndarray, trials: np.ndarray, errors: np.ndarray, replicates: np.ndarray,
                             confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Intervals for every group's rate that hold for all groups at once (max-t over the groups
    on the floored log scale; widened to 0 for a group with no errors). Shape (G,) each; ``nan``
    for groups without trials."""
    rates = np.asarray(rates, np.float64)
    trials = np.asarray(trials, np.float64)
    g = rates.size
    low, high = np.full(g, np.nan), np.full(g, np.nan)
    idx = np.flatnonzero(trials > 0)
    if not idx.size:
        return low, high
    floor = 0.5 / trials[idx]
    lp = _floored_log(rates[idx], floor)
    lr = _floored_log(np.asarray(replicates, np.float64)[:, idx], floor)
    se, c, _ = _max_t(lp, lr, confidence)
    for j, k in enumerate(idx):
        if np.isfinite(c) and np.isfinite(se[j]) and se[j] > 0:
            low[k], high[k] = np.exp(lp[j] - c * se[j]), min(1.0, float(np.exp(lp[j] + c * se[j])))
        else:
            low[k], high[k] = 0.0, 1.0
        if errors[k] == 0:
            low[k] = 0.0
    return low, high


def bca_interval(point: np.ndarray, replicates: np.ndarray, jackknife: np.ndarray, members: np.ndarray | None = None,
                 confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated (BCa) bootstrap interval (Efron 1987) of each column.

    Parameters
    ----------
    point : ndarray, shape (K,)
    replicates : ndarray, shape (B, K)
        Bootstrap replicates (``nan`` ignored).
    jackknife : ndarray, shape (S, K)
        Leave-one-unit-out values (``nan`` ignored).
    members : ndarray of bool, shape (S, K), optional
        Which units the acceleration of each column uses (the people resampled for it).

    Returns
    -------
    low, high : ndarray, shape (K,)
        With ``z0 = Phi^-1(share of replicates below the point)`` (ties counted half) and
        acceleration ``a = sum d^3 / (6 (sum d^2)^1.5)``, ``d = mean(jack) - jack``, the bounds are
        the replicate quantiles at ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for ``z = ±z_(1-alpha/2)``.
        The plain percentile interval where the correction is undefined (no spread).
    """
    from scipy.stats import norm

    point = np.asarray(point, np.float64)
    reps = np.asarray(replicates, np.float64)
    jack = np.asarray(jackknife, np.float64)
    k = point.size
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    z = norm.ppf((1 + confidence) / 2)
    for j in range(k):
        r = reps[:, j]
        r = np.sort(r[~np.isnan(r)])
        if not r.size or np.isnan(point[j]):
            continue
        below = (np.searchsorted(r, point[j], side="left") + np.searchsorted(r, point[j], side="right")) / 2
        share = np.clip(below / r.size, 0.5 / r.size, 1 - 0.5 / r.size)
        z0 = norm.ppf(share)
        jj = jack[:, j] if members is None else jack[members[:, j], j]
        jj = jj[~np.isnan(jj)]
        d = jj.mean() - jj if jj.size else np.zeros(0)
        den = np.sum(d * d) ** 1.5
        a = float(np.sum(d ** 3) / (6 * den)) if den > 0 else 0.0
        qs = []
        for zz in (-z, z):
            x = z0 + zz
            q = norm.cdf(z0 + x / (1 - a * x)) if 1 - a * x > 0 else (1.0 if zz > 0 else 0.0)
            qs.append(q)
        lo_i = int(np.clip(np.floor(qs[0] * (r.size - 1)), 0, r.size - 1))
        hi_i = int(np.clip(np.ceil(qs[1] * (r.size - 1)), 0, r.size - 1))
        low[j], high[j] = r[lo_i], r[hi_i]
    return low, high


def remove_pair_noise(point: np.ndarray, trials: np.ndarray, replicates: np.ndarray) -> np.ndarray:
    """Shrink impostor-rate replicates so that their variance no longer counts pair-level noise twice.

    Resampling people resamples each impostor pair through both of its people, so the bootstrap
    variance of an impostor rate counts pair-level noise more than once. For a mean of ``Y_ij``
    over the ``M`` pairs of ``n`` people, ``Y_ij = f(u_i, u_j) + e_ij``, the true variance is
    ``4 s1 / n + V_pair`` (``s1`` the variance of a person's mean effect, ``V_pair = Var(e) / M``).
    With weights ``w`` the replicate is ``sum w_i w_j Y_ij / sum w_i w_j``; its linear part
    ``(2/n) sum (w_i - 1) Ybar_i`` has variance ``4 Var(Ybar_i) / n = 4 s1 / n + 2 V_pair`` (a
    person's empirical mean carries the noise of their n - 1 pairs) and its quadratic part
    ``sum (w_i - 1)(w_j - 1) Y_ij / M`` adds about ``V_pair``: ``V_boot ~ 4 s1 / n + 3 V_pair``.
    The correction removes the linear part's excess: ``V = max(V_boot - V_binom, V_binom)`` with
    ``V_binom = p (1 - p) / N`` (never below what independent comparisons would give), and each
    replicate is moved towards the point estimate by ``sqrt(V / V_boot)``: its shape, and so the
    skewness BCa corrects, is kept. The quadratic part's ``V_pair`` is deliberately left in: removing
    it too brings independent comparisons to 95% but leaves weak person effects under-covered
    (about 88% in the benchmark), so the interval errs on the safe side where comparisons are
    nearly independent (about 98-99%). With strong person effects ``V_binom`` is small beside
    ``V_boot`` and little changes. Mated rates need no correction (a mated pair belongs to one person).
    ``benchmarks/interval_coverage.py`` checks the result.

    Parameters
    ----------
    point, trials : ndarray, shape (K,)
    replicates : ndarray, shape (B, K)

    Returns
    -------
    ndarray, shape (B, K)
    """
    p = np.asarray(point, np.float64)
    n = np.asarray(trials, np.float64)
    r = np.asarray(replicates, np.float64)
    v_boot = _replicate_variance(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        v_bin = np.where(n > 0, p * (1 - p) / np.where(n > 0, n, 1), np.nan)
        v = np.maximum(v_boot - v_bin, v_bin)
        f = np.where((v_boot > 0) & np.isfinite(v), np.sqrt(v / np.where(v_boot > 0, v_boot, 1)), 1.0)
    f = np.minimum(f, 1.0)
    return np.where(np.isnan(p), r, p + f * (r - p))


def inflate_for_few_people(point: np.ndarray, replicates: np.ndarray, people: np.ndarray) -> np.ndarray:
    """Widen replicates by ``sqrt(S / (S - 1))`` around the point estimate, ``S`` the people resampled.

    A bootstrap of ``S`` clusters estimates the variance with the divisor ``S`` where the unbiased
    estimate has ``S - 1`` (the plug-in variance's bias); the factor removes that bias, which
    matters with few people per group (15: 3.5% wider; 60: 0.8%).

    Parameters
    ----------
    point : ndarray, shape (K,)
    replicates : ndarray, shape (B, K)
    people : ndarray, shape (K,)
        People resampled for each column (columns with fewer than 2 are left as they are).
    """
    p = np.asarray(point, np.float64)
    s = np.asarray(people, np.float64)
    f = np.where(s >= 2, np.sqrt(s / np.maximum(s - 1, 1)), 1.0)
    r = np.asarray(replicates, np.float64)
    return np.clip(np.where(np.isnan(p), r, p + f * (r - p)), 0.0, 1.0)  # a rate stays a rate


def jackknife_dof(jackknife: np.ndarray, members: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite degrees of freedom of a people-level variance, from leave-one-person-out values.

    A variance built from people's contributions ``d_i`` (here the leave-one-person-out rates about
    their mean) is as precise as a chi-square with ``(sum d_i^2)^2 / sum d_i^4`` degrees of freedom:
    about the number of people when they contribute alike, far fewer when a few people carry most
    of the errors. Capped at ``S - 1`` (``S`` the people of the column); ``nan`` without two people.

    Parameters
    ----------
    jackknife : ndarray, shape (S, K)
    members : ndarray of bool, shape (S, K), optional
        Which people count for each column.
    """
    jack = np.asarray(jackknife, np.float64)
    k = jack.shape[1]
    out = np.full(k, np.nan)
    for j in range(k):
        jj = jack[:, j] if members is None else jack[members[:, j], j]
        jj = jj[~np.isnan(jj)]
        if jj.size < 2:
            continue
        d = jj - jj.mean()
        s2, s4 = float(np.sum(d * d)), float(np.sum(d ** 4))
        out[j] = jj.size - 1.0 if s4 <= 0 else min(s2 * s2 / s4, jj.size - 1.0)
    return out


def dyadic_rate_interval(point: np.ndarray, errors: np.ndarray, trials: np.ndarray, replicates: np.ndarray,
                         jackknife: np.ndarray, members: np.ndarray | None, people: np.ndarray,
                         confidence: float = 0.95, *, return_dof: bool = False):
    """People-level interval of impostor rates (FMR): dyadic-robust variance, log scale, t quantile.

    An impostor rate is a mean over pairs of people, so its variance is that of a two-way
    ("dyadic") sum: ``sum_i R_i^2 - sum_ij Z_ij^2`` (``Z_ij`` the pair of people's residual, ``R_i``
    a person's sum of them) counts every covariance between pairs that share a person once. The
    people bootstrap's variance is about ``sum R_i^2 + sum Z_ij^2``, and ``sum Z_ij^2`` is about the
    binomial variance ``V_binom = p (1 - p) / N``, so the dyadic variance is
    ``V = V_boot - 2 V_binom`` (``replicates`` are the raw bootstrap replicates). Where ``V`` is at
    least ``V_binom`` the interval is ``p exp(± q sqrt(V') / p)`` with ``V' = V S / (S - 1)`` and
    ``q`` the t quantile at :func:`jackknife_dof` degrees of freedom: the variance rests on few
    people when a few carry most false matches. Where ``V`` falls below ``V_binom`` comparisons
    behave as independent and the binomial variance (``V_binom S / (S - 1)``) with the normal
    quantile is used. Columns with no errors, or a rate of 1, get ``nan`` (the caller keeps its
    replicate interval there). ``benchmarks/interval_variants.py`` and
    ``benchmarks/interval_coverage.py`` measure the coverage.

    Parameters
    ----------
    point, errors, trials, people : ndarray, shape (K,)
    replicates : ndarray, shape (B, K)
    jackknife : ndarray, shape (S, K)
    members : ndarray of bool, shape (S, K), or None
    return_dof : bool, default False
        Also return the degrees of freedom each column's quantile used (``inf`` where the normal
        quantile was used, ``nan`` where there is no interval), for the group comparisons.
    """
    from scipy.stats import norm
    from scipy.stats import t as tdist

    p = np.asarray(point, np.float64)
    e = np.asarray(errors, np.float64)
    n = np.asarray(trials, np.float64)
    s = np.asarray(people, np.float64)
    v_boot = _replicate_variance(replicates)
    dof = jackknife_dof(jackknife, members)
    ok = (e > 0) & (n > 0) & (p > 0) & (p < 1) & np.isfinite(v_boot) & (s > 1)
    low, high = np.full(p.shape, np.nan), np.full(p.shape, np.nan)
    if not ok.any():
        return (low, high, np.full(p.shape, np.nan)) if return_dof else (low, high)
    with np.errstate(invalid="ignore", divide="ignore"):
        v_bin = np.where(ok, p * (1 - p) / np.where(n > 0, n, 1), np.nan)
        v_dyad = v_boot - 2 * v_bin
        dyadic = ok & (v_dyad > v_bin) & np.isfinite(dof)
        v = np.where(dyadic, v_dyad, v_bin) * s / np.where(s > 1, s - 1, 1)
        alpha = (1 + confidence) / 2
        q = np.where(dyadic, tdist.ppf(alpha, np.where(dyadic, np.maximum(dof, 1.0), 1.0)), norm.ppf(alpha))
        se = np.sqrt(v) / p
        low = np.where(ok, p * np.exp(-q * se), np.nan)
        high = np.where(ok, np.minimum(p * np.exp(q * se), 1.0), np.nan)
    if return_dof:
        return low, high, np.where(ok, np.where(dyadic, np.maximum(dof, 1.0), np.inf), np.nan)
    return low, high


def cluster_rate_interval(point: np.ndarray, errors: np.ndarray, trials: np.ndarray, replicates: np.ndarray,
                          people: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """People-level interval of a rate whose comparisons each belong to one person (FNMR).

    A mated comparison joins two images of one person, so the rate is a ratio of sums over people
    (clusters), and the people bootstrap's variance is the cluster-robust one (no pair counted
    twice, unlike an impostor rate's). The interval is ``logit(p) ± q sqrt(V') / (p (1 - p))``
    back-transformed, with ``V' = V_boot S / (S - 1)`` (the plug-in variance's bias removed) and
    ``q`` the t quantile at ``S - 1`` degrees of freedom, the usual small-sample rule for
    cluster-robust inference with ``S`` clusters (Cameron & Miller 2015). The logit scale keeps
    the interval in (0, 1) and follows the skew of a small rate. Columns with no errors, only
    errors, or fewer than 2 people get ``nan`` (the caller keeps its replicate interval there).
    ``benchmarks/interval_coverage.py`` measures the coverage (docs/benchmarks.md).

    Parameters
    ----------
    point, errors, trials, people : ndarray, shape (K,)
    replicates : ndarray, shape (B, K)
        The raw people-bootstrap replicates of the rate.

    Examples
    --------
    >>> reps = np.array([[0.04], [0.06], [0.05], [0.07], [0.03]])
    >>> lo, hi = cluster_rate_interval(np.array([0.05]), np.array([10]), np.array([200]), reps, np.array([30]))
    >>> bool(lo[0] < 0.05 < hi[0]), round(float(lo[0]), 4), round(float(hi[0]), 4)
    (True, 0.0257, 0.0952)
    """
    from scipy.stats import t as tdist

    p = np.asarray(point, np.float64)
    e = np.asarray(errors, np.float64)
    n = np.asarray(trials, np.float64)
    s = np.asarray(people, np.float64)
    v_boot = _replicate_variance(replicates)
    ok = (e > 0) & (e < n) & (p > 0) & (p < 1) & np.isfinite(v_boot) & (v_boot > 0) & (s > 1)
    if not ok.any():
        return np.full(p.shape, np.nan), np.full(p.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        pp = np.where(ok, p, 0.5)
        v = v_boot * s / np.where(s > 1, s - 1, 1)
        q = tdist.ppf((1 + confidence) / 2, np.where(ok, s - 1, 1.0))
        mid = np.log(pp / (1 - pp))
        half = q * np.sqrt(np.where(ok, v, 0.0)) / (pp * (1 - pp))
        low = np.where(ok, 1 / (1 + np.exp(-(mid - half))), np.nan)
        high = np.where(ok, 1 / (1 + np.exp(-(mid + half))), np.nan)
    return low, high
