"""The 1:1 audit config: a TOML file -> validated, typed objects. Errors name the file and the field.

Example (``examples/london-dlib.toml``)::

    title = "London set: dlib ResNet"

    [dataset]
    name = "london"                 # a manifest name, or `manifest = "path/to.yaml"`
    groupings = [["ethnicity"], ["gender"], ["ethnicity", "gender"]]
    # subjects = 20                 # a seeded random subset of subjects, for quick runs

    [backend]
    name = "dlib"
    options = { upsample = 1 }

    [thresholds]
    target_fmr = [1e-2, 1e-3]       # thresholds fixed on all impostor comparisons
    fixed = []                      # given thresholds, in the backend's own units
    backend_default = true          # also the library's own default threshold

    [run]
    workers = 2
    batch_size = 8
    seed = 0

    [output]
    dir = "../reports/london-dlib"  # relative paths are relative to this file

Relative paths in a config are resolved against the config file's folder.
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import (ENGINE_KEYS, INTERVALS, BackendConfig, DatasetConfig, EngineConfig, RunConfig, ThresholdConfig, _pos_int,
                      engine_section, field_readers, read_toml)




@dataclass(frozen=True)
class ProtocolConfig:
    """Which pairs are compared.

    ``impostors``: ``"all"`` (every non-mated pair) or ``"same_group"`` (NIST's same-demographic
    impostors: both images in the same cell of the finest grouping, e.g. same ethnicity and
    gender). ``pairs``: a given pair list instead of all pairs (LFW's ``pairs.txt`` or a CSV with
    ``sample_a,sample_b``), relative to the dataset root or the config. ``sample_impostors``: score
    every mated pair and this many impostor pairs drawn at random (seeded by ``run.seed``).
    ``probe`` and ``reference``: a two-sided protocol, the images a system is asked about
    against the images it holds (``probe = { expression = "smiling" }``, ``reference =
    { expression = "neutral" }``): each selects rows by column values, only probe-reference
    pairs are compared, and the cross-group FMR matrix is directional (rows: the probe's group).
    """

    impostors: str = "all"
    pairs: str | None = None
    pair_id_format: str = "lfw-deepfunneled/{name}/{name}_{number:04d}.jpg"
    sample_impostors: int | None = None
    probe: tuple[tuple[str, tuple[str, ...]], ...] = ()
    reference: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def two_sided(self) -> bool:
        return bool(self.probe)


@dataclass(frozen=True)
class InputConfig:
    """A scores file or an embeddings file audited in place of a backend run on images."""

    kind: str  # "scores" or "embeddings"
    path: Path
    samples: Path | None
    group_columns: tuple[str, ...]
    groupings: tuple[tuple[str, ...], ...]
    higher_is_similar: bool = True
    metric: str = "cosine"
    name: str = ""
    two_sided: bool = False  # scores: sample_a is always the probe, sample_b the reference


@dataclass(frozen=True)
class AuditConfig:
    """A validated audit config. ``raw`` is the parsed TOML, recorded in provenance."""

    title: str
    dataset: DatasetConfig | None
    backend: BackendConfig | None
    thresholds: ThresholdConfig
    run: RunConfig
    output_dir: Path
    path: Path | None
    raw: Mapping[str, Any]
    input: InputConfig | None = None
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    include_face_images: bool = False
    disparity: "DisparityConfig" = field(default_factory=lambda: DisparityConfig())
    analysis: "AnalysisConfig" = field(default_factory=lambda: AnalysisConfig())
    data: "DataConfig" = field(default_factory=lambda: DataConfig())
    engine: EngineConfig = field(default_factory=EngineConfig)  # [engine]: local processes or Ray


@dataclass(frozen=True)
class AnalysisConfig:
    """How groups are compared (``[analysis]``).

    ``reference``: the group every other group is compared with, as ``{ column = "value" }`` (for
    example ``{ ethnicity = "White" }``; a grouping whose columns it names in full uses that group,
    other groupings use the default), or ``"overall"`` (each group against the whole population).
    Default: in each grouping, the group with the most same-group impostor comparisons.
    """

    reference: Mapping[str, str] | str | None = None
    adjust_for: tuple[str, ...] = ()  # covariates (e.g. "age_band"): ratios adjusted for them beside the crude ones


@dataclass(frozen=True)
class DataConfig:
    """Data quality (``[data]``). ``duplicates``: what to do with duplicate images (see
    :mod:`audit.quality`): ``"exclude"`` (exact and near copies across subjects, and all but one
    copy within a subject), ``"warn"`` (keep them, warn), ``"keep"`` (keep them, list them only);
    default: exclude exact copies across subjects and warn about the rest."""

    duplicates: str = "default"


@dataclass(frozen=True)
class DisparityConfig:
    """The weights of the joint FMR/FNMR disparity summaries (``[disparity]``).

    ``fdr_alpha``: FDR's weight of the largest FMR gap (``1 - fdr_alpha`` on the FNMR gap; de
    Freitas Pereira & Marcel use 0.5). ``garbe_alpha``: GARBE's weight of the FMR Gini
    coefficient (``1 - garbe_alpha`` on FNMR's; Howard et al. use 0.5). ``inequity_alpha`` and
    ``inequity_beta``: the exponents of the FMR and FNMR max/min ratios in the Inequity Rate
    (1 and 1: their plain product).
    """

    fdr_alpha: float = 0.5
    garbe_alpha: float = 0.5
    inequity_alpha: float = 1.0
    inequity_beta: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return {"fdr_alpha": self.fdr_alpha, "garbe_alpha": self.garbe_alpha,
                "inequity_alpha": self.inequity_alpha, "inequity_beta": self.inequity_beta}


_ALLOWED = {
    "": {"title", "dataset", "backend", "thresholds", "run", "output", "scores", "embeddings", "protocol", "disparity", "analysis", "data",
         "engine"},
    "engine": ENGINE_KEYS,
    "analysis": {"reference", "adjust_for"},
    "data": {"duplicates"},
    "disparity": {"fdr_alpha", "garbe_alpha", "inequity_alpha", "inequity_beta"},
    "protocol": {"impostors", "pairs", "pair_id_format", "sample_impostors", "probe", "reference"},
    "scores": {"path", "samples", "higher_is_similar", "groups", "groupings", "name", "two_sided"},
    "embeddings": {"path", "samples", "metric", "groups", "groupings", "name"},
    "dataset": {"name", "manifest", "data_dir", "groupings", "subjects", "huggingface", "groups", "subject_column", "split", "revision", "labels", "balance"},
    "backend": {"name", "options"},
    "thresholds": {"target_fmr", "fixed", "backend_default"},
    "run": {"workers", "batch_size", "seed", "cache_dir", "progress", "bootstrap", "interval"},
    "output": {"dir", "include_face_images"},
}


def load_config(path: str | Path) -> AuditConfig:
    """Read and validate an audit config file.

    Raises
    ------
    ConfigError
        Naming the file and the field, saying what was expected and what was found.
    """
    path = Path(path)
    return config_from_dict(read_toml(path), path=path)

def config_from_dict(raw: Mapping[str, Any], *, path: Path | None = None, base_dir: Path | None = None) -> AuditConfig:
    """Validate a config given as a dict (as parsed from TOML)."""
    base = base_dir or (path.parent if path else Path.cwd())
    err, table, rel = field_readers(raw, _ALLOWED, path=path, base=base)

    pos_int = _pos_int(err)

    if "scores" in raw or "embeddings" in raw:
        return _input_config(raw, path, base, err, table, rel)
    ds = table("dataset")
    if "name" not in ds and "manifest" not in ds and "huggingface" not in ds:
        raise err("dataset.name", "missing; give a dataset name (e.g. \"london\"), dataset.manifest = \"path.yaml\" or dataset.huggingface = \"folder or hub id\"")
    hf = ds.get("huggingface")
    if hf is not None:
        if not isinstance(hf, str):
            raise err("dataset.huggingface", f"expected a local imagefolder path or a hub id, found {hf!r}")
        if not isinstance(ds.get("groups"), Mapping) or not ds["groups"]:
            raise err("dataset.groups", "a Hugging Face dataset needs [dataset.groups]: audit group -> label column (or {column, values})")
        local = Path(hf).expanduser()
        if not local.is_absolute() and (base / local).exists():
            hf = str((base / local).resolve())
    elif "groups" in ds:
        raise err("dataset.groups", "only used with dataset.huggingface; a manifest's groups are defined in the manifest")
    manifest = rel(ds["manifest"], "dataset.manifest") if "manifest" in ds else None
    groupings = None
    if "groupings" in ds:
        g = ds["groupings"]
        if not isinstance(g, list) or not g or not all(
            isinstance(x, str) or (isinstance(x, list) and x and all(isinstance(y, str) for y in x)) for x in g
        ):
            raise err("dataset.groupings", f"expected a list of column lists such as [[\"ethnicity\"], [\"ethnicity\", \"gender\"]], found {g!r}")
        groupings = tuple((x,) if isinstance(x, str) else tuple(x) for x in g)
    dataset = DatasetConfig(
        name=str(ds.get("name", manifest.stem if manifest else Path(str(hf)).name if hf else "")),
        huggingface=hf,
        hf_groups=dict(ds["groups"]) if hf else None,
        hf_subject_column=str(ds.get("subject_column", "subject")),
        hf_split=str(ds.get("split", "train")),
        hf_revision=ds.get("revision"),
        manifest=manifest,
        data_dir=rel(ds["data_dir"], "dataset.data_dir") if "data_dir" in ds else None,
        groupings=groupings,
        subjects=pos_int(ds["subjects"], "dataset.subjects", 2) if "subjects" in ds else None,
        labels=rel(ds["labels"], "dataset.labels") if "labels" in ds else None,
        balance=_column_list(ds, "balance", "dataset.balance", err),
    )

    be = table("backend")
    if "name" not in be or not isinstance(be["name"], str):
        raise err("backend.name", "missing; name a backend such as \"dlib\" or \"deepface\" (see `face-audit backends list`)")
    opts = be.get("options", {})
    if not isinstance(opts, Mapping):
        raise err("backend.options", f"expected a table of options, found {opts!r}")
    backend = BackendConfig(be["name"], dict(opts))

    thresholds, run = _thresholds_and_run(table, err, rel, pos_int)
    out = table("output")
    out_dir = rel(out["dir"], "output.dir") if "dir" in out else (base / "reports" / (dataset.name + "-" + backend.name)).resolve()
    title = raw.get("title", f"{dataset.name}: {backend.name}")
    if not isinstance(title, str):
        raise err("title", f"expected a string, found {title!r}")
    return AuditConfig(title, dataset, backend, thresholds, run, out_dir, path, dict(raw), None, _protocol(table, err, pos_int),
                       _face_images(out, err), _disparity(table, err), _analysis(table, err), _data(table, err),
                       engine=engine_section(table, err))


def _thresholds_and_run(table, err, rel, pos_int) -> tuple[ThresholdConfig, RunConfig]:
    th = table("thresholds")
    targets = th.get("target_fmr", [1e-2, 1e-3])
    if not isinstance(targets, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1 for t in targets):
        raise err("thresholds.target_fmr", f"expected a list of rates in (0, 1] such as [1e-2, 1e-3], found {targets!r}")
    fixed = th.get("fixed", [])
    if not isinstance(fixed, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in fixed):
        raise err("thresholds.fixed", f"expected a list of numbers in the backend's own units, found {fixed!r}")
    bd = th.get("backend_default", True)
    if not isinstance(bd, bool):
        raise err("thresholds.backend_default", f"expected true or false, found {bd!r}")
    if not targets and not fixed and not bd:
        raise err("thresholds", "no threshold to evaluate: give target_fmr, fixed, or backend_default = true")
    thresholds = ThresholdConfig(tuple(sorted({float(t) for t in targets}, reverse=True)), tuple(float(f) for f in fixed), bd)

    rn = table("run")
    progress = rn.get("progress", True)
    if not isinstance(progress, bool):
        raise err("run.progress", f"expected true or false, found {progress!r}")
    seed = rn.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise err("run.seed", f"expected an integer >= 0, found {seed!r}")
    interval = rn.get("interval", "wilson")
    if not isinstance(interval, str) or interval not in INTERVALS:
        raise err("run.interval", f"expected \"wilson\" or \"clopper-pearson\" (also spelt \"clopper_pearson\"), found {interval!r}")
    run = RunConfig(
        workers=pos_int(rn["workers"], "run.workers") if "workers" in rn else None,
        batch_size=pos_int(rn.get("batch_size", 8), "run.batch_size"),
        seed=seed,
        cache_dir=rel(rn["cache_dir"], "run.cache_dir") if "cache_dir" in rn else None,
        progress=progress,
        bootstrap=pos_int(rn.get("bootstrap", 1000), "run.bootstrap", 0),
        interval=INTERVALS[interval],
    )
    return thresholds, run


def _input_config(raw, path, base, err, table, rel) -> AuditConfig:
    if "scores" in raw and "embeddings" in raw:
        raise err("scores", "give either [scores] or [embeddings], not both")
    for other in ("dataset", "backend"):
        if other in raw:
            raise err(other, "not used with [scores] or [embeddings]: the file replaces the dataset and the backend")
    kind = "scores" if "scores" in raw else "embeddings"
    t = table(kind)
    if "path" not in t:
        raise err(f"{kind}.path", "missing; name the CSV or Parquet file" + (" (or .npy)" if kind == "embeddings" else ""))
    groups = t.get("groups", [])  # optional: no groups audits one population
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise err(f"{kind}.groups", f"expected a list of group label columns such as [\"ethnicity\", \"gender\"] (or none), found {groups!r}")
    if kind == "embeddings" and "samples" not in t:
        raise err("embeddings.samples", "missing; an embeddings file needs a samples table (sample_id, subject, group columns)")
    groupings_raw = t.get("groupings", [[g] for g in groups] + ([list(groups)] if len(groups) > 1 else []))
    if not isinstance(groupings_raw, list) or not all(isinstance(x, list) and x and all(g in groups for g in x) for x in groupings_raw):
        raise err(f"{kind}.groupings", f"expected lists of columns among {groups}, found {groupings_raw!r}")
    his = t.get("higher_is_similar", True)
    if not isinstance(his, bool):
        raise err("scores.higher_is_similar", f"expected true or false, found {his!r}")
    metric = t.get("metric", "cosine")
    if metric not in ("cosine", "euclidean"):
        raise err("embeddings.metric", f"expected \"cosine\" or \"euclidean\", found {metric!r}")
    name = t.get("name", "")
    two_sided = t.get("two_sided", False)
    if not isinstance(two_sided, bool):
        raise err("scores.two_sided", f"expected true (sample_a is the probe, sample_b the reference) or false, found {two_sided!r}")
    inp = InputConfig(
        kind=kind, path=rel(t["path"], f"{kind}.path"), samples=rel(t["samples"], f"{kind}.samples") if "samples" in t else None,
        group_columns=tuple(groups), groupings=tuple(tuple(x) for x in groupings_raw),
        higher_is_similar=his, metric=metric, name=str(name), two_sided=two_sided,
    )
    pos_int = _pos_int(err)
    thresholds, run = _thresholds_and_run(table, err, rel, pos_int)
    out = table("output")
    stem = inp.path.stem
    out_dir = rel(out["dir"], "output.dir") if "dir" in out else (base / "reports" / stem).resolve()
    title = raw.get("title", f"{name or stem} ({kind} file)")
    if not isinstance(title, str):
        raise err("title", f"expected a string, found {title!r}")
    protocol = _protocol(table, err, pos_int)
    if kind == "scores" and protocol != ProtocolConfig():
        raise err("protocol", "a scores file already lists its pairs: [protocol] only applies to images and embeddings")
    return AuditConfig(title, None, None, thresholds, run, out_dir, path, dict(raw), inp, protocol, _face_images(out, err),
                       _disparity(table, err), _analysis(table, err), _data(table, err), engine=engine_section(table, err))


def _column_list(t: Mapping, key: str, fld: str, err) -> tuple[str, ...] | None:
    if key not in t:
        return None
    v = t[key]
    v = [x.strip() for x in v.split(",")] if isinstance(v, str) else v
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise err(fld, f'expected a list of column names such as ["age_band"], found {t[key]!r}')
    return tuple(v)


def _data(table, err) -> DataConfig:
    dup = table("data").get("duplicates", "default")
    if dup not in ("default", "warn", "exclude", "keep"):
        raise err("data.duplicates", f'expected "warn", "exclude" or "keep", found {dup!r}')
    return DataConfig(dup)


def _analysis(table, err) -> AnalysisConfig:
    adjust = _column_list(table("analysis"), "adjust_for", "analysis.adjust_for", err) or ()
    ref = table("analysis").get("reference")
    if ref is None:
        return AnalysisConfig(None, adjust)
    if ref == "overall":
        return AnalysisConfig("overall", adjust)
    if isinstance(ref, Mapping) and ref and all(isinstance(k, str) and isinstance(v, (str, int)) and not isinstance(v, bool) for k, v in ref.items()):
        return AnalysisConfig({k: str(v) for k, v in ref.items()}, adjust)
    raise err("analysis.reference", f'expected "overall" or a table such as {{ ethnicity = "White" }}, found {ref!r}')


def _disparity(table, err) -> DisparityConfig:
    d = table("disparity")
    vals = {}
    for key, upper in (("fdr_alpha", 1.0), ("garbe_alpha", 1.0), ("inequity_alpha", None), ("inequity_beta", None)):
        if key not in d:
            continue
        v = d[key]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 and (upper is None or v <= upper)
        if not ok:
            want = "a number from 0 to 1" if upper else "a number >= 0"
            raise err(f"disparity.{key}", f"expected {want}, found {v!r}")
        vals[key] = float(v)
    return DisparityConfig(**vals)


def _protocol(table, err, pos_int) -> ProtocolConfig:
    pr = table("protocol")
    imp = pr.get("impostors", "all")
    if imp not in ("all", "same_group"):
        raise err("protocol.impostors", f"expected \"all\" or \"same_group\", found {imp!r}")
    pairs = pr.get("pairs")
    if pairs is not None and not isinstance(pairs, str):
        raise err("protocol.pairs", f"expected a file name such as \"pairs.txt\", found {pairs!r}")
    fmt = pr.get("pair_id_format", ProtocolConfig.pair_id_format)
    if not isinstance(fmt, str) or "{name}" not in fmt:
        raise err("protocol.pair_id_format", f"expected a format with {{name}} and {{number}}, found {fmt!r}")
    sample = pos_int(pr["sample_impostors"], "protocol.sample_impostors") if "sample_impostors" in pr else None
    if sum(x is not None for x in (pairs, sample)) + (imp != "all") > 1:
        raise err("protocol", "choose one of pairs, sample_impostors and impostors = \"same_group\"")
    sides = {k: _selector(pr[k], f"protocol.{k}", err) for k in ("probe", "reference") if k in pr}
    if sides:
        if len(sides) == 1:
            missing = "reference" if "probe" in sides else "probe"
            raise err(f"protocol.{missing}", "a two-sided protocol needs both probe and reference, e.g. "
                      "probe = { expression = \"smiling\" } and reference = { expression = \"neutral\" }")
        if pairs is not None or sample is not None:
            raise err("protocol", "probe/reference already say which pairs are compared (every probe against every "
                      "reference image): remove pairs or sample_impostors")
        if sides["probe"] == sides["reference"]:
            raise err("protocol.reference", "selects the same images as protocol.probe; choose two different sets")
    return ProtocolConfig(imp, pairs, fmt, sample, sides.get("probe", ()), sides.get("reference", ()))


def _selector(value, fld: str, err) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{ column = "value" }`` or ``{ column = ["a", "b"] }`` -> ((column, ("value",)), ...)."""
    example = '{ expression = "smiling" }'
    if not isinstance(value, Mapping) or not value:
        raise err(fld, f"expected a table of column = value(s) such as {example}, found {value!r}")
    out = []
    for col, vals in value.items():
        vals = list(vals) if isinstance(vals, (list, tuple)) else [vals]
        if not vals or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in vals):
            raise err(f"{fld}.{col}", f"expected a value or a list of values (strings or integers), found {value[col]!r}")
        out.append((str(col), tuple(str(v) for v in vals)))
    return tuple(out)


def _face_images(out, err) -> bool:
    v = out.get("include_face_images", False)
    if not isinstance(v, bool):
        raise err("output.include_face_images", f"expected true or false, found {v!r}")
    return v
