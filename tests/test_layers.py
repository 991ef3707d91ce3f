"""The import rules of DESIGN.md: lower layers never import higher ones (nested imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

AUDIT = Path(__file__).resolve().parents[1] / "audit"

# module (file or package under audit/) -> audit modules it must never import
FORBIDDEN = {
    "metrics": {"backends", "datasets", "report", "pipeline", "store", "engine.local", "identification", "cli", "gate", "config", "inputs", "verification"},
    "backends": {"metrics", "report", "datasets", "pipeline", "verification", "identification", "gate", "cli"},
    "report": {"backends", "datasets", "pipeline", "store", "engine", "cli", "config", "inputs"},
    "datasets": {"backends", "metrics", "report", "pipeline", "verification", "gate", "cli"},
    "results": {"report", "pipeline", "backends", "datasets", "gate", "cli"},
    "gate": {"backends", "datasets", "pipeline", "report", "engine"},
    "findings": {"report", "backends", "datasets", "pipeline", "engine", "cli", "gate"},
    # the result views (tidy frames, the notebook display) read results only: no report code, no I/O layers
    "frames": {"report", "pipeline", "backends", "datasets", "store", "engine", "gate", "cli", "api", "config", "inputs"},
    "display": {"report", "pipeline", "backends", "datasets", "store", "engine", "gate", "cli", "api", "config", "inputs"},
    # the command line reaches the library through its modules, never the other way round
    "api": {"cli"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(AUDIT).with_suffix("")
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [".".join(base + [a.name]) for a in node.names]
                out.update(n for n in names if n)
            elif node.module and node.module.startswith("audit."):
                out.add(node.module[len("audit."):])
        elif isinstance(node, ast.Import):
            out.update(a.name[len("audit."):] for a in node.names if a.name.startswith("audit."))
    return out


def _files(layer: str) -> list[Path]:
    p = AUDIT / layer
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def test_lower_layers_never_import_higher_ones():
    bad = []
    for layer, forbidden in FORBIDDEN.items():
        for f in _files(layer):
            for mod in _imports(f):
                if any(mod == x or mod.startswith(x + ".") for x in forbidden):
                    bad.append(f"{f.relative_to(AUDIT.parent)} imports audit.{mod}")
    assert not bad, "layering broken:\n" + "\n".join(bad)
