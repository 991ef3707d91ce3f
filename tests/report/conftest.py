"""A small but complete AuditResult built by hand, for report and plot tests.

``make_result()`` builds it; the ``tiny_result`` fixture hands out a fresh one per test.

What it holds (numbers small enough to check by hand):

- groupings ``gender`` (female, male) and ``ethnicity+gender`` (five groups);
- thresholds ``FMR=1e-02`` (similarity 0.52, achieved FMR 339/34,590) and ``FMR=1e-05``
  (similarity 0.81, achieved FMR 0/34,590, ``insufficient`` since 34,590 < 3/1e-5);
- ``Asian / female``: no same-group false match at either threshold (FMR 0, FNMR 0 at 1e-2);
- ``<script>alert(1)</script> / male``: 12 subjects with one image each, so no mated
  comparisons (FNMR NaN, no mated histogram, no DET curve) and 66 impostors (insufficient);
- ``Other / female``: one subject with two images: one mated comparison, no same-group impostor;
- a title with ``&``, quotes and ``<`` and a warning with markup;
- disparity rows with ``inf`` (max/min when a group has FMR 0) and NaN values, with notes;
- samples whose paths contain ``SAMPLE_PATH_MARKER`` (must never reach the report).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.verification.result import TABLE_COLUMNS, AuditResult
from audit.results import ThresholdInfo

SCRIPT = "<script>alert(1)</script> / male"
TITLE = 'Tiny audit: "dlib" & <friends>\'s test'
T1, T2 = "FMR=1e-02", "FMR=1e-05"

# grouping -> group -> (subjects, images, mated, same-group impostors)
GROUPS = {
    "gender": {
        "female": (66, 132, 66, 8580),
        "male": (72, 132, 60, 8586),
    },
    "ethnicity+gender": {
        "Black / female": (40, 80, 40, 3120),
        "White / male": (60, 120, 60, 7080),
        "Asian / female": (25, 50, 25, 1200),
        SCRIPT: (12, 12, 0, 66),
        "Other / female": (1, 2, 1, 0),
    },
}

# (grouping, group) -> {threshold: (false matches, false non-matches)}
ERRORS = {
    ("gender", "female"): {T1: (80, 1), T2: (0, 14)},
    ("gender", "male"): {T1: (40, 2), T2: (1, 11)},
    ("ethnicity+gender", "Black / female"): {T1: (52, 1), T2: (0, 9)},
    ("ethnicity+gender", "White / male"): {T1: (35, 2), T2: (0, 11)},
    ("ethnicity+gender", "Asian / female"): {T1: (0, 0), T2: (0, 4)},
    ("ethnicity+gender", SCRIPT): {T1: (2, 0), T2: (0, 0)},
    ("ethnicity+gender", "Other / female"): {T1: (0, 0), T2: (0, 1)},
}

TARGETS = {T1: 1e-2, T2: 1e-5}
VALUES = {T1: 0.52, T2: 0.81}


def wilson(errors: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float, float]:
    """Rate and Wilson 95% interval; NaNs when there are no trials."""
    if trials == 0:
        return math.nan, math.nan, math.nan
    p = errors / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lo = 0.0 if errors == 0 else max(0.0, centre - half)
    hi = 1.0 if errors == trials else min(1.0, centre + half)
    return p, lo, hi


def _hist(kind: str, n: int, centre: float) -> list[tuple[float, float, int]]:
    edges = np.round(np.linspace(0.0, 1.0, 11), 2)
    mids = (edges[:-1] + edges[1:]) / 2
    w = np.exp(-0.5 * ((mids - centre) / 0.12) ** 2)
    counts = np.floor(n * w / w.sum()).astype(int)
    if n:
        counts[int(np.argmax(w))] += n - int(counts.sum())
    return [(float(a), float(b), int(c)) for a, b, c in zip(edges[:-1], edges[1:], counts)]


def make_result() -> AuditResult:
    """Build the hand-made AuditResult described in this module's docstring."""
    composition, fta, rates, cross, hist, det = [], [], [], [], [], []
    for grouping, groups in GROUPS.items():
        names = list(groups)
        for g, (subjects, images, mated, imps) in groups.items():
            composition.append((grouping, g, subjects, images))
            failures = 2 if g in ("Black / female", "female") else 0
            v, lo, hi = wilson(failures, images + failures)
            fta.append((grouping, g, failures, images + failures, v, lo, hi, "wilson"))
            for tname in (T1, T2):
                fm, fnm = ERRORS[(grouping, g)][tname]
                insufficient = imps < 3 / TARGETS[tname]
                v, lo, hi = wilson(fm, imps)
                rates.append((grouping, g, tname, VALUES[tname], "fmr", fm, imps, v, lo, hi, "wilson", insufficient))
                v, lo, hi = wilson(fnm, mated)
                rates.append((grouping, g, tname, VALUES[tname], "fnmr", fnm, mated, v, lo, hi, "wilson", False))
            if mated:
                hist += [(grouping, g, "mated", a, b, c) for a, b, c in _hist("mated", mated, 0.75)]
            hist += [(grouping, g, "impostor", a, b, c) for a, b, c in _hist("impostor", imps, 0.3)]
            fm1 = ERRORS[(grouping, g)][T1][0]
            shift = 1.0 + 0.6 * names.index(g)  # each group its own curve
            for thr in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
                if imps:
                    fmr = 0.0 if (fm1 == 0 and thr > 0.4) else round(0.5 * shift * 10 ** (-(thr - 0.3) * 6), 8)
                else:
                    fmr = math.nan
                fnmr = round(0.002 * shift * 10 ** ((thr - 0.3) * 3.5), 6) if mated else math.nan
                det.append((grouping, g, thr, fmr, min(1.0, fnmr) if mated else math.nan))
        for tname in (T1, T2):
            for a in names:
                for b in names:
                    na, nb = groups[a][1], groups[b][1]
                    comparisons = groups[a][3] if a == b else na * nb
                    if a == b:
                        false_matches = ERRORS[(grouping, a)][tname][0]
                    else:
                        false_matches = (na * nb) // (500 if tname == T1 else 10**7)
                    fmr = false_matches / comparisons if comparisons else math.nan
                    cross.append((grouping, tname, VALUES[tname], a, b, false_matches, comparisons, fmr))

    inf, nan = math.inf, math.nan
    disparity = [  # summary ids as audit.metrics.disparity names them
        ("gender", T1, "fmr", "max_min_ratio", 2.0, "female", "male", 2, ""),
        ("gender", T1, "fnmr", "max_min_ratio", 2.2, "male", "female", 2, ""),
        ("gender", T2, "fmr", "max_min_ratio", inf, "male", "female", 2,
         "a group has a zero rate ('female'): the ratio is infinite"),
        ("ethnicity+gender", T1, "fmr", "max_min_ratio", inf, SCRIPT, "Asian / female", 4,
         "a group has a zero rate ('Asian / female'): the ratio is infinite"),
        ("ethnicity+gender", T1, "fmr", "max_geomean_ratio", inf, SCRIPT, None, 4,
         "a group has a zero rate ('Asian / female'): the geometric mean is 0 and the ratio is infinite"),
        ("ethnicity+gender", T1, "fnmr", "max_min_ratio", nan, None, None, 1, "fewer than 2 groups with a rate"),
        ("ethnicity+gender", T1, "fmr+fnmr", "fairness_discrepancy_rate", 0.983, None, None, 3, ""),
        ("ethnicity+gender", T1, "fmr+fnmr", "garbe", 0.41, None, None, 3, ""),
    ]
    samples = pd.DataFrame(
        [
            ("s000", "001", "/data/SAMPLE_PATH_MARKER/neutral_front/001_03.jpg", "ok", 1, "", "female", "Black"),
            ("s001", "001", "/data/SAMPLE_PATH_MARKER/smiling_front/001_08.jpg", "ok", 1, "", "female", "Black"),
            ("s002", "002", "/data/SAMPLE_PATH_MARKER/neutral_front/002_03.jpg", "no_face", 0, "detector found none",
             "male", "White"),
            ("s003", "003", "/data/SAMPLE_PATH_MARKER/<script>x.jpg", "ok", 2, "", "male", "<script>alert(1)</script>"),
        ],
        columns=TABLE_COLUMNS["samples"] + ["gender", "ethnicity"],
    )
    backend = {
        "backend": "dlib",
        "model": "dlib_resnet_v1",
        "version": "face-audit-dlib 1; dlib 19.24.2",
        "weights_sha256": "3f5c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c",
        "dim": 128,
        "metric": "cosine",
        "default_threshold": 0.6,
        "default_threshold_source": "dlib documentation",
        "options": {"detector": "hog", "multiple_faces": "largest"},
        "fingerprint": "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9",
    }
    provenance = {
        "tool_version": "0.1.0",
        "backend": backend,
        "dataset": {
            "name": "london",
            "title": "Face Research Lab London Set",
            "licence": "CC BY 4.0",
            "licence_url": "https://creativecommons.org/licenses/by/4.0/",
            "citation": "DeBruine, L. M. & Jones, B. C. (2017). Face Research Lab London Set. figshare. "
                        "https://doi.org/10.6084/m9.figshare.5047666.v5",
            "homepage": "https://figshare.com/articles/dataset/Face_Research_Lab_London_Set/5047666",
            "manifest_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "label_source": "Self-reported by each photographed adult (ethnicity, gender).",
        },
        "config": {"dataset": "london", "backend": "dlib", "target_fmr": [1e-2, 1e-5],
                   "groupings": [["gender"], ["ethnicity", "gender"]], "data_root": "/data/london"},
        "seed": 0,
        "machine": {"hostname": "ci-runner", "platform": "Linux-6.1-x86_64", "python": "3.11.7", "cpus": 16},
        "created": "2024-05-01T12:00:00+00:00",
        "protocol": {"pairs": "all", "mated_comparisons": 126, "impostor_comparisons": 34590},
        "timing": {"embed_s": 12.5, "compare_s": 0.4},
    }
    thresholds = (
        ThresholdInfo(T1, "target_fmr", 0.52, 0.52, 1e-2, 339 / 34590, 339, 34590, 3 / 126, False),
        ThresholdInfo(T2, "target_fmr", 0.81, 0.81, 1e-5, 0.0, 0, 34590, 40 / 126, True),
    )

    def frame(name: str, rows: list) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=TABLE_COLUMNS[name])

    return AuditResult(
        title=TITLE,
        provenance=provenance,
        groupings=("gender", "ethnicity+gender"),
        thresholds=thresholds,
        samples=samples,
        composition=frame("composition", composition),
        fta=frame("fta", fta),
        rates=frame("rates", rates),
        cross_fmr=frame("cross_fmr", cross),
        disparity=frame("disparity", disparity),
        score_hist=frame("score_hist", hist),
        det=frame("det", det),
        warnings=("1 image had <b>two</b> faces; the largest was used",),
    )


def empty_tables(result: AuditResult) -> AuditResult:
    """The same result with every table empty (the columns kept)."""
    from dataclasses import replace

    return replace(result, **{name: pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
                              for name, cols in TABLE_COLUMNS.items()})


@pytest.fixture
def tiny_result() -> AuditResult:
    return make_result()


@pytest.fixture(scope="session")
def tiny_result_shared() -> AuditResult:
    """One instance for tests that only read it (AuditResult is frozen; do not mutate its tables)."""
    return make_result()


@pytest.fixture
def empty_result(tiny_result: AuditResult) -> AuditResult:
    return empty_tables(tiny_result)


def single_group(result: AuditResult, grouping: str = "gender", group: str = "female") -> AuditResult:
    """Only one grouping holding only one group."""
    from dataclasses import replace

    def keep(df: pd.DataFrame, cols: tuple[str, ...] = ("group",)) -> pd.DataFrame:
        mask = df["grouping"] == grouping
        for c in cols:
            mask &= df[c] == group
        return df[mask].reset_index(drop=True)

    return replace(
        result, groupings=(grouping,),
        composition=keep(result.composition), fta=keep(result.fta), rates=keep(result.rates),
        cross_fmr=keep(result.cross_fmr, ("group_a", "group_b")),
        disparity=result.disparity[result.disparity["grouping"] == "__none__"].reset_index(drop=True),
        score_hist=keep(result.score_hist), det=keep(result.det),
    )


@pytest.fixture
def single_group_result(tiny_result: AuditResult) -> AuditResult:
    return single_group(tiny_result)
