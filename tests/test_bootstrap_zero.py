"""A run with ``bootstrap = 0`` does not list per-person counts (TileScan.people_counts) unless the
confounder adjustment needs them, and its point estimates are those of a run with replicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audit.engine.scan import TileScan
from audit.verification.config import config_from_dict
from audit.verification.runner import run_audit


def _run(folder: Path, bootstrap: int, adjust: bool):
    rng = np.random.default_rng(0)
    n_s = 40
    subjects = np.repeat(np.arange(n_s), 3)
    emb = rng.normal(size=(n_s, 16))[subjects] + 0.8 * rng.normal(size=(3 * n_s, 16))
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(3 * n_s)], "subject": subjects.astype(str),
                            "group": np.where(subjects % 2, "A", "B"), "age": np.where(subjects % 3, "young", "old")})
    np.save(folder / "e.npy", emb)
    samples.to_csv(folder / "s.csv", index=False)
    raw = {"embeddings": {"path": str(folder / "e.npy"), "samples": str(folder / "s.csv"), "groups": ["group"], "metric": "cosine"},
           "thresholds": {"target_fmr": [1e-2], "fixed": [0.2]}, "run": {"bootstrap": bootstrap, "progress": False},
           "output": {"dir": str(folder / "out")}}
    if adjust:
        raw["analysis"] = {"adjust_for": ["age"]}
    return run_audit(config_from_dict(raw, base_dir=folder), write=False).result


def test_bootstrap_zero_skips_the_per_person_counts(tmp_path, monkeypatch):
    calls = []
    listed = TileScan.people_counts

    def spy(self, *a, **k):
        calls.append(1)
        return listed(self, *a, **k)

    monkeypatch.setattr(TileScan, "people_counts", spy)
    off = _run(tmp_path, 0, adjust=False)
    assert calls == []
    on = _run(tmp_path, 20, adjust=False)
    assert calls == [1]
    cols = ["grouping", "group", "threshold_name", "threshold", "metric", "errors", "trials", "value", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(off.rates[cols], on.rates[cols])
    assert off.rates["boot_low"].isna().all() and on.rates["boot_low"].notna().any()
    assert set(on.rates["metric"]) == {"fmr", "fnmr"} and on.rates.loc[on.rates.group == "All", "errors"].gt(0).all()


def test_bootstrap_zero_with_an_adjustment_keeps_them(tmp_path, monkeypatch):
    """The adjustment's point ratios need the per-person counts even without replicates."""
    off = _run(tmp_path, 0, adjust=True)
    on = _run(tmp_path, 20, adjust=True)
    assert len(off.adjusted) == len(on.adjusted) > 0
    np.testing.assert_array_equal(off.adjusted["crude"].to_numpy(), on.adjusted["crude"].to_numpy())
    np.testing.assert_array_equal(off.adjusted["adjusted"].to_numpy(), on.adjusted["adjusted"].to_numpy())
    assert np.isfinite(on.adjusted["crude"].to_numpy()).any()
