"""Scores files and embeddings files in place of a backend: results, and every bad-input decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.cli import main
from audit.errors import DataError
from audit.verification.inputs import read_embeddings, read_scores
from audit.verification.result import AuditResult

SAMPLES = pd.DataFrame({
    "sample_id": ["a1", "a2", "b1", "c1", "c2", "d1"],
    "subject": ["a", "a", "b", "c", "c", "d"],
    "group": ["A", "A", "A", "B", "B", "B"],
})
# similarity in percent, like a vendor API; every pair of the 6 samples
SCORES = {
    ("a1", "a2"): 90, ("c1", "c2"): 40,                       # mated
    ("a1", "b1"): 50, ("a2", "b1"): 20, ("c1", "d1"): 60, ("c2", "d1"): 10,
    ("a1", "c1"): 30, ("a1", "c2"): 0, ("a1", "d1"): 10, ("a2", "c1"): 20, ("a2", "c2"): 5,
    ("a2", "d1"): 15, ("b1", "c1"): 35, ("b1", "c2"): 25, ("b1", "d1"): 45,
}


def _write(tmp_path, rows=None, samples=SAMPLES, extra=None):
    rows = rows if rows is not None else [{"sample_a": a, "sample_b": b, "score": s} for (a, b), s in SCORES.items()]
    df = pd.DataFrame(rows)
    if extra:
        df = df.assign(**extra)
    sp = tmp_path / "scores.csv"
    df.to_csv(sp, index=False)
    samp = tmp_path / "samples.csv"
    samples.to_csv(samp, index=False)
    return sp, samp


def test_scores_file_with_samples_table(tmp_path):
    sp, samp = _write(tmp_path)
    got = read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)
    assert got.pairs.n_mated == 2 and got.pairs.n_impostor == 13
    assert sorted(got.pairs.mated_score) == [40, 90]
    assert got.info.metric == "similarity" and got.info.to_similarity(80) == 80


def test_distances_are_negated_once(tmp_path):
    sp, samp = _write(tmp_path)
    got = read_scores(sp, higher_is_similar=False, group_columns=["group"], samples_path=samp)
    assert sorted(got.pairs.mated_score) == [-90, -40]
    assert got.info.to_similarity(0.6) == -0.6 and got.info.to_native(-0.6) == 0.6


def test_scores_file_carrying_its_own_labels(tmp_path):
    lab = SAMPLES.set_index("sample_id")
    rows = [{"sample_a": a, "sample_b": b, "score": s, "subject_a": lab.subject[a], "subject_b": lab.subject[b],
             "group_a": lab.group[a], "group_b": lab.group[b]} for (a, b), s in SCORES.items()]
    sp, _ = _write(tmp_path, rows)
    got = read_scores(sp, higher_is_similar=True, group_columns=["group"])
    assert got.pairs.n_mated == 2 and len(got.samples) == 6


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.__setitem__(3, {**r[3], "score": "n/a"}), r"row 5: column 'score' is 'n/a'"),
        (lambda r: r.__setitem__(3, {**r[3], "score": "inf"}), r"row 5: column 'score'"),
        (lambda r: r.append({"sample_a": "b1", "sample_b": "a1", "score": 51}), r"row 17: the pair \('b1', 'a1'\) was already scored on row 4"),
        (lambda r: r.append({"sample_a": "a1", "sample_b": "zz", "score": 1}), r"row 17: sample 'zz' is not in the samples table"),
        (lambda r: r.append({"sample_a": "a1", "sample_b": "a1", "score": 1}), r"row 17: compares sample 'a1' with itself"),
    ],
)
def test_bad_rows_are_named(tmp_path, mutate, message):
    rows = [{"sample_a": a, "sample_b": b, "score": s} for (a, b), s in SCORES.items()]
    mutate(rows)
    sp, samp = _write(tmp_path, rows)
    with pytest.raises(DataError, match=message):
        read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)


def test_mated_flag_contradicting_subjects(tmp_path):
    rows = [{"sample_a": a, "sample_b": b, "score": s, "mated": a[0] == b[0]} for (a, b), s in SCORES.items()]
    rows[2]["mated"] = True  # a1-b1 are different people
    sp, samp = _write(tmp_path, rows)
    with pytest.raises(DataError, match=r"row 4: column 'mated' says True but the subjects are 'a' and 'b'"):
        read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)


def test_subject_with_two_labels_is_an_error(tmp_path):
    s = SAMPLES.copy()
    s.loc[1, "group"] = "B"
    sp, samp = _write(tmp_path, samples=s)
    with pytest.raises(DataError, match=r"subject 'a' has images labelled \['A', 'B'\] in column 'group'"):
        read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)


def test_missing_columns(tmp_path):
    sp, samp = _write(tmp_path, [{"a": 1, "b": 2, "score": 3}])
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['sample_a', 'sample_b'\]"):
        read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)
    sp, _ = _write(tmp_path)
    with pytest.raises(DataError, match="subject_a"):
        read_scores(sp, higher_is_similar=True, group_columns=["group"])


def test_embeddings_file_scores_all_pairs(tmp_path):
    from audit.verification.config import config_from_dict
    from audit.verification.runner import run_audit

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 8))
    np.save(tmp_path / "emb.npy", emb)
    SAMPLES.to_csv(tmp_path / "samples.csv", index=False)
    got = read_embeddings(tmp_path / "emb.npy", samples_path=tmp_path / "samples.csv", group_columns=["group"])
    np.testing.assert_array_equal(got.embeddings, emb)
    cfg = config_from_dict({
        "embeddings": {"path": "emb.npy", "samples": "samples.csv", "groups": ["group"], "metric": "cosine"},
        "thresholds": {"target_fmr": [], "fixed": [0.1]},
    }, path=tmp_path / "c.toml")
    res = run_audit(cfg, write=False).result
    assert res.provenance["protocol"]["mated_comparisons"] == 2 and res.provenance["protocol"]["impostor_comparisons"] == 13
    # brute force: same-group impostor pairs with cosine >= 0.1
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = unit @ unit.T
    subj, grp = SAMPLES["subject"].to_numpy(), SAMPLES["group"].to_numpy()
    for g in ("A", "B"):
        pairs = [(i, j) for i in range(6) for j in range(i + 1, 6) if grp[i] == grp[j] == g and subj[i] != subj[j]]
        row = res.rates[(res.rates.grouping == "group") & (res.rates.group == g) & (res.rates.metric == "fmr")].iloc[0]
        assert (row.errors, row.trials) == (sum(cos[i, j] >= 0.1 for i, j in pairs), len(pairs))
    np.save(tmp_path / "bad.npy", emb[:5])
    with pytest.raises(DataError, match=r"expected an array of shape \(6, d\)"):
        read_embeddings(tmp_path / "bad.npy", samples_path=tmp_path / "samples.csv", group_columns=["group"])
    emb[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", emb)
    with pytest.raises(DataError, match=r"row 2 \(sample 'b1'\) has NaN"):
        read_embeddings(tmp_path / "nan.npy", samples_path=tmp_path / "samples.csv", group_columns=["group"])


def test_cli_audits_a_vendor_scores_file_at_its_default_threshold(tmp_path, capsys):
    sp, samp = _write(tmp_path)
    cfg = tmp_path / "vendor.toml"
    cfg.write_text(
        'title = "Vendor X"\n[scores]\npath = "scores.csv"\nsamples = "samples.csv"\nhigher_is_similar = true\n'
        'groups = ["group"]\nname = "Vendor X 2.1"\n[thresholds]\ntarget_fmr = []\nfixed = [35]\n[output]\ndir = "out"\n'
    )
    assert main(["run", str(cfg), "--no-progress"]) == 0
    assert "input: scores file" in capsys.readouterr().out
    res = AuditResult.from_json(tmp_path / "out" / "results.json")
    r = res.rates.set_index(["grouping", "group", "metric"])
    # at 35: A impostors {50, 20} -> 1/2; B {60, 10} -> 1/2; B's mated 40 matches, A's 90 matches
    assert tuple(r.loc[("group", "A", "fmr"), ["errors", "trials"]]) == (1, 2)
    assert tuple(r.loc[("group", "B", "fmr"), ["errors", "trials"]]) == (1, 2)
    assert res.provenance["backend"]["backend"] == "scores-file"
    assert not any("single subject" in w for w in res.warnings)


def test_engine_scan_and_given_pairs_agree_including_bootstrap(tmp_path):
    """An embeddings file (tiled engine) and a scores file of the same canonical scores (pair path)
    give identical counts and identical subject-bootstrap intervals."""
    from audit.verification.config import config_from_dict
    from audit.engine.pairs import score_pairs
    from audit.verification.runner import run_audit

    rng = np.random.default_rng(5)
    n = 40
    samples = pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(n)],
        "subject": [f"p{i // 2}" for i in range(n)],
        "group": ["A" if (i // 2) % 3 else "B" for i in range(n)],
    })
    emb = rng.normal(size=(n, 8))
    np.save(tmp_path / "emb.npy", emb)
    samples.to_csv(tmp_path / "samples.csv", index=False)
    a, b = np.triu_indices(n, k=1)
    pd.DataFrame({"sample_a": samples.sample_id[a].values, "sample_b": samples.sample_id[b].values,
                  "score": score_pairs(emb, a, b, metric="cosine")}).to_csv(tmp_path / "scores.csv", index=False)
    common = {"thresholds": {"target_fmr": [0.1], "fixed": [0.2]}, "run": {"bootstrap": 200}}
    r1 = run_audit(config_from_dict({"embeddings": {"path": "emb.npy", "samples": "samples.csv", "groups": ["group"]}, **common}, path=tmp_path / "a.toml"), write=False).result
    r2 = run_audit(config_from_dict({"scores": {"path": "scores.csv", "samples": "samples.csv", "groups": ["group"]}, **common}, path=tmp_path / "b.toml"), write=False).result
    cols = ["grouping", "group", "threshold_name", "metric", "errors", "trials", "boot_low", "boot_high"]
    pd.testing.assert_frame_equal(r1.rates[cols], r2.rates[cols])
    assert r1.thresholds[0].value == r2.thresholds[0].value


def test_run_interval_reaches_the_rates_and_the_provenance(tmp_path):
    """[run] interval = "clopper-pearson": every FTA, FMR and FNMR interval is Clopper–Pearson's,
    and provenance records the choice; the default run records Wilson."""
    from audit.verification.config import config_from_dict
    from audit.metrics import clopper_pearson_interval
    from audit.verification.runner import run_audit

    _write(tmp_path)
    common = {"scores": {"path": "scores.csv", "samples": "samples.csv", "groups": ["group"]},
              "thresholds": {"target_fmr": [], "fixed": [35]}}
    res = run_audit(config_from_dict({**common, "run": {"bootstrap": 0, "interval": "clopper_pearson"}},
                                     path=tmp_path / "c.toml"), write=False).result
    assert res.provenance["protocol"]["interval"] == "clopper-pearson"
    assert set(res.rates.ci_method) == {"clopper-pearson"} and set(res.fta.ci_method) == {"clopper-pearson"}
    for r in res.rates.itertuples(index=False):
        ci = clopper_pearson_interval(int(r.errors), int(r.trials))
        assert (r.ci_low, r.ci_high) == (ci.low, ci.high)
    default = run_audit(config_from_dict({**common, "run": {"bootstrap": 0}}, path=tmp_path / "d.toml"), write=False).result
    assert default.provenance["protocol"]["interval"] == "wilson" and set(default.rates.ci_method) == {"wilson"}
    keys = ["grouping", "group", "threshold_name", "metric", "errors", "trials", "value"]
    pd.testing.assert_frame_equal(res.rates[keys], default.rates[keys])


def _run_scores(tmp_path, rows, scores_cfg, **extra):
    from audit.verification.config import config_from_dict
    from audit.verification.runner import run_audit

    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    cfg = config_from_dict({"scores": {"path": "s.csv", **scores_cfg}, "thresholds": {"target_fmr": [], "fixed": [50]},
                            "run": {"bootstrap": 100}, **extra}, path=tmp_path / "c.toml")
    return run_audit(cfg, write=False).result


def test_scores_without_identities_are_accepted_as_independent_pairs(tmp_path):
    """Most published score dumps only say genuine or impostor: no subjects, no groups."""
    rows = [{"sample_a": f"x{i}", "sample_b": f"y{i}", "score": s, "mated": m}
            for i, (s, m) in enumerate([(90, True), (40, True), (80, False), (10, False), (20, False), (60, False)])]
    res = _run_scores(tmp_path, rows, {})
    assert res.groupings == ()
    r = res.rates.set_index(["metric"])
    assert (r.loc["fnmr", "errors"], r.loc["fnmr", "trials"]) == (1, 2)   # 40 < 50
    assert (r.loc["fmr", "errors"], r.loc["fmr", "trials"]) == (2, 4)     # 80 and 60 >= 50
    assert set(res.rates.ci_method) == {"wilson (pairs assumed independent)"}
    assert res.rates.boot_low.isna().all()                                 # no people-level interval to give
    assert res.composition.subjects.isna().all()                           # stand-ins are not counted as people
    assert res.provenance["protocol"]["identities"] == "unknown: pairs assumed independent"
    assert any("no identities" in w for w in res.warnings)


def test_a_missing_score_is_a_failed_comparison_counted_as_a_non_match(tmp_path):
    rows = [{"sample_a": a, "sample_b": b, "score": s} for (a, b), s in SCORES.items()]
    rows[0]["score"] = None            # mated a1-a2 (90): now a false non-match
    rows[2]["score"] = float("nan")    # impostor a1-b1 (50): never a false match
    sp, samp = _write(tmp_path, rows)
    got = read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)
    assert (got.failed_mated, got.failed_impostor) == (1, 1)
    res = _run_scores(tmp_path, rows, {"samples": str(samp), "groups": ["group"]})
    r = res.rates[(res.rates.grouping == "all")].set_index("metric")
    assert (r.loc["fnmr", "errors"], r.loc["fnmr", "trials"]) == (2, 2)   # 40 < 50, and the failed one
    assert (r.loc["fmr", "errors"], r.loc["fmr", "trials"]) == (1, 13)    # only 60 >= 50 now
    assert res.provenance["protocol"]["failed_comparisons"]["mated"] == 1
    assert any("failed" in w and "non-match" in w for w in res.warnings)


def test_a_score_that_is_text_is_still_an_error(tmp_path):
    rows = [{"sample_a": a, "sample_b": b, "score": s} for (a, b), s in SCORES.items()]
    rows[3]["score"] = "abc"
    sp, samp = _write(tmp_path, rows)
    with pytest.raises(DataError, match="row 5: column 'score' is 'abc'"):
        read_scores(sp, higher_is_similar=True, group_columns=["group"], samples_path=samp)


def test_a_bad_genuine_flag_is_named(tmp_path):
    rows = [{"sample_a": "x", "sample_b": "y", "score": 1, "genuine": "perhaps"}]
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match="row 2: column 'genuine' is 'perhaps'"):
        read_scores(tmp_path / "s.csv", higher_is_similar=True, group_columns=[])
