"""``face-audit skintone CONFIG``: measure skin tone on a dataset, write a label file and a report.

Config (``examples/london-skintone.toml``)::

    title = "London set: measured skin tone"

    [dataset]
    name = "london"

    [skintone]
    normalisation = "white_patch"     # or "grey_world", "none"
    compare = ["ethnicity"]           # self-reported label columns to cross-tabulate against
    max_side = 640                    # detection on a copy at most this large
    upsample = 1
    undetected = "skip"               # "whole_image": landmarks in the whole image when no face is found (face crops)

    [output]
    dir = "../reports/london-skintone"     # index.html, results.json, tables/
    labels = "../reports/london-skintone/skintone-labels.csv"   # one row per person

The label file (key ``subject``) has the columns of :data:`audit.skintone.people.PERSON_COLUMNS`;
``[dataset] labels = "…csv"`` in an audit config (1:1, classifier) adds them as group columns,
so ``groupings = [["skin_tone"]]`` or ``[["skin_tone_binary", "gender"]]`` work like any label.
Per-image measurements stay in memory: only per-person medians and bins are written.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from .. import __version__
from ..errors import ConfigError, UnreadableImageError
from .measure import NORMALISATIONS, ita_category, measure_skin
from .people import IMAGE_COLUMNS, person_tones

__all__ = ["SkinToneConfig", "load_skintone_config", "skintone_config_from_dict", "measure_table", "run_skintone",
           "SkinToneRun", "skintone_command"]

_ALLOWED = {
    "": {"title", "dataset", "skintone", "output", "run"},
    "dataset": {"name", "manifest", "data_dir", "subjects"},
    "skintone": {"normalisation", "compare", "max_side", "upsample", "trim", "undetected"},
    "output": {"dir", "labels"},
    "run": {"seed", "progress"},
}


@dataclass(frozen=True)
class SkinToneConfig:
    title: str
    dataset: str
    manifest: Path | None
    data_dir: Path | None
    subjects: int | None
    normalisation: str
    compare: tuple[str, ...]
    max_side: int
    upsample: int
    trim: float
    undetected: str
    output_dir: Path
    labels_path: Path
    seed: int
    progress: bool
    path: Path | None
    raw: Mapping[str, Any]


def load_skintone_config(path: str | Path) -> SkinToneConfig:
    from ..config import read_toml

    path = Path(path)
    return skintone_config_from_dict(read_toml(path), path=path)


def skintone_config_from_dict(raw: Mapping[str, Any], *, path: Path | None = None) -> SkinToneConfig:
    """Validate a skin-tone config (errors name the file and the field)."""
    from ..config import field_readers

    err, table, rel = field_readers(raw, _ALLOWED, path=path)
    base = path.parent if path else Path.cwd()

    ds, st, out, rn = table("dataset"), table("skintone"), table("output"), table("run")
    if "name" not in ds and "manifest" not in ds:
        raise err("dataset.name", "missing; give a dataset name (e.g. \"london\") or dataset.manifest = \"path.yaml\"")
    norm = st.get("normalisation", "white_patch")
    if norm not in NORMALISATIONS:
        raise err("skintone.normalisation", f"expected one of {list(NORMALISATIONS)}, found {norm!r}")
    compare = st.get("compare", [])
    if not isinstance(compare, list) or not all(isinstance(c, str) for c in compare):
        raise err("skintone.compare", f"expected a list of label columns such as [\"ethnicity\"], found {compare!r}")
    ints = {}
    for key, lo, default in (("max_side", 64, 640), ("upsample", 0, 1)):
        v = st.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise err(f"skintone.{key}", f"expected an integer >= {lo}, found {v!r}")
        ints[key] = v
    trim = st.get("trim", 0.1)
    if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not 0 <= trim < 0.5:
        raise err("skintone.trim", f"expected a number in [0, 0.5), found {trim!r}")
    subjects = ds.get("subjects")
    if subjects is not None and (isinstance(subjects, bool) or not isinstance(subjects, int) or subjects < 2):
        raise err("dataset.subjects", f"expected an integer >= 2, found {subjects!r}")
    undetected = st.get("undetected", "skip")
    if undetected not in ("skip", "whole_image"):
        raise err("skintone.undetected", f"expected \"skip\" or \"whole_image\" (for face crops), found {undetected!r}")
    name = ds.get("name") or Path(ds["manifest"]).stem
    out_dir = rel(out["dir"], "output.dir") if "dir" in out else (base / "reports" / f"{name}-skintone").resolve()
    labels = rel(out["labels"], "output.labels") if "labels" in out else out_dir / "skintone-labels.csv"
    title = raw.get("title", f"{name}: measured skin tone")
    if not isinstance(title, str):
        raise err("title", f"expected a string, found {title!r}")
    progress = rn.get("progress", True)
    if not isinstance(progress, bool):
        raise err("run.progress", f"expected true or false, found {progress!r}")
    return SkinToneConfig(
        title=title, dataset=name, manifest=rel(ds["manifest"], "dataset.manifest") if "manifest" in ds else None,
        data_dir=rel(ds["data_dir"], "dataset.data_dir") if "data_dir" in ds else None, subjects=subjects,
        normalisation=norm, compare=tuple(compare), max_side=ints["max_side"], upsample=ints["upsample"], trim=float(trim), undetected=undetected,
        output_dir=out_dir, labels_path=labels, seed=int(rn.get("seed", 0)), progress=progress, path=path, raw=dict(raw),
    )


def measure_table(samples: pd.DataFrame, detector, *, normalisation: str = "white_patch", trim: float = 0.1,
                  progress: bool = False) -> pd.DataFrame:
    """Measure every image (``sample_id``, ``subject``, ``path``) with a landmark ``detector``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`audit.skintone.people.IMAGE_COLUMNS`; ``status`` is ``"ok"``,
        ``"no_face"``, ``"too_few_skin_pixels"`` or ``"unreadable"``.
    """
    from ..images import read_rgb
    from .landmarks import skin_mask

    detector.load()
    rows = []
    items = list(samples[["sample_id", "subject", "path"]].itertuples(index=False))
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="measuring skin tone", unit="img", file=sys.stderr)
    for sid, subj, path in items:
        rec = {"sample_id": sid, "subject": str(subj), "status": "ok"}
        try:
            rgb = read_rgb(path)
        except UnreadableImageError:
            rows.append({**rec, "status": "unreadable"})
            continue
        lm = detector.detect(rgb)
        if lm is None:
            rows.append({**rec, "status": "no_face"})
            continue
        m = measure_skin(rgb, skin_mask(rgb.shape[:2], lm.points), normalisation=normalisation, trim=trim)
        if m is None:
            rows.append({**rec, "status": "too_few_skin_pixels"})
            continue
        rows.append({**rec, "L": m.L, "a": m.a, "b": m.b, "ita": m.ita, "hue": m.hue, "pixels": m.pixels,
                     "skin_tone_image": ita_category(m.ita)})
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


@dataclass(frozen=True)
class SkinToneRun:
    """What :func:`run_skintone` produced: per-person labels, the report's tables and files."""

    people: pd.DataFrame
    crosstabs: pd.DataFrame
    status: pd.DataFrame
    output_dir: Path
    labels_path: Path
    seconds: float


def _crosstabs(people: pd.DataFrame, labels: pd.DataFrame, compare: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    p = people.merge(labels, on="subject", how="left")
    for col in compare:
        for bin_col in ("skin_tone", "skin_tone_binary", "skin_monk"):
            ct = p.groupby([bin_col, col], sort=True).agg(people=("subject", "nunique"), ita_median=("skin_ita", "median")).reset_index()
            for r in ct.itertuples(index=False):
                rows.append((bin_col, col, str(r[0]), str(r[1]), int(r.people), float(r.ita_median)))
    return pd.DataFrame(rows, columns=["bin_column", "label_column", "bin", "label", "people", "ita_median"])


def run_skintone(config: SkinToneConfig, *, data_dir: str | Path | None = None, detector=None,
                 log: Callable[[str], None] = lambda m: None) -> SkinToneRun:
    """Measure, summarise per person, write the label file, the tables and the report."""
    from ..datasets import load_dataset, load_manifest
    from .landmarks import LandmarkDetector

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    manifest = load_manifest(config.manifest or config.dataset)
    table = load_dataset(manifest, data_dir=data_dir or config.data_dir)
    if config.subjects:
        table = table.subset_subjects(config.subjects, seed=config.seed)
    samples = table.data
    unknown = [c for c in config.compare if c not in samples.columns]
    if unknown:
        raise ConfigError(f"{config.path}: field 'skintone.compare' names {unknown}; the dataset has {list(table.group_columns)}")
    log(f"dataset {manifest.name}: {len(samples)} images of {table.n_subjects} subjects")
    detector = detector or LandmarkDetector(max_side=config.max_side, upsample=config.upsample, undetected=config.undetected)
    images = measure_table(samples, detector, normalisation=config.normalisation, trim=config.trim, progress=config.progress)
    people = person_tones(images)
    labels = samples.groupby("subject", sort=True)[list(config.compare)].first().reset_index() if config.compare else samples[["subject"]].drop_duplicates()
    labels["subject"] = labels["subject"].astype(str)
    crosstabs = _crosstabs(people, labels, config.compare)
    im = images.merge(samples[["sample_id", *config.compare]], on="sample_id", how="left")
    status = (im.groupby([*(config.compare or []), "status"], sort=True).size().reset_index(name="images")
              if config.compare else im.groupby("status").size().reset_index(name="images"))
    config.labels_path.parent.mkdir(parents=True, exist_ok=True)
    out_people = people.copy()
    for c in ("skin_ita", "skin_L", "skin_hue", "skin_ita_spread", "skin_consistency"):
        out_people[c] = out_people[c].round(2)
    out_people.to_csv(config.labels_path, index=False)
    out = config.output_dir
    (out / "tables").mkdir(parents=True, exist_ok=True)
    crosstabs.to_csv(out / "tables" / "crosstab.csv", index=False)
    status.to_csv(out / "tables" / "status.csv", index=False)
    provenance = {
        "tool": "face-audit", "tool_version": __version__, "kind": "skin tone measurement", "dataset": dict(table.dataset),
        "method": {"landmarks": "dlib HOG detector + 68-point shape predictor (face_recognition_models)",
                   "landmark_model": str(getattr(detector, "model_path", "") or ""), "normalisation": config.normalisation,
                   "trim": config.trim, "max_side": config.max_side, "upsample": config.upsample,
                   "undetected": config.undetected},
        "config": {"path": str(config.path) if config.path else None, "values": dict(config.raw)},
        "labels_file": str(config.labels_path), "created": started.isoformat(timespec="seconds"),
        "images": int(len(images)), "images_measured": int((images["status"] == "ok").sum()),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, default=str) + "\n", encoding="utf-8")
    from ..report.skintone import write_skintone_report

    write_skintone_report(config.title, people.merge(labels, on="subject", how="left"), images.merge(samples[["sample_id", *config.compare]], on="sample_id", how="left"),
                          crosstabs, config.compare, provenance, out)
    return SkinToneRun(people, crosstabs, status, out, config.labels_path, time.perf_counter() - t0)


def skintone_command(args: argparse.Namespace) -> int:
    import dataclasses

    config = load_skintone_config(args.config)
    if getattr(args, "no_progress", False):
        config = dataclasses.replace(config, progress=False)
    run = run_skintone(config, data_dir=args.data_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
    p = run.people
    print(config.title)
    print(f"  {int((p['skin_images'] > 0).sum())} of {len(p)} people measured; bins: "
          + ", ".join(f"{k} {v}" for k, v in p["skin_tone"].value_counts().sort_index().items()))
    measured = p[p["skin_images"] > 1]
    if len(measured):
        print(f"  people with 2+ images: median ITA spread {measured['skin_ita_spread'].median():.1f}°, "
              f"{(measured['skin_consistency'] == 1).mean():.0%} have every image in their bin")
    print(f"  finished in {run.seconds:.1f} s")
    print(f"labels: {run.labels_path}")
    print(f"report: {run.output_dir / 'index.html'}")
    return 0
