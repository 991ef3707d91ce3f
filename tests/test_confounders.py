"""Covariates and data quality end to end: a dataset built from London images with planted age
confounding, and one with planted exact and near duplicates under each policy."""

from __future__ import annotations

import hashlib
import io
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.verification.config import config_from_dict
from audit.findings import executive_summary
from audit.report import render_html
from audit.verification.result import AuditResult
from audit.verification.runner import run_audit

pytest.importorskip("dlib")

@pytest.mark.slow
@pytest.mark.xdist_group("london_dlib")
def test_planted_age_confounding_on_london(tmp_path, shared_dir, london_dlib_cache):
    """Two 'sites' whose people differ by (planted) age band and not at all within a band.

    London's volunteers are adults, so the age band is planted on the people whose real dlib false
    match rate is high: the set's Black and East Asian people (76x and 64x White's FMR at FMR=1e-2
    in the London report) are the band "child", everyone else "adult". Site B takes 80% of the
    children and 20% of the adults (seeded draw), so site B's crude FMR is far above site A's,
    while within each band the site label is random. The crude interval excludes 1, the adjusted
    one contains it, and the run warns that the sites differ in age."""
    import pandas as pd

    cache = london_dlib_cache
    info = pd.read_csv(shared_dir / "london" / "london_info.csv")
    people = pd.DataFrame({"subject": info["face_id"].map(lambda x: f"{int(x):03d}"), "eth": info["face_eth"]})
    rng = np.random.default_rng(4)
    child = people["eth"].isin(["black", "east_asian"]).to_numpy()
    people["site"] = np.where(rng.random(len(people)) < np.where(child, 0.8, 0.2), "B", "A")
    people["planted_age"] = np.where(child, "child", "adult")
    labels = tmp_path / "planted.csv"
    people[["subject", "site", "planted_age"]].to_csv(labels, index=False)
    cfg = config_from_dict({
        "title": "planted age confounding",
        "dataset": {"name": "london", "data_dir": str(shared_dir), "labels": str(labels), "groupings": [["site"]]},
        "backend": {"name": "dlib", "options": {"upsample": 1, "multiple_faces": "largest"}},
        "thresholds": {"target_fmr": [1e-2], "backend_default": False},
        "run": {"progress": False, "workers": 1, "seed": 0, "cache_dir": str(cache)},
        "analysis": {"adjust_for": ["planted_age"]},
    }, base_dir=tmp_path)
    res = run_audit(cfg, write=False).result
    a = res.adjusted[(res.adjusted.metric == "fmr")].iloc[0]
    assert (a.group, a.reference, a.covariate) == ("B", "A", "planted_age")
    assert a.crude_low > 1 and a.crude_shown          # crude: a difference "shown"
    assert a.adjusted_low < 1 < a.adjusted_high and not a.adjusted_shown  # within bands: none
    assert a.crude > 10 and a.adjusted < 1.5 and a.strata_used == 3
    # the crude ratio and interval are the reference table's own
    ref = res.reference[(res.reference.metric == "fmr") & (res.reference.group == "B")].iloc[0]
    assert (a.crude, a.crude_low, a.crude_high) == pytest.approx((ref.ratio, ref.ratio_low, ref.ratio_high))
    # within each pair stratum the sites' rates are alike; the composition table shows why they differ
    comp = res.covariates.set_index(["group", "stratum"])
    assert comp.loc[("B", "child"), "share"] > 0.5 > comp.loc[("A", "child"), "share"]
    assert any("the groups differ in planted_age" in w for w in res.warnings)
    assert bool(res.balance.iloc[0].material) and res.balance.iloc[0].stratum in ("child", "adult")
    # the executive summary says the gap goes with age, in plain words
    f = [x for x in executive_summary(res) if x.metric == "fmr"][0]
    assert "planted age" in f.text and ("goes with planted age" in f.text or "reverses" in f.text)
    # and survives the JSON round trip into the report
    back = AuditResult.from_json(_write_json(res, tmp_path))
    assert back.adjusted[["crude", "adjusted"]].equals(res.adjusted[["crude", "adjusted"]])
    html = render_html(back)
    assert "Covariates and data quality" in html and "planted_age-adjusted ratio" in html


def _write_json(res: AuditResult, tmp_path: Path) -> Path:
    p = tmp_path / "results.json"
    res.to_json(p)
    return p


def _dup_dataset(root: Path, mdir: Path, shared_dir: Path) -> Path:
    """Six London people, two photos each (600 px), plus planted copies:
    901_03 a byte copy of 001_03 (exact, across subjects); 002_09 a byte copy of 002_03 (exact,
    within); 903_03 003_03 re-encoded (near, across); 004_09 004_08 re-encoded (near, within)."""
    src = shared_dir / "london"
    files: dict[str, bytes] = {}

    def jpeg(folder: str, sid: str, shot: str, q: int = 92) -> bytes:
        im = Image.open(src / folder / f"{sid}_{shot}.jpg").convert("RGB").resize((600, 600))
        b = io.BytesIO(); im.save(b, "JPEG", quality=q); return b.getvalue()

    for sid in ("001", "002", "003", "004", "005", "006"):
        files[f"img/{sid}_03.jpg"] = jpeg("neutral_front", sid, "03")
        files[f"img/{sid}_08.jpg"] = jpeg("smiling_front", sid, "08")
    files["img/901_03.jpg"] = files["img/001_03.jpg"]
    files["img/002_09.jpg"] = files["img/002_03.jpg"]
    files["img/903_03.jpg"] = jpeg("neutral_front", "003", "03", q=70)
    files["img/004_09.jpg"] = jpeg("smiling_front", "004", "08", q=70)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    labels = "sid,sex\n" + "".join(f"{s},{'f' if i % 2 else 'm'}\n" for i, s in enumerate(["001", "002", "003", "004", "005", "006", "901", "903"]))
    (root / "labels.csv").write_text(labels)
    files["labels.csv"] = labels.encode()
    (mdir / "dups.sha256").write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {r}\n" for r, d in sorted(files.items())))
    m = mdir / "dups.yaml"
    m.write_text(textwrap.dedent("""
        name: dups
        title: Planted duplicates
        source: {base_url: "file:///nowhere/", checksums: dups.sha256}
        images:
          glob: ["img/*"]
          pattern: '^img/(?P<subject>\\d{3})_(?P<shot>\\d{2})\\.jpg$'
        labels: {file: labels.csv, key: sid}
        groups:
          gender: {column: sex, values: {f: Female, m: Male}}
    """))
    return m


@pytest.mark.slow
def test_planted_duplicates_under_each_policy(tmp_path, shared_dir):
    mdir = tmp_path / "m"; mdir.mkdir()
    manifest = _dup_dataset(tmp_path / "data" / "dups", mdir, shared_dir)
    pairs = {("img/001_03.jpg", "img/901_03.jpg"): ("exact", "across subjects"), ("img/002_03.jpg", "img/002_09.jpg"): ("exact", "within subject"),
             ("img/003_03.jpg", "img/903_03.jpg"): ("near", "across subjects"), ("img/004_08.jpg", "img/004_09.jpg"): ("near", "within subject")}
    expect = {  # policy -> images left out of the 16
        "default": {"img/001_03.jpg", "img/901_03.jpg"},
        "exclude": {"img/001_03.jpg", "img/901_03.jpg", "img/003_03.jpg", "img/903_03.jpg", "img/002_09.jpg", "img/004_09.jpg"},
        "warn": set(),
        "keep": set(),
    }
    for policy, out in expect.items():
        cfg = config_from_dict({
            "dataset": {"manifest": str(manifest), "data_dir": str(tmp_path / "data")},
            "backend": {"name": "dlib", "options": {"upsample": 1}},
            "thresholds": {"target_fmr": [0.1]},
            "run": {"workers": 1, "progress": False, "bootstrap": 0, "cache_dir": str(tmp_path / "cache")},
            **({"data": {"duplicates": policy}} if policy != "default" else {}),
        }, base_dir=tmp_path)
        res = run_audit(cfg, write=False).result
        d = res.duplicates
        found = {(r.sample_a, r.sample_b): (r.kind, r.scope) for r in d.itertuples()}
        assert found == pairs, policy  # every planted pair, and nothing else, whatever the policy
        assert set(d.loc[d.excluded, "sample_a"]) | set(d.loc[d.excluded, "sample_b"]) <= out | {a for a, _ in pairs} | {b for _, b in pairs}
        assert {s for r in d[d.excluded].itertuples() for s in (r.sample_a, r.sample_b)} >= out
        dq = res.provenance["data_quality"]
        assert dq["images_excluded"] == len(out)
        assert (dq["exact_pairs_across_subjects"], dq["exact_pairs_within_subject"], dq["near_pairs_across_subjects"],
                dq["near_pairs_within_subject"]) == (1, 1, 1, 1)
        comp = res.composition.set_index(["grouping", "group"])
        assert comp.loc[("all", "All"), "images"] == 16 - len(out)
        assert set(res.samples["sample_id"]).isdisjoint(out)
        n_imp = res.provenance["protocol"]["impostor_comparisons"] + res.provenance["protocol"]["mated_comparisons"]
        assert n_imp == (16 - len(out)) * (15 - len(out)) // 2
        warned = [w for w in res.warnings if "duplicate" in w]
        assert bool(warned) == (policy != "keep")
        html = render_html(res)
        for a, b in pairs:
            assert a in html and b in html  # the report lists every pair, kept or left out
        assert html.count(">left out<") == int(d.excluded.sum())


def test_config_fields_and_their_errors(tmp_path):
    from audit.errors import ConfigError

    base = {"dataset": {"name": "london"}, "backend": {"name": "dlib"}}
    cfg = config_from_dict({**base, "analysis": {"adjust_for": ["age_band"]}, "data": {"duplicates": "exclude"}}, base_dir=tmp_path)
    assert cfg.analysis.adjust_for == ("age_band",) and cfg.data.duplicates == "exclude"
    assert config_from_dict(base, base_dir=tmp_path).data.duplicates == "default"
    with pytest.raises(ConfigError, match="field 'data.duplicates'.*'drop'"):
        config_from_dict({**base, "data": {"duplicates": "drop"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="field 'analysis.adjust_for'"):
        config_from_dict({**base, "analysis": {"adjust_for": [3]}}, base_dir=tmp_path)
    cfg = config_from_dict({**base, "dataset": {"name": "london", "subjects": 10, "balance": "ethnicity, gender"}}, base_dir=tmp_path)
    assert cfg.dataset.balance == ("ethnicity", "gender")


def test_balance_needs_subjects_on_the_command_line(tmp_path, capsys):
    from audit.cli import main

    cfg = Path(__file__).resolve().parents[1] / "examples" / "london-dlib.toml"
    assert main(["run", str(cfg), "--balance", "ethnicity", "--output", str(tmp_path / "o")]) != 0
    assert "--balance goes with --subjects" in capsys.readouterr().err


def test_adjusting_for_an_unknown_column_names_the_field(shared_dir):
    from audit.errors import ConfigError
    from audit.verification.confounders import confounder_tables
    import pandas as pd

    s = pd.DataFrame({"sample_id": ["a", "b"], "subject": ["1", "2"], "status": ["ok", "ok"], "ethnicity": ["x", "y"]})
    with pytest.raises(ConfigError, match="'analysis.adjust_for' names \\['age'\\].*\\['ethnicity'\\]"):
        confounder_tables(s, np.arange(2), None, [], [], [], [], adjust_for=["age"])
