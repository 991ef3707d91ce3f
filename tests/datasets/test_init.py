"""``face-audit datasets init``: a manifest and checksum file for a local folder, from a labels CSV
or from file names. Folders are built in tmp_path from London images by symlink (never in the repo)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import yaml

from audit.cli import main
from audit.datasets import load_dataset, load_manifest
from audit.datasets.init import init_dataset
from audit.errors import DatasetError

SUBJECTS = ("001", "002", "003", "004")


@pytest.fixture(scope="module")
def london_rows(shared_dir) -> dict[str, dict[str, str]]:
    with open(shared_dir / "london" / "london_info.csv", newline="") as f:
        return {r["face_id"]: r for r in csv.DictReader(f) if r["face_id"] in SUBJECTS}


def _image(shared_dir: Path, subject: str, smiling: bool) -> Path:
    return shared_dir / "london" / ("smiling_front" if smiling else "neutral_front") / f"{subject}_{'08' if smiling else '03'}.jpg"


def test_folder_per_person_with_labels_by_subject(tmp_path, shared_dir, london_rows, capsys):
    root = tmp_path / "faces"
    for s in SUBJECTS:
        (root / f"p{s}").mkdir(parents=True)
        for smiling in (False, True):
            os.symlink(_image(shared_dir, s, smiling), root / f"p{s}" / ("smile.jpg" if smiling else "neutral.jpg"))
    labels = tmp_path / "labels.csv"  # outside the folder: stored as ../labels.csv and checksummed too
    labels.write_text("subject,ethnicity,gender\n" + "".join(
        f"p{s},{london_rows[s]['face_eth']},{london_rows[s]['face_gender']}\n" for s in SUBJECTS))
    assert main(["datasets", "init", str(root), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "8 images of 4 subjects (subject from folder)" in out and "groups: ethnicity, gender" in out
    doc = yaml.safe_load((root / "faces.yaml").read_text())
    assert "source" not in doc and doc["checksums"] == "faces.sha256" and doc["labels"]["file"] == "../labels.csv"
    sums = (root / "faces.sha256").read_text().splitlines()
    assert len(sums) == 9 and any(line.endswith("  ../labels.csv") for line in sums)
    table = load_dataset(root / "faces.yaml")  # found in the manifest's own folder, every file verified
    assert table.dataset["location"] == "manifest folder" and table.n_subjects == 4
    assert set(table.data["gender"]) == {london_rows[s]["face_gender"] for s in SUBJECTS}
    # a second init does not overwrite
    assert main(["datasets", "init", str(root), "--labels", str(labels)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_flat_folder_with_labels_by_image(tmp_path, shared_dir, london_rows):
    root = tmp_path / "flat"
    root.mkdir()
    rows = []
    for s in SUBJECTS:
        name = f"img_{s}.jpg"
        os.symlink(_image(shared_dir, s, False), root / name)
        rows.append(f"{name},{london_rows[s]['face_gender']}\n")
    (root / "labels.csv").write_text("file,gender\n" + "".join(rows))
    made = init_dataset(root, labels=root / "labels.csv", name="flat-set")
    assert made.images == 4 and made.subjects == 4 and made.subject_from.startswith("file")
    assert any("no mated pairs" in w for w in made.warnings)
    m = load_manifest(made.manifest)
    assert m.labels_per_image and m.base_url == "" and "labels.csv" in m.checksums


def test_file_name_labels_with_a_pattern(tmp_path, shared_dir, london_rows, capsys):
    root = tmp_path / "named"
    root.mkdir()
    for s in SUBJECTS:
        r = london_rows[s]
        for smiling in (False, True):
            os.symlink(_image(shared_dir, s, smiling), root / f"{s}_{r['face_gender']}_{'b' if smiling else 'a'}.jpg")
    pattern = r"(?P<subject>\d{3})_(?P<gender>[a-z]+)_(?P<shot>[ab])\.jpg"
    assert main(["datasets", "init", str(root), "--pattern", pattern, "--groups", "gender"]) == 0
    assert "(subject from pattern); groups: gender" in capsys.readouterr().out
    table = load_dataset(root / "named.yaml")
    assert len(table) == 8 and table.n_subjects == 4 and table.group_columns == ("gender",)
    assert set(table.data["shot"]) == {"a", "b"}  # other named groups are kept as columns


def test_bad_inputs_say_what_to_do(tmp_path, shared_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no images"):
        init_dataset(empty, pattern=r"(?P<subject>.+)")
    root = tmp_path / "one"
    root.mkdir()
    os.symlink(_image(shared_dir, "001", False), root / "x.jpg")
    (root / "labels.csv").write_text("file,gender\nnot-there.jpg,female\n")
    with pytest.raises(DatasetError, match="names no image"):
        init_dataset(root, labels=root / "labels.csv")
    (root / "labels.csv").write_text("subject,gender\nx,female\n")
    with pytest.raises(DatasetError, match="--pattern"):
        init_dataset(root, labels=root / "labels.csv")  # by subject, but no way to tell an image's subject
    with pytest.raises(DatasetError, match="does not match"):
        init_dataset(root, pattern=r"(?P<subject>\d+)\.png")
    assert not list(root.glob("*.yaml"))
