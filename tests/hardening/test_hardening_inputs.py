"""Bad scores and embeddings files: exit 2 naming the file, row and column, or (for inputs that
are valid but cannot give every number) a warning or status with the correct counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.verification.result import AuditResult
from conftest import cli, embeddings_config, good_embeddings, samples_frame, scores_config, scores_frame


@pytest.fixture
def files(tmp_path):
    samples = samples_frame(4, 2)
    emb = good_embeddings(samples)
    samples.to_csv(tmp_path / "samples.csv", index=False)
    return {"tmp": tmp_path, "samples": samples, "emb": emb, "samples_path": tmp_path / "samples.csv"}


def _run(cfg, capsys) -> tuple[int, str, str]:
    code = cli("run", cfg)
    got = capsys.readouterr()
    return code, got.out, got.err


def _emb_csv(files, mutate, name="emb.csv"):
    df = pd.DataFrame(files["emb"], columns=[f"d{i}" for i in range(files["emb"].shape[1])])
    df.insert(0, "sample_id", files["samples"]["sample_id"])
    df = df.astype(object)
    df = mutate(df)
    path = files["tmp"] / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


def _dup(df):
    df.loc[3, "sample_id"] = df.loc[2, "sample_id"]
    return df


def _cell(row, col, value):
    def f(df):
        df.loc[row, col] = value
        return df
    return f


EMB_CSV_CASES = {
    # the case: a duplicated sample_id would give later samples their neighbour's vector
    "duplicate_sample_id": (_dup, "appears on rows [4, 5]"),
    "string_cell": (_cell(2, "d3", "abc"), "row 4, column 'd3'"),
    "comma_decimal": (_cell(5, "d0", "0,5"), "row 7, column 'd0'"),
    "empty_cell": (_cell(1, "d2", ""), "row 3, column 'd2'"),
    "space_cell": (_cell(1, "d2", "  "), "row 3, column 'd2'"),
    "inf_cell": (_cell(0, "d1", "inf"), "row 2 (sample 'x0_0') has NaN or infinite values: column 'd1'"),
    "nan_cell": (_cell(6, "d5", "NaN"), "row 8, column 'd5'"),
    "huge_overflow": (_cell(4, "d4", "1e999"), "row 6 (sample 'x2_0') has NaN or infinite values"),
    "huge_finite": (_cell(4, "d4", "1e300"), "row 6 (sample 'x2_0'): column 'd4' is 1e+300, beyond"),
    "empty_sample_id": (_cell(2, "sample_id", ""), "row 4: column 'sample_id' is empty"),
    "unknown_sample_id": (_cell(2, "sample_id", "zzz"), "row 4: sample_id 'zzz' is not in the samples table"),
    "missing_row": (lambda df: df.drop(index=5), "no embedding for sample 'x2_1'"),
    "extra_row": (lambda df: pd.concat([df, df.iloc[[0]].assign(sample_id="extra")], ignore_index=True), "sample_id 'extra' is not in the samples table"),
    "no_sample_id_column": (lambda df: df.drop(columns=["sample_id"]), "lacks the column(s) ['sample_id']"),
    "no_dimension_columns": (lambda df: df[["sample_id"]], "no dimension columns"),
}


@pytest.mark.parametrize("case", sorted(EMB_CSV_CASES))
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bad_embeddings_table(case, fmt, files, capsys):
    mutate, expected = EMB_CSV_CASES[case]
    if fmt == "parquet" and case in ("comma_decimal", "empty_cell", "space_cell", "string_cell", "inf_cell", "nan_cell", "huge_overflow", "huge_finite"):
        mutate_ = mutate

        def mutate(df):  # parquet keeps text cells as text
            return mutate_(df).astype({c: str for c in df.columns if c != "sample_id"})
    path = _emb_csv(files, mutate, f"emb.{fmt}")
    code, out, err = _run(embeddings_config(files["tmp"], path, files["samples_path"]), capsys)
    assert code == 2 and f"emb.{fmt}" in err and expected in err and "Traceback" not in err, err


NPY_CASES = {
    "npz_named_npy": (lambda p, e: np.savez(open(p, "wb"), e), "a .npz archive"),
    "empty_file": (lambda p, e: p.write_bytes(b""), "empty"),
    "text_file": (lambda p, e: p.write_text("1,2,3\n"), "not a .npy array"),
    "truncated": (lambda p, e: (np.save(p, e), p.write_bytes(p.read_bytes()[:100])), "not a readable .npy"),
    "object_array": (lambda p, e: np.save(p, np.array([[1, "a"]] * 8, dtype=object)), "Object arrays"),
    "string_array": (lambda p, e: np.save(p, e.astype(str)), "numeric array"),
    "one_dimensional": (lambda p, e: np.save(p, e[:, 0]), "expected an array of shape (8, d)"),
    "three_dimensional": (lambda p, e: np.save(p, e[:, :, None]), "expected an array of shape (8, d)"),
    "too_few_rows": (lambda p, e: np.save(p, e[:5]), "found (5, 6)"),
    "too_many_rows": (lambda p, e: np.save(p, np.vstack([e, e[:1]])), "found (9, 6)"),
    "zero_columns": (lambda p, e: np.save(p, e[:, :0]), "found (8, 0)"),
    "nan_value": (lambda p, e: (e.__setitem__((2, 3), np.nan), np.save(p, e)), "row 2 (sample 'x1_0') has NaN"),
    "inf_value": (lambda p, e: (e.__setitem__((7, 0), -np.inf), np.save(p, e)), "row 7 (sample 'x3_1') has NaN"),
}


@pytest.mark.parametrize("case", sorted(NPY_CASES))
def test_bad_npy(case, files, capsys):
    make, expected = NPY_CASES[case]
    path = files["tmp"] / "emb.npy"
    make(path, files["emb"].copy())
    code, out, err = _run(embeddings_config(files["tmp"], path, files["samples_path"]), capsys)
    assert code == 2 and "emb.npy" in err and expected in err and "Traceback" not in err, err


SAMPLES_CASES = {
    "empty_subject": (_cell(3, "subject", ""), "row 5: column 'subject' is empty"),
    "empty_label": (_cell(2, "group", ""), "row 4: column 'group' is empty"),
    "empty_sample_id": (_cell(0, "sample_id", ""), "row 2: column 'sample_id' is empty"),
    "duplicate_sample_id": (_dup, "row 5: sample_id 'x1_0' appears twice"),
    "missing_group_column": (lambda df: df.drop(columns=["group"]), "lacks the column(s) ['group']"),
    "missing_subject_column": (lambda df: df.drop(columns=["subject"]), "lacks the column(s) ['subject']"),
    "label_disagrees_within_subject": (_cell(1, "group", "B"), "subject 'p0' has images labelled ['A', 'B']"),
    "bad_n_faces": (lambda df: df.assign(n_faces=["x"] * len(df)), "column 'n_faces'"),
}


@pytest.mark.parametrize("case", sorted(SAMPLES_CASES))
def test_bad_samples_table(case, files, capsys):
    mutate, expected = SAMPLES_CASES[case]
    mutate(files["samples"].copy().astype(object)).to_csv(files["samples_path"], index=False)
    np.save(files["tmp"] / "emb.npy", files["emb"])
    code, out, err = _run(embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]), capsys)
    assert code == 2 and "samples.csv" in err and expected in err and "Traceback" not in err, err


def test_zero_vectors_are_failures_to_acquire_with_correct_counts(files, capsys):
    emb = files["emb"].copy()
    emb[[1, 6]] = 0.0
    np.save(files["tmp"] / "emb.npy", emb)
    code, out, err = _run(embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]), capsys)
    assert code == 0, err
    res = AuditResult.from_json(files["tmp"] / "out" / "results.json")
    s = res.samples.set_index("sample_id")
    assert list(s.loc[["x0_1", "x3_0"], "status"]) == ["error", "error"]
    assert "all-zero" in s.loc["x0_1", "detail"]
    fta = res.fta.set_index(["grouping", "group"])
    assert (fta.loc[("all", "All"), "failures"], fta.loc[("all", "All"), "attempts"]) == (2, 8)
    assert "2 of 8 image(s) failed to acquire" in out
    assert res.provenance["protocol"]["mated_comparisons"] == 2  # p1 and p2 keep both images


def test_labels_that_look_like_numbers_stay_text(files, capsys):
    samples = samples_frame(4, 2, ["NaN", "Infinity", "007", "-0"])
    samples.to_csv(files["samples_path"], index=False)
    np.save(files["tmp"] / "emb.npy", good_embeddings(samples))
    code, out, err = _run(embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]), capsys)
    assert code == 0, err
    res = AuditResult.from_json(files["tmp"] / "out" / "results.json")
    assert set(res.composition.loc[res.composition.grouping == "group", "group"]) == {"NaN", "Infinity", "007", "-0"}


# --------------------------------------------------------------------------- scores files
def _scores(files, mutate=None):
    df = scores_frame(files["samples"], files["emb"]).astype(object)
    if mutate:
        df = mutate(df)
    path = files["tmp"] / "scores.csv"
    df.to_csv(path, index=False)
    return path


SCORES_CASES = {
    "text_score": (_cell(3, "score", "abc"), "row 5: column 'score' is 'abc', not a number"),
    "comma_score": (_cell(10, "score", "0,75"), "row 12: column 'score' is '0,75', not a number"),
    "percent_score": (_cell(0, "score", "85%"), "row 2: column 'score'"),
    "missing_score_column": (lambda df: df.drop(columns=["score"]), "score"),
    "missing_sample_b": (lambda df: df.drop(columns=["sample_b"]), "sample_b"),
    "self_pair": (_cell(2, "sample_b", "x0_0"), "row 4"),
    "duplicate_pair": (lambda df: pd.concat([df, df.iloc[[4]]], ignore_index=True), "row 30"),
    "reversed_duplicate": (lambda df: pd.concat([df, df.iloc[[4]].rename(columns={"sample_a": "sample_b", "sample_b": "sample_a"})], ignore_index=True), "row 30"),
    "unknown_sample": (_cell(6, "sample_a", "ghost"), "'ghost'"),
    "huge_score": (_cell(3, "score", "1.7e308"), "row 5: column 'score' is 1.7e+308, beyond"),
    "huge_negative_score": (_cell(7, "score", "-1e200"), "row 9: column 'score' is -1e+200, beyond"),
}


@pytest.mark.parametrize("case", sorted(SCORES_CASES))
def test_bad_scores_file(case, files, capsys):
    mutate, expected = SCORES_CASES[case]
    path = _scores(files, mutate)
    code, out, err = _run(scores_config(files["tmp"], path, files["samples_path"]), capsys)
    assert code == 2 and "scores.csv" in err and expected in err and "Traceback" not in err, err


@pytest.mark.parametrize("content,expected", [
    (b"", "cannot read it as CSV"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary\xff\xfe", "scores.csv"),
    (b"sample_a,sample_b,score\n", "scores.csv"),
])
def test_scores_file_that_is_not_a_table(content, expected, files, capsys):
    path = files["tmp"] / "scores.csv"
    path.write_bytes(content)
    code, out, err = _run(scores_config(files["tmp"], path, files["samples_path"]), capsys)
    assert code == 2 and expected in err and "Traceback" not in err, err


def test_scores_path_that_is_a_folder(files, capsys):
    (files["tmp"] / "dir.csv").mkdir()
    code, out, err = _run(scores_config(files["tmp"], files["tmp"] / "dir.csv", files["samples_path"]), capsys)
    assert code == 2 and "dir.csv" in err and "folder" in err


def test_distances_declared_as_similarities_warn_with_the_medians(files, capsys):
    """The issue's case: distances read as similarities gave FNMR 1.0 with no warning."""
    df = scores_frame(files["samples"], files["emb"])
    df["score"] = 1.0 - df["score"]  # cosine distances
    path = files["tmp"] / "scores.csv"
    df.to_csv(path, index=False)
    code, out, err = _run(scores_config(files["tmp"], path, files["samples_path"]), capsys)
    assert code == 0, err
    subj = files["samples"].set_index("sample_id")["subject"]
    mated = df[df.sample_a.map(subj) == df.sample_b.map(subj)]["score"]
    impostor = df[df.sample_a.map(subj) != df.sample_b.map(subj)]["score"]
    res = AuditResult.from_json(files["tmp"] / "out" / "results.json")
    (w,) = [w for w in res.warnings if "score direction looks inverted" in w]
    assert f"({np.median(mated):.4g})" in w and f"({np.median(impostor):.4g})" in w and "higher_is_similar = false" in w
    assert "score direction looks inverted" in out
    # the right direction gives no such warning
    code, out, err = _run(scores_config(files["tmp"], path, files["samples_path"], his="false"), capsys)
    assert code == 0 and "inverted" not in out


def test_no_impostor_comparisons_is_said_not_printed_as_fnmr_one(files, capsys):
    samples = samples_frame(1, 4)
    samples.to_csv(files["samples_path"], index=False)
    emb = good_embeddings(samples)
    np.save(files["tmp"] / "emb.npy", emb)
    code, out, err = _run(embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]), capsys)
    assert code == 2 and "6 mated but no impostor comparisons" in err and "target FMR" in err
    assert "inf" not in out and "FNMR 1.000" not in out
    # with a fixed threshold FNMR is measured and FMR is said to be unmeasurable
    cfg = embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]).read_text().replace(
        "backend_default = false", "backend_default = false\nfixed = [0.5]")
    (files["tmp"] / "fixed.toml").write_text(cfg)
    code, out, err = _run(files["tmp"] / "fixed.toml", capsys)
    assert code == 0, err
    assert "no impostor comparisons: thresholds at a target FMR [0.2] cannot be computed" in out
    res = AuditResult.from_json(files["tmp"] / "out" / "results.json")
    assert [t.name for t in res.thresholds] == ["fixed 0.5"]


def test_no_mated_comparisons_says_fnmr_cannot_be_computed(files, capsys):
    samples = samples_frame(6, 1)
    samples.to_csv(files["samples_path"], index=False)
    np.save(files["tmp"] / "emb.npy", good_embeddings(samples))
    code, out, err = _run(embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]), capsys)
    assert code == 0, err
    assert "no mated comparisons (no subject has two acquired images): FNMR cannot be computed" in out


def test_one_image_gives_no_comparison(files, capsys):
    samples = samples_frame(1, 1)
    samples.to_csv(files["samples_path"], index=False)
    np.save(files["tmp"] / "emb.npy", good_embeddings(samples))
    code, out, err = _run(embeddings_config(files["tmp"], files["tmp"] / "emb.npy", files["samples_path"]), capsys)
    assert code == 2 and "no comparison can be made" in err
