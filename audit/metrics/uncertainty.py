"""Confidence intervals for error rates, and the rule of three.

Pure functions over counts: no I/O, no pandas. Every rate face-audit reports carries an interval
from here (Wilson by default, Clopper–Pearson on request). Bootstrap intervals over subjects live
with the accumulators that hold per-subject counts; this module covers the single-rate case.

Conventions
-----------
- ``errors`` is the number of errors (false matches or false non-matches), ``trials`` the number
  of comparisons they were counted over; the rate is ``errors / trials``.
- ``confidence`` is the two-sided coverage, strictly between 0 and 1 (default 0.95).
- ``trials == 0`` gives an interval of ``nan`` bounds: no data, no interval.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import stats

from audit.errors import MetricError

__all__ = [
    "Interval",
    "IntervalArrays",
    "wilson_interval",
    "wilson_interval_arrays",
    "clopper_pearson_interval",
    "clopper_pearson_interval_arrays",
    "interval_arrays",
    "insufficient_impostors",
]

#: Relative tolerance used when a decimal target such as ``1e-6`` is multiplied by a count, so that
#: the binary rounding of the target (``1e-6`` is stored as 9.99999999999999955e-07) cannot move a
#: count across an integer boundary. Shared with :mod:`audit.metrics.rates`.
_REL_TOL = 1e-12


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval for one proportion.

    Attributes
    ----------
    low, high : float
        The bounds, within [0, 1]; both ``nan`` when there were no trials.
    method : str
        ``"wilson"`` or ``"clopper-pearson"``.
    confidence : float
        The two-sided coverage, e.g. 0.95.
    """

    low: float
    high: float
    method: str
    confidence: float


@dataclass(frozen=True, eq=False)
class IntervalArrays:
    """Confidence intervals for many proportions at once (one per group, say).

    Attributes
    ----------
    low, high : ndarray of float64, shape (m,) or the shape of the inputs
        The bounds, element by element; ``nan`` where there were no trials. Read-only.
    method : str
        ``"wilson"`` or ``"clopper-pearson"``.
    confidence : float
        The two-sided coverage, e.g. 0.95.
    """

    low: np.ndarray
    high: np.ndarray
    method: str
    confidence: float


def _check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise MetricError(
            f"confidence must be a number strictly between 0 and 1; got {confidence!r}. "
            "Pass e.g. confidence=0.95."
        ) from None
    if not (0.0 < c < 1.0):
        raise MetricError(
            f"confidence must be strictly between 0 and 1; got {confidence!r}. "
            "Pass e.g. confidence=0.95 for a 95% interval (not 95)."
        )
    return c


def _check_counts(errors: int, trials: int) -> tuple[int, int]:
    for name, v in (("errors", errors), ("trials", trials)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise MetricError(
                f"{name} must be a non-negative integer count; got {v!r} ({type(v).__name__}). "
                "Pass counts, not rates; convert with int() if they are whole floats."
            )
    e, n = int(errors), int(trials)
    if n < 0 or e < 0:
        raise MetricError(
            f"counts must be non-negative; got errors={e}, trials={n}. Check how they were counted."
        )
    if e > n:
        raise MetricError(
            f"errors cannot exceed trials; got errors={e} > trials={n}. "
            "Check that the arguments are not swapped."
        )
    return e, n


def _z(confidence: float) -> float:
    """The standard normal quantile for a two-sided interval of this coverage."""
    return float(stats.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def wilson_interval(errors: int, trials: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval for the proportion ``errors / trials``.

    With ``p = errors / trials``, ``n = trials`` and ``z`` the ``1 - (1 - confidence) / 2``
    quantile of the standard normal,

    .. math::

        \\text{centre} = \\frac{p + z^2 / (2n)}{1 + z^2 / n}, \\qquad
        \\text{half} = \\frac{z}{1 + z^2 / n} \\sqrt{\\frac{p (1 - p)}{n} + \\frac{z^2}{4 n^2}}

    and the interval is ``[centre - half, centre + half]`` (clipped to [0, 1]; exactly 0 when
    ``errors == 0`` and exactly 1 when ``errors == trials``). Unlike the normal (Wald) interval it
    stays informative at ``errors == 0``, which is the common case for low FMRs.

    Parameters
    ----------
    errors : int
        Number of errors, ``0 <= errors <= trials``.
    trials : int
        Number of trials (comparisons), ``>= 0``.
    confidence : float, default 0.95
        Two-sided coverage, strictly between 0 and 1.

    Returns
    -------
    Interval
        ``method == "wilson"``; ``low`` and ``high`` are ``nan`` when ``trials == 0``.

    Raises
    ------
    MetricError
        Counts that are not non-negative integers, ``errors > trials``, or ``confidence`` outside
        (0, 1).

    References
    ----------
    E. B. Wilson (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22(158): 209-212.

    Examples
    --------
    >>> ci = wilson_interval(2, 10)
    >>> round(ci.low, 4), round(ci.high, 4)
    (0.0567, 0.5098)
    """
    c = _check_confidence(confidence)
    e, n = _check_counts(errors, trials)
    low, high = _wilson(np.array([e], dtype=np.float64), np.array([n], dtype=np.float64), c)
    return Interval(low=float(low[0]), high=float(high[0]), method="wilson", confidence=c)


def _wilson(e: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson bounds on float arrays of counts; ``nan`` where ``n == 0``."""
    z = _z(confidence)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        p = e / n
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2.0 * n)) / denom
        half = (z / denom) * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
        low = np.clip(centre - half, 0.0, 1.0)
        high = np.clip(centre + half, 0.0, 1.0)
    empty = n == 0
    low = np.where(e == 0, 0.0, low)
    high = np.where(e == n, 1.0, high)
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    return low, high


def wilson_interval_arrays(
    errors: np.ndarray, trials: np.ndarray, *, confidence: float = 0.95
) -> IntervalArrays:
    """Wilson score intervals for many proportions at once, element by element.

    The same formula as :func:`wilson_interval`, vectorised; use it for all groups of a grouping in
    one call.

    Parameters
    ----------
    errors : array_like of int, shape (m,) (any shape works)
        Error counts, ``0 <= errors <= trials`` element-wise.
    trials : array_like of int, same shape as ``errors``
        Trial counts, ``>= 0``.
    confidence : float, default 0.95
        Two-sided coverage, strictly between 0 and 1.

    Returns
    -------
    IntervalArrays
        ``low`` and ``high`` of the inputs' shape (read-only float64 arrays), ``nan`` where
        ``trials == 0``; ``method == "wilson"``.

    Raises
    ------
    MetricError
        Shapes that differ, non-integer or negative counts, ``errors > trials`` anywhere, or
        ``confidence`` outside (0, 1).

    Examples
    --------
    >>> ci = wilson_interval_arrays([2, 0], [10, 0])
    >>> [round(float(x), 4) for x in ci.low], [round(float(x), 4) for x in ci.high]
    ([0.0567, nan], [0.5098, nan])
    """
    c = _check_confidence(confidence)
    e, n = _check_count_arrays(errors, trials)
    low, high = _wilson(e.astype(np.float64), n.astype(np.float64), c)
    low.setflags(write=False)
    high.setflags(write=False)
    return IntervalArrays(low=low, high=high, method="wilson", confidence=c)


def _check_count_arrays(errors: object, trials: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate two arrays of counts (same shape, ``0 <= errors <= trials``); int64 copies."""
    e = _as_count_array(errors, "errors")
    n = _as_count_array(trials, "trials")
    if e.shape != n.shape:
        raise MetricError(
            f"errors and trials must have the same shape; got {e.shape} and {n.shape}. "
            "Pass one error count and one trial count per proportion."
        )
    bad = np.flatnonzero((e < 0) | (n < 0) | (e > n))
    if bad.size:
        i = int(bad[0])
        raise MetricError(
            f"every count must satisfy 0 <= errors <= trials; {bad.size} do not, the first at "
            f"flat index {i} (errors={int(e.flat[i])}, trials={int(n.flat[i])}). "
            "Check that the arguments are not swapped."
        )
    return e, n


def _as_count_array(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise MetricError(
        f"{name} must be an array of integer counts; got dtype {a.dtype}"
        + (" with non-integer or non-finite values" if a.dtype.kind == "f" else "")
        + ". Pass counts, not rates."
    )


def clopper_pearson_interval(errors: int, trials: int, *, confidence: float = 0.95) -> Interval:
    """Clopper–Pearson ("exact") interval for the proportion ``errors / trials``.

    With ``a = 1 - confidence``, ``e = errors``, ``n = trials`` and ``B(q; a, b)`` the ``q``
    quantile of the Beta(a, b) distribution,

    .. math::

        \\text{low} = B(a/2;\\ e,\\ n - e + 1), \\qquad
        \\text{high} = B(1 - a/2;\\ e + 1,\\ n - e)

    with ``low = 0`` when ``e == 0`` and ``high = 1`` when ``e == n``. It guarantees at least the
    nominal coverage and is therefore wider than Wilson's interval.

    Parameters
    ----------
    errors : int
        Number of errors, ``0 <= errors <= trials``.
    trials : int
        Number of trials (comparisons), ``>= 0``.
    confidence : float, default 0.95
        Two-sided coverage, strictly between 0 and 1.

    Returns
    -------
    Interval
        ``method == "clopper-pearson"``; ``low`` and ``high`` are ``nan`` when ``trials == 0``.

    Raises
    ------
    MetricError
        As for :func:`wilson_interval`.

    References
    ----------
    C. J. Clopper and E. S. Pearson (1934), "The use of confidence or fiducial limits illustrated
    in the case of the binomial", Biometrika 26(4): 404-413.

    Examples
    --------
    >>> ci = clopper_pearson_interval(0, 10)
    >>> ci.low, round(ci.high, 4)
    (0.0, 0.3085)
    """
    c = _check_confidence(confidence)
    e, n = _check_counts(errors, trials)
    if n == 0:
        return Interval(low=math.nan, high=math.nan, method="clopper-pearson", confidence=c)
    a = 1.0 - c
    low = 0.0 if e == 0 else float(stats.beta.ppf(a / 2.0, e, n - e + 1))
    high = 1.0 if e == n else float(stats.beta.ppf(1.0 - a / 2.0, e + 1, n - e))
    return Interval(low=low, high=high, method="clopper-pearson", confidence=c)


def _clopper_pearson(e: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson bounds on float arrays of counts; ``nan`` where ``n == 0``."""
    a = 1.0 - confidence
    # Beta(0, .) is undefined: where e == 0 (or e == n) the bound is fixed below, so any valid
    # shape parameter does for the quantile computed there
    low = stats.beta.ppf(a / 2.0, np.maximum(e, 1.0), n - e + 1.0)
    high = stats.beta.ppf(1.0 - a / 2.0, e + 1.0, np.maximum(n - e, 1.0))
    empty = n == 0
    low = np.where(e == 0, 0.0, low)
    high = np.where(e == n, 1.0, high)
    low = np.where(empty, np.nan, low).astype(np.float64)
    high = np.where(empty, np.nan, high).astype(np.float64)
    return low, high


def clopper_pearson_interval_arrays(
    errors: np.ndarray, trials: np.ndarray, *, confidence: float = 0.95
) -> IntervalArrays:
    """Clopper–Pearson ("exact") intervals for many proportions at once, element by element.

    The same bounds as :func:`clopper_pearson_interval`, vectorised: ``low = 0`` where
    ``errors == 0``, ``high = 1`` where ``errors == trials``, both ``nan`` where ``trials == 0``.

    Parameters
    ----------
    errors : array_like of int, shape (m,) (any shape works)
        Error counts, ``0 <= errors <= trials`` element-wise.
    trials : array_like of int, same shape as ``errors``
        Trial counts, ``>= 0``.
    confidence : float, default 0.95
        Two-sided coverage, strictly between 0 and 1.

    Returns
    -------
    IntervalArrays
        ``low`` and ``high`` of the inputs' shape (read-only float64 arrays), ``nan`` where
        ``trials == 0``; ``method == "clopper-pearson"``.

    Raises
    ------
    MetricError
        As for :func:`wilson_interval_arrays`.

    Examples
    --------
    >>> ci = clopper_pearson_interval_arrays([0, 10, 0], [10, 10, 0])
    >>> [round(float(x), 4) for x in ci.low], [round(float(x), 4) for x in ci.high]
    ([0.0, 0.6915, nan], [0.3085, 1.0, nan])
    """
    c = _check_confidence(confidence)
    e, n = _check_count_arrays(errors, trials)
    low, high = _clopper_pearson(e.astype(np.float64), n.astype(np.float64), c)
    low.setflags(write=False)
    high.setflags(write=False)
    return IntervalArrays(low=low, high=high, method="clopper-pearson", confidence=c)


#: Interval method name -> the function computing it for arrays of counts.
_ARRAY_METHODS = {"wilson": wilson_interval_arrays, "clopper-pearson": clopper_pearson_interval_arrays}


def check_interval_method(method: object, name: str = "method") -> str:
    """``method`` if it names a single-rate interval method (``"wilson"``, ``"clopper-pearson"``);
    otherwise a MetricError naming the parameter ``name``."""
    if not isinstance(method, str) or method not in _ARRAY_METHODS:
        raise MetricError(
            f"{name} must be one of {tuple(_ARRAY_METHODS)}; got {method!r}. Use 'wilson' (the default) "
            "or 'clopper-pearson' for the exact, wider interval."
        )
    return method


def interval_arrays(
    errors: np.ndarray, trials: np.ndarray, *, method: str = "wilson", confidence: float = 0.95
) -> IntervalArrays:
    """Confidence intervals for many proportions by the named method.

    :func:`wilson_interval_arrays` for ``method="wilson"``, :func:`clopper_pearson_interval_arrays`
    for ``method="clopper-pearson"``; for code that takes the method as a setting.

    Parameters
    ----------
    errors, trials : array_like of int, same shape
        As for :func:`wilson_interval_arrays`.
    method : {"wilson", "clopper-pearson"}, default "wilson"
    confidence : float, default 0.95

    Returns
    -------
    IntervalArrays
        With ``method`` as given.

    Raises
    ------
    MetricError
        An unknown ``method``, or as for :func:`wilson_interval_arrays`.

    Examples
    --------
    >>> interval_arrays([0], [10], method="clopper-pearson").method
    'clopper-pearson'
    """
    return _ARRAY_METHODS[check_interval_method(method)](errors, trials, confidence=confidence)


def insufficient_impostors(impostors: int, target_fmr: float) -> bool:
    """Whether there are too few impostor comparisons to measure an FMR as low as the target.

    The "rule of three": with ``n`` comparisons and no errors, the 95% upper bound on the rate is
    about ``3 / n``. An FMR of ``target_fmr`` can therefore only be told apart from zero with at
    least ``3 / target_fmr`` impostor comparisons. Returns ``True`` when
    ``impostors < 3 / target_fmr`` (evaluated as ``impostors * target_fmr < 3 * (1 - 1e-12)`` so
    that decimal targets such as ``1e-6`` behave as written: 3,000,000 impostors suffice).

    Parameters
    ----------
    impostors : int
        Number of impostor comparisons, ``>= 0``.
    target_fmr : float
        Target FMR, in (0, 1].

    Returns
    -------
    bool
        ``True`` when the count is insufficient (the result should be flagged, not hidden).

    Raises
    ------
    MetricError
        A negative or non-integer count, or a target outside (0, 1].

    References
    ----------
    B. D. Jovanovic and P. S. Levy (1997), "A look at the rule of three", The American
    Statistician 51(2): 137-139; ISO/IEC 19795-1.

    Examples
    --------
    >>> insufficient_impostors(2999, 1e-3), insufficient_impostors(3000, 1e-3)
    (True, False)
    """
    if isinstance(impostors, bool) or not isinstance(impostors, numbers.Integral) or impostors < 0:
        raise MetricError(
            f"impostors must be a non-negative integer count; got {impostors!r}. "
            "Pass the number of impostor comparisons."
        )
    t = _check_target_fmr(target_fmr)
    return bool(int(impostors) * t < 3.0 * (1.0 - _REL_TOL))


def _check_target_fmr(target_fmr: float, name: str = "target_fmr") -> float:
    """Validate a target FMR: a real number in (0, 1]. Returns it as a float."""
    try:
        t = float(target_fmr)
    except (TypeError, ValueError):
        raise MetricError(
            f"{name} must be a number in (0, 1]; got {target_fmr!r}. Pass e.g. 1e-3."
        ) from None
    if not (0.0 < t <= 1.0):
        raise MetricError(
            f"{name} must be in (0, 1]; got {target_fmr!r}. "
            "Pass a fraction such as 1e-3 (not a percentage, not 0)."
        )
    return t
