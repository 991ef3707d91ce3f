"""Tidy views of a result, in the spirit of fairlearn's ``MetricFrame``.

A result (:class:`~audit.verification.result.AuditResult` for 1:1 verification,
:class:`~audit.identification.IdentificationResult` for 1:N search) holds long tables; these
functions read them and return DataFrames with fixed columns and integer counts. The result
classes expose them as methods (``result.overall``, ``result.by_group(...)``,
``result.ratio(...)``, ``result.difference(...)``), so a notebook never needs this module.

Terms: a *grouping* is a set of label columns (``"ethnicity+gender"``), a *group* one of its
values (``"Black / female"``), the *metric* an error rate (``fmr``/``fnmr`` for verification,
``fpir``/``fnir`` for identification), and the *reference* the group the others are compared with.

Pure pandas: no files, no plotting, no backends. Point estimates only; intervals for group
comparisons belong to the metrics layer and are attached to the result there.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import ResultsError

__all__ = [
    "RATE_COLUMNS",
    "RATIO_COLUMNS",
    "DIFFERENCE_COLUMNS",
    "SAME_CROSS_COLUMNS",
    "AEQUITAS_COLUMNS",
    "rates_long",
    "by_group",
    "overall",
    "ratio",
    "difference",
    "same_vs_cross_group",
    "to_aequitas",
    "short_repr",
]

#: Columns of :func:`rates_long`: one row per grouping, group, threshold and metric.
RATE_COLUMNS = [
    "grouping", "group", "threshold_name", "threshold", "metric",
    "value", "ci_low", "ci_high", "errors", "trials", "insufficient",
]

_COMPARE_HEAD = ["grouping", "threshold_name", "threshold", "metric", "group", "reference", "value", "reference_value"]
_COMPARE_TAIL = ["errors", "trials", "reference_errors", "reference_trials"]
#: Columns of :func:`ratio`.
RATIO_COLUMNS = [*_COMPARE_HEAD, "ratio", *_COMPARE_TAIL]
#: Columns of :func:`difference`.
DIFFERENCE_COLUMNS = [*_COMPARE_HEAD, "difference", *_COMPARE_TAIL]

#: Columns of :func:`same_vs_cross_group`: one row per threshold.
SAME_CROSS_COLUMNS = [
    "grouping", "threshold_name", "threshold",
    "same_false_matches", "same_comparisons", "same_fmr",
    "cross_false_matches", "cross_comparisons", "cross_fmr",
    "ratio", "ci_low", "ci_high", "ci_method",
]

#: Columns of :func:`to_aequitas`, named as Aequitas names them (a "positive" is a match decision).
AEQUITAS_COLUMNS = [
    "score_threshold", "threshold", "attribute_name", "attribute_value", "group_size",
    "fp", "group_label_neg", "fpr", "fn", "group_label_pos", "fnr",
    "fpr_ref_group_value", "fnr_ref_group_value", "fpr_disparity", "fnr_disparity",
]

COUNT = "Int64"  # pandas' nullable integer: counts stay integers, missing ones are <NA>


def _metrics(result: Any) -> list[str]:
    """The result's two error rates in report order (``["fmr", "fnmr"]`` or ``["fpir", "fnir"]``)."""
    seen = list(dict.fromkeys(str(m).lower() for m in result.rates["metric"].tolist()))
    order = ["fmr", "fnmr", "fpir", "fnir"]
    return sorted(seen, key=lambda m: order.index(m) if m in order else len(order))


def _check(result: Any, grouping: str | None, threshold: str | None) -> None:
    groupings = list(dict.fromkeys(map(str, result.rates["grouping"].tolist())))
    if grouping is not None and grouping not in groupings:
        raise ResultsError(f"no grouping named {grouping!r} in this result; its groupings are {groupings}")
    names = [t.name for t in result.thresholds]
    if threshold is not None and threshold not in names:
        raise ResultsError(f"no threshold named {threshold!r}; this result has {names}")


def rates_long(result: Any, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
    """Every rate of a result as a long table with integer counts.

    Parameters
    ----------
    result : AuditResult or IdentificationResult
    grouping : str, optional
        One grouping id (``"ethnicity"``; ``"all"`` is the overall population); default: all.
    threshold : str, optional
        One threshold name (``"FMR=1e-3"``); default: all, in the result's order.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RATE_COLUMNS`; ``errors`` and ``trials`` are ``Int64``; rows ordered by
        grouping, threshold, group (report order) and metric.
    """
    _check(result, grouping, threshold)
    df = result.rates
    mask = np.ones(len(df), dtype=bool)
    if grouping is not None:
        mask &= (df["grouping"].astype(str) == grouping).to_numpy()
    if threshold is not None:
        mask &= (df["threshold_name"].astype(str) == threshold).to_numpy()
    out = df.loc[mask].copy()
    out["metric"] = out["metric"].astype(str).str.lower()
    if "insufficient" not in out.columns:
        out["insufficient"] = False
    out = out[RATE_COLUMNS].reset_index(drop=True)
    for c in ("grouping", "group", "threshold_name", "metric"):
        out[c] = out[c].astype(object).map(str)
    for c in ("errors", "trials"):
        out[c] = pd.to_numeric(out[c], errors="coerce").round().astype(COUNT)
    for c in ("threshold", "value", "ci_low", "ci_high"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out["insufficient"] = out["insufficient"].fillna(False).astype(bool)
    t_order = {t.name: i for i, t in enumerate(result.thresholds)}
    g_order = {g: i for i, g in enumerate(["all", *result.groupings])}
    m_order = {m: i for i, m in enumerate(_metrics(result))}
    grp_order: dict[tuple[str, str], int] = {}
    for gid in out["grouping"].unique():
        for i, g in enumerate(_group_order(result, gid)):
            grp_order[(gid, g)] = i
    key = pd.DataFrame({
        "a": out["grouping"].map(lambda g: g_order.get(g, len(g_order))),
        "b": out["threshold_name"].map(lambda t: t_order.get(t, len(t_order))),
        "c": [grp_order.get((a, b), 10**6) for a, b in zip(out["grouping"], out["group"])],
        "d": out["metric"].map(lambda m: m_order.get(m, len(m_order))),
    })
    return out.loc[key.sort_values(["a", "b", "c", "d"], kind="stable").index].reset_index(drop=True)


def _group_order(result: Any, grouping: str) -> list[str]:
    if hasattr(result, "group_order"):
        return list(result.group_order(grouping))
    seen: dict[str, None] = {}
    for df in (result.composition, result.rates):
        for g in df.loc[(df["grouping"] == grouping).to_numpy(dtype=bool), "group"].tolist():
            seen.setdefault(str(g), None)
    return list(seen)


def by_group(result: Any, grouping: str, threshold: str | None = None) -> pd.DataFrame:
    """The two error rates side by side, one row per threshold and group of one grouping.

    Parameters
    ----------
    result : AuditResult or IdentificationResult
    grouping : str
        A grouping id (``"ethnicity+gender"``; ``"all"`` gives the overall rates).
    threshold : str, optional
        One threshold name; default: every threshold.

    Returns
    -------
    pandas.DataFrame
        ``threshold_name``, ``group``, ``threshold``, then for each metric ``m`` (``fmr`` and
        ``fnmr``, or ``fpir`` and ``fnir``): ``m_value``, ``m_ci_low``, ``m_ci_high`` (fractions),
        ``m_errors``, ``m_trials`` (``Int64`` counts) and ``m_insufficient``. A group with no
        comparisons of one kind has ``NaN`` rates and ``<NA>`` counts there.

    Examples
    --------
    >>> result.by_group("ethnicity", "FMR=1e-3")[["group", "fmr_value", "fmr_errors", "fmr_trials"]]  # doctest: +SKIP
    """
    if grouping not in set(map(str, result.rates["grouping"].tolist())):
        raise ResultsError(f"no rates for grouping {grouping!r}; groupings are {['all', *result.groupings]}")
    long = rates_long(result, grouping, threshold)
    metrics = _metrics(result)
    cols = ["threshold_name", "group", "threshold"]
    for m in metrics:
        cols += [f"{m}_value", f"{m}_ci_low", f"{m}_ci_high", f"{m}_errors", f"{m}_trials", f"{m}_insufficient"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in long.to_dict("records"):
        row = rows.setdefault((r["threshold_name"], r["group"]), {
            "threshold_name": r["threshold_name"], "group": r["group"], "threshold": r["threshold"]})
        m = r["metric"]
        row.update({f"{m}_value": r["value"], f"{m}_ci_low": r["ci_low"], f"{m}_ci_high": r["ci_high"],
                    f"{m}_errors": r["errors"], f"{m}_trials": r["trials"], f"{m}_insufficient": r["insufficient"]})
    out = pd.DataFrame(list(rows.values()), columns=cols)
    for m in metrics:
        for c in ("errors", "trials"):
            out[f"{m}_{c}"] = out[f"{m}_{c}"].astype(COUNT)
        for c in ("value", "ci_low", "ci_high"):
            out[f"{m}_{c}"] = out[f"{m}_{c}"].astype(float)
        out[f"{m}_insufficient"] = out[f"{m}_insufficient"].fillna(False).astype(bool)
    return out


def overall(result: Any) -> pd.DataFrame:
    """The overall rates (grouping ``"all"``), one row per threshold: :func:`by_group` of ``"all"``
    without the ``group`` column."""
    if "all" not in set(map(str, result.rates["grouping"].tolist())):
        raise ResultsError("this result has no overall rates (grouping 'all')")
    return by_group(result, "all").drop(columns=["group"])


def _subjects(result: Any, grouping: str) -> dict[str, float]:
    comp = result.composition
    comp = comp[comp["grouping"].astype(str) == grouping]
    if "role" in comp.columns:  # identification: people enrolled or searched, counted once per role
        comp = comp.groupby("group", sort=False, as_index=False)["subjects"].sum()
    return {str(g): float(s) for g, s in zip(comp["group"], comp["subjects"])}


def _result_reference(result: Any, gid: str, tname: str, metric: str) -> str | None:
    """The reference group the result itself compares with (its ``reference`` table), if any."""
    ref = getattr(result, "reference", None)
    if not isinstance(ref, pd.DataFrame) or ref.empty or "reference" not in ref.columns:
        return None
    rows = ref[(ref["grouping"].astype(str) == gid) & (ref["threshold_name"].astype(str) == tname)
               & (ref["metric"].astype(str).str.lower() == metric)]
    return str(rows["reference"].iloc[0]) if len(rows) else None


def _references(result: Any, long: pd.DataFrame, reference: Any) -> dict[tuple[str, str, str], str]:
    """(grouping, threshold_name, metric) -> the reference group's label (``"overall"`` for the
    whole population)."""
    out: dict[tuple[str, str, str], str] = {}
    known_any = False
    first_metric = _metrics(result)[0] if len(result.rates) else "fmr"
    for (gid, tname, metric), part in long.groupby(["grouping", "threshold_name", "metric"], sort=False):
        groups = part["group"].tolist()
        if isinstance(reference, Mapping):
            ref = reference.get(gid)
            if ref is None:
                continue
        else:
            ref = reference
        if ref is None:
            ref = _result_reference(result, gid, tname, metric)
        if ref is None:  # as the report chooses: the group with the most (same-group impostor) comparisons
            first = long[(long["grouping"] == gid) & (long["threshold_name"] == tname) & (long["metric"] == first_metric)]
            first = first if len(first) else part
            ref = str(first.loc[first["trials"].fillna(0).astype("int64").idxmax(), "group"])
        elif ref == "largest":
            subj = _subjects(result, gid)
            with_trials = part[part["trials"].fillna(0) > 0]
            pool = with_trials["group"].tolist() or groups
            ref = max(pool, key=lambda g: (subj.get(g, -1.0), -pool.index(g)))
        elif ref == "lowest":
            measured = part[(part["trials"].fillna(0) > 0) & part["value"].notna()]
            if measured.empty:
                continue
            ref = measured.sort_values("value", kind="stable")["group"].iloc[0]
        if ref != "overall" and ref not in groups:
            continue
        known_any = True
        out[(gid, tname, metric)] = str(ref)
    if not known_any and len(long):
        shown = {g: _group_order(result, g) for g in result.groupings}
        raise ResultsError(
            f"reference {reference!r} is not a group of the groupings compared; give a group label (groups: {shown}), "
            "a dict {grouping: group}, \"overall\" (the whole population), \"largest\" (the group with most people) "
            "or \"lowest\" (the lowest rate)"
        )
    return out


def _compare(result: Any, reference: Any, grouping: str | None, threshold: str | None, how: str) -> pd.DataFrame:
    long = rates_long(result, grouping, threshold)
    long = long[long["grouping"] != "all"] if grouping is None else long
    columns = RATIO_COLUMNS if how == "ratio" else DIFFERENCE_COLUMNS
    if long.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    refs = _references(result, long, reference)
    lookup = {(r["grouping"], r["threshold_name"], r["metric"], r["group"]): r for r in long.to_dict("records")}
    if "overall" in refs.values():  # the whole population's rates, as the reference row
        for r in rates_long(result, "all", threshold).to_dict("records"):
            for gid in long["grouping"].unique():
                lookup[(gid, r["threshold_name"], r["metric"], "overall")] = r
    rows = []
    for r in long.to_dict("records"):
        key = (r["grouping"], r["threshold_name"], r["metric"])
        if key not in refs:
            continue
        ref = lookup[(*key, refs[key])]
        v, rv = r["value"], ref["value"]
        measured = not pd.isna(r["trials"]) and r["trials"] > 0 and not pd.isna(ref["trials"]) and ref["trials"] > 0
        if not measured or not (math.isfinite(v) and math.isfinite(rv)):
            cmp = math.nan
        elif how == "ratio":
            cmp = v / rv if rv > 0 else (math.inf if v > 0 else math.nan)
        else:
            cmp = v - rv
        rows.append([r["grouping"], r["threshold_name"], r["threshold"], r["metric"], r["group"], refs[key], v, rv, cmp,
                     r["errors"], r["trials"], ref["errors"], ref["trials"]])
    out = pd.DataFrame(rows, columns=columns)
    for c in _COMPARE_TAIL:
        out[c] = out[c].astype(COUNT)
    return out


def ratio(result: Any, reference: Any = None, *, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
    """Each group's rate divided by its reference group's rate.

    Parameters
    ----------
    result : AuditResult or IdentificationResult
    reference : str, dict, "overall", "largest" or "lowest", optional
        The group every other group is compared with: a group label (used in each grouping that
        has it), ``{grouping: label}``, ``"overall"`` (the whole population's rate),
        ``"largest"`` (the group with the most people, among those with comparisons) or
        ``"lowest"`` (the group with the lowest rate, for each metric and threshold: every ratio
        is then >= 1 and the largest is fairlearn's ``ratio(method="between_groups")``
        inverted). Default: the result's own reference group (its ``reference`` table, as the
        report shows), else the group with the most same-group impostor comparisons (FMR; FPIR
        for 1:N).
    grouping : str, optional
        One grouping; default: every grouping but ``"all"``.
    threshold : str, optional
        One threshold name; default: every threshold.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RATIO_COLUMNS`, one row per grouping, threshold, metric and group (the
        reference's own row has ratio 1). ``ratio`` is ``value / reference_value``: ``inf`` when
        only the reference has no errors, ``NaN`` when both have none or a side has no
        comparisons. Point estimates: see the result's reference comparisons for intervals.

    Examples
    --------
    >>> result.ratio(reference="White", grouping="ethnicity", threshold="FMR=1e-3")  # doctest: +SKIP
    """
    return _compare(result, reference, grouping, threshold, "ratio")


def difference(result: Any, reference: Any = None, *, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
    """Each group's rate minus its reference group's rate (same parameters as :func:`ratio`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DIFFERENCE_COLUMNS`; ``difference`` is ``value - reference_value`` (a
        fraction), ``NaN`` when a side has no comparisons.
    """
    return _compare(result, reference, grouping, threshold, "difference")


def same_vs_cross_group(result: Any, grouping: str, threshold: str | None = None) -> pd.DataFrame:
    """Same-group against cross-group impostors (NIST FRVT Part 3's headline), pooled over groups.

    Same-group: the diagonal cells of the cross-group FMR table (both images of one group).
    Cross-group: every other cell, each pair of people counted once (the table lists an unordered
    cross-group pair in both orders' cells; a two-sided protocol's cells are directional and
    distinct). The ratio's interval is :func:`audit.metrics.rate_ratio_interval`, which treats
    comparisons as independent (narrow when people recur across pairs).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SAME_CROSS_COLUMNS`, one row per threshold (counts ``Int64``).
    """
    from .metrics import rate_ratio_interval

    if not hasattr(result, "cross_fmr"):
        raise ResultsError("same_vs_cross_group needs a 1:1 verification result (it reads the cross-group FMR table)")
    _check(result, grouping, threshold)
    cf = result.cross_fmr[result.cross_fmr["grouping"].astype(str) == grouping]
    directional = "sides" in (result.provenance or {}).get("protocol", {})
    rows = []
    for t in result.thresholds:
        if threshold is not None and t.name != threshold:
            continue
        part = cf[cf["threshold_name"].astype(str) == t.name]
        if part.empty:
            continue
        same = (part["group_a"].astype(str) == part["group_b"].astype(str)).to_numpy()
        se, sn = int(part.loc[same, "false_matches"].sum()), int(part.loc[same, "comparisons"].sum())
        ce, cn = int(part.loc[~same, "false_matches"].sum()), int(part.loc[~same, "comparisons"].sum())
        if not directional:
            ce, cn = ce // 2, cn // 2
        if sn and cn:
            ci = rate_ratio_interval(se, sn, ce, cn)
            rr, lo, hi, method = ci.ratio, ci.low, ci.high, ci.method
        else:
            rr = lo = hi = math.nan
            method = ""
        rows.append([grouping, t.name, t.value, se, sn, se / sn if sn else math.nan, ce, cn, ce / cn if cn else math.nan,
                     rr, lo, hi, method])
    out = pd.DataFrame(rows, columns=SAME_CROSS_COLUMNS)
    for c in ("same_false_matches", "same_comparisons", "cross_false_matches", "cross_comparisons"):
        out[c] = out[c].astype(COUNT)
    return out


def to_aequitas(result: Any, reference: Any = None, *, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
    """The rates as Aequitas' ``Group``/``Bias`` tables name them, for tools that read those.

    A face comparison is a binary decision ("match"), so Aequitas' false positive is a false
    match: ``fp``/``group_label_neg``/``fpr`` are false matches, same-group impostor comparisons
    and FMR; ``fn``/``group_label_pos``/``fnr`` false non-matches, mated comparisons and FNMR;
    ``group_size`` the group's images; ``*_disparity`` the ratio to the reference group
    (:func:`ratio`). ``score_threshold`` is the threshold's name.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`AEQUITAS_COLUMNS`, one row per grouping, threshold and group.
    """
    if not hasattr(result, "cross_fmr"):
        raise ResultsError("to_aequitas reads a 1:1 verification result (FMR and FNMR)")
    wide = []
    groupings = [grouping] if grouping is not None else list(result.groupings)
    rat = ratio(result, reference, grouping=grouping, threshold=threshold)
    key = {(r["grouping"], r["threshold_name"], r["metric"], r["group"]): r for r in rat.to_dict("records")}
    for gid in groupings:
        comp = result.composition[result.composition["grouping"].astype(str) == gid]
        images = {str(g): n for g, n in zip(comp["group"], comp["images"])}
        bg = by_group(result, gid, threshold)
        for r in bg.to_dict("records"):
            fm = key.get((gid, r["threshold_name"], "fmr", r["group"]), {})
            fn = key.get((gid, r["threshold_name"], "fnmr", r["group"]), {})
            wide.append([r["threshold_name"], r["threshold"], gid, r["group"], images.get(r["group"], pd.NA),
                         r["fmr_errors"], r["fmr_trials"], r["fmr_value"], r["fnmr_errors"], r["fnmr_trials"], r["fnmr_value"],
                         fm.get("reference_value", math.nan), fn.get("reference_value", math.nan),
                         fm.get("ratio", math.nan), fn.get("ratio", math.nan)])
    out = pd.DataFrame(wide, columns=AEQUITAS_COLUMNS)
    for c in ("group_size", "fp", "group_label_neg", "fn", "group_label_pos"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(COUNT)
    return out


def short_repr(result: Any) -> str:
    """One line for ``repr``/``print``: kind, title, system, data, groupings and thresholds."""
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    system = "/".join(str(backend[k]) for k in ("backend", "model") if backend.get(k)) or "?"
    data = str(dataset.get("name") or dataset.get("title") or "?")
    comp = result.composition
    allrow = comp[comp["grouping"].astype(str) == "all"]
    if "role" in comp.columns:
        allrow = allrow.iloc[0:0]
    size = f", {int(allrow['images'].iloc[0])} images of {int(allrow['subjects'].iloc[0])} subjects" if len(allrow) else ""
    ths = ", ".join(t.name for t in result.thresholds) or "none"
    groupings = ", ".join(result.groupings) or "none"
    return (f"<{type(result).__name__} {result.title!r}: {system} on {data}{size}; "
            f"groupings {groupings}; thresholds {ths}>")
