"""Manifests and dataset loading: the London manifest against the real files, and every bad-input case."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from audit.datasets import load_dataset, load_manifest, locate_dataset, download_dataset
from audit.errors import ChecksumError, DatasetError, ManifestError


def _write_dataset(root: Path, manifest_dir: Path, *, labels: str | None = None, extra_yaml: str = "", groups_yaml: str | None = None) -> Path:
    """A tiny dataset: 3 subjects x 2 images (bytes need not be images for manifest tests)."""
    (root / "imgs").mkdir(parents=True)
    files = {}
    for s in ("001", "002", "003"):
        for shot in ("03", "08"):
            rel = f"imgs/{s}_{shot}.jpg"
            data = f"fake image {s} {shot}".encode()
            (root / rel).write_bytes(data)
            files[rel] = data
    labels = labels if labels is not None else "id,eth,sex\n001,black,f\n002,white,m\n003,white,f\n"
    (root / "labels.csv").write_text(labels)
    files["labels.csv"] = labels.encode()
    lines = [f"{hashlib.sha256(d).hexdigest()}  {rel}" for rel, d in sorted(files.items())]
    (manifest_dir / "tiny.sha256").write_text("\n".join(lines) + "\n")
    groups_yaml = groups_yaml or """
        groups:
          ethnicity:
            column: eth
            values: {black: Black, white: White}
          gender:
            column: sex
            values: {f: Female, m: Male}
    """
    text = textwrap.dedent(f"""
        schema: 1
        name: tiny
        title: Tiny test set
        licence: CC0
        source:
          base_url: https://example.org/tiny
          remote_paths:
            imgs/: raw/imgs/
          checksums: tiny.sha256
        images:
          glob: ["imgs/*.jpg"]
          pattern: '^imgs/(?P<subject>\\d{{3}})_(?P<shot>\\d{{2}})\\.jpg$'
        labels:
          file: labels.csv
          key: id
          keep: [id, eth, sex]
    """) + textwrap.dedent(groups_yaml) + textwrap.dedent(extra_yaml)
    path = manifest_dir / "tiny.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny(tmp_path):
    root = tmp_path / "data" / "tiny"
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    path = _write_dataset(root, mdir)
    return root, path


def test_tiny_dataset_loads_with_labels_mapped_and_originals_kept(tiny):
    root, path = tiny
    table = load_dataset(path, data_dir=root.parent)
    df = table.data
    assert len(table) == 6 and table.n_subjects == 3
    assert table.group_columns == ("ethnicity", "gender")
    row = df[df["sample_id"] == "imgs/001_08.jpg"].iloc[0]
    assert (row["subject"], row["ethnicity"], row["gender"], row["eth"], row["sex"], row["shot"]) == ("001", "Black", "Female", "black", "f", "08")
    assert table.dataset["manifest_sha256"] == load_manifest(path).sha256
    assert table.dataset["location"] == "data-dir"


def test_remote_url_maps_prefixes(tiny):
    _, path = tiny
    m = load_manifest(path)
    assert m.remote_url("imgs/001_03.jpg") == "https://example.org/tiny/raw/imgs/001_03.jpg"
    assert m.remote_url("labels.csv") == "https://example.org/tiny/labels.csv"


def test_missing_file_stops_with_manifest_and_file_named(tiny):
    root, path = tiny
    (root / "imgs" / "002_08.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset(path, data_dir=root.parent, download=False)
    msg = str(e.value)
    assert "tiny.yaml" in msg and "imgs/002_08.jpg" in msg and "source.checksums" in msg


def test_checksum_mismatch_names_manifest_field_and_file(tiny):
    root, path = tiny
    (root / "imgs" / "003_03.jpg").write_bytes(b"tampered")
    with pytest.raises(ChecksumError) as e:
        load_dataset(path, data_dir=root.parent, download=False)
    msg = str(e.value)
    assert "tiny.yaml" in msg and "imgs/003_03.jpg" in msg and "source.checksums" in msg


def test_unknown_group_column(tmp_path):
    mdir = tmp_path / "m"; mdir.mkdir()
    path = _write_dataset(tmp_path / "d" / "tiny", mdir, groups_yaml="""
        groups:
          ethnicity:
            column: race
            values: {black: Black}
    """)
    with pytest.raises(ManifestError) as e:
        load_dataset(path, data_dir=tmp_path / "d")
    msg = str(e.value)
    assert "groups.ethnicity.column" in msg and "'race'" in msg and "tiny.yaml" in msg


def test_unknown_kept_column(tmp_path):
    mdir = tmp_path / "m"; mdir.mkdir()
    path = _write_dataset(tmp_path / "d" / "tiny", mdir)
    path.write_text(path.read_text().replace("keep: [id, eth, sex]", "keep: [id, eth, skin]"))
    with pytest.raises(ManifestError, match=r"labels.keep.*skin"):
        load_dataset(path, data_dir=tmp_path / "d")


def test_label_value_without_mapping_names_value_subject_and_field(tmp_path):
    mdir = tmp_path / "m"; mdir.mkdir()
    path = _write_dataset(tmp_path / "d" / "tiny", mdir, labels="id,eth,sex\n001,black,f\n002,asian,m\n003,white,f\n")
    with pytest.raises(ManifestError) as e:
        load_dataset(path, data_dir=tmp_path / "d")
    msg = str(e.value)
    assert "groups.ethnicity.values" in msg and "'asian'" in msg and "002" in msg and "asian: <label>" in msg


def test_subject_without_label_row(tmp_path):
    mdir = tmp_path / "m"; mdir.mkdir()
    path = _write_dataset(tmp_path / "d" / "tiny", mdir, labels="id,eth,sex\n001,black,f\n002,white,m\n")
    with pytest.raises(ManifestError, match=r"no row whose 'id' is '003'"):
        load_dataset(path, data_dir=tmp_path / "d")


def test_malformed_manifest_fields(tmp_path):
    mdir = tmp_path / "m"; mdir.mkdir()
    path = _write_dataset(tmp_path / "d" / "tiny", mdir)
    text = path.read_text()
    path.write_text(text.replace("(?P<subject>", "(?P<who>"))
    with pytest.raises(ManifestError, match=r"images.pattern.*subject"):
        load_manifest(path)
    path.write_text(text.replace("checksums: tiny.sha256", "checksums: nope.sha256"))
    with pytest.raises(ManifestError, match=r"source.checksums.*nope.sha256"):
        load_manifest(path)
    path.write_text("name: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(path)


def test_unknown_dataset_name_lists_known():
    with pytest.raises(ManifestError, match=r"known datasets: .*london"):
        load_manifest("no-such-dataset")


def test_download_from_file_mirror_verifies_and_resumes(tiny, tmp_path):
    root, path = tiny
    m = load_manifest(path)
    dest = tmp_path / "cache" / "tiny"
    sha = download_dataset(m, dest, base_url=root.as_uri() + "/")
    assert sha == dict(m.checksums)
    assert (dest / "imgs" / "001_03.jpg").read_bytes() == (root / "imgs" / "001_03.jpg").read_bytes()
    # a second download keeps verified files (resume) and still checks them
    (dest / "imgs" / "002_03.jpg").unlink()
    download_dataset(m, dest, base_url=root.as_uri() + "/")
    assert (dest / "imgs" / "002_03.jpg").is_file()
    # a source with different bytes is refused and nothing partial is left behind
    (root / "imgs" / "001_08.jpg").write_bytes(b"changed upstream")
    (dest / "imgs" / "001_08.jpg").unlink()
    with pytest.raises(ChecksumError, match="001_08.jpg"):
        download_dataset(m, dest, base_url=root.as_uri() + "/")
    assert not (dest / "imgs" / "001_08.jpg").exists()
    assert not list((dest / "imgs").glob(".part-*"))


def test_locate_order_env_mirror_then_cache(tiny, monkeypatch):
    root, path = tiny
    m = load_manifest(path)
    monkeypatch.setenv("FACE_AUDIT_MIRROR", str(root.parent))
    assert locate_dataset(m, download=False).how == "mirror"
    monkeypatch.setenv("FACE_AUDIT_DATA", str(root))
    assert locate_dataset(m, download=False).how == "FACE_AUDIT_DATA"
    monkeypatch.delenv("FACE_AUDIT_DATA")
    monkeypatch.delenv("FACE_AUDIT_MIRROR")
    with pytest.raises(DatasetError, match="datasets fetch tiny"):
        locate_dataset(m, download=False)
    # a URL mirror is a download source: files land in the cache, verified
    monkeypatch.setenv("FACE_AUDIT_MIRROR", root.parent.as_uri())
    loc = locate_dataset(m, download=True)
    assert loc.how == "download" and (loc.root / "labels.csv").is_file()
    monkeypatch.delenv("FACE_AUDIT_MIRROR")
    assert locate_dataset(m, download=False).how == "cache"


def test_real_london_manifest_matches_shared_copy(shared_dir):
    table = load_dataset("london", data_dir=shared_dir, download=False)
    df = table.data
    assert len(table) == 204 and table.n_subjects == 102
    assert set(df["expression"]) == {"neutral", "smiling"}
    assert (df.groupby("subject").size() == 2).all()
    counts = df.drop_duplicates("subject")["ethnicity"].value_counts().to_dict()
    assert counts == {"White": 69, "Black": 13, "West Asian": 10, "East Asian": 9, "East Asian/White": 1}
    assert df.drop_duplicates("subject")["gender"].value_counts().to_dict() == {"Male": 53, "Female": 49}
    assert set(df["face_eth"]) == {"white", "black", "east_asian", "west_asian", "east_asian/white"}


def test_subset_subjects_is_seeded_and_keeps_every_group(shared_dir):
    table = load_dataset("london", data_dir=shared_dir, download=False)
    a = table.subset_subjects(12, seed=3)
    b = table.subset_subjects(12, seed=3)
    assert a.n_subjects == 12 and list(a.data["sample_id"]) == list(b.data["sample_id"])
    assert set(a.data["ethnicity"]) == set(table.data["ethnicity"])


def test_real_fairface_and_lfw_manifests(shared_dir):
    ff = load_dataset("fairface", data_dir=shared_dir, download=False)
    assert len(ff) == 4000 and ff.n_subjects == 4000  # no identities: one person per image
    assert ff.data["race"].value_counts()["White"] == 775
    assert set(ff.data["gender_original"]) == {"Male", "Female"}
    lfw = load_dataset("lfw", data_dir=shared_dir, download=False)
    assert len(lfw) == 8945
    by_subject = lfw.data.drop_duplicates("subject")["gender"].value_counts().to_dict()
    assert by_subject == {"Male": 3232, "Female": 1099, "Unknown": 2}
    # a person's images all carry the person's label; the per-image list value is kept too
    assert (lfw.data.groupby("subject")["gender"].nunique() == 1).all()
    arafat = lfw.data[lfw.data["subject"] == "Yasser_Arafat"]
    assert set(arafat["gender"]) == {"Male"} and "missing" in set(arafat["lfw_gender_image"])


def test_derived_label_file_keeps_listed_rows_byte_for_byte():
    from audit.datasets.locate import keep_listed_rows

    published = b"file,age\r\nval/1.jpg,3-9\r\nval/9999.jpg,20-29\r\nval/2.jpg,50-59\r\n"
    assert keep_listed_rows(published, "file", {"val/1.jpg", "val/2.jpg"}) == b"file,age\r\nval/1.jpg,3-9\r\nval/2.jpg,50-59\r\n"
    with pytest.raises(ManifestError, match="no column 'name'"):
        keep_listed_rows(published, "name", set())


def test_fairface_label_file_is_a_row_filter_of_itself(shared_dir):
    """The shared label file is the published one cut to the listed images: filtering is a no-op."""
    from audit.datasets.locate import keep_listed_rows

    m = load_manifest("fairface")
    data = (shared_dir / "fairface" / "fairface_label_val.csv").read_bytes()
    assert keep_listed_rows(data, "file", set(m.checksums)) == data
    assert m.derived["fairface_label_val.csv"]["url"].endswith("/fairface_label_val.csv")
