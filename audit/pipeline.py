"""Run a whole 1:1 audit: dataset -> backend -> embedding store -> comparisons -> metrics -> outputs.

:func:`run_audit` is what ``face-audit run`` calls; notebooks call it too. It never prints:
progress goes to tqdm bars (stderr) and messages to the ``log`` callback.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import __version__
from .backends.registry import create_backend
from .backends.base import BackendInfo
from .comparisons import PairScores
from .inputs import read_embeddings, read_scores, single_subject_groups
from .config import AuditConfig
from .datasets import SampleTable, cache_dir, load_dataset, load_manifest
from .engine import EmbedStats, default_workers, embed_missing
from .errors import ConfigError, DataError
from .results import AuditResult, paths_of_failures_only
from .store import EmbeddingStore
from .verification import (
    analyse_cells,
    cell_data_from_pairs,
    cell_data_from_scan,
    choose_thresholds,
    finest_cells,
    threshold_specs,
    thresholds_from_counts,
)

__all__ = ["AuditRun", "run_audit", "embed_table"]


@dataclass(frozen=True)
class AuditRun:
    """What :func:`run_audit` did: the result, the embedding statistics and the files written."""

    result: AuditResult
    embed: EmbedStats
    seconds: float
    output_dir: Path | None
    files: tuple[Path, ...]


def _noop(msg: str) -> None:
    return None


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def embed_table(
    table: SampleTable,
    backend,
    *,
    store_dir: Path | None = None,
    workers: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, EmbedStats]:
    """Embed every image of a table through the store.

    Returns
    -------
    samples : pandas.DataFrame
        The table's rows with ``status``, ``n_faces`` and ``detail`` added.
    ok_rows : numpy.ndarray of int, shape (n_ok,)
        Positions of the acquired images.
    embeddings : numpy.ndarray of shape (n_ok, d), float32
    stats : EmbedStats
    """
    backend.load()
    info = backend.info()
    store_dir = Path(store_dir) if store_dir else cache_dir() / "embeddings"
    df = table.data.reset_index(drop=True)
    paths = dict(zip(df["sha256"], df["path"]))
    with EmbeddingStore(store_dir, info) as store:
        stats = embed_missing(
            backend, paths, store, workers=workers or default_workers(), batch_size=batch_size,
            progress=progress, desc=f"{info.backend}:{info.model}",
        )
        got = store.get_many(df["sha256"])
    results = [got[s] for s in df["sha256"]]
    samples = df.copy()
    samples["status"] = [r.status.value for r in results]
    samples["n_faces"] = [r.n_faces for r in results]
    samples["detail"] = [r.detail for r in results]
    ok_rows = np.flatnonzero(samples["status"].to_numpy() == "ok")
    dim = info.dim
    emb = np.stack([results[i].embedding for i in ok_rows]).astype(np.float32) if ok_rows.size else np.empty((0, dim), np.float32)
    return samples, ok_rows, emb, stats


def _load_table(config: AuditConfig, data_dir, log) -> tuple[SampleTable, str, tuple[tuple[str, ...], ...]]:
    ds = config.dataset
    if ds.huggingface:
        from .datasets.hf import from_huggingface

        log(f"dataset {ds.huggingface}: loading through Hugging Face datasets")
        table = from_huggingface(
            ds.huggingface, groups=ds.hf_groups or {}, subject_column=ds.hf_subject_column,
            split=ds.hf_split, revision=ds.hf_revision, name=ds.name,
        )
        return table, "all_pairs", tuple((g,) for g in table.group_columns)
    manifest = load_manifest(ds.manifest or ds.name)
    log(f"dataset {manifest.name}: verifying files against {manifest.path.name}")
    table = load_dataset(manifest, data_dir=data_dir or ds.data_dir)
    if ds.labels is not None:  # extra label columns (e.g. a measured skin-tone bin) become group columns
        from .labelfile import join_label_file

        wanted = list(dict.fromkeys(c for g in (ds.groupings or ()) for c in g if c not in table.group_columns))
        data, added = join_label_file(table.data, ds.labels, columns=wanted)
        table = SampleTable(data, (*table.group_columns, *added), dict(table.dataset, extra_labels={"file": str(ds.labels), "columns": added}))
        log(f"labels {ds.labels.name}: added the group columns {added}")
    return table, manifest.protocol_kind, manifest.groupings


@dataclass(frozen=True)
class _Acquired:
    samples: pd.DataFrame
    ok_rows: np.ndarray
    pairs: PairScores
    info: BackendInfo
    groupings: tuple[tuple[str, ...], ...]
    group_columns: tuple[str, ...]
    dataset: dict
    protocol_kind: str
    stats: EmbedStats
    workers: int
    score_seconds: float
    embeddings: np.ndarray | None = None  # acquired rows, scored all-pairs by the tiled engine
    side: np.ndarray | None = None  # two-sided scores file: 0 probe / 1 reference per acquired row
    identities: bool = True  # False: a scores file with only a mated flag (pairs assumed independent)
    failed_comparisons: tuple[int, int] = (0, 0)  # (mated, impostor) pairs without a score


def _acquire_from_images(config: AuditConfig, data_dir, workers, log) -> _Acquired:
    table, protocol_kind, default_groupings = _load_table(config, data_dir, log)
    if config.dataset.subjects is not None:
        table = table.subset_subjects(config.dataset.subjects, seed=config.run.seed, balance=config.dataset.balance)
    groupings = config.dataset.groupings or default_groupings
    name = table.dataset.get("name", config.dataset.name)
    for cols in groupings:
        unknown = [c for c in cols if c not in table.group_columns]
        if unknown:
            raise ConfigError(
                f"{config.path or '<config>'}: field 'dataset.groupings' names {unknown}; dataset {name} has the group columns {list(table.group_columns)}"
            )
    log(f"dataset {name}: {len(table)} images of {table.n_subjects} subjects (found via {table.dataset.get('location')})")

    backend = create_backend(config.backend.name, **dict(config.backend.options))
    backend.load()
    info = backend.info()
    log(f"backend {info.backend}:{info.model} (weights sha256 {info.weights_sha256[:12]}…)")
    store_dir = (config.run.cache_dir or cache_dir()) / "embeddings"
    n_workers = workers or config.run.workers or default_workers()
    samples, ok_rows, emb, stats = embed_table(
        table, backend, store_dir=store_dir, workers=n_workers, batch_size=config.run.batch_size, progress=config.run.progress,
    )
    if stats.computed:
        log(f"embedded {stats.computed} image(s) in {stats.seconds:.1f} s ({stats.images_per_second:.1f} img/s, {n_workers} worker(s)); {stats.cached} from cache")
    else:
        log(f"all {stats.cached} embeddings came from the cache: no inference was run")
    return _Acquired(
        samples, ok_rows, None, info, tuple(groupings), tuple(table.group_columns), dict(table.dataset),
        protocol_kind, stats, n_workers, 0.0, emb,
    )


def _acquire_from_file(config: AuditConfig, log) -> _Acquired:
    inp = config.input
    t0 = time.perf_counter()
    if inp.kind == "scores":
        log(f"scores file {inp.path}: reading")
        got = read_scores(inp.path, higher_is_similar=inp.higher_is_similar, group_columns=inp.group_columns, samples_path=inp.samples,
                          name=inp.name, two_sided=inp.two_sided)
        protocol = "pairs_from_scores_file" + (" (two-sided: sample_a probes, sample_b references)" if inp.two_sided else "")
    else:
        log(f"embeddings file {inp.path}: reading and scoring all pairs")
        got = read_embeddings(inp.path, samples_path=inp.samples, group_columns=inp.group_columns, metric=inp.metric, name=inp.name)
        protocol = "all_pairs"
    dataset = {
        "name": inp.name or inp.path.stem,
        "title": f"{inp.kind} file {inp.path.name}",
        "source": str(inp.path),
        "samples": str(inp.samples) if inp.samples else None,
        "sha256": got.info.weights_sha256,
        "label_source": f"columns {list(inp.group_columns)} of " + (str(inp.samples.name) if inp.samples else inp.path.name),
        "licence": "as supplied",
    }
    log(f"{len(got.samples)} samples" + (f" of {got.samples['subject'].nunique()} subjects" if got.identities else " (no identities given)"))
    return _Acquired(
        got.samples, got.ok_rows, got.pairs, got.info, inp.groupings, inp.group_columns, dataset,
        protocol, EmbedStats(0, 0, 0.0, 1), 1, time.perf_counter() - t0, got.embeddings, got.side,
        got.identities, (got.failed_mated, got.failed_impostor),
    )


#: The engine's exact tail holds this many times the largest target's allowed false matches.
OPERATING_POINT_DEPTH = 4

#: Above this many acquired images the tiled scan spreads over worker processes.
PARALLEL_SCAN_ROWS = 20_000


def _describe_selector(selector) -> str:
    return ", ".join(f"{col} = {vals[0] if len(vals) == 1 else ' or '.join(vals)}" for col, vals in selector)


def _protocol_name(config: AuditConfig, default: str) -> str:
    p = config.protocol
    if p.two_sided:
        imp = "same-group impostor" if p.impostors == "same_group" else "impostor"
        return (f"two-sided: every probe ({_describe_selector(p.probe)}) against every reference "
                f"({_describe_selector(p.reference)}) image, mated and {imp} pairs")
    if p.pairs:
        return f"pair_list ({p.pairs})"
    if p.sample_impostors:
        return f"all mated pairs + {p.sample_impostors} sampled impostor pairs (seed {config.run.seed})"
    if p.impostors == "same_group":
        return "all mated pairs + same-group impostor pairs"
    return default


def _listed_pairs(acq: _Acquired, config: AuditConfig, subjects: np.ndarray) -> tuple[PairScores, list[str]]:
    """Pairs of a given list (e.g. LFW's pairs.txt) or every mated pair plus sampled impostors,
    with warnings about listed pairs that had to be left out."""
    from .comparisons import mated_pair_indices, read_pair_list
    from .engine.tiles import pair_scores_from_list, sample_impostor_pairs

    protocol = config.protocol
    pos = np.full(len(acq.samples), -1, dtype=np.int64)
    pos[acq.ok_rows] = np.arange(len(acq.ok_rows))
    warnings: list[str] = []
    if protocol.pairs:
        path = Path(protocol.pairs)
        if not path.is_absolute():
            base = Path(config.path).parent if config.path else Path.cwd()
            first = acq.samples.iloc[0]
            root = Path(str(first["path"])[: -len(str(first["sample_id"]))]) if str(first.get("path", "")).endswith(str(first["sample_id"])) else base
            path = next((p for p in (root / path, base / path) if p.is_file()), root / path)
        a, b = read_pair_list(path, acq.samples["sample_id"].tolist(), id_format=protocol.pair_id_format)
        pa, pb = pos[a], pos[b]
        keep = (pa >= 0) & (pb >= 0)
        if not keep.all():
            warnings.append(f"{int((~keep).sum())} of {len(a)} listed pair(s) involve an image that failed to acquire and are left out")
        pa, pb = pa[keep], pb[keep]
    else:
        ma, mb = mated_pair_indices(subjects)
        ia, ib = sample_impostor_pairs(subjects, protocol.sample_impostors, seed=config.run.seed)
        pa, pb = np.concatenate([ma, ia]), np.concatenate([mb, ib])
    return pair_scores_from_list(acq.embeddings, subjects, pa, pb, metric=acq.info.metric), warnings


def _select_side(samples: pd.DataFrame, selector, which: str, config: AuditConfig) -> np.ndarray:
    where = f"{config.path or '<config>'}: field 'protocol.{which}'"
    mask = np.ones(len(samples), bool)
    for col, vals in selector:
        if col not in samples.columns:
            shown = [c for c in samples.columns if c not in ("path", "sha256", "status", "n_faces", "detail")]
            raise ConfigError(f"{where} names the column {col!r}, which the samples do not have; they have {shown}")
        mask &= samples[col].astype(str).isin(vals).to_numpy()
    if not mask.any():
        seen = {col: sorted(samples[col].astype(str).unique().tolist())[:12] for col, _ in selector}
        raise ConfigError(f"{where} ({_describe_selector(selector)}) selects no image; the values present are {seen}")
    return mask


def _apply_sides(acq: _Acquired, config: AuditConfig, log) -> tuple[_Acquired, np.ndarray | None, list[str]]:
    """For a two-sided protocol: keep the probe and reference images only, and give each acquired
    row its side (0: probe, 1: reference). Other protocols pass through (the side of a two-sided
    scores file, else None)."""
    p = config.protocol
    if not p.two_sided:
        return acq, acq.side, []
    samples = acq.samples.reset_index(drop=True)
    probe = _select_side(samples, p.probe, "probe", config)
    ref = _select_side(samples, p.reference, "reference", config)
    both = np.flatnonzero(probe & ref)
    if both.size:
        raise ConfigError(
            f"{config.path or '<config>'}: fields 'protocol.probe' and 'protocol.reference' both select {both.size} image(s), "
            f"e.g. {samples['sample_id'].iloc[both[0]]!r}; an image can be on one side only: make the selections disjoint"
        )
    keep = probe | ref
    warnings = []
    if not keep.all():
        warnings.append(f"{int((~keep).sum())} of {len(samples)} image(s) are in neither the probe nor the reference set and are left out")
    new_pos = np.cumsum(keep) - 1
    ok_keep = keep[acq.ok_rows]
    ok_rows = new_pos[acq.ok_rows[ok_keep]]
    emb = acq.embeddings[ok_keep] if acq.embeddings is not None else None
    samples = samples[keep].reset_index(drop=True)
    side = np.where(probe[keep][ok_rows], 0, 1).astype(np.int64)
    log(f"two-sided protocol: {int(probe.sum())} probe and {int(ref.sum())} reference image(s)")
    return replace(acq, samples=samples, ok_rows=ok_rows, embeddings=emb), side, warnings


def _side_count(acq: _Acquired, side: np.ndarray, which: int) -> int:
    """Acquired images on one side: of a scores file, those its pairs name on that side."""
    if acq.pairs is None:
        return int(np.sum(side == which))
    p = acq.pairs
    rows = (p.mated_a, p.impostor_a) if which == 0 else (p.mated_b, p.impostor_b)
    return int(np.unique(np.concatenate(rows)).size)


@dataclass(frozen=True)
class _Scored:
    thresholds: tuple
    data: object  # verification.CellData
    labels: list
    columns: tuple
    n_mated: int
    n_impostor: int
    warnings: tuple = ()


def _score(acq: _Acquired, config: AuditConfig, side: np.ndarray | None = None) -> _Scored:
    """Thresholds and per-cell counts: from the given pairs (a scores file), or by the tiled engine
    over every pair of acquired images (never holding the N² scores); with ``side`` (one 0/1 per
    acquired row), every probe-reference pair."""
    th = config.thresholds
    cells, labels, columns = finest_cells(acq.samples, acq.ok_rows, acq.groupings)
    subjects = acq.samples["subject"].to_numpy()[acq.ok_rows]
    if acq.pairs is not None:
        pairs = acq.pairs
        targets, notes = _usable_targets(config, pairs.n_mated, pairs.n_impostor, acq.info)
        notes += _direction_warning(pairs, acq.info, config)
        thresholds = choose_thresholds(pairs, target_fmr=targets, fixed_native=th.fixed, info=acq.info, backend_default=th.backend_default)
        data = cell_data_from_pairs(pairs, cells, len(labels), [t.value for t in thresholds],
                                    subjects=subjects if acq.identities else None, side=side)
        return _Scored(thresholds, data, labels, columns, pairs.n_mated, pairs.n_impostor, tuple(notes))
    from .engine.tiles import score_tiles

    protocol = config.protocol
    if protocol.pairs or protocol.sample_impostors:
        pairs, warnings = _listed_pairs(acq, config, subjects)
        targets, notes = _usable_targets(config, pairs.n_mated, pairs.n_impostor, acq.info)
        warnings += notes
        thresholds = choose_thresholds(pairs, target_fmr=targets, fixed_native=th.fixed, info=acq.info, backend_default=th.backend_default)
        data = cell_data_from_pairs(pairs, cells, len(labels), [t.value for t in thresholds], subjects=subjects)
        return _Scored(thresholds, data, labels, columns, pairs.n_mated, pairs.n_impostor, tuple(warnings))
    given = threshold_specs([], fixed_native=th.fixed, info=acq.info, backend_default=th.backend_default)
    scan = score_tiles(
        acq.embeddings, subjects, cells, metric=acq.info.metric, n_groups=len(labels),
        # a tail deeper than the largest target: each resample re-estimates the target-FMR thresholds
        # from it (the operating-point estimand), and a resample may need more pairs than the data do
        max_fmr=min(float(np.nextafter(1.0, 0.0)), OPERATING_POINT_DEPTH * max(th.target_fmr, default=1e-3)), thresholds=[s[2] for s in given],
        impostors=protocol.impostors, sides=side, progress=config.run.progress,
        workers=acq.workers if len(acq.ok_rows) > PARALLEL_SCAN_ROWS else 1,
    )
    n_mated_all = int(len(scan.mated_scores))
    targets, notes = _usable_targets(config, n_mated_all, int(scan.impostors_total), acq.info)
    values = scan.thresholds_at_fmr(list(targets)) if targets else []
    specs = threshold_specs(list(zip(targets, values)), fixed_native=th.fixed, info=acq.info, backend_default=th.backend_default)
    counts = scan.counts_at([s[2] for s in specs])
    data = cell_data_from_scan(scan, counts)
    return _Scored(thresholds_from_counts(specs, data, acq.info), data, labels, columns, int(counts.mated.sum()),
                   int(scan.impostors_total), tuple(notes))


def _usable_targets(config: AuditConfig, n_mated: int, n_impostor: int, info: BackendInfo) -> tuple[tuple[float, ...], list[str]]:
    """The target FMRs a threshold can be fixed at, and notes on what cannot be computed.

    With no comparison at all, or no impostor comparison and no other threshold (fixed or the
    backend's default), nothing can be measured: a DataError says so instead of reporting an FNMR
    of 1.0 at an infinite threshold."""
    th = config.thresholds
    src = config.input.path if config.input is not None else (config.path or "<config>")
    notes: list[str] = []
    if n_mated + n_impostor == 0:
        raise DataError(
            f"{src}: no comparison can be made (0 mated and 0 impostor pairs among the acquired images); "
            "an audit needs at least two acquired images, of one or more subjects"
        )
    targets = tuple(th.target_fmr)
    if n_impostor == 0 and targets:
        has_other = bool(th.fixed) or (th.backend_default and info.default_threshold is not None)
        if not has_other:
            raise DataError(
                f"{src}: there are {n_mated} mated but no impostor comparisons, so no threshold can be fixed at a target FMR "
                f"(thresholds.target_fmr = {list(targets)}) and no FMR can be measured; add images of other subjects, "
                "or give thresholds.fixed to measure FNMR at a given threshold"
            )
        notes.append(
            f"no impostor comparisons: thresholds at a target FMR {list(targets)} cannot be computed and are left out; "
            "FMR cannot be measured"
        )
        targets = ()
    if n_mated == 0:
        notes.append("no mated comparisons (no subject has two acquired images): FNMR cannot be computed")
    return targets, notes


def _direction_warning(pairs: PairScores, info: BackendInfo, config: AuditConfig) -> list[str]:
    """A warning when mated scores sit on the wrong side of impostor scores: most likely a
    distance given as a similarity (or the reverse)."""
    if pairs.n_mated == 0 or pairs.n_impostor == 0:
        return []
    mated, impostor = np.asarray(pairs.mated_score, float), np.asarray(pairs.impostor_score, float)
    mated, impostor = mated[np.isfinite(mated)], impostor[np.isfinite(impostor)]  # failed comparisons have no score
    if mated.size == 0 or impostor.size == 0:
        return []
    m, i = float(np.median(mated)), float(np.median(impostor))
    if m >= i:
        return []
    field = "scores.higher_is_similar" if config.input is not None else "the backend's metric"
    return [
        f"score direction looks inverted: the median mated score ({info.to_native(m):.4g}) is below the median impostor score "
        f"({info.to_native(i):.4g}) in the file's units, so mated pairs look less alike than impostor pairs; if the file holds "
        f"distances, set {field} = {str(not info.higher_is_similar).lower()}"
    ]


def run_audit(
    config: AuditConfig,
    *,
    data_dir: str | Path | None = None,
    workers: int | None = None,
    output_dir: str | Path | None = None,
    write: bool = True,
    log: Callable[[str], None] = _noop,
) -> AuditRun:
    """Run the audit a config describes and (by default) write its outputs.

    Outputs in ``output_dir`` (default: the config's ``output.dir``): ``results.json``,
    ``tables/*.csv`` and a self-contained ``index.html``.

    Parameters
    ----------
    config : AuditConfig
    data_dir : path, optional
        Overrides ``dataset.data_dir``.
    workers : int, optional
        Overrides ``run.workers`` (default: all cores).
    write : bool, default True
        Set False to compute the result only (notebooks).
    log : callable, optional
        Receives one-line progress messages.
    """
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    # everything that can be checked before any image is read
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers: expected an integer >= 1, found {workers!r}")
    if config.dataset is not None and config.dataset.subjects is not None and (
            isinstance(config.dataset.subjects, bool) or not isinstance(config.dataset.subjects, int) or config.dataset.subjects < 2):
        raise ConfigError(
            f"{config.path or '<config>'}: --subjects / field 'dataset.subjects': expected an integer >= 2 "
            f"(an audit needs two people to compare), found {config.dataset.subjects!r}"
        )
    out_dir = Path(output_dir) if output_dir else config.output_dir
    if write:
        check_output_dir(out_dir)
    if config.run.cache_dir is not None and Path(config.run.cache_dir).exists() and not Path(config.run.cache_dir).is_dir():
        raise ConfigError(f"--cache-dir / field 'run.cache_dir': {config.run.cache_dir} is a file, not a folder")
    if config.input is not None:
        acq = _acquire_from_file(config, log)
    else:
        acq = _acquire_from_images(config, data_dir, workers, log)
    samples, info, groupings = acq.samples, acq.info, acq.groupings
    stats = acq.stats

    t_score = time.perf_counter()
    acq, side, side_warnings = _apply_sides(acq, config, log)
    samples = acq.samples
    scored = _score(acq, config, side)
    n_mated, n_impostor = scored.n_mated, scored.n_impostor
    tables = analyse_cells(samples, scored.data, scored.labels, scored.columns, scored.thresholds, groupings=groupings,
                           bootstrap=config.run.bootstrap, seed=config.run.seed, interval=config.run.interval,
                           disparity_weights=config.disparity.as_dict(), reference=config.analysis.reference)
    score_seconds = time.perf_counter() - t_score + acq.score_seconds
    log(f"scored {n_mated} mated and {n_impostor} impostor comparisons in {score_seconds:.2f} s")

    keep_cols = ["sample_id", "subject", "path", "status", "n_faces", "detail", *acq.group_columns]
    warnings = side_warnings + list(scored.warnings) + list(tables.warnings) + single_subject_groups(samples[samples["status"] == "ok"], acq.group_columns)
    n_fail = int((samples["status"] != "ok").sum())
    if n_fail:
        warnings.append(f"{n_fail} of {len(samples)} image(s) failed to acquire (see the FTA table); they are left out of comparisons")
    f_mated, f_imp = acq.failed_comparisons
    if f_mated or f_imp:
        warnings.append(f"{f_mated} of {n_mated} mated and {f_imp} of {n_impostor} impostor comparison(s) have no score (failed "
                        "comparisons): counted as non-matches, so each failed mated pair is a false non-match at every threshold")
    if not acq.identities:
        warnings.append("the scores file gives no identities (only a mated flag per pair): intervals assume every comparison is "
                        "independent, which understates uncertainty when people recur across pairs; subject counts are not known")
    provenance = {
        "tool": "face-audit",
        "tool_version": __version__,
        "backend": info.to_dict(),
        "dataset": acq.dataset,
        "protocol": {
            "kind": acq.protocol_kind if config.input is not None and config.input.kind == "scores" else _protocol_name(config, acq.protocol_kind),
            "mated_comparisons": n_mated,
            "impostor_comparisons": n_impostor,
            "groupings": ["+".join(g) for g in groupings],
            "failed_images_excluded": True,
            "bootstrap_replicates": config.run.bootstrap,
            "disparity_weights": config.disparity.as_dict(),
            "interval": config.run.interval,
            "identities": "given" if acq.identities else "unknown: pairs assumed independent",
            "failed_comparisons": {"mated": acq.failed_comparisons[0], "impostor": acq.failed_comparisons[1],
                                   "mated_rate": acq.failed_comparisons[0] / n_mated if n_mated else None,
                                   "impostor_rate": acq.failed_comparisons[1] / n_impostor if n_impostor else None},
            "people_interval": "people bootstrap: people resampled within groups, impostor pair (i, j) weighted w_i*w_j, mated pair w_i",
            "reference": config.analysis.reference if config.analysis.reference is not None else "the group with the most comparisons",
            **({"sides": {
                "probe": {c: list(v) for c, v in config.protocol.probe} if config.protocol.two_sided else "sample_a of the scores file",
                "reference": {c: list(v) for c, v in config.protocol.reference} if config.protocol.two_sided else "sample_b of the scores file",
                "probe_images_acquired": _side_count(acq, side, 0), "reference_images_acquired": _side_count(acq, side, 1),
                "cross_fmr": "directional: group_a is the probe's group, group_b the reference image's",
            }} if side is not None else {}),
        },
        "config": {"path": str(config.path) if config.path else None, "values": dict(config.raw)},
        "seed": config.run.seed,
        "machine": _machine(),
        "created": started.isoformat(timespec="seconds"),
        "timing": {
            "embedding_seconds": round(stats.seconds, 3),
            "images_embedded": stats.computed,
            "images_from_cache": stats.cached,
            "workers": acq.workers,
            "scoring_seconds": round(score_seconds, 3),
            "seconds_to_result": round(time.perf_counter() - t_start, 3),
        },
    }
    result = AuditResult(
        title=config.title,
        provenance=provenance,
        groupings=tuple("+".join(g) for g in groupings),
        thresholds=tables.thresholds,
        samples=paths_of_failures_only(samples[keep_cols].reset_index(drop=True)),
        composition=tables.composition,
        fta=tables.fta,
        rates=tables.rates,
        cross_fmr=tables.cross_fmr,
        disparity=tables.disparity,
        score_hist=tables.score_hist,
        det=tables.det,
        reference=tables.reference,
        warnings=tuple(warnings),
    )
    files: list[Path] = []
    if write:
        files = write_outputs(result, out_dir, include_face_images=config.include_face_images)
    total = time.perf_counter() - t_start
    return AuditRun(result, stats, total, out_dir if write else None, tuple(files))


#: Marks an output folder whose files are being replaced; if it stays, a run was killed while
#: moving its outputs into place and the folder may mix two runs.
INCOMPLETE_MARKER = "INCOMPLETE.txt"


def check_output_dir(out_dir: str | Path) -> None:
    """Raise a ConfigError (before any work) unless ``out_dir`` is, or can be made, a writable folder."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--output / field 'output.dir': {out_dir} is a file, not a folder; choose another output folder")
    probe = out_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--output / field 'output.dir': {out_dir} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output / field 'output.dir': {out_dir} cannot be written ({probe} is not writable); choose a writable output folder"
        )


def write_outputs(result: AuditResult, out_dir: str | Path, *, include_face_images: bool = False) -> list[Path]:
    """Write ``results.json``, ``tables/*.csv`` and ``index.html`` into ``out_dir`` without ever
    leaving a mix of two runs unmarked.

    Everything is first written into a temporary folder inside ``out_dir``; then a marker
    (:data:`INCOMPLETE_MARKER`) is created, the files are moved into place (``results.json``
    last), and the marker is removed. A failure while writing (a full disk) removes the temporary
    folder and leaves the previous outputs as they were.
    """
    from .report import write_report

    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".face-audit-partial-", dir=out_dir))
    except OSError as exc:
        raise ConfigError(f"--output / field 'output.dir': cannot create {out_dir} ({exc.strerror or exc})") from exc
    marker = out_dir / INCOMPLETE_MARKER
    try:
        try:
            result.to_json(tmp / "results.json")
            result.write_tables(tmp / "tables")
            write_report(result, tmp, include_face_images=include_face_images)
        except OSError as exc:
            raise ConfigError(
                f"--output / field 'output.dir': writing the outputs into {out_dir} failed ({exc.strerror or exc}); "
                "nothing was replaced there. Free space or choose another folder and run again "
                "(embeddings are kept in the cache, so a rerun does not embed again)"
            ) from exc
        try:
            marker.write_text(
                "face-audit was moving a run's outputs into this folder and did not finish: results.json, index.html and "
                "tables/ may come from different runs. Run the audit again.\n", encoding="utf-8")
            old_tables = out_dir / "tables"
            if old_tables.is_dir() and not old_tables.is_symlink():
                trash = Path(tempfile.mkdtemp(prefix=".face-audit-old-", dir=out_dir))
                os.replace(old_tables, trash / "tables")
                os.replace(tmp / "tables", old_tables)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                if old_tables.is_symlink() or old_tables.exists():
                    old_tables.unlink()
                os.replace(tmp / "tables", old_tables)
            os.replace(tmp / "index.html", out_dir / "index.html")
            os.replace(tmp / "results.json", out_dir / "results.json")
            marker.unlink()
        except OSError as exc:
            raise ConfigError(
                f"--output / field 'output.dir': moving the outputs into {out_dir} failed ({exc.strerror or exc}); "
                f"{marker.name} there marks the folder incomplete"
            ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out_dir / "results.json", *sorted((out_dir / "tables").glob("*.csv")), out_dir / "index.html"]
