"""AuditResult's notebook helpers: rates_frame, group_order and the Jupyter view."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from audit.errors import ResultsError
from audit.verification.result import RATES_FRAME_COLUMNS, AuditResult

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def london() -> AuditResult:
    return AuditResult.from_json(REPO / "reports" / "london-dlib" / "results.json")


def test_rates_frame_one_threshold(london):
    df = london.rates_frame("ethnicity", "FMR=1e-3")
    assert list(df.columns) == RATES_FRAME_COLUMNS
    assert df["group"].tolist() == london.group_order("ethnicity")
    black = df.set_index("group").loc["Black"]
    # the committed numbers: 19 of 312 same-group impostor pairs, 0 of 13 mated, 0 of 26 images
    assert (black.false_matches, black.impostors, black.fmr) == (19, 312, pytest.approx(19 / 312))
    assert bool(black.fmr_insufficient) is True
    assert (black.false_non_matches, black.mated, black.failures, black.attempts) == (0, 13, 0, 26)
    assert (black.subjects, black.images) == (13, 26)
    mixed = df.set_index("group").loc["East Asian/White"]  # one person: no same-group impostor pair
    assert mixed.impostors == 0 and math.isnan(mixed.fmr)


def test_rates_frame_every_threshold_and_the_overall_rates(london):
    df = london.rates_frame("gender")
    assert df["threshold_name"].tolist() == [t.name for t in london.thresholds for _ in range(2)]
    overall = london.rates_frame("all", "FMR=1e-2")
    assert len(overall) == 1 and overall.loc[0, "impostors"] == 20604 and overall.loc[0, "false_matches"] == 206


def test_rates_frame_refuses_unknown_names(london):
    with pytest.raises(ResultsError, match="no grouping named 'race'.*ethnicity"):
        london.rates_frame("race")
    with pytest.raises(ResultsError, match="no threshold named 'FMR=1e-9'"):
        london.rates_frame("gender", "FMR=1e-9")


def test_rates_frame_of_an_empty_result_keeps_its_columns(london):
    empty = replace(london, rates=london.rates.iloc[:0], fta=london.fta.iloc[:0], composition=london.composition.iloc[:0])
    df = empty.rates_frame("gender")
    assert df.empty and list(df.columns) == RATES_FRAME_COLUMNS


def test_rates_frame_ignores_row_order(london):
    shuffled = replace(london, rates=london.rates.sample(frac=1.0, random_state=1).reset_index(drop=True))
    assert shuffled.rates_frame("ethnicity+gender").equals(london.rates_frame("ethnicity+gender"))


def test_repr_html_has_a_compact_table_and_the_summary(london):
    html = london._repr_html_()
    # a header row, the overall row, then one row per group of every grouping
    assert html.count("<tr>") == 2 + sum(len(london.group_order(g)) for g in london.groupings)
    assert "<caption>Rates at FMR=1e-2" in html
    from audit.findings import executive_summary
    from audit.verdict import verdict

    v = verdict(london)
    assert len(executive_summary(london)) == 12 and len(v.findings) == 5
    assert "Summary (17 findings)" in html  # the five key findings against the reference group, then the 12 by grouping
    assert f"<strong>{v.text}</strong>" in html.replace("&#39;", "'")  # the report's verdict leads
    assert "Black faces are falsely matched with one another 76× as often as White faces" in html
    odd = replace(london, title="<script>x</script>")
    assert "<script>" not in odd._repr_html_()
