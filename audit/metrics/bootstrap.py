"""Subject bootstrap: confidence intervals for error rates and disparity summaries.

Comparisons that share a person are not independent (one "lamb" can cause many false matches),
so a binomial interval over comparisons is too narrow. The subject bootstrap resamples *subjects*
with replacement, within each group (a stratified bootstrap: every replicate keeps each group's
number of subjects), and recomputes each group's pooled rate:

.. math::

    \\hat r^{(b)}_g = \\frac{\\sum_{s \\in g} w^{(b)}_s e_s}{\\sum_{s \\in g} w^{(b)}_s n_s}

where ``e_s`` and ``n_s`` are subject s's errors and trials and ``w^{(b)}`` are multinomial
weights (how often each of the group's ``S_g`` subjects was drawn in ``S_g`` draws). With all
weights 1 this is the group's pooled rate. The interval is the percentile interval of the
replicates (``lower``/``higher`` order statistics at ``(1 - confidence) / 2`` and
``(1 + confidence) / 2``, so no interpolation crosses an infinite disparity).

Where it applies
----------------
Each unit of count here belongs to *one* subject: a 1:N search (a probe's search is one person's,
the gallery held fixed), a mated pair, an image's failure to acquire. Impostor comparisons of a 1:1
audit join *two* people and need pair weights ``w_i * w_j`` instead: they use
:mod:`audit.metrics.people`, not this module (counting each impostor pair once for each of its two
subjects, ``w_i + w_j``, gives intervals about half as wide as they should be).

Everything is vectorised: a replicate is a row of a (B × S_g) weight matrix, and the replicate
rates are ``(W @ errors) / (W @ trials)``. The same seed gives the same replicates.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from audit.errors import MetricError

from .uncertainty import _check_confidence

__all__ = [
    "BootstrapResult",
    "DisparityInterval",
    "subject_bootstrap",
    "bootstrap_disparity",
    "max_min_ratio_rows",
    "max_geomean_ratio_rows",
    "VECTORIZED_SUMMARIES",
]

_CHUNK = 128  # replicates per weight matrix (bounds memory at 128 × S_g)


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Replicate rates of a subject bootstrap, per group and threshold.

    ``B`` replicates, ``G`` groups, ``T`` thresholds (or other columns of counts).

    Attributes
    ----------
    rates : ndarray of float64, shape (G, T)
        Point estimates: the group's pooled rate ``sum(errors) / sum(trials)``; ``nan`` without
        trials.
    low, high : ndarray of float64, shape (G, T)
        Percentile interval bounds; ``nan`` where no replicate had trials.
    replicates : ndarray of float64, shape (B, G, T)
        Replicate rates; ``nan`` where a replicate drew only subjects without trials.
    n_undefined : ndarray of int64, shape (G, T)
        Replicates that were ``nan`` (left out of the percentiles).
    subjects : ndarray of int64, shape (G,)
        Subjects per group.
    groups : tuple of str
        Group labels (``group_labels``, or the codes as strings).
    confidence : float
    n_replicates : int
    seed : int
    """

    rates: np.ndarray
    low: np.ndarray
    high: np.ndarray
    replicates: np.ndarray
    n_undefined: np.ndarray
    subjects: np.ndarray
    groups: tuple[str, ...]
    confidence: float
    n_replicates: int
    seed: int


@dataclass(frozen=True, eq=False)
class DisparityInterval:
    """A bootstrap interval for a disparity summary.

    Attributes
    ----------
    summary : str
        Name of the summary (the function's name).
    value : float
        The summary of the point-estimate rates.
    low, high : float
        Percentile bounds over the replicates whose summary is not ``nan`` (may be ``inf``).
    replicates : ndarray of float64, shape (B,)
    n_undefined : int
        Replicates whose summary was ``nan`` (e.g. fewer than 2 groups with trials).
    n_infinite : int
        Replicates whose summary was ``inf`` (a group with a zero rate under a ratio).
    confidence : float
    column : int
        Which threshold (column of the counts) it is for.
    """

    summary: str
    value: float
    low: float
    high: float
    replicates: np.ndarray
    n_undefined: int
    n_infinite: int
    confidence: float
    column: int


# --------------------------------------------------------------------------------------------
# helpers


def _counts(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        a = a.astype(np.int64)
    if a.size and a.dtype.kind not in "iu":
        raise MetricError(f"{name} must hold integer counts; got dtype {a.dtype}. Pass counts, not rates.")
    a = a.astype(np.int64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise MetricError(f"{name} must have shape (S,) or (S, T); got {a.shape}.")
    if a.size and a.min() < 0:
        raise MetricError(f"{name} must be non-negative counts; found {int(a.min())}.")
    return a


def _order_stat(x: np.ndarray, q: float, method: str) -> np.ndarray:
    """``np.nanquantile(x, q, axis=0, method=method)`` for 'lower'/'higher', without warnings
    for all-nan columns (they give nan) and exact with infinite values."""
    s = np.sort(x, axis=0)  # nan last
    m = np.sum(~np.isnan(x), axis=0)
    pos = q * (m - 1)
    idx = np.floor(pos) if method == "lower" else np.ceil(pos)
    idx = np.clip(idx, 0, None).astype(np.int64)
    out = np.take_along_axis(s, idx[None, ...], axis=0)[0]
    return np.where(m > 0, out, np.nan)


def _seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise MetricError(f"seed must be a non-negative integer; got {seed!r}.")
    return int(seed)


# --------------------------------------------------------------------------------------------
# the bootstrap


def subject_bootstrap(
    errors: ArrayLike,
    trials: ArrayLike,
    subject_group: ArrayLike,
    *,
    n_groups: int | None = None,
    group_labels: Sequence[str] | None = None,
    n_replicates: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Percentile intervals for per-group rates by resampling subjects within each group.

    Parameters
    ----------
    errors : array_like of int, shape (S,) or (S, T)
        Each subject's errors (false matches or false non-matches), per threshold.
    trials : array_like of int, shape (S,) or (S, T)
        Each subject's comparisons; (S,) is the same for every threshold.
    subject_group : array_like of int, shape (S,)
        Group code of each subject, 0..G-1.
    n_groups : int, optional
        G, when some groups have no subjects (default: largest code + 1).
    group_labels : sequence of str, optional
        One label per group (used by :func:`bootstrap_disparity`); default the codes.
    n_replicates : int, default 1000
        B.
    seed : int, default 0
        Each group draws from its own stream ``SeedSequence(seed, spawn_key=(g,))``: the same
        seed gives the same replicates, and a group's replicates do not depend on the others.
    confidence : float, default 0.95
        Two-sided coverage of the percentile interval.

    Returns
    -------
    BootstrapResult

    Raises
    ------
    MetricError
        Shapes that do not match, negative counts, ``errors > trials``, bad group codes, seed,
        replicates or confidence.

    Notes
    -----
    For impostor counts each comparison is counted for both its subjects (see the module
    docstring). A group with one subject has a zero-width interval: resampling cannot show
    between-subject variation it does not see; read it with the per-rate (Wilson or
    Clopper–Pearson) interval beside it.

    Examples
    --------
    >>> r = subject_bootstrap([1, 3, 0, 2], [10, 10, 10, 10], [0, 0, 1, 1], n_replicates=200)
    >>> r.rates[:, 0].tolist()
    [0.2, 0.1]
    >>> bool(r.low[0, 0] <= 0.2 <= r.high[0, 0])
    True
    """
    e = _counts(errors, "errors")
    n = _counts(trials, "trials")
    s = e.shape[0]
    if n.shape[0] != s:
        raise MetricError(f"errors and trials must have one row per subject; got {e.shape} and {n.shape}.")
    if n.shape[1] == 1 and e.shape[1] > 1:
        n = np.repeat(n, e.shape[1], axis=1)
    if n.shape != e.shape:
        raise MetricError(f"trials must have shape (S,) or the shape of errors {e.shape}; got {n.shape}.")
    bad = np.argwhere(e > n)
    if bad.size:
        i = tuple(bad[0])
        raise MetricError(f"errors cannot exceed trials; subject {i[0]} column {i[1]} has {int(e[i])} > {int(n[i])}.")
    g_codes = np.asarray(subject_group)
    if g_codes.shape != (s,) or (s and g_codes.dtype.kind not in "iu"):
        raise MetricError(f"subject_group must be integer codes of shape ({s},); got shape {g_codes.shape}, dtype {g_codes.dtype}.")
    g_codes = g_codes.astype(np.int64)
    if s and g_codes.min() < 0:
        raise MetricError("subject_group codes must be >= 0.")
    top = int(g_codes.max()) + 1 if s else 0
    g = top if n_groups is None else int(n_groups)
    if g < top or g < 1:
        raise MetricError(f"n_groups must be >= 1 and above every group code (max {top - 1}); got {n_groups!r}.")
    labels = tuple(str(x) for x in (group_labels if group_labels is not None else range(g)))
    if len(labels) != g:
        raise MetricError(f"group_labels must have one label per group ({g}); got {len(labels)}.")
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, numbers.Integral) or n_replicates < 1:
        raise MetricError(f"n_replicates must be a positive integer; got {n_replicates!r}.")
    conf = _check_confidence(confidence)
    seed = _seed(seed)
    b, t = int(n_replicates), e.shape[1]

    rates = np.full((g, t), np.nan)
    reps = np.full((b, g, t), np.nan)
    sizes = np.bincount(g_codes, minlength=g).astype(np.int64)
    ef, nf = e.astype(np.float64), n.astype(np.float64)
    for grp in range(g):
        members = np.flatnonzero(g_codes == grp)
        m = members.size
        if m == 0:
            continue
        eg, ng = ef[members], nf[members]
        tot_e, tot_n = eg.sum(axis=0), ng.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[grp] = np.where(tot_n > 0, tot_e / np.where(tot_n > 0, tot_n, 1), np.nan)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(grp,)))
        for c0 in range(0, b, _CHUNK):
            c = min(_CHUNK, b - c0)
            draws = rng.integers(0, m, size=(c, m))
            w = np.bincount((draws + (np.arange(c) * m)[:, None]).ravel(), minlength=c * m).reshape(c, m)
            w = w.astype(np.float64)
            num, den = w @ eg, w @ ng  # exact: integer sums far below 2**53
            with np.errstate(invalid="ignore", divide="ignore"):
                reps[c0:c0 + c, grp] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    alpha = 1.0 - conf
    low = _order_stat(reps, alpha / 2.0, "lower")
    high = _order_stat(reps, 1.0 - alpha / 2.0, "higher")
    for arr in (rates, low, high, reps):
        arr.setflags(write=False)
    n_undef = np.isnan(reps).sum(axis=0).astype(np.int64)
    return BootstrapResult(
        rates=rates, low=low, high=high, replicates=reps, n_undefined=n_undef, subjects=sizes,
        groups=labels, confidence=conf, n_replicates=b, seed=seed,
    )


# --------------------------------------------------------------------------------------------
# disparity summaries over replicates


def max_min_ratio_rows(rates: np.ndarray) -> np.ndarray:
    """:func:`audit.metrics.disparity.max_min_ratio` for every row of a (B, G) array at once.

    ``nan`` rates (groups without trials) are dropped; fewer than 2 left gives ``nan``; all zero
    gives 1.0 (parity); a zero minimum with a non-zero maximum gives ``inf``.
    """
    x = np.asarray(rates, dtype=np.float64)
    ok = ~np.isnan(x)
    n = ok.sum(axis=1)
    hi = np.where(ok, x, -np.inf).max(axis=1, initial=-np.inf)
    lo = np.where(ok, x, np.inf).min(axis=1, initial=np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0), np.inf)
    out = np.where(hi == 0.0, 1.0, out)
    return np.where(n >= 2, out, np.nan)


def max_geomean_ratio_rows(rates: np.ndarray) -> np.ndarray:
    """:func:`audit.metrics.disparity.max_geomean_ratio` for every row of a (B, G) array at once.

    Conventions as :func:`max_min_ratio_rows` (any zero rate makes the geometric mean 0).
    """
    x = np.asarray(rates, dtype=np.float64)
    ok = ~np.isnan(x)
    n = ok.sum(axis=1)
    hi = np.where(ok, x, -np.inf).max(axis=1, initial=-np.inf)
    lo = np.where(ok, x, np.inf).min(axis=1, initial=np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(ok & (x > 0), np.log(np.where(x > 0, x, 1.0)), 0.0)
        geo = np.exp(logs.sum(axis=1) / np.maximum(n, 1))
        out = np.where(lo > 0, hi / geo, np.inf)
    out = np.where(hi == 0.0, 1.0, out)
    return np.where(n >= 2, out, np.nan)


#: Vectorised one-rate summaries by name, for :func:`bootstrap_disparity`.
VECTORIZED_SUMMARIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max_min_ratio": max_min_ratio_rows,
    "max_geomean_ratio": max_geomean_ratio_rows,
}


def _value(x) -> float:
    v = getattr(x, "value", x)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise MetricError(
            f"summary_fn must return a number or an object with a numeric .value (a Disparity); got {x!r}."
        ) from None


def bootstrap_disparity(
    result: BootstrapResult,
    summary_fn: str | Callable[[Mapping[str, float]], object],
    *,
    column: int = 0,
) -> DisparityInterval:
    """A bootstrap interval for a disparity summary of one column's group rates.

    The summary is applied to the point-estimate rates (``value``) and to every replicate's
    group rates (groups resampled independently, as in :func:`subject_bootstrap`).

    Parameters
    ----------
    result : BootstrapResult
    summary_fn : str or callable
        A name in :data:`VECTORIZED_SUMMARIES` (``"max_min_ratio"``, ``"max_geomean_ratio"``:
        computed on all replicates at once), or a function of a ``{group label: rate}`` mapping
        returning a number or a :class:`~audit.metrics.disparity.Disparity` (e.g.
        :func:`~audit.metrics.disparity.max_min_ratio`), called once per replicate. Groups
        without trials have rate ``nan`` and are dropped by the summaries.
    column : int, default 0
        Which threshold.

    Returns
    -------
    DisparityInterval

    Examples
    --------
    >>> from audit.metrics.disparity import max_min_ratio
    >>> r = subject_bootstrap([1, 3, 4, 6], [100] * 4, [0, 0, 1, 1], n_replicates=100, group_labels=["A", "B"])
    >>> d = bootstrap_disparity(r, max_min_ratio)
    >>> d.value, d.summary
    (2.5, 'max_min_ratio')
    >>> d.value == bootstrap_disparity(r, "max_min_ratio").value
    True
    """
    if not isinstance(result, BootstrapResult):
        raise MetricError(f"result must be a BootstrapResult; got {type(result).__name__}.")
    t = result.rates.shape[1]
    if isinstance(column, bool) or not isinstance(column, numbers.Integral) or not (0 <= column < t):
        raise MetricError(f"column must be an integer in [0, {t}); got {column!r}.")
    point = result.rates[:, column]
    reps = result.replicates[:, :, column]
    if isinstance(summary_fn, str):
        if summary_fn not in VECTORIZED_SUMMARIES:
            raise MetricError(f"summary_fn name must be one of {sorted(VECTORIZED_SUMMARIES)}; got {summary_fn!r}.")
        fn = VECTORIZED_SUMMARIES[summary_fn]
        name = summary_fn
        value = float(fn(point[None, :])[0])
        values = np.asarray(fn(reps), dtype=np.float64)
    elif callable(summary_fn):
        name = getattr(summary_fn, "__name__", "summary")
        labels = result.groups

        def apply(row: np.ndarray) -> float:
            return _value(summary_fn({lab: float(x) for lab, x in zip(labels, row)}))

        value = apply(point)
        values = np.array([apply(row) for row in reps], dtype=np.float64)
    else:
        raise MetricError(f"summary_fn must be a summary name or a callable; got {summary_fn!r}.")
    alpha = 1.0 - result.confidence
    low = float(_order_stat(values[:, None], alpha / 2.0, "lower")[0])
    high = float(_order_stat(values[:, None], 1.0 - alpha / 2.0, "higher")[0])
    values.setflags(write=False)
    return DisparityInterval(
        summary=name, value=value, low=low, high=high, replicates=values,
        n_undefined=int(np.isnan(values).sum()), n_infinite=int(np.isinf(values).sum()),
        confidence=result.confidence, column=int(column),
    )
