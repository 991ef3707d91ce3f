"""Nothing computed is lost: read-only caches, failed writes, interrupted moves and killed runs."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from audit.verification.result import AuditResult
from conftest import cli, config_text


@pytest.fixture
def ready(tiny, fake_backend):
    out, cache = tiny["tmp"] / "out", tiny["tmp"] / "cache"
    cfg = tiny["tmp"] / "run.toml"
    cfg.write_text(config_text(tiny["manifest"], out, cache))
    return {**tiny, "cfg": cfg, "out": out, "cache": cache}


def _read_only_sqlite(monkeypatch):
    real = sqlite3.connect

    def connect(database, *args, **kw):
        if not kw.get("uri"):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *args, **kw)

    monkeypatch.setattr("audit.store.sqlite3.connect", connect)


def test_read_only_cache_holding_every_embedding_still_runs(ready, capsys, monkeypatch):
    assert cli("run", ready["cfg"], "--data-dir", ready["data"]) == 0
    first = AuditResult.from_json(ready["out"] / "results.json")
    capsys.readouterr()
    _read_only_sqlite(monkeypatch)
    assert cli("run", ready["cfg"], "--data-dir", ready["data"], "--output", ready["tmp"] / "out2") == 0
    assert "all 12 from cache" in capsys.readouterr().out
    again = AuditResult.from_json(ready["tmp"] / "out2" / "results.json")
    assert again.rates[["group", "errors", "trials"]].equals(first.rates[["group", "errors", "trials"]])


def test_read_only_cache_lacking_embeddings_stops_before_computing(ready, capsys, monkeypatch):
    _read_only_sqlite(monkeypatch)
    assert cli("run", ready["cfg"], "--data-dir", ready["data"]) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "lacks 12 embedding(s)" in err and str(ready["cache"]) in err


def test_a_failed_write_keeps_the_old_outputs_and_leaves_no_partial_files(ready, capsys, monkeypatch):
    assert cli("run", ready["cfg"], "--data-dir", ready["data"]) == 0
    old = (ready["out"] / "results.json").read_bytes()
    capsys.readouterr()

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("audit.report.write_report", full_disk)
    assert cli("run", ready["cfg"], "--data-dir", ready["data"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "nothing was replaced" in err
    assert (ready["out"] / "results.json").read_bytes() == old
    leftovers = [p.name for p in ready["out"].iterdir() if p.name not in ("results.json", "index.html", "tables")]
    assert leftovers == [] and not list(ready["out"].rglob("*.tmp"))


def test_an_interrupted_move_leaves_the_folder_marked_incomplete(ready, capsys, monkeypatch):
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith("results.json") and "partial" in str(src) and not str(src).endswith(".tmp"):
            raise OSError(errno.EIO, "simulated crash")
        return real(src, dst)

    monkeypatch.setattr("audit.verification.outputs.os.replace", replace)
    assert cli("run", ready["cfg"], "--data-dir", ready["data"]) == 2
    assert "INCOMPLETE.txt" in capsys.readouterr().err
    assert (ready["out"] / "INCOMPLETE.txt").is_file() and (ready["out"] / "index.html").is_file()
    monkeypatch.setattr("audit.verification.outputs.os.replace", real)
    assert cli("run", ready["cfg"], "--data-dir", ready["data"]) == 0
    assert not (ready["out"] / "INCOMPLETE.txt").exists()
    assert sorted(p.name for p in ready["out"].iterdir()) == ["index.html", "results.json", "tables"]


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(ready, tmp_path):
    """kill -9 of a run: its worker processes end within seconds instead of finishing their
    queued batches and staying alive."""
    script = tmp_path / "slow_run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parents[1]), str(Path(__file__).parent)]!r}
        from audit.engine.local import embed_missing
        from audit.store import EmbeddingStore
        from fake_backend import QuadrantColourBackend
        b = QuadrantColourBackend(sleep=0.5)
        paths = {{f"{{i:064x}}": {str(ready['root'] / 'img' / 's1_1.png')!r} for i in range(200)}}
        with EmbeddingStore({str(tmp_path / 'store')!r}, b.info()) as store:
            embed_missing(b, paths, store, workers=2, batch_size=2, progress=False)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline:
            workers = [p for p in _children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]
            if len(workers) >= 2 and (tmp_path / "store").exists():
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(1.5)  # let them take batches
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "worker processes outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
