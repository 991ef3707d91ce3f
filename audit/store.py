"""The embedding store: a content-addressed, resumable cache of per-image backend outputs.

Key: (image sha256, backend fingerprint). The fingerprint (:attr:`BackendInfo.fingerprint`)
covers the backend id, model, code and library versions, weights sha256 and every option that
changes embeddings, so a change to any of them misses the cache instead of returning stale vectors.

Storage: one SQLite database per backend fingerprint under ``<cache>/embeddings/``. Each batch of
results is committed in one transaction, so a run killed midway keeps every finished batch and
the next run resumes from there; a half-written batch is never visible. Failures (no face,
unreadable, ...) are cached too: they are results.

Embeddings are biometric data: the folder is created with mode 0700 and the databases 0600, the
store lives in the user's cache (never the repository), and nothing here logs vectors.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .backends.base import BackendInfo, FaceResult, FaceStatus

__all__ = ["EmbeddingStore", "CachedResult"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    image_sha256 TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    n_faces INTEGER NOT NULL,
    detail TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class CachedResult:
    """A FaceResult as the store returns it, keyed by image hash."""

    image_sha256: str
    result: FaceResult


class EmbeddingStore:
    """Per-backend cache of :class:`FaceResult` keyed by image sha256.

    Parameters
    ----------
    root : path
        Cache folder (``<cache_dir>/embeddings`` by default in the pipeline).
    info : BackendInfo
        The loaded backend; its fingerprint selects the database file.

    Examples
    --------
    >>> store = EmbeddingStore(tmp, backend.info())          # doctest: +SKIP
    >>> store.put_many({sha: result})                        # doctest: +SKIP
    >>> store.get_many([sha])[sha].status                    # doctest: +SKIP
    <FaceStatus.OK: 'ok'>
    """

    def __init__(self, root: str | Path, info: BackendInfo) -> None:
        self.root = Path(root)
        self.info = info
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.chmod(self.root, 0o700)
        except OSError:
            pass
        self.path = self.root / f"{info.backend}-{info.fingerprint[:24]}.sqlite"
        new = not self.path.exists()
        self._conn = sqlite3.connect(self.path, timeout=60)
        if new:
            os.chmod(self.path, 0o600)
        self._conn.executescript(_SCHEMA)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('backend', ?)", (json.dumps(info.to_dict(), sort_keys=True, default=str),)
        )
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "EmbeddingStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def missing(self, shas: Sequence[str]) -> list[str]:
        """The hashes (in input order, deduplicated) that have no stored result."""
        have = self._existing(shas)
        seen: set[str] = set()
        out = []
        for s in shas:
            if s not in have and s not in seen:
                seen.add(s)
                out.append(s)
        return out

    def _existing(self, shas: Sequence[str]) -> set[str]:
        have: set[str] = set()
        uniq = list(dict.fromkeys(shas))
        for i in range(0, len(uniq), 900):
            chunk = uniq[i:i + 900]
            q = f"SELECT image_sha256 FROM results WHERE image_sha256 IN ({','.join('?' * len(chunk))})"
            have.update(r[0] for r in self._conn.execute(q, chunk))
        return have

    def put_many(self, results: Mapping[str, FaceResult]) -> None:
        """Store results in one transaction (all or nothing)."""
        rows = []
        for sha, r in results.items():
            vec = None if r.embedding is None else np.asarray(r.embedding, dtype="<f4").tobytes()
            dim = 0 if r.embedding is None else int(r.embedding.shape[0])
            rows.append((sha, r.status.value, int(r.n_faces), r.detail, dim, vec))
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", rows)

    def get_many(self, shas: Iterable[str]) -> dict[str, FaceResult]:
        """Stored results for the given hashes (absent hashes are left out)."""
        out: dict[str, FaceResult] = {}
        uniq = list(dict.fromkeys(shas))
        for i in range(0, len(uniq), 900):
            chunk = uniq[i:i + 900]
            q = f"SELECT image_sha256, status, n_faces, detail, dim, vector FROM results WHERE image_sha256 IN ({','.join('?' * len(chunk))})"
            for sha, status, n_faces, detail, dim, vec in self._conn.execute(q, chunk):
                emb = None if vec is None else np.frombuffer(vec, dtype="<f4", count=dim).astype(np.float32)
                out[sha] = FaceResult(FaceStatus(status), emb, n_faces, detail)
        return out
