"""Identification configs: the ``[identification]`` section of an audit TOML, validated.

An identification config is an audit config (``title``, ``[dataset]``, ``[backend]``, ``[run]``,
``[output]``, read by :func:`audit.verification.config.config_from_dict`) plus one section::

    [identification]
    scenario = "lfw-singletons"     # | "london-half" | "custom" | "cross-dataset"
    k = 10                          # candidate subjects per search
    rank = 1                        # FNIR counts a mate found at rank <= rank
    target_fpir = [1e-2, 1e-3]      # thresholds fixed on all non-mated searches
    fixed = []                      # given thresholds, in the backend's own units (e.g. 80 similarity)
    backend_default = true          # also the backend's own (1:1) default threshold
    gallery_per_subject = 1
    nonmated_fraction = 0.5         # "custom" and "london-half": share of subjects left out of the gallery
    enrol_rule = "first"            # "first" | "random" | { expression = "neutral" }
    probe_rule = { expression = "smiling" }   # optional: only these images search
    max_probes_per_subject = 2      # optional
    mated_subjects = 400            # "lfw-singletons": seeded subset of enrolled identities (optional)
    nonmated_subjects = 600         # "lfw-singletons": seeded subset of single-image identities (optional)
    stratify = "ethnicity"          # optional: column stratifying the non-mated draw
    search = "exact"                # | "faiss-hnsw" | "faiss-ivf" | "faiss-flat"
    search_options = { tile = 256 } # passed to the search backend
    failed_probes = "exclude"       # | "miss" (NIST: a probe that failed to acquire is a miss)
    bootstrap_replicates = 1000     # subject bootstrap; 0 turns it off

    [identification.probes]         # "cross-dataset" only: where the probes come from
    name = "london"                 # a manifest name, or manifest = "path.yaml"
    subjects = 50                   # optional seeded subset of probe subjects ([dataset] subjects = N subsets the gallery)
    # shared_subjects = false       # true when both datasets name the same people alike

The ``[thresholds]`` section of a 1:1 config does not apply (thresholds are FPIR targets here)
and is refused. Errors name the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..verification.config import AuditConfig, config_from_dict
from ..config import DatasetConfig, read_toml
from ..errors import ConfigError

__all__ = ["SCENARIOS", "IdentificationSettings", "IdentificationConfig", "load_identification_config",
           "identification_config_from_dict"]

SCENARIOS = ("lfw-singletons", "london-half", "custom", "cross-dataset")

_KEYS = {
    "scenario", "k", "rank", "target_fpir", "fixed", "backend_default", "gallery_per_subject", "nonmated_fraction",
    "enrol_rule", "probe_rule", "max_probes_per_subject", "mated_subjects", "nonmated_subjects", "stratify",
    "search", "search_options", "failed_probes", "bootstrap_replicates", "recall_probes", "probes",
}
_PROBE_KEYS = {"name", "manifest", "data_dir", "subjects", "shared_subjects"}


@dataclass(frozen=True)
class IdentificationSettings:
    """The validated ``[identification]`` section (see the module docstring for each field)."""

    scenario: str = "custom"
    k: int = 10
    rank: int = 1
    target_fpir: tuple[float, ...] = (1e-2, 1e-3)
    fixed: tuple[float, ...] = ()
    backend_default: bool = True
    gallery_per_subject: int = 1
    nonmated_fraction: float = 0.5
    enrol_rule: str | Mapping[str, Any] = "first"
    probe_rule: Mapping[str, Any] | None = None
    max_probes_per_subject: int | None = None
    mated_subjects: int | None = None
    nonmated_subjects: int | None = None
    stratify: str | None = None
    search: str = "exact"
    search_options: Mapping[str, Any] = field(default_factory=dict)
    failed_probes: str = "exclude"
    bootstrap_replicates: int = 1000
    recall_probes: int = 2000
    probes: DatasetConfig | None = None
    probe_subjects: int | None = None
    shared_subjects: bool = False


@dataclass(frozen=True)
class IdentificationConfig:
    """An audit config with its identification settings. ``base`` holds the shared sections."""

    base: AuditConfig
    identification: IdentificationSettings

    @property
    def title(self) -> str:
        return self.base.title

    @property
    def path(self) -> Path | None:
        return self.base.path

    @property
    def raw(self) -> Mapping[str, Any]:
        return self.base.raw

    @property
    def output_dir(self) -> Path:
        return self.base.output_dir


def load_identification_config(path: str | Path) -> IdentificationConfig:
    """Read and validate an identification config file.

    Raises
    ------
    ConfigError
        Naming the file and the field, saying what was expected and what was found.
    """
    path = Path(path)
    return identification_config_from_dict(read_toml(path), path=path)


def identification_config_from_dict(raw: Mapping[str, Any], *, path: Path | None = None,
                                    base_dir: Path | None = None) -> IdentificationConfig:
    """Validate an identification config given as a dict (as parsed from TOML)."""
    src = str(path) if path else "<config>"
    base_path = base_dir or (path.parent if path else Path.cwd())

    def err(fld: str, msg: str) -> ConfigError:
        return ConfigError(f"{src}: field '{fld}': {msg}")

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{src}: expected a TOML table at the top level")
    if "identification" not in raw:
        raise err("identification", "missing; an identification audit needs an [identification] section "
                                    "(scenario, k, target_fpir, ...)")
    if "thresholds" in raw:
        raise err("thresholds", "does not apply to an identification audit; give target_fpir, fixed and backend_default "
                                "in [identification]")
    sec = raw["identification"]
    if not isinstance(sec, Mapping):
        raise err("identification", f"expected a table [identification], found {type(sec).__name__}")
    unknown = sorted(set(sec) - _KEYS)
    if unknown:
        raise err(f"identification.{unknown[0]}", f"unknown key; allowed keys are {sorted(_KEYS)}")
    rest = {k: v for k, v in raw.items() if k != "identification"}
    base = config_from_dict(rest, path=path, base_dir=base_dir)
    base = AuditConfig(base.title, base.dataset, base.backend, base.thresholds, base.run, base.output_dir, base.path, dict(raw))

    def f(name: str) -> str:
        return f"identification.{name}"

    def integer(name: str, default: int | None, minimum: int = 1) -> int | None:
        v = sec.get(name, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise err(f(name), f"expected an integer >= {minimum}, found {v!r}")
        return v

    def boolean(name: str, default: bool) -> bool:
        v = sec.get(name, default)
        if not isinstance(v, bool):
            raise err(f(name), f"expected true or false, found {v!r}")
        return v

    def choice(name: str, default: str, allowed: tuple[str, ...] | list[str]) -> str:
        v = sec.get(name, default)
        if v not in allowed:
            raise err(f(name), f"expected one of {list(allowed)}, found {v!r}")
        return v

    def rule(name: str, default: Any, words: tuple[str, ...]) -> Any:
        v = sec.get(name, default)
        if v is None or (isinstance(v, str) and v in words):
            return v
        if isinstance(v, Mapping) and v and all(isinstance(x, (str, int, list)) for x in v.values()):
            return dict(v)
        allowed = " | ".join(f'"{w}"' for w in words)
        raise err(f(name), f"expected {allowed + ' or ' if words else ''}a table of column = value such as "
                           f"{{ expression = \"neutral\" }}, found {v!r}")

    scenario = choice("scenario", "custom", SCENARIOS)
    k = integer("k", 10)
    rank = integer("rank", 1)
    if rank > k:
        raise err(f("rank"), f"rank {rank} is above k = {k}; a mate can only be found among the k candidates")
    targets = sec.get("target_fpir", [1e-2, 1e-3])
    if not isinstance(targets, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1 for t in targets):
        raise err(f("target_fpir"), f"expected a list of rates in (0, 1] such as [1e-2, 1e-3], found {targets!r}")
    fixed = sec.get("fixed", [])
    if not isinstance(fixed, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in fixed):
        raise err(f("fixed"), f"expected a list of numbers in the backend's own units (e.g. [0.6] for a distance), found {fixed!r}")
    backend_default = boolean("backend_default", True)
    if not targets and not fixed and not backend_default:
        raise err("identification", "no threshold to evaluate: give target_fpir, fixed, or backend_default = true")
    frac = sec.get("nonmated_fraction", 0.5)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
        raise err(f("nonmated_fraction"), f"expected a number in [0, 1], found {frac!r}")
    stratify = sec.get("stratify")
    if stratify is not None and not isinstance(stratify, str):
        raise err(f("stratify"), f"expected a column name, found {stratify!r}")
    from .search import SEARCH_BACKENDS

    search = choice("search", "exact", sorted(SEARCH_BACKENDS))
    opts = sec.get("search_options", {})
    if not isinstance(opts, Mapping):
        raise err(f("search_options"), f"expected a table of options, found {opts!r}")
    from .analysis import FAILED_PROBES

    failed = choice("failed_probes", "exclude", FAILED_PROBES)
    boot = integer("bootstrap_replicates", 1000, minimum=0)

    probes = None
    probe_subjects = None
    shared = False
    pr = sec.get("probes")
    if scenario == "cross-dataset":
        if not isinstance(pr, Mapping):
            raise err(f("probes"), "the cross-dataset scenario needs [identification.probes] naming the probe dataset "
                                   "(name = \"london\" or manifest = \"path.yaml\")")
        unknown = sorted(set(pr) - _PROBE_KEYS)
        if unknown:
            raise err(f"identification.probes.{unknown[0]}", f"unknown key; allowed keys are {sorted(_PROBE_KEYS)}")
        if "name" not in pr and "manifest" not in pr:
            raise err("identification.probes.name", "missing; give the probe dataset's name or manifest")

        def rel(p: Any, fld: str) -> Path:
            if not isinstance(p, str):
                raise err(fld, f"expected a path string, found {p!r}")
            q = Path(p).expanduser()
            return q if q.is_absolute() else (base_path / q).resolve()

        manifest = rel(pr["manifest"], "identification.probes.manifest") if "manifest" in pr else None
        probes = DatasetConfig(name=str(pr.get("name", manifest.stem if manifest else "")), manifest=manifest,
                               data_dir=rel(pr["data_dir"], "identification.probes.data_dir") if "data_dir" in pr else None)
        v = pr.get("subjects")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise err("identification.probes.subjects", f"expected an integer >= 1, found {v!r}")
        probe_subjects = v
        shared = pr.get("shared_subjects", False)
        if not isinstance(shared, bool):
            raise err("identification.probes.shared_subjects", f"expected true or false, found {shared!r}")
    elif pr is not None:
        raise err(f("probes"), f"only used with scenario = \"cross-dataset\" (this config's scenario is {scenario!r})")

    settings = IdentificationSettings(
        scenario=scenario, k=k, rank=rank,
        target_fpir=tuple(sorted({float(t) for t in targets}, reverse=True)), fixed=tuple(float(x) for x in fixed),
        backend_default=backend_default, gallery_per_subject=integer("gallery_per_subject", 1),
        nonmated_fraction=float(frac), enrol_rule=rule("enrol_rule", "first", ("first", "random")),
        probe_rule=rule("probe_rule", None, ()), max_probes_per_subject=integer("max_probes_per_subject", None),
        mated_subjects=integer("mated_subjects", None), nonmated_subjects=integer("nonmated_subjects", None),
        stratify=stratify, search=search, search_options=dict(opts), failed_probes=failed, bootstrap_replicates=boot,
        recall_probes=integer("recall_probes", 2000), probes=probes, probe_subjects=probe_subjects,
        shared_subjects=shared,
    )
    return IdentificationConfig(base, settings)
