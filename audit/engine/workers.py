"""Running tiles: in this process (products overlapped with counting in a second thread) or in
spawned worker processes that share the operands through shared memory."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

import numpy as np

from ..errors import MetricError
from .geometry import _Geometry, _tile_pairs
from .kernel import _Kernel

_OVERLAP = os.environ.get("FACE_AUDIT_TILE_OVERLAP", "1") != "0"  # products in a second thread (workers=1)


def _run(geo: _Geometry, tiles, *, mated, tail_k, tail_floor, thresholds, histogram, workers: int,
         progress: bool = False, desc: str = "scoring pairs", windows: Sequence[tuple] = (), engine=None,
         tail_holds: Sequence[float] = (), tail_limit: int = 0) -> list[dict]:
    """One pass over ``tiles``: the kernels' results (dicts that merge by summation; tails by
    :func:`audit.engine.tail._merge_tails`; ``tail_holds`` and ``tail_limit``: see
    :class:`audit.engine.tail._Tail`). ``engine``, when given, runs the pass instead of this
    process or its worker processes: an object with ``run_tiles(geo, tiles, kw, progress=, desc=)``
    (:class:`audit.engine.ray_scan.RayTileRunner`, :class:`audit.engine.gpu.DeviceTileRunner`)."""
    kw = dict(mated=mated, tail_k=tail_k, tail_floor=tail_floor, count_thresholds=thresholds, histogram=histogram,
              windows=list(windows), tail_holds=[float(h) for h in tail_holds], tail_limit=int(tail_limit))
    if engine is not None:
        return engine.run_tiles(geo, tiles, kw, progress=progress, desc=desc)
    from tqdm.auto import tqdm

    total = sum(_tile_pairs(t) for t in tiles)
    with tqdm(total=total, desc=desc, unit="pair", unit_scale=True, disable=not progress, leave=True,
              mininterval=0.5) as bar:
        if workers <= 1 or len(tiles) < 2:
            kern = _Kernel(geo, **kw)
            if progress:
                kern.on_tile = bar.update
            kern.run_all(tiles, overlap=_OVERLAP)
            return [kern.result()]
        return _run_pool(geo, tiles, kw, workers=workers, bar=bar if progress else None)


_PROGRESS = None  # in a worker process: the shared pair counter the parent's bar reads


def _init_worker(counter) -> None:
    global _PROGRESS
    _PROGRESS = counter


def _count_progress(pairs: int) -> None:
    with _PROGRESS.get_lock():
        _PROGRESS.value += pairs


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _worker(args) -> dict:
    from multiprocessing import shared_memory

    shm_name, shapes, geo_small, tiles, kw = args
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        arrays = {}
        off = 0
        for key, shape in shapes:
            size = int(np.prod(shape)) * 4
            arrays[key] = np.ndarray(shape, dtype=np.float32, buffer=shm.buf, offset=off)
            off += size
        geo = _Geometry(**arrays, **geo_small)
        kern = _Kernel(geo, **kw)
        if _PROGRESS is not None:
            kern.on_tile = _count_progress
        kern.run_all(tiles, overlap=False)  # one BLAS thread here: products and counting alternate
        res = kern.result()  # private arrays only: nothing in it points into the shared block
        del geo, kern, arrays
        return res
    finally:
        shm.close()


def _run_pool(geo: _Geometry, tiles, kw: dict, *, workers: int, bar=None) -> list[dict]:
    import multiprocessing as mp
    from multiprocessing import shared_memory

    # the canonical rows are needed only to rescore pairs near a counted threshold
    e32 = geo.e32 if kw["count_thresholds"] else geo.e32[:0]
    big = [("e32", e32), ("lhs", geo.lhs), ("rhs", geo.rhs)]
    total = sum(a.nbytes for _, a in big)
    shm = shared_memory.SharedMemory(create=True, size=max(total, 1))
    try:
        off = 0
        shapes = []
        for key, a in big:
            np.ndarray(a.shape, dtype=np.float32, buffer=shm.buf, offset=off)[...] = a
            shapes.append((key, a.shape))
            off += a.nbytes
        small = {k: getattr(geo, k) for k in geo.__dataclass_fields__ if k not in ("e32", "lhs", "rhs")}
        # deal tiles round-robin so that every worker gets a share of diagonal and edge tiles
        parts = [tiles[w::workers] for w in range(workers)]
        jobs = [(shm.name, shapes, small, p, kw) for p in parts if p]
        ctx = mp.get_context("spawn")  # BLAS thread pools do not survive fork() safely
        saved = {v: os.environ.get(v) for v in _THREAD_VARS}
        counter = ctx.Value("q", 0) if bar is not None else None
        init = dict(initializer=_init_worker, initargs=(counter,)) if counter is not None else {}
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx, **init) as pool:
            try:
                # one BLAS thread per worker (the processes are the parallelism): the variables
                # must be in the environment when the workers start, before they import numpy
                for v in _THREAD_VARS:
                    os.environ[v] = "1"
                futures = [pool.submit(_worker, job) for job in jobs]
            finally:
                for v, old in saved.items():
                    if old is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = old
            try:
                if counter is not None:
                    from concurrent.futures import FIRST_EXCEPTION, wait

                    shown = 0
                    while True:
                        done, not_done = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                        now = counter.value
                        bar.update(now - shown)
                        shown = now
                        if not not_done or any(f.exception() is not None for f in done):
                            break
                return [f.result() for f in futures]
            except BrokenProcessPool as exc:
                raise MetricError(
                    "a tile worker process died (out of memory?, or the calling script lacks an "
                    "`if __name__ == '__main__':` guard, which spawned processes need). Retry with workers=1 or a "
                    "smaller tile."
                ) from exc
    finally:
        shm.close()
        shm.unlink()
