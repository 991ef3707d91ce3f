"""The classifier audit end to end: vendor predictions file, a predictor on images, config errors, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.attributes.config import classify_config_from_dict, load_classify_config
from audit.attributes.predictors import PREDICTORS, AttributePredictor, Prediction, PredictorInfo
from audit.attributes.result import CLASSIFY_TABLES, read_classifier_result
from audit.attributes.runner import audit_predictions, crosstab, predict_images, run_classifier_audit
from audit.cli import main
from audit.errors import ConfigError, DataError
from audit.report.classify import render_classify_html


def _truth(tmp_path):
    s = pd.DataFrame({
        "sample_id": [f"im{i}.jpg" for i in range(8)],
        "subject": ["a", "a", "b", "b", "c", "c", "d", "d"],
        "gender": ["Female"] * 4 + ["Male"] * 4,
        "race": ["Black", "Black", "White", "White", "Black", "Black", "White", "<b>White</b>"],
    })
    s.loc[7, "race"] = "White"
    s.to_csv(tmp_path / "truth.csv", index=False)
    v = pd.DataFrame({"sample_id": [f"im{i}.jpg" for i in range(7)],  # im7 missing: not classified
                      "Gender": ["M", "F", "F", "F", "M", "M", "M"]})
    v.to_csv(tmp_path / "vendor.csv", index=False)
    return s


def _config(tmp_path, **over):
    raw = {
        "title": "Vendor <script>x</script>",
        "predictions": {"path": "vendor.csv", "samples": "truth.csv", "columns": {"gender": "Gender"}, "values": {"M": "Male", "F": "Female"}},
        "classify": {"attributes": ["gender"], "groupings": [["race"]], "crosstab": ["race", "gender"]},
        "run": {"bootstrap": 200, "progress": False},
        "output": {"dir": "out"},
    }
    raw.update(over)
    return classify_config_from_dict(raw, path=tmp_path / "c.toml")


def test_vendor_file_end_to_end(tmp_path):
    _truth(tmp_path)
    run = run_classifier_audit(_config(tmp_path))
    res = run.result
    e = res.errors.set_index(["grouping", "group"])
    # by hand: a: F->M wrong, F right; b: F, F right; c: M wrong... c predicted M, M right; d: M right, im7 missing
    assert e.loc[("All", "All"), ["classified", "errors", "failed"]].tolist() == [7, 1, 1]
    assert e.loc[("race", "Black"), ["classified", "errors"]].tolist() == [4, 1]
    assert e.loc[("race+gender", "Black / Female"), "error_rate"] == pytest.approx(0.5)
    assert e.loc[("race", "Black"), "ci_method"].startswith("subject bootstrap")
    assert list(res.crosstab.columns) == CLASSIFY_TABLES["crosstab"]
    back = read_classifier_result(run.output_dir / "results.json")
    pd.testing.assert_frame_equal(back.errors, res.errors, check_dtype=False)
    assert (run.output_dir / "tables" / "confusion.csv").is_file()
    html = (run.output_dir / "index.html").read_text()
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "Gender Shades" in html and "Black Female" in html
    assert json.loads((run.output_dir / "results.json").read_text())["schema"] == "face-audit/classify/1"


def test_prediction_for_an_unknown_image_is_an_error(tmp_path):
    _truth(tmp_path)
    pd.DataFrame({"sample_id": ["nope.jpg"], "Gender": ["M"]}).to_csv(tmp_path / "vendor.csv", index=False)
    with pytest.raises(DataError, match="nope.jpg"):
        run_classifier_audit(_config(tmp_path), write=False)


def test_missing_prediction_column_names_the_fix(tmp_path):
    _truth(tmp_path)
    cfg = _config(tmp_path, predictions={"path": "vendor.csv", "samples": "truth.csv"})
    with pytest.raises(DataError, match="predictions.columns"):
        run_classifier_audit(cfg, write=False)


@pytest.mark.parametrize("raw,field", [
    ({"classify": {"attributes": "gender"}, "predictions": {"path": "v.csv", "samples": "t.csv"}}, "classify.attributes"),
    ({"predictions": {"path": "v.csv", "samples": "t.csv"}, "classifier": {"name": "x"}, "dataset": {"name": "f"}}, "classifier"),
    ({"predictions": {"path": "v.csv"}}, "dataset"),
    ({"predictions": {"path": "v.csv", "samples": "t.csv"}, "run": {"interval": "bayes"}}, "run.interval"),
    ({"predictions": {"path": "v.csv", "samples": "t.csv", "colour": 1}}, "predictions.colour"),
])
def test_config_errors_name_the_field(tmp_path, raw, field):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        classify_config_from_dict(raw, path=tmp_path / "c.toml")


class _Fake(AttributePredictor):
    """Predicts from the mean red value: red images are 'Female', else 'Male'; black images have no face."""

    name = "fake"

    def __init__(self):
        self.calls = 0

    def load(self):
        pass

    def info(self):
        return PredictorInfo("fake", "mean red", "1", {"w": "0" * 64})

    def predict(self, rgb):
        self.calls += 1
        if rgb.max() == 0:
            return Prediction("no_face")
        return Prediction("ok", gender="Female" if rgb[..., 0].mean() > 128 else "Male", gender_confidence=0.9, age=30.0, n_faces=1)


def test_predict_images_statuses_and_cache(tmp_path):
    colours = [(200, 0, 0), (0, 0, 200), (0, 0, 0)]
    rows = []
    for i, c in enumerate(colours):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), c).save(p)
        rows.append({"sample_id": p.name, "path": str(p), "sha256": f"sha{i}"})
    (tmp_path / "bad.png").write_bytes(b"not an image")
    rows.append({"sample_id": "bad.png", "path": str(tmp_path / "bad.png"), "sha256": "shabad"})
    fake = _Fake()
    out, new, cached = predict_images(pd.DataFrame(rows), fake, cache_root=tmp_path / "cache", progress=False)
    assert out["status"].tolist() == ["ok", "ok", "no_face", "unreadable"]
    assert out["predicted_gender"].tolist()[:2] == ["Female", "Male"]
    assert (new, cached) == (4, 0)
    out2, new2, cached2 = predict_images(pd.DataFrame(rows), fake, cache_root=tmp_path / "cache", progress=False)
    assert (new2, cached2) == (0, 4) and fake.calls == 3
    assert out2["status"].tolist() == out["status"].tolist()


def test_age_bands_from_numeric_predictions():
    s = pd.DataFrame({"sample_id": list("abc"), "age": ["20-29", "30-39", "more than 70"],
                      "predicted_age": [25.0, 25.0, 80.0], "race": ["x", "y", "x"]})
    r = audit_predictions(s, attributes=["age"], groupings=[["race"]], bootstrap=0)
    assert r.samples["predicted_age"].tolist() == ["20-29", "20-29", "more than 70"]
    assert r.errors.loc[r.errors["grouping"] == "All", "errors"].item() == 1


def test_crosstab_and_report_for_skin_tone():
    s = pd.DataFrame({"sample_id": list("abcd"), "subject": list("aabc"), "gender": ["Female", "Female", "Male", "Male"],
                      "predicted_gender": ["Female", "Male", "Male", "Male"], "skin_tone": ["ITA I", "ITA I", "ITA V", "ITA V"],
                      "race": ["White", "White", "Black", "White"]})
    ct = crosstab(s, "skin_tone", "race")
    assert ct[["row", "column", "images", "subjects"]].values.tolist() == [["ITA I", "White", 2, 1], ["ITA V", "Black", 1, 1], ["ITA V", "White", 1, 1]]
    r = audit_predictions(s, groupings=[["skin_tone"]], crosstab_columns=("skin_tone", "race"), bootstrap=50)
    html = render_classify_html(r)
    assert "Howard et al. 2021" in html and "ITA V" in html


def test_cli_classify(tmp_path, capsys):
    _truth(tmp_path)
    (tmp_path / "c.toml").write_text(
        'title = "cli"\n[predictions]\npath = "vendor.csv"\nsamples = "truth.csv"\ncolumns = { gender = "Gender" }\n'
        'values = { M = "Male", F = "Female" }\n[classify]\ngroupings = [["race"]]\n[run]\nbootstrap = 50\n[output]\ndir = "o"\n')
    assert main(["classify", str(tmp_path / "c.toml"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "gender: error rate 14.29% (1 of 7; 1 not classified)" in out
    assert (tmp_path / "o" / "index.html").is_file()
    assert main(["classify", str(tmp_path / "missing.toml")]) == 2
