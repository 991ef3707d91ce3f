"""The ``face-audit`` command: parses arguments, calls the library, prints.

Exit codes: 0 success; 2 bad input (config, manifest, data, missing weights or extras), with a
message that names the file and field; 130 interrupted (what was finished is kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, FaceAuditError

__all__ = ["main"]


def _err(msg: str) -> None:
    print(f"face-audit: error: {msg}", file=sys.stderr)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import run_audit

    config = load_config(args.config)
    if args.subjects is not None:
        if config.dataset is None:
            raise ConfigError(f"{args.config}: --subjects needs a [dataset]; it cannot subset a scores or embeddings file")
        config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, subjects=args.subjects))
    if args.no_progress:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, progress=False))
    if args.cache_dir:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, cache_dir=Path(args.cache_dir).resolve()))
    run = run_audit(config, data_dir=args.data_dir, workers=args.workers, output_dir=args.output, log=_log)
    res = run.result
    first = res.thresholds[0] if res.thresholds else None
    print(f"{res.title}")
    if config.input is not None:
        print(f"  input: {config.input.kind} file {config.input.path} ({res.provenance['protocol']['mated_comparisons']} mated, "
              f"{res.provenance['protocol']['impostor_comparisons']} impostor comparisons)")
    elif run.embed.computed == 0:
        print(f"  embeddings: all {run.embed.cached} from cache (no inference run)")
    else:
        print(f"  embeddings: {run.embed.computed} computed in {run.embed.seconds:.1f} s, {run.embed.cached} from cache")
    if first is not None:
        print(f"  threshold {first.name}: value {first.native_value:.4g} ({res.provenance['backend']['metric']}), "
              f"overall FMR {first.achieved_fmr:.2e}, FNMR {first.achieved_fnmr:.3f}")
    for w in res.warnings:
        print(f"  note: {w}")
    print(f"  finished in {run.seconds:.1f} s")
    if run.output_dir is not None:
        print(f"report: {run.output_dir / 'index.html'}")
        print(f"results: {run.output_dir / 'results.json'}")
    return 0


def _cmd_datasets_list(args: argparse.Namespace) -> int:
    from .datasets import list_manifests, load_manifest

    found = list_manifests()
    if not found:
        print("no dataset manifests found; set $FACE_AUDIT_MANIFESTS")
        return 0
    for name, path in found.items():
        try:
            m = load_manifest(path)
            print(f"{name:12s} {m.title} ({len(m.checksums)} files, {m.licence})  {path}")
        except FaceAuditError as exc:
            print(f"{name:12s} INVALID: {exc}")
    return 0


def _progress(desc: str):
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc=desc, unit="file", file=sys.stderr)


def _cmd_datasets_verify(args: argparse.Namespace) -> int:
    from .datasets import load_manifest, locate_dataset

    m = load_manifest(args.name)
    loc = locate_dataset(m, data_dir=args.data_dir, download=False, progress=_progress(f"verifying {m.name}"))
    print(f"{m.name}: all {len(loc.sha256)} files match {m.path.name} (found via {loc.how} at {loc.root})")
    return 0


def _cmd_datasets_fetch(args: argparse.Namespace) -> int:
    from .datasets import cache_dir, download_dataset, load_manifest

    m = load_manifest(args.name)
    dest = Path(args.dest) if args.dest else cache_dir() / "datasets" / m.name
    download_dataset(m, dest, base_url=args.base_url, progress=_progress(f"fetching {m.name}"))
    print(f"{m.name}: {len(m.checksums)} files verified in {dest}")
    return 0


def _cmd_backends_list(args: argparse.Namespace) -> int:
    from .backends.registry import available_backends

    for name, target in sorted(available_backends().items()):
        print(f"{name:14s} {target}")
    return 0


def _cmd_backends_doctor(args: argparse.Namespace) -> int:
    from .backends.doctor import doctor_report, format_doctor

    df = doctor_report()
    if args.backend:
        df = df[df["backend"] == args.backend]
    print(df.to_json(orient="records", indent=2) if args.json else format_doctor(df))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .identification import read_result
    from .report import write_any_report

    res = read_result(args.results)
    out = Path(args.output) if args.output else Path(args.results).parent
    out.mkdir(parents=True, exist_ok=True)
    if args.include_face_images:
        from .report import write_report
        from .results import AuditResult

        if not isinstance(res, AuditResult):
            raise ConfigError("--include-face-images applies to 1:1 audit results only")
        print(f"report: {write_report(res, out, include_face_images=True)}")
        return 0
    print(f"report: {write_any_report(res, out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="face-audit", description="Audit face recognition systems for demographic bias.")
    p.add_argument("--version", action="version", version=f"face-audit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the audit a TOML config describes")
    r.add_argument("config", help="audit config (TOML), e.g. examples/london-dlib.toml")
    r.add_argument("--data-dir", help="folder holding the dataset (searched before $FACE_AUDIT_DATA and $FACE_AUDIT_MIRROR)")
    r.add_argument("--workers", type=int, help="processes for embedding (default: the config's, else all cores)")
    r.add_argument("--output", help="output folder (default: the config's output.dir)")
    r.add_argument("--subjects", type=int, help="audit a seeded random subset of this many subjects")
    r.add_argument("--cache-dir", help="cache folder (default: $FACE_AUDIT_CACHE or ~/.cache/face-audit)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_run)

    d = sub.add_parser("datasets", help="list, verify and fetch datasets").add_subparsers(dest="action", required=True)
    d.add_parser("list", help="list the known dataset manifests").set_defaults(func=_cmd_datasets_list)
    v = d.add_parser("verify", help="check a local copy of a dataset against its manifest's sha256 values")
    v.add_argument("name")
    v.add_argument("--data-dir")
    v.set_defaults(func=_cmd_datasets_verify)
    f = d.add_parser("fetch", help="download a dataset from its public source into the cache, verifying every file")
    f.add_argument("name")
    f.add_argument("--dest", help="target folder (default: the cache)")
    f.add_argument("--base-url", help="download from this mirror (laid out as <base-url>/<path>) instead")
    f.set_defaults(func=_cmd_datasets_fetch)

    b = sub.add_parser("backends", help="list recognition backends").add_subparsers(dest="action", required=True)
    b.add_parser("list", help="list registered backends").set_defaults(func=_cmd_backends_list)
    dd = b.add_parser("doctor", help="which backends and models are ready here, where their weights are expected and come from (downloads and loads nothing)")
    dd.add_argument("--backend", help="only this backend")
    dd.add_argument("--json", action="store_true", help="machine-readable output")
    dd.set_defaults(func=_cmd_backends_doctor)

    from .gate import add_gate_arguments, gate_command

    g = sub.add_parser("gate", help="check a results.json against a fairness policy (exit 0 pass, 1 fail, 2 bad input)")
    add_gate_arguments(g).set_defaults(func=gate_command)

    from .identification.runner import add_identification_arguments, identification_command
    from .report.compare import add_compare_arguments, compare_command

    ident = sub.add_parser("identify", help="run a 1:N identification (search) audit: FPIR and FNIR by group")
    add_identification_arguments(ident).set_defaults(func=identification_command)

    c = sub.add_parser("compare", help="put audits of one dataset by several backends side by side in one HTML report")
    add_compare_arguments(c).set_defaults(func=compare_command)

    # issue 14 (classifier audits, skin tone, mitigation): each handler imports its module lazily
    cls = sub.add_parser("classify", help="audit a gender/age classifier by group: error rates, confusion matrices, Gender Shades' table")
    cls.add_argument("config", help="classifier-audit config (TOML), e.g. examples/fairface-gender-classifier.toml")
    cls.add_argument("--data-dir", help="folder holding the dataset")
    cls.add_argument("--output", help="output folder (default: the config's output.dir)")
    cls.add_argument("--no-progress", action="store_true", help="no progress bar")
    cls.set_defaults(func=lambda a: __import__("audit.attributes.runner", fromlist=["_"]).classify_command(a))
    sk = sub.add_parser("skintone", help="measure skin tone (ITA) from the photos: a per-person label file and a report")
    sk.add_argument("config", help="skin-tone config (TOML), e.g. examples/london-skintone.toml")
    sk.add_argument("--data-dir", help="folder holding the dataset")
    sk.add_argument("--no-progress", action="store_true", help="no progress bar")
    sk.set_defaults(func=lambda a: __import__("audit.skintone.runner", fromlist=["_"]).skintone_command(a))
    mi = sub.add_parser("mitigate", help="mitigation what-ifs (per-group thresholds, FSN, FairCal) on held-out people: before/after by group")
    mi.add_argument("config", help="mitigation config (TOML with a [mitigation] table), e.g. examples/lfw-mitigation-dlib.toml")
    mi.add_argument("--data-dir", help="folder holding the dataset")
    mi.add_argument("--workers", type=int, help="processes for embedding images not in the cache")
    mi.add_argument("--output", help="output folder (default: the config's output.dir)")
    mi.add_argument("--no-progress", action="store_true", help="no progress bars")
    mi.set_defaults(func=lambda a: __import__("audit.mitigation.runner", fromlist=["_"]).mitigate_command(a))

    rep = sub.add_parser("report", help="re-render index.html from a results.json")
    rep.add_argument("results")
    rep.add_argument("--output")
    rep.add_argument("--include-face-images", action="store_true",
                     help="add thumbnails of the images that failed to acquire (faces are biometric data: off by default)")
    rep.set_defaults(func=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FaceAuditError as exc:
        _err(str(exc))
        return 2
    except KeyboardInterrupt:
        _err("interrupted; finished embeddings are kept in the cache and a rerun resumes from there")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
