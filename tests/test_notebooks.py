"""The example notebooks use only the public API, are committed with their (small) outputs, and
run top to bottom, offline. Re-execute them with ``scripts/execute_notebooks.py``.

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


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_with_small_clean_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert path.stat().st_size < 200_000, f"{path.name}: outputs too large; lower the figures' dpi"
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert cell.get("execution_count") is not None, f"{path.name}: run scripts/execute_notebooks.py"
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: a cell failed"
            text = "".join(out.get("text", ""))
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), f"{path.name}: stderr output {text[:200]!r}"
            assert "Warning" not in text and "/root/" not in text and "/home/" not in text, f"{path.name}: {text[:200]!r}"
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: cells were run out of order"
    assert "widgets" not in nb.get("metadata", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(path):
    import ast

    import audit

    nb = json.loads(path.read_text(encoding="utf-8"))
    src = "\n".join(line for cell in _code(nb) for line in cell.splitlines() if not line.lstrip().startswith("%"))
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "audit":
            pytest.fail(f"{path.name}: 'from {node.module} import ...': use `import audit` and its public names")
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.startswith("audit.")]
            assert not bad, f"{path.name}: imports {bad}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "audit":
            assert node.attr in audit.__all__, f"{path.name}: audit.{node.attr} is not in audit.__all__"


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
