"""Loading through Hugging Face `datasets` from a local imagefolder (offline)."""

from __future__ import annotations

import shutil

import pytest

from audit.datasets.hf import from_huggingface
from audit.errors import DatasetError
from audit.images import sha256_file

pytest.importorskip("datasets")


@pytest.fixture
def imagefolder(tmp_path, shared_dir):
    root = tmp_path / "hf"
    root.mkdir()
    src = shared_dir / "london"
    rows = ["file_name,subject,race,gender"]
    for sid, race, gender in (("001", "white", "female"), ("004", "white", "male"), ("017", "black", "male")):
        for folder, shot in (("neutral_front", "03"), ("smiling_front", "08")):
            name = f"{sid}_{shot}.jpg"
            shutil.copy(src / folder / name, root / name)  # into tmp only, never the repository
            rows.append(f"{name},{sid},{race},{gender}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def test_local_imagefolder_gives_sample_table(imagefolder):
    t = from_huggingface(imagefolder, groups={"ethnicity": {"column": "race", "values": {"white": "White", "black": "Black"}}, "gender": "gender"})
    df = t.data
    assert len(t) == 6 and t.n_subjects == 3
    assert t.group_columns == ("ethnicity", "gender")
    assert sorted(df.drop_duplicates("subject")["ethnicity"]) == ["Black", "White", "White"]
    assert set(df["race"]) == {"white", "black"}  # original values kept
    for p, sha in zip(df["path"], df["sha256"]):
        assert sha256_file(p) == sha


def test_unmapped_value_and_missing_column(imagefolder):
    with pytest.raises(DatasetError, match=r"value 'black' has no mapping"):
        from_huggingface(imagefolder, groups={"ethnicity": {"column": "race", "values": {"white": "White"}}})
    with pytest.raises(DatasetError, match=r"column\(s\) \['skin'\] not found"):
        from_huggingface(imagefolder, groups={"skin": "skin"})


def test_audit_config_can_name_a_hugging_face_imagefolder(imagefolder, tmp_path):
    from audit.verification.config import config_from_dict
    from audit.verification.runner import run_audit

    from audit.backends.registry import register_backend

    register_backend("quadrant-colour", "fake_backend:QuadrantColourBackend", replace=True)
    cfg = config_from_dict({
        "dataset": {"huggingface": str(imagefolder), "groups": {"gender": "gender"}},
        "backend": {"name": "quadrant-colour"},
        "thresholds": {"target_fmr": [0.5]},
        "run": {"workers": 1, "progress": False},
    }, base_dir=tmp_path)
    run = run_audit(cfg, write=False)
    assert run.result.provenance["protocol"]["mated_comparisons"] == 3
    assert run.result.provenance["protocol"]["impostor_comparisons"] == 15 - 3
    assert set(run.result.groupings) == {"gender"}
