"""The public Python API: ``audit.run``, ``audit.identify``, ``audit.from_scores``,
``audit.from_embeddings`` and ``audit.load``.

Each returns a frozen result (:class:`~audit.verification.result.AuditResult` for 1:1 verification,
:class:`~audit.identification.IdentificationResult` for 1:N search) that a notebook reads with
``result.overall``, ``result.by_group(grouping, threshold)``, ``result.ratio(reference=...)``,
``result.difference(reference=...)`` and ``result.same_vs_cross_group(grouping)``, and that
Jupyter shows as a compact table. Nothing here prints; progress bars appear only on a terminal
unless ``progress=True``.

>>> import audit                                                              # doctest: +SKIP
>>> result = audit.run("examples/london-dlib.toml", subjects=16)              # doctest: +SKIP
>>> result.by_group("ethnicity", "FMR=1e-3")                                  # doctest: +SKIP
>>> result.ratio(reference="White", grouping="ethnicity")                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError

__all__ = ["run", "identify", "from_scores", "from_embeddings", "load", "OVERRIDES"]

#: Keyword overrides accepted by :func:`run` and :func:`identify` -> (config section, key).
#: A section name itself (``dataset={...}``) merges a table into that section.
OVERRIDES: dict[str, tuple[str, str]] = {
    "title": ("", "title"),
    "dataset": ("dataset", "name"),
    "manifest": ("dataset", "manifest"),
    "subjects": ("dataset", "subjects"),
    "groupings": ("dataset", "groupings"),
    "balance": ("dataset", "balance"),
    "adjust_for": ("analysis", "adjust_for"),
    "duplicates": ("data", "duplicates"),
    "backend": ("backend", "name"),
    "backend_options": ("backend", "options"),
    "target_fmr": ("thresholds", "target_fmr"),
    "fixed": ("thresholds", "fixed"),
    "backend_default": ("thresholds", "backend_default"),
    "workers": ("run", "workers"),
    "batch_size": ("run", "batch_size"),
    "seed": ("run", "seed"),
    "cache_dir": ("run", "cache_dir"),
    "progress": ("run", "progress"),
    "bootstrap": ("run", "bootstrap"),
    "interval": ("run", "interval"),
    "impostors": ("protocol", "impostors"),
    "include_face_images": ("output", "include_face_images"),
}
_SECTIONS = ("dataset", "backend", "thresholds", "run", "output", "protocol", "disparity", "identification", "scores", "embeddings",
             "analysis", "data")


def _listify(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_listify(x) for x in v]
    if isinstance(v, list):
        return [_listify(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def _merge(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a parsed config with keyword overrides applied (see :data:`OVERRIDES`)."""
    out = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        if value is None:
            continue
        if key in _SECTIONS and isinstance(value, Mapping):
            section = dict(out.get(key) or {})
            section.update({k: _listify(v) for k, v in value.items()})
            out[key] = section
            continue
        if key not in OVERRIDES:
            raise ConfigError(
                f"unknown override {key}=...; accepted: {sorted(OVERRIDES)}, or a section as a dict "
                f"({', '.join(f'{s}={{...}}' for s in _SECTIONS[:4])}, ...)"
            )
        section, field = OVERRIDES[key]
        if key == "groupings":
            value = [[g] if isinstance(g, str) else list(g) for g in value]
        if key in ("target_fmr", "fixed") and isinstance(value, (int, float)):
            value = [value]
        if section == "":
            out[field] = _listify(value)
        else:
            tbl = dict(out.get(section) or {})
            tbl[field] = _listify(value)
            out[section] = tbl
    return out


def _raw_and_path(config: Any) -> tuple[dict[str, Any], Path | None]:
    from .verification.config import AuditConfig
    from .config import read_toml

    if isinstance(config, (str, Path)):
        path = Path(config)
        return read_toml(path), path
    if isinstance(config, AuditConfig):
        return dict(config.raw), config.path
    base = getattr(config, "base", None)  # an IdentificationConfig
    if isinstance(base, AuditConfig):
        return dict(base.raw), base.path
    if isinstance(config, Mapping):
        return dict(config), None
    raise ConfigError(f"expected a config path, a dict (parsed TOML) or a loaded config, got {type(config).__name__}")


def _auto_progress(raw: dict[str, Any], progress: bool | None) -> dict[str, Any]:
    run_tbl = dict(raw.get("run") or {})
    if progress is not None:
        run_tbl["progress"] = bool(progress)
    elif "progress" not in run_tbl:
        # bars on a terminal only: a notebook (or a log file) gets none, and no TqdmWarning
        run_tbl["progress"] = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return {**raw, "run": run_tbl}


def run(
    config: Any,
    /,
    *,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
):
    """Run a 1:1 verification audit and return its result.

    Parameters
    ----------
    config : path, dict or AuditConfig
        A TOML config file (``examples/london-dlib.toml``), the same as a dict, or a loaded config.
    data_dir : path, optional
        A folder holding the dataset (searched first).
    output_dir : path, optional
        Also write ``results.json``, ``tables/*.csv`` and ``index.html`` there (default: write nothing).
    log : callable, optional
        Receives one-line progress messages (``log=print`` to see them).
    **overrides
        Config values by name: ``subjects=16``, ``backend="dlib"``, ``target_fmr=[1e-3]``,
        ``groupings=[["ethnicity"], ["ethnicity", "gender"]]``, ``workers=2``, ``bootstrap=0``,
        ``seed=1``, ``progress=False``, ... (:data:`OVERRIDES`), or a whole section as a dict
        (``run={"workers": 2}``). They are validated like the file (errors name the field).

    Returns
    -------
    AuditResult
        ``result.provenance["timing"]`` says how many embeddings were computed or cached.

    Examples
    --------
    >>> result = audit.run("examples/london-dlib.toml", subjects=16, workers=2)   # doctest: +SKIP
    """
    from .verification.config import config_from_dict
    from .verification.runner import run_audit

    raw, path = _raw_and_path(config)
    progress = overrides.pop("progress", None)
    raw = _auto_progress(_merge(raw, overrides), progress)
    cfg = config_from_dict(raw, path=path, base_dir=None if path else Path.cwd())
    done = run_audit(cfg, data_dir=data_dir, output_dir=output_dir, write=output_dir is not None,
                     log=log or (lambda msg: None))
    return done.result


def identify(
    config: Any,
    /,
    *,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
):
    """Run a 1:N identification (search) audit and return its result.

    Parameters are those of :func:`run`; the config needs an ``[identification]`` section
    (``examples/london-identification-dlib.toml``); ``identification={...}`` overrides it.

    Returns
    -------
    IdentificationResult
        FPIR and FNIR by group (``result.by_group``), the ACLU-style table (``result.aclu_table``).
    """
    from .identification.config import identification_config_from_dict
    from .identification.runner import run_identification

    raw, path = _raw_and_path(config)
    progress = overrides.pop("progress", None)
    raw = _auto_progress(_merge(raw, overrides), progress)
    cfg = identification_config_from_dict(raw, path=path, base_dir=None if path else Path.cwd())
    done = run_identification(cfg, data_dir=data_dir, output_dir=output_dir, write=output_dir is not None,
                              log=log or (lambda msg: None))
    return done.result


def load(path: str | Path):
    """Read a ``results.json`` of either kind (1:1 :class:`~audit.verification.result.AuditResult` or 1:N
    :class:`~audit.identification.IdentificationResult`)."""
    from .identification.result import read_result

    return read_result(path)


# ---------------------------------------------------------------------------- in-memory inputs
_SAMPLE_FIELDS = {"sample_id", "subject", "status", "n_faces", "detail", "path"}


def _infer_groups(columns: Sequence[str], *, pairs: bool) -> list[str]:
    if pairs:
        a = {c[:-2] for c in columns if c.endswith("_a")}
        b = {c[:-2] for c in columns if c.endswith("_b")}
        return [c for c in sorted(a & b) if c not in ("sample", "subject")]
    return [c for c in columns if c not in _SAMPLE_FIELDS]


def _settings(title: str | None, target_fmr, fixed, bootstrap: int, seed: int, interval: str, groupings) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "thresholds": {"target_fmr": _listify(list(target_fmr)), "fixed": _listify(list(fixed)), "backend_default": False},
        "run": {"bootstrap": int(bootstrap), "seed": int(seed), "interval": interval, "progress": False},
    }
    if title is not None:
        raw["title"] = title
    return raw


def _in_memory(result, folder: str, label: str):
    """The result with the temporary folder's paths in its provenance replaced by ``label``."""
    import dataclasses

    def clean(v: Any) -> Any:
        if isinstance(v, str) and folder in v:
            return label
        if isinstance(v, Mapping):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return dataclasses.replace(result, provenance=clean(dict(result.provenance)))


def _frame(data: Any, what: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        from .verification.inputs import read_table

        return read_table(data)
    raise ConfigError(f"{what}: expected a pandas DataFrame or a CSV/Parquet path, got {type(data).__name__}")


def from_scores(
    pairs: Any,
    samples: Any = None,
    *,
    groups: Sequence[str] | None = None,
    groupings: Sequence[Sequence[str]] | None = None,
    higher_is_similar: bool = True,
    two_sided: bool = False,
    target_fmr: Sequence[float] = (1e-2, 1e-3),
    fixed: Sequence[float] = (),
    bootstrap: int = 1000,
    seed: int = 0,
    interval: str = "wilson",
    name: str = "scores",
    title: str | None = None,
):
    """Audit a system from its comparison scores: one row per compared pair.

    Parameters
    ----------
    pairs : pandas.DataFrame or path
        Columns ``sample_a``, ``sample_b``, ``score``; optionally ``mated``; without ``samples``
        also ``subject_a``/``subject_b`` and ``<group>_a``/``<group>_b`` (see :mod:`audit.verification.inputs`).
    samples : pandas.DataFrame or path, optional
        One row per image: ``sample_id``, ``subject``, the group columns, optionally ``status``.
    groups : list of str, optional
        The label columns to audit; default: every column of ``samples`` other than
        ``sample_id``, ``subject``, ``status``, ``n_faces``, ``detail`` and ``path`` (or every
        ``<group>`` with both ``<group>_a`` and ``<group>_b`` in ``pairs``).
    groupings : list of lists of str, optional
        Default: each group column, and all of them together when there are several.
    higher_is_similar : bool, default True
        False for distances (negated once).
    two_sided : bool, default False
        ``sample_a`` is always the probe, ``sample_b`` the reference image.
    target_fmr, fixed : sequences of float
        Thresholds set on all impostor comparisons at these FMRs; given thresholds in the
        scores' own units.
    bootstrap : int, default 1000
        People-level bootstrap replicates (0: none).
    seed : int, default 0
    interval : {"wilson", "clopper-pearson"}
    name, title : str

    Returns
    -------
    AuditResult
        Validated exactly like a scores file (``[scores]`` in a config): duplicates, NaN scores,
        self-pairs and contradicting labels raise :class:`~audit.errors.DataError`.

    Examples
    --------
    >>> pairs = pd.DataFrame({"sample_a": ["a1", "a1"], "sample_b": ["a2", "b1"], "score": [0.9, 0.2]})  # doctest: +SKIP
    >>> samples = pd.DataFrame({"sample_id": ["a1", "a2", "b1"], "subject": ["a", "a", "b"],
    ...                         "gender": ["F", "F", "M"]})                                            # doctest: +SKIP
    >>> audit.from_scores(pairs, samples, bootstrap=0).overall                                          # doctest: +SKIP
    """
    from .verification.config import config_from_dict
    from .verification.runner import run_audit

    pairs_df = _frame(pairs, "pairs")
    samples_df = _frame(samples, "samples") if samples is not None else None
    if groups is None:
        groups = _infer_groups(list(samples_df.columns), pairs=False) if samples_df is not None else _infer_groups(list(pairs_df.columns), pairs=True)
    if not groups:
        raise ConfigError("from_scores: no group columns; pass groups=[...] naming the label columns to audit")
    with tempfile.TemporaryDirectory(prefix="face-audit-scores-") as tmp:
        folder = Path(tmp)
        pairs_df.to_csv(folder / "pairs.csv", index=False)
        section: dict[str, Any] = {"path": str(folder / "pairs.csv"), "groups": list(groups), "higher_is_similar": bool(higher_is_similar),
                                   "name": name, "two_sided": bool(two_sided)}
        if samples_df is not None:
            samples_df.to_csv(folder / "samples.csv", index=False)
            section["samples"] = str(folder / "samples.csv")
        if groupings is not None:
            section["groupings"] = [[g] if isinstance(g, str) else list(g) for g in groupings]
        raw = {"scores": section, **_settings(title, target_fmr, fixed, bootstrap, seed, interval, groupings)}
        raw["output"] = {"dir": str(folder / "out")}
        cfg = config_from_dict(raw, base_dir=folder)
        result = run_audit(cfg, write=False).result
        return _in_memory(result, tmp, "<DataFrame>")


def from_embeddings(
    embeddings: Any,
    samples: Any,
    *,
    groups: Sequence[str] | None = None,
    groupings: Sequence[Sequence[str]] | None = None,
    metric: str = "cosine",
    target_fmr: Sequence[float] = (1e-2, 1e-3),
    fixed: Sequence[float] = (),
    bootstrap: int = 1000,
    seed: int = 0,
    interval: str = "wilson",
    impostors: str = "all",
    name: str = "embeddings",
    title: str | None = None,
):
    """Audit a system from its embeddings: every pair of images is compared (the all-pairs
    protocol, scored in tiles: the N² scores are never held).

    Parameters
    ----------
    embeddings : numpy.ndarray of shape (n_samples, d)
        One row per row of ``samples``, in the same order (rows of samples whose ``status`` is not
        ``ok`` are ignored and count as failures to acquire).
    samples : pandas.DataFrame or path
        ``sample_id``, ``subject``, the group columns, optionally ``status``.
    groups, groupings : optional
        As in :func:`from_scores`.
    metric : {"cosine", "euclidean"}
    impostors : {"all", "same_group"}
    target_fmr, fixed, bootstrap, seed, interval, name, title
        As in :func:`from_scores`.

    Returns
    -------
    AuditResult
    """
    from .verification.config import config_from_dict
    from .errors import DataError
    from .verification.runner import run_audit

    samples_df = _frame(samples, "samples")
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != len(samples_df):
        raise DataError(f"from_embeddings: expected an array of shape ({len(samples_df)}, d), one row per sample; found {emb.shape}")
    if groups is None:
        groups = _infer_groups(list(samples_df.columns), pairs=False)
    if not groups:
        raise ConfigError("from_embeddings: no group columns; pass groups=[...] naming the label columns to audit")
    with tempfile.TemporaryDirectory(prefix="face-audit-embeddings-") as tmp:
        folder = Path(tmp)
        np.save(folder / "embeddings.npy", emb.astype(np.float64, copy=False), allow_pickle=False)
        samples_df.to_csv(folder / "samples.csv", index=False)
        section: dict[str, Any] = {"path": str(folder / "embeddings.npy"), "samples": str(folder / "samples.csv"),
                                   "groups": list(groups), "metric": metric, "name": name}
        if groupings is not None:
            section["groupings"] = [[g] if isinstance(g, str) else list(g) for g in groupings]
        raw = {"embeddings": section, **_settings(title, target_fmr, fixed, bootstrap, seed, interval, groupings)}
        raw["output"] = {"dir": str(folder / "out")}
        if impostors != "all":
            raw["protocol"] = {"impostors": impostors}
        cfg = config_from_dict(raw, base_dir=folder)
        result = run_audit(cfg, write=False).result
        return _in_memory(result, tmp, "<array>")
