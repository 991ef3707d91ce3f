"""Connecting to Ray: a cluster at an address, or a local instance started here.

``ray`` is an optional extra (``pip install 'face-audit[ray]'``, which brings ``ray[data]``).
:func:`connect` joins the cluster at ``address`` (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``)
or starts a local instance with ``num_cpus`` CPUs; :func:`disconnect` stops only what
:func:`connect` started.

A local instance and slow imports
---------------------------------
jsonschema, which Ray imports in every process it starts, imports ``rfc3987_syntax`` when it is
installed (Jupyter brings it in); that module compiles an Earley grammar at import, about 5 s of
CPU in *each* Ray process. On a loaded two-core machine Ray's dashboard agent then misses the
raylet's fixed 15 s start-up deadline and ``ray.init`` fails ("The current node timed out during
startup"). The processes of a local instance started here therefore see a ``PYTHONPATH`` entry that
hides that one module (jsonschema then does not check the ``iri`` string format, which Ray never
uses); nothing else changes, and a cluster given by address is left as its operators set it up.
``FACE_AUDIT_RAY_HIDE_SLOW_IMPORTS=0`` turns this off.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

from ..errors import MissingDependencyError

__all__ = ["require_ray", "connect", "disconnect", "cluster_cpus", "cluster_gpus"]

_STARTED_HERE = False
_HIDE_DIR: str | None = None
_SLOW_MODULES = ("rfc3987_syntax",)


def require_ray() -> Any:
    """Import ``ray`` or raise a :class:`MissingDependencyError` naming the extra."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "the Ray engine needs ray: pip install 'face-audit[ray]' (or pip install 'ray[data]'), "
            "or use [engine] kind = \"local\""
        ) from None
    return ray


def _hide_dir() -> str:
    """A folder of stand-ins that make the slow modules unimportable (see the module docstring)."""
    global _HIDE_DIR
    if _HIDE_DIR is None:
        d = tempfile.mkdtemp(prefix="face-audit-ray-path-")
        for name in _SLOW_MODULES:
            with open(os.path.join(d, name + ".py"), "w", encoding="utf-8") as fh:
                fh.write("raise ImportError('hidden from Ray processes started by face-audit (slow import)')\n")
        _HIDE_DIR = d
    return _HIDE_DIR


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
            object_store_memory: int | None = None) -> Any:
    """Join the Ray cluster at ``address``, or start a local instance; returns the ``ray`` module.

    Parameters
    ----------
    address : str, optional
        A running cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``). None starts a
        local instance (or reuses the one this process already joined).
    num_cpus, num_gpus, object_store_memory : optional
        For a local instance only: its CPUs, GPUs and object store size in bytes.
    """
    global _STARTED_HERE
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **kw)
        return ray
    if num_cpus is not None:
        kw["num_cpus"] = int(num_cpus)
    if num_gpus is not None:
        kw["num_gpus"] = int(num_gpus)
    if object_store_memory is not None:
        kw["object_store_memory"] = int(object_store_memory)
    saved = os.environ.get("PYTHONPATH")
    hide = os.environ.get("FACE_AUDIT_RAY_HIDE_SLOW_IMPORTS", "1") != "0" and any(
        importlib.util.find_spec(m) is not None for m in _SLOW_MODULES)
    if hide:  # the raylet and every process it starts inherit this environment
        os.environ["PYTHONPATH"] = os.pathsep.join([_hide_dir()] + ([saved] if saved else []))
    try:
        ray.init(**kw)
    finally:
        if hide:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    _STARTED_HERE = True
    return ray


def disconnect() -> None:
    """Leave the cluster (a local instance started by :func:`connect` stops)."""
    global _STARTED_HERE
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
    _STARTED_HERE = False


def cluster_cpus() -> int:
    """CPUs of the cluster joined (at least 1)."""
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> int:
    """GPUs of the cluster joined."""
    ray = require_ray()
    return int(ray.cluster_resources().get("GPU", 0))
