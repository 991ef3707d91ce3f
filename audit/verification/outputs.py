"""Writing a 1:1 audit's outputs (results.json, tables/*.csv, index.html) without ever leaving a
mix of two runs unmarked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


from ..errors import ConfigError
from .result import AuditResult


#: Marks an output folder whose files are being replaced; if it stays, a run was killed while
#: moving its outputs into place and the folder may mix two runs.
INCOMPLETE_MARKER = "INCOMPLETE.txt"


def check_output_dir(out_dir: str | Path) -> None:
    """Raise a ConfigError (before any work) unless ``out_dir`` is, or can be made, a writable folder."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--output / field 'output.dir': {out_dir} is a file, not a folder; choose another output folder")
    probe = out_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--output / field 'output.dir': {out_dir} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output / field 'output.dir': {out_dir} cannot be written ({probe} is not writable); choose a writable output folder"
        )


def write_outputs(result: AuditResult, out_dir: str | Path, *, include_face_images: bool = False) -> list[Path]:
    """Write ``results.json``, ``tables/*.csv`` and ``index.html`` into ``out_dir`` without ever
    leaving a mix of two runs unmarked.

    Everything is first written into a temporary folder inside ``out_dir``; then a marker
    (:data:`INCOMPLETE_MARKER`) is created, the files are moved into place (``results.json``
    last), and the marker is removed. A failure while writing (a full disk) removes the temporary
    folder and leaves the previous outputs as they were.
    """
    from ..report import write_report

    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".face-audit-partial-", dir=out_dir))
    except OSError as exc:
        raise ConfigError(f"--output / field 'output.dir': cannot create {out_dir} ({exc.strerror or exc})") from exc
    marker = out_dir / INCOMPLETE_MARKER
    try:
        try:
            result.to_json(tmp / "results.json")
            result.write_tables(tmp / "tables")
            write_report(result, tmp, include_face_images=include_face_images)
        except OSError as exc:
            raise ConfigError(
                f"--output / field 'output.dir': writing the outputs into {out_dir} failed ({exc.strerror or exc}); "
                "nothing was replaced there. Free space or choose another folder and run again "
                "(embeddings are kept in the cache, so a rerun does not embed again)"
            ) from exc
        try:
            marker.write_text(
                "face-audit was moving a run's outputs into this folder and did not finish: results.json, index.html and "
                "tables/ may come from different runs. Run the audit again.\n", encoding="utf-8")
            old_tables = out_dir / "tables"
            if old_tables.is_dir() and not old_tables.is_symlink():
                trash = Path(tempfile.mkdtemp(prefix=".face-audit-old-", dir=out_dir))
                os.replace(old_tables, trash / "tables")
                os.replace(tmp / "tables", old_tables)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                if old_tables.is_symlink() or old_tables.exists():
                    old_tables.unlink()
                os.replace(tmp / "tables", old_tables)
            os.replace(tmp / "index.html", out_dir / "index.html")
            os.replace(tmp / "results.json", out_dir / "results.json")
            marker.unlink()
        except OSError as exc:
            raise ConfigError(
                f"--output / field 'output.dir': moving the outputs into {out_dir} failed ({exc.strerror or exc}); "
                f"{marker.name} there marks the folder incomplete"
            ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out_dir / "results.json", *sorted((out_dir / "tables").glob("*.csv")), out_dir / "index.html"]
