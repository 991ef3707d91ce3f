"""``face-audit mitigate CONFIG``: mitigation what-ifs on a dataset, evaluated on held-out people.

The config is an audit config (``[dataset]``, ``[backend]``, ``[run]``, ``[output]``, as for
``face-audit run``) plus a ``[mitigation]`` table::

    [mitigation]
    grouping = ["gender"]                 # the protected attribute (one or more label columns)
    target_fmr = 1e-3
    methods = ["group_thresholds", "fsn", "faircal"]
    folds = 5                             # folds by subject: every person is tested once, held out
    clusters = 100                        # k-means clusters (FSN, FairCal)
    train_impostors = 200000              # impostor pairs sampled from each training split

Embeddings come through the embedding cache (the same backend options give cache hits). Outputs
in ``output.dir``: ``results.json``, ``tables/*.csv``, ``index.html``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import ConfigError, ResultsError
from .evaluate import evaluate_mitigations
from .methods import METHODS

__all__ = ["MitigationConfig", "load_mitigation_config", "mitigation_config_from_dict", "MitigationResult", "run_mitigation",
           "read_mitigation_result", "mitigate_command"]

_KEYS = {"grouping", "target_fmr", "methods", "folds", "clusters", "train_impostors"}
SCHEMA = "face-audit/mitigation/1"


@dataclass(frozen=True)
class MitigationConfig:
    audit: Any  # audit.verification.config.AuditConfig: dataset, backend, run, output
    grouping: tuple[str, ...]
    target_fmr: float
    methods: tuple[str, ...]
    folds: int
    clusters: int
    train_impostors: int


def mitigation_config_from_dict(raw: Mapping[str, Any], *, path: Path | None = None) -> MitigationConfig:
    """Validate a mitigation config (the audit sections by :func:`audit.verification.config.config_from_dict`)."""
    from ..verification.config import config_from_dict

    src = str(path) if path else "<config>"

    def err(fld: str, msg: str) -> ConfigError:
        return ConfigError(f"{src}: field '{fld}': {msg}")

    m = raw.get("mitigation")
    if not isinstance(m, Mapping):
        raise err("mitigation", "missing; add a [mitigation] table with at least grouping = [\"gender\"]")
    unknown = set(m) - _KEYS
    if unknown:
        raise err(f"mitigation.{sorted(unknown)[0]}", f"unknown key; allowed keys are {sorted(_KEYS)}")
    rest = {k: v for k, v in raw.items() if k != "mitigation"}
    audit = config_from_dict(rest, path=path)
    if audit.dataset is None:
        raise err("dataset", "mitigation what-ifs need images and a backend ([dataset] and [backend]), not a scores file")
    g = m.get("grouping")
    if isinstance(g, str):
        g = [g]
    if not isinstance(g, list) or not g or not all(isinstance(x, str) for x in g):
        raise err("mitigation.grouping", f"expected the protected attribute's label column(s), e.g. [\"gender\"], found {g!r}")
    t = m.get("target_fmr", 1e-3)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1:
        raise err("mitigation.target_fmr", f"expected a rate in (0, 1) such as 1e-3, found {t!r}")
    methods = m.get("methods", ["group_thresholds", "fsn", "faircal"])
    known = [k for k in METHODS if k != "baseline"]
    if not isinstance(methods, list) or not methods or not all(x in known for x in methods):
        raise err("mitigation.methods", f"expected a list among {known}, found {methods!r}")
    ints = {}
    for key, lo, default in (("folds", 2, 5), ("clusters", 2, 100), ("train_impostors", 100, 200_000)):
        v = m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise err(f"mitigation.{key}", f"expected an integer >= {lo}, found {v!r}")
        ints[key] = v
    return MitigationConfig(audit, tuple(g), float(t), tuple(methods), **ints)


def load_mitigation_config(path: str | Path) -> MitigationConfig:
    from ..config import read_toml

    path = Path(path)
    return mitigation_config_from_dict(read_toml(path), path=path)


@dataclass(frozen=True)
class MitigationResult:
    """Before/after per-group FMR and FNMR for each method, and the overall cost.

    Attributes
    ----------
    title : str
    provenance : dict
    rates : pandas.DataFrame
        :data:`audit.mitigation.evaluate.RATE_COLUMNS`, one row per (method, group, metric).
    summary : pandas.DataFrame
        :data:`audit.mitigation.evaluate.SUMMARY_COLUMNS`, one row per method (``fnmr_change``:
        the overall FNMR minus the baseline's).
    folds : pandas.DataFrame
        Per fold and method: threshold, people and pairs.
    """

    title: str
    provenance: Mapping[str, Any]
    rates: pd.DataFrame
    summary: pd.DataFrame
    folds: pd.DataFrame
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self, path: str | Path | None = None) -> str:
        from ..results import _jsonable, dump_result_json

        data: dict[str, Any] = {"schema": SCHEMA, "title": self.title, "warnings": list(self.warnings), "provenance": _jsonable(dict(self.provenance))}
        for name in ("rates", "summary", "folds"):
            df = getattr(self, name)
            data[name] = {"columns": [str(c) for c in df.columns], "rows": [_jsonable(list(r)) for r in df.itertuples(index=False)]}
        return dump_result_json(data, path)

    def write_tables(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for name in ("rates", "summary", "folds"):
            p = folder / f"{name}.csv"
            getattr(self, name).to_csv(p, index=False)
            out.append(p)
        return out


def read_mitigation_result(path: str | Path) -> MitigationResult:
    """Read a ``results.json`` written by :meth:`MitigationResult.to_json`."""
    from ..results import _from_json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot read it as a results JSON file ({exc})") from exc
    if data.get("schema") != SCHEMA:
        raise ResultsError(f"{path}: expected schema {SCHEMA!r}, found {data.get('schema')!r}")
    tabs = {n: pd.DataFrame([[_from_json(v) for v in r] for r in data[n]["rows"]], columns=data[n]["columns"]) for n in ("rates", "summary", "folds")}
    return MitigationResult(title=data["title"], provenance=data["provenance"], warnings=tuple(data.get("warnings", ())), **tabs)


def run_mitigation(config: MitigationConfig, *, data_dir: str | Path | None = None, workers: int | None = None,
                   output_dir: str | Path | None = None, write: bool = True, log: Callable[[str], None] = lambda m: None) -> MitigationResult:
    """Embed (through the cache), evaluate the methods on held-out people, write the outputs."""
    from ..backends.registry import create_backend
    from ..datasets import cache_dir
    from ..verification.acquire import _load_table, embed_table

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    ac = config.audit
    table, _, _ = _load_table(ac, data_dir, log)
    if ac.dataset.subjects:
        table = table.subset_subjects(ac.dataset.subjects, seed=ac.run.seed)
    unknown = [c for c in config.grouping if c not in table.group_columns]
    if unknown:
        raise ConfigError(f"{ac.path}: field 'mitigation.grouping' names {unknown}; the dataset has the group columns {list(table.group_columns)}")
    backend = create_backend(ac.backend.name, **dict(ac.backend.options))
    samples, ok_rows, emb, stats = embed_table(table, backend, store_dir=(ac.run.cache_dir or cache_dir()) / "embeddings",
                                               workers=workers or ac.run.workers, batch_size=ac.run.batch_size, progress=ac.run.progress)
    info = backend.info()
    log(f"embeddings: {stats.computed} computed, {stats.cached} from the cache; {len(ok_rows)} of {len(samples)} images acquired")
    ok = samples.iloc[ok_rows]
    groups = ok[list(config.grouping)].astype(str).agg(" / ".join, axis=1) if len(config.grouping) > 1 else ok[config.grouping[0]].astype(str)
    tables = evaluate_mitigations(emb, ok["subject"].to_numpy(), groups.to_numpy(), metric=info.metric, target_fmr=config.target_fmr,
                                  methods=config.methods, folds=config.folds, clusters=config.clusters,
                                  train_impostors=config.train_impostors, seed=ac.run.seed, bootstrap=ac.run.bootstrap, log=log)
    warnings = []
    if "group_thresholds" in config.methods:
        warnings.append("Per-group thresholds use the protected attribute at decision time: the system must know or infer each "
                        "person's group to pick the threshold, which may itself be unlawful or unreliable. A pair of two groups "
                        "is judged at the stricter of the two thresholds.")
    small = tables.rates[(tables.rates["metric"] == "fmr") & (tables.rates["trials"] > 0) & (tables.rates["trials"] < 3 / config.target_fmr)]
    if len(small):
        warnings.append(f"{small['group'].nunique()} group(s) have fewer held-out same-group impostor comparisons than 3/target "
                        f"({int(np.ceil(3 / config.target_fmr))}): their FMR at the target cannot be resolved")
    provenance = {
        "tool": "face-audit", "tool_version": __version__, "kind": "mitigation what-ifs", "backend": info.to_dict(),
        "dataset": dict(table.dataset), "grouping": list(config.grouping), "settings": tables.settings,
        "images": int(len(samples)), "images_acquired": int(len(ok_rows)), "subjects": int(ok["subject"].nunique()),
        "config": {"path": str(ac.path) if ac.path else None, "values": dict(ac.raw), "mitigation": dict((ac.raw or {}).get("mitigation", {}))},
        "created": started.isoformat(timespec="seconds"), "seconds": round(time.perf_counter() - t0, 1),
    }
    provenance["config"]["mitigation"] = {"grouping": list(config.grouping), "target_fmr": config.target_fmr, "methods": list(config.methods),
                                          "folds": config.folds, "clusters": config.clusters, "train_impostors": config.train_impostors}
    result = MitigationResult(title=ac.title, provenance=provenance, rates=tables.rates, summary=tables.summary,
                              folds=tables.folds.astype({"group_thresholds": str}), warnings=tuple(warnings))
    if write:
        from ..report.mitigation import write_mitigation_report

        out = Path(output_dir) if output_dir else ac.output_dir
        out.mkdir(parents=True, exist_ok=True)
        result.to_json(out / "results.json")
        result.write_tables(out / "tables")
        write_mitigation_report(result, out)
    return result


def mitigate_command(args: argparse.Namespace) -> int:
    import dataclasses

    config = load_mitigation_config(args.config)
    if args.no_progress:
        config = dataclasses.replace(config, audit=dataclasses.replace(config.audit, run=dataclasses.replace(config.audit.run, progress=False)))
    res = run_mitigation(config, data_dir=args.data_dir, workers=args.workers, output_dir=args.output,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    print(res.title)
    for r in res.summary.itertuples(index=False):
        print(f"  {r.method:17s} FMR {r.fmr:.2e}  FNMR {r.fnmr:.4f} ({r.fnmr_change:+.4f} vs baseline)  "
              f"group FMR max/min {r.fmr_max_min:.2f}  FNMR max/min {r.fnmr_max_min:.2f}"
              + ("  [uses the protected attribute]" if r.uses_protected_attribute else ""))
    for w in res.warnings:
        print(f"  note: {w}")
    out = Path(args.output) if args.output else config.audit.output_dir
    print(f"report: {out / 'index.html'}")
    return 0
