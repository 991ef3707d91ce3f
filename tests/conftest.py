"""Shared test fixtures. Real images are read from ../shared/datasets and never copied into the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path | None:
    env = os.environ.get("FACE_AUDIT_MIRROR")
    for cand in ([Path(env)] if env and "://" not in env else []) + [REPO.parent / "shared" / "datasets"]:
        if (cand / "london" / "london_info.csv").is_file():
            return cand
    return None


def pytest_configure(config):
    """Under ``-n``, schedule tests marked ``xdist_group`` on one worker (plain ``load`` ignores the
    mark): the Ray tests then share one local Ray instance instead of starting one per worker."""
    if getattr(config.option, "dist", "no") == "load":  # the controller: schedule by group
        config.option.dist = "loadgroup"
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker: name the group in node ids (workers re-parse the command line)
        config.option.loadgroup = True


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    d = shared_datasets()
    if d is None:
        pytest.skip("../shared/datasets is not available")
    return d


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's caches out of the user's home and out of the repository."""
    cache = tmp_path_factory.getbasetemp() / "face-audit-cache"
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(cache))
    monkeypatch.delenv("FACE_AUDIT_DATA", raising=False)
    yield


@pytest.fixture(scope="session")
def london_dlib_cache(shared_dir, tmp_path_factory) -> Path:
    """A cache folder (``run.cache_dir``) holding dlib embeddings of every London image.

    The user's own cache (``~/.cache/face-audit``) when it holds them all (the audits' cache);
    otherwise the 204 photos are embedded once per test session into a temporary cache (about a
    minute on two cores). Tests that use it carry ``xdist_group("london_dlib")`` so that one worker
    embeds. Embeddings never leave the machine's temporary folders."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from audit.backends.registry import create_backend
    from audit.datasets import load_dataset
    from audit.store import EmbeddingStore
    from audit.verification.acquire import embed_table

    backend = create_backend("dlib", upsample=1, multiple_faces="largest")
    table = load_dataset("london", data_dir=shared_dir)
    home = Path.home() / ".cache" / "face-audit"
    if (home / "embeddings").is_dir():
        with EmbeddingStore(home / "embeddings", backend.info()) as store:
            if not store.missing(table.data["sha256"].tolist()):
                return home
    cache = tmp_path_factory.mktemp("london-dlib-cache")
    embed_table(table, backend, store_dir=cache / "embeddings", workers=2, progress=False)
    return cache
