"""``face-audit run --data FOLDER --labels labels.csv --backend dlib`` end to end on a small London
subset (no TOML file), and scikit-learn as the oracle for the rates and the DET curve on the real
dlib scores it produced. The folder is built in tmp_path by symlinks; the embedding cache is the
test session's (tests/conftest.py), so nothing lands in the repository or the home folder."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dlib", reason="the dlib extra is not installed")
pytest.importorskip("face_recognition_models", reason="the dlib extra is not installed")
sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn (the dev extra) is the oracle here")

import audit  # noqa: E402
from audit.cli import main  # noqa: E402

#: 8 people (16 photos): 8 mated pairs, 112 impostor pairs; both genders, four ethnicities
SUBJECTS = ("001", "004", "006", "008", "024", "025", "030", "042")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_run(shared_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run_data")
    with open(shared_dir / "london" / "london_info.csv", newline="") as f:
        info = {r["face_id"]: r for r in csv.DictReader(f)}
    root = tmp / "my faces"  # a space in the name: it must not matter
    for s in SUBJECTS:
        (root / s).mkdir(parents=True)
        os.symlink(shared_dir / "london" / "neutral_front" / f"{s}_03.jpg", root / s / "neutral.jpg")
        os.symlink(shared_dir / "london" / "smiling_front" / f"{s}_08.jpg", root / s / "smiling.jpg")
    (tmp / "labels.csv").write_text("subject,ethnicity,gender\n" + "".join(
        f"{s},{info[s]['face_eth']},{info[s]['face_gender']}\n" for s in SUBJECTS))
    out = tmp / "report"
    # the run happens here, once per module, so that every test has its output whichever worker
    # (pytest-xdist) it lands on
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--quiet", "run", "--data", str(root), "--labels", str(tmp / "labels.csv"), "--backend", "dlib",
                     "--workers", "1", "--output", str(out), "--target-fmr", "1e-1,1e-2",
                     # the session's cache (tests/conftest.py), named here: a module fixture runs
                     # before the per-test fixture that sets $FACE_AUDIT_CACHE
                     "--cache-dir", str(tmp_path_factory.getbasetemp() / "face-audit-cache")])
    return tmp, root, out, code, stdout.getvalue(), stderr.getvalue()


def test_run_data_without_a_config(data_run):
    tmp, root, out, code, cap_out, cap_err = data_run
    assert code == 0, cap_err
    assert cap_err == ""  # --quiet: no progress bars, no messages
    lines = cap_out.splitlines()
    assert lines[0] == "my-faces: dlib"
    assert "comparisons: 8 mated, 112 impostor" in cap_out
    # every threshold's line, and the headline finding
    assert sum(line.startswith("  threshold ") for line in lines) == 3  # FMR=1e-1, FMR=1e-2, the backend default
    assert any(line.startswith("  finding: ") for line in lines)
    assert (out / "index.html").is_file()
    assert sorted(p.name for p in root.iterdir()) == sorted(SUBJECTS)  # the data folder is left untouched
    res = audit.load(out / "results.json")
    assert res.provenance["dataset"]["name"] == "my-faces"
    comp = res.composition.set_index(["grouping", "group"])
    assert int(comp.loc[("all", "All"), "subjects"]) == 8 and int(comp.loc[("all", "All"), "images"]) == 16


def _real_scores(root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The dlib embeddings of the run above, read back from the embedding cache (no inference)."""
    from audit.datasets import cache_dir
    from audit.images import sha256_file
    from audit.store import EmbeddingStore

    files = sorted(root.rglob("*.jpg"))
    samples = pd.DataFrame({"sample_id": [p.relative_to(root).as_posix() for p in files],
                            "subject": [p.parent.name for p in files], "sha256": [sha256_file(p) for p in files]})
    backend = audit.create_backend("dlib")
    backend.load()
    with EmbeddingStore(cache_dir() / "embeddings", backend.info()) as store:
        got = store.get_many(samples["sha256"])
    assert len(got) == len(samples), "the data_run fixture embeds them into the cache"
    return samples, np.stack([got[s].embedding for s in samples["sha256"]]).astype(np.float64)


def test_rates_and_det_match_sklearn_on_real_scores(data_run):
    tmp, root, out = data_run[:3]
    res = audit.load(out / "results.json")
    samples, emb = _real_scores(root)
    i, j = np.triu_indices(len(samples), 1)
    similarity = -np.linalg.norm(emb[i] - emb[j], axis=1)  # dlib: euclidean distance, negated once
    subj = samples["subject"].to_numpy()
    mated = (subj[i] == subj[j]).astype(int)
    assert mated.sum() == 8 and (1 - mated).sum() == 112

    fpr, tpr, thr = sklearn_metrics.roc_curve(mated, similarity, drop_intermediate=False)
    order = np.argsort(thr)  # ascending thresholds: a pair matches when similarity >= threshold

    def at(t: float) -> tuple[float, float]:
        k = np.searchsorted(thr[order], t, side="left")  # the smallest sklearn threshold >= t gives the same decisions
        if k == len(order):
            return 0.0, 1.0
        return float(fpr[order][k]), float(1 - tpr[order][k])

    for t in res.thresholds:  # overall FMR and FNMR at every threshold
        fmr, fnmr = at(t.value)
        assert t.achieved_fmr == pytest.approx(fmr, abs=1e-12), t.name
        assert t.achieved_fnmr == pytest.approx(fnmr, abs=1e-12), t.name

    det = res.det[res.det["grouping"] == "all"]
    assert len(det) > 3
    for row in det.itertuples(index=False):  # every DET point of the overall curve
        fmr, fnmr = at(row.threshold)
        assert row.fmr == pytest.approx(fmr, abs=1e-12) and row.fnmr == pytest.approx(fnmr, abs=1e-12)
    # sklearn's own DET curve runs through the same points
    d_fpr, d_fnr, d_thr = sklearn_metrics.det_curve(mated, similarity)
    for f, n, t in zip(d_fpr, d_fnr, d_thr):
        assert at(float(t)) == pytest.approx((f, n), abs=1e-12)

    # the same scores through the public API give the same per-group counts as the image run
    pairs = pd.DataFrame({"sample_a": samples.sample_id.to_numpy()[i], "sample_b": samples.sample_id.to_numpy()[j],
                          "score": -similarity})
    lab = {s: r for s, r in pd.read_csv(tmp / "labels.csv", dtype=str).set_index("subject").iterrows()}
    table = samples.assign(gender=[lab[s]["gender"] for s in subj], ethnicity=[lab[s]["ethnicity"] for s in subj])
    again = audit.from_scores(pairs, table[["sample_id", "subject", "gender", "ethnicity"]], higher_is_similar=False,
                              target_fmr=[], fixed=[-res.thresholds[0].value], bootstrap=0)
    cols = ["group", "fmr_errors", "fmr_trials", "fnmr_errors", "fnmr_trials"]
    ours = res.by_group("gender", res.thresholds[0].name)[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.by_group("gender")[cols].reset_index(drop=True), ours)
    json.loads((out / "results.json").read_text())  # still valid JSON
