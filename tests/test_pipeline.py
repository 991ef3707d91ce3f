"""End to end with the real dlib backend on real London faces, and a dataset full of bad images."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.cli import main
from audit.verification.config import config_from_dict
from audit.verification.runner import run_audit
from audit.verification.result import AuditResult

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("dlib")


@pytest.mark.slow
def test_london_subset_end_to_end_with_dlib_and_cached_rerun(tmp_path, shared_dir, capsys, monkeypatch):
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ["run", str(REPO / "examples" / "london-dlib.toml"), "--data-dir", str(shared_dir),
            "--subjects", "14", "--output", str(out), "--no-progress", "--workers", "2"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "28 computed" in first.out and f"report: {out / 'index.html'}" in first.out
    res = AuditResult.from_json(out / "results.json")
    assert (out / "index.html").is_file() and (out / "tables" / "rates.csv").is_file()
    prov = res.provenance
    assert prov["backend"]["backend"] == "dlib" and len(prov["backend"]["weights_sha256"]) == 64
    assert prov["dataset"]["manifest_sha256"] and prov["seed"] == 0 and prov["tool_version"]
    assert prov["protocol"]["mated_comparisons"] == 14 and prov["protocol"]["impostor_comparisons"] == 28 * 27 // 2 - 14
    assert set(res.groupings) == {"ethnicity", "gender", "ethnicity+gender"}
    assert [t.name for t in res.thresholds] == ["FMR=1e-2", "FMR=1e-3", "default 0.6"]
    # dlib separates these faces: at its own 0.6 threshold no mated pair is missed
    assert res.threshold("default 0.6").achieved_fnmr == 0.0
    r = res.rates
    overall = r[(r.grouping == "all") & (r.metric == "fmr") & (r.threshold_name == "FMR=1e-2")].iloc[0]
    assert overall.trials == 364 and overall.errors <= 3
    assert (r.trials >= r.errors).all()
    # the same-group FMR rows agree with the diagonal of the cross-group matrix
    c = res.cross_fmr
    for row in r[(r.grouping == "gender") & (r.metric == "fmr")].itertuples():
        d = c[(c.grouping == "gender") & (c.threshold_name == row.threshold_name) & (c.group_a == row.group) & (c.group_b == row.group)].iloc[0]
        assert (d.false_matches, d.comparisons) == (row.errors, row.trials)

    # the rerun does no inference and says so
    assert main(args) == 0
    second = capsys.readouterr()
    assert "all 28 from cache (no inference run)" in second.out
    res2 = AuditResult.from_json(out / "results.json")
    pd_cols = ["grouping", "group", "threshold_name", "metric", "errors", "trials"]
    assert res2.rates[pd_cols].equals(res.rates[pd_cols])

    # two-sided: the same 28 images as smiling probes against neutral references, from the cache
    two_out = tmp_path / "two"
    two_args = ["run", str(REPO / "examples" / "london-two-sided-dlib.toml"), *args[2:]]
    two_args[two_args.index("--output") + 1] = str(two_out)
    assert main(two_args) == 0
    assert "all 28 from cache (no inference run)" in capsys.readouterr().out
    two = AuditResult.from_json(two_out / "results.json")
    proto = two.provenance["protocol"]
    assert proto["mated_comparisons"] == 14 and proto["impostor_comparisons"] == 14 * 13
    assert proto["sides"]["probe_images_acquired"] == proto["sides"]["reference_images_acquired"] == 14
    comp = two.composition[two.composition.grouping == "ethnicity"].set_index("group")["subjects"]
    c2 = two.cross_fmr[(two.cross_fmr.grouping == "ethnicity") & (two.cross_fmr.threshold_name == "default 0.6")]
    for row in c2.itertuples():  # every probe of A against every reference of B, minus A's own mated pairs
        assert row.comparisons == comp[row.group_a] * comp[row.group_b] - (comp[row.group_a] if row.group_a == row.group_b else 0)
    # a subset of the one-set audit's impostor pairs: never more false matches at the same threshold
    one_fm = res.threshold("default 0.6").false_matches
    assert two.threshold("default 0.6").false_matches <= one_fm
    assert int(c2.false_matches.sum()) == two.threshold("default 0.6").false_matches

    # the same real embeddings (from the run's store) through the engine with a tail capped at 2
    # pairs: the thresholds at 1e-2 and 1e-3 then come from narrowing passes, and must not move
    from audit.backends.registry import create_backend
    from audit.datasets import load_dataset
    from audit.engine.scan import score_tiles
    from audit.verification.acquire import embed_table

    table = load_dataset("london", data_dir=shared_dir).subset_subjects(14, seed=0)
    samples, ok_rows, emb, stats = embed_table(table, create_backend("dlib", upsample=1), store_dir=tmp_path / "cache" / "embeddings",
                                               progress=False)
    assert stats.computed == 0 and emb.shape == (28, 128)
    subj = samples["subject"].to_numpy()[ok_rows]
    grp = np.zeros(len(ok_rows), int)
    full = score_tiles(emb, subj, grp, metric="euclidean", max_fmr=1e-2)
    capped = score_tiles(emb, subj, grp, metric="euclidean", max_fmr=1e-2, max_tail_pairs=2)
    th = full.thresholds_at_fmr([1e-2, 1e-3])
    np.testing.assert_array_equal(capped.thresholds_at_fmr([1e-2, 1e-3]), th)
    assert capped.stats.passes >= 2
    assert th[0] == pytest.approx(res.threshold("FMR=1e-2").value)  # the pipeline's own threshold


def _bad_images_dataset(root: Path, mdir: Path, shared_dir: Path) -> Path:
    """Six subjects, each with a good London photo and one bad or unusual variant of it."""
    src = shared_dir / "london"
    root.mkdir(parents=True)
    subjects = ["001", "004", "017", "030", "041", "064"]
    files: dict[str, bytes] = {}

    def face(sid: str, size: int = 600) -> Image.Image:
        return Image.open(src / "neutral_front" / f"{sid}_03.jpg").convert("RGB").resize((size, size))

    def jpeg(im: Image.Image, **kw) -> bytes:
        b = io.BytesIO(); im.save(b, "JPEG", quality=90, **kw); return b.getvalue()

    def png(im: Image.Image) -> bytes:
        b = io.BytesIO(); im.save(b, "PNG"); return b.getvalue()

    for sid in subjects:
        files[f"img/{sid}_a.jpg"] = jpeg(face(sid))
    good = jpeg(face("001"))
    files["img/001_b.jpg"] = good[: len(good) // 3]                          # truncated
    files["img/004_b.jpg"] = b""                                               # zero bytes
    rgba = face("017").convert("RGBA"); rgba.putalpha(200)
    files["img/017_b.png"] = png(rgba)                                         # alpha
    files["img/030_b.png"] = png(face("030").convert("L"))                     # grayscale
    g16 = (np.asarray(face("041").convert("L"), dtype=np.uint16) * 257)
    files["img/041_b.png"] = png(Image.fromarray(g16))           # 16-bit
    rotated = face("064").rotate(90, expand=True)                              # stored sideways ...
    exif = Image.Exif(); exif[0x0112] = 6                                      # ... tagged "rotate 90° clockwise to view"
    files["img/064_b.jpg"] = jpeg(rotated, exif=exif.tobytes())
    files["img/064_c.jpg"] = jpeg(Image.new("RGB", (400, 400), (128, 128, 128)))  # no face
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    labels = "sid,sex\n" + "".join(f"{s},{'f' if i % 2 else 'm'}\n" for i, s in enumerate(subjects))
    (root / "labels.csv").write_text(labels)
    files["labels.csv"] = labels.encode()
    (mdir / "bad.sha256").write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {r}\n" for r, d in sorted(files.items())))
    m = mdir / "bad.yaml"
    m.write_text(textwrap.dedent("""
        name: bad
        title: Bad images
        source: {base_url: "file:///nowhere/", checksums: bad.sha256}
        images:
          glob: ["img/*"]
          pattern: '^img/(?P<subject>\\d{3})_(?P<shot>[a-c])\\.(jpg|png)$'
        labels: {file: labels.csv, key: sid}
        groups:
          gender: {column: sex, values: {f: Female, m: Male}}
    """))
    return m


@pytest.mark.slow
def test_bad_images_are_statuses_counted_in_fta_and_the_run_goes_on(tmp_path, shared_dir):
    mdir = tmp_path / "m"; mdir.mkdir()
    manifest = _bad_images_dataset(tmp_path / "data" / "bad", mdir, shared_dir)
    cfg = config_from_dict({
        "dataset": {"manifest": str(manifest), "data_dir": str(tmp_path / "data")},
        "backend": {"name": "dlib"},
        "thresholds": {"target_fmr": [0.1]},
        "run": {"workers": 1, "progress": False},
    }, base_dir=tmp_path)
    run = run_audit(cfg, write=False)
    s = run.result.samples.set_index("sample_id")
    assert s.loc["img/001_b.jpg", "status"] == "unreadable"
    assert s.loc["img/004_b.jpg", "status"] == "unreadable" and "empty" in s.loc["img/004_b.jpg", "detail"]
    assert s.loc["img/064_c.jpg", "status"] == "no_face"
    for ok in ("img/017_b.png", "img/030_b.png", "img/041_b.png", "img/064_b.jpg"):
        assert s.loc[ok, "status"] == "ok", (ok, s.loc[ok, "detail"])
    fta = run.result.fta.set_index(["grouping", "group"])
    assert (fta.loc[("all", "All"), "failures"], fta.loc[("all", "All"), "attempts"]) == (3, 13)
    # the unusual-but-valid images still match their own subject's good photo
    mated = run.result.rates
    all_fnmr = mated[(mated.grouping == "all") & (mated.metric == "fnmr") & (mated.threshold_name == "default 0.6")].iloc[0]
    assert all_fnmr.trials == 4 and all_fnmr.errors == 0
    assert any("failed to acquire" in w for w in run.result.warnings)
