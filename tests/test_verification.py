"""Per-group FMR/FNMR/FTA, cross-group FMR and thresholds on a tiny case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.backends.base import BackendInfo
from audit.verification.protocol import PairScores
from audit.errors import MetricError
from audit.metrics import clopper_pearson_interval
from audit.results import ThresholdInfo
from audit.verification.analysis import analyse_verification, choose_thresholds

# 7 images; image 6 failed to acquire. Acquired rows 0..5 have subjects a a b c c d, groups A A A B B B.
SAMPLES = pd.DataFrame({
    "sample_id": [f"i{k}" for k in range(7)],
    "subject": list("aabccde"),
    "group": list("AAABBBB"),
    "status": ["ok"] * 6 + ["no_face"],
})
OK_ROWS = np.arange(6)
MATED = {(0, 1): 0.9, (3, 4): 0.4}
IMPOSTOR = {
    (0, 2): 0.5, (1, 2): 0.2,                       # A-A
    (3, 5): 0.6, (4, 5): 0.1,                       # B-B
    (0, 3): 0.3, (0, 4): 0.0, (0, 5): 0.1, (1, 3): 0.2, (1, 4): 0.05,
    (1, 5): 0.15, (2, 3): 0.35, (2, 4): 0.25, (2, 5): 0.45,   # A-B
}


def _pairs() -> PairScores:
    def arr(d):
        keys = list(d)
        return np.array([d[k] for k in keys]), np.array([k[0] for k in keys]), np.array([k[1] for k in keys])

    return PairScores(*arr(MATED), *arr(IMPOSTOR))


def _th(value: float) -> ThresholdInfo:
    return ThresholdInfo(f"fixed {value}", "fixed", value, value, None, 0.3, 4, 13, 0.0, False)


@pytest.fixture(scope="module")
def tables():
    return analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]])


def _rate(tables, group, th, metric):
    r = tables.rates
    row = r[(r.grouping == ("all" if group == "All" else "group")) & (r.group == group) & (r.threshold_name == th) & (r.metric == metric)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.mark.parametrize(
    "group, th, metric, errors, trials",
    [
        # t=0.35: A impostors {0.5, 0.2} -> 1 of 2; B {0.6, 0.1} -> 1 of 2; mated 0.9 and 0.4 both match
        ("A", "fixed 0.35", "fmr", 1, 2), ("B", "fixed 0.35", "fmr", 1, 2),
        ("A", "fixed 0.35", "fnmr", 0, 1), ("B", "fixed 0.35", "fnmr", 0, 1),
        # t=0.5: 0.5 ties and matches (score >= threshold); B's mated 0.4 is now a false non-match
        ("A", "fixed 0.5", "fmr", 1, 2), ("B", "fixed 0.5", "fmr", 1, 2),
        ("A", "fixed 0.5", "fnmr", 0, 1), ("B", "fixed 0.5", "fnmr", 1, 1),
        # everyone: 13 impostors, 4 at or above 0.35 (0.5, 0.6, 0.35, 0.45); 2 at or above 0.5
        ("All", "fixed 0.35", "fmr", 4, 13), ("All", "fixed 0.5", "fmr", 2, 13),
        ("All", "fixed 0.5", "fnmr", 1, 2),
    ],
)
def test_rates_by_hand(tables, group, th, metric, errors, trials):
    row = _rate(tables, group, th, metric)
    assert (row.errors, row.trials) == (errors, trials)
    assert row.value == pytest.approx(errors / trials)
    assert row.ci_low <= row.value <= row.ci_high


def test_wilson_interval_of_one_in_two(tables):
    # Wilson 95%, k=1, n=2: centre (0.5 + z²/4)/(1 + z²/2) = 0.5, half-width z*sqrt(0.25/2 + z²/16)/(1 + z²/2)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 2 + z * z / 16) / (1 + z * z / 2)
    row = _rate(tables, "A", "fixed 0.35", "fmr")
    assert row.ci_low == pytest.approx(0.5 - half, abs=1e-9) and row.ci_high == pytest.approx(0.5 + half, abs=1e-9)


def test_cross_group_matrix_by_hand(tables):
    c = tables.cross_fmr
    c = c[(c.grouping == "group") & (c.threshold_name == "fixed 0.35")].set_index(["group_a", "group_b"])
    assert (c.loc[("A", "B"), "false_matches"], c.loc[("A", "B"), "comparisons"]) == (2, 9)   # 0.35 and 0.45
    assert (c.loc[("B", "A"), "false_matches"], c.loc[("B", "A"), "comparisons"]) == (2, 9)   # symmetric
    assert (c.loc[("A", "A"), "false_matches"], c.loc[("A", "A"), "comparisons"]) == (1, 2)   # diagonal = group FMR
    assert (c.loc[("B", "B"), "false_matches"], c.loc[("B", "B"), "comparisons"]) == (1, 2)


def test_fta_and_composition(tables):
    f = tables.fta.set_index(["grouping", "group"])
    assert (f.loc[("group", "A"), "failures"], f.loc[("group", "A"), "attempts"]) == (0, 3)
    assert (f.loc[("group", "B"), "failures"], f.loc[("group", "B"), "attempts"]) == (1, 4)
    assert (f.loc[("all", "All"), "failures"], f.loc[("all", "All"), "attempts"]) == (1, 7)
    comp = tables.composition.set_index(["grouping", "group"])
    assert tuple(comp.loc[("group", "A"), ["subjects", "images"]]) == (2, 3)
    assert tuple(comp.loc[("group", "B"), ["subjects", "images"]]) == (3, 4)


def test_disparity_rows(tables):
    d = tables.disparity
    fnmr = d[(d.threshold_name == "fixed 0.5") & (d.metric == "fnmr") & (d.summary == "max_min_ratio")].iloc[0]
    assert math.isinf(fnmr.value) and fnmr.group_high == "B" and fnmr.group_low == "A"
    fmr = d[(d.threshold_name == "fixed 0.5") & (d.metric == "fmr") & (d.summary == "max_min_ratio")].iloc[0]
    assert fmr.value == pytest.approx(1.0)


def test_group_relabelling_and_row_permutation_do_not_change_rates(tables):
    renamed = SAMPLES.assign(group=SAMPLES["group"].map({"A": "Z", "B": "Y"}))
    t2 = analyse_verification(renamed, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]])
    a = tables.rates.replace({"A": "Z", "B": "Y"}).sort_values(["grouping", "group", "threshold_name", "metric"]).reset_index(drop=True)
    b = t2.rates.sort_values(["grouping", "group", "threshold_name", "metric"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[["group", "metric", "errors", "trials"]], b[["group", "metric", "errors", "trials"]])
    # permuting the order of pairs changes nothing
    p = _pairs()
    perm = np.random.default_rng(0).permutation(p.n_impostor)
    p2 = PairScores(p.mated_score, p.mated_a, p.mated_b, p.impostor_score[perm], p.impostor_a[perm], p.impostor_b[perm])
    t3 = analyse_verification(SAMPLES, OK_ROWS, p2, [_th(0.35), _th(0.5)], groupings=[["group"]])
    pd.testing.assert_frame_equal(tables.rates, t3.rates)
    pd.testing.assert_frame_equal(tables.cross_fmr, t3.cross_fmr)


def test_choose_thresholds_by_hand():
    info = BackendInfo("fake", "m", "1", "0" * 64, 2, "euclidean", default_threshold=0.6, default_threshold_source="docs")
    th = choose_thresholds(_pairs(), target_fmr=[0.1], fixed_native=[0.4], info=info, backend_default=True)
    assert [t.name for t in th] == ["FMR=1e-1", "fixed 0.4", "default 0.6"]
    t = th[0]
    # 13 impostors, k = floor(0.1*13) = 1 false match allowed: threshold just above the 2nd largest (0.5)
    assert t.value == np.nextafter(0.5, np.inf) and t.false_matches == 1 and t.impostors == 13
    assert t.achieved_fmr == pytest.approx(1 / 13)
    assert t.insufficient  # 13 < 3/0.1
    assert t.achieved_fnmr == pytest.approx(0.5)  # mated 0.4 < 0.5...
    # euclidean: fixed distances become negative similarities, and back
    assert th[1].value == -0.4 and th[1].native_value == 0.4
    assert th[2].kind == "backend_default" and th[2].value == -0.6
    assert th[1].false_matches == 13  # every similarity (>= -0.4... all scores here are >= 0) matches


def test_joint_disparity_summaries_by_hand(tables):
    d = tables.disparity
    d = d[(d.threshold_name == "fixed 0.5") & (d.metric == "fmr+fnmr")].set_index("summary")
    # FMR A = B = 1/2; FNMR A = 0, B = 1
    # FDR (alpha 0.5) = 1 - (0.5 * |0.5 - 0.5| + 0.5 * |0 - 1|) = 0.5
    assert d.loc["fairness_discrepancy_rate", "value"] == pytest.approx(0.5)
    # GARBE: Gini(FMR) = 0; Gini(FNMR = [0, 1]) = (2/1) * (|0-1| + |1-0|) / (2 * 2² * 0.5) = 1 -> 0.5*0 + 0.5*1
    assert d.loc["garbe", "value"] == pytest.approx(0.5)
    # Inequity rate: (max/min FMR = 1) * (max/min FNMR = 1/0) is infinite
    assert math.isinf(d.loc["inequity_rate", "value"])


def test_disparity_weights_change_the_joint_summaries_by_hand():
    weights = {"fdr_alpha": 0.8, "garbe_alpha": 0.25, "inequity_alpha": 2.0, "inequity_beta": 0.0}
    t = analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]], bootstrap=0,
                             disparity_weights=weights)
    d = t.disparity
    d = d[(d.threshold_name == "fixed 0.5") & (d.metric == "fmr+fnmr")].set_index("summary")
    # FMR A = B = 1/2; FNMR A = 0, B = 1
    assert d.loc["fairness_discrepancy_rate", "value"] == pytest.approx(1 - (0.8 * 0.0 + 0.2 * 1.0))  # 0.8
    assert d.loc["garbe", "value"] == pytest.approx(0.25 * 0.0 + 0.75 * 1.0)
    # beta = 0 removes the infinite FNMR factor: (1/1)^2 * (inf)^0 = 1
    assert d.loc["inequity_rate", "value"] == pytest.approx(1.0)
    # the per-metric summaries do not depend on the weights
    base = analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]], bootstrap=0)
    one = base.disparity[base.disparity.metric != "fmr+fnmr"].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, t.disparity[t.disparity.metric != "fmr+fnmr"].reset_index(drop=True))
    with pytest.raises(MetricError, match="unknown disparity weight"):
        analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.5)], groupings=[["group"]], disparity_weights={"alpha": 1})


def test_subject_bootstrap_columns(tables):
    r = tables.rates
    has = r[r.trials > 0]
    assert {"boot_low", "boot_high"} <= set(r.columns)
    assert ((has.boot_low <= has.value + 1e-12) & (has.value <= has.boot_high + 1e-12)).all()
    # FNMR of group A at 0.5: its only mated pair matches, so every resample has rate 0
    row = r[(r.grouping == "group") & (r.group == "A") & (r.metric == "fnmr") & (r.threshold_name == "fixed 0.5")].iloc[0]
    assert (row.boot_low, row.boot_high) == (0.0, 0.0)
    again = analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]])
    pd.testing.assert_frame_equal(tables.rates, again.rates)  # seeded
    off = analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]], bootstrap=0)
    assert off.rates.boot_low.isna().all()


def test_disparity_intervals_from_the_subject_bootstrap(tables):
    d = tables.disparity
    with_ci = d[d.summary.isin(["max_min_ratio", "max_geomean_ratio", "fairness_discrepancy_rate", "garbe"])]
    assert with_ci[["ci_low", "ci_high"]].notna().all().all()
    assert (with_ci.ci_low <= with_ci.ci_high).all()
    fdr = d[(d.summary == "fairness_discrepancy_rate")]
    assert ((fdr.ci_low >= 0) & (fdr.ci_high <= 1)).all()  # FDR lies in [0, 1] in every replicate
    off = analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]], bootstrap=0)
    assert off.disparity[["ci_low", "ci_high"]].isna().all().all()


# ---------------------------------------------------------------------------------------------
# the interval method


@pytest.fixture(scope="module")
def cp_tables():
    # by subject too: subject d has no same-group impostor pair and e no acquired image (0 trials)
    return analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"], ["subject"]],
                                interval="clopper-pearson")


def test_default_interval_is_wilson(tables):
    assert set(tables.rates.ci_method) == {"wilson"} and set(tables.fta.ci_method) == {"wilson"}


def test_clopper_pearson_rows_carry_the_method_and_its_bounds(cp_tables):
    for name, errors, trials in (("rates", "errors", "trials"), ("fta", "failures", "attempts")):
        df = getattr(cp_tables, name)
        assert set(df.ci_method) == {"clopper-pearson"}
        for r in df.itertuples(index=False):
            ci = clopper_pearson_interval(int(getattr(r, errors)), int(getattr(r, trials)))
            if getattr(r, trials) == 0:
                assert math.isnan(r.ci_low) and math.isnan(r.ci_high)
            else:
                assert (r.ci_low, r.ci_high) == (ci.low, ci.high)
    assert (cp_tables.rates.trials == 0).any()   # the empty case is exercised
    # by hand: FMR of A at 0.35 is 1 of 2 -> (1 - 0.975, 0.975) (Beta(1, 2) and Beta(2, 1) quantiles)
    row = _rate(cp_tables, "A", "fixed 0.35", "fmr")
    assert row.ci_low == pytest.approx(1 - math.sqrt(0.975), abs=1e-12)
    assert row.ci_high == pytest.approx(math.sqrt(0.975), abs=1e-12)


def test_clopper_pearson_contains_the_rate_and_is_wider_than_wilson_for_these_small_counts(tables, cp_tables):
    keys = ["grouping", "group", "threshold_name", "metric"]
    w = tables.rates.set_index(keys).sort_index()
    cp = cp_tables.rates[cp_tables.rates.grouping != "subject"].set_index(keys).sort_index()
    pd.testing.assert_frame_equal(w[["errors", "trials", "value", "insufficient"]], cp[["errors", "trials", "value", "insufficient"]])
    assert ((cp.ci_low <= w.value) & (w.value <= cp.ci_high)).all()
    # every count here is at most 13 trials, where the exact interval is the wider of the two
    assert ((cp.ci_low <= w.ci_low) & (cp.ci_high >= w.ci_high)).all()
    assert ((cp.ci_high - cp.ci_low) > (w.ci_high - w.ci_low)).all()
    fw = tables.fta.set_index(["grouping", "group"])
    fc = cp_tables.fta.set_index(["grouping", "group"]).loc[fw.index]
    assert ((fc.ci_high - fc.ci_low) > (fw.ci_high - fw.ci_low)).all()


def test_interval_changes_nothing_but_the_intervals(tables):
    cp = analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35), _th(0.5)], groupings=[["group"]], interval="clopper-pearson")
    for name in ("composition", "cross_fmr", "disparity", "score_hist", "det"):
        pd.testing.assert_frame_equal(getattr(tables, name), getattr(cp, name))
    same = [c for c in tables.rates.columns if c not in ("ci_low", "ci_high", "ci_method")]
    pd.testing.assert_frame_equal(tables.rates[same], cp.rates[same])


@pytest.mark.parametrize("bad", ["exact", "clopper_pearson", "Wilson"])
def test_unknown_interval_is_refused(bad):
    with pytest.raises(MetricError, match="interval must be one of"):
        analyse_verification(SAMPLES, OK_ROWS, _pairs(), [_th(0.35)], groupings=[["group"]], interval=bad)


def test_pair_interval_columns(tables):
    d = tables.disparity
    mm = d[d.summary == "max_min_ratio"]
    assert mm[["pair_ci_low", "pair_ci_high"]].notna().all().all()
    assert (mm.pair_ci_low <= mm.pair_ci_high).all()
    assert d[d.summary != "max_min_ratio"][["pair_ci_low", "pair_ci_high"]].isna().all().all()


def test_thresholds_that_round_alike_keep_their_own_numbers_in_every_table():
    """target_fmr = [2e-3, 1.5e-3] and fixed values 0.6 / 0.6004 once shared names, so tables keyed
    by name showed the second threshold's numbers for the first."""
    rng = np.random.default_rng(0)
    n = 120
    subj = np.repeat(np.arange(40), 3)
    grp = np.where(subj % 2 == 0, "A", "B")
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "subject": subj.astype(str), "group": grp, "status": "ok"})
    i, j = np.triu_indices(n, 1)
    score = rng.normal(size=i.size) * 0.2 + 0.3 + 0.5 * (subj[i] == subj[j])
    mated = subj[i] == subj[j]
    pairs = PairScores(score[mated], i[mated], j[mated], score[~mated], i[~mated], j[~mated])
    info = BackendInfo("toy", "m", "1", "0" * 64, 2, "cosine")
    th = choose_thresholds(pairs, target_fmr=[2e-3, 1.5e-3], fixed_native=[0.6, 0.6004], info=info, backend_default=False)
    names = [t.name for t in th]
    assert names == ["FMR=2e-3", "FMR=1.5e-3", "fixed 0.6", "fixed 0.6004"]
    assert len({t.value for t in th}) == 4
    tables = analyse_verification(samples, np.arange(n), pairs, th, groupings=[["group"]], bootstrap=50)
    imp = pairs.impostor_score
    for t in th:
        r = tables.rates[(tables.rates.grouping == "all") & (tables.rates.threshold_name == t.name) & (tables.rates.metric == "fmr")]
        assert len(r) == 1 and r.threshold.iloc[0] == t.value
        assert r.errors.iloc[0] == int(np.sum(imp >= t.value))  # this threshold's own count
        for name in ("rates", "cross_fmr", "reference"):
            df = getattr(tables, name)
            rows = df[df.threshold_name == t.name]
            assert len(rows) and (rows.threshold == t.value).all(), name
        d = tables.disparity[tables.disparity.threshold_name == t.name]
        assert len(d) == len(tables.disparity) // 4
