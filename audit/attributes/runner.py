"""Run a classifier audit: dataset (or samples file) -> predictions -> error tables -> outputs.

:func:`run_classifier_audit` is what ``face-audit classify CONFIG`` calls; :func:`audit_predictions`
is the library entry point for predictions already in a DataFrame (a notebook, a vendor's file
read by hand). Neither prints: messages go to the ``log`` callback.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import ConfigError, DataError, UnreadableImageError
from .config import ClassifyConfig, load_classify_config
from .metrics import age_band_of, classification_errors, confusion_long, intersectional_table
from .result import CLASSIFY_TABLES, ClassifierResult

__all__ = ["audit_predictions", "run_classifier_audit", "ClassifierRun", "predict_images", "crosstab",
           "add_classify_arguments", "classify_command"]


def _noop(msg: str) -> None:
    return None


@dataclass(frozen=True)
class ClassifierRun:
    """What :func:`run_classifier_audit` did: the result, the files written and the time taken."""

    result: ClassifierResult
    output_dir: Path | None
    files: tuple[Path, ...]
    seconds: float
    predicted: int
    from_cache: int


def crosstab(samples: pd.DataFrame, row: str, column: str, *, subject: str = "subject") -> pd.DataFrame:
    """Images and people in each (row value, column value) cell, long form.

    Returns
    -------
    pandas.DataFrame
        Columns ``row_column, column_column, row, column, images, subjects`` (cells with no
        image left out).

    Examples
    --------
    >>> s = pd.DataFrame({"subject": ["1", "1", "2"], "tone": ["I", "I", "V"], "race": ["W", "W", "B"]})
    >>> crosstab(s, "tone", "race")[["row", "column", "images", "subjects"]].values.tolist()
    [['I', 'W', 2, 1], ['V', 'B', 1, 1]]
    """
    for c in (row, column):
        if c not in samples.columns:
            raise DataError(f"cannot cross-tabulate: the samples have no column {c!r}; they have {list(samples.columns)}")
    subj = samples[subject] if subject in samples.columns else pd.Series(np.arange(len(samples)), index=samples.index)
    g = pd.DataFrame({"row": samples[row].astype(str), "column": samples[column].astype(str), "s": subj.astype(str)})
    agg = g.groupby(["row", "column"], sort=True).agg(images=("s", "size"), subjects=("s", "nunique")).reset_index()
    agg.insert(0, "column_column", column)
    agg.insert(0, "row_column", row)
    return agg[CLASSIFY_TABLES["crosstab"]]


def _composition(samples: pd.DataFrame, groupings: Sequence[Sequence[str]]) -> pd.DataFrame:
    rows = [("All", "All", len(samples), int(samples["subject"].nunique()))]
    for g in groupings:
        lab = samples[list(g)].astype(str).agg(" / ".join, axis=1) if len(g) > 1 else samples[g[0]].astype(str)
        for grp, idx in lab.groupby(lab).groups.items():
            rows.append(("+".join(g), str(grp), len(idx), int(samples.loc[idx, "subject"].nunique())))
    return pd.DataFrame(rows, columns=CLASSIFY_TABLES["composition"])


def audit_predictions(
    samples: pd.DataFrame,
    *,
    attributes: Sequence[str] = ("gender",),
    groupings: Sequence[Sequence[str]] = (),
    crosstab_columns: tuple[str, str] | None = None,
    title: str = "Classifier audit",
    provenance: Mapping[str, Any] | None = None,
    interval: str = "wilson",
    bootstrap: int = 1000,
    seed: int = 0,
) -> ClassifierResult:
    """Audit predictions already at hand: one row per image with truth and ``predicted_<attr>``.

    Parameters
    ----------
    samples : pandas.DataFrame
        ``sample_id``, ``subject`` (each image its own person when absent), ``status`` (``ok``
        when absent), for each attribute its true label column and ``predicted_<attribute>``
        (missing for an image not classified), and the group columns.
    attributes : sequence of str
        The audited label columns. ``"age"`` compares the predicted band: a numeric prediction
        (years) is put in the band (among the true labels' bands) it falls in.
    groupings : sequence of sequences of str
        Groupings for the error table; each single-column grouping also gets Gender Shades'
        intersectional table with the attribute, and each grouping is also crossed with it.
    crosstab_columns : (str, str), optional
        Two label columns to cross-tabulate (a measured skin-tone bin against self-reported race).

    Returns
    -------
    ClassifierResult

    Examples
    --------
    >>> s = pd.DataFrame({"sample_id": ["a", "b", "c"], "gender": ["Female", "Male", "Female"],
    ...                   "predicted_gender": ["Male", "Male", "Female"], "race": ["B", "W", "W"]})
    >>> r = audit_predictions(s, groupings=[["race"]], bootstrap=0)
    >>> r.errors.loc[r.errors["group"] == "B", "error_rate"].item()
    1.0
    """
    df = samples.copy().reset_index(drop=True)
    if "sample_id" not in df.columns:
        raise DataError(f"the predictions table needs a sample_id column; it has {list(df.columns)}")
    if "subject" not in df.columns:
        df["subject"] = df["sample_id"].astype(str)
    if "status" not in df.columns:
        df["status"] = "ok"
    groupings = [tuple(g) for g in groupings]
    for attr in attributes:
        for c in (attr, f"predicted_{attr}"):
            if c not in df.columns:
                raise DataError(f"the predictions table lacks the column {c!r} (attribute {attr!r}); it has {list(df.columns)}")
    for g in groupings:
        for c in g:
            if c not in df.columns:
                raise DataError(f"grouping {list(g)} names the column {c!r}, which the samples lack; they have {list(df.columns)}")
    warnings = []
    errors, confusion, inter = [], [], []
    for attr in attributes:
        pred_col = f"predicted_{attr}"
        if attr == "age":
            bands = sorted(df[attr].astype(str).unique())
            numeric = pd.to_numeric(df[pred_col], errors="coerce")
            if numeric.notna().any():
                df[pred_col] = [age_band_of(a, bands) if np.isfinite(a) else None for a in numeric.to_numpy(float)]
                df.loc[df[pred_col].isna() & numeric.notna(), pred_col] = "outside every band"
        pred = df[pred_col].where(df["status"].astype(str) == "ok")
        frame = df.assign(**{pred_col: pred})
        crossed = list(groupings) + [g + (attr,) for g in groupings if attr not in g]
        e = classification_errors(frame, truth=attr, predicted=pred_col, groupings=crossed, subject="subject",
                                  interval=interval, bootstrap=bootstrap, seed=seed)
        errors.append(e.assign(attribute=attr))
        confusion.append(confusion_long(frame, truth=attr, predicted=pred_col, groupings=groupings).assign(attribute=attr))
        for g in groupings:
            if len(g) == 1 and g[0] != attr:
                inter.append(intersectional_table(frame, truth=attr, predicted=pred_col, group=g[0]).assign(attribute=attr, group_column=g[0]))
        small = e[(e["grouping"] != "All") & (e["classified"] > 0) & (e["classified"] < 30)]
        if len(small):
            warnings.append(f"{attr}: {len(small)} group(s) have fewer than 30 classified images "
                            f"(e.g. {small['grouping'].iloc[0]} = {small['group'].iloc[0]!r}, {int(small['classified'].iloc[0])}); read their rates with their intervals")
    if "n_faces" in df.columns:
        whole = int(((df["status"].astype(str) == "ok") & (pd.to_numeric(df["n_faces"], errors="coerce") == 0)).sum())
        if whole:
            warnings.append(f"{whole} of {len(df)} image(s) had no face the detector found and were classified as whole-image "
                            "crops (classifier option undetected = \"whole_image\")")
    failed = int((df["status"].astype(str) != "ok").sum())
    if failed:
        warnings.append(f"{failed} of {len(df)} image(s) were not classified (no face found or unreadable); "
                        "they count as failures to acquire in the 'failed' column, not as errors")
    ct = crosstab(df, *crosstab_columns) if crosstab_columns else pd.DataFrame(columns=CLASSIFY_TABLES["crosstab"])
    keep = [c for c in dict.fromkeys(["sample_id", "subject", "status", *attributes, *(f"predicted_{a}" for a in attributes),
                                      *[c for g in groupings for c in g], *(crosstab_columns or ()), "n_faces"]) if c in df.columns]
    return ClassifierResult(
        title=title, provenance=dict(provenance or {}), attributes=tuple(attributes),
        groupings=tuple("+".join(g) for g in groupings),
        errors=pd.concat(errors, ignore_index=True)[CLASSIFY_TABLES["errors"]],
        confusion=pd.concat(confusion, ignore_index=True)[CLASSIFY_TABLES["confusion"]],
        intersectional=(pd.concat(inter, ignore_index=True) if inter else pd.DataFrame(columns=CLASSIFY_TABLES["intersectional"]))[CLASSIFY_TABLES["intersectional"]],
        composition=_composition(df, groupings), crosstab=ct, samples=df[keep].copy(), warnings=tuple(warnings),
    )


# ------------------------------------------------------------------------------ predictions
def _cache_file(cache_root: Path, info, tag: str = "") -> Path:
    key = "-".join(sorted(v[:12] for v in info.weights_sha256.values()))
    return cache_root / "predictions" / f"{info.name}-{info.version}-{key}{'-' + tag if tag else ''}.csv"


def predict_images(samples: pd.DataFrame, predictor, *, cache_root: Path | None = None, progress: bool = True) -> tuple[pd.DataFrame, int, int]:
    """Run an attribute predictor over every image (``path`` and ``sha256`` columns).

    Predictions are cached by (image sha256, model weights) in ``cache_root/predictions`` so a
    rerun classifies nothing twice. Returns the samples with ``status``, ``predicted_gender``,
    ``predicted_gender_confidence``, ``predicted_age`` and ``n_faces`` added, the number of
    images classified now and the number taken from the cache.
    """
    from ..images import read_rgb

    predictor.load()
    info = predictor.info()
    cols = ["sha256", "status", "predicted_gender", "predicted_gender_confidence", "predicted_age", "n_faces"]
    cached: dict[str, tuple] = {}
    cache = _cache_file(cache_root, info, getattr(predictor, "cache_tag", "")) if cache_root else None
    if cache and cache.is_file():
        c = pd.read_csv(cache, dtype={"sha256": str, "status": str, "predicted_gender": str}, keep_default_na=False, na_values=[""])
        cached = {r[0]: tuple(r[1:]) for r in c[cols].itertuples(index=False)}
    rows, new = [], 0
    items = list(zip(samples["sha256"], samples["path"]))
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"classifying ({info.name})", unit="img", file=sys.stderr)
    for sha, path in items:
        if sha in cached:
            rows.append((sha, *cached[sha]))
            continue
        try:
            p = predictor.predict(read_rgb(path))
            rec = (p.status, p.gender, p.gender_confidence, p.age, p.n_faces)
        except UnreadableImageError:
            rec = ("unreadable", None, np.nan, np.nan, 0)
        cached[sha] = rec
        rows.append((sha, *rec))
        new += 1
    if cache and new:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        pd.DataFrame([(k, *v) for k, v in cached.items()], columns=cols).to_csv(tmp, index=False)
        tmp.replace(cache)
    pred = pd.DataFrame(rows, columns=cols)
    out = samples.reset_index(drop=True).copy()
    for c in cols[1:]:
        out[c] = pred[c].to_numpy()
    return out, new, len(rows) - new


def _read_prediction_file(config: ClassifyConfig, samples: pd.DataFrame | None) -> pd.DataFrame:
    from ..verification.inputs import read_table

    pred = read_table(config.predictions)
    if "sample_id" not in pred.columns:
        raise DataError(f"{config.predictions}: a predictions file needs a sample_id column; it has {list(pred.columns)}")
    pred["sample_id"] = pred["sample_id"].astype(str)
    dup = pred["sample_id"].duplicated()
    if dup.any():
        raise DataError(f"{config.predictions}: sample_id {pred.loc[dup, 'sample_id'].iloc[0]!r} appears twice (row {int(dup.idxmax()) + 2}); give one prediction per image")
    renamed = {}
    for attr in config.attributes:
        col = config.prediction_columns.get(attr, attr if attr in pred.columns else f"predicted_{attr}")
        if col not in pred.columns:
            raise DataError(f"{config.predictions}: no column {col!r} for attribute {attr!r}; it has {list(pred.columns)}. "
                            f"Name it with predictions.columns = {{ {attr} = \"<column>\" }}")
        renamed[col] = f"predicted_{attr}"
    keep = ["sample_id", *renamed] + (["status"] if "status" in pred.columns else [])
    pred = pred[keep].rename(columns=renamed)
    for c in renamed.values():
        if config.prediction_values:
            pred[c] = pred[c].map(lambda v: config.prediction_values.get(str(v), v) if pd.notna(v) else v)
    if samples is None:
        from ..verification.inputs import read_table as _rt

        samples = _rt(config.samples)
        if "sample_id" not in samples.columns:
            raise DataError(f"{config.samples}: a samples file needs a sample_id column; it has {list(samples.columns)}")
        samples["sample_id"] = samples["sample_id"].astype(str)
    base = samples.drop(columns=[c for c in ("status",) if c in samples.columns and "status" in pred.columns])
    merged = base.merge(pred, on="sample_id", how="left", indicator=True)
    extra = set(pred["sample_id"]) - set(base["sample_id"])
    if extra:
        raise DataError(f"{config.predictions}: {len(extra)} prediction(s) name images the dataset does not have, e.g. {sorted(extra)[0]!r}")
    merged["status"] = merged["status"].fillna("ok") if "status" in merged.columns else "ok"
    merged.loc[merged["_merge"] == "left_only", "status"] = "not_in_predictions"
    return merged.drop(columns="_merge")


def _machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "numpy": np.__version__, "pandas": pd.__version__}


def run_classifier_audit(
    config: ClassifyConfig,
    *,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    write: bool = True,
    log: Callable[[str], None] = _noop,
) -> ClassifierRun:
    """Run the classifier audit a config describes and (by default) write its outputs.

    Outputs in ``output_dir`` (default: the config's ``output.dir``): ``results.json``,
    ``tables/*.csv`` and a self-contained ``index.html``.
    """
    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    dataset: dict[str, Any] = {}
    samples = None
    if config.dataset:
        from ..datasets import load_dataset, load_manifest

        manifest = load_manifest(config.manifest or config.dataset)
        log(f"dataset {manifest.name}: verifying files against {manifest.path.name}")
        table = load_dataset(manifest, data_dir=data_dir or config.data_dir)
        if config.subjects:
            table = table.subset_subjects(config.subjects, seed=config.seed)
        samples, dataset = table.data.copy(), dict(table.dataset)
        log(f"dataset {manifest.name}: {len(samples)} images of {samples['subject'].nunique()} subjects")
    if config.labels is not None:
        if samples is None:
            raise ConfigError(f"{config.path}: field 'dataset.labels' needs a [dataset]")
        from ..labelfile import join_label_file

        samples, added = join_label_file(samples, config.labels)
        dataset["extra_labels"] = {"file": str(config.labels), "columns": added}
        log(f"labels {config.labels.name}: added {added}")
    predicted = from_cache = 0
    if config.classifier:
        from ..datasets import cache_dir
        from .predictors import create_predictor

        predictor = create_predictor(config.classifier, **dict(config.classifier_options))
        samples, predicted, from_cache = predict_images(samples, predictor, cache_root=config.cache_dir or cache_dir(), progress=config.progress)
        source = {"kind": "classifier", **predictor.info().to_dict(), "options": dict(config.classifier_options)}
        log(f"classified {predicted} image(s), {from_cache} from the cache")
    else:
        samples = _read_prediction_file(config, samples)
        from ..images import sha256_file

        source = {"kind": "predictions file", "name": config.raw.get("predictions", {}).get("name", config.predictions.name),
                  "path": str(config.predictions), "sha256": sha256_file(config.predictions)}
        if not dataset:
            dataset = {"name": config.samples.stem, "title": f"samples file {config.samples.name}", "licence": "as supplied",
                       "sha256": sha256_file(config.samples)}
    for attr in config.attributes:
        if attr not in samples.columns:
            raise ConfigError(f"{config.path}: field 'classify.attributes' names {attr!r}, which is not a label column; "
                              f"the samples have {[c for c in samples.columns if c not in ('path', 'sha256')]}")
        if attr != "gender" and attr != "age" and f"predicted_{attr}" not in samples.columns:
            raise ConfigError(f"{config.path}: field 'classify.attributes': no prediction for {attr!r}")
    provenance = {
        "tool": "face-audit", "tool_version": __version__, "kind": "attribute classifier audit",
        "classifier": source, "dataset": dataset,
        "config": {"path": str(config.path) if config.path else None, "values": dict(config.raw)},
        "interval": config.interval, "bootstrap_replicates": config.bootstrap, "seed": config.seed,
        "machine": _machine(), "created": started.isoformat(timespec="seconds"),
    }
    samples = samples.drop(columns=[c for c in ("path",) if c in samples.columns])
    result = audit_predictions(samples, attributes=config.attributes, groupings=config.groupings, crosstab_columns=config.crosstab,
                               title=config.title, provenance=provenance, interval=config.interval,
                               bootstrap=config.bootstrap, seed=config.seed)
    files: list[Path] = []
    out = Path(output_dir) if output_dir else config.output_dir
    if write:
        from ..report.classify import write_classify_report

        out.mkdir(parents=True, exist_ok=True)
        result.to_json(out / "results.json")
        files.append(out / "results.json")
        files += result.write_tables(out / "tables")
        files.append(write_classify_report(result, out))
    return ClassifierRun(result, out if write else None, tuple(files), time.perf_counter() - t0, predicted, from_cache)


# ------------------------------------------------------------------------------------- CLI
def add_classify_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", help="classifier-audit config (TOML), e.g. examples/fairface-gender-classifier.toml")
    p.add_argument("--data-dir", help="folder holding the dataset")
    p.add_argument("--output", help="output folder (default: the config's output.dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def classify_command(args: argparse.Namespace) -> int:
    import dataclasses

    config = load_classify_config(args.config)
    if args.no_progress:
        config = dataclasses.replace(config, progress=False)
    run = run_classifier_audit(config, data_dir=args.data_dir, output_dir=args.output,
                               log=lambda m: print(m, file=sys.stderr, flush=True))
    res = run.result
    print(res.title)
    overall = res.errors[(res.errors["grouping"] == "All")]
    for _, r in overall.iterrows():
        print(f"  {r['attribute']}: error rate {r['error_rate']:.2%} ({int(r['errors'])} of {int(r['classified'])}; "
              f"{int(r['failed'])} not classified)")
    for _, r in res.errors[(res.errors["grouping"] != "All")].sort_values("error_rate", ascending=False).groupby("attribute").head(1).iterrows():
        print(f"  highest {r['attribute']} error: {r['grouping']} = {r['group']}: {r['error_rate']:.2%} "
              f"[{r['ci_low']:.2%}, {r['ci_high']:.2%}] ({int(r['errors'])} of {int(r['classified'])})")
    for w in res.warnings:
        print(f"  note: {w}")
    print(f"  finished in {run.seconds:.1f} s")
    if run.output_dir is not None:
        print(f"report: {run.output_dir / 'index.html'}")
        print(f"results: {run.output_dir / 'results.json'}")
    return 0
