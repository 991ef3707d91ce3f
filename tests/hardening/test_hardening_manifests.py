"""Bad manifests and checksum lists: each exits 2 with a message naming the manifest (or the
checksums file) and the field; none reads, writes or fetches outside its folder."""

from __future__ import annotations

import copy
import hashlib
import os
import time

import pytest
import yaml

from conftest import MANIFEST_YAML, cli, write_checksums

BASE = yaml.safe_load(MANIFEST_YAML)


def _set(d: dict, dotted: str, value) -> dict:
    d = copy.deepcopy(d)
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur[k]
    if value is _DELETE:
        del cur[keys[-1]]
    else:
        cur[keys[-1]] = value
    return d


_DELETE = object()

# (case id) -> (mutated manifest dict, text expected in the message)
DICT_CASES = {
    # misspelt or unknown keys, at every level
    "top_misspelt_labels": (_set(BASE, "lables", {"file": "labels.csv"}), "lables"),
    "top_unknown": (_set(BASE, "extra", 1), "'extra'"),
    "source_misspelt": (_set(BASE, "source.checksum", "tiny.sha256"), "source.checksum"),
    "images_misspelt": (_set(BASE, "images.globs", ["img/*.png"]), "images.globs"),
    "labels_misspelt": (_set(BASE, "labels.kee", "sid"), "labels.kee"),
    "group_misspelt": (_set(BASE, "groups.gender.colum", "sex"), "groups.gender.colum"),
    "protocol_misspelt": (_set(BASE, "protocol.grouping", [["gender"]]), "protocol.grouping"),
    "lists_misspelt": (_set(BASE, "labels", {"lists": {"column": "sex", "files": {}, "by_subjekt": True}}), "by_subjekt"),
    # names that would name folders outside the cache
    "name_dotdot": (_set(BASE, "name", "../../../x"), "field 'name'"),
    "name_absolute": (_set(BASE, "name", "/tmp/x"), "field 'name'"),
    "name_slash": (_set(BASE, "name", "a/b"), "field 'name'"),
    "name_empty": (_set(BASE, "name", ""), "field 'name'"),
    "name_too_long": (_set(BASE, "name", "x" * 100), "field 'name'"),
    "name_backslash": (_set(BASE, "name", "..\\x"), "field 'name'"),
    "name_not_string": (_set(BASE, "name", 5), "name"),
    "name_missing": (_set(BASE, "name", _DELETE), "name"),
    # checksums file outside the manifest folder
    "checksums_dotdot": (_set(BASE, "source.checksums", "../../etc/passwd"), "source.checksums"),
    "checksums_absolute": (_set(BASE, "source.checksums", "/etc/passwd"), "source.checksums"),
    "checksums_missing_file": (_set(BASE, "source.checksums", "nope.sha256"), "source.checksums"),
    "checksums_not_string": (_set(BASE, "source.checksums", ["a"]), "source.checksums"),
    # globs and patterns
    "glob_dotdot": (_set(BASE, "images.glob", ["../*.png"]), "images.glob"),
    "glob_absolute": (_set(BASE, "images.glob", ["/etc/*"]), "images.glob"),
    "glob_empty_list": (_set(BASE, "images.glob", []), "images.glob"),
    "glob_not_strings": (_set(BASE, "images.glob", [1, 2]), "images.glob"),
    "pattern_invalid": (_set(BASE, "images.pattern", "(unclosed"), "images.pattern"),
    "pattern_no_subject": (_set(BASE, "images.pattern", "^img/(?P<who>s\\d)_\\d\\.png$"), "images.pattern"),
    "pattern_nested_plus": (_set(BASE, "images.pattern", "^(?P<subject>(a+)+)$"), "images.pattern"),
    "pattern_nested_star": (_set(BASE, "images.pattern", "^(?P<subject>(.*)*)x$"), "images.pattern"),
    "pattern_alternation_star": (_set(BASE, "images.pattern", "^(?P<subject>(a|aa)*)b$"), "images.pattern"),
    "pattern_words": (_set(BASE, "images.pattern", "^(?P<subject>(\\w+\\s?)+)$"), "images.pattern"),
    "pattern_bounded_nested": (_set(BASE, "images.pattern", "^(?P<subject>(.*a){20})$"), "images.pattern"),
    "pattern_too_long": (_set(BASE, "images.pattern", "(?P<subject>" + "a" * 2000 + ")"), "images.pattern"),
    "pattern_not_string": (_set(BASE, "images.pattern", 7), "images.pattern"),
    # labels
    "labels_file_unlisted": (_set(BASE, "labels.file", "other.csv"), "labels.file"),
    "labels_file_not_string": (_set(BASE, "labels.file", ["labels.csv"]), "labels.file"),
    "labels_key_missing": (_set(BASE, "labels.key", _DELETE), "labels.key"),
    "labels_keep_not_list": (_set(BASE, "labels.keep", "sex"), "labels.keep"),
    # groups and value maps
    "groups_empty": (_set(BASE, "groups", {}), "groups"),
    "groups_not_mapping": (_set(BASE, "groups", ["gender"]), "groups"),
    "group_spec_not_mapping": (_set(BASE, "groups.gender", "sex"), "groups.gender"),
    "group_values_list": (_set(BASE, "groups.gender.values", ["f", "m"]), "groups.gender.values"),
    "group_value_is_list": (_set(BASE, "groups.gender.values", {"f": ["Female"], "m": "Male"}), "groups.gender.values"),
    "group_value_is_mapping": (_set(BASE, "groups.gender.values", {"f": {"x": 1}, "m": "Male"}), "groups.gender.values"),
    "group_value_is_null": (_set(BASE, "groups.gender.values", {"f": None, "m": "Male"}), "groups.gender.values"),
    # protocol
    "protocol_kind_unknown": (_set(BASE, "protocol.kind", "pairs_please"), "protocol.kind"),
    "protocol_grouping_unknown": (_set(BASE, "protocol.groupings", [["race"]]), "protocol.groupings"),
    "protocol_groupings_not_list": (_set(BASE, "protocol.groupings", "gender"), "protocol.groupings"),
    "protocol_not_mapping": (_set(BASE, "protocol", [1]), "protocol"),
    "schema_2": (_set(BASE, "schema", 2), "schema"),
    "source_missing": (_set(BASE, "source", _DELETE), "source"),
    "images_not_mapping": (_set(BASE, "images", "img/*.png"), "images"),
}

TABLE_CASES_group_column_unknown = (_set(BASE, "groups.gender.column", "nope"), "groups.gender.column")
TABLE_CASES_group_value_unmapped = (_set(BASE, "groups.gender.values", {"f": "Female"}), "groups.gender.values")
TABLE_CASES_labels_keep_unknown = (_set(BASE, "labels.keep", ["nope"]), "labels.keep")
TABLE_CASES_labels_key_wrong_column = (_set(BASE, "labels.key", "nope"), "labels.key")
# found when the table is built from the files (the label file's columns and values)
TABLE_CASES = {k[len("TABLE_CASES_"):]: v for k, v in dict(globals()).items() if k.startswith("TABLE_CASES_")}

TEXT_CASES = {
    "yaml_alias": ("name: &n tiny\ntitle: *n\n" + MANIFEST_YAML.split("\n", 1)[1], "alias"),
    "yaml_alias_bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                        "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n" + MANIFEST_YAML, "alias"),
    "yaml_invalid": ("name: tiny\n  bad: [indent\n", "not valid YAML"),
    "yaml_top_list": ("- a\n- b\n", "top level"),
    "yaml_python_tag": ("!!python/object/apply:os.system ['true']\n", "YAML"),
    "yaml_empty": ("", "top level"),
}


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_bad_manifest_field_found_when_building_the_table(case, tiny):
    from audit.datasets import load_dataset
    from audit.errors import ManifestError

    data, expected = TABLE_CASES[case]
    tiny["manifest"].write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError) as info:
        load_dataset(tiny["manifest"], data_dir=tiny["data"], download=False)
    assert "tiny.yaml" in str(info.value) and expected in str(info.value)


def _verify(tiny, capsys) -> tuple[int, str]:
    code = cli("datasets", "verify", tiny["manifest"], "--data-dir", tiny["data"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(DICT_CASES))
def test_bad_manifest_field_is_named(case, tiny, capsys):
    data, expected = DICT_CASES[case]
    tiny["manifest"].write_text(yaml.safe_dump(data, sort_keys=False))
    code, err = _verify(tiny, capsys)
    assert code == 2, err
    assert "Traceback" not in err and str(tiny["manifest"].name) in err and expected in err, err
    assert "root:x:0:0" not in err  # never echo the content of a file outside the folder


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_bad_manifest_text_is_refused(case, tiny, capsys):
    text, expected = TEXT_CASES[case]
    tiny["manifest"].write_text(text)
    t0 = time.perf_counter()
    code, err = _verify(tiny, capsys)
    assert code == 2 and expected in err and str(tiny["manifest"].name) in err, err
    assert time.perf_counter() - t0 < 10


CHECKSUM_CASES = {
    "absolute_path": ("{sha}  /etc/passwd\n", "/etc/passwd"),
    "dotdot_path": ("{sha}  ../../etc/passwd\n", "../../etc/passwd"),
    "dot_segment": ("{sha}  ./img/s1_1.png\n", "./img"),
    "inner_dotdot": ("{sha}  img/../../x\n", "img/../../x"),
    "backslash": ("{sha}  img\\s1_1.png\n", "img"),
    "drive_letter": ("{sha}  C:/x.png\n", "C:/x.png"),
    "double_slash": ("{sha}  img//s1_1.png\n", "img//s1_1.png"),
    "conflicting_duplicate": ("{sha}  img/s1_1.png\n{other}  img/s1_1.png\n", "different sha256"),
    "not_sha256sum_format": ("this is not a checksum line\n", "sha256sum format"),
    "short_hash": ("abc123  img/s1_1.png\n", "sha256sum format"),
    "empty_list": ("# nothing\n", "lists no files"),
}


@pytest.mark.parametrize("case", sorted(CHECKSUM_CASES))
def test_bad_checksums_file_is_refused_without_reading_outside(case, tiny, capsys):
    line, expected = CHECKSUM_CASES[case]
    sums = tiny["mdir"] / "tiny.sha256"
    body = line.format(sha="a" * 64, other="b" * 64)
    sums.write_text(body if case == "empty_list" else sums.read_text() + body)
    code, err = _verify(tiny, capsys)
    assert code == 2 and "tiny.sha256" in err and expected in err, err
    assert "root:x:0:0" not in err


def test_non_utf8_checksums_file(tiny, capsys):
    (tiny["mdir"] / "tiny.sha256").write_bytes(b"\xff\xfe\x00garbage")
    code, err = _verify(tiny, capsys)
    assert code == 2 and "not UTF-8" in err


def test_symlink_out_of_the_data_folder_is_refused(tiny, capsys):
    outside = tiny["tmp"] / "secret.png"
    outside.write_bytes((tiny["root"] / "img" / "s1_1.png").read_bytes())
    target = tiny["root"] / "img" / "s1_1.png"
    target.unlink()
    target.symlink_to(outside)
    code, err = _verify(tiny, capsys)
    assert code == 2 and "outside the dataset folder" in err and "img/s1_1.png" in err


def test_unreadable_label_list_and_changed_file(tiny, capsys):
    (tiny["root"] / "img" / "s2_1.png").write_bytes(b"changed")
    code, err = _verify(tiny, capsys)
    assert code == 2 and "img/s2_1.png" in err and "source.checksums" in err


def test_manifest_name_argument_must_be_plain(tiny, capsys):
    for name in ("../../../x", "/etc/passwd", "a/b"):
        assert cli("datasets", "verify", name) == 2
        assert "dataset name" in capsys.readouterr().err


def test_manifest_path_that_is_a_folder(tiny, capsys):
    folder = tiny["tmp"] / "dir.yaml"
    folder.mkdir()
    assert cli("datasets", "verify", folder) == 2
    assert "dir.yaml" in capsys.readouterr().err


FETCH_URL_CASES = {
    "file_base_url": ("file:///etc/", "scheme 'file'"),
    "http_base_url": ("http://example.invalid/", "scheme 'http'"),
    "ftp_base_url": ("ftp://example.invalid/", "scheme 'ftp'"),
    "no_scheme": ("example.invalid/", "scheme 'none'"),
    "javascript": ("javascript:alert(1)//", "not allowed"),
}


@pytest.mark.parametrize("case", sorted(FETCH_URL_CASES))
def test_fetch_refuses_manifest_urls_that_are_not_https(case, tiny, capsys, monkeypatch):
    url, expected = FETCH_URL_CASES[case]
    monkeypatch.delenv("FACE_AUDIT_ALLOW_INSECURE_URLS", raising=False)
    tiny["manifest"].write_text(yaml.safe_dump(_set(BASE, "source.base_url", url)))
    dest = tiny["tmp"] / "dest"
    assert cli("datasets", "fetch", tiny["manifest"], "--dest", dest) == 2
    err = capsys.readouterr().err
    assert expected in err and "img/" in err
    assert not any(p.is_file() for p in dest.rglob("*")) if dest.exists() else True


def test_fetch_writes_only_under_dest(tiny, capsys, monkeypatch):
    """A mirror given by the user (file://) is allowed; files land under --dest and nowhere else,
    and a symlinked folder inside --dest that leads out is refused."""
    dest = tiny["tmp"] / "dest"
    assert cli("datasets", "fetch", tiny["manifest"], "--dest", dest, "--base-url", tiny["root"].as_uri() + "/") == 0
    capsys.readouterr()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png")) == sorted(
        p.relative_to(tiny["root"]).as_posix() for p in tiny["root"].rglob("*.png"))
    dest2 = tiny["tmp"] / "dest2"
    dest2.mkdir()
    elsewhere = tiny["tmp"] / "elsewhere"
    elsewhere.mkdir()
    (dest2 / "img").symlink_to(elsewhere)
    assert cli("datasets", "fetch", tiny["manifest"], "--dest", dest2, "--base-url", tiny["root"].as_uri() + "/") == 2
    assert "outside the dataset folder" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_dest_that_is_a_file(tiny, capsys):
    f = tiny["tmp"] / "file"
    f.write_text("x")
    assert cli("datasets", "fetch", tiny["manifest"], "--dest", f) == 2
    assert "is a file" in capsys.readouterr().err


def test_duplicate_identical_checksum_lines_are_fine(tiny, capsys):
    sums = tiny["mdir"] / "tiny.sha256"
    first = sums.read_text().splitlines()[0]
    sums.write_text(sums.read_text() + first + "\n")
    assert cli("datasets", "verify", tiny["manifest"], "--data-dir", tiny["data"]) == 0


def test_unlisted_image_is_an_error_naming_it(tiny, capsys, fake_backend):
    (tiny["root"] / "img" / "s7_1.png").write_bytes(b"x")
    from audit.datasets import load_dataset

    from audit.errors import ManifestError

    with pytest.raises(ManifestError, match="s7_1.png"):
        load_dataset(tiny["manifest"], data_dir=tiny["data"], download=False)
