"""The executive summary's covariate sentence, on hand-computed strata."""

from __future__ import annotations

import pandas as pd
import pytest

from audit.covariate_findings import adjusted_sentence

COLS = ["grouping", "threshold_name", "threshold", "metric", "group", "stratum", "errors", "trials", "rate"]


class _R:
    def __init__(self, rows, adjust_for=("age_band",)):
        self.stratum_rates = pd.DataFrame([("g", "t", 0.5, "fmr", *r, r[2] / r[3]) for r in rows], columns=COLS)
        self.provenance = {"adjust_for": list(adjust_for)}


@pytest.mark.parametrize("rows, crude, expected", [
    # within bands H and L alike (5% and 1% both): MH 1, crude 42/1000 over 18/1000 = 2.33
    ([("H", "child", 40, 800), ("H", "adult", 2, 200), ("L", "child", 10, 200), ("L", "adult", 8, 800)], 42 / 18,
     "Most of this gap goes with age band: within age bands the ratio is 1×."),
    # the same composition, H twice L in each band: MH (20*500/1000 + 10*500/1000) / (10*500/1000 + 5*500/1000)
    # = 15 / 7.5 = 2, crude (30/1000) / (15/1000) = 2: share 0
    ([("H", "child", 20, 500), ("H", "adult", 10, 500), ("L", "child", 10, 500), ("L", "adult", 5, 500)], 2.0,
     "Age band does not explain this gap: within age bands the ratio is 2×."),
    # the group with more children errs less within each band: MH (30*200/1000 + 1*800/1000) /
    # (10*800/1000 + 8*200/1000) = 6.8 / 9.6 = 0.71 while the crude ratio is 31/18 = 1.7: the gap reverses
    ([("H", "child", 30, 800), ("H", "adult", 1, 200), ("L", "child", 10, 200), ("L", "adult", 8, 800)], 31 / 18,
     "Within age bands the gap reverses: the ratio is 0.71×, so the crude gap goes with age band."),
])
def test_sentences(rows, crude, expected):
    assert adjusted_sentence(_R(rows), "g", "fmr", "t", "H", "L", crude) == expected


def test_a_small_change_near_parity_is_not_material():
    # crude 1.1, adjusted (MH by hand: (12*500/1000 + 12*500/1000) / (10*500/1000 + 10*500/1000)) = 1.2:
    # on the log scale that is "-90%" of the gap, but a change by a factor 1.09 < 1.25
    r = _R([("H", "child", 12, 500), ("H", "adult", 12, 500), ("L", "child", 10, 500), ("L", "adult", 10, 500)])
    assert adjusted_sentence(r, "g", "fmr", "t", "H", "L", 1.1) == "Age band does not explain this gap: within age bands the ratio is 1.2×."


def test_nothing_without_strata_or_with_an_infinite_ratio():
    r = _R([("H", "child", 40, 800), ("L", "child", 10, 200)])
    assert adjusted_sentence(r, "g", "fmr", "t", "H", "L", float("inf")) == ""
    r.stratum_rates = r.stratum_rates.iloc[0:0]
    assert adjusted_sentence(r, "g", "fmr", "t", "H", "L", 2.0) == ""
