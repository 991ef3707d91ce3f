"""Acquiring a 1:1 audit's inputs: a dataset embedded through a backend and the embedding store,
or scores / embeddings handed over in a file.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..backends.registry import create_backend
from ..backends.base import BackendInfo
from .protocol import PairScores
from .inputs import read_embeddings, read_scores
from .config import AuditConfig
from ..datasets import SampleTable, cache_dir, load_dataset, load_manifest
from ..engine import EmbedStats, default_workers, embed_missing
from ..errors import ConfigError
from ..store import EmbeddingStore


def _noop(msg: str) -> None:
    return None


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def embed_table(
    table: SampleTable,
    backend,
    *,
    store_dir: Path | None = None,
    workers: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, EmbedStats]:
    """Embed every image of a table through the store.

    Returns
    -------
    samples : pandas.DataFrame
        The table's rows with ``status``, ``n_faces`` and ``detail`` added.
    ok_rows : numpy.ndarray of int, shape (n_ok,)
        Positions of the acquired images.
    embeddings : numpy.ndarray of shape (n_ok, d), float32
    stats : EmbedStats
    """
    backend.load()
    info = backend.info()
    store_dir = Path(store_dir) if store_dir else cache_dir() / "embeddings"
    df = table.data.reset_index(drop=True)
    paths = dict(zip(df["sha256"], df["path"]))
    with EmbeddingStore(store_dir, info) as store:
        stats = embed_missing(
            backend, paths, store, workers=workers or default_workers(), batch_size=batch_size,
            progress=progress, desc=f"{info.backend}:{info.model}",
        )
        got = store.get_many(df["sha256"])
    results = [got[s] for s in df["sha256"]]
    samples = df.copy()
    samples["status"] = [r.status.value for r in results]
    samples["n_faces"] = [r.n_faces for r in results]
    samples["detail"] = [r.detail for r in results]
    ok_rows = np.flatnonzero(samples["status"].to_numpy() == "ok")
    dim = info.dim
    emb = np.stack([results[i].embedding for i in ok_rows]).astype(np.float32) if ok_rows.size else np.empty((0, dim), np.float32)
    return samples, ok_rows, emb, stats


def _load_table(config: AuditConfig, data_dir, log) -> tuple[SampleTable, str, tuple[tuple[str, ...], ...]]:
    ds = config.dataset
    if ds.huggingface:
        from ..datasets.hf import from_huggingface

        log(f"dataset {ds.huggingface}: loading through Hugging Face datasets")
        table = from_huggingface(
            ds.huggingface, groups=ds.hf_groups or {}, subject_column=ds.hf_subject_column,
            split=ds.hf_split, revision=ds.hf_revision, name=ds.name,
        )
        return table, "all_pairs", tuple((g,) for g in table.group_columns)
    manifest = load_manifest(ds.manifest or ds.name)
    log(f"dataset {manifest.name}: verifying files against {manifest.path.name}")
    table = load_dataset(manifest, data_dir=data_dir or ds.data_dir)
    if ds.labels is not None:  # extra label columns (e.g. a measured skin-tone bin) become group columns
        from ..labelfile import join_label_file

        wanted = list(dict.fromkeys(c for g in (*(ds.groupings or ()), config.analysis.adjust_for) for c in g
                                    if c not in table.group_columns and c not in table.data.columns))
        data, added = join_label_file(table.data, ds.labels, columns=wanted)
        table = SampleTable(data, (*table.group_columns, *added), dict(table.dataset, extra_labels={"file": str(ds.labels), "columns": added}))
        log(f"labels {ds.labels.name}: added the group columns {added}")
    return table, manifest.protocol_kind, manifest.groupings


@dataclass(frozen=True)
class _Acquired:
    samples: pd.DataFrame
    ok_rows: np.ndarray
    pairs: PairScores
    info: BackendInfo
    groupings: tuple[tuple[str, ...], ...]
    group_columns: tuple[str, ...]
    dataset: dict
    protocol_kind: str
    stats: EmbedStats
    workers: int
    score_seconds: float
    embeddings: np.ndarray | None = None  # acquired rows, scored all-pairs by the tiled engine
    side: np.ndarray | None = None  # two-sided scores file: 0 probe / 1 reference per acquired row
    identities: bool = True  # False: a scores file with only a mated flag (pairs assumed independent)
    failed_comparisons: tuple[int, int] = (0, 0)  # (mated, impostor) pairs without a score


def _acquire_from_images(config: AuditConfig, data_dir, workers, log) -> _Acquired:
    table, protocol_kind, default_groupings = _load_table(config, data_dir, log)
    if config.dataset.subjects is not None:
        table = table.subset_subjects(config.dataset.subjects, seed=config.run.seed, balance=config.dataset.balance)
    groupings = config.dataset.groupings or default_groupings
    name = table.dataset.get("name", config.dataset.name)
    for cols in groupings:
        unknown = [c for c in cols if c not in table.group_columns]
        if unknown:
            raise ConfigError(
                f"{config.path or '<config>'}: field 'dataset.groupings' names {unknown}; dataset {name} has the group columns {list(table.group_columns)}"
            )
    log(f"dataset {name}: {len(table)} images of {table.n_subjects} subjects (found via {table.dataset.get('location')})")

    backend = create_backend(config.backend.name, **dict(config.backend.options))
    backend.load()
    info = backend.info()
    log(f"backend {info.backend}:{info.model} (weights sha256 {info.weights_sha256[:12]}…)")
    store_dir = (config.run.cache_dir or cache_dir()) / "embeddings"
    n_workers = workers or config.run.workers or default_workers()
    samples, ok_rows, emb, stats = embed_table(
        table, backend, store_dir=store_dir, workers=n_workers, batch_size=config.run.batch_size, progress=config.run.progress,
    )
    if stats.computed:
        log(f"embedded {stats.computed} image(s) in {stats.seconds:.1f} s ({stats.images_per_second:.1f} img/s, {n_workers} worker(s)); {stats.cached} from cache")
    else:
        log(f"all {stats.cached} embeddings came from the cache: no inference was run")
    return _Acquired(
        samples, ok_rows, None, info, tuple(groupings), tuple(table.group_columns), dict(table.dataset),
        protocol_kind, stats, n_workers, 0.0, emb,
    )


def _acquire_from_file(config: AuditConfig, log) -> _Acquired:
    inp = config.input
    t0 = time.perf_counter()
    if inp.kind == "scores":
        log(f"scores file {inp.path}: reading")
        got = read_scores(inp.path, higher_is_similar=inp.higher_is_similar, group_columns=inp.group_columns, samples_path=inp.samples,
                          name=inp.name, two_sided=inp.two_sided)
        protocol = "pairs_from_scores_file" + (" (two-sided: sample_a probes, sample_b references)" if inp.two_sided else "")
    else:
        log(f"embeddings file {inp.path}: reading and scoring all pairs")
        got = read_embeddings(inp.path, samples_path=inp.samples, group_columns=inp.group_columns, metric=inp.metric, name=inp.name)
        protocol = "all_pairs"
    dataset = {
        "name": inp.name or inp.path.stem,
        "title": f"{inp.kind} file {inp.path.name}",
        "source": str(inp.path),
        "samples": str(inp.samples) if inp.samples else None,
        "sha256": got.info.weights_sha256,
        "label_source": f"columns {list(inp.group_columns)} of " + (str(inp.samples.name) if inp.samples else inp.path.name),
        "licence": "as supplied",
    }
    log(f"{len(got.samples)} samples" + (f" of {got.samples['subject'].nunique()} subjects" if got.identities else " (no identities given)"))
    return _Acquired(
        got.samples, got.ok_rows, got.pairs, got.info, inp.groupings, inp.group_columns, dataset,
        protocol, EmbedStats(0, 0, 0.0, 1), 1, time.perf_counter() - t0, got.embeddings, got.side,
        got.identities, (got.failed_mated, got.failed_impostor),
    )
