"""A label file's columns become group columns of a 1:1 audit ([dataset] labels)."""

from __future__ import annotations

import pandas as pd
import pytest

from audit.verification.config import config_from_dict
from audit.errors import ConfigError, DataError
from audit.verification.acquire import _load_table


def _labels(tmp_path, subjects):
    p = tmp_path / "tone.csv"
    pd.DataFrame({"subject": subjects, "skin_tone": ["ITA I (very light)" if int(s) % 2 else "ITA VI (dark)" for s in subjects],
                  "skin_ita": [1.0] * len(subjects)}).to_csv(p, index=False)
    return p


def test_label_file_columns_named_in_groupings_become_group_columns(tmp_path, shared_dir):
    london = pd.read_csv(shared_dir / "london" / "london_info.csv", dtype=str)
    p = _labels(tmp_path, london["face_id"].tolist())
    cfg = config_from_dict({"dataset": {"name": "london", "labels": str(p), "groupings": [["skin_tone"], ["skin_tone", "gender"]]},
                            "backend": {"name": "dlib"}}, path=tmp_path / "c.toml")
    table, _, _ = _load_table(cfg, shared_dir, lambda m: None)
    assert table.group_columns[-1] == "skin_tone" and "skin_ita" not in table.data.columns
    assert table.data.groupby("subject")["skin_tone"].nunique().max() == 1
    assert set(table.groups(["skin_tone", "gender"]).unique()) >= {"ITA VI (dark) / Female", "ITA I (very light) / Male"}
    assert table.dataset["extra_labels"]["columns"] == ["skin_tone"]


def test_missing_person_in_label_file_is_an_error(tmp_path, shared_dir):
    p = _labels(tmp_path, ["001"])
    cfg = config_from_dict({"dataset": {"name": "london", "labels": str(p), "groupings": [["skin_tone"]]},
                            "backend": {"name": "dlib"}}, path=tmp_path / "c.toml")
    with pytest.raises(DataError, match="no row for subject"):
        _load_table(cfg, shared_dir, lambda m: None)


def test_labels_must_be_a_path(tmp_path):
    with pytest.raises(ConfigError, match="field 'dataset.labels'"):
        config_from_dict({"dataset": {"name": "london", "labels": 3}, "backend": {"name": "dlib"}}, path=tmp_path / "c.toml")
