"""The face-audit command: datasets, backends, and bad input exits 2 with a named field."""

from __future__ import annotations

import pytest

from audit.cli import main


def test_datasets_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "london" in out and "Face Research Lab London Set" in out and "CC BY 4.0" in out


def test_datasets_verify_real_copy(capsys, shared_dir):
    assert main(["datasets", "verify", "london", "--data-dir", str(shared_dir)]) == 0
    assert "all 205 files match london.yaml" in capsys.readouterr().out


def test_datasets_verify_missing_copy_exits_2(capsys, tmp_path):
    assert main(["datasets", "verify", "london", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "london.yaml" in err and "source.checksums" in err and "london_info.csv" in err


def test_bad_config_exits_2_naming_field(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dataset]\nname = "london"\n[backend]\nname = "dlib"\n[thresholds]\ntarget_fmr = [2]\n')
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "c.toml" in err and "thresholds.target_fmr" in err


def test_unknown_backend_exits_2(capsys, tmp_path, shared_dir):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[dataset]\nname = "london"\ndata_dir = "{shared_dir}"\n[backend]\nname = "no-such"\n')
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "no-such" in err and "dlib" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "face-audit" in capsys.readouterr().out
