"""First and cached run time of the London audit for each example config.

The first run starts from an empty embedding cache (a fresh $FACE_AUDIT_CACHE); the second run
reuses it and must run no inference. Both run the real command, `face-audit run`.

    python benchmarks/london_audit.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", default=["examples/london-dlib.toml", "examples/london-deepface-dlib.toml"])
    ap.add_argument("--data-dir", default=os.environ.get("FACE_AUDIT_MIRROR", str(REPO.parent / "shared" / "datasets")))
    args = ap.parse_args()
    print(f"{'config':38s} {'first s':>8s} {'cached s':>8s} {'ratio':>6s}  cached run's note")
    for cfg in args.configs:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, FACE_AUDIT_CACHE=cache)
            cmd = [sys.executable, "-m", "audit.cli", "run", cfg, "--data-dir", args.data_dir, "--output", out, "--no-progress"]
            times, outputs = [], []
            for _ in range(2):
                t0 = time.perf_counter()
                p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                if p.returncode != 0:
                    sys.exit(f"{cfg} failed:\n{p.stderr}")
                outputs.append(p.stdout + p.stderr)
            note = next((l.strip() for l in outputs[1].splitlines() if "cache" in l), "?")
            print(f"{cfg:38s} {times[0]:8.1f} {times[1]:8.1f} {times[1] / times[0]:6.2f}  {note}", flush=True)


if __name__ == "__main__":
    main()
