"""face-audit: measure how a face recognition system's errors differ across demographic groups.

The public API (everything a notebook needs):

>>> import audit                                                                # doctest: +SKIP
>>> result = audit.run("examples/london-dlib.toml", subjects=16)                # 1:1, images + a backend
>>> result = audit.from_scores(pairs_df, samples_df)                            # 1:1, a vendor's scores
>>> result = audit.from_embeddings(array, samples_df)                           # 1:1, your own embeddings
>>> result = audit.identify("examples/london-identification-dlib.toml")         # 1:N search
>>> result = audit.load("reports/london-dlib/results.json")                     # either kind
>>> result.overall, result.by_group("ethnicity", "FMR=1e-3")
>>> result.ratio(reference="White", grouping="ethnicity"), result.difference(reference="largest")
>>> result.same_vs_cross_group("ethnicity+gender"), result.to_aequitas()

Names are loaded on first use, so ``import audit`` (and the ``face-audit`` command) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # running audits
    "run",
    "identify",
    "from_scores",
    "from_embeddings",
    "load",
    # results and their parts
    "AuditResult",
    "IdentificationResult",
    "ThresholdInfo",
    "Finding",
    "executive_summary",
    # datasets
    "init_dataset",
    "load_dataset",
    # backends
    "available_backends",
    "create_backend",
    # figures (matplotlib Figure objects)
    "plots",
    # errors
    "FaceAuditError",
    "ConfigError",
    "DataError",
    "ResultsError",
]

# public name -> module that defines it (imported on first access)
_LAZY = {
    "run": "api", "identify": "api", "from_scores": "api", "from_embeddings": "api", "load": "api",
    "AuditResult": "verification.result", "ThresholdInfo": "results",
    "IdentificationResult": "identification.result",
    "Finding": "findings", "executive_summary": "findings",
    "init_dataset": "datasets.init", "load_dataset": "datasets",
    "available_backends": "backends.registry", "create_backend": "backends.registry",
    "FaceAuditError": "errors", "ConfigError": "errors", "DataError": "errors", "ResultsError": "errors",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "plots":
        return importlib.import_module(".report.plots", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
