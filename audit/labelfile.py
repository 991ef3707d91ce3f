"""Extra label columns from a CSV file, joined onto a samples table.

Groups are data: a label measured after the fact (a skin-tone bin from ``face-audit skintone``,
an annotator's Fitzpatrick type) is a CSV with a key column and one column per label, usable as
a grouping or covariate like any label of the manifest.

The key is ``sample_id`` (one row per image, the image's path under the dataset root) or
``subject`` (one row per person); the file says which by having that column. Every image must
find a row: a missing one is an error naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .errors import DataError

__all__ = ["read_label_file", "join_label_file"]


def read_label_file(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Read a label file; returns the frame (all columns as strings) and its key column.

    Raises
    ------
    DataError
        When the file is missing or unreadable, has neither ``sample_id`` nor ``subject``, or
        repeats a key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file {path} does not exist; write it with `face-audit skintone` or give the right path")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read it as CSV ({exc})") from exc
    key = "sample_id" if "sample_id" in df.columns else "subject" if "subject" in df.columns else None
    if key is None:
        raise DataError(f"{path}: a label file needs a key column `sample_id` (one row per image) or `subject` "
                        f"(one row per person); it has {list(df.columns)}")
    dup = df[key].duplicated()
    if dup.any():
        raise DataError(f"{path}: column {key!r} repeats {df.loc[dup, key].iloc[0]!r} (row {int(dup.idxmax()) + 2}); each key must appear once")
    return df, key


def join_label_file(samples: pd.DataFrame, path: str | Path, *, columns: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Add a label file's columns to a samples table (one row per image).

    Parameters
    ----------
    samples : pandas.DataFrame
        Has ``sample_id`` and ``subject``.
    path : path
        The label file (see the module docstring).
    columns : sequence of str, optional
        Which label columns to add (default: all but the keys).

    Returns
    -------
    (pandas.DataFrame, list of str)
        The joined table (rows in the same order) and the columns added.

    Raises
    ------
    DataError
        A key with no row, a requested column the file lacks, or a column the samples already have.

    Examples
    --------
    >>> s = pd.DataFrame({"sample_id": ["a.jpg", "b.jpg"], "subject": ["1", "1"]})
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "tone.csv")
    >>> _ = pd.DataFrame({"subject": ["1"], "skin_tone": ["II"]}).to_csv(p, index=False)
    >>> join_label_file(s, p)[0]["skin_tone"].tolist()
    ['II', 'II']
    """
    labels, key = read_label_file(path)
    avail = [c for c in labels.columns if c not in ("sample_id", "subject")]
    cols = list(columns) if columns is not None else avail
    unknown = [c for c in cols if c not in avail]
    if unknown:
        raise DataError(f"{path}: has no column(s) {unknown}; its label columns are {avail}")
    clash = [c for c in cols if c in samples.columns]
    if clash:
        raise DataError(f"{path}: column(s) {clash} are already labels of the samples; rename them in the label file")
    merged = samples.merge(labels[[key, *cols]], how="left", on=key, indicator=True, validate="many_to_one")
    absent = merged["_merge"] == "left_only"
    if absent.any():
        first = merged.loc[absent].iloc[0]
        raise DataError(f"{path}: no row for {key} {first[key]!r} ({int(absent.sum())} image(s) lack labels); "
                        "add rows for them or rebuild the file from the same dataset")
    return merged.drop(columns="_merge"), cols
