"""Disparity summaries over FMR and FNMR together: the fairness discrepancy rate (FDR), the inequity
rate (IR), GARBE (Gini-based) and the Gini coefficient they use.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike

from audit.errors import MetricError
from .disparity import Disparity, _argmin, _check_weight, _dropped_note, _join, _names, _paired, _ratio, _too_few

__all__ = ["gini", "garbe", "inequity_rate", "fairness_discrepancy_rate"]


# --------------------------------------------------------------------------------------------
# FMR + FNMR summaries


def fairness_discrepancy_rate(
    fmr_rates: Mapping[str, float],
    fnmr_rates: Mapping[str, float],
    *,
    alpha: float = 0.5,
) -> Disparity:
    """Fairness Discrepancy Rate (FDR) of de Freitas Pereira & Marcel.

    With groups ``i, j`` at one threshold,

    .. math::

        A = \\max_{i,j} |\\mathrm{FMR}_i - \\mathrm{FMR}_j|, \\quad
        B = \\max_{i,j} |\\mathrm{FNMR}_i - \\mathrm{FNMR}_j|, \\quad
        \\mathrm{FDR} = 1 - (\\alpha A + (1 - \\alpha) B)

    (``A`` and ``B`` are max minus min). FDR = 1 is perfectly fair; lower is less fair. Because
    it uses absolute differences, it barely moves at low FMRs (differences of 1e-4 are small
    even when one group's FMR is ten times another's); read it beside the ratios.

    Parameters
    ----------
    fmr_rates, fnmr_rates : Mapping[str, float]
        Group label -> FMR / FNMR in [0, 1]. Groups are taken from the intersection of the two
        mappings; a group missing from one, or nan in either, is dropped (note).
    alpha : float, default 0.5
        Weight of the FMR term, in [0, 1].

    Returns
    -------
    Disparity
        ``summary == "fairness_discrepancy_rate"``; ``group_high``/``group_low`` ``None``.

    Raises
    ------
    MetricError
        Bad rates or labels (as for :func:`max_min_ratio`), ``alpha`` outside [0, 1].

    References
    ----------
    T. de Freitas Pereira and S. Marcel (2021), "Fairness in biometrics: a figure of merit to
    assess biometric verification systems", IEEE Trans. Biometrics, Behavior, and Identity
    Science 4(1): 19-29 (arXiv:2011.02395).

    Examples
    --------
    >>> d = fairness_discrepancy_rate({"A": 0.01, "B": 0.03}, {"A": 0.10, "B": 0.04})
    >>> round(d.value, 12)   # 1 - (0.5 * 0.02 + 0.5 * 0.06)
    0.96
    """
    a = _check_weight(alpha, "alpha", upper=1.0)
    used, notes = _paired(fmr_rates, fnmr_rates)
    if len(used) < 2:
        return _too_few("fairness_discrepancy_rate", used, *notes)
    fm = np.array([float(fmr_rates[g]) for g in used])
    fn = np.array([float(fnmr_rates[g]) for g in used])
    value = 1.0 - (a * float(fm.max() - fm.min()) + (1.0 - a) * float(fn.max() - fn.min()))
    return Disparity("fairness_discrepancy_rate", value, None, None, len(used), _join(*notes))


def inequity_rate(
    fmr_rates: Mapping[str, float],
    fnmr_rates: Mapping[str, float],
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> Disparity:
    """Inequity Rate (IR): product of the max/min ratios of FMR and of FNMR.

    .. math::

        \\mathrm{IR} =
            \\left(\\frac{\\max_i \\mathrm{FMR}_i}{\\min_i \\mathrm{FMR}_i}\\right)^{\\alpha}
            \\left(\\frac{\\max_i \\mathrm{FNMR}_i}{\\min_i \\mathrm{FNMR}_i}\\right)^{\\beta}

    IR = 1 is parity; larger is worse. Each ratio follows :func:`max_min_ratio`'s conventions:
    all-zero rates give a ratio of 1 (note), a zero minimum with a non-zero maximum gives ``inf``
    (note). A weight of 0 removes its factor entirely (even an infinite one).

    Parameters
    ----------
    fmr_rates, fnmr_rates : Mapping[str, float]
        Group label -> FMR / FNMR in [0, 1]; groups from the intersection (as for
        :func:`fairness_discrepancy_rate`).
    alpha, beta : float, default 1.0
        Exponents of the FMR and FNMR ratios, finite and >= 0.

    Returns
    -------
    Disparity
        ``summary == "inequity_rate"``; ``group_high``/``group_low`` ``None``.

    Raises
    ------
    MetricError
        Bad rates or labels, or a negative / non-finite exponent.

    References
    ----------
    Proposed by NIST for summarising demographic differentials (P. Grother, "Face Recognition
    Vendor Test (FRVT) Part 8: Summarizing demographic differentials", draft, 2022)
    and analysed by J. J. Howard et al. (2022), "Evaluating proposed fairness models for face
    recognition algorithms" (arXiv:2203.05051). Implementations differ in the exponents (some
    use ``beta = 1 - alpha``); the exponents here are explicit.

    Examples
    --------
    >>> d = inequity_rate({"A": 0.01, "B": 0.04}, {"A": 0.10, "B": 0.05})
    >>> round(d.value, 12)   # (0.04 / 0.01) * (0.10 / 0.05)
    8.0
    """
    a = _check_weight(alpha, "alpha", upper=None)
    b = _check_weight(beta, "beta", upper=None)
    used, notes = _paired(fmr_rates, fnmr_rates)
    if len(used) < 2:
        return _too_few("inequity_rate", used, *notes)
    fm = {g: float(fmr_rates[g]) for g in used}
    fn = {g: float(fnmr_rates[g]) for g in used}
    ratio_fm, note_fm = _ratio(max(fm.values()), min(fm.values()), "FMR", _argmin(fm))
    ratio_fn, note_fn = _ratio(max(fn.values()), min(fn.values()), "FNMR", _argmin(fn))
    factor_fm = 1.0 if a == 0.0 else ratio_fm**a
    factor_fn = 1.0 if b == 0.0 else ratio_fn**b
    value = factor_fm * factor_fn
    if a == 0.0:
        note_fm = ""
    if b == 0.0:
        note_fn = ""
    return Disparity("inequity_rate", value, None, None, len(used), _join(*notes, note_fm, note_fn))


def gini(values: ArrayLike) -> float:
    """Gini coefficient of non-negative values, with the small-sample correction ``n / (n - 1)``.

    .. math::

        G(x) = \\frac{n}{n - 1} \\cdot
               \\frac{\\sum_{i=1}^{n} \\sum_{j=1}^{n} |x_i - x_j|}{2 n^2 \\bar{x}}

    0 when all values are equal; 1 when one value holds everything (the correction makes the
    maximum exactly 1 for any ``n``). If the mean is 0 (all values 0) the values are equal and
    ``G = 0``. Computed in O(n log n) from the sorted values ``x_(1) <= ... <= x_(n)`` via
    ``sum_ij |x_i - x_j| = 2 * sum_i (2i - n - 1) x_(i)``.

    Parameters
    ----------
    values : array_like of float, shape (n,)
        Finite, non-negative values (e.g. one FMR per group), ``n >= 2``.

    Returns
    -------
    float
        The coefficient, in [0, 1].

    Raises
    ------
    MetricError
        Fewer than 2 values, not 1-D, negative or non-finite values.

    References
    ----------
    As used in GARBE: J. J. Howard et al. (2022), "Evaluating proposed fairness models for face
    recognition algorithms" (arXiv:2203.05051); ISO/IEC 19795-10.

    Examples
    --------
    >>> gini([0.0, 1.0]), gini([0.2, 0.2, 0.2])
    (1.0, 0.0)
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricError(f"gini needs a 1-D array of numbers; got {values!r}.") from None
    if x.ndim != 1 or x.size < 2:
        raise MetricError(
            f"gini needs a 1-D array of at least 2 values; got shape {x.shape}. "
            "A single group has no inequality to measure."
        )
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0))
    if bad.size:
        raise MetricError(
            f"gini needs finite, non-negative values; {bad.size} are not, the first at index "
            f"{int(bad[0])} ({x[bad[0]]!r}). Drop groups without trials (nan) first."
        )
    n = x.size
    mean = float(x.mean())
    if mean == 0.0:
        return 0.0
    xs = np.sort(x)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    abs_diff_sum = 2.0 * float(np.sum((2.0 * ranks - n - 1.0) * xs))
    return (n / (n - 1.0)) * abs_diff_sum / (2.0 * n * n * mean)


def _check_trials(
    trials: Mapping[str, int] | None, name: str, groups: list[str]
) -> list[str]:
    """Groups (among ``groups``) with zero trials; error on bad or missing counts."""
    if trials is None:
        return []
    if not isinstance(trials, Mapping):
        raise MetricError(
            f"{name} must be a mapping of group label to trial count, or None; "
            f"got {type(trials).__name__}."
        )
    missing = [g for g in groups if g not in trials]
    if missing:
        raise MetricError(
            f"{name} must give a count for every group with a rate; missing {_names(missing)}. "
            "Pass the trials of the same groups as the rates, or None."
        )
    empty = []
    for g in groups:
        n = trials[g]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise MetricError(
                f"{name}[{g!r}] must be a non-negative integer count; got {n!r}."
            )
        if n == 0:
            empty.append(g)
    return empty


def garbe(
    fmr_rates: Mapping[str, float],
    fnmr_rates: Mapping[str, float],
    *,
    alpha: float = 0.5,
    trials_fmr: Mapping[str, int] | None = None,
    trials_fnmr: Mapping[str, int] | None = None,
) -> Disparity:
    """Gini Aggregation Rate for Biometric Equitability (GARBE) of Howard et al.

    .. math::

        \\mathrm{GARBE} = \\alpha\\, G(\\mathrm{FMR}_1, \\dots, \\mathrm{FMR}_n)
                        + (1 - \\alpha)\\, G(\\mathrm{FNMR}_1, \\dots, \\mathrm{FNMR}_n)

    with :func:`gini` ``G(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``. 0 is
    parity; 1 is the most unequal. A rate whose mean over groups is 0 gives ``G = 0`` (note).
    Groups are unweighted, as in the paper.

    Parameters
    ----------
    fmr_rates, fnmr_rates : Mapping[str, float]
        Group label -> FMR / FNMR in [0, 1]; groups from the intersection (as for
        :func:`fairness_discrepancy_rate`).
    alpha : float, default 0.5
        Weight of the FMR term, in [0, 1].
    trials_fmr, trials_fnmr : Mapping[str, int] or None, default None
        Optional trial counts per group. A group with 0 trials is dropped (note) even if a rate
        was given for it; every used group must have a count. They do not weight the formula.

    Returns
    -------
    Disparity
        ``summary == "garbe"``; ``group_high``/``group_low`` ``None``.

    Raises
    ------
    MetricError
        Bad rates, labels or counts, a trials mapping missing a group, ``alpha`` outside [0, 1].

    References
    ----------
    J. J. Howard, E. J. Laird, Y. B. Sirotin, R. E. Rubin, J. L. Tipton and A. R. Vemury (2022),
    "Evaluating proposed fairness models for face recognition algorithms" (arXiv:2203.05051);
    adopted in ISO/IEC 19795-10.

    Examples
    --------
    >>> d = garbe({"A": 0.0, "B": 0.02}, {"A": 0.1, "B": 0.1})
    >>> d.value   # 0.5 * G([0, 0.02]) + 0.5 * G([0.1, 0.1]) = 0.5 * 1 + 0.5 * 0
    0.5
    """
    a = _check_weight(alpha, "alpha", upper=1.0)
    used, notes = _paired(fmr_rates, fnmr_rates)
    empty = sorted(
        set(_check_trials(trials_fmr, "trials_fmr", used))
        | set(_check_trials(trials_fnmr, "trials_fnmr", used))
    )
    if empty:
        notes.append(_dropped_note(empty, "trials are 0"))
        used = [g for g in used if g not in empty]
    if len(used) < 2:
        return _too_few("garbe", used, *notes)
    fm = np.array([float(fmr_rates[g]) for g in used])
    fn = np.array([float(fnmr_rates[g]) for g in used])
    if fm.mean() == 0.0:
        notes.append("every group has a zero FMR: G(FMR) taken as 0")
    if fn.mean() == 0.0:
        notes.append("every group has a zero FNMR: G(FNMR) taken as 0")
    value = a * gini(fm) + (1.0 - a) * gini(fn)
    return Disparity("garbe", value, None, None, len(used), _join(*notes))
