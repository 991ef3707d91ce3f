"""Run a whole 1:1 audit: dataset -> backend -> embedding store -> comparisons -> metrics -> outputs.

:func:`run_audit` is what ``face-audit run`` calls; notebooks call it too. It never prints:
progress goes to tqdm bars (stderr) and messages to the ``log`` callback.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import __version__
from ..backends.base import BackendInfo
from .protocol import PairScores
from .inputs import single_subject_groups
from .config import AuditConfig
from ..engine import EmbedStats
from ..engine.select import use_engine
from ..errors import ConfigError, DataError
from .result import AuditResult
from ..results import paths_of_failures_only
from .analysis import (
    analyse_cells,
    cell_data_from_pairs,
    cell_data_from_scan,
    choose_thresholds,
    finest_cells,
    threshold_specs,
    thresholds_from_counts,
)
from .acquire import _Acquired, _acquire_from_file, _acquire_from_images, _machine, _noop
from .outputs import check_output_dir, write_outputs
from .confounders import covariate_tables
from .data_quality import apply_data_quality, result_tables

__all__ = ["AuditRun", "run_audit"]


@dataclass(frozen=True)
class AuditRun:
    """What :func:`run_audit` did: the result, the embedding statistics and the files written."""

    result: AuditResult
    embed: EmbedStats
    seconds: float
    output_dir: Path | None
    files: tuple[Path, ...]


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
    from .protocol import mated_pair_indices, read_pair_list
    from ..engine.tiles import pair_scores_from_list, sample_impostor_pairs

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
    from ..engine.tiles import score_tiles

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
    # per-person counts: for the people-level bootstrap and the confounder adjustment only
    data = cell_data_from_scan(scan, counts, people=bool(config.run.bootstrap) or bool(config.analysis.adjust_for))
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


def _run_audit(
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
        Its ``[engine]`` says where the work runs: here, or on Ray (:mod:`audit.engine.select`).
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
    acq, quality = apply_data_quality(acq, config, log)  # duplicates ([data] duplicates) and wrong faces
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
    covs = covariate_tables(samples, acq.ok_rows, scored, groupings, config, acq.dataset) if config.analysis.adjust_for else None
    score_seconds = time.perf_counter() - t_score + acq.score_seconds
    log(f"scored {n_mated} mated and {n_impostor} impostor comparisons in {score_seconds:.2f} s")

    keep_cols = ["sample_id", "subject", "path", "status", "n_faces", "detail", *acq.group_columns]
    warnings = side_warnings + list(quality.warnings) + list(covs.warnings if covs else ()) + list(scored.warnings) + list(tables.warnings) + single_subject_groups(samples[samples["status"] == "ok"], acq.group_columns)
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
        "data_quality": quality.provenance,
        **({"adjust_for": list(config.analysis.adjust_for)} if config.analysis.adjust_for else {}),
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
        **result_tables(quality, covs),
        warnings=tuple(warnings),
    )
    files: list[Path] = []
    if write:
        files = write_outputs(result, out_dir, include_face_images=config.include_face_images)
    total = time.perf_counter() - t_start
    return AuditRun(result, stats, total, out_dir if write else None, tuple(files))


def run_audit(config: AuditConfig, **kwargs: Any) -> AuditRun:
    with use_engine(config.engine):  # [engine]: local processes, or Ray (audit/engine/select.py)
        return _run_audit(config, **kwargs)


run_audit.__doc__ = _run_audit.__doc__
run_audit.__signature__ = inspect.signature(_run_audit)  # type: ignore[attr-defined]
