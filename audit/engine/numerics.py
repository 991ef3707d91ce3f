"""Numerics of the tiled scan: float32 rounding helpers, Higham's bounds, the canonical score,
and the validation and preparation of its inputs (embeddings, subject and group codes)."""

from __future__ import annotations

import numpy as np

from ..errors import MetricError

#: Supported similarity metrics.
METRICS = ("cosine", "euclidean")
#: Impostor protocols of :func:`audit.engine.scan.score_tiles`.
IMPOSTOR_MODES = ("all", "same_group")

_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53  # unit roundoff of float64
_F32_MAX = float(np.finfo(np.float32).max)
_CANON_ELEMS = 1 << 18  # floats per canonical rescoring chunk


def _gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product."""
    return n * u / (1.0 - n * u)


def _tree_sum(p: np.ndarray) -> np.ndarray:
    """Row sums of a float64 (n, w) array in a fixed pairwise order: the same bits for any n."""
    n, w = p.shape
    width = 1 << max(0, (w - 1).bit_length())
    if width != w:
        q = np.zeros((n, width), dtype=np.float64)
        q[:, :w] = p
        p = q
    while p.shape[1] > 1:
        h = p.shape[1] // 2
        p = p[:, :h] + p[:, h:]
    return p[:, 0].copy()


def _f32_down(x: float) -> np.float32:
    """The largest float32 <= x (``-inf`` stays ``-inf``)."""
    if x > _F32_MAX:
        return np.float32(_F32_MAX)
    if x < -_F32_MAX:
        return np.float32(-np.inf)
    f = np.float32(x)
    if float(f) > x:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def _f32_up(x: float) -> np.float32:
    """The smallest float32 >= x (``inf`` stays ``inf``)."""
    if x < -_F32_MAX:
        return np.float32(-_F32_MAX)
    if x > _F32_MAX:
        return np.float32(np.inf)
    f = np.float32(x)
    if float(f) < x:
        f = np.nextafter(f, np.float32(np.inf))
    return f


def _k_rule(target: float, n: int) -> int:
    """``floor(target × n)`` with :func:`audit.metrics.threshold_at_fmr`'s own rule.

    Exact equality with it depends on using the very same function; it is imported here, not at
    module level, so that tile workers (which never set thresholds) do not import pandas/scipy.
    """
    from ..metrics.thresholds import _allowed_false_matches

    return _allowed_false_matches(target, n)


def _just_above(value: float, dtype: np.dtype) -> float:
    from ..metrics.thresholds import _just_above as above

    return above(value, dtype)


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise MetricError(f"metric must be one of {METRICS}; got {metric!r}. A backend's BackendInfo.metric names it.")
    return metric


def _prepare(embeddings: np.ndarray, metric: str, normalize: bool) -> np.ndarray:
    """Validate and return the float32 rows every score is computed from (C-contiguous)."""
    _check_metric(metric)
    try:
        e = np.asarray(embeddings)
    except (TypeError, ValueError):
        raise MetricError("embeddings must be a numeric array of shape (n, d); it could not be read as an array.") from None
    if e.dtype.kind not in "iuf":
        raise MetricError(f"embeddings must be numeric, shape (n, d); got dtype {e.dtype}. Convert them with np.asarray(x, dtype=np.float32).")
    if e.ndim != 2:
        raise MetricError(f"embeddings must be a 2-D array (n, d); got shape {e.shape}. Stack one embedding per row.")
    if e.shape[1] < 1:
        raise MetricError(f"embeddings must have at least one column; got shape {e.shape}.")
    if not np.all(np.isfinite(e)):
        raise MetricError("embeddings contain NaN or infinite values; the backend output is corrupt. Give failed images a status and leave them out.")
    if metric == "cosine" and normalize:
        out = np.empty(e.shape, dtype=np.float32)
        step = max(1, _CANON_ELEMS // e.shape[1])
        for a in range(0, e.shape[0], step):  # in chunks: no N × d float64 temporaries
            x = e[a:a + step].astype(np.float64)
            norm = np.sqrt(_tree_sum(x * x))
            x /= np.maximum(norm, 1e-12)[:, None]
            out[a:a + step] = x
        return out
    return np.ascontiguousarray(e, dtype=np.float32)


def _row_sq_norms(e32: np.ndarray) -> np.ndarray:
    """Squared row norms in float64, in chunks."""
    out = np.empty(e32.shape[0], dtype=np.float64)
    step = max(1, _CANON_ELEMS // max(e32.shape[1], 1))
    for a in range(0, e32.shape[0], step):
        x = e32[a:a + step].astype(np.float64)
        out[a:a + step] = _tree_sum(x * x)
    return out


def _canonical(e32: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Canonical scores of row pairs ``(a[k], b[k])`` of prepared float32 rows; float64, shape (n,).

    Compiled (:func:`audit.engine._fused.canonical`, the same bits) when numba is in use."""
    from . import _fused

    a, b = np.asarray(a), np.asarray(b)
    if (_fused.available() and a.ndim == 1 and a.dtype.kind in "iu" and b.dtype.kind in "iu" and e32.dtype == np.float32
            and e32.flags.c_contiguous):
        return _fused.canonical(e32, a, b, metric != "cosine")
    return _canonical_numpy(e32, a, b, metric)


def _canonical_numpy(e32: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    n = a.shape[0]
    out = np.empty(n, dtype=np.float64)
    step = max(1, _CANON_ELEMS // e32.shape[1])
    for s in range(0, n, step):
        x = e32[a[s:s + step]].astype(np.float64)
        y = e32[b[s:s + step]].astype(np.float64)
        if metric == "cosine":
            out[s:s + step] = _tree_sum(x * y)
        else:
            x -= y
            out[s:s + step] = -np.sqrt(_tree_sum(x * x))
    return out


def _codes(values: np.ndarray, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values)
    if v.shape != (n,):
        raise MetricError(f"{name} must have one entry per embedding row ({n}); got shape {v.shape}.")
    labels, codes = np.unique(v, return_inverse=True)
    return labels, codes.astype(np.int64).reshape(n)


def _group_codes(groups: np.ndarray, n: int, n_groups: int | None) -> tuple[np.ndarray, int]:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise MetricError(f"groups must have one code per embedding row ({n}); got shape {g.shape}.")
    if n and g.dtype.kind not in "iu":
        raise MetricError(
            f"groups must be integer codes 0..G-1; got dtype {g.dtype}. Encode labels first, e.g. "
            "labels, codes = np.unique(column, return_inverse=True)."
        )
    g = g.astype(np.int64)
    if n and g.min() < 0:
        raise MetricError(f"groups must be codes >= 0; found {int(g.min())}.")
    top = int(g.max()) + 1 if n else 0
    if n_groups is None:
        n_groups = max(top, 1)
    elif isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < max(top, 1):
        raise MetricError(f"n_groups must be an integer >= 1 and above every group code (max code {top - 1}); got {n_groups!r}.")
    return g, int(n_groups)
