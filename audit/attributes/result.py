"""ClassifierResult: everything a classifier audit found, frozen, with a JSON form and CSV tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..errors import ResultsError
from ..results import _from_json, _jsonable, dump_result_json
from .metrics import CONFUSION_COLUMNS, ERROR_COLUMNS, INTERSECTIONAL_COLUMNS

__all__ = ["ClassifierResult", "CLASSIFY_SCHEMA", "CLASSIFY_TABLES", "read_classifier_result"]

CLASSIFY_SCHEMA = "face-audit/classify/1"
#: Table name -> fixed columns.
CLASSIFY_TABLES = {
    "errors": ["attribute", *ERROR_COLUMNS],
    "confusion": ["attribute", *CONFUSION_COLUMNS],
    "intersectional": ["attribute", "group_column", *INTERSECTIONAL_COLUMNS],
    "composition": ["grouping", "group", "images", "subjects"],
    "crosstab": ["row_column", "column_column", "row", "column", "images", "subjects"],
    "samples": None,  # sample_id, subject, status, truth and predicted columns, group columns
}


@dataclass(frozen=True)
class ClassifierResult:
    """The result of an attribute-classifier audit.

    Attributes
    ----------
    title : str
    provenance : dict
        Tool version, classifier (or predictions file) and weight hashes, dataset, config, seed,
        machine, time.
    attributes : tuple of str
        The audited label columns (``("gender",)``).
    groupings : tuple of str
        ``"race"``, ``"race+gender"``, ...
    errors, confusion, intersectional, composition, crosstab : pandas.DataFrame
        Long tables with the columns of :data:`CLASSIFY_TABLES`.
    samples : pandas.DataFrame
        One row per image: ``sample_id``, ``subject``, ``status``, the truth and ``predicted_*``
        columns and the group columns (no file paths).
    warnings : tuple of str
    """

    title: str
    provenance: Mapping[str, Any]
    attributes: tuple[str, ...]
    groupings: tuple[str, ...]
    errors: pd.DataFrame
    confusion: pd.DataFrame
    intersectional: pd.DataFrame
    composition: pd.DataFrame
    crosstab: pd.DataFrame
    samples: pd.DataFrame
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in CLASSIFY_TABLES}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": CLASSIFY_SCHEMA, "title": self.title, "attributes": list(self.attributes),
                               "groupings": list(self.groupings), "warnings": list(self.warnings),
                               "provenance": _jsonable(dict(self.provenance))}
        for name, df in self.tables().items():
            out[name] = {"columns": [str(c) for c in df.columns], "rows": [_jsonable(list(r)) for r in df.itertuples(index=False)]}
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text (tables one row a line); written atomically to ``path`` when given."""
        return dump_result_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassifierResult":
        if data.get("schema") != CLASSIFY_SCHEMA:
            raise ResultsError(f"expected a classifier-audit result (schema {CLASSIFY_SCHEMA!r}), found schema {data.get('schema')!r}")
        tables = {}
        for name, cols in CLASSIFY_TABLES.items():
            t = data.get(name)
            if not isinstance(t, Mapping) or "columns" not in t or "rows" not in t:
                raise ResultsError(f"classifier result: table {name!r} is missing or not {{columns, rows}}")
            if cols is not None and list(t["columns"]) != cols:
                raise ResultsError(f"classifier result: table {name!r} has columns {t['columns']}, expected {cols}")
            tables[name] = pd.DataFrame([[_from_json(v) for v in r] for r in t["rows"]], columns=t["columns"])
        return cls(title=str(data["title"]), provenance=dict(data["provenance"]), attributes=tuple(data["attributes"]),
                   groupings=tuple(data["groupings"]), warnings=tuple(data.get("warnings", ())), **tables)

    def write_tables(self, folder: str | Path) -> list[Path]:
        """Each table as ``folder/<name>.csv``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for name, df in self.tables().items():
            p = folder / f"{name}.csv"
            df.to_csv(p, index=False)
            out.append(p)
        return out


def read_classifier_result(path: str | Path) -> ClassifierResult:
    """Read a ``results.json`` written by :meth:`ClassifierResult.to_json`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot read it as a results JSON file ({exc})") from exc
    return ClassifierResult.from_dict(data)
