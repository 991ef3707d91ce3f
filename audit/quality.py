"""Data quality: duplicate images and wrong faces, which look like label noise to an audit.

An image that is in a dataset twice under two names, or a photo that shows someone else, writes
its own numbers: a byte-identical image labelled as two people is an impostor pair at distance 0.
This module finds them (pure numpy/pandas over the sample table and the embeddings; no I/O).

Duplicates
----------
- **exact**: the same file bytes (same ``sha256``), acquired or not;
- **near**: two acquired images whose embedding distance is at most the backend's bound
  (:data:`NEAR_DUPLICATE_BOUNDS`, in the backend's native units): the same photograph re-encoded,
  resized or slightly cropped. The bounds were measured on London images (see docs/protocols.md):
  for dlib, re-encoding (JPEG 60), halving, cropping 5% give 0.016-0.055 and a quarter-size JPEG
  0.056-0.084, while the closest two *different* photos of one person (neutral and smiling, one
  session) are 0.096 apart and the closest impostor pair of London 0.447 (of FairFace 0.124).

Each is **within a subject** (the same person's image twice: an easy mated pair) or **across
subjects** (the same image under two identities: label noise, an impostor pair that is really
mated). A policy decides what is left out (:func:`duplicate_exclusions`).

Wrong face
----------
An acquired image is flagged when it is farther from every other image of its own subject than
``mated_quantile`` (0.99) of all mated distances, *and* at most as far from some image of another
subject as 90% of mated pairs are from their own (the mated distances' 0.9 quantile): it looks like
someone else (a mislabelled file, or the wrong face taken from a
photo with several). Images in which the detector found several faces are listed too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ConfigError

__all__ = ["NEAR_DUPLICATE_BOUNDS", "near_duplicate_bound", "find_duplicates", "duplicate_exclusions", "wrong_faces",
           "DUPLICATE_POLICIES", "DUPLICATE_COLUMNS", "WRONG_FACE_COLUMNS"]

#: Near-duplicate bounds in native distance units, by ``backend`` or ``backend:model``.
NEAR_DUPLICATE_BOUNDS = {
    "dlib": 0.09,             # euclidean distance
    "deepface:Dlib": 0.0015,  # cosine distance (deepface's Dlib embeddings sit close together)
    "opencv-sface": 0.02,     # cosine distance
}

#: ``[data] duplicates``: "default" excludes exact copies across subjects and warns about the rest.
DUPLICATE_POLICIES = ("default", "warn", "exclude", "keep")

DUPLICATE_COLUMNS = ["kind", "scope", "sample_a", "sample_b", "subject_a", "subject_b", "distance", "excluded"]
WRONG_FACE_COLUMNS = ["sample_id", "subject", "reason", "n_faces", "own_distance", "nearest_other_subject", "nearest_other_distance"]

_BLOCK = 1024


def near_duplicate_bound(backend: str, model: str = "") -> float | None:
    """The documented near-duplicate bound of a backend (``None``: no bound measured for it)."""
    return NEAR_DUPLICATE_BOUNDS.get(f"{backend}:{model}", NEAR_DUPLICATE_BOUNDS.get(backend))


def _prepare(emb: np.ndarray, metric: str) -> np.ndarray:
    x = np.asarray(emb, np.float64)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    return x


def _distances(x: np.ndarray, rows: slice, metric: str) -> np.ndarray:
    """Native distances of ``x[rows]`` to every row: (block, N)."""
    xb = x[rows]
    if metric == "cosine":
        return 1.0 - xb @ x.T
    sq = np.sum(x * x, axis=1)
    return np.sqrt(np.maximum(sq[rows][:, None] + sq[None, :] - 2.0 * xb @ x.T, 0.0))


def find_duplicates(samples: pd.DataFrame, ok_rows: np.ndarray, embeddings: np.ndarray | None, *, metric: str = "cosine",
                    bound: float | None = None) -> pd.DataFrame:
    """Exact and near duplicate pairs (columns :data:`DUPLICATE_COLUMNS`; ``excluded`` is False).

    Parameters
    ----------
    samples : DataFrame
        ``sample_id``, ``subject`` and (for exact duplicates) ``sha256`` per image.
    ok_rows : ndarray of int, shape (n_ok,)
        Rows of ``samples`` whose embeddings are ``embeddings``.
    embeddings : ndarray, shape (n_ok, d), or None
    metric : {"cosine", "euclidean"}
        Native distance: ``1 - cosine`` or Euclidean distance of the raw embeddings.
    bound : float or None
        Near-duplicate bound in those units (None: exact duplicates only).

    Examples
    --------
    >>> s = pd.DataFrame({"sample_id": ["a", "b", "c"], "subject": ["1", "2", "2"], "sha256": ["x", "x", "y"]})
    >>> find_duplicates(s, np.array([0, 1, 2]), np.array([[1.0, 0], [1, 0], [0.99, 0.14]]), bound=0.02)[["kind", "scope", "sample_a", "sample_b"]].values.tolist()
    [['exact', 'across subjects', 'a', 'b'], ['near', 'across subjects', 'a', 'c'], ['near', 'within subject', 'b', 'c']]
    """
    ids = samples["sample_id"].astype(str).to_numpy()
    subj = samples["subject"].astype(str).to_numpy()
    rows = []
    exact_pairs = set()
    if "sha256" in samples.columns:
        sha = samples["sha256"].astype(str).to_numpy()
        order = np.argsort(sha, kind="stable")
        for _, idx in pd.Series(order).groupby(sha[order]):
            idx = sorted(idx.tolist(), key=lambda r: ids[r])
            for i in range(len(idx)):
                for j in range(i + 1, len(idx)):
                    a, b = idx[i], idx[j]
                    exact_pairs.add((a, b))
                    rows.append(("exact", "within subject" if subj[a] == subj[b] else "across subjects", ids[a], ids[b], subj[a], subj[b], 0.0))
    ok_rows = np.asarray(ok_rows, np.int64)
    if bound is not None and embeddings is not None and ok_rows.size > 1:
        x = _prepare(embeddings, metric)
        n = x.shape[0]
        for start in range(0, n, _BLOCK):
            d = _distances(x, slice(start, min(n, start + _BLOCK)), metric)
            bi, bj = np.nonzero(d <= bound)
            bi = bi + start
            keep = bj > bi
            for i, j in zip(bi[keep], bj[keep]):
                a, b = sorted((int(ok_rows[i]), int(ok_rows[j])), key=lambda r: ids[r])
                if (a, b) in exact_pairs:
                    continue
                rows.append(("near", "within subject" if subj[a] == subj[b] else "across subjects", ids[a], ids[b], subj[a], subj[b],
                             float(max(d[i - start, j], 0.0))))
    out = pd.DataFrame(rows, columns=DUPLICATE_COLUMNS[:-1])
    out["excluded"] = False
    return out.sort_values(["kind", "sample_a", "sample_b"], kind="stable").reset_index(drop=True)


def duplicate_exclusions(dups: pd.DataFrame, policy: str = "default") -> tuple[set[str], pd.DataFrame]:
    """The sample ids a policy leaves out, and the pairs with ``excluded`` set.

    - ``"default"``: every copy of an exact duplicate across subjects (which label is right cannot
      be known); the rest are kept and warned about;
    - ``"exclude"``: that, every image of a near duplicate across subjects, and within a subject
      all but the first (by ``sample_id``) of each set of copies;
    - ``"warn"`` and ``"keep"``: nothing (``"keep"`` also gives no warning).
    """
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(f"field 'data.duplicates': expected one of {list(DUPLICATE_POLICIES[1:])}, found {policy!r}")
    out: set[str] = set()
    if policy in ("warn", "keep") or dups.empty:
        return out, dups.assign(excluded=False)
    across = dups["scope"] == "across subjects"
    chosen = across & ((dups["kind"] == "exact") | (policy == "exclude"))
    for a, b in dups.loc[chosen, ["sample_a", "sample_b"]].itertuples(index=False):
        out.update((a, b))
    if policy == "exclude":
        within = dups[~across].sort_values(["sample_a", "sample_b"])
        for a, b in within[["sample_a", "sample_b"]].itertuples(index=False):
            if a not in out:  # keep the first copy, leave out the later one
                out.add(b)
    flagged = dups["sample_a"].isin(out) | dups["sample_b"].isin(out)
    return out, dups.assign(excluded=flagged.to_numpy())


def wrong_faces(samples: pd.DataFrame, ok_rows: np.ndarray, embeddings: np.ndarray | None, *, metric: str = "cosine",
                mated_quantile: float = 0.99) -> pd.DataFrame:
    """Images that look like another subject, and images with several faces (columns
    :data:`WRONG_FACE_COLUMNS`; distances in native units).

    Examples
    --------
    Subject 1's second image is subject 2's face:

    >>> s = pd.DataFrame({"sample_id": list("abcdefgh"), "subject": list("11223344"), "n_faces": [1] * 7 + [2]})
    >>> e = np.array([[1, 0, 0, 0], [0, 1, 0.02, 0], [0, 1, 0, 0], [0.05, 1, 0, 0], [0, 0, 1, 0], [0.05, 0, 1, 0],
    ...               [0, 0, 0, 1], [0, 0.05, 0, 1]])
    >>> wrong_faces(s, np.arange(8), e)[["sample_id", "nearest_other_subject", "n_faces"]].values.tolist()
    [['b', '2', 1], ['h', '', 2]]
    """
    ids = samples["sample_id"].astype(str).to_numpy()
    subj_all = samples["subject"].astype(str).to_numpy()
    rows = []
    ok_rows = np.asarray(ok_rows, np.int64)
    if embeddings is not None and ok_rows.size > 2:
        x = _prepare(embeddings, metric)
        subj = subj_all[ok_rows]
        _, code = np.unique(subj, return_inverse=True)
        n = x.shape[0]
        own = np.full(n, np.inf)
        other = np.full(n, np.inf)
        other_who = np.zeros(n, np.int64)
        mated = []
        for start in range(0, n, _BLOCK):
            stop = min(n, start + _BLOCK)
            d = _distances(x, slice(start, stop), metric)
            same = code[start:stop, None] == code[None, :]
            d_self = d.copy()
            d_self[np.arange(stop - start), np.arange(start, stop)] = np.inf
            own[start:stop] = np.where(same, d_self, np.inf).min(axis=1)
            masked = np.where(same, np.inf, d)
            other_who[start:stop] = masked.argmin(axis=1)
            other[start:stop] = masked.min(axis=1)
            bi, bj = np.nonzero(same & (np.arange(start, stop)[:, None] < np.arange(n)[None, :]))
            mated.append(d[bi, bj])
        m = np.concatenate(mated) if mated else np.zeros(0)
        if m.size:
            cut, close = float(np.quantile(m, mated_quantile)), float(np.quantile(m, 0.9))
            flag = np.isfinite(own) & (own > cut) & (other <= close)
            for i in np.flatnonzero(flag):
                rows.append((ids[ok_rows[i]], subj[i], f"farther from its own subject's images than {mated_quantile:.0%} of mated pairs "
                             f"(> {cut:.4g}) and as close to another subject's as a typical mated pair (<= {close:.4g})", _n_faces(samples, ok_rows[i]), float(own[i]),
                             subj[other_who[i]], float(other[i])))
    if "n_faces" in samples.columns:
        nf = pd.to_numeric(samples["n_faces"], errors="coerce").fillna(0).to_numpy()
        for r in np.flatnonzero(nf > 1):
            rows.append((ids[r], subj_all[r], f"{int(nf[r])} faces detected in the image", int(nf[r]), np.nan, "", np.nan))
    return pd.DataFrame(rows, columns=WRONG_FACE_COLUMNS)


def _n_faces(samples: pd.DataFrame, r: int):
    if "n_faces" not in samples.columns:
        return None
    v = pd.to_numeric(pd.Series([samples["n_faces"].iloc[r]]), errors="coerce").iloc[0]
    return None if pd.isna(v) else int(v)
