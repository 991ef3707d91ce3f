"""The optional compiler (numba) behind the compiled inner loops of the engine's scan
(:mod:`audit.engine._fused`) and of the people-level bootstrap (:mod:`audit.metrics._people_fused`).

Both keep a numpy path that gives identical results; ``FACE_AUDIT_NUMBA=0`` turns the compiled
loops off (read when a module first compiles its loops).
"""

from __future__ import annotations

import os

__all__ = ["numba_or_none"]


def numba_or_none():
    """The ``numba`` module, or ``None`` when it is not installed or ``FACE_AUDIT_NUMBA=0``."""
    if os.environ.get("FACE_AUDIT_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba
