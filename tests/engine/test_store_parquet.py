"""Embedding tables in Parquet, keyed by image sha256 and backend fingerprint: export from one store,
import into another (as between the nodes of a cluster and the driver), refusals that name the
file, the row and the field."""

from __future__ import annotations

import stat

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from audit.backends.base import BackendInfo, FaceResult, FaceStatus  # noqa: E402
from audit.errors import ConfigError  # noqa: E402
from audit.store import PARQUET_COLUMNS, EmbeddingStore  # noqa: E402

SHA = [f"{i:064x}" for i in range(1, 5)]


def _info(**kw):
    base = dict(backend="fake", model="m", version="1", weights_sha256="ab" * 32, dim=3, metric="cosine", options={})
    base.update(kw)
    return BackendInfo(**base)


def _results():
    return {
        SHA[0]: FaceResult(FaceStatus.OK, np.array([0.1, -2.5, 3.0e-7], np.float32), n_faces=1),
        SHA[1]: FaceResult(FaceStatus.NO_FACE, detail="no face found"),
        SHA[2]: FaceResult(FaceStatus.OK, np.array([1.0, 2.0, np.float32(1) / 3], np.float32), n_faces=2),
    }


def test_export_then_import_round_trips_bit_for_bit(tmp_path):
    with EmbeddingStore(tmp_path / "a", _info()) as a:
        a.put_many(_results())
        assert a.export_parquet(tmp_path / "emb.parquet") == 3
    assert stat.S_IMODE((tmp_path / "emb.parquet").stat().st_mode) == 0o600
    t = pq.read_table(tmp_path / "emb.parquet")
    assert tuple(t.column_names) == PARQUET_COLUMNS
    assert set(t.column("backend_fingerprint").to_pylist()) == {_info().fingerprint}
    with EmbeddingStore(tmp_path / "b", _info()) as b:
        b.put_many({SHA[2]: FaceResult(FaceStatus.ERROR, detail="kept")})
        assert b.import_parquet(tmp_path / "emb.parquet") == 2  # SHA[2] is already there: kept
        got = b.get_many(SHA)
        assert got[SHA[2]].detail == "kept"
        assert b.import_parquet(tmp_path / "emb.parquet", replace=True) == 3
        got = b.get_many(SHA)
    want = _results()
    assert set(got) == set(want)
    for sha, r in want.items():
        assert got[sha].status is r.status and got[sha].n_faces == r.n_faces and got[sha].detail == r.detail
        if r.ok:
            assert got[sha].embedding.tobytes() == r.embedding.tobytes()


def test_import_refuses_another_backend_and_bad_rows(tmp_path):
    with EmbeddingStore(tmp_path / "a", _info()) as a:
        a.put_many(_results())
        a.export_parquet(tmp_path / "emb.parquet")
    with EmbeddingStore(tmp_path / "c", _info(version="2")) as c:
        with pytest.raises(ConfigError, match=r"emb.parquet: row 0, field 'backend_fingerprint'"):
            c.import_parquet(tmp_path / "emb.parquet")
        assert len(c) == 0
    t = pq.read_table(tmp_path / "emb.parquet")
    bad = t.set_column(0, "image_sha256", pa.array(["not-a-hash"] + t.column(0).to_pylist()[1:]))
    pq.write_table(bad, tmp_path / "bad.parquet")
    pq.write_table(t.drop(["status"]), tmp_path / "nostatus.parquet")
    short = t.set_column(5, "embedding", pa.array([[1.0, 2.0]] + t.column(5).to_pylist()[1:], pa.list_(pa.float32())))
    pq.write_table(short, tmp_path / "short.parquet")
    with EmbeddingStore(tmp_path / "d", _info()) as d:
        with pytest.raises(ConfigError, match=r"row 0, field 'image_sha256': expected 64 lowercase hex"):
            d.import_parquet(tmp_path / "bad.parquet")
        with pytest.raises(ConfigError, match=r"column 'status' is missing"):
            d.import_parquet(tmp_path / "nostatus.parquet")
        with pytest.raises(ConfigError, match=r"row 0: embedding has 2 values, the backend gives 3"):
            d.import_parquet(tmp_path / "short.parquet")
        assert len(d) == 0  # nothing half-imported
