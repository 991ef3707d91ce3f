"""Disparity summaries: one number for how much error rates differ across the groups of a grouping.

Pure functions over ``Mapping[str, float]`` (group label -> rate, a fraction in [0, 1]), all at
the same threshold. Each returns a :class:`Disparity`.

Shared rules
------------
- A group whose rate is ``nan`` (no trials) is dropped and named in ``note``. Rates must
  otherwise be finite and within [0, 1].
- Fewer than 2 usable groups give ``value = nan`` and a note saying why.
- ``group_high`` / ``group_low`` name the groups with the largest / smallest rate, ties broken
  by the first label in sorted order; ``None`` where the summary is not a ratio of two groups'
  rates (or fewer than 2 groups are used).
- Results do not depend on the order of the mapping: groups are always processed sorted by label.

Summaries: :func:`max_min_ratio`, :func:`max_geomean_ratio` (NIST FRVT Part 3),
:func:`fairness_discrepancy_rate` (de Freitas Pereira & Marcel), :func:`inequity_rate`,
:func:`garbe` (Howard et al.), and the underlying :func:`gini`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from audit.errors import MetricError

__all__ = [
    "Disparity",
    "max_min_ratio",
    "max_geomean_ratio",
    "summarize",
]


@dataclass(frozen=True)
class Disparity:
    """One disparity summary over the groups of one grouping.

    Attributes
    ----------
    summary : str
        Which summary: ``"max_min_ratio"``, ``"max_geomean_ratio"``,
        ``"fairness_discrepancy_rate"``, ``"inequity_rate"`` or ``"garbe"``.
    value : float
        The summary's value; ``nan`` with fewer than 2 usable groups, ``inf`` for a ratio over a
        zero rate.
    group_high, group_low : str or None
        The groups with the largest and smallest rate (first in sorted order on ties); ``None``
        where not applicable.
    groups_used : int
        Number of groups that entered the formula.
    note : str
        Why groups were dropped, why a value is ``nan``/``inf``/a parity convention; ``""`` when
        there is nothing to say.
    """

    summary: str
    value: float
    group_high: str | None
    group_low: str | None
    groups_used: int
    note: str


# --------------------------------------------------------------------------------------------
# helpers


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _names(groups: list[str]) -> str:
    return ", ".join(repr(g) for g in groups)


def _clean(rates: Mapping[str, float], name: str) -> tuple[dict[str, float], list[str]]:
    """Validate a group -> rate mapping; return (usable rates sorted by group, groups with nan)."""
    if not isinstance(rates, Mapping):
        raise MetricError(
            f"{name} must be a mapping of group label to rate; got {type(rates).__name__}. "
            "Pass e.g. {'female': 0.01, 'male': 0.02}."
        )
    used: dict[str, float] = {}
    dropped: list[str] = []
    for group in sorted(rates, key=_group_key(name)):
        raw = rates[group]
        try:
            r = float(raw)
        except (TypeError, ValueError):
            raise MetricError(
                f"{name}[{group!r}] must be a rate (a number in [0, 1]); got {raw!r}."
            ) from None
        if math.isnan(r):
            dropped.append(group)
        elif not (0.0 <= r <= 1.0):
            raise MetricError(
                f"{name}[{group!r}] must be a rate in [0, 1] (or nan for a group without "
                f"trials); got {raw!r}. Pass fractions, not percentages."
            )
        else:
            used[group] = r
    return used, dropped


def _group_key(name: str):
    def key(group: object) -> str:
        if not isinstance(group, str):
            raise MetricError(
                f"{name} must be keyed by group label (str); got key {group!r} "
                f"({type(group).__name__}). Convert labels with str()."
            )
        return group

    return key


def _dropped_note(dropped: list[str], what: str = "rate is nan (no trials)") -> str:
    if not dropped:
        return ""
    return f"dropped {_plural(len(dropped), 'group')} whose {what}: {_names(dropped)}"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _too_few(summary: str, used: list[str], *notes: str) -> Disparity:
    found = f"got {len(used)}" + (f" ({_names(used)})" if used else "")
    return Disparity(
        summary=summary,
        value=math.nan,
        group_high=None,
        group_low=None,
        groups_used=len(used),
        note=_join(*notes, f"needs at least 2 groups with a rate; {found}"),
    )


def _argmax(rates: dict[str, float]) -> str:
    """Group with the largest rate; ties: first in sorted order (``rates`` is sorted)."""
    best = max(rates.values())
    return next(g for g, r in rates.items() if r == best)


def _argmin(rates: dict[str, float]) -> str:
    best = min(rates.values())
    return next(g for g, r in rates.items() if r == best)


def _ratio(hi: float, lo: float, what: str, low_group: str) -> tuple[float, str]:
    """``hi / lo`` with the conventions for zero rates; returns (value, note)."""
    if hi == 0.0:
        return 1.0, f"all groups have a zero {what}: taken as parity (ratio 1)"
    if lo == 0.0:
        return math.inf, f"a group has a zero {what} ({low_group!r}): the ratio is infinite"
    return hi / lo, ""


def _check_weight(value: float, name: str, *, upper: float | None) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise MetricError(f"{name} must be a number; got {value!r}.") from None
    ok = math.isfinite(w) and w >= 0.0 and (upper is None or w <= upper)
    if not ok:
        rng = f"[0, {upper:g}]" if upper is not None else "a finite number >= 0"
        raise MetricError(
            f"{name} must be in {rng}; got {value!r}. "
            + ("It weighs FMR against FNMR; 0.5 weighs them equally." if upper else "")
        )
    return w


def _paired(
    fmr_rates: Mapping[str, float], fnmr_rates: Mapping[str, float]
) -> tuple[list[str], list[str]]:
    """Groups usable for both rates (sorted), and the notes on the ones dropped."""
    fm, fm_nan = _clean(fmr_rates, "fmr_rates")
    fn, fn_nan = _clean(fnmr_rates, "fnmr_rates")
    all_fm = set(fm) | set(fm_nan)
    all_fn = set(fn) | set(fn_nan)
    only_fm = sorted(all_fm - all_fn)
    only_fn = sorted(all_fn - all_fm)
    used = sorted(set(fm) & set(fn))
    nan_groups = sorted((set(fm_nan) | set(fn_nan)) & all_fm & all_fn)
    notes = [
        _dropped_note(only_fm, "FNMR is missing"),
        _dropped_note(only_fn, "FMR is missing"),
        _dropped_note(nan_groups, "FMR or FNMR is nan (no trials)"),
    ]
    return used, notes


# --------------------------------------------------------------------------------------------
# one-rate summaries


def max_min_ratio(rates: Mapping[str, float]) -> Disparity:
    """Ratio of the largest to the smallest group rate.

    .. math:: \\text{value} = \\frac{\\max_g r_g}{\\min_g r_g}

    1 means parity; larger is worse. Conventions: if every rate is 0 the value is 1.0 (parity)
    and the note says so; if the smallest rate is 0 and the largest is not, the value is ``inf``
    and the note names "a group has a zero rate". Reported by NIST FRVT Part 3 (NISTIR 8280) as
    the range of FMR across demographic groups.

    Parameters
    ----------
    rates : Mapping[str, float]
        Group label -> rate in [0, 1] (``nan`` for a group without trials: dropped).

    Returns
    -------
    Disparity
        ``summary == "max_min_ratio"``; ``group_high``/``group_low`` the groups with the
        largest/smallest rate.

    Raises
    ------
    MetricError
        Non-string group labels, or a rate that is not a number in [0, 1] or nan.

    Examples
    --------
    >>> d = max_min_ratio({"A": 0.01, "B": 0.04, "C": 0.02})
    >>> d.value, d.group_high, d.group_low
    (4.0, 'B', 'A')
    """
    used, dropped = _clean(rates, "rates")
    note = _dropped_note(dropped)
    if len(used) < 2:
        return _too_few("max_min_ratio", list(used), note)
    high, low = _argmax(used), _argmin(used)
    value, zero_note = _ratio(used[high], used[low], "rate", low)
    return Disparity("max_min_ratio", value, high, low, len(used), _join(note, zero_note))


def max_geomean_ratio(rates: Mapping[str, float]) -> Disparity:
    """Ratio of the largest group rate to the geometric mean of all group rates.

    .. math:: \\text{value} = \\frac{\\max_g r_g}{\\left(\\prod_{g=1}^{G} r_g\\right)^{1/G}}

    A NIST-style summary of demographic differentials (FRVT Part 3, NISTIR 8280; developed in
    FRVT Part 8, "Summarizing demographic differentials", 2022 draft): how much worse the worst
    group is than a "typical" group. 1 means parity. Conventions: any zero rate makes the
    geometric mean 0, so the value is ``inf`` (note) unless every rate is 0, which gives 1.0
    (parity, note).

    Parameters
    ----------
    rates : Mapping[str, float]
        Group label -> rate in [0, 1] (``nan`` for a group without trials: dropped).

    Returns
    -------
    Disparity
        ``summary == "max_geomean_ratio"``; ``group_high`` the group with the largest rate,
        ``group_low`` ``None`` (the denominator is not one group).

    Raises
    ------
    MetricError
        As for :func:`max_min_ratio`.

    Examples
    --------
    >>> d = max_geomean_ratio({"A": 0.01, "B": 0.04})   # geomean sqrt(0.01 * 0.04) = 0.02
    >>> round(d.value, 12), d.group_high
    (2.0, 'B')
    """
    used, dropped = _clean(rates, "rates")
    note = _dropped_note(dropped)
    if len(used) < 2:
        return _too_few("max_geomean_ratio", list(used), note)
    high, low = _argmax(used), _argmin(used)
    values = np.fromiter(used.values(), dtype=np.float64)
    if used[high] == 0.0:
        value, zero_note = 1.0, "all groups have a zero rate: taken as parity (ratio 1)"
    elif used[low] == 0.0:
        value = math.inf
        zero_note = (
            f"a group has a zero rate ({low!r}): the geometric mean is 0 and the ratio is infinite"
        )
    else:
        geomean = float(np.exp(np.mean(np.log(values))))
        value, zero_note = used[high] / geomean, ""
    return Disparity("max_geomean_ratio", value, high, None, len(used), _join(note, zero_note))


def summarize(rates: Mapping[str, float]) -> list[Disparity]:
    """The one-rate summaries of one grouping's rates, in report order.

    Parameters
    ----------
    rates : Mapping[str, float]
        Group label -> rate (FMR or FNMR) in [0, 1]; nan for groups without trials.

    Returns
    -------
    list of Disparity
        ``[max_min_ratio(rates), max_geomean_ratio(rates)]``.

    Examples
    --------
    >>> [d.summary for d in summarize({"A": 0.01, "B": 0.04})]
    ['max_min_ratio', 'max_geomean_ratio']
    """
    return [max_min_ratio(rates), max_geomean_ratio(rates)]
