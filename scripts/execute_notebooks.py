"""Execute the example notebooks in place, so that they are committed with their outputs.

    PYTHONPATH=. python scripts/execute_notebooks.py [notebooks/01-quickstart-london-dlib.ipynb ...]

Each notebook runs in a fresh kernel whose working directory is notebooks/, with a temporary
FACE_AUDIT_CACHE (so the quickstart computes its embeddings from scratch, as a new user's would)
and the Agg matplotlib backend. Cells carry no timing metadata, so re-running changes only what
the code prints. Needs nbclient, nbformat and ipykernel (the dev extra).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def execute(path: Path) -> None:
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="face-audit-nb-") as cache:
        os.environ["FACE_AUDIT_CACHE"] = cache
        os.environ["MPLBACKEND"] = "agg"
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                                         resources={"metadata": {"path": str(REPO / "notebooks")}})
        client.execute()
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"{path.relative_to(REPO)}: {path.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((REPO / "notebooks").glob("*.ipynb"))
    for p in paths:
        execute(p)
