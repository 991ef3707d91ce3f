"""benchmarks/interval_coverage.py measures the intervals the audit reports: on materialised datasets,
``audit.from_scores`` gives exactly the benchmark's people-level intervals and reference ratios."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "interval_coverage.py"
    spec = importlib.util.spec_from_file_location("interval_coverage_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_benchmark_computes_what_the_public_api_reports():
    assert _benchmark().api_check(1, replicates=100) == 0.0


def test_one_simulated_dataset_has_the_model_rates():
    mod = _benchmark()
    counts, fmr, fnmr = mod.simulate(np.random.default_rng(0), 2, 400, 0.0, 0.0, True)
    rep = mod.people_bootstrap(counts, np.arange(2), 2, n_replicates=0)
    np.testing.assert_allclose(rep.point_fmr[:2, 0], fmr, rtol=0.05)
    np.testing.assert_allclose(rep.point_fnmr[:2, 0], fnmr, rtol=0.15)
