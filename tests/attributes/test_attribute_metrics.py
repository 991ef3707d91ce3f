"""Classifier error tables against hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.attributes.metrics import (
    CONFUSION_COLUMNS, ERROR_COLUMNS, age_band_of, classification_errors, confusion_long, intersectional_table,
)
from audit.errors import MetricError


def _frame():
    # 3 people; p1 two images (one wrong), p2 two images (both right), p3 one image, not acquired
    return pd.DataFrame({
        "subject": ["p1", "p1", "p2", "p2", "p3"],
        "gender": ["Female", "Female", "Male", "Male", "Female"],
        "pred": ["Female", "Male", "Male", "Male", None],
        "race": ["Black", "Black", "White", "White", "Black"],
    })


def test_counts_rates_and_failures_by_hand():
    t = classification_errors(_frame(), truth="gender", predicted="pred", groupings=[["race"]], subject="subject", bootstrap=200)
    assert list(t.columns) == ERROR_COLUMNS
    by = t.set_index("group")
    assert by.loc["All", ["images", "subjects", "failed", "classified", "errors"]].tolist() == [5, 3, 1, 4, 1]
    assert by.loc["All", "error_rate"] == pytest.approx(0.25)
    assert by.loc["Black", ["images", "failed", "classified", "errors"]].tolist() == [3, 1, 2, 1]
    assert by.loc["Black", "error_rate"] == pytest.approx(0.5)
    assert by.loc["White", "error_rate"] == 0.0
    # identities exist: the people-level interval; one classified person in Black -> zero width
    assert by.loc["Black", "ci_method"].startswith("subject bootstrap")
    assert by.loc["Black", "ci_low"] == by.loc["Black", "ci_high"] == pytest.approx(0.5)
    # Wilson beside it, by hand: 1 of 2
    z = 1.959963984540054
    n, p = 2, 0.5
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert by.loc["Black", "wilson_low"] == pytest.approx(centre - half)
    assert by.loc["Black", "wilson_high"] == pytest.approx(centre + half)


def test_without_identities_the_interval_is_wilson_and_labelled():
    df = _frame().drop(columns="subject")
    t = classification_errors(df, truth="gender", predicted="pred", groupings=[["race"]])
    assert t["ci_method"].str.startswith("wilson").all()
    assert (t["ci_low"] == t["wilson_low"]).all()
    assert t["subjects"].tolist() == [5, 3, 2]  # each image a different person


def test_invariant_under_row_permutation_and_relabelling():
    df = _frame()
    a = classification_errors(df, truth="gender", predicted="pred", groupings=[["race"]], subject="subject", bootstrap=100)
    b = classification_errors(df.iloc[::-1], truth="gender", predicted="pred", groupings=[["race"]], subject="subject", bootstrap=100)
    pd.testing.assert_frame_equal(a, b)
    df2 = df.assign(race=df["race"].map({"Black": "G1", "White": "G2"}))
    c = classification_errors(df2, truth="gender", predicted="pred", groupings=[["race"]], subject="subject", bootstrap=100)
    assert c["errors"].tolist() == a["errors"].tolist()


def test_empty_group_and_missing_columns():
    df = pd.DataFrame({"gender": ["F"], "pred": [""], "race": ["X"]})
    t = classification_errors(df, truth="gender", predicted="pred", groupings=[["race"]])
    assert np.isnan(t.loc[1, "error_rate"]) and np.isnan(t.loc[1, "ci_low"]) and t.loc[1, "failed"] == 1
    with pytest.raises(MetricError, match="lacks the column"):
        classification_errors(df, truth="gender", predicted="nope")


def test_confusion_matrices_by_hand():
    c = confusion_long(_frame(), truth="gender", predicted="pred", groupings=[["race"]])
    assert list(c.columns) == CONFUSION_COLUMNS
    black = c[(c["grouping"] == "race") & (c["group"] == "Black")].set_index(["true", "predicted"])["count"].to_dict()
    assert black == {("Female", "Female"): 1, ("Female", "Male"): 1, ("Male", "Female"): 0, ("Male", "Male"): 0}
    assert c[c["grouping"] == "All"]["count"].sum() == 4  # failures left out


def test_intersectional_table_ties_and_order():
    t = intersectional_table(_frame(), truth="gender", predicted="pred", group="race")
    assert t["column"].tolist() == ["All", "Female", "Male", "Black", "White",
                                    "Black Female", "Black Male", "White Female", "White Male"]
    row = t.set_index("column")
    assert row.loc["Black Female", "errors"] == 1 and row.loc["Black Female", "classified"] == 2
    assert row.loc["White Female", "classified"] == 0 and np.isnan(row.loc["White Female", "error_rate"])


@pytest.mark.parametrize("age,band", [(0, "0-2"), (2.4, "0-2"), (2.5, "3-9"), (69.4, "60-69"), (70, "more than 70"), (95, "more than 70")])
def test_age_band_edges(age, band):
    bands = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
    assert age_band_of(age, bands) == band


def test_age_band_none():
    assert age_band_of(float("nan"), ["0-2"]) is None
    assert age_band_of(50, ["0-2"]) is None
