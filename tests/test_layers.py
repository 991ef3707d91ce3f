"""The import rules of DESIGN.md: lower layers never import higher ones (nested imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

AUDIT = Path(__file__).resolve().parents[1] / "audit"

# module (file or package under audit/) -> audit modules it must never import
PURE_FORBIDDEN = {"backends.registry", "backends.dlib", "backends.deepface", "backends.opencv_sface", "backends.rekognition",
                  "datasets.manifest", "datasets.hf", "datasets.locate", "datasets.init", "report", "store",
                  "verification.runner", "verification.acquire", "verification.inputs", "cli", "gate", "config"}

FORBIDDEN = {
    "metrics": {"backends", "datasets", "report", "verification", "identification", "store", "engine", "cli", "gate", "config",
                "api", "findings", "results"},
    "backends": {"metrics", "report", "datasets", "verification", "identification", "gate", "cli", "engine"},
    "report": {"backends", "datasets", "verification.runner", "verification.acquire", "verification.inputs", "store", "engine",
               "cli", "config", "identification.runner"},
    "datasets": {"backends", "metrics", "report", "verification", "identification", "gate", "cli", "engine"},
    "results": {"report", "verification", "identification", "backends", "datasets", "gate", "cli", "findings", "engine"},
    "verification.result": {"report", "verification.runner", "verification.acquire", "backends", "datasets", "gate", "cli",
                            "findings", "engine"},
    # the 1:1 analysis is pure computation: no I/O layers, no models (label helpers and BackendInfo are plain data)
    "verification.analysis": {*PURE_FORBIDDEN},
    "verification.intervals": {*PURE_FORBIDDEN, "engine"},
    "gate": {"backends", "datasets", "verification.runner", "verification.acquire", "report", "engine", "identification.runner"},
    "findings": {"report", "backends", "datasets", "verification.runner", "engine", "cli", "gate"},
    # the result views (tidy frames, the notebook display) read results only: no report code, no I/O layers
    "frames": {"report", "verification.runner", "verification.acquire", "verification.inputs", "backends", "datasets", "store",
               "engine", "gate", "cli", "api", "config"},
    "display": {"report", "verification.runner", "verification.acquire", "verification.inputs", "backends", "datasets", "store",
                "engine", "gate", "cli", "api", "config"},
    # the engine spreads and scores work; it knows nothing of reports, runs or the command line
    "engine": {"report", "cli", "gate", "verification.runner", "verification.acquire", "datasets", "findings", "identification"},
    # the shared config reader knows no audit kind
    "config": {"verification", "identification", "attributes", "skintone", "mitigation", "report", "gate", "engine", "backends"},
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
    p = AUDIT.joinpath(*layer.split("."))
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def test_lower_layers_never_import_higher_ones():
    bad = []
    for layer, forbidden in FORBIDDEN.items():
        for f in _files(layer):
            for mod in _imports(f):
                if any(mod == x or mod.startswith(x + ".") for x in forbidden):
                    bad.append(f"{f.relative_to(AUDIT.parent)} imports audit.{mod}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def _module_of(path: Path) -> str:
    rel = path.relative_to(AUDIT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of audit imported when ``path`` is imported (module level only; nested imports are lazy)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(AUDIT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts)
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("audit."):
                mod = node.module[len("audit."):]
            else:
                continue
            for a in node.names:  # "from . import x" may name a module
                sub = f"{mod}.{a.name}" if mod else a.name
                out.add(sub if sub in known else mod)
        elif isinstance(node, ast.Import):
            out.update(a.name[len("audit."):] for a in node.names if a.name.startswith("audit."))
    return {m for m in out if m in known}


def test_no_import_cycles():
    """No two modules of audit import each other, directly or through others, at import time."""
    files = {_module_of(f): f for f in AUDIT.rglob("*.py")}
    known = set(files)
    graph = {m: _top_level_imports(f, known) - {m} for m, f in files.items()}
    # importing a module imports its packages' __init__ first: that is not a cycle of the module's making
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles among audit modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_module_is_over_600_lines():
    """A module does one job: none in audit/ is over 600 lines (split by job, as engine/ and gate/ are)."""
    long = {str(f.relative_to(AUDIT.parent)): n for f in AUDIT.rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, f"modules over 600 lines: {long}"


def test_the_two_audit_kinds_have_the_same_parts():
    """verification/ and identification/ stand side by side with config, analysis, runner and result."""
    for kind in ("verification", "identification"):
        for part in ("config", "analysis", "runner", "result"):
            assert (AUDIT / kind / f"{part}.py").is_file(), f"audit/{kind}/{part}.py is missing"
    assert (AUDIT / "verification" / "protocol.py").is_file() and (AUDIT / "identification" / "split.py").is_file()
