"""Datasets: manifests, locating and verifying files, and the SampleTable."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from .locate import DataLocation, cache_dir, download_dataset, locate_dataset, verify_files
from .manifest import Manifest, list_manifests, load_manifest
from .table import GROUP_SEP, SampleTable, group_labels, grouping_id

__all__ = [
    "DataLocation",
    "Manifest",
    "SampleTable",
    "GROUP_SEP",
    "cache_dir",
    "download_dataset",
    "group_labels",
    "grouping_id",
    "list_manifests",
    "load_dataset",
    "load_manifest",
    "locate_dataset",
    "verify_files",
]


def load_dataset(
    name_or_manifest: str | Path | Manifest,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> SampleTable:
    """Locate (or download), verify and read a dataset into a :class:`SampleTable`.

    Parameters
    ----------
    name_or_manifest : str, Path or Manifest
        A dataset name (``"london"``), a manifest path, or a loaded manifest.
    data_dir : path, optional
        A folder holding the dataset (or ``NAME/``); searched first.
    download : bool, default True
        Whether to download from the public source when no local copy is found.

    Examples
    --------
    >>> table = load_dataset("london", data_dir="../shared/datasets")   # doctest: +SKIP
    >>> len(table), table.n_subjects                                     # doctest: +SKIP
    (204, 102)
    """
    manifest = name_or_manifest if isinstance(name_or_manifest, Manifest) else load_manifest(name_or_manifest)
    loc = locate_dataset(manifest, data_dir=data_dir, download=download, progress=progress)
    table = SampleTable.from_manifest(manifest, loc.root, loc.sha256)
    table.dataset["location"] = loc.how
    return table
