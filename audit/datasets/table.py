"""SampleTable: one row per face image, with its subject and demographic group labels.

Columns
-------
sample_id : str
    The image's path relative to the dataset root (``/`` separators); unique.
path : str
    Absolute path of the file.
subject : str
    Identity; mated comparisons are pairs of images with the same subject.
sha256 : str
    Hash of the file's bytes: the embedding cache's image key.
<group columns> : str
    One per audit group (``ethnicity``, ``gender``), mapped from the dataset's own values.
<original columns>
    The dataset's own label columns, kept unchanged (``face_eth``), and any named groups of the
    manifest's image pattern (``expression``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DatasetError, ManifestError
from .covariates import apply_covariates
from .manifest import Manifest

__all__ = ["SampleTable", "REQUIRED_COLUMNS", "grouping_id", "group_labels", "join_group_values", "GROUP_SEP"]

REQUIRED_COLUMNS = ("sample_id", "path", "subject", "sha256")
GROUP_SEP = " / "


def grouping_id(columns: Sequence[str]) -> str:
    """``["ethnicity", "gender"]`` -> ``"ethnicity+gender"``."""
    return "+".join(columns)


def join_group_values(values: Sequence[str]) -> str:
    """The label of an intersection: its values joined with ``" / "``.

    A value that itself contains ``" / "`` (or starts with a double quote) is written as a JSON
    string (``"a / b" / female``), so two different cells never get the same label and any label
    text survives. Ordinary values are joined as they are (``Black / female``); a single value is
    its own label."""
    import json

    values = [str(v) for v in values]
    if len(values) == 1:  # a single column's label is its value, as it is
        return values[0]
    return GROUP_SEP.join(json.dumps(v, ensure_ascii=False) if (GROUP_SEP in v or v.startswith('"')) else v for v in map(str, values))


def group_labels(df: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The group label of each row for a grouping: values joined by :func:`join_group_values`."""
    if len(columns) == 1:
        return df[columns[0]].astype(str)
    return df[list(columns)].astype(str).agg(join_group_values, axis=1)


@dataclass(frozen=True)
class SampleTable:
    """A validated table of face images. See the module docstring for the columns.

    Attributes
    ----------
    data : pandas.DataFrame
    group_columns : tuple of str
        The audit group columns (``("ethnicity", "gender")``).
    dataset : dict
        Provenance of the dataset (manifest name, hash, licence, ...).
    """

    data: pd.DataFrame
    group_columns: tuple[str, ...]
    dataset: dict

    def __post_init__(self) -> None:
        missing = [c for c in (*REQUIRED_COLUMNS, *self.group_columns) if c not in self.data.columns]
        if missing:
            raise DatasetError(f"a SampleTable needs the columns {missing}; it has {list(self.data.columns)}")
        dup = self.data["sample_id"].duplicated()
        if dup.any():
            raise DatasetError(f"sample_id must be unique; {int(dup.sum())} repeat, e.g. {self.data.loc[dup, 'sample_id'].iloc[0]!r}")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def n_subjects(self) -> int:
        return int(self.data["subject"].nunique())

    def groups(self, columns: Sequence[str]) -> pd.Series:
        """Group label per image for a grouping (a list of group columns)."""
        unknown = [c for c in columns if c not in self.group_columns]
        if unknown:
            raise DatasetError(f"unknown group column(s) {unknown}; this dataset has {list(self.group_columns)}")
        return group_labels(self.data, columns)

    def subset_subjects(self, n: int, *, seed: int = 0, balance: Sequence[str] | None = None) -> "SampleTable":
        """Keep ``n`` subjects drawn at random (seeded). Used for quick runs and tests.

        Without ``balance``, stratified so every group of the first group column keeps at least
        one subject where possible. With ``balance`` (columns such as ``["ethnicity", "gender"]``)
        people are spread evenly over the cells of those columns (a person's cell is their first
        image's): cells take one person each in turn, in sorted order, until ``n`` are taken, a
        cell with no one left dropping out; who is taken within a cell is drawn at random. The
        cells and counts are recorded in ``dataset["subset"]``. ``n`` must be at least 2."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise DatasetError(f"--subjects / dataset.subjects: expected an integer >= 2 (an audit compares people), found {n!r}")
        subjects = self.data.drop_duplicates("subject")
        rng = np.random.default_rng(seed)
        if balance:
            return self._balanced(subjects, int(n), seed, list(balance), rng)
        if n >= len(subjects):
            return self
        first = self.group_columns[0] if self.group_columns else None
        chosen: list[str] = []
        if first:
            for _, g in subjects.groupby(first, sort=True):
                chosen.append(g["subject"].iloc[int(rng.integers(len(g)))])
        rest = subjects[~subjects["subject"].isin(chosen)]["subject"].to_numpy()
        extra = max(0, n - len(chosen))
        chosen += list(rng.choice(rest, size=min(extra, len(rest)), replace=False))
        keep = self.data["subject"].isin(chosen[:n])
        return SampleTable(self.data[keep].reset_index(drop=True), self.group_columns, dict(self.dataset, subset=f"{n} subjects, seed {seed}"))

    def _balanced(self, subjects: pd.DataFrame, n: int, seed: int, cols: list[str], rng) -> "SampleTable":
        unknown = [c for c in cols if c not in self.data.columns]
        if unknown:
            raise DatasetError(f"--balance / dataset.balance names {unknown}, which the dataset lacks; "
                               f"its label columns are {list(self.group_columns)}")
        cells = {key: rng.permutation(g["subject"].to_numpy()).tolist()
                 for key, g in subjects.groupby([subjects[c].astype(str) for c in cols], sort=True)}
        taken = {key: 0 for key in cells}
        total = 0
        while total < n and any(taken[k] < len(v) for k, v in cells.items()):
            for key, people in cells.items():
                if total < n and taken[key] < len(people):
                    taken[key] += 1
                    total += 1
        chosen = [p for key, people in cells.items() for p in people[:taken[key]]]
        keep = self.data["subject"].isin(chosen)
        counts = {join_group_values(k if isinstance(k, tuple) else (k,)): v for k, v in taken.items()}
        text = f"{total} subjects balanced over {', '.join(cols)} ({len(cells)} cells), seed {seed}"
        return SampleTable(self.data[keep].reset_index(drop=True), self.group_columns,
                           dict(self.dataset, subset=text, subset_balance={"columns": cols, "seed": seed, "people_per_cell": counts}))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_manifest(cls, manifest: Manifest, root: Path, sha256: dict[str, str]) -> "SampleTable":
        """Build the table from a verified dataset root (see :func:`audit.datasets.locate_dataset`).

        Raises
        ------
        ManifestError
            When an image path does not match ``images.pattern``, a label column is unknown, a
            subject has no label row, or a label value has no mapping.
        """
        root = Path(root)
        rels = sorted({p.relative_to(root).as_posix() for g in manifest.image_globs for p in root.glob(g) if p.is_file()})
        listed = [r for r in rels if r in manifest.checksums]
        unlisted = [r for r in rels if r not in manifest.checksums]
        if unlisted:
            raise ManifestError(
                f"{manifest.path}: field 'source.checksums' does not list {len(unlisted)} image(s) found under {root}, "
                f"e.g. {unlisted[0]}. Add them to the checksums file or narrow 'images.glob'."
            )
        if not listed:
            raise ManifestError(f"{manifest.path}: field 'images.glob' {list(manifest.image_globs)} matches no file under {root}")
        rows = []
        for rel in listed:
            m = manifest.image_pattern.match(rel)
            if not m:
                raise ManifestError(
                    f"{manifest.path}: field 'images.pattern': image {rel} does not match {manifest.image_pattern.pattern!r}"
                )
            row = {"sample_id": rel, "path": str((root / rel).resolve()), "sha256": sha256[rel]}
            row.update({k: v for k, v in m.groupdict().items() if v is not None})
            rows.append(row)
        df = pd.DataFrame(rows)

        if manifest.labels_file:
            df = _join_labels(df, manifest, root)
        if manifest.label_lists:
            df = _list_labels(df, manifest, root)
        for spec in manifest.groups:
            if spec.column not in df.columns:
                raise ManifestError(
                    f"{manifest.path}: field 'groups.{spec.name}.column' names {spec.column!r}, which is neither a column of "
                    f"{manifest.labels_file or 'the label file'} nor a group of 'images.pattern'; columns are {sorted(df.columns)}"
                )
            raw = df[spec.column].astype(str)
            unmapped = sorted(set(raw) - set(spec.values))
            if unmapped:
                bad_row = df.loc[raw == unmapped[0]].iloc[0]
                raise ManifestError(
                    f"{manifest.path}: field 'groups.{spec.name}.values' has no mapping for {spec.column} value {unmapped[0]!r} "
                    f"(subject {bad_row['subject']}, image {bad_row['sample_id']}); add `{unmapped[0]}: <label>` under it"
                    + (f" (other unmapped values: {unmapped[1:]})" if len(unmapped) > 1 else "")
                )
            if spec.name in df.columns:
                # the audit column takes the raw column's name: keep the original values beside it
                df[f"{spec.name}_original"] = df[spec.name]
            df[spec.name] = raw.map(spec.values)
        if manifest.covariates:
            df = apply_covariates(df, manifest.covariates, str(manifest.path))
        df["subject"] = df["subject"].astype(str)
        df = df.sort_values("sample_id", kind="stable").reset_index(drop=True)
        return cls(df, tuple(s.name for s in manifest.groups), manifest.describe())


def _join_labels(df: pd.DataFrame, manifest: Manifest, root: Path) -> pd.DataFrame:
    label_path = root / manifest.labels_file
    try:
        labels = pd.read_csv(label_path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many kinds for a broken CSV
        raise ManifestError(f"{manifest.path}: field 'labels.file': cannot read {label_path} as CSV ({exc})") from exc
    key = manifest.labels_key
    if key not in labels.columns:
        raise ManifestError(
            f"{manifest.path}: field 'labels.key' names column {key!r}, which {label_path.name} lacks; its columns are {list(labels.columns)}"
        )
    unknown = [c for c in manifest.labels_keep if c not in labels.columns]
    if unknown:
        raise ManifestError(
            f"{manifest.path}: field 'labels.keep' names column(s) {unknown} that {label_path.name} lacks; its columns are {list(labels.columns)}"
        )
    dup = labels[key].duplicated()
    if dup.any():
        raise ManifestError(f"{label_path}: column {key!r} repeats the value {labels.loc[dup, key].iloc[0]!r} (row {int(dup.idxmax()) + 2}); each key must appear once")
    join_on = "sample_id" if manifest.labels_per_image else "subject"
    cols = list(dict.fromkeys([key, *manifest.labels_keep, *[g.column for g in (*manifest.groups, *manifest.covariates) if g.column in labels.columns]]))
    merged = df.merge(labels[cols], how="left", left_on=join_on, right_on=key, indicator=True)
    absent = merged["_merge"] == "left_only"
    if absent.any():
        first = merged.loc[absent].iloc[0]
        raise ManifestError(
            f"{manifest.path}: field 'labels.key': {label_path.name} has no row whose {key!r} is {first[join_on]!r} "
            f"(image {first['sample_id']}); {int(absent.sum())} image(s) lack labels"
        )
    merged = merged.drop(columns=["_merge"])
    if key != join_on and key not in manifest.labels_keep:
        merged = merged.drop(columns=[key])
    return merged


def _list_labels(df: pd.DataFrame, manifest: Manifest, root: Path) -> pd.DataFrame:
    """Labels from lists of image file names (see ``labels.lists`` in the manifest docs)."""
    spec = manifest.label_lists
    col = spec["column"]
    conflict = str(spec.get("conflict", "conflict"))
    missing = str(spec.get("missing", "missing"))
    found: dict[str, set[str]] = {}
    for value, fname in spec["files"].items():
        for line in (root / fname).read_text(encoding="utf-8").splitlines():
            name = line.strip()
            if name:
                found.setdefault(name, set()).add(str(value))
    names = df["sample_id"].map(lambda p: p.rsplit("/", 1)[-1])
    per_image = names.map(lambda n: missing if n not in found else (next(iter(found[n])) if len(found[n]) == 1 else conflict))
    df = df.copy()
    df[col + "_image"] = per_image
    if spec.get("by_subject", False):
        known = per_image[~per_image.isin([missing, conflict])]
        majority = known.groupby(df.loc[known.index, "subject"]).agg(lambda v: v.value_counts().index[0])
        df[col] = df["subject"].map(majority).fillna(missing)
    else:
        df[col] = per_image
    return df
