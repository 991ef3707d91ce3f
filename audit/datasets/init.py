"""``face-audit datasets init``: describe a local folder of face images as a dataset manifest.

Writes ``NAME.yaml`` (the manifest) and ``NAME.sha256`` (every file's sha256) into the folder, so
that ``dataset.manifest = "FOLDER/NAME.yaml"`` in a config, or ``face-audit run --data FOLDER``,
audits it. A local dataset has no ``source``: nothing is downloaded, and its root is the folder
holding the manifest. See docs/datasets.md.

Where each image's subject (identity) and labels come from:

- ``labels``: a CSV keyed by **image** (a column ``file``, ``path``, ``image``, ``filename`` or
  ``sample_id`` holding the path under the folder) or by **subject** (a column ``subject``).
  Every other column is a group label (or those named in ``groups``).
- ``pattern``: a regular expression matched against each image's path under the folder (against
  the file name when the pattern has no ``/``); its named groups become columns, ``subject``
  among them. Without a ``subject`` group each image is its own subject (impostor pairs only).
- Without a pattern, images in one folder per person (``alice/1.jpg``) take the folder as subject;
  images side by side in one folder are each their own subject.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import DatasetError, ManifestError
from ..images import sha256_file

__all__ = ["IMAGE_SUFFIXES", "InitResult", "init_dataset"]

#: File name endings taken as images (any case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_IMAGE_KEYS = ("file", "path", "image", "filename", "sample_id")
#: Labels with more distinct values than this are probably not groups (an age in years, an id).
MAX_GROUP_VALUES = 50


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_dataset` wrote and found."""

    manifest: Path
    checksums: Path
    images: int
    subjects: int
    group_columns: tuple[str, ...]
    subject_from: str
    warnings: tuple[str, ...] = ()


def _images(folder: Path, skip: set[Path]) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if f.startswith(".") or p in skip or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            out.append(p.relative_to(folder).as_posix())
    return out


def _file_pattern(pattern: str) -> tuple[str, bool]:
    """The manifest pattern for a user's regex, and whether it gives a subject."""
    body = pattern[1:] if pattern.startswith("^") else pattern
    body = body[:-1] if body.endswith("$") and not body.endswith("\\$") else body
    try:
        compiled = re.compile(body)
    except re.error as exc:
        raise DatasetError(f"--pattern {pattern!r} is not a valid regular expression ({exc})") from exc
    prefix = "" if "/" in pattern else "(?:.*/)?"
    has_subject = "subject" in compiled.groupindex
    if has_subject:
        return f"^{prefix}(?:{body})$", True
    return f"^(?P<subject>{prefix}(?:{body}))$", False


def init_dataset(
    folder: str | Path,
    *,
    labels: str | Path | None = None,
    pattern: str | None = None,
    name: str | None = None,
    groups: Sequence[str] | None = None,
    title: str | None = None,
    licence: str = "private: not for redistribution",
    label_source: str = "",
    overwrite: bool = False,
    output_dir: str | Path | None = None,
) -> InitResult:
    """Write a manifest and its checksum file for a local folder of face images.

    Parameters
    ----------
    folder : path
        The dataset root; every image under it (``IMAGE_SUFFIXES``, hidden files skipped) is listed.
    labels : path, optional
        A CSV of labels, keyed by image or by subject (see the module docstring). It may lie
        outside the folder (its path is stored relative to the folder) and is checksummed too.
    pattern : str, optional
        A regular expression whose named groups give the subject and labels from each path.
    name : str, optional
        Dataset name and file stem (default: the folder's name).
    groups : list of str, optional
        The label columns (or pattern groups) to audit; default: all of them.
    title, licence, label_source : str
        Recorded in every result's provenance: say who labelled the faces, and how.
    overwrite : bool, default False
        Replace an existing ``NAME.yaml``/``NAME.sha256``.
    output_dir : path, optional
        Write the two files there instead of into ``folder`` (``face-audit run --data`` does, to
        leave the folder untouched); the dataset is then found with ``data_dir=folder``.

    Returns
    -------
    InitResult
        The paths written, the numbers of images and subjects, and the group columns.

    Raises
    ------
    DatasetError
        No images, a labels file that does not fit the images, or nothing to group by; the
        message says what was expected and how to fix it.

    Examples
    --------
    >>> init_dataset("faces/", labels="faces/labels.csv")                          # doctest: +SKIP
    >>> init_dataset("utkface/", pattern=r"(?P<age>\\d+)_(?P<gender>\\d)_(?P<race>\\d)_\\d+\\.jpg")  # doctest: +SKIP
    """
    import pandas as pd
    import yaml

    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder; give the folder that holds the face images")
    if labels is None and pattern is None:
        raise DatasetError("give --labels (a CSV of labels) or --pattern (labels in the file names), or both")
    name = name or folder.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise DatasetError(f"dataset name {name!r}: use letters, digits, '-', '_' and '.' (give --name)")
    out_dir = Path(output_dir).expanduser().resolve() if output_dir is not None else folder
    manifest_path, sums_path = out_dir / f"{name}.yaml", out_dir / f"{name}.sha256"
    if not overwrite:
        for p in (manifest_path, sums_path):
            if p.exists():
                raise DatasetError(f"{p} exists; pass --overwrite to replace it")
    labels_path = Path(labels).expanduser().resolve() if labels is not None else None
    if labels_path is not None and not labels_path.is_file():
        raise DatasetError(f"labels file {labels_path} does not exist")
    rels = _images(folder, {labels_path, manifest_path, sums_path} - {None})
    if not rels:
        raise DatasetError(f"no images under {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    warnings: list[str] = []

    # ---- where the subject comes from
    labels_block: dict = {}
    label_df = None
    per_image = False
    if labels_path is not None:
        try:
            label_df = pd.read_csv(labels_path, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas raises many kinds for a broken CSV
            raise DatasetError(f"{labels_path}: cannot read it as CSV ({exc})") from exc
        key = next((c for c in _IMAGE_KEYS if c in label_df.columns), None)
        per_image = key is not None
        if per_image:
            keys = set(label_df[key])
            if not set(rels) & keys:
                by_name = {r.rsplit("/", 1)[-1] for r in rels}
                hint = (" (they look like bare file names: give paths under the folder, e.g. "
                        f"{rels[0]!r})") if by_name & keys else ""
                raise DatasetError(f"{labels_path}: column {key!r} names no image under {folder}, e.g. "
                                   f"{next(iter(keys), '')!r} vs {rels[0]!r}{hint}")
            if "subject" in label_df.columns and pattern is None:
                raise DatasetError(
                    f"{labels_path}: a per-image labels file with a 'subject' column: the manifest takes each image's "
                    "subject from its path; give --pattern with a (?P<subject>...) group, or keep one folder per person"
                )
        elif "subject" in label_df.columns:
            key = "subject"
        else:
            raise DatasetError(
                f"{labels_path}: expected a column naming the image ({', '.join(_IMAGE_KEYS)}) or the person ('subject'); "
                f"found {list(label_df.columns)}"
            )
        labels_block = {"file": os.path.relpath(labels_path, folder).replace(os.sep, "/"), "key": key}
        if per_image:
            labels_block["per_image"] = True

    if pattern is not None:
        manifest_pattern, has_subject = _file_pattern(pattern)
        subject_from = "pattern" if has_subject else "file (each image its own subject)"
    elif any("/" in r for r in rels):
        manifest_pattern, subject_from = r"^(?P<subject>[^/]+)/.+$", "folder"
        top = [r for r in rels if "/" not in r]
        if top:
            raise DatasetError(f"{folder}: images in one folder per person, but {len(top)} image(s) lie at the top, "
                               f"e.g. {top[0]!r}; move them into their person's folder or give --pattern")
    else:
        if labels_block.get("key") == "subject":
            raise DatasetError(f"{labels_path}: labels by subject, but the images are side by side in one folder; "
                               "give --pattern with a (?P<subject>...) group (e.g. '(?P<subject>\\d+)_\\d+\\.jpg') "
                               "or put each person's images in their own folder")
        manifest_pattern, subject_from = r"^(?P<subject>.+)$", "file (each image its own subject)"
    compiled = re.compile(manifest_pattern)
    unmatched = [r for r in rels if not compiled.match(r)]
    if unmatched:
        raise DatasetError(f"--pattern {pattern!r} does not match {len(unmatched)} of {len(rels)} image(s), e.g. {unmatched[0]!r}")

    # ---- the group columns and their values
    pattern_groups = [g for g in compiled.groupindex if g != "subject"]
    candidates: dict[str, list[str]] = {}
    for g in pattern_groups:
        candidates[g] = sorted({m.group(g) or "" for m in map(compiled.match, rels)})
    if label_df is not None:
        for col in label_df.columns:
            if col in (labels_block["key"], "subject"):
                continue
            candidates.setdefault(col, sorted(set(label_df[col])))
    if groups is not None:
        unknown = [g for g in groups if g not in candidates]
        if unknown:
            raise DatasetError(f"--groups names {unknown}; the labels and pattern give {sorted(candidates)}")
        chosen = list(groups)
    else:
        chosen = []
        for g, vals in candidates.items():
            if len(vals) > MAX_GROUP_VALUES:
                warnings.append(f"column {g!r} has {len(vals)} distinct values: left out of the groups "
                                "(bin it into bands, or name it with --groups)")
            else:
                chosen.append(g)
    if not chosen:
        raise DatasetError(f"nothing to group by: the labels and pattern give {sorted(candidates) or 'no columns'}; "
                           "add label columns (e.g. ethnicity, gender) or named groups to --pattern")
    group_specs = {g: {"column": g, "values": {v: (v if v != "" else "unknown") for v in candidates[g]}} for g in chosen}
    groupings = [[g] for g in chosen] + ([chosen[:2]] if len(chosen) >= 2 else [])

    # ---- checksums: every image and the labels file
    sums = {r: sha256_file(folder / r) for r in rels}
    if labels_path is not None:
        sums[labels_block["file"]] = sha256_file(labels_path)
    sums_text = "".join(f"{h}  {r}\n" for r, h in sorted(sums.items()))

    doc = {
        "schema": 1,
        "name": name,
        "title": title or f"{name} (local dataset)",
        "licence": licence,
        "label_source": label_source or (f"{labels_block['file']}" if labels_block else "file names") + ", as given to `face-audit datasets init`",
        "checksums": sums_path.name,
        "images": {"glob": sorted({f"**/*{Path(r).suffix}" for r in rels}), "pattern": manifest_pattern},
        **({"labels": labels_block} if labels_block else {}),
        "groups": group_specs,
        "protocol": {"kind": "all_pairs", "groupings": groupings},
    }
    header = (f"# Local dataset manifest written by `face-audit datasets init` (see docs/datasets.md).\n"
              f"# Subjects from: {subject_from}. No `source`: the images stay in this folder, which is the\n"
              f"# dataset root (when this file lies in it); {sums_path.name} lists every file's sha256. Edit `groups.*.values` to merge labels.\n")
    manifest_path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    sums_path.write_text(sums_text, encoding="utf-8")

    # ---- read it back as the audit will: every image must get a subject and labels
    from .manifest import load_manifest
    from .table import SampleTable

    try:
        table = SampleTable.from_manifest(load_manifest(manifest_path), folder, sums)
    except ManifestError as exc:
        manifest_path.unlink(missing_ok=True)
        sums_path.unlink(missing_ok=True)
        raise DatasetError(f"the manifest for {folder} would not load, so nothing was written: {exc}") from exc
    n_subj = table.n_subjects
    if n_subj == len(table):
        warnings.append("every image is its own subject: there are no mated pairs, so FNMR cannot be measured (FMR only)")
    return InitResult(manifest_path, sums_path, len(table), n_subj, tuple(chosen), subject_from, tuple(warnings))
