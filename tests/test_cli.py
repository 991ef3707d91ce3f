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


# --------------------------------------------------------------------------- issue 12: CLI conventions
def _impostor_scores(tmp_path):
    """A scores file with impostor pairs only (each image its own person): FNMR cannot be measured."""
    rows = ["sample_a,sample_b,score,subject_a,subject_b,gender_a,gender_b"]
    ids = [f"s{i}" for i in range(8)]
    k = 0
    for a in range(8):
        for b in range(a + 1, 8):
            k += 1
            rows.append(f"{ids[a]},{ids[b]},{(k * 37 % 101) / 101:.4f},{ids[a]},{ids[b]},{'F' if a < 4 else 'M'},{'F' if b < 4 else 'M'}")
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[scores]\npath = "scores.csv"\ngroups = ["gender"]\n[thresholds]\ntarget_fmr = [0.1]\nfixed = [0.5]\n'
                   '[run]\nbootstrap = 0\n[output]\ndir = "out"\n')
    return cfg


def test_run_prints_every_threshold_and_no_mated_pairs(tmp_path, capsys):
    cfg = _impostor_scores(tmp_path)
    assert main(["--quiet", "run", str(cfg)]) == 0
    cap = capsys.readouterr()
    lines = [line for line in cap.out.splitlines() if line.startswith("  threshold ")]
    assert [line.split(":")[0] for line in lines] == ["  threshold FMR=1e-1", "  threshold fixed 0.5"]
    assert all("no mated pairs" in line for line in lines) and "nan" not in cap.out.lower()
    assert "  finding: " in cap.out
    assert cap.err == ""


def test_verbose_adds_timings(tmp_path, capsys):
    cfg = _impostor_scores(tmp_path)
    assert main(["--verbose", "run", str(cfg), "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "  timing: " in cap.out and "scores file" in cap.err


def test_run_needs_a_config_or_data(capsys):
    assert main(["run"]) == 2
    assert "--data FOLDER" in capsys.readouterr().err


def test_rekognition_is_one_backend_for_doctor_run_and_list(tmp_path, capsys, shared_dir):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[dataset]\nname = "london"\ndata_dir = "{shared_dir}"\n[backend]\nname = "rekognition"\n')
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown backend" not in err and "scores pairs" in err and "from_scores" in err
    assert main(["backends", "list"]) == 0
    assert "rekognition" in capsys.readouterr().out
    assert main(["backends", "doctor", "--backend", "rekognition"]) == 0
    assert "rekognition" in capsys.readouterr().out
    from audit.backends.doctor import doctor_report

    row = doctor_report().set_index("backend").loc["rekognition"]
    assert "not an embedding backend" in row["source"] or row["status"] == "missing package"


def test_help_imports_no_heavy_module():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, audit.cli; audit.cli.build_parser(only=''); "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'audit.gate', 'audit.verification.runner', 'audit.identification') if m in sys.modules))")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo).stdout.strip()
    assert out == "[]"
    # the full parser (what --help of a heavy command builds) still knows every command
    from audit.cli import build_parser

    assert "gate" in build_parser().format_help()


def test_dlib_weights_found_without_pkg_resources(monkeypatch):
    """face_recognition_models imports pkg_resources (setuptools), absent from Python 3.12+: the
    backend finds the weights without importing it, and says what to install when it must."""
    import importlib.util
    import sys

    pytest.importorskip("face_recognition_models")
    from audit.backends import dlib as dlib_backend
    from audit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # `import pkg_resources` now fails
    monkeypatch.delitem(sys.modules, "face_recognition_models", raising=False)
    folder = dlib_backend._models_folder()
    assert (folder / dlib_backend.DESCRIPTOR_FILE).is_file()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match="pip install setuptools"):
        dlib_backend._models_folder()
