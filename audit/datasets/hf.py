"""Load a SampleTable through Hugging Face ``datasets``: a local image folder with metadata, or a hub id.

A local folder follows the ``imagefolder`` layout: images plus a ``metadata.csv`` (or
``metadata.jsonl``) whose ``file_name`` column names each image and whose other columns carry
the subject and labels. A hub id is loaded with ``datasets.load_dataset(id)`` (needs network the
first time; ``HF_HUB_OFFLINE=1`` uses the local Hugging Face cache).

Images whose bytes live only inside the dataset (hub parquet shards) are written once to the
face-audit cache (``<cache>/hf-images/<sha256>.<ext>``, mode 0600) so that every backend reads
files and the embedding cache keys on their sha256.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..errors import DatasetError, MissingDependencyError
from ..images import sha256_file
from .locate import cache_dir
from .table import SampleTable

__all__ = ["from_huggingface"]


def _groups_spec(groups: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, str] | None]]:
    out = {}
    for name, spec in groups.items():
        if isinstance(spec, str):
            out[name] = (spec, None)
        elif isinstance(spec, Mapping) and "column" in spec:
            vals = spec.get("values")
            out[name] = (str(spec["column"]), None if vals is None else {str(k): str(v) for k, v in vals.items()})
        else:
            raise DatasetError(
                f"groups[{name!r}] must be a column name or {{'column': ..., 'values': {{raw: label}}}}, got {spec!r}"
            )
    return out


def from_huggingface(
    source: str | Path,
    *,
    groups: Mapping[str, Any],
    subject_column: str = "subject",
    image_column: str = "image",
    split: str = "train",
    revision: str | None = None,
    name: str | None = None,
) -> SampleTable:
    """Build a SampleTable from a Hugging Face dataset.

    Parameters
    ----------
    source : str or Path
        A local ``imagefolder`` directory (with ``metadata.csv``) or a hub dataset id.
    groups : mapping
        Audit group -> label column, or ``{"column": ..., "values": {raw: label}}`` to map values
        (every value must then have a mapping).
    subject_column : str, default "subject"
    image_column : str, default "image"
    split : str, default "train"
    revision : str, optional
        Hub revision (a commit hash pins the exact bytes).

    Examples
    --------
    >>> t = from_huggingface("faces/", groups={"gender": "gender"})   # doctest: +SKIP
    """
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("loading through Hugging Face needs the `datasets` package: pip install 'face-audit[hf]'") from exc

    spec = _groups_spec(groups)
    local = Path(source).expanduser()
    text = str(source)
    looks_local = isinstance(source, Path) or text.startswith((".", "/", "~")) or text.endswith("/") or text.count("/") > 1 or "\\" in text
    if local.exists() and not local.is_dir():
        raise DatasetError(f"dataset.huggingface: {local} is a file; give an imagefolder directory (images + metadata.csv) or a hub id")
    if not local.is_dir() and looks_local:
        raise DatasetError(
            f"dataset.huggingface: the folder {local} does not exist; give an imagefolder directory (images + metadata.csv) "
            "or a hub id such as \"user/dataset\""
        )
    try:
        if local.is_dir():
            ds = datasets.load_dataset("imagefolder", data_dir=str(local), split=split)
            label = str(local.resolve())
        else:
            ds = datasets.load_dataset(text, split=split, revision=revision)
            label = f"hf:{source}" + (f"@{revision}" if revision else "")
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the datasets library raises many kinds (network, missing split, bad metadata)
        raise DatasetError(
            f"dataset.huggingface: cannot load {text!r} (split {split!r}) through Hugging Face datasets "
            f"({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc
    missing = [c for c in [subject_column, image_column, *(c for c, _ in spec.values())] if c not in ds.column_names]
    if missing:
        raise DatasetError(f"{label}: column(s) {missing} not found; the dataset has {ds.column_names}")
    ds = ds.cast_column(image_column, datasets.Image(decode=False))
    store = cache_dir() / "hf-images"
    rows = []
    for i, item in enumerate(ds):
        img = item[image_column]
        path = img.get("path")
        data = img.get("bytes")
        if path and os.path.isfile(path) and data is None:
            sha = sha256_file(path)
            p = Path(path).resolve()
        elif data is not None:
            sha = hashlib.sha256(data).hexdigest()
            ext = Path(path).suffix if path else ".img"
            store.mkdir(parents=True, exist_ok=True, mode=0o700)
            p = store / f"{sha}{ext}"
            if not p.exists():
                tmp = p.with_name(p.name + ".tmp")
                tmp.write_bytes(data)
                os.chmod(tmp, 0o600)
                tmp.replace(p)
        else:
            raise DatasetError(f"{label}: row {i} has no image bytes and no readable path ({path!r})")
        sample_id = Path(path).name if path else f"row-{i}"
        row = {"sample_id": f"{i:07d}-{sample_id}", "path": str(p), "sha256": sha, "subject": str(item[subject_column])}
        for gname, (col, values) in spec.items():
            raw = item[col]
            row[col] = raw
            key = "" if raw is None else str(raw)
            if values is None:
                row[gname] = key
            elif key in values:
                row[gname] = values[key]
            else:
                raise DatasetError(
                    f"{label}: row {i} (subject {row['subject']}): column {col!r} value {key!r} has no mapping in groups[{gname!r}]['values']; add it"
                )
        rows.append(row)
    if not rows:
        raise DatasetError(f"{label}: split {split!r} has no rows")
    df = pd.DataFrame(rows)
    dataset = {
        "name": name or (local.name if local.is_dir() else str(source)),
        "title": name or str(source),
        "source": label,
        "licence": "see the dataset card",
        "label_source": f"columns {sorted({c for c, _ in spec.values()})} of the Hugging Face dataset",
        "location": "huggingface",
    }
    return SampleTable(df, tuple(spec), dataset)
