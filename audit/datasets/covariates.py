"""Covariates: labels such as age that are not audit groups but can confound them.

A manifest declares them under ``covariates``; each becomes a column of the sample table holding
its *stratum* (a band), so that rates can be compared within strata::

    covariates:
      age_band:                       # the column the audit sees (``[analysis] adjust_for``)
        column: face_age              # the label file's column
        bins: [0, 13, 18, 25, 30, 40, 60, 120]   # a number -> a band [lower, upper)
      # or the dataset's own bands, in their order (every value must be listed):
      # age_band: { column: age, order: ["0-2", "3-9", "10-19", ...] }
      # or bands merged by a mapping, as for groups:
      # age_band: { column: age, values: { "0-2": child, "3-9": child, ... } }

Bands of whole-number edges are labelled ``"18-24"`` (``[18, 25)``), others ``"[0.5, 1)"``. A
missing value (empty, NaN) is the stratum ``"unknown"``: reported like any other, never dropped. A
value outside the bins or absent from ``order``/``values`` is an error naming the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from ..errors import ManifestError

__all__ = ["CovariateSpec", "parse_covariates", "apply_covariates", "UNKNOWN", "bin_labels"]

#: The stratum of a missing covariate value.
UNKNOWN = "unknown"

_KEYS = {"column", "bins", "order", "values"}


@dataclass(frozen=True)
class CovariateSpec:
    """One covariate: its name (the table column), the raw ``column``, and exactly one of
    ``bins`` (numeric edges), ``order`` (the dataset's own bands) or ``values`` (raw -> band)."""

    name: str
    column: str
    bins: tuple[float, ...] | None = None
    order: tuple[str, ...] | None = None
    values: Mapping[str, str] | None = None

    @property
    def levels(self) -> tuple[str, ...]:
        """The bands in order (without ``"unknown"``)."""
        if self.bins is not None:
            return bin_labels(self.bins)
        if self.order is not None:
            return self.order
        if self.values is not None:
            return tuple(dict.fromkeys(self.values.values()))
        return ()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column}
        if self.bins is not None:
            out["bins"] = list(self.bins)
        out["levels"] = list(self.levels)
        return out


def bin_labels(bins) -> tuple[str, ...]:
    """Labels of the bands ``[bins[i], bins[i+1])``.

    >>> bin_labels([0, 13, 18, 120])
    ('0-12', '13-17', '18-119')
    >>> bin_labels([0, 0.5, 1])
    ('[0, 0.5)', '[0.5, 1)')
    """
    whole = all(float(b).is_integer() for b in bins)
    if whole:
        return tuple(f"{int(a)}-{int(b) - 1}" for a, b in zip(bins[:-1], bins[1:]))
    return tuple(f"[{a:g}, {b:g})" for a, b in zip(bins[:-1], bins[1:]))


def parse_covariates(raw: Any, where: str) -> tuple[CovariateSpec, ...]:
    """Validate a manifest's ``covariates`` table (``where`` names the manifest)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: field 'covariates' must map a covariate name to {{column: ..., bins: [...]}}")
    out = []
    for name, spec in raw.items():
        f = f"covariates.{name}"
        if not isinstance(spec, Mapping):
            raise ManifestError(f"{where}: field '{f}' must be a mapping with 'column' and one of 'bins', 'order' or 'values'")
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ManifestError(f"{where}: field '{f}' has unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
        column = spec.get("column")
        if not isinstance(column, str) or not column:
            raise ManifestError(f"{where}: field '{f}.column' must name a label column, found {column!r}")
        given = [k for k in ("bins", "order", "values") if spec.get(k) is not None]
        if len(given) > 1:
            raise ManifestError(f"{where}: field '{f}' gives {given}; give one of 'bins', 'order' or 'values'")
        bins = order = values = None
        if "bins" in given:
            b = spec["bins"]
            if (not isinstance(b, list) or len(b) < 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in b)
                    or not all(math.isfinite(x) for x in b) or any(y <= x for x, y in zip(b, b[1:]))):
                raise ManifestError(f"{where}: field '{f}.bins' must be at least two increasing finite numbers "
                                    f"(band edges, e.g. [0, 13, 18, 30, 45, 60, 120]); found {b!r}")
            bins = tuple(float(x) for x in b)
        elif "order" in given:
            o = spec["order"]
            if not isinstance(o, list) or not o or len(set(map(str, o))) != len(o):
                raise ManifestError(f"{where}: field '{f}.order' must be a list of the distinct bands in order; found {o!r}")
            order = tuple(str(x) for x in o)
        elif "values" in given:
            v = spec["values"]
            if not isinstance(v, Mapping) or not v:
                raise ManifestError(f"{where}: field '{f}.values' must map each raw value to its band")
            values = {str(k): str(x) for k, x in v.items()}
        out.append(CovariateSpec(str(name), column, bins, order, values))
    return tuple(out)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.strip().lower() in ("", "nan", "na", "none"))


def apply_covariates(df: pd.DataFrame, specs, where: str) -> pd.DataFrame:
    """Add one column per covariate holding each image's band (``"unknown"`` where missing).

    Raises
    ------
    ManifestError
        Naming the image and the value when a value cannot be placed in a band.
    """
    df = df.copy()
    for spec in specs:
        if spec.column not in df.columns:
            raise ManifestError(f"{where}: field 'covariates.{spec.name}.column' names {spec.column!r}, which the labels lack; "
                                f"columns are {sorted(map(str, df.columns))}")
        raw = df[spec.column]
        bands = []
        for i, v in enumerate(raw.tolist()):
            if _missing(v):
                bands.append(UNKNOWN)
                continue
            band = _band(spec, v)
            if band is None:
                row = df.iloc[i]
                how = ("widen 'bins'" if spec.bins is not None else "add it to 'order'" if spec.order is not None else "map it under 'values'")
                raise ManifestError(f"{where}: field 'covariates.{spec.name}': {spec.column} value {v!r} of image "
                                    f"{row.get('sample_id', i)} (subject {row.get('subject', '?')}) falls in no band; {how}")
            bands.append(band)
        if spec.name in df.columns and spec.name != spec.column:
            df[f"{spec.name}_original"] = df[spec.name]
        df[spec.name] = bands
    return df


def _band(spec: CovariateSpec, v) -> str | None:
    if spec.bins is not None:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(x):
            return None
        for label, lo, hi in zip(spec.levels, spec.bins[:-1], spec.bins[1:]):
            if lo <= x < hi:
                return label
        return None
    if spec.order is not None:
        return str(v) if str(v) in spec.order else None
    if spec.values is not None:
        return spec.values.get(str(v))
    return str(v)
