"""IdentificationResult: the frozen outcome of a 1:N audit, and its versioned JSON form.

Like :class:`~audit.verification.result.AuditResult` it holds long DataFrames with fixed columns
(:data:`ID_TABLE_COLUMNS`), the thresholds and the provenance, and round-trips through JSON
exactly. Its JSON carries ``"result_kind": "identification"`` so that readers (the gate, the
report command) know which kind of result a ``results.json`` holds; :func:`read_result` reads
either kind.

Conventions are those of :mod:`audit.results`: a grouping id joins label columns with ``+``, a
group label joins values with ``" / "``, the overall population is grouping ``"all"`` group
``"All"``, thresholds are in similarity units (a candidate is returned when
``score >= threshold``) with ``native_value`` in the backend's units, and rates are fractions
with their counts and a 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..errors import ResultsError
from ..results import (
    write_csv_tables,
    SCHEMA_VERSION,
    RatesAccess,
    _jsonable,
    check_tables,
    TEXT_ENCODING,
    decode_record,
    decode_table,
    encode_table,
    dump_result_json,
    load_result_json,
)
from ..verification.result import AuditResult

__all__ = ["RESULT_KIND", "ID_TABLE_COLUMNS", "IdentificationThreshold", "IdentificationResult", "read_result"]

#: The marker in results.json that says "this is a 1:N identification result".
RESULT_KIND = "identification"

#: The fixed columns of each table of an IdentificationResult.
ID_TABLE_COLUMNS: dict[str, list[str]] = {
    # one row per image used (gallery and probes); group label columns follow
    "samples": ["sample_id", "subject", "dataset", "role", "status", "n_faces", "detail", "path"],
    # subjects and images by group and role ("gallery", "mated", "nonmated")
    "composition": ["grouping", "group", "role", "subjects", "images", "acquired"],
    # failure to acquire of the images used, by group
    "fta": ["grouping", "group", "failures", "attempts", "value", "ci_low", "ci_high", "ci_method"],
    # FPIR (non-mated searches of the group) and FNIR (mated searches, at rank <= R) at every threshold;
    # ci_* are Wilson or Clopper-Pearson intervals (ci_method), boot_* the subject bootstrap (resampling probe subjects), nan when not run
    "rates": [
        "grouping", "group", "threshold_name", "threshold", "metric", "errors", "trials", "value",
        "ci_low", "ci_high", "ci_method", "insufficient", "subjects", "boot_low", "boot_high",
    ],
    # rank-r identification rate of mated searches, threshold-free (CMC), r = 1..k
    "cmc": ["grouping", "group", "rank", "hits", "searches", "value", "ci_low", "ci_high", "ci_method"],
    # the ACLU-style table: probes with at least one false candidate at or above the threshold, by probe group,
    # with one-sided exact tests of whether they fall on the group more than its share of probes
    "false_matches": [
        "grouping", "group", "threshold_name", "threshold", "probe_set", "probes", "probe_share",
        "with_false", "false_share", "ratio", "binom_p", "fisher_odds_ratio", "fisher_p",
    ],
    # the false candidates themselves (gallery side), by the candidate's group
    "candidates": [
        "grouping", "group", "threshold_name", "threshold", "probe_set", "false_candidates", "candidate_share",
        "distinct_subjects", "gallery_subjects", "gallery_share", "ratio", "binom_p",
    ],
    # non-mated searches of probe group A whose top candidate (>= threshold) is of gallery group B
    "cross_fpir": [
        "grouping", "threshold_name", "threshold", "probe_group", "candidate_group",
        "false_positives", "searches", "fpir",
    ],
    # disparity summaries of FPIR and FNIR across the groups of a grouping (bootstrap interval where computed)
    "disparity": [
        "grouping", "threshold_name", "metric", "summary", "value", "group_high", "group_low",
        "groups_used", "note", "ci_low", "ci_high",
    ],
    # histograms of mate scores and non-mated top scores by probe group
    "score_hist": ["grouping", "group", "kind", "bin_left", "bin_right", "count"],
    # one row per probe: what its search returned (no embeddings)
    "searches": [
        "sample_id", "subject", "mated", "status", "searched", "top_subject", "top_score", "mate_rank", "mate_score",
    ],
}


@dataclass(frozen=True)
class IdentificationThreshold:
    """One operating threshold of a 1:N audit, fixed on all non-mated searches or given.

    Attributes
    ----------
    name : str
        ``"FPIR=1e-2"`` for a target, ``"fixed 0.5"`` for a given value, ``"default 0.6"`` for the
        backend's own (1:1) default.
    kind : {"target_fpir", "fixed", "backend_default"}
    value : float
        Similarity units: a candidate is returned when ``score >= value``.
    native_value : float
        The same in the backend's units.
    target_fpir : float or None
    achieved_fpir : float
        FPIR over all non-mated searches at ``value``.
    false_positives, nonmated_searches : int
    achieved_fnir : float
        FNIR over all mated searches at ``value`` and the result's rank.
    misses, mated_searches : int
    insufficient : bool
        Fewer than ``3 / FPIR`` non-mated searches (the target's, or the achieved one for a given
        threshold): the FPIR cannot be told apart from zero at that level.
    """

    name: str
    kind: str
    value: float
    native_value: float
    target_fpir: float | None
    achieved_fpir: float
    false_positives: int
    nonmated_searches: int
    achieved_fnir: float
    misses: int
    mated_searches: int
    insufficient: bool

    # the gate and shared report helpers read 1:1 names; these aliases keep them working
    @property
    def target_fmr(self) -> float | None:
        return self.target_fpir

    @property
    def achieved_fmr(self) -> float:
        return self.achieved_fpir

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class IdentificationResult(RatesAccess):
    """The outcome of one 1:N identification audit.

    Attributes
    ----------
    title : str
    provenance : dict
        ``tool_version``, ``backend``, ``dataset`` (or ``gallery``/``probes`` datasets),
        ``protocol`` (scenario, gallery and probe sizes, k, rank, failed-probe rule),
        ``search`` (backend, exactness, parameters, recall@k of an approximate index),
        ``config``, ``seed``, ``machine``, ``created``, ``timing``.
    groupings : tuple of str
    thresholds : tuple of IdentificationThreshold
    k : int
        Candidate list length.
    rank : int
        FNIR counts a mate as found at rank ``<= rank``.
    samples, composition, fta, rates, cmc, false_matches, candidates, cross_fpir, disparity,
    score_hist, searches : pandas.DataFrame
        Columns as :data:`ID_TABLE_COLUMNS` (``samples`` also has the group label columns).
    warnings : tuple of str
    """

    title: str
    provenance: Mapping[str, Any]
    groupings: tuple[str, ...]
    thresholds: tuple[IdentificationThreshold, ...]
    k: int
    rank: int
    samples: pd.DataFrame
    composition: pd.DataFrame
    fta: pd.DataFrame
    rates: pd.DataFrame
    cmc: pd.DataFrame
    false_matches: pd.DataFrame
    candidates: pd.DataFrame
    cross_fpir: pd.DataFrame
    disparity: pd.DataFrame
    score_hist: pd.DataFrame
    searches: pd.DataFrame
    schema_version: str = SCHEMA_VERSION
    warnings: tuple[str, ...] = field(default_factory=tuple)
    result_kind: str = RESULT_KIND

    def __post_init__(self) -> None:
        check_tables(self, ID_TABLE_COLUMNS)

    # ------------------------------------------------------------------ access helpers
    # threshold(), by_group(), overall, ratio() and difference() come from RatesAccess
    __repr__ = RatesAccess.__repr__  # one line, not the tables

    def aclu_table(self, grouping: str, threshold_name: str, probe_set: str = "all") -> pd.DataFrame:
        """The ACLU-style table for one grouping and threshold (one row per probe group)."""
        df = self.false_matches
        df = df[(df["grouping"] == grouping) & (df["threshold_name"] == threshold_name) & (df["probe_set"] == probe_set)]
        if df.empty:
            raise ResultsError(f"no false-match rows for grouping {grouping!r} at {threshold_name!r} ({probe_set} probes)")
        return df.reset_index(drop=True)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "result_kind": self.result_kind,
            "schema_version": self.schema_version,
            "title": self.title,
            "provenance": _jsonable(dict(self.provenance)),
            "groupings": list(self.groupings),
            "k": int(self.k),
            "rank": int(self.rank),
            "thresholds": [t.to_dict() for t in self.thresholds],
            "warnings": list(self.warnings),
        }
        out["text_encoding"] = TEXT_ENCODING
        for name in ID_TABLE_COLUMNS:
            out[name] = encode_table(getattr(self, name), name)
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise (one table row a line); write to ``path`` atomically when given. Returns the JSON text."""
        return dump_result_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "IdentificationResult":
        if not isinstance(data, Mapping):
            raise ResultsError(f"{source}: expected a JSON object at the top level")
        kind = data.get("result_kind")
        if kind != RESULT_KIND:
            raise ResultsError(
                f"{source}: field 'result_kind' is {kind!r}, not {RESULT_KIND!r}; this is not an identification result "
                "(read a 1:1 result with AuditResult.from_json, or either kind with audit.identification.read_result)"
            )
        version = data.get("schema_version")
        if version is None or str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ResultsError(f"{source}: schema_version {version!r} is not supported (this face-audit reads {SCHEMA_VERSION})")
        kwargs: dict[str, Any] = {}
        for name in ID_TABLE_COLUMNS:
            block = data.get(name)
            if not isinstance(block, Mapping) or "columns" not in block or "rows" not in block:
                raise ResultsError(f"{source}: field {name!r} must be an object with 'columns' and 'rows'")
            kwargs[name] = decode_table(block, name, source, verbatim=data.get("text_encoding") == TEXT_ENCODING)
        try:
            thresholds = tuple(IdentificationThreshold(**decode_record(t, frozenset({"name", "kind", "metric"}))) for t in data["thresholds"])
            k, rank = int(data["k"]), int(data["rank"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultsError(f"{source}: field 'thresholds', 'k' or 'rank' is missing or malformed ({exc})") from exc
        return cls(title=str(data.get("title", "")), provenance=data.get("provenance", {}),
                   groupings=tuple(data.get("groupings", ())), thresholds=thresholds, k=k, rank=rank,
                   schema_version=str(version), warnings=tuple(data.get("warnings", ())), **kwargs)

    @classmethod
    def from_json(cls, path: str | Path) -> "IdentificationResult":
        return cls.from_dict(_load(path), source=str(path))

    # ------------------------------------------------------------------ tables
    def write_tables(self, folder: str | Path) -> list[Path]:
        """Write each table as CSV into ``folder`` (and ``thresholds.csv``); returns the paths."""
        return write_csv_tables(self, list(ID_TABLE_COLUMNS), folder)

    def _repr_html_(self) -> str:  # Jupyter
        from html import escape

        head = f"<h4>{escape(self.title)}</h4>"
        if self.rates.empty:
            return head + "<p>No rates.</p>"
        t0 = self.thresholds[0].name if self.thresholds else None
        df = self.rates[self.rates["threshold_name"] == t0]
        cols = ["grouping", "group", "metric", "value", "ci_low", "ci_high", "errors", "trials", "insufficient"]
        fm = self.false_matches
        fm = fm[(fm["threshold_name"] == t0) & (fm["probe_set"] == "all") & (fm["grouping"] != "all")]
        body = (f"<p>1:N identification, k = {self.k}, FNIR at rank ≤ {self.rank}; at threshold {escape(str(t0))}</p>"
                + df[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        if not fm.empty:
            body += ("<p>Probes with a false candidate (ACLU-style)</p>"
                     + fm[["grouping", "group", "probes", "probe_share", "with_false", "false_share", "binom_p", "fisher_p"]]
                     .to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        return head + body


def _load(path: str | Path) -> Any:
    return load_result_json(path)


def read_result(path: str | Path) -> AuditResult | IdentificationResult:
    """Read a ``results.json`` of either kind: 1:N when it carries ``"result_kind": "identification"``,
    else a 1:1 :class:`~audit.verification.result.AuditResult`."""
    data = _load(path)
    if isinstance(data, Mapping) and data.get("result_kind") == RESULT_KIND:
        return IdentificationResult.from_dict(data, source=str(path))
    return AuditResult.from_dict(data, source=str(path))

