"""Covariates declared in manifests: bins, the dataset's own bands, missing values, bad input; the
real London and FairFace manifests; balanced subject sampling."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from audit.datasets import load_dataset, load_manifest
from audit.datasets.covariates import UNKNOWN, apply_covariates, parse_covariates
from audit.errors import DatasetError, ManifestError

sys.path.insert(0, str(Path(__file__).parent))
from test_manifest import _write_dataset  # noqa: E402

MIRROR = Path(os.environ.get("FACE_AUDIT_MIRROR", Path(__file__).resolve().parents[3] / "shared" / "datasets"))


def _df():
    return pd.DataFrame({"sample_id": list("abcde"), "subject": list("11234"), "age": ["5", "5", "17.5", "", "61"]})


def test_bins_band_every_value_and_missing_is_unknown():
    specs = parse_covariates({"age_band": {"column": "age", "bins": [0, 13, 18, 60, 120]}}, "m.yaml")
    out = apply_covariates(_df(), specs, "m.yaml")
    assert out["age_band"].tolist() == ["0-12", "0-12", "13-17", UNKNOWN, "60-119"]
    assert specs[0].levels == ("0-12", "13-17", "18-59", "60-119")


def test_order_and_values():
    df = pd.DataFrame({"sample_id": ["a", "b"], "subject": ["1", "2"], "age": ["3-9", "more than 70"]})
    specs = parse_covariates({"a": {"column": "age", "order": ["0-2", "3-9", "more than 70"]},
                              "b": {"column": "age", "values": {"3-9": "child", "more than 70": "old"}}}, "m.yaml")
    out = apply_covariates(df, specs, "m.yaml")
    assert out["a"].tolist() == ["3-9", "more than 70"] and out["b"].tolist() == ["child", "old"]
    assert specs[1].levels == ("child", "old")


@pytest.mark.parametrize("spec, needle", [
    ({"column": "age", "bins": [0, 13, 13]}, "increasing"),
    ({"column": "age", "bins": [0, 13], "order": ["x"]}, "give one of"),
    ({"column": "age", "bands": [1]}, "unknown key"),
    ({"bins": [0, 1]}, "column"),
    ({"column": "age", "order": ["a", "a"]}, "distinct"),
])
def test_bad_declarations_name_the_field(spec, needle):
    with pytest.raises(ManifestError, match="covariates.age_band") as e:
        parse_covariates({"age_band": spec}, "m.yaml")
    assert needle in str(e.value)


def test_a_value_outside_the_bins_names_the_image():
    specs = parse_covariates({"age_band": {"column": "age", "bins": [0, 60]}}, "m.yaml")
    with pytest.raises(ManifestError, match=r"'61' of image e \(subject 4\).*widen 'bins'"):
        apply_covariates(_df(), specs, "m.yaml")
    specs = parse_covariates({"age_band": {"column": "age", "order": ["5", "61"]}}, "m.yaml")
    with pytest.raises(ManifestError, match="'17.5' of image c.*add it to 'order'"):
        apply_covariates(_df(), specs, "m.yaml")


def test_manifest_covariates_become_columns(tmp_path):
    mdir = tmp_path / "m"
    mdir.mkdir()
    path = _write_dataset(tmp_path / "d" / "tiny", mdir, labels="id,eth,sex,age\n001,black,f,8\n002,white,m,40\n003,white,f,\n",
                          extra_yaml="""
        covariates:
          age_band: {column: age, bins: [0, 13, 120]}
    """)
    t = load_dataset(path, data_dir=tmp_path / "d")
    assert t.data.groupby("subject")["age_band"].first().to_dict() == {"001": "0-12", "002": "13-119", "003": UNKNOWN}
    assert t.dataset["covariates"]["age_band"]["levels"] == ["0-12", "13-119"]
    assert "age_band" not in t.group_columns  # a covariate is not an audit group


@pytest.mark.skipif(not (MIRROR / "london").is_dir(), reason="needs the London set")
def test_real_london_and_fairface_age_bands():
    london = load_dataset(load_manifest("london"), data_dir=MIRROR)
    per_person = london.data.drop_duplicates("subject").set_index("subject")
    info = pd.read_csv(MIRROR / "london" / "london_info.csv")
    assert per_person.loc["001", "age_band"] == "18-24" and int(info.loc[info.face_id == 1, "face_age"].iloc[0]) == 24
    assert per_person.loc["003", "age_band"] == "30-39"
    assert (per_person["age_band"] == UNKNOWN).sum() == 102 - info["face_age"].notna().sum() == 2
    ff = load_dataset(load_manifest("fairface"), data_dir=MIRROR)
    assert ff.data["age_band"].value_counts()["3-9"] == 508 and ff.data["age_band"].value_counts()["more than 70"] == 36


@pytest.mark.skipif(not (MIRROR / "london").is_dir(), reason="needs the London set")
def test_balanced_subject_sample():
    london = load_dataset(load_manifest("london"), data_dir=MIRROR)
    sub = london.subset_subjects(20, seed=3, balance=["ethnicity", "gender"])
    people = sub.data.drop_duplicates("subject")
    counts = people.groupby(["ethnicity", "gender"]).size().to_dict()
    # 9 cells; East Asian/White has one person: the other 8 cells share the rest evenly (2 or 3 each)
    assert sum(counts.values()) == 20 and counts[("East Asian/White", "Male")] == 1
    assert all(v in (2, 3) for k, v in counts.items() if k[0] != "East Asian/White")
    assert sub.dataset["subset_balance"]["people_per_cell"]["White / Female"] == counts[("White", "Female")]
    again = london.subset_subjects(20, seed=3, balance=["ethnicity", "gender"])
    assert again.data["subject"].tolist() == sub.data["subject"].tolist()  # seeded
    other = london.subset_subjects(20, seed=4, balance=["ethnicity", "gender"])
    assert other.data["subject"].tolist() != sub.data["subject"].tolist()
    with pytest.raises(DatasetError, match="--balance / dataset.balance names \\['skin'\\]"):
        london.subset_subjects(20, balance=["skin"])
