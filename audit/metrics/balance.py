"""Covariate balance: do the groups differ in a covariate's composition?

Two measures, both of a table of counts (groups x covariate strata):

- **standardised difference** of each stratum's share between a group and the reference group
  (Austin 2009; Yang & Dalton 2012 for categories):

  .. math:: d = \\frac{p_1 - p_0}{\\sqrt{(p_1 (1 - p_1) + p_0 (1 - p_0)) / 2}}

  A group is **materially different** from the reference when ``|d|`` of some stratum is at least
  :data:`MATERIAL_DIFFERENCE` (0.25: Rubin 2001 and Stuart 2010's rule of thumb for an imbalance
  that regression adjustment no longer removes reliably; 0.1 is the stricter matching criterion, too
  strict for groups of a few dozen people, whose chance imbalances routinely exceed it).
- **Cramér's V** of the whole table, ``sqrt(chi2 / (n (min(G, K) - 1)))``: one number per grouping
  and covariate, 0 for identical compositions, 1 when the covariate determines the group.

Counts are of people (each person's stratum is that of their first image), the unit the
adjustment works with. A group of fewer than :data:`MIN_PEOPLE` people is never called materially
different: one person's band is "100% of the group" whatever the population looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["standardised_difference", "cramers_v", "Balance", "covariate_balance", "MATERIAL_DIFFERENCE", "MIN_PEOPLE"]

#: ``|d|`` at or above which a group's covariate composition differs materially from the reference's.
MATERIAL_DIFFERENCE = 0.25
#: Groups (and references) with fewer people than this get a standardised difference but no flag.
MIN_PEOPLE = 5


def standardised_difference(p1, p0) -> np.ndarray:
    """Standardised difference of proportions ``(p1 - p0) / sqrt((p1 q1 + p0 q0) / 2)``; 0 where
    both are 0 or both are 1.

    >>> round(float(standardised_difference(0.57, 0.30)), 3)
    0.566
    """
    p1, p0 = np.asarray(p1, np.float64), np.asarray(p0, np.float64)
    v = (p1 * (1 - p1) + p0 * (1 - p0)) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(v > 0, (p1 - p0) / np.sqrt(np.where(v > 0, v, 1)), np.where(p1 == p0, 0.0, np.sign(p1 - p0) * np.inf))


def cramers_v(table) -> float:
    """Cramér's V of a contingency table (rows and columns without counts are left out).

    >>> round(cramers_v([[10, 0], [0, 10]]), 3), round(cramers_v([[5, 5], [5, 5]]), 3)
    (1.0, 0.0)
    """
    t = np.asarray(table, np.float64)
    t = t[t.sum(1) > 0][:, t.sum(0) > 0]
    if t.size == 0 or min(t.shape) < 2:
        return 0.0
    n = t.sum()
    expected = np.outer(t.sum(1), t.sum(0)) / n
    chi2 = float(np.sum((t - expected) ** 2 / expected))
    return float(np.sqrt(chi2 / (n * (min(t.shape) - 1))))


@dataclass(frozen=True)
class Balance:
    """Balance of one group against the reference in one covariate.

    Attributes
    ----------
    group, reference : str
    max_difference : float
        The largest ``|d|`` over strata (signed: positive when the group has more of that stratum).
    stratum : str
        The stratum where it occurs.
    material : bool
        ``|max_difference| >= MATERIAL_DIFFERENCE``, both groups having at least ``MIN_PEOPLE`` people.
    """

    group: str
    reference: str
    max_difference: float
    stratum: str
    material: bool


def covariate_balance(counts, groups: list[str], strata: list[str], reference: int, *,
                      min_people: int = MIN_PEOPLE) -> tuple[list[Balance], float]:
    """Each group's balance against the reference, and Cramér's V of the table.

    Parameters
    ----------
    counts : array, shape (G, K)
        People of each group in each stratum.
    groups, strata : list of str
    reference : int

    Returns
    -------
    list of Balance (groups with people, other than the reference), Cramér's V

    Examples
    --------
    >>> b, v = covariate_balance([[57, 43], [30, 70]], ["Asian", "White"], ["child", "adult"], 1)
    >>> b[0].stratum, round(b[0].max_difference, 2), b[0].material, round(v, 2)
    ('child', 0.57, True, 0.27)
    """
    c = np.asarray(counts, np.float64)
    tot = c.sum(1)
    if tot[reference] <= 0:
        return [], cramers_v(c)
    share = c / np.where(tot > 0, tot, 1)[:, None]
    out = []
    for g in range(c.shape[0]):
        if g == reference or tot[g] <= 0:
            continue
        d = standardised_difference(share[g], share[reference])
        j = int(np.argmax(np.abs(d)))
        enough = min(tot[g], tot[reference]) >= min_people
        out.append(Balance(groups[g], groups[reference], float(d[j]), strata[j], bool(enough and abs(d[j]) >= MATERIAL_DIFFERENCE)))
    return out, cramers_v(c)
