"""Choosing the engine: ``[engine]`` in a config, ``--engine ray [--address ADDR]`` on the command line.

``kind = "local"`` (default) embeds in local processes and scans tiles here; ``kind = "ray"``
embeds through Ray Data actors and runs the scan's passes as Ray tasks, on the cluster at
``address`` or on a local Ray instance. ``device = "cuda"`` (or ``"auto"``: when one is found)
computes the scan's matrix products on a GPU with CuPy or torch (see :mod:`audit.engine.gpu`),
and runs the backends' ONNX recognition step on batches of aligned faces through onnxruntime's
CUDA provider (:mod:`audit.backends.onnx_batch`; ``recognition = "batched"`` with ``device =
"cpu"`` takes that path on the CPU, ``recognition = "native"`` keeps each backend's own). Scan
results are identical in every case; embeddings differ by float rounding only (same fingerprint).

:func:`use_engine` makes an engine active for a block of code; :func:`audit.engine.scan.score_tiles`
and :func:`audit.engine.local.embed_missing` use the active one when not told otherwise::

    with use_engine(EngineConfig(kind="ray")):
        run_audit(config)
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..config import ENGINE_KEYS, EngineConfig, engine_section, field_readers

__all__ = ["EngineConfig", "engine_config", "engine_override", "use_engine", "active_tile_runner", "active_embedder", "recognition_backend",
           "KINDS", "DEVICES"]

KINDS = ("local", "ray")
DEVICES = ("cpu", "auto", "cuda")


def engine_config(table: Mapping[str, Any] | None, *, where: str | None = None) -> EngineConfig:
    """Validate an ``[engine]`` table (as parsed from TOML); errors name the file and the field."""
    err, table_of, _ = field_readers({"engine": dict(table or {})}, {"": {"engine"}, "engine": ENGINE_KEYS},
                                     path=Path(where) if where else None)
    return engine_section(table_of, err)


def engine_override(cfg: EngineConfig | None, kind: str | None, address: str | None) -> EngineConfig:
    """``--engine KIND [--address ADDR]`` over a config's ``[engine]``: kind and address replaced
    (kind "ray" when only an address is given), the other settings (device, recognition, ...) kept."""
    e = cfg or EngineConfig()
    table = {"kind": kind or "ray", "address": address, "device": e.device, "gpus_per_worker": e.gpus_per_worker,
             "recognition": e.recognition, "recognition_batch": e.recognition_batch}
    return engine_config({k: v for k, v in table.items() if v is not None}, where="--engine/--address")


@dataclass
class _Active:
    tile_runner: Any = None
    embedder: Callable | None = None
    recognition: tuple[str, int] | None = None  # (device, faces per run) of the batched recognition path


_ACTIVE: contextvars.ContextVar[_Active | None] = contextvars.ContextVar("face_audit_engine", default=None)


def active_tile_runner():
    """The tile runner of the active engine, or None (scan here)."""
    a = _ACTIVE.get()
    return None if a is None else a.tile_runner


def active_embedder() -> Callable | None:
    """The embedding function of the active engine (``embed_missing``'s signature), or None (local)."""
    a = _ACTIVE.get()
    return None if a is None else a.embedder


def recognition_backend(backend):
    """``backend`` as the active engine embeds with it: a copy on the batched recognition path
    (``[engine] recognition``/``device``), or ``backend`` itself. A backend without an ONNX
    recognition step keeps its own path under device "auto", and is refused when the batched path
    is required ("cuda", or "batched" on the "cpu")."""
    a = _ACTIVE.get()
    if a is None or a.recognition is None:
        return backend
    device, batch = a.recognition
    if not hasattr(backend, "with_recognition"):
        if device == "auto":
            return backend
        from ..errors import BackendError

        raise BackendError(
            f"[engine] asks for the batched recognition path on {device!r}, but the {getattr(backend, 'name', '?')} backend "
            "has no ONNX recognition step (opencv-sface and deepface's ONNX models have one). Set [engine] recognition = "
            "\"native\" to embed as today (the scan still uses the device)."
        )
    return backend.with_recognition(device, batch)


@contextlib.contextmanager
def use_engine(cfg: EngineConfig | None) -> Iterator[None]:
    """Make ``cfg``'s engine active inside the block (joining or starting Ray when kind is "ray";
    a local Ray instance started here stops at the end)."""
    if cfg is None or (cfg.kind == "local" and cfg.device == "cpu" and cfg.recognition_device is None):
        yield
        return
    active = _Active()
    if cfg.recognition_device is not None:
        active.recognition = (cfg.recognition_device, cfg.recognition_batch)
    started = False
    if cfg.device != "cpu":
        from .gpu import DeviceTileRunner, matmul_device

        dev = matmul_device(cfg.device)
        if dev is not None:
            active.tile_runner = DeviceTileRunner(dev)
    if cfg.kind == "ray":
        from . import ray_runtime
        from .ray_embed import embed_missing_ray
        from .ray_scan import RayTileRunner

        ray = ray_runtime.require_ray()
        started = not ray.is_initialized() and not cfg.address
        ray_runtime.connect(cfg.address)
        if active.tile_runner is None:  # (a GPU runner scans here: the products are on the device)
            active.tile_runner = RayTileRunner()
        gpw = cfg.gpus_per_worker

        def embedder(backend, paths, store, *, workers=2, batch_size=8, progress=True, desc="embedding"):
            return embed_missing_ray(backend, paths, store, workers=workers, batch_size=batch_size, progress=progress,
                                     desc=desc, gpus_per_worker=gpw)

        active.embedder = embedder
    token = _ACTIVE.set(active)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        if started:
            from .ray_runtime import disconnect

            disconnect()
