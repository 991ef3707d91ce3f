"""The public API: every name in audit.__all__, the in-memory inputs, and the tidy result views
(overall, by_group, ratio, difference, same_vs_cross_group, to_aequitas, repr) on hand-checkable data."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import audit

REPO = Path(__file__).resolve().parents[1]
LONDON = REPO / "reports" / "london-dlib" / "results.json"


def test_every_public_name_imports():
    for name in audit.__all__:
        assert getattr(audit, name) is not None, name
    from audit import (  # noqa: F401  (the names a notebook uses)
        AuditResult, IdentificationResult, executive_summary, from_embeddings, from_scores, identify, init_dataset, load, plots, run,
    )
    assert set(audit.__all__) <= set(dir(audit))


def test_import_audit_is_light():
    code = "import sys, audit; print(sorted(m for m in ('pandas', 'numpy', 'matplotlib', 'audit.verification.runner') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}).stdout.strip()
    assert out == "[]"


# --------------------------------------------------------------------------- a hand-made scores audit
def _tiny():
    """Two groups (F: a, b; M: c, d), two images per person. Scores chosen so that at threshold 0.5:
    mated pairs: a 0.9, b 0.4 (miss), c 0.8, d 0.7 -> FNMR F 1/2, M 0/2;
    same-group impostors: F (a,b) 4 pairs with one >= 0.5 -> FMR F 1/4; M (c,d) 4 pairs, none -> 0/4."""
    samples = pd.DataFrame({
        "sample_id": [f"{s}{i}" for s in "abcd" for i in (1, 2)],
        "subject": [s for s in "abcd" for _ in (1, 2)],
        "gender": ["F"] * 4 + ["M"] * 4,
    })
    rows = [("a1", "a2", 0.9), ("b1", "b2", 0.4), ("c1", "c2", 0.8), ("d1", "d2", 0.7),
            ("a1", "b1", 0.6), ("a1", "b2", 0.1), ("a2", "b1", 0.2), ("a2", "b2", 0.3),
            ("c1", "d1", 0.1), ("c1", "d2", 0.2), ("c2", "d1", 0.3), ("c2", "d2", 0.45),
            ("a1", "c1", 0.2), ("b1", "d1", 0.1)]
    pairs = pd.DataFrame(rows, columns=["sample_a", "sample_b", "score"])
    return pairs, samples


@pytest.fixture(scope="module")
def tiny():
    pairs, samples = _tiny()
    return audit.from_scores(pairs, samples, target_fmr=[], fixed=[0.5], bootstrap=0, title="tiny")


def test_from_scores_counts_by_hand(tiny):
    bg = tiny.by_group("gender")
    f, m = bg.set_index("group").loc["F"], bg.set_index("group").loc["M"]
    assert (f.fmr_errors, f.fmr_trials, f.fnmr_errors, f.fnmr_trials) == (1, 4, 1, 2)
    assert (m.fmr_errors, m.fmr_trials, m.fnmr_errors, m.fnmr_trials) == (0, 4, 0, 2)
    assert str(bg["fmr_errors"].dtype) == "Int64" and str(bg["fnmr_trials"].dtype) == "Int64"
    assert f.fmr_value == pytest.approx(0.25) and f.fnmr_value == pytest.approx(0.5)
    ov = tiny.overall
    assert list(ov["threshold_name"]) == ["fixed 0.5"]
    assert (ov.fmr_errors.iloc[0], ov.fmr_trials.iloc[0], ov.fnmr_errors.iloc[0]) == (1, 10, 1)
    assert "<DataFrame>" in str(tiny.provenance["dataset"]["source"])  # no temporary path kept


def test_ratio_and_difference_against_a_reference(tiny):
    r = tiny.ratio(reference="M", grouping="gender").set_index(["metric", "group"])
    assert r.loc[("fmr", "F"), "ratio"] == math.inf  # 0.25 / 0
    assert math.isnan(r.loc[("fmr", "M"), "ratio"])  # 0 / 0
    d = tiny.difference(reference="M", grouping="gender").set_index(["metric", "group"])
    assert d.loc[("fnmr", "F"), "difference"] == pytest.approx(0.5)
    assert d.loc[("fmr", "F"), "difference"] == pytest.approx(0.25)
    from audit.frames import DIFFERENCE_COLUMNS

    assert list(tiny.difference(reference="M").columns) == DIFFERENCE_COLUMNS
    low = tiny.ratio(reference="lowest", grouping="gender").set_index(["metric", "group"])
    assert low.loc[("fmr", "F"), "reference"] == "M"
    with pytest.raises(audit.ResultsError, match="reference"):
        tiny.ratio(reference="X")


def test_same_vs_cross_group_pools_each_pair_once(tiny):
    s = tiny.same_vs_cross_group("gender").iloc[0]
    assert (s.same_false_matches, s.same_comparisons) == (1, 8)
    assert (s.cross_false_matches, s.cross_comparisons) == (0, 2)  # (a1,c1) and (b1,d1)


def test_aequitas_names(tiny):
    aq = tiny.to_aequitas(reference="M").set_index("attribute_value")
    assert (aq.loc["F", "fp"], aq.loc["F", "group_label_neg"], aq.loc["F", "fn"], aq.loc["F", "group_label_pos"]) == (1, 4, 1, 2)
    assert aq.loc["F", "fpr"] == pytest.approx(0.25) and aq.loc["M", "fnr_disparity"] != aq.loc["M", "fnr_disparity"]  # 0/0: NaN


def test_repr_is_short_and_html_escapes(tiny):
    text = repr(tiny)
    assert len(text) < 400 and text.startswith("<AuditResult 'tiny'") and str(tiny) == text
    html = tiny._repr_html_()
    assert "<table>" in html and "FMR" in html and "1 / 4" in html


def test_from_scores_without_samples_table():
    pairs, samples = _tiny()
    lab = samples.set_index("sample_id")
    wide = pairs.assign(subject_a=lab.loc[pairs.sample_a, "subject"].to_numpy(), subject_b=lab.loc[pairs.sample_b, "subject"].to_numpy(),
                        gender_a=lab.loc[pairs.sample_a, "gender"].to_numpy(), gender_b=lab.loc[pairs.sample_b, "gender"].to_numpy())
    res = audit.from_scores(wide, fixed=[0.5], target_fmr=[], bootstrap=0)
    assert res.by_group("gender")["fmr_errors"].tolist() == [1, 0]


def test_from_embeddings_matches_from_scores():
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(12), 2)
    centres = rng.normal(size=(12, 16))
    emb = centres[subjects] + 0.6 * rng.normal(size=(24, 16))
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(24)], "subject": subjects.astype(str),
                            "group": np.where(subjects < 6, "A", "B")})
    a = audit.from_embeddings(emb, samples, metric="euclidean", target_fmr=[1e-1], bootstrap=0)
    i, j = np.triu_indices(24, 1)
    dist = np.linalg.norm(emb[i] - emb[j], axis=1)
    pairs = pd.DataFrame({"sample_a": samples.sample_id.to_numpy()[i], "sample_b": samples.sample_id.to_numpy()[j], "score": dist})
    b = audit.from_scores(pairs, samples, higher_is_similar=False, target_fmr=[1e-1], bootstrap=0)
    cols = ["group", "fmr_errors", "fmr_trials", "fnmr_errors", "fnmr_trials"]
    pd.testing.assert_frame_equal(a.by_group("group")[cols], b.by_group("group")[cols])
    with pytest.raises(audit.DataError, match="shape"):
        audit.from_embeddings(emb[:3], samples)


# --------------------------------------------------------------------------- a real result
def test_views_on_the_committed_london_result():
    res = audit.load(LONDON)
    assert len(repr(res)) < 400
    rf = res.rates_frame("ethnicity", "FMR=1e-3")
    for c in ("subjects", "images", "false_matches", "impostors", "false_non_matches", "mated", "failures", "attempts"):
        assert str(rf[c].dtype) == "Int64", c
    r = res.ratio(reference="White", grouping="ethnicity", threshold="FMR=1e-2")
    black = r[(r.group == "Black") & (r.metric == "fmr")].iloc[0]
    assert black.ratio == pytest.approx(black.value / black.reference_value)
    assert set(r["reference"]) == {"White"}
    # the default reference is the result's own, else the group with the most same-group impostor comparisons
    assert set(res.ratio(grouping="ethnicity")["reference"]) == {"White"}
    assert set(res.ratio(reference="largest", grouping="ethnicity")["reference"]) == {"White"}
    ov = res.difference(reference="overall", grouping="gender", threshold="FMR=1e-2")
    allrate = res.overall.set_index("threshold_name").loc["FMR=1e-2", "fmr_value"]
    fem = ov[(ov.group == "Female") & (ov.metric == "fmr")].iloc[0]
    assert fem.reference == "overall" and fem.difference == pytest.approx(fem.value - allrate)
    svc = res.same_vs_cross_group("ethnicity+gender", "FMR=1e-2").iloc[0]
    cf = res.cross_fmr[(res.cross_fmr.grouping == "ethnicity+gender") & (res.cross_fmr.threshold_name == "FMR=1e-2")]
    assert svc.same_comparisons + 2 * svc.cross_comparisons == cf.comparisons.sum()
    assert svc.same_comparisons + svc.cross_comparisons == res.threshold("FMR=1e-2").impostors


# --------------------------------------------------------------------------- run / identify with overrides
@pytest.fixture
def quadrant():
    from audit.backends.registry import register_backend

    register_backend("quadrant-colour", "fake_backend:QuadrantColourBackend", replace=True)
    return "quadrant-colour"


def test_run_and_identify_with_keyword_overrides(quadrant, shared_dir, tmp_path):
    raw = {"title": "t", "dataset": {"name": "london"}, "backend": {"name": "dlib"}}
    res = audit.run(raw, data_dir=shared_dir, backend=quadrant, subjects=8, workers=1, bootstrap=0,
                    target_fmr=1e-1, groupings=["gender", ["ethnicity", "gender"]])
    assert isinstance(res, audit.AuditResult) and res.groupings == ("gender", "ethnicity+gender")
    assert [t.name for t in res.thresholds][0] == "FMR=1e-1"
    assert int(res.overall["fnmr_trials"].iloc[0]) == 8
    assert not (tmp_path / "reports").exists()  # nothing written without output_dir
    out = tmp_path / "out"
    audit.run(raw, data_dir=shared_dir, backend=quadrant, subjects=8, workers=1, bootstrap=0, output_dir=out)
    assert (out / "results.json").is_file() and (out / "index.html").is_file()
    ident = audit.identify({**raw, "identification": {"scenario": "london-half"}}, data_dir=shared_dir,
                           backend=quadrant, subjects=12, workers=1, bootstrap=0, identification={"k": 5})
    assert isinstance(ident, audit.IdentificationResult)
    assert set(ident.by_group("gender")["group"]) <= {"Female", "Male"} and len(repr(ident)) < 400
    assert {"fpir", "fnir"} <= set(ident.ratio(grouping="gender")["metric"])


def test_overrides_are_validated_like_the_file():
    cfg = REPO / "examples" / "london-dlib.toml"
    with pytest.raises(audit.ConfigError, match="unknown override"):
        audit.run(cfg, colour="blue")
    with pytest.raises(audit.ConfigError, match="thresholds.target_fmr"):
        audit.run(cfg, target_fmr=[2])
    with pytest.raises(audit.ConfigError, match="field 'identification'"):
        audit.identify(cfg)
