"""Start-up time of the ``face-audit`` command against the bare interpreter and ``import audit``.

Each command runs ``--repeat`` times in a fresh interpreter; the median and the fastest wall-clock
times are printed. ``face-audit --help`` must stay within 0.5 s here (issue 12): the parser imports
no gate, 1:N runner, pandas or matplotlib until a command that needs them runs.

    python benchmarks/cli_startup.py --repeat 15 [--repo OTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    'python -c "import audit"': [sys.executable, "-c", "import audit"],
    "face-audit --help": [sys.executable, "-m", "audit.cli", "--help"],
    "face-audit run --help": [sys.executable, "-m", "audit.cli", "run", "--help"],
    "face-audit gate --help": [sys.executable, "-m", "audit.cli", "gate", "--help"],
}


def time_command(cmd: list[str], repeat: int, repo: Path) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(repo))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        # run from a neutral folder: `python -m` puts the working directory first on sys.path
        subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose audit package is timed (default: this one)")
    args = ap.parse_args()
    print(f"{'command':28s} {'median s':>9s} {'min s':>7s}   ({args.repeat} runs each, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f})")
    for label, cmd in COMMANDS.items():
        t = time_command(cmd, args.repeat, args.repo)
        print(f"{label:28s} {statistics.median(t):9.3f} {min(t):7.3f}")


if __name__ == "__main__":
    main()
