"""LFW View 2 accuracy (the standard 10-fold protocol) for a backend, to compare with published figures.

The 6,000 pairs of pairs.txt come in 10 folds of 300 mated and 300 non-mated pairs. For each fold,
the threshold that maximises accuracy on the other nine folds is applied to it; the accuracy is
the mean (± standard deviation) over folds. A pair with an image the backend failed to acquire
cannot be scored: it is counted as an error ("all pairs"), and the accuracy over the scored pairs
only is printed beside it.

    python benchmarks/lfw_view2_accuracy.py dlib
    python benchmarks/lfw_view2_accuracy.py opencv-sface

Embeddings come from the face-audit cache (computed on first use: dlib takes about 20 minutes for
LFW on 2 cores, SFace about 5).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audit.backends.registry import create_backend  # noqa: E402
from audit.verification.protocol import read_pair_list
from audit.datasets import load_dataset  # noqa: E402
from audit.engine.pairs import score_pairs  # noqa: E402
from audit.verification.acquire import embed_table

PUBLISHED = {"dlib": "99.38% (dlib's model card)", "opencv-sface": "99.40% (99.32% quantised; OpenCV model zoo)"}


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (between two neighbouring scores) with the highest accuracy; ties: the lowest."""
    order = np.argsort(scores)
    s, y = scores[order], same[order]
    # accuracy when the threshold sits just above s[i-1]: non-mated below + mated at or above
    below_neg = np.concatenate([[0], np.cumsum(~y)])
    above_pos = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    acc = below_neg + above_pos
    i = int(np.argmax(acc))
    if i == 0:
        return float(s[0]) - 1e-9
    if i == len(s):
        return float(s[-1]) + 1e-9
    return float((s[i - 1] + s[i]) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backend", choices=sorted(PUBLISHED))
    ap.add_argument("--data-dir", default=os.environ.get("FACE_AUDIT_MIRROR", str(REPO.parent / "shared" / "datasets")))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    table = load_dataset("lfw", data_dir=args.data_dir, download=False)
    backend = create_backend(args.backend)
    samples, ok_rows, emb, stats = embed_table(table, backend, workers=args.workers, progress=False)
    info = backend.info()
    a, b = read_pair_list(Path(args.data_dir) / "lfw" / "pairs.txt", samples["sample_id"].tolist())
    subj = samples["subject"].to_numpy()
    same = subj[a] == subj[b]
    pos = np.full(len(samples), -1)
    pos[ok_rows] = np.arange(len(ok_rows))
    scored = (pos[a] >= 0) & (pos[b] >= 0)
    scores = np.full(len(a), np.nan)
    scores[scored] = score_pairs(emb, pos[a][scored], pos[b][scored], metric=info.metric)
    fold = np.arange(len(a)) // 600
    acc_all, acc_scored = [], []
    for k in range(10):
        train = (fold != k) & scored
        t = best_threshold(scores[train], same[train])
        test = fold == k
        correct = scored[test] & ((scores[test] >= t) == same[test])
        acc_all.append(correct.mean())
        acc_scored.append(correct[scored[test]].mean())
    print(f"backend {info.backend}:{info.model} ({info.metric}); {stats.cached} cached, {stats.computed} computed embeddings")
    print(f"pairs: {len(a)}, scored: {int(scored.sum())} ({int((~scored).sum())} involve an image that failed to acquire)")
    print(f"accuracy, all pairs (unscored = wrong): {100 * np.mean(acc_all):.2f}% ± {100 * np.std(acc_all):.2f}")
    print(f"accuracy, scored pairs only:            {100 * np.mean(acc_scored):.2f}% ± {100 * np.std(acc_scored):.2f}")
    print(f"published: {PUBLISHED[args.backend]}")


if __name__ == "__main__":
    main()
