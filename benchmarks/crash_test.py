"""Crash test: ``kill -9`` a 40-image London run at 10 points, rerun it, and check that nothing is
lost or mixed up.

A clean run of 20 London subjects (40 photos) with dlib is the reference. Then a second cache
and output folder go through 10 runs, each killed with SIGKILL at a chosen moment (before the
workers start, at growing numbers of stored embeddings, and while scoring and writing), and a
final run to completion. After every kill the script checks that

- no worker process of the killed run is still alive (workers die with their parent),
- the embedding store passes SQLite's ``integrity_check`` and holds only whole rows,
- the output folder is either a complete earlier run or marked ``INCOMPLETE.txt``;

and at the end that the final results equal the reference (every table and threshold), and how
many embeddings were computed more than once (the work a kill threw away).

Each run is the real command (``audit.cli.main``) in its own process; a thin wrapper around the
dlib backend appends the *file name* of each image it embeds to a log (never pixels or
vectors), which is how redone embeddings are counted.

    python benchmarks/crash_test.py [--data-dir ../shared/datasets] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

try:  # the wrapper backend: importable by spawned workers (sys.path holds this folder)
    from audit.backends.dlib import DlibBackend

    class CountingDlib(DlibBackend):
        """dlib, logging the file name of every image it embeds to $CRASH_TEST_LOG."""

        name = "counting-dlib"

        def embed_path(self, path):  # noqa: ANN001
            res = super().embed_path(path)
            fd = os.open(os.environ["CRASH_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (Path(path).name + "\n").encode())
            finally:
                os.close(fd)
            return res
except ImportError:  # pragma: no cover - dlib not installed
    CountingDlib = None


def _driver(argv: list[str]) -> int:
    """Run the real CLI with the counting backend registered (in a child process)."""
    from audit.backends.registry import register_backend
    from audit.cli import main

    register_backend("counting-dlib", "crash_test:CountingDlib", replace=True)
    return main(argv)


CONFIG = """\
title = "crash test"
[dataset]
name = "london"
subjects = 20
groupings = [["ethnicity"], ["gender"]]
[backend]
name = "counting-dlib"
options = {{ upsample = 1, multiple_faces = "largest" }}
[thresholds]
target_fmr = [1e-2]
backend_default = true
[run]
workers = {workers}
batch_size = 2
seed = 0
bootstrap = 200
progress = false
cache_dir = "{cache}"
[output]
dir = "{out}"
"""


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _store_rows(cache: Path) -> int:
    dbs = list((cache / "embeddings").glob("*.sqlite")) if (cache / "embeddings").is_dir() else []
    if not dbs:
        return 0
    try:
        con = sqlite3.connect(f"{dbs[0].resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _store_check(cache: Path) -> tuple[str, int, int]:
    """(integrity_check answer, rows, rows whose vector length disagrees with dim)."""
    (db,) = list((cache / "embeddings").glob("*.sqlite"))
    con = sqlite3.connect(db, timeout=30)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        rows = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        bad = con.execute("SELECT COUNT(*) FROM results WHERE (vector IS NULL) != (dim = 0) OR "
                          "(vector IS NOT NULL AND length(vector) != 4 * dim)").fetchone()[0]
    finally:
        con.close()
    return ok, int(rows), int(bad)


def _output_state(out: Path) -> str:
    if not out.exists():
        return "no output yet"
    if (out / "INCOMPLETE.txt").exists():
        return "marked INCOMPLETE"
    if (out / "results.json").is_file():
        from audit.verification.result import AuditResult

        AuditResult.from_json(out / "results.json")
        return "complete (an earlier run's)" if (out / "index.html").is_file() else "results.json without index.html!"
    return "empty"


def _start(cfg: Path, data_dir: str, env: dict) -> subprocess.Popen:
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import crash_test; sys.exit(crash_test._driver(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "run", str(cfg), "--data-dir", data_dir],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _tables(path: Path) -> dict:
    from audit.verification.result import AuditResult

    r = AuditResult.from_json(path)
    out = {name: getattr(r, name) for name in ("composition", "fta", "rates", "cross_fmr", "disparity", "score_hist", "det")}
    out["samples"] = r.samples[["sample_id", "status", "n_faces"]]
    out["thresholds"] = [t.to_dict() for t in r.thresholds]
    return out


def _same(a: dict, b: dict) -> list[str]:
    diff = []
    for k in a:
        if k == "thresholds":
            if json.dumps(a[k], sort_keys=True) != json.dumps(b[k], sort_keys=True):
                diff.append(k)
        elif not a[k].reset_index(drop=True).equals(b[k].reset_index(drop=True)):
            diff.append(k)
    return diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("FACE_AUDIT_MIRROR", str(REPO.parent / "shared" / "datasets")))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if CountingDlib is None:
        print("dlib is not installed: pip install 'face-audit[dlib]'")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="face-audit-crash-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
           "FACE_AUDIT_CACHE": str(tmp / "home-cache"), "CRASH_TEST_LOG": str(tmp / "embedded.log")}

    # the reference: one clean run
    ref_cfg = tmp / "ref.toml"
    ref_cfg.write_text(CONFIG.format(workers=args.workers, cache=tmp / "ref-cache", out=tmp / "ref-out"))
    t0 = time.perf_counter()
    p = _start(ref_cfg, args.data_dir, {**env, "CRASH_TEST_LOG": str(tmp / "ref.log")})
    if p.wait() != 0:
        print("the reference run failed")
        return 1
    ref_seconds = time.perf_counter() - t0
    n_images = len(set((tmp / "ref.log").read_text().split()))
    print(f"reference run: {n_images} images embedded, {ref_seconds:.1f} s, {args.workers} workers, batch size 2")

    cfg = tmp / "crash.toml"
    cache, out = tmp / "crash-cache", tmp / "crash-out"
    cfg.write_text(CONFIG.format(workers=args.workers, cache=cache, out=out))
    # kill points: (description, stored rows to wait for or None, extra seconds after that)
    points = [("at start-up (1 s)", None, 1.0), ("after 2 stored", 2, 0.0), ("after 6 stored", 6, 0.0),
              ("after 10 stored", 10, 0.0), ("after 14 stored", 14, 0.0), ("after 18 stored", 18, 0.0),
              ("after 24 stored", 24, 0.0), ("after 30 stored", 30, 0.0), ("after 36 stored", 36, 0.0),
              ("all stored: scoring or writing", n_images, 1.5)]
    print(f"{'#':>2s}  {'kill point':32s} {'rows before':>11s} {'rows after':>10s} {'workers':>7s} {'left alive':>10s}  "
          f"{'integrity':9s}  output folder")
    failures = 0
    for i, (label, rows, extra) in enumerate(points, 1):
        before = _store_rows(cache)
        proc = _start(cfg, args.data_dir, env)
        deadline = time.time() + 600
        seen: set[int] = set()
        while time.time() < deadline and proc.poll() is None:
            seen.update(_children(proc.pid))
            if rows is None or _store_rows(cache) >= rows:
                break
            time.sleep(0.05)
        end = time.time() + extra
        while time.time() < end and proc.poll() is None:
            seen.update(_children(proc.pid))
            time.sleep(0.05)
        seen.update(_children(proc.pid))
        finished_first = proc.poll() is not None
        if not finished_first:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop = time.time() + 10
        while time.time() < stop and any(_alive(c) for c in seen):
            time.sleep(0.1)
        alive = [c for c in seen if _alive(c)]
        for c in alive:  # do not leave them behind, but count them as a failure
            os.kill(c, signal.SIGKILL)
        ok, after, bad = _store_check(cache) if (cache / "embeddings").is_dir() else ("no store", 0, 0)
        state = _output_state(out)
        failures += bool(alive) + (ok not in ("ok", "no store")) + bool(bad) + (state == "results.json without index.html!")
        note = " (the run finished before the kill)" if finished_first else ""
        print(f"{i:2d}  {label:32s} {before:11d} {after:10d} {len(seen):7d} {len(alive):10d}  {ok:9s}  {state}{note}")

    p = _start(cfg, args.data_dir, env)
    code = p.wait()
    ok, rows, bad = _store_check(cache)
    log = Counter((tmp / "embedded.log").read_text().split())
    embedded = sum(log.values())
    redone = embedded - len(log)
    diff = _same(_tables(tmp / "ref-out" / "results.json"), _tables(out / "results.json"))
    final_state = _output_state(out)
    print(f"final rerun: exit {code}; store {rows} rows, integrity {ok}, {bad} malformed rows; output {final_state}")
    print(f"embeddings computed over the 11 crashed/final runs: {embedded} for {len(log)} images; redone: {redone} "
          f"(thrown away by the kills; at most the batches in flight)")
    print("final results equal the clean run's: " + ("yes (every table and threshold)" if not diff else f"NO, differ in {diff}"))
    failures += (code != 0) + (ok != "ok") + bool(bad) + bool(diff) + (rows != n_images)
    print("PASS" if not failures else f"FAIL ({failures} problem(s))")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
