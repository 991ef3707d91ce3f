"""Run a whole 1:N audit: dataset(s) -> gallery and probes -> embeddings (cached) -> search ->
thresholds -> metrics -> IdentificationResult -> results.json, tables and an HTML report.

:func:`run_identification` is what ``face-audit identify CONFIG.toml`` calls (see
:func:`add_identification_arguments` / :func:`identification_command`); notebooks call it too.
It never prints: progress goes to tqdm bars (stderr) and messages to the ``log`` callback.

Images are embedded through :func:`audit.verification.acquire.embed_table` and its embedding store, so only
the images the gallery and probes use are embedded, and a rerun does no inference.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .. import __version__
from ..verification.config import AuditConfig
from ..datasets import SampleTable, cache_dir, load_manifest
from ..engine import EmbedStats
from ..errors import ConfigError, FaceAuditError
from ..results import paths_of_failures_only
from .analysis import analyse_identification, choose_identification_thresholds, search_split
from .config import IdentificationConfig, identification_config_from_dict, load_identification_config
from .result import ID_TABLE_COLUMNS, IdentificationResult
from .search import ExactSearch, SearchBackend, make_search_backend, recall_at_k
from .split import (
    GalleryProbeSplit,
    IdentificationError,
    cross_dataset_split,
    lfw_singletons_split,
    london_half_split,
    split_gallery_probes,
)

__all__ = ["IdentificationRun", "run_identification", "add_identification_arguments", "identification_command",
           "identification_main"]


@dataclass(frozen=True)
class IdentificationRun:
    """What :func:`run_identification` did: the result, the embedding statistics and the files written."""

    result: IdentificationResult
    embed: EmbedStats
    seconds: float
    output_dir: Path | None
    files: tuple[Path, ...]


def _noop(msg: str) -> None:
    return None


def _as_config(config: IdentificationConfig | Mapping[str, Any] | str | Path) -> IdentificationConfig:
    if isinstance(config, IdentificationConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_identification_config(config)
    if isinstance(config, Mapping):
        return identification_config_from_dict(config)
    raise ConfigError(f"run_identification expects an IdentificationConfig, a dict or a config path, got {type(config).__name__}")


def _split(cfg: IdentificationConfig, table: SampleTable | pd.DataFrame, probe_table=None, *, first: bool) -> GalleryProbeSplit:
    """The configured builder; ``first`` is the selection before embedding (subset sizes apply)."""
    s = cfg.identification
    seed = cfg.base.run.seed
    if s.scenario == "london-half":
        return london_half_split(table, nonmated_fraction=s.nonmated_fraction, seed=seed,
                                 stratify=s.stratify or "ethnicity",
                                 enrol_rule=s.enrol_rule if isinstance(s.enrol_rule, Mapping) else None,
                                 probe_rule=s.probe_rule)
    if s.scenario == "lfw-singletons":
        return lfw_singletons_split(table, mated_subjects=s.mated_subjects if first else None,
                                    nonmated_subjects=s.nonmated_subjects if first else None,
                                    max_probes_per_subject=s.max_probes_per_subject,
                                    gallery_per_subject=s.gallery_per_subject, seed=seed)
    if s.scenario == "cross-dataset":
        return cross_dataset_split(table, probe_table, gallery_per_subject=s.gallery_per_subject, enrol_rule=s.enrol_rule,
                                   probe_rule=s.probe_rule, max_probes_per_subject=s.max_probes_per_subject,
                                   probe_subjects=s.probe_subjects if first else None,
                                   shared_subjects=s.shared_subjects, seed=seed)
    return split_gallery_probes(table, gallery_per_subject=s.gallery_per_subject, nonmated_fraction=s.nonmated_fraction,
                                seed=seed, enrol_rule=s.enrol_rule, probe_rule=s.probe_rule,
                                max_probes_per_subject=s.max_probes_per_subject, stratify=s.stratify)


def _reduce(table: SampleTable, ids: set[str]) -> SampleTable:
    keep = table.data["sample_id"].astype(str).isin(ids)
    return SampleTable(table.data[keep].reset_index(drop=True), table.group_columns, dict(table.dataset))


def _with_status(table: SampleTable, samples: pd.DataFrame) -> SampleTable:
    return SampleTable(samples.reset_index(drop=True), table.group_columns, dict(table.dataset))


def _load(base: AuditConfig, ds, data_dir, log) -> SampleTable:
    from ..verification.acquire import _load_table

    table, _, _ = _load_table(dataclasses.replace(base, dataset=ds), data_dir, log)
    return table


def run_identification(config: IdentificationConfig | Mapping[str, Any] | str | Path, **kwargs: Any) -> IdentificationRun:
    from ..engine.select import use_engine

    cfg = _as_config(config)
    with use_engine(cfg.base.engine):  # [engine]: local processes, or Ray (audit/engine/select.py)
        return _run_identification(cfg, **kwargs)


def _search_backend(s, metric: str, engine) -> SearchBackend:
    """``identification.search`` with its options; on Ray (``[engine] kind = "ray"``) the exact search
    runs over gallery shards held by Ray actors (``exact-sharded``: the same top k, bit for bit),
    one shard per CPU of the cluster unless ``search_options.shards`` says otherwise."""
    opts = dict(s.search_options)
    if engine is not None and engine.kind == "ray" and s.search in ("exact", "exact-sharded"):
        from ..engine.ray_runtime import cluster_cpus

        opts.setdefault("shards", cluster_cpus())
        opts["engine"] = "ray"
        return make_search_backend("exact-sharded", metric=metric, **opts)
    return make_search_backend(s.search, metric=metric, **opts)


def _run_identification(
    config: IdentificationConfig | Mapping[str, Any] | str | Path,
    *,
    data_dir: str | Path | None = None,
    workers: int | None = None,
    output_dir: str | Path | None = None,
    write: bool = True,
    log: Callable[[str], None] = _noop,
    search_backend: SearchBackend | None = None,
    backend: Any = None,
) -> IdentificationRun:
    """Run the 1:N audit a config describes and (by default) write its outputs.

    Outputs in ``output_dir`` (default: the config's ``output.dir``): ``results.json`` (with
    ``"result_kind": "identification"``), ``tables/*.csv`` and a self-contained ``index.html``.

    Parameters
    ----------
    config : IdentificationConfig, dict (parsed TOML) or path of a TOML file
    data_dir : path, optional
        Folder holding the dataset(s); overrides ``dataset.data_dir``.
    workers : int, optional
        Embedding processes (default: ``run.workers``, else all cores).
    write : bool, default True
    log : callable, optional
        Receives one-line progress messages.
    search_backend : SearchBackend, optional
        Overrides ``identification.search`` (e.g. a cloud collection; see
        :mod:`audit.identification.search`). A backend with ``inputs = "images"`` receives image
        paths and no embedding is computed for the search (the face backend still gives FTA).
    backend : Backend, optional
        A face backend instance instead of ``[backend]`` (tests).

    Examples
    --------
    >>> run = run_identification("examples/london-identification-dlib.toml",
    ...                          data_dir="../shared/datasets")                       # doctest: +SKIP
    >>> run.result.by_group("ethnicity", "FPIR=1e-2")                                 # doctest: +SKIP
    """
    from ..backends.registry import create_backend
    from ..verification.acquire import _machine, embed_table

    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    cfg = _as_config(config)
    s = cfg.identification
    base = cfg.base

    table = _load(base, base.dataset, data_dir, log)
    if base.dataset.subjects:
        table = table.subset_subjects(base.dataset.subjects, seed=base.run.seed)
    probe_table = None
    if s.scenario == "cross-dataset":
        probe_table = _load(base, s.probes, data_dir, log)
    name = table.dataset.get("name", base.dataset.name)
    groups_avail = tuple(dict.fromkeys([*(probe_table.group_columns if probe_table else ()), *table.group_columns]))
    default_groupings = tuple((g,) for g in groups_avail)
    if base.dataset.groupings is None and s.scenario != "cross-dataset" and not base.dataset.huggingface:
        default_groupings = load_manifest(base.dataset.manifest or base.dataset.name).groupings
    groupings = base.dataset.groupings or default_groupings
    for cols in groupings:
        unknown = [c for c in cols if c not in groups_avail]
        if unknown:
            raise ConfigError(f"{base.path or '<config>'}: field 'dataset.groupings' names {unknown}; the data have the "
                              f"group columns {list(groups_avail)}")
    log(f"dataset {name}: {len(table)} images of {table.n_subjects} subjects"
        + (f"; probes from {probe_table.dataset.get('name')}: {len(probe_table)} images" if probe_table else ""))

    # 1. which images the gallery and probes use (subset sizes apply here)
    split0 = _split(cfg, table, probe_table, first=True)
    if s.scenario == "cross-dataset":
        needed = [(table, set(split0.gallery["source_id"])), (probe_table, set(split0.probes["source_id"]))]
    else:
        needed = [(table, set(split0.sample_ids()))]
    reduced = [_reduce(t, ids) for t, ids in needed]

    # 2. embed them through the cache
    face = backend if backend is not None else create_backend(base.backend.name, **dict(base.backend.options))
    face.load()
    info = face.info()
    log(f"backend {info.backend}:{info.model} (weights sha256 {info.weights_sha256[:12]}…)")
    store_dir = (base.run.cache_dir or cache_dir()) / "embeddings"
    from ..engine import default_workers

    n_workers = workers or base.run.workers or default_workers()
    embedded = []
    total = EmbedStats(0, 0, 0.0, n_workers)
    for t in reduced:
        samples, ok_rows, emb, stats = embed_table(t, face, store_dir=store_dir, workers=n_workers,
                                                   batch_size=base.run.batch_size, progress=base.run.progress)
        embedded.append((samples, ok_rows, emb))
        total = EmbedStats(total.computed + stats.computed, total.cached + stats.cached, total.seconds + stats.seconds, n_workers)
    if total.computed:
        log(f"embedded {total.computed} image(s) in {total.seconds:.1f} s ({total.computed / max(total.seconds, 1e-9):.1f} img/s, "
            f"{n_workers} worker(s)); {total.cached} from cache")
    else:
        log(f"all {total.cached} embeddings came from the cache: no inference was run")

    # 3. the final split: enrolment restricted to acquired images
    with_status = [_with_status(t, e[0]) for t, e in zip(reduced, embedded)]
    split = _split(cfg, with_status[0], with_status[1] if len(with_status) > 1 else None, first=False)
    vectors: dict[str, np.ndarray] = {}
    prefix = ([split.params["gallery_dataset"] + ":", split.params["probe_dataset"] + ":"]
              if s.scenario == "cross-dataset" else ["", ""])
    for (samples, ok_rows, emb), pre in zip(embedded, prefix):
        ids = samples["sample_id"].astype(str).to_numpy()[ok_rows]
        vectors.update({pre + sid: emb[i] for i, sid in enumerate(ids)})
    searched = split.probes["sample_id"].astype(str).isin(vectors).to_numpy()
    gal_ok = split.gallery["sample_id"].astype(str).isin(vectors).to_numpy()
    if not gal_ok.all():  # only with custom rules; builders enrol acquired images only
        raise IdentificationError(f"{int((~gal_ok).sum())} gallery image(s) failed to acquire, e.g. "
                                  f"{split.gallery.loc[~gal_ok, 'sample_id'].iloc[0]!r}; enrol acquired images only")
    log(f"gallery: {split.n_gallery_subjects} subjects ({len(split.gallery)} images); probes: {split.n_mated} mated, "
        f"{split.n_nonmated} non-mated ({int((~searched).sum())} failed to acquire)")

    # 4. search
    t_search = time.perf_counter()
    sb = search_backend or _search_backend(s, info.metric, base.engine)
    if sb.inputs == "images":
        g_in = split.gallery["path"].astype(str).tolist()
        p_in = split.probes.loc[searched, "path"].astype(str).tolist()
    else:
        g_in = np.stack([vectors[x] for x in split.gallery["sample_id"].astype(str)]) if len(split.gallery) else np.empty((0, info.dim))
        p_in = (np.stack([vectors[x] for x in split.probes.loc[searched, "sample_id"].astype(str)])
                if searched.any() else np.empty((0, g_in.shape[1]), np.float32))
    cands = search_split(split, sb, k=s.k, gallery_inputs=g_in, probe_inputs=p_in, searched=searched)
    search_seconds = time.perf_counter() - t_search
    search_info: dict[str, Any] = {**sb.describe(), "seconds": round(search_seconds, 4)}
    if not sb.exact and sb.inputs == "embeddings" and searched.any():
        sel = np.flatnonzero(searched)[: s.recall_probes]
        sub = np.zeros_like(searched)
        sub[sel] = True
        exact = search_split(split, ExactSearch(metric=info.metric), k=s.k, gallery_inputs=g_in,
                             probe_inputs=p_in[: sel.size], searched=sub)
        search_info["recall_at_k"] = recall_at_k(cands.subjects[sub], exact.subjects[sub])
        search_info["recall_probes"] = int(sel.size)
        search_info["top1_agreement"] = float((cands.subjects[sub, 0] == exact.subjects[sub, 0]).mean())
        log(f"search {sb.describe().get('index', sb.name)}: recall@{s.k} {search_info['recall_at_k']:.4f} against exact search "
            f"on {sel.size} probes")

    # 5. thresholds and metrics
    t_metrics = time.perf_counter()
    thresholds = choose_identification_thresholds(
        split, cands, target_fpir=s.target_fpir, fixed_native=s.fixed, info=info, backend_default=s.backend_default,
        rank=s.rank, failed_probes=s.failed_probes)
    tables = analyse_identification(split, cands, thresholds, groupings=groupings, rank=s.rank,
                                    failed_probes=s.failed_probes, bootstrap_replicates=s.bootstrap_replicates,
                                    seed=base.run.seed, interval=base.run.interval)
    metrics_seconds = time.perf_counter() - t_metrics

    group_cols = list(groups_avail)
    parts = []
    for role, df in (("gallery", split.gallery), ("probe", split.probes)):
        d = df.copy()
        d["role"] = role if role == "gallery" else np.where(d["mated"], "mated", "nonmated")
        if "dataset" not in d.columns:
            d["dataset"] = name
        for c in ("status", "n_faces", "detail", "path"):
            if c not in d.columns:
                d[c] = "" if c != "n_faces" else 0
        parts.append(d)
    sample_cols = ID_TABLE_COLUMNS["samples"] + [c for c in group_cols if c not in ID_TABLE_COLUMNS["samples"]]
    samples_out = paths_of_failures_only(pd.concat(parts, ignore_index=True).reindex(columns=sample_cols))

    warnings = list(split.warnings) + list(tables.warnings)
    n_fail = int((samples_out["status"].astype(str) != "ok").sum())
    if n_fail:
        warnings.append(f"{n_fail} image(s) failed to acquire (see the FTA table); failed probes are "
                        + ("left out of the rates" if s.failed_probes == "exclude" else "counted as searches that returned nothing"))
    if s.scenario == "lfw-singletons" and (s.mated_subjects or s.nonmated_subjects):
        warnings.append(f"a seeded subset of LFW was searched ({s.mated_subjects or 'all'} enrolled identities with 2+ images, "
                        f"{s.nonmated_subjects or 'all'} single-image identities, seed {base.run.seed}) to keep the run short; "
                        "a larger gallery raises FPIR at a fixed threshold")
    dataset_prov = dict(table.dataset) if probe_table is None else {"gallery": dict(table.dataset), "probes": dict(probe_table.dataset),
                                                                    "name": split.dataset.get("name")}
    provenance = {
        "tool": "face-audit",
        "tool_version": __version__,
        "backend": info.to_dict(),
        "dataset": dataset_prov,
        "protocol": {
            "kind": "identification",
            **split.describe(),
            "k": s.k,
            "rank": s.rank,
            "failed_probes": s.failed_probes,
            "candidate_lists": "subjects (each scored by its best gallery image)",
            "groupings": ["+".join(g) for g in groupings],
            "bootstrap_replicates": s.bootstrap_replicates,
            "interval": base.run.interval,
            "probe_failures": int((~searched).sum()),
        },
        "search": search_info,
        "config": {"path": str(base.path) if base.path else None, "values": dict(base.raw)},
        "seed": base.run.seed,
        "machine": _machine(),
        "created": started.isoformat(timespec="seconds"),
        "timing": {
            "embedding_seconds": round(total.seconds, 3),
            "images_embedded": total.computed,
            "images_from_cache": total.cached,
            "workers": n_workers,
            "search_seconds": round(search_seconds, 3),
            "metrics_seconds": round(metrics_seconds, 3),
            "seconds_to_result": round(time.perf_counter() - t_start, 3),
        },
    }
    result = IdentificationResult(
        title=base.title, provenance=provenance, groupings=tuple("+".join(g) for g in groupings),
        thresholds=tables.thresholds, k=s.k, rank=s.rank, samples=samples_out,
        composition=tables.composition, fta=tables.fta, rates=tables.rates, cmc=tables.cmc,
        false_matches=tables.false_matches, candidates=tables.candidates, cross_fpir=tables.cross_fpir,
        disparity=tables.disparity, score_hist=tables.score_hist, searches=tables.searches, warnings=tuple(warnings),
    )
    files: list[Path] = []
    out_dir = Path(output_dir) if output_dir else base.output_dir
    if write:
        from ..report.identification import write_identification_report

        out_dir.mkdir(parents=True, exist_ok=True)
        result.to_json(out_dir / "results.json")
        files.append(out_dir / "results.json")
        files += result.write_tables(out_dir / "tables")
        files.append(write_identification_report(result, out_dir))
    return IdentificationRun(result, total, time.perf_counter() - t_start, out_dir if write else None, tuple(files))


run_identification.__doc__ = _run_identification.__doc__


# ------------------------------------------------------------------------------ command line
def add_identification_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``identify`` command's arguments to ``parser`` (for a ``face-audit identify`` subparser)."""
    parser.add_argument("config", help="identification config (TOML), e.g. examples/london-identification-dlib.toml")
    parser.add_argument("--data-dir", help="folder holding the dataset(s)")
    parser.add_argument("--workers", type=int, help="processes for embedding (default: the config's, else all cores)")
    parser.add_argument("--output", help="output folder (default: the config's output.dir)")
    parser.add_argument("--cache-dir", help="cache folder (default: $FACE_AUDIT_CACHE or ~/.cache/face-audit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--engine", choices=["local", "ray"], help="where the work runs (default: the config's [engine], else local)")
    parser.add_argument("--address", help="a Ray cluster's address (with --engine ray; default: start a local Ray instance)")
    return parser


def identification_command(args: argparse.Namespace) -> int:
    """Run ``face-audit identify`` for parsed arguments: prints a summary to stdout, messages to stderr.

    Returns 0 on success; raises :class:`~audit.errors.FaceAuditError` on bad input (the CLI's
    ``main`` turns it into exit code 2).
    """
    cfg = load_identification_config(args.config)
    base = cfg.base
    if args.no_progress:
        base = dataclasses.replace(base, run=dataclasses.replace(base.run, progress=False))
    if args.cache_dir:
        base = dataclasses.replace(base, run=dataclasses.replace(base.run, cache_dir=Path(args.cache_dir).resolve()))
    if getattr(args, "engine", None) or getattr(args, "address", None):  # replaces [engine]'s kind and address
        from ..engine.select import engine_override

        base = dataclasses.replace(base, engine=engine_override(base.engine, args.engine, args.address))
    cfg = IdentificationConfig(base, cfg.identification)
    run = run_identification(cfg, data_dir=args.data_dir, workers=args.workers, output_dir=args.output,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    res = run.result
    print(res.title)
    if run.embed.computed == 0:
        print(f"  embeddings: all {run.embed.cached} from cache (no inference run)")
    else:
        print(f"  embeddings: {run.embed.computed} computed in {run.embed.seconds:.1f} s, {run.embed.cached} from cache")
    for t in res.thresholds:
        print(f"  threshold {t.name}: value {t.native_value:.4g} ({res.provenance['backend']['metric']}), "
              f"FPIR {t.achieved_fpir:.3g} ({t.false_positives}/{t.nonmated_searches}), "
              f"FNIR@rank{res.rank} {t.achieved_fnir:.3g} ({t.misses}/{t.mated_searches})")
    for w in res.warnings:
        print(f"  note: {w}")
    print(f"  finished in {run.seconds:.1f} s")
    if run.output_dir is not None:
        print(f"report: {run.output_dir / 'index.html'}")
        print(f"results: {run.output_dir / 'results.json'}")
    return 0


def identification_main(argv: list[str] | None = None) -> int:
    """``python -m audit.identification CONFIG.toml [--data-dir D] ...`` until the CLI has ``identify``."""
    parser = add_identification_arguments(argparse.ArgumentParser(
        prog="face-audit identify", description="Run a 1:N identification audit (FPIR/FNIR by group, ACLU-style table)."))
    args = parser.parse_args(argv)
    try:
        return identification_command(args)
    except FaceAuditError as exc:
        print(f"face-audit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("face-audit: error: interrupted; finished embeddings are kept in the cache", file=sys.stderr)
        return 130
