"""The Ray engine gives exactly the local engine's results: the all-pairs scan (cosine and
Euclidean, with a capped tail small enough to force narrowing passes, and a counting pass), a
two-sided scan, embedding a London subset (and resuming after the run is stopped), 1:N search over
gallery shards. One local Ray instance (2 CPUs, a small object store) serves the whole module; the
tests share one xdist worker (``xdist_group``) so that only one instance starts."""

from __future__ import annotations

import re

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from audit.engine import ray_runtime  # noqa: E402
from audit.engine.ray_scan import RayTileRunner  # noqa: E402
from audit.engine.scan import score_tiles  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    r = ray_runtime.connect(num_cpus=2, object_store_memory=256 << 20)
    yield r
    ray_runtime.disconnect()


def _population(n: int, d: int, seed: int, groups: int = 3):
    """Subjects with about three images each; entries rounded to 1/4 so that many scores tie."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, n // 3, n)
    emb = rng.normal(size=(n // 3, d))[subj] * 0.7 + rng.normal(size=(n, d))
    return np.round(emb * 4) / 4, subj, subj % groups


def _same_counts(a, b):
    for f in ("false_matches", "impostors", "false_non_matches", "mated", "subject_false_matches", "subject_impostors",
              "subject_false_non_matches", "subject_mated"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@pytest.mark.parametrize("metric, fixed", [("cosine", 0.45), ("euclidean", -5.5)])
def test_all_pairs_scan_is_identical_to_the_local_engine(ray_cluster, metric, fixed):
    emb, subj, grp = _population(20_000, 24, seed=1 if metric == "cosine" else 2)
    # a tail capped at 12,000 pairs: thresholds at 1e-3 and 1e-4 (k = 199,965 and 19,996) need narrowing passes
    kw = dict(metric=metric, max_fmr=1e-3, tile=2048, max_tail_pairs=12_000, thresholds=[fixed])
    local = score_tiles(emb, subj, grp, workers=1, **kw)
    runner = RayTileRunner()
    dist = score_tiles(emb, subj, grp, engine=runner, **kw)
    targets = [1e-3, 1e-4, 1e-6]
    th_local, th_ray = local.thresholds_at_fmr(targets), dist.thresholds_at_fmr(targets)
    assert dist.impostors_total == local.impostors_total == 20_000 * 19_999 // 2 - len(local.mated_scores)
    np.testing.assert_array_equal(th_local, th_ray)  # bit for bit
    assert dist.stats.passes >= 3  # the first pass, then narrowing and collecting passes on Ray
    # histograms bin float32 screening values (a pair within delta of a bin edge may move with the
    # BLAS's tile shapes): their totals per cell are exact
    np.testing.assert_array_equal(local.impostor_hist.sum(-1), dist.impostor_hist.sum(-1))
    below = float(th_local[0]) - (0.05 if metric == "cosine" else 0.5)  # below the tail: a counting pass on Ray
    c_local = local.counts_at(list(th_local) + [fixed, below])
    c_ray = dist.counts_at(list(th_ray) + [fixed, below])
    assert c_ray.rescanned
    _same_counts(c_local, c_ray)
    # the thresholds keep their promise: at most floor(target × impostors) false matches
    n_imp = local.impostors_total
    assert all(int(c_local.false_matches_total[i]) <= int(t * n_imp) for i, t in enumerate(targets))
    assert int(c_local.false_matches_total[0]) > 0.9 * 1e-3 * n_imp


def test_two_sided_scan_is_identical(ray_cluster):
    emb, subj, grp = _population(6000, 16, seed=3)
    side = (np.arange(emb.shape[0]) % 2).astype(bool)
    kw = dict(metric="cosine", max_fmr=1e-2, tile=1024, sides=side, max_tail_pairs=2000)
    local = score_tiles(emb, subj, grp, **kw)
    dist = score_tiles(emb, subj, grp, engine=RayTileRunner(), **kw)
    assert local.base_groups == dist.base_groups == 3
    th = local.thresholds_at_fmr([1e-2, 1e-3])
    np.testing.assert_array_equal(th, dist.thresholds_at_fmr([1e-2, 1e-3]))
    _same_counts(local.counts_at(th), dist.counts_at(th))
    # only pairs across the sides: 3000 × 3000 minus the mated pairs
    assert local.impostors_total + len(local.mated_scores) == 3000 * 3000


def test_sharded_search_on_ray_equals_exact_search(ray_cluster):
    from audit.identification.search import ExactSearch, brute_force_search
    from audit.identification.sharded import ShardedSearch

    rng = np.random.default_rng(4)
    gallery = np.round(rng.normal(size=(5003, 16)))  # integer entries: many exact ties in score
    probes = np.concatenate([np.round(rng.normal(size=(60, 16))), gallery[:5]])
    ids = np.arange(5003) * 3 + 11
    for metric in ("cosine", "euclidean"):
        exact = ExactSearch(metric=metric)
        exact.enrol(gallery, ids)
        want = exact.search(probes, 25)
        for engine in ("ray", "local") if metric == "cosine" else ("local",):  # (Ray actors start slowly here)
            sharded = ShardedSearch(metric=metric, shards=3, engine=engine)
            sharded.enrol(gallery, ids)
            got = sharded.search(probes, 25)
            np.testing.assert_array_equal(got.scores, want.scores)
            np.testing.assert_array_equal(got.ids, want.ids)
    ref = brute_force_search(probes[:10], gallery, 25, metric="euclidean")
    np.testing.assert_array_equal(ids[ref.ids], want.ids[:10])


def test_embedding_a_london_subset_matches_the_local_pool_and_resumes(ray_cluster, shared_dir, tmp_path):
    from audit.backends.registry import create_backend
    from audit.datasets import load_dataset
    from audit.engine.local import embed_missing
    from audit.engine.ray_embed import embed_missing_ray
    from audit.store import EmbeddingStore

    try:
        backend = create_backend("opencv-sface")
        backend.load()
    except ImportError as exc:  # MissingDependencyError is an ImportError
        pytest.skip(f"opencv-sface is not installed: {exc}")
    table = load_dataset("london", data_dir=shared_dir, download=False).subset_subjects(5, seed=2)
    paths = dict(zip(table.data["sha256"], table.data["path"]))
    info = backend.info()
    with EmbeddingStore(tmp_path / "local", info) as s_local:
        embed_missing(backend, paths, s_local, workers=2, batch_size=3, progress=False)
        want = s_local.get_many(paths)

    class StopAfterFirstBatch(EmbeddingStore):
        calls = 0

        def put_many(self, results):
            StopAfterFirstBatch.calls += 1
            if StopAfterFirstBatch.calls == 2:
                raise KeyboardInterrupt  # the run is stopped after one stored batch
            super().put_many(results)

    with StopAfterFirstBatch(tmp_path / "ray", info) as s_stop:
        with pytest.raises(KeyboardInterrupt):
            embed_missing_ray(backend, paths, s_stop, workers=2, batch_size=3, progress=False)
        kept = len(s_stop)
    # the first stored batch survives the stop (Ray Data may hand it over as 3 images or a few more)
    assert 0 < kept < len(paths)
    with EmbeddingStore(tmp_path / "ray", info) as s_ray:
        stats = embed_missing_ray(backend, paths, s_ray, workers=2, batch_size=3, progress=False)
        assert (stats.computed, stats.cached) == (len(paths) - kept, kept)
        got = s_ray.get_many(paths)
        again = embed_missing_ray(backend, paths, s_ray, workers=2, progress=False)
        assert (again.computed, again.cached) == (0, len(paths))
    assert sum(r.ok for r in want.values()) >= len(paths) - 2
    for sha in paths:
        assert got[sha].status == want[sha].status and got[sha].n_faces == want[sha].n_faces
        if want[sha].ok:
            np.testing.assert_array_equal(got[sha].embedding, want[sha].embedding)  # bit for bit


def test_run_with_engine_ray_gives_the_local_audit(ray_cluster, shared_dir, tmp_path, monkeypatch, capsys):
    """``face-audit run CONFIG --engine ray``: Ray Data embeds into an empty cache and Ray tasks scan;
    a local run from the same cache (no inference) gives the same tables, bit for bit."""
    pytest.importorskip("cv2")
    from pathlib import Path

    from audit.cli import main
    from audit.engine import ray_embed
    from audit.verification.result import AuditResult

    calls = {"embed": 0, "passes": 0}
    real_embed, real_pass = ray_embed.embed_missing_ray, RayTileRunner.run_tiles

    def spy_embed(*a, **k):
        calls["embed"] += 1
        return real_embed(*a, **k)

    def spy_pass(self, *a, **k):
        calls["passes"] += 1
        return real_pass(self, *a, **k)

    monkeypatch.setattr(ray_embed, "embed_missing_ray", spy_embed)
    monkeypatch.setattr(RayTileRunner, "run_tiles", spy_pass)
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(tmp_path / "cache"))
    config = Path(__file__).resolve().parents[2] / "examples" / "london-opencv-sface.toml"
    tables, outs = {}, {}
    for engine in ("ray", "local"):
        out = tmp_path / engine
        assert main(["run", str(config), "--data-dir", str(shared_dir), "--subjects", "4", "--output", str(out),
                     "--no-progress", "--workers", "2", "--engine", engine]) == 0
        outs[engine] = capsys.readouterr().out
        res = AuditResult.from_json(out / "results.json")
        tables[engine] = (res.rates, res.cross_fmr, [t.value for t in res.thresholds])
        if engine == "ray":
            assert calls["embed"] == 1 and calls["passes"] >= 1  # Ray embedded and scanned
    assert re.search(r"embeddings: (\d+) computed", outs["ray"]) and "from cache (no inference run)" in outs["local"]
    assert calls == {"embed": 1, "passes": calls["passes"]}  # the local run used neither
    assert tables["ray"][2] == tables["local"][2]  # thresholds, bit for bit
    for i in (0, 1):
        a, b = tables["ray"][i], tables["local"][i]
        cols = [c for c in ("errors", "trials", "false_matches", "comparisons") if c in a.columns]
        assert cols and a[cols].equals(b[cols])
    assert ray.is_initialized()  # the module's instance was joined, not stopped by the run


def test_identify_with_engine_ray_gives_the_local_results(ray_cluster, shared_dir, tmp_path, monkeypatch, capsys):
    """``face-audit identify CONFIG --engine ray``: embedding goes through the Ray embedder and the exact
    search runs over gallery shards held by Ray actors; it gives the local run's candidates, thresholds
    and rates, bit for bit. The local run (one process, one ExactSearch) embeds first, so the Ray run
    finds every embedding in the cache (Ray Data embedding itself is the test above's)."""
    pytest.importorskip("cv2")
    from audit.cli import main
    from audit.engine import ray_embed
    from audit.identification.result import IdentificationResult
    from audit.identification.sharded import ShardedSearch

    calls = {"embed": 0, "sharded": []}
    real_embed, real_search = ray_embed.embed_missing_ray, ShardedSearch.search

    def spy_embed(*a, **k):
        calls["embed"] += 1
        return real_embed(*a, **k)

    def spy_search(self, *a, **k):
        calls["sharded"].append((self.engine, len(self._parts)))
        return real_search(self, *a, **k)

    monkeypatch.setattr(ray_embed, "embed_missing_ray", spy_embed)
    monkeypatch.setattr(ShardedSearch, "search", spy_search)
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "london-id-sface.toml"
    config.write_text('title = "London 1:N, SFace"\n[dataset]\nname = "london"\nsubjects = 12\ngroupings = [["ethnicity"]]\n'
                      '[backend]\nname = "opencv-sface"\n[identification]\nscenario = "london-half"\nk = 5\n'
                      'target_fpir = [0.5]\nfixed = [0.3]\nbootstrap_replicates = 20\n[run]\nbatch_size = 4\nseed = 0\n')
    results, outs = {}, {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        assert main(["identify", str(config), "--data-dir", str(shared_dir), "--output", str(out), "--no-progress",
                     "--workers", "1", "--engine", engine]) == 0
        outs[engine] = capsys.readouterr().out
        results[engine] = IdentificationResult.from_json(out / "results.json")
        if engine == "local":
            assert calls == {"embed": 0, "sharded": []}  # the local run used neither
    assert calls["embed"] == 1 and calls["sharded"] == [("ray", 2)]  # 2 shards: the instance's 2 CPUs
    assert re.search(r"embeddings: (\d+) computed", outs["local"]) and "from cache (no inference run)" in outs["ray"]
    a, b = results["ray"], results["local"]
    assert a.provenance["search"]["name"] == "exact-sharded" and b.provenance["search"]["name"] == "exact"
    assert [t.to_dict() for t in a.thresholds] == [t.to_dict() for t in b.thresholds]
    assert len(a.candidates) > 0
    for name in ("candidates", "rates", "searches", "false_matches"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert ray.is_initialized()  # the module's instance was joined, not stopped by the run
