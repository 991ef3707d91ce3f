"""The ``face-audit`` command: parses arguments, calls the library, prints.

Exit codes: 0 success; 2 bad input (config, manifest, data, missing weights or extras), with a
message that names the file and field; 130 interrupted (what was finished is kept).

Start-up stays fast: this module imports only the standard library and :mod:`audit.errors`; each
command imports what it needs when it runs, and the gate, ``identify`` and ``compare`` commands
build their own arguments only when they are the command given (see docs/benchmarks.md).

Output: results and the end-of-run summary go to stdout; progress messages to stderr.
``--quiet`` keeps only the summary (no progress bars, no messages); ``--verbose`` adds timings and
a traceback on errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, FaceAuditError

__all__ = ["main", "build_parser"]

#: Verbosity: 0 quiet, 1 normal, 2 verbose (set by main).
_VERBOSITY = 1


def _err(msg: str) -> None:
    print(f"face-audit: error: {msg}", file=sys.stderr)


def _log(msg: str) -> None:
    if _VERBOSITY >= 1:
        print(msg, file=sys.stderr, flush=True)


def _fmt_rate(v: float) -> str:
    if v != v:  # NaN
        return "n/a"
    return "0" if v == 0 else f"{v:.2e}" if v < 1e-2 else f"{v:.3f}"


def _threshold_lines(res) -> list[str]:
    """One line per threshold: its value, overall FMR and FNMR with their counts."""
    unit = (res.provenance.get("backend") or {}).get("metric", "")
    lines = []
    for t in res.thresholds:
        fnmr_row = res.rates[(res.rates["grouping"] == "all") & (res.rates["threshold_name"] == t.name)
                             & (res.rates["metric"].astype(str).str.lower() == "fnmr")]
        mated = int(fnmr_row["trials"].iloc[0]) if len(fnmr_row) else 0
        misses = int(fnmr_row["errors"].iloc[0]) if len(fnmr_row) else 0
        fmr = f"FMR {_fmt_rate(t.achieved_fmr)} ({t.false_matches:,}/{t.impostors:,})" if t.impostors else "no impostor pairs"
        fnmr = f"FNMR {_fmt_rate(t.achieved_fnmr)} ({misses:,}/{mated:,})" if mated else "no mated pairs"
        flag = " [too few impostor comparisons for this target]" if t.insufficient else ""
        lines.append(f"  threshold {t.name}: value {t.native_value:.4g}{f' ({unit})' if unit else ''}, overall {fmr}, {fnmr}{flag}")
    return lines


def _headline(res) -> str | None:
    """The report's one-sentence verdict (each group against the reference group; see audit/verdict.py)."""
    from .verdict import verdict

    try:
        return verdict(res).text
    except (KeyError, ValueError, TypeError):  # a result without the tables a verdict reads: no headline
        return None


def _safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "data"


def _config_for_data(args: argparse.Namespace):
    """An audit config for ``run --data FOLDER`` (no TOML file): a manifest built on the fly from
    --labels/--pattern in a temporary folder, or the folder's own (``datasets init``)."""
    import tempfile

    from .verification.config import config_from_dict

    folder = Path(args.data).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"--data {folder}: not a folder")
    name = args.name or _safe_name(folder.name)
    if args.labels or args.pattern:
        from .datasets.init import init_dataset

        # the manifest goes to a temporary folder (removed after the run): the data folder is left as it is
        args.tmp_manifest_dir = tempfile.mkdtemp(prefix="face-audit-data-")
        labels = Path(args.labels).expanduser().resolve() if args.labels else None
        made = init_dataset(folder, labels=labels, pattern=args.pattern, name=name,
                            groups=args.groups.split(",") if args.groups else None, output_dir=args.tmp_manifest_dir)
        for w in made.warnings:
            _log(f"note: {w}")
        manifest = made.manifest
    else:
        found = sorted(folder.glob("*.yaml"))
        if len(found) != 1:
            raise ConfigError(f"--data {folder}: give --labels or --pattern (or run `face-audit datasets init {folder}` "
                              f"first); found {len(found)} manifest(s) there")
        manifest = found[0]
    raw = {
        "title": args.title or f"{name}: {args.backend}",
        "dataset": {"manifest": str(manifest), "data_dir": str(folder)},
        "backend": {"name": args.backend},
        "output": {"dir": str(Path(args.output or Path("reports") / f"{name}-{args.backend}").resolve())},
    }
    if args.target_fmr:
        raw["thresholds"] = {"target_fmr": [float(x) for x in args.target_fmr.split(",")]}
    return config_from_dict(raw, base_dir=Path.cwd())


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    finally:
        if getattr(args, "tmp_manifest_dir", None):
            import shutil

            shutil.rmtree(args.tmp_manifest_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from .verification.config import load_config
    from .verification.runner import run_audit

    if args.config and args.data:
        raise ConfigError("give a config file or --data FOLDER, not both")
    if not args.config and not args.data:
        raise ConfigError("give a config file (e.g. examples/london-dlib.toml) or --data FOLDER --labels labels.csv --backend dlib")
    if args.data:
        config = _config_for_data(args)
    else:
        for opt in ("labels", "pattern", "name", "groups", "target_fmr", "title"):
            if getattr(args, opt):
                raise ConfigError(f"--{opt.replace('_', '-')} goes with --data; a config file says it in its own fields")
        config = load_config(args.config)
    if args.backend_given and args.config:
        config = dataclasses.replace(config, backend=dataclasses.replace(config.backend, name=args.backend))
    if args.subjects is not None:
        if config.dataset is None:
            raise ConfigError(f"{args.config}: --subjects needs a [dataset]; it cannot subset a scores or embeddings file")
        config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, subjects=args.subjects))
    if args.balance:
        if config.dataset is None or config.dataset.subjects is None:
            raise ConfigError("--balance goes with --subjects N (or dataset.subjects): it says how N people are spread over groups")
        cols = tuple(c.strip() for c in args.balance.split(",") if c.strip())
        config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, balance=cols))
    if args.no_progress or _VERBOSITY == 0:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, progress=False))
    if args.cache_dir:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, cache_dir=Path(args.cache_dir).resolve()))
    if args.engine or args.address:  # --engine ray [--address ADDR] replaces [engine]'s kind and address
        from .engine.select import engine_override

        config = dataclasses.replace(config, engine=engine_override(config.engine, args.engine, args.address))
    run = run_audit(config, data_dir=args.data_dir, workers=args.workers, output_dir=args.output, log=_log)
    res = run.result
    proto = res.provenance.get("protocol", {})
    print(res.title)
    if config.input is not None:
        print(f"  input: {config.input.kind} file {config.input.path} ({proto.get('mated_comparisons', 0):,} mated, "
              f"{proto.get('impostor_comparisons', 0):,} impostor comparisons)")
    else:
        if run.embed.computed == 0:
            print(f"  embeddings: all {run.embed.cached} from cache (no inference run)")
        else:
            print(f"  embeddings: {run.embed.computed} computed in {run.embed.seconds:.1f} s, {run.embed.cached} from cache")
        print(f"  comparisons: {proto.get('mated_comparisons', 0):,} mated, {proto.get('impostor_comparisons', 0):,} impostor")
    for line in _threshold_lines(res):
        print(line)
    headline = _headline(res)
    if headline:
        print(f"  finding: {headline}")
    for w in res.warnings:
        print(f"  note: {w}")
    if _VERBOSITY >= 2:
        timing = res.provenance.get("timing", {})
        print("  timing: " + ", ".join(f"{k} {v}" for k, v in timing.items()))
    print(f"  finished in {run.seconds:.1f} s")
    if run.output_dir is not None:
        print(f"report: {run.output_dir / 'index.html'}")
        print(f"results: {run.output_dir / 'results.json'}")
    return 0


def _cmd_datasets_init(args: argparse.Namespace) -> int:
    from .datasets.init import init_dataset

    made = init_dataset(args.folder, labels=args.labels, pattern=args.pattern, name=args.name,
                        groups=args.groups.split(",") if args.groups else None, title=args.title,
                        licence=args.licence, overwrite=args.overwrite)
    print(f"manifest: {made.manifest}")
    print(f"checksums: {made.checksums}")
    print(f"  {made.images} images of {made.subjects} subjects (subject from {made.subject_from}); "
          f"groups: {', '.join(made.group_columns)}")
    for w in made.warnings:
        print(f"  note: {w}")
    print(f"audit it: face-audit run --data {args.folder} --backend dlib")
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
    if _VERBOSITY == 0:
        return None
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
    if not m.base_url and not args.base_url:
        raise ConfigError(f"{m.path}: a local dataset (no 'source' in its manifest) has nothing to fetch")
    dest = Path(args.dest) if args.dest else cache_dir() / "datasets" / m.name
    download_dataset(m, dest, base_url=args.base_url, progress=_progress(f"fetching {m.name}"))
    print(f"{m.name}: {len(m.checksums)} files verified in {dest}")
    return 0


def _cmd_backends_list(args: argparse.Namespace) -> int:
    from .backends.registry import available_backends, service_backends

    for name, target in sorted(available_backends().items()):
        print(f"{name:14s} {target}")
    for name, (target, _extra, what) in sorted(service_backends().items()):
        print(f"{name:14s} {target}  ({what})")
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
        from .verification.result import AuditResult

        if not isinstance(res, AuditResult):
            raise ConfigError("--include-face-images applies to 1:1 audit results only")
        print(f"report: {write_report(res, out, include_face_images=True)}")
        return 0
    print(f"report: {write_any_report(res, out)}")
    return 0


def _add_run(sub) -> None:
    r = sub.add_parser("run", help="run a 1:1 audit: from a TOML config, or straight from a folder of images (--data)",
                       description="Run a 1:1 verification audit. Either give a TOML config, or --data FOLDER with "
                                   "--labels labels.csv or --pattern REGEX (see docs/datasets.md).")
    r.add_argument("config", nargs="?", help="audit config (TOML), e.g. examples/london-dlib.toml")
    d = r.add_argument_group("without a config file")
    d.add_argument("--data", metavar="FOLDER", help="a folder of face images (see `face-audit datasets init`)")
    d.add_argument("--labels", metavar="CSV", help="labels by image (column file) or by person (column subject)")
    d.add_argument("--pattern", metavar="REGEX", help="labels and subject from file names: named groups, (?P<subject>...)")
    d.add_argument("--groups", metavar="COL,COL", help="the label columns to audit (default: all)")
    d.add_argument("--name", help="dataset name (default: the folder's name)")
    d.add_argument("--title", help="the report's title")
    d.add_argument("--target-fmr", metavar="F,F", help="thresholds at these overall FMRs (default 1e-2,1e-3)")
    r.add_argument("--backend", help="recognition backend (with --data, default dlib; with a config, replaces its [backend] name)")
    r.add_argument("--data-dir", help="folder holding the dataset (searched before $FACE_AUDIT_DATA and $FACE_AUDIT_MIRROR)")
    r.add_argument("--workers", type=int, help="processes for embedding (default: the config's, else all cores)")
    r.add_argument("--engine", choices=["local", "ray"], help="where the work runs (default: the config's [engine], else local)")
    r.add_argument("--address", help="a Ray cluster's address (with --engine ray; default: start a local Ray instance)")
    r.add_argument("--output", help="output folder (default: the config's output.dir)")
    r.add_argument("--subjects", type=int, help="audit a seeded random subset of this many subjects")
    r.add_argument("--balance", metavar="COL,COL", help="with --subjects: spread the people evenly over these columns' cells (e.g. ethnicity,gender)")
    r.add_argument("--cache-dir", help="cache folder (default: $FACE_AUDIT_CACHE or ~/.cache/face-audit)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_run)


def _add_datasets(sub) -> None:
    d = sub.add_parser("datasets", help="describe, list, verify and fetch datasets").add_subparsers(dest="action", required=True)
    i = d.add_parser("init", help="write a manifest and checksum file for a local folder of face images",
                     description="Describe a local folder of face images: writes FOLDER/NAME.yaml and FOLDER/NAME.sha256 "
                                 "(no download source needed). See docs/datasets.md.")
    i.add_argument("folder")
    i.add_argument("--labels", metavar="CSV", help="labels by image (a column file/path/image) or by person (a column subject)")
    i.add_argument("--pattern", metavar="REGEX", help="subject and labels from each file name: named groups, e.g. "
                   r"'(?P<subject>\d+)_(?P<gender>[mf])\.jpg'")
    i.add_argument("--name", help="dataset name and file stem (default: the folder's name)")
    i.add_argument("--groups", metavar="COL,COL", help="the label columns to audit (default: all with at most 50 values)")
    i.add_argument("--title")
    i.add_argument("--licence", default="private: not for redistribution")
    i.add_argument("--overwrite", action="store_true", help="replace an existing manifest and checksum file")
    i.set_defaults(func=_cmd_datasets_init)
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


def _add_backends(sub) -> None:
    b = sub.add_parser("backends", help="list recognition backends").add_subparsers(dest="action", required=True)
    b.add_parser("list", help="list registered backends").set_defaults(func=_cmd_backends_list)
    dd = b.add_parser("doctor", help="which backends and models are ready here, where their weights are expected and come from (downloads and loads nothing)")
    dd.add_argument("--backend", help="only this backend")
    dd.add_argument("--json", action="store_true", help="machine-readable output")
    dd.set_defaults(func=_cmd_backends_doctor)


def _add_gate(sub, full: bool) -> None:
    g = sub.add_parser("gate", help="check a results.json against a fairness policy (exit 0 pass, 1 fail, 2 bad input)")
    if full:
        from .gate import add_gate_arguments, gate_command

        add_gate_arguments(g).set_defaults(func=gate_command)


def _add_identify(sub, full: bool) -> None:
    ident = sub.add_parser("identify", help="run a 1:N identification (search) audit: FPIR and FNIR by group")
    if full:
        from .identification.runner import add_identification_arguments, identification_command

        add_identification_arguments(ident).set_defaults(func=identification_command)


def _add_compare(sub, full: bool) -> None:
    c = sub.add_parser("compare", help="put audits of one dataset by several backends side by side in one HTML report")
    if full:
        from .report.compare import add_compare_arguments, compare_command

        add_compare_arguments(c).set_defaults(func=compare_command)


def _add_issue14(sub) -> None:
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


def _add_report(sub) -> None:
    rep = sub.add_parser("report", help="re-render index.html from a results.json")
    rep.add_argument("results")
    rep.add_argument("--output")
    rep.add_argument("--include-face-images", action="store_true",
                     help="add thumbnails of the images that failed to acquire (faces are biometric data: off by default)")
    rep.set_defaults(func=_cmd_report)


#: Commands whose arguments live in heavier modules: built only when given (or when ``only`` is None).
HEAVY_COMMANDS = ("gate", "identify", "compare")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command's parser. With ``only`` (the command being run), the heavy commands other than
    that one get their help line but not their arguments, so ``face-audit --help`` and the light
    commands import no gate, 1:N runner or matplotlib."""
    p = argparse.ArgumentParser(prog="face-audit", description="Audit face recognition systems for demographic bias.")
    p.add_argument("--version", action="version", version=f"face-audit {__version__}")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only results and errors (no progress bars or messages)")
    loud.add_argument("-v", "--verbose", action="store_true", help="also print timings, and a traceback on errors")
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_datasets(sub)
    _add_backends(sub)
    _add_gate(sub, only in (None, "gate"))
    _add_identify(sub, only in (None, "identify"))
    _add_compare(sub, only in (None, "compare"))
    _add_report(sub)
    _add_issue14(sub)
    return p


def _command_in(argv: list[str]) -> str | None:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def main(argv: list[str] | None = None) -> int:
    global _VERBOSITY
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only=_command_in(argv) or "").parse_args(argv)
    _VERBOSITY = 0 if args.quiet else 2 if args.verbose else 1
    if getattr(args, "command", None) == "run":
        args.backend_given = args.backend is not None
        args.backend = args.backend or "dlib"
    try:
        return int(args.func(args) or 0)
    except FaceAuditError as exc:
        if _VERBOSITY >= 2:
            import traceback

            traceback.print_exc()
        _err(str(exc))
        return 2
    except KeyboardInterrupt:
        _err("interrupted; finished embeddings are kept in the cache and a rerun resumes from there")
        return 130
    finally:
        _VERBOSITY = 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
