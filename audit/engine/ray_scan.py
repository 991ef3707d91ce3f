"""The all-pairs scan's passes as Ray tasks.

A pass is cut into blocks of tiles (each tile a row block × column block rectangle of the upper
triangle, or of the probe × reference rectangle of a two-sided scan), dealt round-robin so that
every block gets its share of diagonal and edge tiles. The operands (the augmented rows, and the
canonical rows when a threshold is counted) go into the object store once and are read without
copying by every task on a node. Each task runs the same kernel as a local pass
(:class:`audit.engine.kernel._Kernel`) and returns its accumulators: integer histograms and
per-row counts, which merge by summation, and its part of the exact tail, which merges by
:func:`audit.engine.tail._merge_tails`. Both merges are associative and commutative and the
screening only decides which pairs are rescored canonically, so thresholds and counts are
identical, bit for bit, to the local engine's, whatever the number of tasks or nodes (the
narrowing passes of a capped tail included: they are passes like any other).

The merge happens in the driver, as for local worker processes: what a task returns is
O(cells × bins + rows × groups × thresholds + its tail), independent of the pairs it scanned.
"""

from __future__ import annotations

import time

import numpy as np

from .geometry import _Geometry, _tile_pairs
from .ray_runtime import cluster_cpus, require_ray

__all__ = ["RayTileRunner"]

_BIG = ("e32", "lhs", "rhs")


def _scan_block(e32, lhs, rhs, small: dict, tiles: list, kw: dict) -> dict:
    """One task: a local kernel over ``tiles`` (runs in a Ray worker)."""
    from .kernel import _Kernel

    geo = _Geometry(e32=e32, lhs=lhs, rhs=rhs, **small)
    kern = _Kernel(geo, **kw)
    kern.run_all(tiles, overlap=False)  # one CPU per task: products and counting alternate
    out = kern.result()
    out["pairs"] = sum(_tile_pairs(t) for t in tiles)
    return out


class RayTileRunner:
    """Runs the passes of :func:`audit.engine.scan.score_tiles` as Ray tasks.

    Parameters
    ----------
    tasks_per_cpu : int, default 2
        Blocks of tiles per CPU of the cluster: more blocks balance the load (diagonal tiles cost
        half), fewer cost less in per-task overhead and merging.
    max_tasks : int, optional
        At most this many tasks per pass.

    Connect first (:func:`audit.engine.ray_runtime.connect`); the runner uses the cluster joined.
    """

    kind = "ray"

    def __init__(self, *, tasks_per_cpu: int = 2, max_tasks: int | None = None) -> None:
        if tasks_per_cpu < 1:
            raise ValueError(f"tasks_per_cpu must be >= 1, got {tasks_per_cpu}")
        self.tasks_per_cpu = int(tasks_per_cpu)
        self.max_tasks = max_tasks
        self._remote = None
        self.seconds_put = 0.0

    @property
    def workers(self) -> int:
        return cluster_cpus()

    def _task(self):
        if self._remote is None:
            ray = require_ray()
            self._remote = ray.remote(num_cpus=1)(_scan_block)
        return self._remote

    def run_tiles(self, geo: _Geometry, tiles, kw: dict, *, progress: bool = False, desc: str = "scoring pairs") -> list[dict]:
        """One pass over ``tiles`` (see :func:`audit.engine.workers._run`); results in block order."""
        from tqdm.auto import tqdm

        ray = require_ray()
        if not tiles:
            return []
        task = self._task()
        t0 = time.perf_counter()
        e32 = geo.e32 if kw["count_thresholds"] else geo.e32[:0]  # canonical rows: only to rescore bands
        refs = [ray.put(np.ascontiguousarray(a)) for a in (e32, geo.lhs, geo.rhs)]
        small = {k: getattr(geo, k) for k in geo.__dataclass_fields__ if k not in _BIG}
        kw_ref = ray.put(kw)
        small_ref = ray.put(small)
        self.seconds_put += time.perf_counter() - t0
        n_tasks = min(len(tiles), self.tasks_per_cpu * cluster_cpus())
        if self.max_tasks:
            n_tasks = min(n_tasks, int(self.max_tasks))
        blocks = [tiles[i::n_tasks] for i in range(n_tasks)]
        futures = [task.remote(*refs, small_ref, b, kw_ref) for b in blocks]
        order = {f: i for i, f in enumerate(futures)}
        out: list[dict | None] = [None] * len(futures)
        total = sum(_tile_pairs(t) for t in tiles)
        with tqdm(total=total, desc=desc, unit="pair", unit_scale=True, disable=not progress, leave=True, mininterval=0.5) as bar:
            pending = list(futures)
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for f in done:
                        res = ray.get(f)
                        bar.update(res.pop("pairs"))
                        out[order[f]] = res
            except BaseException:
                for f in pending:
                    ray.cancel(f, force=True)
                raise
        return out  # type: ignore[return-value]
