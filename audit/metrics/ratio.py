"""The ratio of two error rates with a confidence interval (Katz log, or exact-conditional when cells
are small).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from audit.errors import MetricError
from .uncertainty import _check_confidence, _check_counts, _z

__all__ = ["rate_ratio_interval", "KATZ_MIN_CELL", "RatioInterval"]


@dataclass(frozen=True)
class RatioInterval:
    """The ratio of two proportions, ``(errors_a / trials_a) / (errors_b / trials_b)``, with a
    two-sided confidence interval.

    Attributes
    ----------
    ratio : float
        The observed ratio: ``inf`` when only ``b`` has no errors, ``0`` when only ``a`` has none,
        ``nan`` when neither has errors or either has no trials.
    low, high : float
        The bounds; ``high`` may be ``inf`` (and ``low`` 0). Both ``nan`` when ``ratio`` is.
    method : str
        ``"katz-log"``, ``"katz-log+0.5"`` (Katz with 0.5 added to each cell) or ``"conditional"``.
    confidence : float
    """

    ratio: float
    low: float
    high: float
    method: str
    confidence: float


#: Below this many errors or non-errors in either group, ``method="auto"`` leaves Katz's normal
#: approximation for the exact conditional interval.
KATZ_MIN_CELL = 5

def rate_ratio_interval(
    errors_a: int, trials_a: int, errors_b: int, trials_b: int, *, confidence: float = 0.95,
    method: str = "auto",
) -> RatioInterval:
    """A confidence interval for the ratio of two proportions (a "risk ratio").

    With ``p_a = e_a / n_a``, ``p_b = e_b / n_b`` and ``RR = p_a / p_b``:

    ``"katz"``: Katz's log interval, with ``z`` the ``1 - (1 - confidence) / 2`` normal quantile,

    .. math::

        \\mathrm{SE}(\\ln RR) = \\sqrt{\\frac{1}{e_a} - \\frac{1}{n_a} + \\frac{1}{e_b} - \\frac{1}{n_b}},
        \\qquad [\\text{low}, \\text{high}] = RR \\cdot e^{\\mp z \\, \\mathrm{SE}}

    When a cell of the 2×2 table is 0 (``e == 0`` or ``e == n``) 0.5 is added to every cell
    (``e + 0.5`` errors of ``n + 1`` trials; method ``"katz-log+0.5"``).

    ``"conditional"``: exact given the total number of errors ``k = e_a + e_b``. Treating the
    counts as Poisson, ``e_a`` given ``k`` is Binomial(``k``, π) with
    ``π / (1 − π) = RR · n_a / n_b``, so the Clopper–Pearson bounds ``π_lo, π_hi`` for
    ``e_a`` of ``k`` give ``[π_lo / (1 − π_lo), π_hi / (1 − π_hi)] · n_b / n_a`` (``low = 0``
    when ``e_a == 0``, ``high = inf`` when ``e_b == 0``). For binomial counts it is wider than
    needed (conservative), most of all when rates are high, and it stays valid with one or two
    errors, where Katz's normal approximation does not.

    ``"auto"`` (default): Katz when every cell (``e_a``, ``n_a − e_a``, ``e_b``, ``n_b − e_b``)
    is at least :data:`KATZ_MIN_CELL` (5), the conditional interval otherwise.

    Both treat trials as independent. Comparisons that share a person are not, so for per-pair
    rates either interval is narrower than a bootstrap over subjects would be.

    Parameters
    ----------
    errors_a, trials_a : int
        Numerator proportion's counts, ``0 <= errors_a <= trials_a``.
    errors_b, trials_b : int
        Denominator proportion's counts, ``0 <= errors_b <= trials_b``.
    confidence : float, default 0.95
        Two-sided coverage, strictly between 0 and 1.
    method : {"auto", "katz", "conditional"}, default "auto"

    Returns
    -------
    RatioInterval
        All ``nan`` when either ``trials`` is 0 or both error counts are 0.

    Raises
    ------
    MetricError
        Counts that are not non-negative integers, errors above trials, ``confidence`` outside
        (0, 1), or an unknown ``method``.

    References
    ----------
    D. Katz, J. Baptista, S. P. Azen and M. C. Pike (1978), "Obtaining confidence intervals for
    the risk ratio in cohort studies", Biometrics 34(3): 469-474.
    The conditional interval is the classical exact interval for a ratio of two Poisson rates
    (e.g. N. E. Breslow and N. E. Day (1987), *Statistical Methods in Cancer Research*, vol. II).

    Examples
    --------
    >>> ci = rate_ratio_interval(10, 100, 5, 200)
    >>> ci.method, ci.ratio, round(ci.low, 3), round(ci.high, 3)
    ('katz-log', 4.0, 1.405, 11.389)
    >>> ci = rate_ratio_interval(3, 26, 0, 138)
    >>> ci.method, ci.ratio, round(ci.low, 3), ci.high
    ('conditional', inf, 2.193, inf)
    """
    c = _check_confidence(confidence)
    if method not in ("auto", "katz", "conditional"):
        raise MetricError(f"method must be 'auto', 'katz' or 'conditional'; got {method!r}.")
    ea, na = _check_counts(errors_a, trials_a)
    eb, nb = _check_counts(errors_b, trials_b)
    if method == "auto":
        method = "katz" if min(ea, na - ea, eb, nb - eb) >= KATZ_MIN_CELL else "conditional"
    if na == 0 or nb == 0 or (ea == 0 and eb == 0):
        return RatioInterval(math.nan, math.nan, math.nan, "katz-log" if method == "katz" else method, c)
    ratio = math.inf if eb == 0 else (ea / na) / (eb / nb)
    if method == "conditional":
        k, alpha = ea + eb, 1.0 - c
        pi_lo = 0.0 if ea == 0 else float(stats.beta.ppf(alpha / 2.0, ea, k - ea + 1))
        pi_hi = 1.0 if ea == k else float(stats.beta.ppf(1.0 - alpha / 2.0, ea + 1, k - ea))
        scale = nb / na
        low = pi_lo / (1.0 - pi_lo) * scale
        high = math.inf if pi_hi >= 1.0 else pi_hi / (1.0 - pi_hi) * scale
        return RatioInterval(ratio, low, high, "conditional", c)
    if min(ea, na - ea, eb, nb - eb) == 0:
        a, n1, b, n2, name = ea + 0.5, na + 1.0, eb + 0.5, nb + 1.0, "katz-log+0.5"
    else:
        a, n1, b, n2, name = float(ea), float(na), float(eb), float(nb), "katz-log"
    log_rr = math.log((a / n1) / (b / n2))
    se = math.sqrt(max(1.0 / a - 1.0 / n1 + 1.0 / b - 1.0 / n2, 0.0))
    z = _z(c)
    return RatioInterval(ratio, math.exp(log_rr - z * se), math.exp(log_rr + z * se), name, c)
