"""Embedding through Ray Data: ``map_batches`` over image paths with a pool of actors.

Each actor builds its own copy of the backend from a pickle (as local worker processes do, see
:mod:`audit.engine.local`) and loads it once; with GPUs in the cluster each actor asks for its share
of one (``num_gpus``). Finished batches stream back to the driver, which writes each one to the
embedding store in one transaction as it arrives: a run that is stopped keeps every batch it
stored, and the next run embeds only what is missing (the store's own resume rule). Ray Data runs
a bounded number of batches ahead, which bounds what a stop can lose.

Image paths must be readable where the actors run: on one machine always; on a cluster, a shared
file system (or copy the dataset to every node). A cluster whose nodes cannot share one SQLite
file writes nothing there: the store lives with the driver, and
:meth:`audit.store.EmbeddingStore.export_parquet` / :meth:`~audit.store.EmbeddingStore.import_parquet`
move embeddings between stores (keyed by image sha256 and backend fingerprint).
"""

from __future__ import annotations

import logging
import time
from typing import Mapping

import numpy as np

from ..backends.base import Backend, FaceResult, FaceStatus
from ..errors import BackendError, FaceAuditError
from .local import EmbedStats, embed_many, single_threaded
from .ray_runtime import cluster_gpus, require_ray

__all__ = ["embed_missing_ray"]


class _EmbedActor:
    """One Ray actor: a loaded backend; a batch of (sha, path) in, its results as columns out."""

    def __init__(self, backend: Backend) -> None:
        single_threaded()  # one thread per actor: the actors are the parallelism
        backend.load()
        self.backend = backend

    def __call__(self, batch: dict) -> dict:
        results = embed_many(self.backend, [str(p) for p in batch["path"]])
        return {
            "sha": np.asarray(batch["sha"], dtype=object),
            "status": np.asarray([r.status.value for r in results], dtype=object),
            "n_faces": np.asarray([int(r.n_faces) for r in results], dtype=np.int64),
            "detail": np.asarray([r.detail for r in results], dtype=object),
            "vector": np.asarray([b"" if r.embedding is None else np.asarray(r.embedding, "<f4").tobytes() for r in results],
                                 dtype=object),
        }


def _results(batch: Mapping) -> dict[str, FaceResult]:
    out = {}
    for sha, status, n_faces, detail, vec in zip(batch["sha"], batch["status"], batch["n_faces"], batch["detail"], batch["vector"]):
        st = FaceStatus(str(status))
        emb = np.frombuffer(bytes(vec), dtype="<f4").astype(np.float32) if st is FaceStatus.OK else None
        out[str(sha)] = FaceResult(st, emb, int(n_faces), str(detail))
    return out


def embed_missing_ray(
    backend: Backend,
    paths: Mapping[str, str],
    store,
    *,
    workers: int = 2,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "embedding",
    gpus_per_worker: float | None = None,
) -> EmbedStats:
    """Embed every image whose hash the store lacks on the Ray cluster joined, and store the results.

    Parameters
    ----------
    backend, paths, store, batch_size, progress, desc
        As for :func:`audit.engine.local.embed_missing`.
    workers : int, default 2
        Actors, each holding one loaded copy of the backend.
    gpus_per_worker : float, optional
        GPUs each actor asks for. Default: none on a cluster without GPUs, else the cluster's GPUs
        shared among the actors (at most one each).

    Returns
    -------
    EmbedStats
    """
    from tqdm.auto import tqdm

    ray = require_ray()
    import ray.data

    if workers < 1:
        raise BackendError(f"workers must be at least 1, got {workers}")
    if batch_size < 1:
        raise BackendError(f"batch_size must be at least 1, got {batch_size}")
    todo = store.missing(list(paths))
    if hasattr(store, "check_writable"):
        store.check_writable(len(todo))
    cached = len(set(paths)) - len(todo)
    if not todo:
        return EmbedStats(0, cached, 0.0, workers)
    if gpus_per_worker is None:
        gpus = cluster_gpus()
        gpus_per_worker = min(1.0, gpus / workers) if gpus else 0.0
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # (its per-run INFO lines would interleave with ours)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    t0 = time.perf_counter()
    n_blocks = max(1, -(-len(todo) // batch_size))
    ds = ray.data.from_items([{"sha": s, "path": str(paths[s])} for s in todo], override_num_blocks=n_blocks)
    ds = ds.map_batches(
        _EmbedActor, fn_constructor_kwargs={"backend": backend}, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(workers, n_blocks)), num_cpus=1,
        **({"num_gpus": float(gpus_per_worker)} if gpus_per_worker else {}),
    )
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, leave=True)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            got = _results(batch)
            store.put_many(got)
            bar.update(len(got))
    except FaceAuditError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a Ray task error: name the cause, keep what is stored
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, FaceAuditError):
            raise cause from exc
        raise BackendError(
            f"the Ray embedding run failed ({type(cause).__name__}: {cause}). Everything finished so far is in the "
            "embedding store; run the same command again to resume."
        ) from exc
    finally:
        bar.close()
    return EmbedStats(len(todo), cached, time.perf_counter() - t0, workers)
