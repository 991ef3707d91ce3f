"""The verdict and the key findings: what a reader needs from an audit in ten seconds.

Every key finding is **one group against the reference group** (issue 9's ``reference`` table:
people-level ratio intervals that hold simultaneously over the comparisons made, so a "difference
shown" survives their number), at one threshold for everyone, with a plain statement of what the
two rates mean for people ("about 1 in 3 comparisons of two different Black people in this set is
a false match; for White people, 1 in 230"). The verdict is one sentence built from the strongest
of them.

How findings are chosen (at most :data:`MAX_FINDINGS`):

- candidates are the reference table's FMR and FNMR rows (FPIR and FNIR for a 1:N search audit) at
  the target thresholds (every threshold when there is none);
- per group, grouping and metric, the threshold where the evidence is strongest is kept;
- the strength of a shown difference is how far its interval lies from parity, ``log(low)`` above
  it or ``-log(high)`` below it; findings are taken strongest first, one grouping and metric at a
  time in turn, so that the five are not five intersections of one gap;
- when no difference is shown, up to three of the largest measured gaps are listed, each said to
  show no difference.

"Too few comparisons" keeps its real meaning: a rate is *unresolved* when its interval contains
the level being measured (the target FMR of the threshold, or its overall rate): the sample cannot
tell whether it is above or below it, which is the rule of three's question about low and zero
rates. A rate measured from many errors, whose whole interval lies above that level, is a
measurement. A finding that shows no difference and rests on an unresolved rate says "too few
comparisons".

Ratios are written by :func:`times` everywhere (key findings, the reference table, the forest
plot's labels), so the same quantity prints the same figure throughout a report.

Pure: reads results only, builds plain text (no escaping; templates escape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

__all__ = ["KeyFinding", "Verdict", "MAX_FINDINGS", "all_findings", "choose", "verdict", "times", "one_in", "ratio_text",
           "threshold_units", "finding_from_row", "STATUS_WORDS"]

#: At most this many key findings on the first screen.
MAX_FINDINGS = 5

#: KeyFinding.status -> the words shown beside it (never told by colour alone).
STATUS_WORDS = {
    "difference": "Difference shown",
    "no_difference": "No difference shown",
    "too_few": "Too few comparisons",
}

_RATE_OF = {"fmr": "false match rate", "fnmr": "false non-match rate",
            "fpir": "false positive identification rate", "fnir": "false negative identification rate"}


def _num(v: Any) -> float:
    if v is None or v is pd.NA:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def times(r: float) -> str:
    """A ratio as the report prints it everywhere: ``344``, ``76``, ``2.1``, ``0.35``, ``∞``."""
    if math.isnan(r):
        return "—"
    if math.isinf(r):
        return "∞"
    if r >= 100:
        return f"{r:,.0f}"
    if r >= 10:
        return f"{r:.0f}"
    if r >= 1:
        return f"{r:.1f}"
    if r <= 0:
        return "0"
    digits = 1 - math.floor(math.log10(r))
    return f"{r:.{digits}f}"


def ratio_text(ratio: float, low: float, high: float) -> str:
    """``76× (95% CI 17–344×)``; ``at least 104× (95% CI from 104×)`` for an infinite ratio."""
    if math.isnan(ratio):
        return "no ratio (no errors in either group)"
    if math.isinf(ratio):
        return f"at least {times(low)}× (the reference group had no error)" if low > 0 else "∞ (the reference group had no error)"
    hi = "∞" if math.isinf(high) else times(high)
    return f"{times(ratio)}× (95% CI {times(low)}–{hi}×)"


def _sig2(x: float) -> str:
    if x >= 100:
        e = 10 ** (math.floor(math.log10(x)) - 1)
        return f"{round(x / e) * e:,.0f}"
    return f"{round(x):,}"


def one_in(errors: float, trials: float) -> str:
    """``1 in 230``; ``about 7 in 10`` for high rates; ``none of 9,384``."""
    if not trials > 0:
        return "no comparisons"
    if errors <= 0:
        return f"none of {int(trials):,}"
    p = errors / trials
    if p > 0.5:
        return f"{round(10 * p)} in 10"
    return f"1 in {_sig2(1.0 / p)}"


def threshold_units(t: Any, provenance: Mapping[str, Any] | None = None) -> str:
    """A threshold in the backend's own units: ``distance ≤ 0.607`` for dlib (a pair matches when
    its distance is at most that), ``similarity ≥ 0.52`` otherwise. Never the negated value."""
    value, native = _num(getattr(t, "value", math.nan)), _num(getattr(t, "native_value", math.nan))
    backend = (provenance or {}).get("backend") if isinstance(provenance, Mapping) else None
    metric = str((backend or {}).get("metric", "")) if isinstance(backend, Mapping) else ""
    if not math.isfinite(native):
        native = value
    distance = (math.isfinite(value) and math.isfinite(native) and native != 0 and abs(native + value) <= 1e-9 * abs(native))
    if not math.isfinite(native):
        return "—"
    unit = f"{metric} " if metric and metric.lower() not in ("similarity", "distance", "score") else ""
    if distance:
        return f"{unit}distance ≤ {native:.4g}"
    return f"{unit}similarity ≥ {native:.4g}"


@dataclass(frozen=True)
class KeyFinding:
    """One group against the reference group at one threshold.

    ``text`` is the plain sentence; ``ratio_text`` the figure (``76× (95% CI 17–344×)``) printed
    the same in the card, the reference table and the forest plot; ``status`` one of
    :data:`STATUS_WORDS`."""

    grouping: str
    group: str
    reference: str
    metric: str
    threshold_name: str
    ratio: float
    ratio_low: float
    ratio_high: float
    shown: bool
    status: str
    ratio_text: str
    headline: str
    text: str
    method: str = ""

    @property
    def status_words(self) -> str:
        return STATUS_WORDS[self.status]

    @property
    def strength(self) -> float:
        """How far the interval lies from parity on a log scale (0 when it includes it)."""
        if self.ratio_low > 1:
            return math.log(self.ratio_low)
        if 0 < self.ratio_high < 1:
            return -math.log(self.ratio_high)
        return 0.0


@dataclass(frozen=True)
class Verdict:
    """The one-sentence verdict and the key findings behind it."""

    text: str
    findings: tuple[KeyFinding, ...]
    shown: int
    compared: int
    reference: str
    quiet: tuple[str, ...] = ()  # one line each for the many comparisons with no error at all


# ------------------------------------------------------------------------------------- sentences
def _people(metric: str, group: str) -> str:
    if metric == "fmr":
        return f"comparisons of two different {group} people"
    if metric == "fnmr":
        return f"comparisons of two photos of the same {group} person"
    if metric == "fpir":
        return f"searches for a {group} person who is not in the gallery"
    return f"searches for a {group} person who is in the gallery"


def _outcome(metric: str) -> tuple[str, str]:
    """(singular verb phrase, plural verb phrase)."""
    return {"fmr": ("is a false match", "are false matches"),
            "fnmr": ("fails to match", "fail to match"),
            "fpir": ("returns someone else", "return someone else"),
            "fnir": ("misses the person", "miss the person")}[metric]


def _means(metric: str, group: str, reference: str, e: float, n: float, e0: float, n0: float, at: str) -> str:
    verb, verbs = _outcome(metric)
    if e > 0:
        first = f"about {one_in(e, n)} {_people(metric, group)} in this set {verbs if e / n > 0.5 else verb}"
    else:
        first = f"none of {int(n):,} {_people(metric, group)} in this set {verbs}"
    second = f"for {reference} people, {one_in(e0, n0)}" if n0 > 0 else f"{reference} people had no comparisons"
    return f"{at}, {first} ({int(e):,} of {int(n):,}); {second}" + (f" ({int(e0):,} of {int(n0):,})." if e0 > 0 else ".")


_HEAD = {"fmr": ("{g} faces are falsely matched with one another", "{r} faces"),
         "fnmr": ("{g} faces are not recognised (false non-match)", "{r} faces"),
         "fpir": ("Searches for {g} people who are not enrolled return someone else", "for {r} people"),
         "fnir": ("Searches for {g} people who are enrolled miss them", "for {r} people")}


def _headline(metric: str, group: str, reference: str, rt: str) -> str:
    subject, other = (x.format(g=group, r=reference) for x in _HEAD[metric])
    if " (" in rt:
        return f"{subject} {rt.split(' (')[0]} as often as {other} ({rt.split(' (', 1)[1]}"
    if rt == "more often than":
        return f"{subject} more often than {other}"
    return f"{subject} {rt} as often as {other}"


def finding_from_row(r: Mapping[str, Any], rates: Mapping[tuple, Mapping[str, Any]], at: str,
                     basis: float | None = None) -> KeyFinding:
    """A :class:`KeyFinding` from one reference-table row and the two rates it compares.

    ``rates`` maps (grouping, group, threshold name, metric) to a row with ``errors``, ``trials``
    and an interval (``boot_low``/``boot_high``, else ``ci_low``/``ci_high``); ``at`` opens the
    plain statement ("At FMR=1e-2 (distance ≤ 0.607)"); ``basis`` is the level the threshold
    measures (target FMR), for the "too few comparisons" rule."""
    grouping, group, ref = str(r["grouping"]), str(r["group"]), str(r["reference"])
    metric, tname = str(r["metric"]).lower(), str(r["threshold_name"])
    ratio, lo, hi = _num(r.get("ratio")), _num(r.get("ratio_low")), _num(r.get("ratio_high"))
    shown = bool(r.get("shown")) and not math.isnan(ratio)
    g = rates.get((grouping, group, tname, metric), {})
    g0 = rates.get((grouping, ref, tname, metric), {})
    e, n = _num(g.get("errors", 0)), _num(g.get("trials", 0))
    e0, n0 = _num(g0.get("errors", 0)), _num(g0.get("trials", 0))
    rt = ratio_text(ratio, lo, hi)
    unresolved = basis is not None and (_unresolved(g, basis) or _unresolved(g0, basis))
    status = "difference" if shown else ("too_few" if unresolved else "no_difference")
    if math.isnan(ratio):
        head = f"{group} and {reference_word(ref)}: no errors in either group"
    elif math.isinf(ratio):
        head = _headline(metric, group, ref, f"at least {times(lo)}×" if lo > 0 else "more often than")
        head += f" ({int(e):,} of {int(n):,} against none of {int(n0):,})"
    else:
        head = _headline(metric, group, ref, rt)
    text = _means(metric, group, ref, e, n, e0, n0, at)
    if status == "no_difference":
        text += " The interval includes parity: no difference shown."
    elif status == "too_few":
        which = [x for x, row in ((group, g), (ref, g0)) if _unresolved(row, basis or 0.0)]
        text += (f" Too few comparisons: the sample cannot place {' or '.join(which)}'s rate above or below the "
                 f"{_level(basis or 0.0)} the threshold was set for, so no difference is shown.")
    return KeyFinding(grouping, group, ref, metric, tname, ratio, lo, hi, shown, status, rt, head, text,
                      str(r.get("method", "")))


def _level(basis: float) -> str:
    if not basis > 0:
        return "level"
    k = 1.0 / basis
    return f"1 in {round(k):,}" if abs(k - round(k)) <= 1e-6 * k else f"{100 * basis:.2g}%"


def reference_word(ref: str) -> str:
    return ref if ref else "the reference group"


def _interval(row: Mapping[str, Any]) -> tuple[float, float]:
    lo, hi = _num(row.get("boot_low")), _num(row.get("boot_high"))
    e, n = _num(row.get("errors")), _num(row.get("trials"))
    if math.isfinite(lo) and math.isfinite(hi) and 0 < e < n:
        return lo, hi
    return _num(row.get("ci_low")), _num(row.get("ci_high"))


def _unresolved(row: Mapping[str, Any], basis: float) -> bool:
    """The rate's interval contains ``basis``: the sample cannot place it above or below."""
    if not row or not _num(row.get("trials")) > 0 or not (basis and basis > 0):
        return False
    lo, hi = _interval(row)
    return bool(math.isfinite(lo) and math.isfinite(hi) and lo <= basis <= hi) or (
        _num(row.get("errors")) == 0 and not hi < basis)


# ------------------------------------------------------------------------------------- choosing
def choose(findings: Sequence[KeyFinding], limit: int = MAX_FINDINGS) -> list[KeyFinding]:
    """The strongest per (grouping, group, metric), then round robin over (grouping, metric) in
    the order they first appear (single attributes before their intersections)."""
    best: dict[tuple[str, str, str], KeyFinding] = {}
    for f in findings:
        key = (f.grouping, f.group, f.metric)
        if key not in best or _rank(f) > _rank(best[key]):
            best[key] = f
    shown = sorted((f for f in best.values() if f.shown), key=lambda f: tuple(-x for x in _rank(f)))
    if not shown:
        gaps = [f for f in best.values() if math.isfinite(f.ratio) and f.ratio > 0 and f.ratio != 1]
        return sorted(gaps, key=lambda f: -abs(math.log(f.ratio)))[:min(3, limit)]
    lanes: dict[tuple[str, str], list[KeyFinding]] = {(f.grouping, f.metric): [] for f in findings}
    for f in shown:
        lanes.setdefault((f.grouping, f.metric), []).append(f)
    out: list[KeyFinding] = []
    while len(out) < limit and any(lanes.values()):
        for lane in list(lanes):
            if lanes[lane] and len(out) < limit:
                out.append(lanes[lane].pop(0))
    return out


def _rank(f: KeyFinding) -> tuple[bool, bool, float, float]:
    """Shown first, then a finite ratio (a reader can picture 76×, not "at least 104×"), then strength."""
    return (f.shown, math.isfinite(f.ratio), f.strength,
            abs(math.log(f.ratio)) if math.isfinite(f.ratio) and f.ratio > 0 else 0.0)


def verdict_text(system: str, chosen: Sequence[KeyFinding], shown: int, compared: int, reference: str,
                 at: Mapping[str, str]) -> str:
    """The one sentence: the strongest finding, and how many comparisons show a difference."""
    if compared == 0:
        return f"{system}: no group could be compared with a reference group (too few groups with comparisons)."
    if shown == 0:
        return (f"{system}: in this sample no group's error rates differ from the reference group's by more than "
                f"chance allows ({compared:,} comparisons made). That does not show they are equal: the intervals "
                "below say how large a gap the sample cannot rule out.")
    f = chosen[0]
    rest = shown - 1
    also = f"; {rest} other comparison{'s' if rest != 1 else ''} with the reference group also show{'s' if rest == 1 else ''} a difference" if rest else ""
    return f"{system}: {f.headline} at {at.get(f.threshold_name, f.threshold_name)}{also}."


# ------------------------------------------------------------------------------------ 1:1 audits
def _rate_lookup(rates: pd.DataFrame) -> dict[tuple, dict[str, Any]]:
    out: dict[tuple, dict[str, Any]] = {}
    for r in rates.to_dict("records"):
        out.setdefault((str(r["grouping"]), str(r["group"]), str(r["threshold_name"]), str(r["metric"]).lower()), r)
    return out


def _at(t: Any, provenance: Mapping[str, Any] | None) -> str:
    return f"At {t.name} ({threshold_units(t, provenance)})"


def _basis(t: Any) -> float | None:
    for name in ("target_fmr", "target_fpir", "achieved_fmr", "achieved_fpir"):
        v = _num(getattr(t, name, None))
        if math.isfinite(v) and v > 0:
            return v
    return None


def all_findings(result: Any, reference: pd.DataFrame | None = None) -> list[KeyFinding]:
    """Every reference-table row of the target thresholds as a :class:`KeyFinding`."""
    ref = result.reference if reference is None else reference
    if not isinstance(ref, pd.DataFrame) or ref.empty:
        return []
    kinds = ("target_fmr", "target_fpir")
    thresholds = [t for t in result.thresholds if t.kind in kinds] or list(result.thresholds)
    by_name = {t.name: t for t in thresholds}
    lookup = _rate_lookup(result.rates)
    out = []
    for r in ref.to_dict("records"):
        t = by_name.get(str(r["threshold_name"]))
        if t is None or str(r["metric"]).lower() not in _RATE_OF:
            continue
        metric = str(r["metric"]).lower()
        basis = _basis(t) if metric in ("fmr", "fpir") else None
        out.append(finding_from_row(r, lookup, _at(t, result.provenance), basis))
    return out


def system_name(result: Any) -> str:
    prov = result.provenance if isinstance(result.provenance, Mapping) else {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    return " / ".join(str(backend.get(k)) for k in ("backend", "model") if backend.get(k)) or "The system"


def verdict(result: Any, *, reference: pd.DataFrame | None = None, limit: int = MAX_FINDINGS) -> Verdict:
    """The verdict of a 1:1 (:class:`~audit.results.AuditResult`) or 1:N result.

    ``reference`` overrides the result's reference table (a 1:N result has none: see
    :func:`audit.report.identification` which builds one)."""
    found = all_findings(result, reference)
    chosen = choose(found, limit)
    shown = sum(1 for f in found if f.shown)
    refs = sorted({f"{f.reference} ({f.grouping.replace('+', ' × ')})" for f in found})
    at = {t.name: f"{t.name} ({threshold_units(t, result.provenance)})" for t in result.thresholds}
    text = verdict_text(system_name(result), chosen, shown, len(found), ", ".join(refs) or "none", at)
    return Verdict(text, tuple(chosen), shown, len(found), ", ".join(refs), tuple(_quiet(result, found)))


def _quiet(result: Any, found: Sequence[KeyFinding]) -> list[str]:
    """One line per metric whose every group had no error at every threshold compared."""
    out = []
    for metric in ("fmr", "fnmr", "fpir", "fnir"):
        rows = result.rates[(result.rates["metric"].astype(str).str.lower() == metric).to_numpy(dtype=bool)]
        rows = rows[(rows["grouping"].astype(str) != "all").to_numpy(dtype=bool)] if "grouping" in rows else rows
        if rows.empty or not any(f.metric == metric for f in found):
            continue
        errors = pd.to_numeric(rows["errors"], errors="coerce").fillna(0)
        if (errors == 0).all():
            overall = result.rates[((result.rates["grouping"].astype(str) == "all")
                                    & (result.rates["metric"].astype(str).str.lower() == metric)).to_numpy(dtype=bool)]
            n = int(pd.to_numeric(overall["trials"], errors="coerce").max()) if not overall.empty else 0
            what = {"fmr": "false match", "fnmr": "false non-match", "fpir": "false candidate",
                    "fnir": "missed search"}[metric]
            total = f" (0 of {n:,} {'mated comparisons' if metric == 'fnmr' else 'comparisons' if metric == 'fmr' else 'searches'})" if n else ""
            out.append(f"No {what} in any group at any threshold{total}. Zero observed is not zero: "
                       "each group's interval in the tables below says how high the rate could be.")
    return out
