"""Skin-tone measurement against hand computation, the landmark mask, per-person medians, the label file."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.errors import ConfigError, DataError, MetricError
from audit.labelfile import join_label_file
from audit.skintone.landmarks import Landmarks, skin_mask
from audit.skintone.measure import (
    ITA_CATEGORIES, hue_degrees, ita_category, ita_degrees, lighter_darker, measure_skin, monk_tone, normalise_colour, srgb_to_lab,
)
from audit.skintone.people import PERSON_COLUMNS, person_tones
from audit.skintone.runner import measure_table, skintone_config_from_dict


def test_lab_of_a_known_colour_by_hand():
    # sRGB (224, 172, 105): linearise, XYZ (D65), f(t), L*a*b* (computed step by step)
    c = np.array([224, 172, 105]) / 255.0
    lin = ((c + 0.055) / 1.055) ** 2.4
    X = (0.4124564 * lin[0] + 0.3575761 * lin[1] + 0.1804375 * lin[2]) / 0.95047
    Y = 0.2126729 * lin[0] + 0.7151522 * lin[1] + 0.0721750 * lin[2]
    Z = (0.0193339 * lin[0] + 0.1191920 * lin[1] + 0.9503041 * lin[2]) / 1.08883
    f = [v ** (1 / 3) for v in (X, Y, Z)]
    L, a, b = 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
    assert srgb_to_lab(c).tolist() == pytest.approx([L, a, b])
    assert ita_degrees(L, b) == pytest.approx(math.degrees(math.atan((L - 50) / b)))
    assert ita_degrees(L, b) == pytest.approx(29.80, abs=0.01)


def test_ita_edges_and_hue():
    assert ita_degrees(60, 0) == 90 and ita_degrees(40, 0) == -90 and math.isnan(ita_degrees(50, 0))
    assert hue_degrees(1, 0) == 0 and hue_degrees(0, 1) == 90


@pytest.mark.parametrize("ita,cat", [(90, "ITA I (very light)"), (55.0001, "ITA I (very light)"), (55, "ITA II (light)"), (41, "ITA III (intermediate)"),
                                     (28, "ITA IV (tan)"), (10, "ITA V (brown)"), (-30, "ITA VI (dark)"), (-80, "ITA VI (dark)")])
def test_ita_category_boundaries(ita, cat):
    assert ita_category(ita) == cat


def test_binary_split_and_monk():
    assert [lighter_darker(lab) for _, lab in ITA_CATEGORIES] == ["Lighter"] * 3 + ["Darker"] * 3
    assert ita_category(float("nan")) is None and lighter_darker(None) is None
    with pytest.raises(MetricError):
        lighter_darker("Fitzpatrick 3")
    assert monk_tone(*srgb_to_lab(np.array([0x29, 0x24, 0x20]) / 255.0)) == 10
    assert monk_tone(float("nan"), 0, 0) is None


def test_white_patch_removes_a_colour_cast_grey_world_equalises_means():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:5] = (200, 150, 100)   # a "skin" half
    img[5:] = (250, 200, 150)   # a "white" half under a warm cast
    wp = normalise_colour(img, "white_patch")
    assert wp[7, 7].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert wp[0, 0].tolist() == pytest.approx([200 / 250, 150 / 200, 100 / 150])
    gw = normalise_colour(img, "grey_world")
    assert gw.reshape(-1, 3).mean(axis=0) == pytest.approx([gw.mean()] * 3)
    with pytest.raises(MetricError, match="unknown colour normalisation"):
        normalise_colour(img, "retinex")


def test_measure_skin_trims_highlights_and_needs_pixels():
    img = np.full((20, 20, 3), (150, 110, 80), np.uint8)
    img[0, :] = 255   # a specular highlight row
    m = measure_skin(img, np.ones((20, 20), bool), normalisation="none", trim=0.1)
    L, a, b = srgb_to_lab(np.array([150, 110, 80]) / 255.0)
    assert (m.L, m.b) == (pytest.approx(L), pytest.approx(b))
    assert m.ita == pytest.approx(ita_degrees(L, b))
    assert measure_skin(img, np.zeros((20, 20), bool)) is None
    with pytest.raises(MetricError):
        measure_skin(img, np.ones((3, 3), bool))


def _points():
    pts = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    pts[:17] = np.c_[50 - 40 * np.cos(t), 50 + 40 * np.sin(t)]     # jaw: a half circle below y = 50
    pts[17:27] = np.c_[np.linspace(12, 88, 10), np.full(10, 20.0)]  # brows on y = 20
    pts[36:42] = [(25, 35), (30, 32), (35, 32), (40, 35), (35, 38), (30, 38)]
    pts[42:48] = pts[36:42] + (35, 0)
    pts[27:36] = (50, 55)
    pts[48:60] = np.c_[50 + 10 * np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)), 75 + 4 * np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False))]
    return pts


def test_mask_keeps_cheeks_drops_eyes_mouth_and_background():
    m = skin_mask((100, 100), _points())
    assert m[60, 25] and m[60, 75]            # cheeks
    assert not m[35, 32] and not m[35, 67]    # eyes
    assert not m[75, 50]                      # mouth
    assert not m[5, 5] and not m[95, 50]      # background
    assert not m[20, 30] and not m[20, 70]    # brows
    assert m[21, 50]                          # between the brows


def test_person_medians_consistency_and_not_measured():
    im = pd.DataFrame({"subject": ["a", "a", "a", "b"], "status": ["ok", "ok", "ok", "no_face"],
                       "L": [70.0, 68.0, 40.0, np.nan], "a": [10.0, 11.0, 12.0, np.nan], "b": [20.0, 18.0, 22.0, np.nan],
                       "ita": [ita_degrees(70, 20), ita_degrees(68, 18), ita_degrees(40, 22), np.nan], "hue": [0, 0, 0, np.nan]})
    t = person_tones(im)
    assert list(t.columns) == PERSON_COLUMNS
    a = t.set_index("subject").loc["a"]
    # medians L* 68, b* 20 -> ITA atan(18/20) = 41.99°, light; the images alone: 45°, 45°, -24.4° (brown)
    assert a["skin_L"] == 68.0 and a["skin_ita"] == pytest.approx(math.degrees(math.atan(18 / 20)))
    assert a["skin_tone"] == "ITA II (light)" and a["skin_tone_binary"] == "Lighter"
    assert a["skin_consistency"] == pytest.approx(2 / 3)
    assert a["skin_ita_spread"] == pytest.approx(ita_degrees(70, 20) - ita_degrees(40, 22))
    assert t.set_index("subject").loc["b", "skin_tone"] == "not measured"


def test_label_file_join(tmp_path):
    s = pd.DataFrame({"sample_id": ["x/1.jpg", "x/2.jpg", "y/1.jpg"], "subject": ["1", "1", "2"]})
    p = tmp_path / "l.csv"
    pd.DataFrame({"subject": ["1", "2"], "skin_tone": ["ITA I (very light)", "ITA VI (dark)"], "other": ["a", "b"]}).to_csv(p, index=False)
    df, added = join_label_file(s, p, columns=["skin_tone"])
    assert added == ["skin_tone"] and df["skin_tone"].tolist() == ["ITA I (very light)", "ITA I (very light)", "ITA VI (dark)"]
    pd.DataFrame({"subject": ["1"], "skin_tone": ["I"]}).to_csv(p, index=False)
    with pytest.raises(DataError, match="no row for subject '2'"):
        join_label_file(s, p)
    pd.DataFrame({"subject": ["1", "1"], "skin_tone": ["I", "I"]}).to_csv(p, index=False)
    with pytest.raises(DataError, match="repeats"):
        join_label_file(s, p)
    with pytest.raises(DataError, match="does not exist"):
        join_label_file(s, tmp_path / "none.csv")


class _FakeDetector:
    """Landmarks at fixed places for any image larger than 10 px; tiny images have no face."""

    def load(self):
        pass

    def detect(self, rgb):
        return Landmarks(_points(), 1) if rgb.shape[0] > 10 else None


def test_measure_table_statuses(tmp_path):
    rows = []
    for i, colour in enumerate([(200, 150, 120), (90, 60, 40)]):
        p = tmp_path / f"{i}.png"
        img = np.zeros((100, 100, 3), np.uint8)
        img[:] = colour
        img[:5] = 255  # a white band (5% of the pixels, outside the mask): white patch keeps the skin colour
        Image.fromarray(img).save(p)
        rows.append({"sample_id": p.name, "subject": str(i), "path": str(p)})
    Image.new("RGB", (5, 5)).save(tmp_path / "tiny.png")
    rows.append({"sample_id": "tiny.png", "subject": "9", "path": str(tmp_path / "tiny.png")})
    (tmp_path / "bad.png").write_bytes(b"xx")
    rows.append({"sample_id": "bad.png", "subject": "8", "path": str(tmp_path / "bad.png")})
    t = measure_table(pd.DataFrame(rows), _FakeDetector())
    assert t["status"].tolist() == ["ok", "ok", "no_face", "unreadable"]
    assert t.loc[0, "ita"] > t.loc[1, "ita"]
    L, _, b = srgb_to_lab(np.array([200, 150, 120]) / 255.0)
    assert t.loc[0, "L"] == pytest.approx(L, abs=0.5) and t.loc[0, "ita"] == pytest.approx(ita_degrees(L, b), abs=0.5)


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="field 'skintone.normalisation'"):
        skintone_config_from_dict({"dataset": {"name": "london"}, "skintone": {"normalisation": "auto"}}, path=tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="field 'dataset.name'"):
        skintone_config_from_dict({"skintone": {}}, path=tmp_path / "c.toml")
    c = skintone_config_from_dict({"dataset": {"name": "london"}, "output": {"dir": "o"}}, path=tmp_path / "c.toml")
    assert c.labels_path == (tmp_path / "o" / "skintone-labels.csv").resolve()
