"""Bad audit configs and command-line values: exit 2 before any image is read, with a message
naming the file and the field (or the option)."""

from __future__ import annotations

import pytest

from conftest import cli, config_text

# (case id) -> (text replacing a line / extra TOML, the field the message must name)
REPLACE = {
    "workers_zero": ("workers = 1", "workers = 0", "run.workers"),
    "workers_negative": ("workers = 1", "workers = -3", "run.workers"),
    "workers_huge": ("workers = 1", "workers = 1000000", "run.workers"),
    "workers_bool": ("workers = 1", "workers = true", "run.workers"),
    "workers_float": ("workers = 1", "workers = 1.5", "run.workers"),
    "workers_string": ("workers = 1", 'workers = "2"', "run.workers"),
    "bootstrap_negative": ("bootstrap = 0", "bootstrap = -1", "run.bootstrap"),
    "bootstrap_huge": ("bootstrap = 0", "bootstrap = 1000000000", "run.bootstrap"),
    "bootstrap_string": ("bootstrap = 0", 'bootstrap = "many"', "run.bootstrap"),
    "seed_negative": ("bootstrap = 0", "bootstrap = 0\nseed = -1", "run.seed"),
    "seed_float": ("bootstrap = 0", "bootstrap = 0\nseed = 0.5", "run.seed"),
    "batch_zero": ("bootstrap = 0", "bootstrap = 0\nbatch_size = 0", "run.batch_size"),
    "batch_huge": ("bootstrap = 0", "bootstrap = 0\nbatch_size = 10000000", "run.batch_size"),
    "progress_string": ("progress = false", 'progress = "no"', "run.progress"),
    "interval_unknown": ("bootstrap = 0", 'bootstrap = 0\ninterval = "bayes"', "run.interval"),
    "run_unknown_key": ("bootstrap = 0", "bootstrap = 0\nthreads = 2", "run.threads"),
    "target_zero": ("target_fmr = [0.1]", "target_fmr = [0]", "thresholds.target_fmr"),
    "target_above_one": ("target_fmr = [0.1]", "target_fmr = [1.5]", "thresholds.target_fmr"),
    "target_negative": ("target_fmr = [0.1]", "target_fmr = [-0.1]", "thresholds.target_fmr"),
    "target_nan": ("target_fmr = [0.1]", "target_fmr = [nan]", "thresholds.target_fmr"),
    "target_inf": ("target_fmr = [0.1]", "target_fmr = [inf]", "thresholds.target_fmr"),
    "target_string": ("target_fmr = [0.1]", 'target_fmr = ["1e-3"]', "thresholds.target_fmr"),
    "target_scalar": ("target_fmr = [0.1]", "target_fmr = 0.1", "thresholds.target_fmr"),
    "fixed_nan": ("backend_default = false", "backend_default = false\nfixed = [nan]", "thresholds.fixed"),
    "fixed_string": ("backend_default = false", 'backend_default = false\nfixed = ["0.5"]', "thresholds.fixed"),
    "no_threshold": ("target_fmr = [0.1]", "target_fmr = []", "thresholds"),
    "backend_default_string": ("backend_default = false", 'backend_default = "no"', "thresholds.backend_default"),
    "thresholds_unknown": ("backend_default = false", "backend_default = false\ntarget_fnmr = [0.1]", "thresholds.target_fnmr"),
    "subjects_zero": ("[dataset]", "[dataset]\nsubjects = 0", "dataset.subjects"),
    "subjects_one": ("[dataset]", "[dataset]\nsubjects = 1", "dataset.subjects"),
    "subjects_string": ("[dataset]", '[dataset]\nsubjects = "10"', "dataset.subjects"),
    "dataset_unknown_key": ("[dataset]", '[dataset]\nmanifesto = "x"', "dataset.manifesto"),
    "groupings_bad": ("[dataset]", "[dataset]\ngroupings = 3", "dataset.groupings"),
    "groupings_unknown_column": ("[dataset]", '[dataset]\ngroupings = [["race"]]', "dataset.groupings"),
    "backend_name_missing": ('name = "quadrant-colour"', "", "backend.name"),
    "backend_options_not_table": ('name = "quadrant-colour"', 'name = "quadrant-colour"\noptions = 3', "backend.options"),
    "backend_unknown": ('name = "quadrant-colour"', 'name = "no-such-backend"', "no-such-backend"),
    "output_dir_not_string": ('[output]', '[output]\ninclude_face_images = "yes"', "output.include_face_images"),
    "top_unknown": ('title = "hardening"', 'title = "hardening"\ntitel = "x"', "titel"),
    "title_not_string": ('title = "hardening"', "title = 5", "title"),
    "protocol_impostors_bad": ('[output]', '[protocol]\nimpostors = "some"\n[output]', "protocol.impostors"),
    "protocol_sample_zero": ('[output]', '[protocol]\nsample_impostors = 0\n[output]', "protocol.sample_impostors"),
    "protocol_probe_only": ('[output]', '[protocol]\nprobe = { shot = "1" }\n[output]', "protocol.reference"),
    "disparity_alpha_big": ('[output]', '[disparity]\nfdr_alpha = 2\n[output]', "disparity.fdr_alpha"),
    "disparity_alpha_nan": ('[output]', '[disparity]\ngarbe_alpha = nan\n[output]', "disparity.garbe_alpha"),
    "scores_and_dataset": ('[output]', '[scores]\npath = "x.csv"\ngroups = ["g"]\n[output]', "scores"),
}


def _config(tiny, fake_backend) -> tuple:
    out, cache = tiny["tmp"] / "out", tiny["tmp"] / "cache"
    return config_text(tiny["manifest"], out, cache), out, cache


@pytest.mark.parametrize("case", sorted(REPLACE))
def test_bad_config_field_is_named_before_any_work(case, tiny, fake_backend, capsys):
    text, out, cache = _config(tiny, fake_backend)
    old, new, field = REPLACE[case]
    assert old in text
    cfg = tiny["tmp"] / "bad.toml"
    cfg.write_text(text.replace(old, new, 1))
    assert cli("run", cfg, "--data-dir", tiny["data"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and field in err, err
    if case != "backend_unknown":
        assert "bad.toml" in err, err
    assert not (cache / "embeddings").exists() or not any((cache / "embeddings").iterdir())  # nothing was embedded
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("raw,expected", [
    (b"", "missing"),
    (b"\xff\xfe\x00\x00binary", "not UTF-8"),
    (b"[dataset\nname = 1", "not valid TOML"),
    (b"title = 'a'\ntitle = 'b'\n", "not valid TOML"),
    (b"\x00\x01\x02", "not valid TOML"),
    (b"[[dataset]]\nname = 'x'\n", "dataset"),
])
def test_config_file_that_is_not_a_config(raw, expected, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(raw)
    assert cli("run", cfg) == 2
    err = capsys.readouterr().err
    assert "c.toml" in err and expected in err and "Traceback" not in err, err


def test_config_that_is_a_folder_or_absent(tmp_path, capsys):
    assert cli("run", tmp_path) == 2
    assert "is a folder" in capsys.readouterr().err
    assert cli("run", tmp_path / "absent.toml") == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value,expected", [
    ("--subjects", "0", "--subjects"),
    ("--subjects", "1", "--subjects"),
    ("--subjects", "-5", "--subjects"),
    ("--workers", "0", "--workers"),
    ("--workers", "-1", "--workers"),
])
def test_bad_command_line_numbers(flag, value, expected, tiny, fake_backend, capsys):
    text, out, cache = _config(tiny, fake_backend)
    cfg = tiny["tmp"] / "ok.toml"
    cfg.write_text(text)
    assert cli("run", cfg, "--data-dir", tiny["data"], flag, value) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert not (cache / "embeddings").exists()


def test_output_folder_that_is_a_file_fails_before_work(tiny, fake_backend, capsys):
    text, out, cache = _config(tiny, fake_backend)
    cfg = tiny["tmp"] / "ok.toml"
    cfg.write_text(text)
    out.write_text("I am a file")
    assert cli("run", cfg, "--data-dir", tiny["data"]) == 2
    assert "is a file" in capsys.readouterr().err and not (cache / "embeddings").exists()
    out.unlink()
    parent_file = tiny["tmp"] / "plain"
    parent_file.write_text("x")
    assert cli("run", cfg, "--data-dir", tiny["data"], "--output", parent_file / "sub") == 2
    assert "is a file" in capsys.readouterr().err


def test_cache_folder_that_is_a_file(tiny, fake_backend, capsys):
    text, out, cache = _config(tiny, fake_backend)
    cache.write_text("x")
    cfg = tiny["tmp"] / "ok.toml"
    cfg.write_text(text)
    assert cli("run", cfg, "--data-dir", tiny["data"]) == 2
    assert "is a file" in capsys.readouterr().err
