"""Spread embedding work over local processes and feed the embedding store.

Each worker process builds its own copy of the backend from a pickle (taken before the
backend's models are loaded in the parent, or with them left out) and loads it once. Work is
sent in batches; the parent writes every finished batch to the store in one transaction, so a
run that is killed keeps what it finished and the next run resumes from there.

Workers die with their parent: on Linux each asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), and on every platform a watchdog thread in each worker exits the
process once the parent is gone, so a ``kill -9`` of a run leaves no worker finishing queued
batches whose results nobody would store. A worker also checks its parent before each batch.
An exception raised for one image (by the reader or a backend) becomes that image's ``error``
status instead of stopping the run; a batch that fails as a whole does not discard the batches
finished beside it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..backends.base import Backend, FaceResult, FaceStatus
from ..errors import BackendError, FaceAuditError, MissingDependencyError, MissingWeightsError

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
_PARENT_PID: int | None = None
#: Seconds between a worker's checks that its parent is alive.
PARENT_CHECK_SECONDS = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when ``parent_pid`` does (see the module docstring)."""
    global _PARENT_PID
    _PARENT_PID = parent_pid
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - no libc symbol
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="face-audit-parent-watch", daemon=True).start()


def single_threaded() -> None:
    """One BLAS/OpenMP/OpenCV thread in this process: the worker processes (or Ray actors) are the parallelism."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _init_worker(backend: Backend, parent_pid: int | None = None) -> None:
    global _WORKER_BACKEND
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    single_threaded()  # one thread per process: the processes are the parallelism
    backend.load()
    _WORKER_BACKEND = backend


def embed_one(backend: Backend, path: str) -> FaceResult:
    """``backend.embed_path(path)``, with any exception about this one image (other than a
    missing dependency or weights, which stop the run) turned into the status ``error``."""
    return _guarded(lambda: backend.embed_path(path))


def _guarded(embed: Callable[[], FaceResult]) -> FaceResult:
    """``embed()`` for one image, checked, with any exception about that image turned into the
    status ``error`` (a missing dependency or weights, and interrupts, stop the run)."""
    try:
        return _checked(embed())
    except (KeyboardInterrupt, SystemExit):
        raise
    except (MissingDependencyError, MissingWeightsError):
        raise
    except FaceAuditError as exc:
        return FaceResult(FaceStatus.ERROR, detail=f"{type(exc).__name__}: {exc}")
    except MemoryError:
        return FaceResult(FaceStatus.ERROR, detail="MemoryError: the image needed more memory than is available")
    except Exception as exc:  # one image must not stop the run
        return FaceResult(FaceStatus.ERROR, detail=f"{type(exc).__name__}: {exc}")


def _checked(res: FaceResult) -> FaceResult:
    if res.ok and not float(abs(res.embedding).max(initial=0.0)) > 0.0:
        return FaceResult(FaceStatus.ERROR, detail="the backend returned an all-zero embedding, which has no direction to compare")
    return res


def embed_many(backend: Backend, paths: Sequence[str]) -> list[FaceResult]:
    """Results for ``paths`` in order: :meth:`Backend.embed_paths` for a backend on its batched
    recognition path (one network run for the batch; if the batch fails as a whole, each image is
    tried alone), else :func:`embed_one` for each image. Whether the batched path is on is decided
    (and its session built, so that a missing provider or package stops the run) before any image."""
    active = getattr(backend, "batched_recognition_active", None)
    if active is None or not active():
        return [embed_one(backend, p) for p in paths]
    try:
        results = backend.embed_paths([str(p) for p in paths])
        if len(results) != len(paths):
            raise BackendError(f"internal: embed_paths returned {len(results)} results for {len(paths)} images")
        return [_checked(r) for r in results]
    except (KeyboardInterrupt, SystemExit, MissingDependencyError, MissingWeightsError):
        raise
    except Exception:  # noqa: BLE001 - one image may have broken the batch: each alone, errors as statuses
        return [_guarded(lambda p=str(p): backend.embed_paths([p])[0]) for p in paths]


def _embed_batch(batch: Sequence[tuple[str, str]]) -> list[tuple[str, FaceResult]]:
    if _WORKER_BACKEND is None:  # set by the initializer
        raise BackendError("internal: a worker ran a batch before its backend was loaded")
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        os._exit(1)  # the run that asked for this batch is gone: nobody would store it
    return list(zip([sha for sha, _ in batch], embed_many(_WORKER_BACKEND, [path for _, path in batch])))


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
    from .select import active_embedder, recognition_backend

    backend = recognition_backend(backend)  # [engine] recognition/device: the batched ONNX path, or as is
    other = active_embedder()  # an engine made active by use_engine (Ray): it embeds instead
    if other is not None:
        return other(backend, paths, store, workers=workers, batch_size=batch_size, progress=progress, desc=desc)
    todo = store.missing(list(paths))
    if hasattr(store, "check_writable"):
        store.check_writable(len(todo))
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
                store.put_many(dict(zip([s for s, _ in batch], embed_many(backend, [p for _, p in batch]))))
                bar.update(len(batch))
        else:
            _run_pool(backend, batches, store, min(workers, len(batches)), bar)
    finally:
        bar.close()
    return EmbedStats(len(todo), cached, time.perf_counter() - t0, workers)


def _run_pool(backend: Backend, batches, store, workers: int, bar) -> None:
    ctx = mp.get_context("spawn")  # models and thread pools do not survive fork() safely
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(backend, os.getpid())) as pool:
        pending = set()
        it = iter(batches)
        # keep a bounded number of batches in flight so results stream into the store; few
        # queued batches also bound what a kill can lose
        for batch in it:
            pending.add(pool.submit(_embed_batch, batch))
            if len(pending) >= workers * 2:
                break
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                first_error: BaseException | None = None
                # store every finished batch before raising for a failed one
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        first_error = first_error or exc
                        continue
                    results = fut.result()
                    store.put_many(dict(results))
                    bar.update(len(results))
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.add(pool.submit(_embed_batch, nxt))
                if first_error is not None:
                    _drain(pending, store, bar)
                    pending = set()
                    raise first_error
        except BrokenProcessPool as exc:
            raise BackendError(
                "a worker process died (out of memory, or the backend crashed). Everything finished so far is in the "
                "embedding store; run the same command again to resume, perhaps with fewer workers."
            ) from exc
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _drain(pending, store, bar) -> None:
    """After one batch failed: store the batches still in flight that finish, then stop."""
    for fut in pending:
        fut.cancel()
    for fut in pending:
        if fut.cancelled():
            continue
        try:
            results = fut.result()
        except BaseException:  # noqa: BLE001 - the first error is raised by the caller
            continue
        store.put_many(dict(results))
        bar.update(len(results))
