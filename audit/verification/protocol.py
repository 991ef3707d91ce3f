"""Pair protocols: pairs given as scores, pair lists, and the similarity convention.

Scores are similarities: cosine similarity for ``metric="cosine"``, minus the Euclidean distance
for ``metric="euclidean"`` (negated once), so that a pair matches when ``score >= threshold``.

All pairs of a set of embeddings are scored by the tiled engine (:mod:`audit.engine.tiles`),
which never holds the N² scores. :class:`PairScores` holds materialised pairs: those of a vendor's
scores file, of a pair list such as LFW's ``pairs.txt`` (:func:`read_pair_list`), or of sampled
impostors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MetricError

__all__ = ["PairScores", "similarity_matrix", "read_pair_list", "mated_pair_indices"]


@dataclass(frozen=True)
class PairScores:
    """Scores of the compared pairs.

    Attributes
    ----------
    mated_score, impostor_score : numpy.ndarray of shape (m,), (k,), float64
        Similarities.
    mated_a, mated_b, impostor_a, impostor_b : numpy.ndarray of int64
        Row indices (into the embedding matrix) of the two sides: ``a < b``, except in two-sided
        scores (:func:`audit.verification.inputs.read_scores` with ``two_sided=True``), where ``a`` is the probe.
    """

    mated_score: np.ndarray
    mated_a: np.ndarray
    mated_b: np.ndarray
    impostor_score: np.ndarray
    impostor_a: np.ndarray
    impostor_b: np.ndarray

    @property
    def n_mated(self) -> int:
        return int(self.mated_score.shape[0])

    @property
    def n_impostor(self) -> int:
        return int(self.impostor_score.shape[0])


def similarity_matrix(a: np.ndarray, b: np.ndarray, *, metric: str) -> np.ndarray:
    """Similarities between rows of ``a`` (n, d) and rows of ``b`` (m, d); shape (n, m), float64.

    ``metric="cosine"``: cosine similarity in [-1, 1]. ``metric="euclidean"``: minus the Euclidean
    distance (computed as sqrt(|a|² + |b|² − 2ab), clipped at 0).

    Examples
    --------
    >>> similarity_matrix(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]]), metric="euclidean")
    array([[-2.23606798]])
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return np.clip(an @ bn.T, -1.0, 1.0)
    if metric == "euclidean":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return -np.sqrt(np.maximum(sq, 0.0))
    raise MetricError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def read_pair_list(path, sample_ids, *, id_format: str = "lfw-deepfunneled/{name}/{name}_{number:04d}.jpg"):
    """Read a pair list into row indices of ``sample_ids``.

    Two formats: LFW's ``pairs.txt`` (a header line, then ``name n1 n2`` for a same-person pair and
    ``name1 n1 name2 n2`` for a different-person pair; ``id_format`` turns a name and a number into
    a sample id), or a CSV with columns ``sample_a,sample_b``.

    Returns
    -------
    a_idx, b_idx : numpy.ndarray of int64, shape (n_pairs,)

    Raises
    ------
    DataError
        Naming the file and line of a malformed line or an image the dataset lacks.
    """
    from pathlib import Path

    from ..errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pair list")
    index = {s: i for i, s in enumerate(sample_ids)}
    lines = path.read_text(encoding="utf-8").splitlines()
    a, b = [], []

    def look(sid: str, lineno: int) -> int:
        if sid not in index:
            raise DataError(f"{path}:{lineno}: names {sid!r}, which is not an image of this dataset")
        return index[sid]

    if lines and lines[0].strip().lower().replace(" ", "").startswith("sample_a,sample_b"):
        for lineno, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: expected 'sample_a,sample_b', found {line!r}")
            a.append(look(parts[0], lineno)); b.append(look(parts[1], lineno))
    else:
        for lineno, line in enumerate(lines[1:], 2):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) == 3:
                    ids = (id_format.format(name=parts[0], number=int(parts[1])), id_format.format(name=parts[0], number=int(parts[2])))
                elif len(parts) == 4:
                    ids = (id_format.format(name=parts[0], number=int(parts[1])), id_format.format(name=parts[2], number=int(parts[3])))
                else:
                    raise ValueError
            except ValueError:
                raise DataError(f"{path}:{lineno}: expected 'name n1 n2' or 'name1 n1 name2 n2' (LFW pairs.txt), found {line!r}") from None
            a.append(look(ids[0], lineno)); b.append(look(ids[1], lineno))
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


def mated_pair_indices(subjects) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of rows with the same subject, as two index arrays (``a < b``)."""
    subj = np.asarray(subjects)
    order = np.argsort(subj, kind="stable")
    s = subj[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    a, b = [], []
    for lo, hi in zip(starts, ends):
        if hi - lo > 1:
            rows = np.sort(order[lo:hi])
            i, j = np.triu_indices(hi - lo, k=1)
            a.append(rows[i]); b.append(rows[j])
    if not a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64)
