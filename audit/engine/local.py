"""Spread embedding work over local processes and feed the embedding store.

Each worker process builds its own copy of the backend from a pickle (taken before the
backend's models are loaded in the parent, or with them left out) and loads it once. Work is
sent in batches; the parent writes every finished batch to the store in one transaction, so a
run that is killed keeps what it finished and the next run resumes from there.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..backends.base import Backend, FaceResult
from ..errors import BackendError

__all__ = ["EmbedStats", "embed_missing", "default_workers"]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class EmbedStats:
    """What one embedding pass did: ``computed`` images run through the backend, ``cached``
    ones found in the store, and the wall-clock ``seconds`` spent computing."""

    computed: int
    cached: int
    seconds: float
    workers: int

    @property
    def images_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else float("nan")


def default_workers() -> int:
    """``$FACE_AUDIT_WORKERS`` or the number of usable cores."""
    env = os.environ.get("FACE_AUDIT_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


_WORKER_BACKEND: Backend | None = None


def _init_worker(backend: Backend) -> None:
    global _WORKER_BACKEND
    for var in _THREAD_VARS:
        os.environ[var] = "1"  # one thread per process: the processes are the parallelism
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    backend.load()
    _WORKER_BACKEND = backend


def _embed_batch(batch: Sequence[tuple[str, str]]) -> list[tuple[str, FaceResult]]:
    assert _WORKER_BACKEND is not None  # set by the initializer; internal invariant, not validation
    return [(sha, _WORKER_BACKEND.embed_path(path)) for sha, path in batch]


def embed_missing(
    backend: Backend,
    paths: Mapping[str, str],
    store,
    *,
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "embedding",
) -> EmbedStats:
    """Embed every image whose hash the store lacks, and store the results.

    Parameters
    ----------
    backend : Backend
        Loaded or not; workers load their own copies.
    paths : mapping of str to str
        Image sha256 -> file path (one path per distinct content).
    store : EmbeddingStore
    workers : int, default 1
        Processes; 1 runs in this process.
    batch_size : int, default 8
        Images per task and per store transaction.
    progress : bool, default True
        Show a tqdm bar on stderr.

    Returns
    -------
    EmbedStats
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise BackendError(f"workers must be at least 1, got {workers}")
    if batch_size < 1:
        raise BackendError(f"batch_size must be at least 1, got {batch_size}")
    todo = store.missing(list(paths))
    cached = len(set(paths)) - len(todo)
    if not todo:
        return EmbedStats(0, cached, 0.0, workers)
    batches = [[(s, paths[s]) for s in todo[i:i + batch_size]] for i in range(0, len(todo), batch_size)]
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, leave=True)
    t0 = time.perf_counter()
    try:
        if workers == 1 or len(todo) == 1:
            backend.load()
            for batch in batches:
                store.put_many({sha: backend.embed_path(path) for sha, path in batch})
                bar.update(len(batch))
        else:
            _run_pool(backend, batches, store, min(workers, len(batches)), bar)
    finally:
        bar.close()
    return EmbedStats(len(todo), cached, time.perf_counter() - t0, workers)


def _run_pool(backend: Backend, batches, store, workers: int, bar) -> None:
    ctx = mp.get_context("spawn")  # models and thread pools do not survive fork() safely
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(backend,)) as pool:
        pending = set()
        it = iter(batches)
        # keep a bounded number of batches in flight so results stream into the store
        for batch in it:
            pending.add(pool.submit(_embed_batch, batch))
            if len(pending) >= workers * 3:
                break
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    results = fut.result()
                    store.put_many(dict(results))
                    bar.update(len(results))
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.add(pool.submit(_embed_batch, nxt))
        except BrokenProcessPool as exc:
            raise BackendError(
                "a worker process died (out of memory, or the backend crashed). Everything finished so far is in the "
                "embedding store; run the same command again to resume, perhaps with fewer workers."
            ) from exc
        except BaseException:
            for f in pending:
                f.cancel()
            raise
