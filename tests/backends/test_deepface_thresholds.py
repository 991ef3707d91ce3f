"""deepface's own decision threshold is recorded for every (model, distance_metric), without weights."""

from __future__ import annotations

import pytest

pytest.importorskip("deepface", reason="the deepface extra is not installed")

from deepface.modules.verification import find_threshold  # noqa: E402

from audit.backends.deepface import (  # noqa: E402
    DISTANCE_METRICS,
    DeepFaceBackend,
    _deepface_names,
    deepface_default_threshold,
    deepface_threshold_table,
)
from audit.errors import BackendError  # noqa: E402

MODELS = _deepface_names()[0]


@pytest.fixture(autouse=True)
def _empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))  # no weights anywhere


def test_every_model_offers_a_threshold_for_every_metric():
    assert {"VGG-Face", "Facenet", "Facenet512", "OpenFace", "DeepFace", "DeepID", "ArcFace", "Dlib", "SFace",
            "GhostFaceNet", "Buffalo_L"} <= set(MODELS)  # fmt: skip
    for model in MODELS:
        for metric in DISTANCE_METRICS:
            t = DeepFaceBackend(model=model, distance_metric=metric).default_threshold()  # loads nothing
            raw = float(find_threshold(model, metric))
            assert t.deepface_value == raw
            assert t.model == model and t.distance_metric == metric
            if metric == "cosine":
                assert t.metric == "cosine" and t.threshold == pytest.approx(1.0 - raw)
                assert "cosine similarity 1 -" in t.source
            else:
                assert t.metric == "euclidean" and t.threshold == raw
            assert "find_threshold" in t.source and repr(model) in t.source


def test_backend_records_the_same_threshold_it_reports(monkeypatch):
    backend = DeepFaceBackend(model="ArcFace", distance_metric="cosine")
    threshold, source = backend._default_threshold()  # what load() puts into BackendInfo
    assert threshold == pytest.approx(0.32) and source == backend.default_threshold().source


def test_hand_checked_values():
    assert deepface_default_threshold("Dlib", "cosine").threshold == pytest.approx(0.93)
    assert deepface_default_threshold("Dlib", "euclidean").threshold == 0.6
    assert deepface_default_threshold("ArcFace", "euclidean_l2").threshold == 1.13
    assert deepface_default_threshold("SFace", "cosine").threshold == pytest.approx(1 - 0.593)


def test_unknown_pairs_are_errors():
    with pytest.raises(BackendError, match="distance_metric"):
        deepface_default_threshold("Dlib", "angular-ish")
    with pytest.raises(BackendError, match="no tuned threshold"):
        deepface_default_threshold("NoSuchModel", "cosine")


def test_threshold_table():
    df = deepface_threshold_table()
    assert list(df.columns) == ["model", "distance_metric", "deepface_value", "metric", "threshold", "source"]
    assert len(df) == len(MODELS) * len(DISTANCE_METRICS)
    assert df[["model", "distance_metric"]].drop_duplicates().shape[0] == len(df)
    dlib = df[(df.model == "Dlib") & (df.distance_metric == "cosine")].iloc[0]
    assert dlib.threshold == pytest.approx(0.93)
    assert list(deepface_threshold_table(["Dlib"]).distance_metric) == list(DISTANCE_METRICS)
