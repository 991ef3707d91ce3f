"""The embedding store: a content-addressed, resumable cache of per-image backend outputs.

Key: (image sha256, backend fingerprint). The fingerprint (:attr:`BackendInfo.fingerprint`)
covers the backend id, model, code and library versions, weights sha256 and every option that
changes embeddings, so a change to any of them misses the cache instead of returning stale vectors.

Storage: one SQLite database per backend fingerprint under ``<cache>/embeddings/``. Each batch of
results is committed in one transaction, so a run killed midway keeps every finished batch and
the next run resumes from there; a half-written batch is never visible. Failures (no face,
unreadable, ...) are cached too: they are results.

A cache folder that cannot be written (a read-only mount shared by a team) is opened read-only:
a run whose every embedding is already stored runs from it; one that would have to add
embeddings stops before computing any, naming the folder (:attr:`EmbeddingStore.read_only`).

Embeddings are biometric data: the folder is created with mode 0700 and the databases 0600, the
store lives in the user's cache (never the repository), and nothing here logs vectors.

Where one SQLite file cannot be shared (the nodes of a cluster), results move between stores as a
Parquet table keyed by image sha256 and backend fingerprint (:meth:`EmbeddingStore.export_parquet`,
:meth:`EmbeddingStore.import_parquet`; columns in :data:`PARQUET_COLUMNS`). The file is written
with mode 0600, like the databases.
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
from .errors import BackendError, ConfigError, MissingDependencyError

__all__ = ["EmbeddingStore", "CachedResult", "PARQUET_COLUMNS"]

#: Columns of an exported embedding table: the key (image sha256, backend fingerprint), the
#: result (status, faces found, detail) and the embedding (float32 list, null unless status "ok").
PARQUET_COLUMNS = ("image_sha256", "backend_fingerprint", "status", "n_faces", "detail", "embedding")

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
        self.read_only = False
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"cache folder {self.root} is a file, not a folder; give --cache-dir (or run.cache_dir) a folder")
        self.path = self.root / f"{info.backend}-{info.fingerprint[:24]}.sqlite"
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                os.chmod(self.root, 0o700)
            except OSError:
                pass
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
        except (OSError, sqlite3.OperationalError) as exc:
            self._open_read_only(exc)

    def _open_read_only(self, why: BaseException) -> None:
        """Open an existing database that cannot be written; an absent one is an empty store."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
        self.read_only = True
        self._why = why
        if not self.path.is_file():
            self._conn = sqlite3.connect("file::memory:", uri=True)
            self._conn.executescript(_SCHEMA)
            return
        uri = self.path.resolve().as_uri()
        for mode in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                self._conn = sqlite3.connect(uri + mode, uri=True, timeout=60)
                self._conn.execute("SELECT COUNT(*) FROM results").fetchone()
                return
            except sqlite3.Error:
                continue
        raise ConfigError(f"cache {self.path} can be neither written nor read ({why}); give --cache-dir a writable folder")

    def check_writable(self, n_missing: int) -> None:
        """Raise (before any work) when ``n_missing`` results would have to be added to a read-only store."""
        if self.read_only and n_missing:
            raise ConfigError(
                f"cache folder {self.root} cannot be written ({getattr(self, '_why', 'read-only')}) and lacks {n_missing} "
                "embedding(s) this run needs; give --cache-dir (or run.cache_dir) a writable folder, or fill this cache first"
            )

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
        self.check_writable(len(results))
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

    # ------------------------------------------------------------------ Parquet exchange
    def export_parquet(self, path: str | Path, shas: Iterable[str] | None = None) -> int:
        """Write the stored results (all, or those of ``shas``) to a Parquet file; returns the rows written."""
        pa, pq = _pyarrow()
        if shas is None:
            shas = [r[0] for r in self._conn.execute("SELECT image_sha256 FROM results ORDER BY image_sha256")]
        got = self.get_many(shas)
        keys = sorted(got)
        emb = [None if got[k].embedding is None else got[k].embedding.tolist() for k in keys]
        table = pa.table({
            "image_sha256": pa.array(keys, pa.string()),
            "backend_fingerprint": pa.array([self.info.fingerprint] * len(keys), pa.string()),
            "status": pa.array([got[k].status.value for k in keys], pa.string()),
            "n_faces": pa.array([int(got[k].n_faces) for k in keys], pa.int64()),
            "detail": pa.array([got[k].detail for k in keys], pa.string()),
            "embedding": pa.array(emb, pa.list_(pa.float32())),
        })
        path = Path(path)
        pq.write_table(table, path)
        os.chmod(path, 0o600)
        return len(keys)

    def import_parquet(self, path: str | Path, *, replace: bool = False) -> int:
        """Add the results of an exported Parquet file; returns the rows added.

        Every row must carry this store's backend fingerprint (embeddings of another model or
        version would be wrong here). Results already stored are kept unless ``replace``.
        """
        pa, pq = _pyarrow()
        path = Path(path)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ConfigError(f"{path}: not a readable Parquet file ({exc})") from exc
        missing = [c for c in PARQUET_COLUMNS if c not in table.column_names]
        if missing:
            raise ConfigError(f"{path}: column '{missing[0]}' is missing; an embedding table has the columns {list(PARQUET_COLUMNS)}")
        cols = {c: table.column(c).to_pylist() for c in PARQUET_COLUMNS}
        results: dict[str, FaceResult] = {}
        for i, sha in enumerate(cols["image_sha256"]):
            where = f"{path}: row {i}"
            fp = cols["backend_fingerprint"][i]
            if fp != self.info.fingerprint:
                raise ConfigError(
                    f"{where}, field 'backend_fingerprint': {str(fp)[:16]}… is not this store's backend "
                    f"({self.info.backend}:{self.info.model}, {self.info.fingerprint[:16]}…); import it into a store of that backend"
                )
            if not isinstance(sha, str) or len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
                raise ConfigError(f"{where}, field 'image_sha256': expected 64 lowercase hex digits, found {sha!r}")
            try:
                status = FaceStatus(cols["status"][i])
                vec = cols["embedding"][i]
                emb = None if vec is None else np.asarray(vec, dtype=np.float32)
                if emb is not None and self.info.dim and emb.shape != (self.info.dim,):
                    raise ValueError(f"embedding has {emb.shape[0]} values, the backend gives {self.info.dim}")
                results[sha] = FaceResult(status, emb, int(cols["n_faces"][i] or 0), cols["detail"][i] or "")
            except (ValueError, TypeError, BackendError) as exc:
                raise ConfigError(f"{where}: {exc}") from exc
        if not replace:
            have = self._existing(list(results))
            results = {k: v for k, v in results.items() if k not in have}
        if results:
            self.put_many(results)
        return len(results)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("Parquet embedding tables need pyarrow: pip install 'face-audit[parquet]'") from None
    return pa, pq
