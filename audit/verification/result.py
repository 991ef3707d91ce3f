"""The result of a 1:1 verification audit: :class:`AuditResult` and its fixed table schema.

Frozen, JSON round-trippable, read by the report, the gate, the findings and notebooks. Shared
conventions (labels, JSON/CSV encoding, :class:`~audit.results.ThresholdInfo`) are in
:mod:`audit.results`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..errors import ResultsError
from ..quality import DUPLICATE_COLUMNS, WRONG_FACE_COLUMNS
from ..results import (
    write_csv_tables,
    _THRESHOLD_TEXT,
    SCHEMA_VERSION,
    TEXT_ENCODING,
    RatesAccess,
    ThresholdInfo,
    _jsonable,
    check_tables,
    decode_record,
    decode_table,
    dump_result_json,
    encode_table,
    load_result_json,
)


#: The fixed columns of each table of an AuditResult.
TABLE_COLUMNS: dict[str, list[str]] = {
    # one row per image: no pixels, no embeddings
    "samples": ["sample_id", "subject", "path", "status", "n_faces", "detail"],
    # how many subjects and images each group has
    "composition": ["grouping", "group", "subjects", "images"],
    # failure to acquire by group
    "fta": ["grouping", "group", "failures", "attempts", "value", "ci_low", "ci_high", "ci_method"],
    # FMR (same-group impostors) and FNMR (mated, by subject's group) at every threshold
    "rates": [
        "grouping", "group", "threshold_name", "threshold", "metric",
        "errors", "trials", "value", "ci_low", "ci_high", "ci_method", "insufficient",
    ],
    # cross-group impostor FMR: every cell (group of A, group of B), unordered pairs counted in both orders' cells
    "cross_fmr": [
        "grouping", "threshold_name", "threshold", "group_a", "group_b",
        "false_matches", "comparisons", "fmr",
    ],
    # disparity summaries across groups of one grouping
    "disparity": [
        "grouping", "threshold_name", "metric", "summary", "value",
        "group_high", "group_low", "groups_used", "note",
    ],
    # histogram of scores (similarity units) by group and comparison kind
    "score_hist": ["grouping", "group", "kind", "bin_left", "bin_right", "count"],
    # DET curve points by group
    "det": ["grouping", "group", "threshold", "fmr", "fnmr"],
    # each group against the reference group: ratio and difference of rates, intervals
    # simultaneous over the comparisons of one grouping, threshold and metric (people bootstrap)
    "reference": [
        "grouping", "threshold_name", "threshold", "metric", "group", "reference",
        "ratio", "ratio_low", "ratio_high", "difference", "diff_low", "diff_high",
        "p_adjusted", "shown", "comparisons", "method", "estimand",
    ],
    # covariates ([analysis] adjust_for; audit/verification/confounders.py): people and images of
    # each group in each stratum, balance against the reference, rates within strata, and each
    # group's crude and adjusted (Mantel-Haenszel) ratio to the reference
    "covariates": ["grouping", "covariate", "group", "stratum", "people", "images", "share", "std_difference"],
    "balance": ["grouping", "covariate", "group", "reference", "max_std_difference", "stratum", "material", "cramers_v"],
    "stratum_rates": ["grouping", "threshold_name", "threshold", "metric", "group", "stratum", "errors", "trials", "rate"],
    "adjusted": ["grouping", "threshold_name", "threshold", "metric", "group", "reference", "covariate", "crude", "crude_low",
                 "crude_high", "crude_shown", "adjusted", "adjusted_low", "adjusted_high", "adjusted_shown", "p_adjusted",
                 "strata_used", "strata_missing", "independent_low", "independent_high", "method"],
    # data quality (audit/quality.py): duplicate image pairs and images that may show the wrong face
    "duplicates": list(DUPLICATE_COLUMNS),
    "wrong_faces": list(WRONG_FACE_COLUMNS),
}

#: Tables added after schema 1.0: a results file without them reads as empty tables.
OPTIONAL_TABLES = ("reference", "covariates", "balance", "stratum_rates", "adjusted", "duplicates", "wrong_faces")


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_COLUMNS[name]})


#: The fixed columns of :meth:`AuditResult.rates_frame`: one row per group and threshold.
RATES_FRAME_COLUMNS: list[str] = [
    "grouping", "group", "threshold_name", "threshold", "subjects", "images",
    "fmr", "fmr_ci_low", "fmr_ci_high", "false_matches", "impostors", "fmr_insufficient",
    "fnmr", "fnmr_ci_low", "fnmr_ci_high", "false_non_matches", "mated",
    "fta", "fta_ci_low", "fta_ci_high", "failures", "attempts",
]

@dataclass(frozen=True)
class AuditResult(RatesAccess):
    """The outcome of one audit of one backend on one dataset.

    Attributes
    ----------
    title : str
    provenance : dict
        ``tool_version``, ``backend`` (BackendInfo.to_dict()), ``dataset`` (name, title, licence,
        citation, manifest_sha256, label_source), ``config``, ``seed``, ``machine``, ``created``,
        ``protocol`` and ``timing``.
    groupings : tuple of str
        Grouping ids in report order.
    thresholds : tuple of ThresholdInfo
    samples, composition, fta, rates, cross_fmr, disparity, score_hist, det : pandas.DataFrame
        Long tables with the columns in :data:`TABLE_COLUMNS` (``samples`` also has one column per
        label used for grouping).
    reference, covariates, balance, stratum_rates, adjusted, duplicates, wrong_faces : pandas.DataFrame
        Optional tables (empty when not computed): group-vs-reference ratios, the covariate
        analysis of ``[analysis] adjust_for``, and the data-quality lists.
    """

    title: str
    provenance: Mapping[str, Any]
    groupings: tuple[str, ...]
    thresholds: tuple[ThresholdInfo, ...]
    samples: pd.DataFrame
    composition: pd.DataFrame
    fta: pd.DataFrame
    rates: pd.DataFrame
    cross_fmr: pd.DataFrame
    disparity: pd.DataFrame
    score_hist: pd.DataFrame
    det: pd.DataFrame
    reference: pd.DataFrame = field(default_factory=lambda: _empty("reference"))
    covariates: pd.DataFrame = field(default_factory=lambda: _empty("covariates"))
    balance: pd.DataFrame = field(default_factory=lambda: _empty("balance"))
    stratum_rates: pd.DataFrame = field(default_factory=lambda: _empty("stratum_rates"))
    adjusted: pd.DataFrame = field(default_factory=lambda: _empty("adjusted"))
    duplicates: pd.DataFrame = field(default_factory=lambda: _empty("duplicates"))
    wrong_faces: pd.DataFrame = field(default_factory=lambda: _empty("wrong_faces"))
    schema_version: str = SCHEMA_VERSION
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_tables(self, TABLE_COLUMNS)

    __repr__ = RatesAccess.__repr__  # one line, not the tables (a dataclass would print them all)

    def same_vs_cross_group(self, grouping: str, threshold: str | None = None) -> pd.DataFrame:
        """Same-group against cross-group impostor FMR, pooled (:func:`audit.frames.same_vs_cross_group`)."""
        from ..frames import same_vs_cross_group

        return same_vs_cross_group(self, grouping, threshold)

    def to_aequitas(self, reference=None, *, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
        """The rates named as Aequitas' Group/Bias tables name them (:func:`audit.frames.to_aequitas`)."""
        from ..frames import to_aequitas

        return to_aequitas(self, reference, grouping=grouping, threshold=threshold)

    # ------------------------------------------------------------------ access helpers
    def group_order(self, grouping: str) -> list[str]:
        """Groups of one grouping in report order: as they first appear in ``composition``, then in
        ``rates`` and ``fta``."""
        seen: dict[str, None] = {}
        for df in (self.composition, self.rates, self.fta):
            for g in df.loc[(df["grouping"] == grouping).to_numpy(dtype=bool), "group"].tolist():
                seen.setdefault(str(g), None)
        return list(seen)

    def rates_frame(self, grouping: str, threshold_name: str | None = None) -> pd.DataFrame:
        """FMR, FNMR and FTA of every group of one grouping, one row per group (and threshold).

        Parameters
        ----------
        grouping : str
            A grouping id, e.g. ``"ethnicity+gender"`` (``"all"`` gives the overall rates).
        threshold_name : str, optional
            One threshold (``"FMR=1e-3"``); default: every threshold, in the result's order.

        Returns
        -------
        pandas.DataFrame
            The columns :data:`RATES_FRAME_COLUMNS`, always; rows ordered by threshold, then by
            group in report order (:meth:`group_order`). ``fmr``/``fnmr``/``fta`` are fractions,
            ``*_ci_low``/``*_ci_high`` their 95% bounds, and ``false_matches``/``impostors``,
            ``false_non_matches``/``mated`` and ``failures``/``attempts`` the counts behind them
            (same-group impostor comparisons for FMR). FTA does not depend on the threshold and is
            repeated on each threshold's rows. Missing values are NaN; ``subjects``/``images``
            come from ``composition``.

        Raises
        ------
        ResultsError
            An unknown grouping or threshold name (the message lists the known ones).

        Examples
        --------
        >>> res.rates_frame("ethnicity", "FMR=1e-3")[["group", "fmr", "fmr_ci_high", "fnmr"]]  # doctest: +SKIP
        """
        known = list(dict.fromkeys([*self.groupings, *map(str, self.rates["grouping"].unique())]))
        if grouping not in known:
            raise ResultsError(f"no grouping named {grouping!r} in this result; its groupings are {known}")
        names = [t.name for t in self.thresholds]
        if threshold_name is not None and threshold_name not in names:
            raise ResultsError(f"no threshold named {threshold_name!r}; this result has {names}")
        chosen = [t for t in self.thresholds if threshold_name is None or t.name == threshold_name]

        def pick(df: pd.DataFrame) -> dict[tuple, dict]:
            out: dict[tuple, dict] = {}
            for r in df.loc[(df["grouping"] == grouping).to_numpy(dtype=bool)].to_dict("records"):
                key = (str(r["group"]), str(r.get("threshold_name", "")), str(r.get("metric", "")).lower())
                out.setdefault(key, r)
            return out

        rates, fta = pick(self.rates), pick(self.fta)
        comp = {k[0]: r for k, r in pick(self.composition).items()}
        nan = math.nan
        rows = []
        for t in chosen:
            for g in self.group_order(grouping):
                fm = rates.get((g, t.name, "fmr"), {})
                fn = rates.get((g, t.name, "fnmr"), {})
                ft = fta.get((g, "", ""), {})
                c = comp.get(g, {})
                if not (fm or fn or ft or c):
                    continue
                ins = fm.get("insufficient")
                rows.append([
                    grouping, g, t.name, t.value, c.get("subjects", nan), c.get("images", nan),
                    fm.get("value", nan), fm.get("ci_low", nan), fm.get("ci_high", nan),
                    fm.get("errors", nan), fm.get("trials", nan), bool(ins) if ins is not None else False,
                    fn.get("value", nan), fn.get("ci_low", nan), fn.get("ci_high", nan),
                    fn.get("errors", nan), fn.get("trials", nan),
                    ft.get("value", nan), ft.get("ci_low", nan), ft.get("ci_high", nan),
                    ft.get("failures", nan), ft.get("attempts", nan),
                ])
        df = pd.DataFrame(rows, columns=RATES_FRAME_COLUMNS)
        count_cols = ["subjects", "images", "false_matches", "impostors", "false_non_matches", "mated", "failures", "attempts"]
        float_cols = [c for c in RATES_FRAME_COLUMNS if c not in ("grouping", "group", "threshold_name", "fmr_insufficient", *count_cols)]
        df[float_cols] = df[float_cols].apply(pd.to_numeric, errors="coerce").astype(float)
        # counts stay integers (pandas' nullable Int64: a missing count is <NA>, not NaN and not 200.0)
        df[count_cols] = df[count_cols].apply(pd.to_numeric, errors="coerce").round().astype("Int64")
        df["fmr_insufficient"] = df["fmr_insufficient"].astype(bool)
        return df

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "title": self.title,
            "provenance": _jsonable(dict(self.provenance)),
            "groupings": list(self.groupings),
            "thresholds": [t.to_dict() for t in self.thresholds],
            "warnings": list(self.warnings),
        }
        out["text_encoding"] = TEXT_ENCODING
        for name in TABLE_COLUMNS:
            out[name] = encode_table(getattr(self, name), name)
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise (one table row a line); write to ``path`` atomically when given. Returns the JSON text."""
        return dump_result_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "AuditResult":
        if not isinstance(data, Mapping):
            raise ResultsError(f"{source}: expected a JSON object at the top level")
        if data.get("result_kind") not in (None, "verification"):
            raise ResultsError(
                f"{source}: field 'result_kind' is {data.get('result_kind')!r}: this is not a 1:1 audit result; read it "
                "with audit.identification.read_result (or IdentificationResult.from_json)"
            )
        version = data.get("schema_version")
        if version is None:
            raise ResultsError(f"{source}: field 'schema_version' is missing; is this a face-audit results.json?")
        if str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ResultsError(
                f"{source}: schema_version {version!r} is not supported (this face-audit reads {SCHEMA_VERSION}); "
                "re-run the audit with this version or upgrade face-audit."
            )
        kwargs: dict[str, Any] = {}
        for name, cols in TABLE_COLUMNS.items():
            block = data.get(name)
            if block is None and name in OPTIONAL_TABLES:
                block = {"columns": TABLE_COLUMNS[name], "rows": []}
            kwargs[name] = decode_table(block, name, source, verbatim=data.get("text_encoding") == TEXT_ENCODING)
        if not isinstance(data.get("thresholds"), list):
            raise ResultsError(f"{source}: field 'thresholds' must be a list of threshold objects")
        try:
            thresholds = tuple(ThresholdInfo(**decode_record(t, _THRESHOLD_TEXT)) for t in data["thresholds"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ResultsError(f"{source}: field 'thresholds' is malformed ({exc})") from exc
        groupings = data.get("groupings", [])
        if not isinstance(groupings, list) or not all(isinstance(g, str) for g in groupings):
            raise ResultsError(f"{source}: field 'groupings' must be a list of grouping ids, found {str(groupings)[:80]!r}")
        if not isinstance(data.get("provenance", {}), Mapping):
            raise ResultsError(f"{source}: field 'provenance' must be an object")
        if not isinstance(data.get("warnings", []), list) or not isinstance(data.get("thresholds"), list):
            raise ResultsError(f"{source}: fields 'warnings' and 'thresholds' must be lists")
        try:
            return cls._build(data, source, groupings, thresholds, version, kwargs)
        except ResultsError as exc:
            raise ResultsError(f"{source}: {exc}") from exc

    @classmethod
    def _build(cls, data, source, groupings, thresholds, version, kwargs) -> "AuditResult":  # noqa: ANN001
        return cls(
            title=str(data.get("title", "")),
            provenance=data.get("provenance", {}),
            groupings=tuple(groupings),
            thresholds=thresholds,
            schema_version=str(version),
            warnings=tuple(data.get("warnings", ())),
            **kwargs,
        )

    @classmethod
    def from_json(cls, path: str | Path) -> "AuditResult":
        return cls.from_dict(load_result_json(path), source=str(path))

    # ------------------------------------------------------------------ tables
    def write_tables(self, folder: str | Path) -> list[Path]:
        """Write each table as CSV into ``folder`` (and ``thresholds.csv``); returns the paths written."""
        return write_csv_tables(self, list(TABLE_COLUMNS), folder)

    def _repr_html_(self) -> str:  # Jupyter
        """A compact view for notebooks, from the report's own templates (:func:`audit.display.result_html`):
        the executive summary, then per-group FMR, FNMR and FTA at the first target-FMR threshold."""
        from ..display import result_html

        return result_html(self)
