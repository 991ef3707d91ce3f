"""Config validation: every error names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.verification.config import config_from_dict, load_config
from audit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_examples_load_and_resolve_paths_against_the_config_file():
    for name in ("london-dlib.toml", "london-deepface-dlib.toml"):
        cfg = load_config(REPO / "examples" / name)
        assert cfg.dataset.name == "london"
        assert cfg.output_dir.parent == REPO / "reports"
        assert cfg.thresholds.target_fmr == (1e-2, 1e-3)
        assert cfg.dataset.groupings == (("ethnicity",), ("gender",), ("ethnicity", "gender"))


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"backend": {"name": "dlib"}}, "dataset.name"),
        ({"dataset": {"name": "london"}}, "backend.name"),
        ({"dataset": {"name": "london"}, "backend": {"name": "dlib"}, "thresholds": {"target_fmr": [0.0]}}, "thresholds.target_fmr"),
        ({"dataset": {"name": "london"}, "backend": {"name": "dlib"}, "thresholds": {"target_fmr": ["1e-3"]}}, "thresholds.target_fmr"),
        ({"dataset": {"name": "london"}, "backend": {"name": "dlib"}, "run": {"workers": 0}}, "run.workers"),
        ({"dataset": {"name": "london", "subject": 3}, "backend": {"name": "dlib"}}, "dataset.subject"),
        ({"dataset": {"name": "london"}, "backend": {"name": "dlib"}, "extra": 1}, "extra"),
        ({"dataset": {"name": "london", "groupings": "ethnicity"}, "backend": {"name": "dlib"}}, "dataset.groupings"),
        ({"dataset": {"name": "london"}, "backend": {"name": "dlib"}, "thresholds": {"target_fmr": [], "backend_default": False}}, "thresholds"),
    ],
)
def test_bad_fields_are_named(raw, field, tmp_path):
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw, path=tmp_path / "c.toml")
    assert f"field '{field}'" in str(e.value) and "c.toml" in str(e.value)


def test_bad_toml_and_missing_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[dataset\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")


def test_targets_sorted_and_deduplicated(tmp_path):
    cfg = config_from_dict({"dataset": {"name": "x"}, "backend": {"name": "dlib"}, "thresholds": {"target_fmr": [1e-3, 1e-2, 1e-3]}}, path=tmp_path / "c.toml")
    assert cfg.thresholds.target_fmr == (1e-2, 1e-3)
    assert cfg.output_dir == (tmp_path / "reports" / "x-dlib").resolve()


@pytest.mark.parametrize("value, expected", [(None, "wilson"), ("wilson", "wilson"), ("clopper-pearson", "clopper-pearson"),
                                             ("clopper_pearson", "clopper-pearson")])
def test_run_interval_default_and_spellings(value, expected, tmp_path):
    raw = {"dataset": {"name": "x"}, "backend": {"name": "dlib"}}
    if value is not None:
        raw["run"] = {"interval": value}
    assert config_from_dict(raw, path=tmp_path / "c.toml").run.interval == expected


@pytest.mark.parametrize("value", ["exact", "Wilson", "", 3, ["wilson"]])
def test_run_interval_unknown_value_is_named(value, tmp_path):
    raw = {"dataset": {"name": "x"}, "backend": {"name": "dlib"}, "run": {"interval": value}}
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw, path=tmp_path / "c.toml")
    msg = str(e.value)
    assert "c.toml" in msg and "field 'run.interval'" in msg and repr(value) in msg
    assert '"wilson"' in msg and '"clopper-pearson"' in msg


def test_run_interval_in_a_scores_config_and_a_toml_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[scores]\npath = "s.csv"\nsamples = "samples.csv"\ngroups = ["g"]\n\n[run]\ninterval = "clopper-pearson"\n')
    assert load_config(p).run.interval == "clopper-pearson"


def test_disparity_weights(tmp_path):
    base = {"dataset": {"name": "london"}, "backend": {"name": "dlib"}}
    assert config_from_dict(base).disparity.as_dict() == {"fdr_alpha": 0.5, "garbe_alpha": 0.5, "inequity_alpha": 1.0, "inequity_beta": 1.0}
    cfg = config_from_dict({**base, "disparity": {"fdr_alpha": 1, "inequity_beta": 0.5}})
    assert cfg.disparity.fdr_alpha == 1.0 and cfg.disparity.inequity_beta == 0.5 and cfg.disparity.garbe_alpha == 0.5
    for key, bad in (("fdr_alpha", 1.5), ("garbe_alpha", -0.1), ("inequity_alpha", "1"), ("inequity_beta", float("nan")), ("fdr_alpha", True)):
        with pytest.raises(ConfigError, match=f"disparity.{key}"):
            config_from_dict({**base, "disparity": {key: bad}})
    with pytest.raises(ConfigError, match="disparity"):
        config_from_dict({**base, "disparity": {"alpha": 0.5}})
