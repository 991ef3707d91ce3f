"""Import rules for the issue-14 modules (classifier audits, skin tone, mitigation), as tests/test_layers.py states them for the older ones."""

from __future__ import annotations

import ast
from pathlib import Path

AUDIT = Path(__file__).resolve().parents[2] / "audit"

FORBIDDEN = {
    "attributes/metrics.py": {"backends", "datasets", "report", "pipeline", "store", "engine", "cli", "config", "inputs", "attributes.runner", "attributes.predictors"},
    "attributes/predictors.py": {"metrics", "report", "datasets", "pipeline", "cli", "attributes.runner"},
    "attributes/result.py": {"report", "pipeline", "backends", "datasets", "cli"},
    "report/classify.py": {"backends", "datasets", "pipeline", "store", "engine", "cli", "config", "inputs", "attributes.runner", "attributes.predictors"},
    "report/skintone.py": {"backends", "datasets", "pipeline", "store", "engine", "cli", "config", "inputs", "skintone.runner", "skintone.landmarks"},
    "report/mitigation.py": {"backends", "datasets", "pipeline", "store", "engine", "cli", "config", "inputs", "mitigation.runner"},
    "skintone/measure.py": {"backends", "datasets", "report", "pipeline", "store", "engine", "cli", "config"},
    "skintone/people.py": {"backends", "datasets", "report", "pipeline", "store", "engine", "cli", "config"},
    "mitigation/methods.py": {"backends", "datasets", "report", "pipeline", "store", "engine", "cli", "config"},
    "mitigation/evaluate.py": {"backends", "datasets", "report", "pipeline", "store", "cli", "config"},
    "labelfile.py": {"backends", "metrics", "report", "pipeline", "engine", "cli"},
}


def _imports(path: Path) -> set[str]:
    rel = path.relative_to(AUDIT).with_suffix("")
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module and node.module.startswith("audit."):
                out.add(node.module[len("audit."):])
        elif isinstance(node, ast.Import):
            out.update(a.name[len("audit."):] for a in node.names if a.name.startswith("audit."))
    return out


def test_new_modules_respect_the_layers():
    bad = []
    for rel, forbidden in FORBIDDEN.items():
        f = AUDIT / rel
        if not f.is_file():
            continue
        for mod in _imports(f):
            if any(mod == x or mod.startswith(x + ".") for x in forbidden):
                bad.append(f"{rel} imports audit.{mod}")
    assert not bad, "layering broken:\n" + "\n".join(bad)
