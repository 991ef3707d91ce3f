"""Builders for the bad-input corpus: a tiny synthetic image dataset with its manifest, a valid
config, scores and embeddings files, and a valid results.json. Every case then breaks one thing.

Images are drawn here (flat colours per subject, a few pixels of noise), never copied from the
shared datasets, and caches stay under pytest's temporary folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.cli import main

SUBJECTS = ["s1", "s2", "s3", "s4", "s5", "s6"]
GENDER = {"s1": "f", "s2": "m", "s3": "f", "s4": "m", "s5": "f", "s6": "m"}


def png_bytes(colour: tuple[int, int, int], seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, float)[None, None, :] + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    arr[: size // 2, : size // 2] = arr[: size // 2, : size // 2] // 2  # quadrants differ, so embeddings are not all parallel
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def subject_colour(i: int) -> tuple[int, int, int]:
    return ((40 * i + 30) % 256, (90 * i + 60) % 256, (150 + 20 * i) % 256)


MANIFEST_YAML = """\
name: tiny
title: Tiny synthetic faces
licence: CC0
source:
  base_url: https://example.invalid/tiny/
  checksums: tiny.sha256
images:
  glob: ["img/*.png"]
  pattern: '^img/(?P<subject>s\\d)_(?P<shot>\\d)\\.png$'
labels:
  file: labels.csv
  key: sid
groups:
  gender:
    column: sex
    values: {f: Female, m: Male}
protocol:
  kind: all_pairs
  groupings: [[gender]]
"""


def write_checksums(root: Path, mdir: Path, name: str = "tiny.sha256") -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n" for p in files)
    (mdir / name).write_text(lines)


@pytest.fixture
def tiny(tmp_path):
    """A valid dataset: data/tiny/{img/s?_?.png, labels.csv}, manifests/tiny.{yaml,sha256}."""
    root = tmp_path / "data" / "tiny"
    (root / "img").mkdir(parents=True)
    for i, s in enumerate(SUBJECTS):
        for shot in (1, 2):
            (root / "img" / f"{s}_{shot}.png").write_bytes(png_bytes(subject_colour(i), seed=10 * i + shot))
    (root / "labels.csv").write_text("sid,sex\n" + "".join(f"{s},{GENDER[s]}\n" for s in SUBJECTS))
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    write_checksums(root, mdir)
    (mdir / "tiny.yaml").write_text(MANIFEST_YAML)
    return {"root": root, "data": tmp_path / "data", "mdir": mdir, "manifest": mdir / "tiny.yaml", "tmp": tmp_path}


@pytest.fixture
def fake_backend():
    from audit.backends.registry import register_backend

    register_backend("quadrant-colour", "fake_backend:QuadrantColourBackend", replace=True)
    return "quadrant-colour"


def config_text(manifest: Path, out: Path, cache: Path, *, extra: str = "", workers: int = 1, backend: str = "quadrant-colour") -> str:
    return textwrap.dedent(f"""\
        title = "hardening"
        [dataset]
        manifest = "{manifest}"
        [backend]
        name = "{backend}"
        [thresholds]
        target_fmr = [0.1]
        backend_default = false
        [run]
        workers = {workers}
        progress = false
        bootstrap = 0
        cache_dir = "{cache}"
        [output]
        dir = "{out}"
        """) + extra


def cli(*args: str) -> int:
    return main([str(a) for a in args])


def samples_frame(n_subjects: int = 4, per: int = 2, labels=None) -> pd.DataFrame:
    rows = []
    for i in range(n_subjects):
        for k in range(per):
            rows.append({"sample_id": f"x{i}_{k}", "subject": f"p{i}", "group": (labels or ["A", "B"])[i % len(labels or ["A", "B"])]})
    return pd.DataFrame(rows)


def good_embeddings(samples: pd.DataFrame, dim: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = {s: rng.normal(size=dim) for s in samples["subject"].unique()}
    return np.stack([centres[s] + 0.05 * rng.normal(size=dim) for s in samples["subject"]])


def scores_frame(samples: pd.DataFrame, emb: np.ndarray) -> pd.DataFrame:
    rows = []
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ids = samples["sample_id"].tolist()
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            rows.append({"sample_a": ids[i], "sample_b": ids[j], "score": round(float(unit[i] @ unit[j]), 6)})
    return pd.DataFrame(rows)


def embeddings_config(tmp: Path, emb_path: Path, samples_path: Path, *, extra: str = "", groups: str = '["group"]') -> Path:
    cfg = tmp / "emb.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [embeddings]
        path = "{emb_path}"
        samples = "{samples_path}"
        groups = {groups}
        [thresholds]
        target_fmr = [0.2]
        backend_default = false
        [run]
        progress = false
        bootstrap = 0
        [output]
        dir = "{tmp / 'out'}"
        """) + extra)
    return cfg


def scores_config(tmp: Path, scores_path: Path, samples_path: Path, *, extra: str = "", his: str = "true", groups: str = '["group"]',
                  fixed: str = "[]") -> Path:
    cfg = tmp / "scores.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [scores]
        path = "{scores_path}"
        samples = "{samples_path}"
        groups = {groups}
        higher_is_similar = {his}
        [thresholds]
        target_fmr = [0.2]
        fixed = {fixed}
        backend_default = false
        [run]
        progress = false
        bootstrap = 0
        [output]
        dir = "{tmp / 'out'}"
        """) + extra)
    return cfg


@pytest.fixture(scope="session")
def valid_results(tmp_path_factory) -> Path:
    """A real results.json of a small embeddings audit (labels include ' / ', "NaN", "Infinity" and a formula)."""
    tmp = tmp_path_factory.mktemp("valid-results")
    labels = ["a / b", "NaN", "Infinity", "=HYPERLINK(\"http://x\")"]
    samples = samples_frame(8, 2, labels)
    samples["eye"] = ["b / c" if i % 3 == 0 else "a" for i in range(len(samples) // 2) for _ in range(2)]
    samples.to_csv(tmp / "samples.csv", index=False)
    emb = good_embeddings(samples)
    np.save(tmp / "emb.npy", emb)
    cfg = embeddings_config(tmp, tmp / "emb.npy", tmp / "samples.csv", groups='["group", "eye"]')
    assert main([str(cfg)] if False else ["run", str(cfg)]) == 0
    return tmp / "out" / "results.json"


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
