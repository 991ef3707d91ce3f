"""The example notebooks run top to bottom, offline, and are stored without outputs.

Each notebook is executed with nbclient in a fresh kernel whose working directory is notebooks/
and whose FACE_AUDIT_CACHE is a temporary folder (so the quickstart computes its 32 dlib
embeddings, about 10 s). Needs ``nbclient``, ``nbformat`` and ``ipykernel`` (skipped without them);
the quickstart also needs ../shared/datasets (or $FACE_AUDIT_MIRROR) and dlib.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: notebooks that run a model on the London images -> the modules they need besides the package
NEEDS_IMAGES = {"01-quickstart-london-dlib.ipynb": ("dlib", "face_recognition_models")}


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01-quickstart-london-dlib.ipynb", "02-compare-backends.ipynb", "03-nist-cross-demographic-fmr.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name}: clear outputs"
    assert "widgets" not in nb.get("metadata", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch, request):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if path.name in NEEDS_IMAGES:
        request.getfixturevalue("shared_dir")  # skips when ../shared/datasets is not available
        missing = [m for m in NEEDS_IMAGES[path.name] if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip(f"needs {missing} (pip install 'face-audit[dlib]')")
    monkeypatch.setenv("FACE_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o.get("output_type") == "error"]
