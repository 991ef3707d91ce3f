"""What results of every kind share: labels, thresholds, the versioned JSON form and safe CSV.

The 1:1 :class:`~audit.verification.result.AuditResult` and the 1:N
:class:`~audit.identification.result.IdentificationResult` (and the classifier audits' results)
build on this module: :class:`ThresholdInfo`, :class:`RatesAccess` (the tidy views), the JSON
encoding of tables (``encode_table``/``decode_table``, with ``schema_version`` so that readers can
refuse files they do not understand) and :func:`csv_safe`.

Conventions
-----------
- A *grouping* is a set of label columns; its id joins them with ``+`` (``"ethnicity"``,
  ``"ethnicity+gender"``). A *group* label joins the values with ``" / "`` (``"Black / female"``).
- Thresholds are identified by ``name`` (``"FMR=1e-3"``, ``"fixed 0.6"``) and stored in similarity
  units (higher = more alike). ``native_value`` is the backend's own unit (a distance for
  Euclidean backends).
- Rates are fractions in [0, 1]; ``errors``/``trials`` are the counts behind them; ``ci_low``/
  ``ci_high`` bound a 95% interval (Wilson unless ``ci_method`` says otherwise).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ResultsError

__all__ = ["distinct_labels", "rate_label", "value_label", "SCHEMA_VERSION", "ThresholdInfo",
           "csv_safe", "decode_table", "encode_table", "load_result_json", "TEXT_ENCODING"]

SCHEMA_VERSION = "1.1"


def rate_label(x: float, digits: int = 1) -> str:
    """A target rate as ``1e-3`` / ``1.5e-3`` with ``digits`` significant digits."""
    m, e = f"{x:.{digits - 1}e}".split("e")
    if "." in m:
        m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def distinct_labels(values: Sequence[float], fmt) -> list[str]:
    """The shortest labels ``fmt(value, digits)`` that tell the values apart (more significant
    digits until no two different values share a label; equal values get " #2", " #3", ...).

    Examples
    --------
    >>> distinct_labels([2e-3, 1.5e-3, 1e-4], rate_label)
    ['2e-3', '1.5e-3', '1e-4']
    """
    vals = [float(v) for v in values]
    for digits in range(1, 18):
        labels = [fmt(v, digits) for v in vals]
        clash = any(labels[i] == labels[j] and vals[i] != vals[j] for i in range(len(vals)) for j in range(i))
        if not clash:
            break
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
    return out


def value_label(x: float, digits: int = 1) -> str:
    """A threshold value as ``%g`` (more digits when asked)."""
    return f"{x:.{max(digits, 3)}g}" if digits > 1 else f"{x:g}"


@dataclass(frozen=True)
class ThresholdInfo:
    """One operating threshold, fixed on all impostor comparisons or given.

    Attributes
    ----------
    name : str
        ``"FMR=1e-3"`` for a target, ``"fixed 0.6"`` for a given value, ``"default 0.6"`` for the
        backend's own default.
    kind : {"target_fmr", "fixed", "backend_default"}
    value : float
        In similarity units: a pair matches when ``similarity >= value``.
    native_value : float
        The same threshold in the backend's units.
    target_fmr : float or None
    achieved_fmr : float
        Overall FMR at ``value`` over all impostor comparisons.
    false_matches, impostors : int
        The counts behind ``achieved_fmr``.
    achieved_fnmr : float
        Overall FNMR at ``value`` over all mated comparisons.
    insufficient : bool
        True when ``impostors < 3 / target_fmr`` (the target cannot be estimated reliably).
    """

    name: str
    kind: str
    value: float
    native_value: float
    target_fmr: float | None
    achieved_fmr: float
    false_matches: int
    impostors: int
    achieved_fnmr: float
    insufficient: bool

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


class RatesAccess:
    """Accessors shared by the 1:1 and the 1:N results (both hold ``thresholds``, ``rates`` and
    ``groupings``)."""

    def threshold(self, name: str):
        """The threshold called ``name`` (its info record)."""
        for t in self.thresholds:
            if t.name == name:
                return t
        raise ResultsError(f"no threshold named {name!r}; this result has {[t.name for t in self.thresholds]}")

    def by_group(self, grouping: str, threshold: str | None = None) -> pd.DataFrame:
        """The two error rates (FMR and FNMR, or FPIR and FNIR) side by side for one grouping, one
        row per threshold and group: columns ``<metric>_<value|ci_low|ci_high|errors|trials|insufficient>``,
        counts as integers (see :func:`audit.frames.by_group`)."""
        from .frames import by_group

        return by_group(self, grouping, threshold)

    @property
    def overall(self) -> pd.DataFrame:
        """The overall rates, one row per threshold (:func:`audit.frames.overall`)."""
        from .frames import overall

        return overall(self)

    def ratio(self, reference=None, *, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
        """Each group's rate over its reference group's (:func:`audit.frames.ratio`; default reference:
        the result's own, as the report shows it)."""
        from .frames import ratio

        return ratio(self, reference, grouping=grouping, threshold=threshold)

    def difference(self, reference=None, *, grouping: str | None = None, threshold: str | None = None) -> pd.DataFrame:
        """Each group's rate minus its reference group's (:func:`audit.frames.difference`)."""
        from .frames import difference

        return difference(self, reference, grouping=grouping, threshold=threshold)

    def __repr__(self) -> str:
        from .frames import short_repr

        return short_repr(self)


def check_tables(result: Any, columns: Mapping[str, list[str]]) -> None:
    """Raise ResultsError unless each table named in ``columns`` is a DataFrame with those columns."""
    kind = type(result).__name__
    for name, cols in columns.items():
        df = getattr(result, name)
        if not isinstance(df, pd.DataFrame):
            raise ResultsError(f"{kind}.{name} must be a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ResultsError(f"{kind}.{name} lacks the columns {missing}; expected {cols}")


def paths_of_failures_only(samples: pd.DataFrame) -> pd.DataFrame:
    """The samples table as results keep it: a file path only for images that failed to acquire
    (an auditor looks those up; the others' paths are machine-specific and make results large)."""
    out = samples.copy()
    if "path" in out.columns and "status" in out.columns:
        out["path"] = out["path"].where(out["status"].astype(str) != "ok", "")
    return out


def dump_result_json(data: Mapping[str, Any], path: str | Path | None = None) -> str:
    """JSON text of a result dict: tables (``{"columns", "rows"}``) with one row a line, the rest
    indented; written atomically to ``path`` when given. Shared by every result kind."""
    parts = []
    for key, value in data.items():
        if isinstance(value, Mapping) and set(value) == {"columns", "rows"}:
            cols = json.dumps(value["columns"], allow_nan=False)
            rows = ",\n  ".join(json.dumps(r, allow_nan=False, separators=(",", ":")) for r in value["rows"])
            body = f'{{"columns": {cols}, "rows": [\n  {rows}\n ]}}' if value["rows"] else f'{{"columns": {cols}, "rows": []}}'
        else:
            body = json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n ")
        parts.append(f" {json.dumps(key)}: {body}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    if path is not None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not leave results.json.tmp behind
            raise
    return text


# NaN and infinity are not JSON: encode them as strings and decode them back -- in numeric
# columns only, so that a group label "NaN" or "Infinity" stays the text it was.
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

#: Columns of result tables (either kind) that hold text: labels, names, notes. Their values are
#: never decoded as numbers.
TEXT_COLUMNS = frozenset({
    "grouping", "group", "threshold_name", "metric", "ci_method", "group_a", "group_b", "summary", "group_high",
    "group_low", "note", "kind", "sample_id", "subject", "path", "status", "detail", "dataset", "role", "probe_set",
    "probe_group", "candidate_group", "top_subject", "name", "reference", "method", "estimand",
    "covariate", "stratum", "strata_missing", "scope", "sample_a", "sample_b", "subject_a", "subject_b", "reason",
    "nearest_other_subject",
})
#: The numeric columns of the per-image tables; their other columns are labels (text).
_PER_IMAGE_NUMERIC = {"samples": frozenset({"n_faces"}), "searches": frozenset({"top_score", "mate_rank", "mate_score"})}
#: Columns a gate reads as rates and counts: a value there must be a number (NaN allowed), never text or null.
_STRICT = {"rates": ("value", "errors", "trials"), "fta": ("value", "failures", "attempts")}
_THRESHOLD_TEXT = frozenset({"name", "kind", "metric"})

#: A CSV cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _numeric_columns(table: str, columns) -> set[str]:
    if table in _PER_IMAGE_NUMERIC:
        return {c for c in columns if c in _PER_IMAGE_NUMERIC[table]}
    return {c for c in columns if c not in TEXT_COLUMNS}


def decode_record(record: Mapping[str, Any], text: frozenset = TEXT_COLUMNS) -> dict[str, Any]:
    """A JSON object's fields, with "NaN"/"Infinity" decoded in the fields that are not text."""
    return {k: (v if k in text else _from_json(v)) for k, v in record.items()}


#: Marks results files whose text columns hold labels verbatim (a missing text value is ``null``);
#: files without it (written before) decode "NaN"/"Infinity" in every column, as they were written.
TEXT_ENCODING = "labels-verbatim"


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v))


def encode_table(df: pd.DataFrame, name: str) -> dict[str, Any]:
    """A table as ``{"columns", "rows"}``: numbers JSON-safe ("NaN"/"Infinity" strings), text
    cells verbatim, a missing text value ``null``."""
    cols = list(df.columns)
    numeric = _numeric_columns(name, cols)
    text_pos = [i for i, c in enumerate(cols) if c not in numeric]
    rows = []
    for row in df.itertuples(index=False):
        r = [_jsonable(v) for v in row]
        for i in text_pos:
            if _missing(row[i]):
                r[i] = None
        rows.append(r)
    return {"columns": cols, "rows": rows}


def decode_table(block: Any, name: str, source: str, *, verbatim: bool = True) -> pd.DataFrame:
    """One ``{"columns", "rows"}`` table of a results file as a DataFrame.

    Special numbers ("NaN", "Infinity", "-Infinity") are decoded in numeric columns only; text
    columns keep any string (``null`` there is a missing value). With ``verbatim=False`` (files
    written before :data:`TEXT_ENCODING`) text columns are decoded as they were written. Raises
    ResultsError naming the table, row and column for a malformed table or a numeric cell that is
    not a number."""
    if not isinstance(block, Mapping) or "columns" not in block or "rows" not in block:
        raise ResultsError(f"{source}: field {name!r} must be an object with 'columns' and 'rows'")
    columns, rows = block["columns"], block["rows"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise ResultsError(f"{source}: field '{name}.columns' must be a list of distinct column names")
    if not isinstance(rows, list):
        raise ResultsError(f"{source}: field '{name}.rows' must be a list of rows")
    numeric = _numeric_columns(name, columns)
    strict = set(_STRICT.get(name, ()))
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, list) or len(r) != len(columns):
            raise ResultsError(f"{source}: field '{name}.rows' row {i}: expected a list of {len(columns)} values, found {str(r)[:60]!r}")
        row = []
        for c, v in zip(columns, r):
            if c in numeric:
                v = _from_json(v)
                bad = isinstance(v, str) or isinstance(v, (list, dict)) or (v is None and c in strict)
                if bad:
                    raise ResultsError(
                        f"{source}: field '{name}' row {i} column {c!r} is {v!r}, not a number; "
                        "the results file was edited or damaged: run the audit again"
                    )
            elif v is None and verbatim:
                v = math.nan
            elif not verbatim:
                v = _from_json(v)
            row.append(v)
        out.append(row)
    df = pd.DataFrame(out, columns=columns)
    if df.empty:
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return df


def load_result_json(path: str | Path) -> Any:
    """Parse a results file; any unreadable file (absent, a folder, binary, not JSON) is a ResultsError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ResultsError(f"{path}: no such results file") from exc
    except IsADirectoryError as exc:
        raise ResultsError(f"{path}: is a folder; give the path of a results.json") from exc
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read the results file ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not a results.json (not UTF-8 text: byte {exc.start} is not valid)") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    except RecursionError as exc:
        raise ResultsError(f"{path}: JSON nested too deeply to be a results file") from exc


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` in which text cells that a spreadsheet would run as a formula (starting
    with ``= + - @``, tab or carriage return) are prefixed with a single quote. Numbers are kept."""
    out = df.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if v is None or isinstance(v, (str, int)):
        return v
    if v is pd.NA:
        return None
    return str(v)


def _from_json(v: Any) -> Any:
    if isinstance(v, str) and v in _SPECIAL:
        return _SPECIAL[v]
    return v


def write_csv_tables(result: Any, names: Sequence[str], folder: str | Path) -> list[Path]:
    """Write the result's tables ``names`` and its ``thresholds`` as CSV (spreadsheet-safe) into
    ``folder``; returns the paths written. Shared by both result kinds' ``write_tables``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        p = folder / f"{name}.csv"
        csv_safe(getattr(result, name)).to_csv(p, index=False)
        written.append(p)
    p = folder / "thresholds.csv"
    csv_safe(pd.DataFrame([t.to_dict() for t in result.thresholds])).to_csv(p, index=False)
    written.append(p)
    return written
