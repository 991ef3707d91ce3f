"""1:N identification audits: search an enrolled gallery with probes and measure, by group, how
often innocent people are returned as candidates (FPIR) and how often the right person is missed
(FNIR) — the police-search scenario.

>>> from audit.identification import run_identification                 # doctest: +SKIP
>>> run = run_identification("examples/london-identification-dlib.toml", data_dir="../shared/datasets")  # doctest: +SKIP
>>> run.result.aclu_table("ethnicity", "FPIR=1e-2")                      # doctest: +SKIP

Modules: :mod:`~audit.identification.split` (gallery and probes), :mod:`~audit.identification.search`
(the SearchBackend interface, exact and faiss search), :mod:`~audit.identification.analysis`
(thresholds and tables), :mod:`~audit.identification.result` (IdentificationResult),
:mod:`~audit.identification.config` (the ``[identification]`` TOML section) and
:mod:`~audit.identification.runner` (:func:`run_identification`). The pure metric functions live in
:mod:`audit.metrics.identification`.
"""

from __future__ import annotations

from typing import Any

from .result import RESULT_KIND, ID_TABLE_COLUMNS, IdentificationResult, IdentificationThreshold, read_result
from .search import (
    SEARCH_BACKENDS,
    CollectionSearch,
    ExactSearch,
    SearchBackend,
    SearchHits,
    brute_force_search,
    make_search_backend,
    recall_at_k,
)
from .search_faiss import FaissSearch
from .sharded import ShardedSearch  # also registers search = "exact-sharded"
from .split import (
    GalleryProbeSplit,
    IdentificationError,
    cross_dataset_split,
    lfw_singletons_split,
    london_half_split,
    split_gallery_probes,
)

__all__ = [
    "IdentificationError",
    "GalleryProbeSplit",
    "split_gallery_probes",
    "london_half_split",
    "lfw_singletons_split",
    "cross_dataset_split",
    "SearchBackend",
    "SearchHits",
    "ExactSearch",
    "FaissSearch",
    "CollectionSearch",
    "ShardedSearch",
    "SEARCH_BACKENDS",
    "make_search_backend",
    "recall_at_k",
    "brute_force_search",
    "CandidateLists",
    "search_split",
    "choose_identification_thresholds",
    "analyse_identification",
    "RESULT_KIND",
    "ID_TABLE_COLUMNS",
    "IdentificationThreshold",
    "IdentificationResult",
    "read_result",
    "IdentificationConfig",
    "IdentificationSettings",
    "load_identification_config",
    "identification_config_from_dict",
    "IdentificationRun",
    "run_identification",
    "add_identification_arguments",
    "identification_command",
    "identification_main",
]

# analysis, config and runner import the metrics, the config layer and the pipeline: load them on
# first use, so that reading a result (the gate, the report) stays light.
_LAZY = {
    "CandidateLists": "analysis", "search_split": "analysis", "choose_identification_thresholds": "analysis",
    "analyse_identification": "analysis",
    "IdentificationConfig": "config", "IdentificationSettings": "config", "load_identification_config": "config",
    "identification_config_from_dict": "config",
    "IdentificationRun": "runner", "run_identification": "runner", "add_identification_arguments": "runner",
    "identification_command": "runner", "identification_main": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
