"""Dataset manifests: where a dataset's bytes come from, and how to read its subjects and labels.

A manifest is a YAML file (see ``data_manifests/london.yaml``). Validation happens here, before
any image is read, and every error names the manifest file and the field.

Fields
------
schema : int
    Manifest schema version (1).
name, title, description, licence, licence_url, citation, homepage, label_source : str
source.base_url : str
    Public URL prefix the files are downloaded from.
checksums : str
    For a local dataset with no public source (written by ``face-audit datasets init``): the
    ``sha256sum`` file, in place of ``source``; the dataset root is then the manifest's folder.
source.remote_paths : mapping of str to str
    Local path prefix -> path under ``base_url`` (first match wins; unmatched paths are used as is).
source.checksums : str
    A file in ``sha256sum`` format, next to the manifest, listing every file by its path under the
    dataset root. Mirrors and downloads are checked against it.
images.glob : list of str
    Which files under the root are face images.
images.pattern : str
    A regular expression matched against each image's root-relative path (``/`` separators);
    its named groups become columns, and ``subject`` is required.
labels.file, labels.key, labels.keep : optional
    A CSV of labels, its column that equals ``subject``, and the original columns kept.
labels.per_image : bool, optional
    With ``true`` the label file has one row per image and ``key`` names the column with the
    image's root-relative path.
labels.lists : optional
    Labels given as lists of image file names (LFW's ``male_names.txt``):
    ``{column: NAME, files: {value: list file}, conflict: VALUE, missing: VALUE, by_subject: bool}``.
    An image named in several lists gets ``conflict``, in none ``missing``; with ``by_subject``
    every image of a subject takes the subject's most common known value.
source.derived : optional
    Files that are not published as such but made from a published file, for example a label
    file cut down to the rows of the images present:
    ``{path: {url: <published file>, keep_rows_where: <column>}}``: download the published CSV
    and keep its header and the lines whose ``keep_rows_where`` value names a listed file, bytes
    unchanged; the result is checked against the checksum like any other file.
groups : mapping
    Audit group column -> ``{column: <label-file column or pattern group>, values: {raw: label}}``.
    Every raw value must have a mapping; the raw column is kept too.
protocol : mapping
    ``kind`` (``all_pairs``) and the default ``groupings`` (lists of group columns).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .covariates import parse_covariates
from ..errors import ManifestError

__all__ = ["Manifest", "GroupSpec", "load_manifest", "manifest_dirs", "find_manifest", "list_manifests", "check_relative_path",
           "check_pattern_safe"]

_PROTOCOL_KINDS = ("all_pairs",)

#: The keys a manifest may have, by table ("" is the top level). A misspelt key is an error.
_ALLOWED: dict[str, set[str]] = {
    "": {"schema", "name", "title", "description", "licence", "licence_url", "citation", "homepage", "label_source",
         "source", "checksums", "images", "labels", "groups", "protocol", "covariates"},
    "source": {"base_url", "remote_paths", "checksums", "derived"},
    "source.derived.*": {"url", "keep_rows_where"},
    "images": {"glob", "pattern"},
    "labels": {"file", "key", "keep", "per_image", "lists"},
    "labels.lists": {"column", "files", "conflict", "missing", "by_subject"},
    "groups.*": {"column", "values"},
    "protocol": {"kind", "groupings"},
}

#: A dataset name: it names folders (the cache's datasets/NAME), so it is a plain name.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Manifests and checksum files larger than this are refused before parsing.
MAX_MANIFEST_BYTES = 4 << 20
MAX_CHECKSUMS_BYTES = 256 << 20
MAX_PATTERN_CHARS = 1000


def _unknown_keys(data: Mapping[str, Any], table: str, where: str, shown: str | None = None) -> None:
    unknown = sorted(str(k) for k in data if str(k) not in _ALLOWED[table])
    if unknown:
        prefix = (shown if shown is not None else table)
        full = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ManifestError(f"{where}: field '{full}' is not a manifest field (misspelt?); allowed here: {sorted(_ALLOWED[table])}")


def check_relative_path(rel: Any, where: str, field_name: str, *, allow_parent: bool = False) -> str:
    """Raise unless ``rel`` is a plain relative path with ``/`` separators that stays inside its
    root: not absolute, no ``..``, no backslash, drive letter, empty segment or control character.
    ``allow_parent`` admits leading ``..`` parts (a local dataset's own label file beside its
    image folder, as ``face-audit datasets init`` writes it)."""
    if not isinstance(rel, str) or not rel:
        raise ManifestError(f"{where}: field '{field_name}': expected a relative file path, found {rel!r}")
    parts = rel.split("/")
    if allow_parent:
        while parts and parts[0] == ".." and len(parts) > 1:
            parts = parts[1:]
    bad = (
        rel.startswith(("/", "~")) or "\\" in rel or re.match(r"^[A-Za-z]:", rel) is not None
        or any(part in ("", ".", "..") for part in parts) or any(ord(c) < 32 for c in rel)
    )
    if bad:
        raise ManifestError(
            f"{where}: field '{field_name}': {rel[:200]!r} is not a plain relative path inside the dataset root "
            "(absolute paths, '..', '.', empty parts, backslashes and control characters are refused)"
        )
    return rel


def check_pattern_safe(pattern: str, where: str, field_name: str) -> None:
    """Refuse a regular expression that can backtrack catastrophically: an unbounded repeat whose
    body itself repeats or branches (``(a+)+``, ``(a|a)*``, ``(.*)*``), or a very long pattern."""
    try:
        import re._parser as sre_parse  # Python >= 3.11: the parser behind ``re``
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse

    if len(pattern) > MAX_PATTERN_CHARS:
        raise ManifestError(f"{where}: field '{field_name}' is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS} are accepted")
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}
    unbounded = sre_parse.MAXREPEAT

    def items(sub):
        for op, av in sub:
            yield op, av
            if op in repeats:
                yield from items(av[2])
            elif op is sre_parse.SUBPATTERN:
                yield from items(av[-1])
            elif op is sre_parse.BRANCH:
                for b in av[1]:
                    yield from items(b)
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                yield from items(av[1])

    def risky(body) -> bool:
        for op, av in items(body):
            if op in repeats and av[1] > 1:
                return True
            if op is sre_parse.BRANCH:
                return True
        return False

    tree = sre_parse.parse(pattern)
    for op, av in items(tree):
        if op in repeats and (av[1] == unbounded or av[1] > 8) and risky(av[2]):
            raise ManifestError(
                f"{where}: field '{field_name}': {pattern[:200]!r} nests a repeat or an alternation inside an unbounded "
                "repeat (like (a+)+ or (a|b)*), which can take exponential time on some file names; rewrite it without "
                "nesting, e.g. [^/]+ for one path part"
            )


def _yaml_load(raw: bytes, where: str) -> Any:
    """``yaml.safe_load`` that refuses anchors and aliases (an alias "bomb" of a few hundred bytes
    can expand to gigabytes) and any tag beyond the safe ones."""
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # noqa: ANN001
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ManifestError(
                    f"{where}: uses the YAML alias *{event.anchor} (line {event.start_mark.line + 1}); anchors and aliases are "
                    "not accepted in manifests: write the values out"
                )
            return super().compose_node(parent, index)

    try:
        return yaml.load(raw, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ManifestError(f"{where}: not valid YAML ({exc})") from exc
    except RecursionError as exc:
        raise ManifestError(f"{where}: nested too deeply to be a manifest") from exc


@dataclass(frozen=True)
class GroupSpec:
    """How one audit group column is derived: ``column`` (raw) and ``values`` (raw -> label)."""

    name: str
    column: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class Manifest:
    """A validated dataset manifest. Build it with :func:`load_manifest`."""

    path: Path
    sha256: str
    name: str
    title: str
    licence: str
    citation: str
    label_source: str
    base_url: str
    remote_paths: Mapping[str, str]
    checksums: Mapping[str, str]
    image_globs: tuple[str, ...]
    image_pattern: re.Pattern
    labels_file: str | None
    labels_key: str | None
    labels_keep: tuple[str, ...]
    labels_per_image: bool
    label_lists: Mapping[str, Any] | None
    derived: Mapping[str, Mapping[str, str]]
    groups: tuple[GroupSpec, ...]
    protocol_kind: str
    groupings: tuple[tuple[str, ...], ...]
    description: str = ""
    homepage: str = ""
    licence_url: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    covariates: tuple = ()  # CovariateSpec, see audit.datasets.covariates

    def where(self, field_name: str) -> str:
        return f"{self.path}: field '{field_name}'"

    def remote_url(self, rel_path: str) -> str:
        """Public URL of a file given by its root-relative path (absolute ``remote_paths`` values
        are used as they are, for files published in another place)."""
        for local, remote in self.remote_paths.items():
            if rel_path == local or (local.endswith("/") and rel_path.startswith(local)):
                prefix = remote if "://" in remote else self.base_url + remote
                return prefix + rel_path[len(local):]
        return self.base_url + rel_path

    def describe(self) -> dict[str, Any]:
        """Provenance fields recorded in every result."""
        return {
            "name": self.name,
            "title": self.title,
            "licence": self.licence,
            "licence_url": self.licence_url,
            "citation": self.citation,
            "homepage": self.homepage,
            "label_source": self.label_source,
            "manifest": self.path.name,
            "manifest_sha256": self.sha256,
            "files": len(self.checksums),
            **({"covariates": {c.name: c.describe() for c in self.covariates}} if self.covariates else {}),
        }


def manifest_dirs() -> list[Path]:
    """Folders searched for ``NAME.yaml``: ``$FACE_AUDIT_MANIFESTS`` (``os.pathsep``-separated),
    then the repository's ``data_manifests/``."""
    import os

    dirs = [Path(p) for p in os.environ.get("FACE_AUDIT_MANIFESTS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "data_manifests")
    return dirs


def list_manifests() -> dict[str, Path]:
    """Every manifest found, by name (first folder wins)."""
    found: dict[str, Path] = {}
    for d in manifest_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                found.setdefault(p.stem, p)
    return found


def find_manifest(name_or_path: str | Path) -> Path:
    """Resolve a dataset name (``"london"``) or a path to a manifest file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ManifestError(f"manifest file {p} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
        return p
    if not _NAME.match(str(name_or_path)):
        raise ManifestError(
            f"{str(name_or_path)[:100]!r} is neither a dataset name (letters, digits, '.', '_', '-') nor a path to a .yaml manifest"
        )
    found = list_manifests()
    if str(name_or_path) not in found:
        raise ManifestError(
            f"no manifest named {str(name_or_path)!r}; known datasets: {sorted(found) or 'none'}. "
            "Give a path to a .yaml manifest or add its folder to $FACE_AUDIT_MANIFESTS."
        )
    return found[str(name_or_path)]


def _yaml_text(v: Any) -> str:
    """A YAML scalar as the text it stands for in a label file (``true`` -> ``"True"``, ``1`` -> ``"1"``)."""
    return str(v)


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or getattr(kind, "_name", None) or str(kind)


def _req(data: Mapping[str, Any], key: str, kind: type | tuple, where: str, prefix: str = "") -> Any:
    full = f"{prefix}{key}"
    if key not in data:
        raise ManifestError(f"{where}: field '{full}' is missing")
    val = data[key]
    if not isinstance(val, kind):
        names = _type_name(kind) if not isinstance(kind, tuple) else " or ".join(_type_name(k) for k in kind)
        raise ManifestError(f"{where}: field '{full}' must be a {names}, found {type(val).__name__} ({str(val)[:100]!r})")
    return val


def _read_checksums(path: Path, manifest_path: Path, *, local: bool = False) -> dict[str, str]:
    if not path.is_file():
        raise ManifestError(f"{manifest_path}: field 'source.checksums' names {path.name}, which does not exist next to the manifest")
    if path.stat().st_size > MAX_CHECKSUMS_BYTES:
        raise ManifestError(f"{path}: {path.stat().st_size:,} bytes is too large for a checksums file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start}); a checksums file lists '<sha256>  <path>' lines") from exc
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the checksums file ({exc.strerror or exc})") from exc
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
        if not m:
            # the line's text is not shown: a checksums path may point at a file that is not a checksums list
            raise ManifestError(f"{path}:{lineno}: expected '<sha256>  <path>' (sha256sum format); this line is not")
        rel = check_relative_path(m.group(2), f"{path}:{lineno}", "source.checksums", allow_parent=local)
        sha = m.group(1).lower()
        if rel in out and out[rel] != sha:
            raise ManifestError(
                f"{path}:{lineno}: {rel} is listed again with a different sha256 (first on line {first_line[rel]}); "
                "a file has one checksum: remove the wrong line"
            )
        first_line.setdefault(rel, lineno)
        out[rel] = sha
    if not out:
        raise ManifestError(f"{path}: lists no files")
    return out


def load_manifest(name_or_path: str | Path) -> Manifest:
    """Read and validate a manifest by dataset name or path.

    Raises
    ------
    ManifestError
        Naming the manifest file and the field at fault.
    """
    path = find_manifest(name_or_path)
    where = str(path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{where}: {path.stat().st_size:,} bytes is too large for a manifest")
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read the manifest ({exc.strerror or exc})") from exc
    data = _yaml_load(raw, where)
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where}: expected a mapping at the top level")
    _unknown_keys(data, "", where)
    if data.get("schema", 1) != 1:
        raise ManifestError(f"{where}: field 'schema' is {data.get('schema')!r}; this face-audit reads schema 1")
    name = _req(data, "name", str, where)
    if not _NAME.match(name) or ".." in name:
        raise ManifestError(
            f"{where}: field 'name' is {name[:100]!r}; a dataset name is a plain name (letters, digits, '.', '_', '-', "
            "at most 64 characters) because it names folders"
        )
    # A public dataset names its `source`; a local one (`face-audit datasets init`) has none and
    # lists its files in a top-level `checksums` file next to the manifest, in its data folder.
    if "source" in data or "checksums" not in data:
        source = _req(data, "source", Mapping, where)
        _unknown_keys(source, "source", where)
        base_url = _req(source, "base_url", str, where, "source.")
        if not base_url.endswith("/"):
            base_url += "/"
    else:
        source, base_url = {"checksums": _req(data, "checksums", str, where)}, ""
    remote_paths = source.get("remote_paths") or {}
    if not isinstance(remote_paths, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in remote_paths.items()):
        raise ManifestError(f"{where}: field 'source.remote_paths' must be a mapping of local prefix to remote path")
    checksums_name = check_relative_path(_req(source, "checksums", str, where, "source."), where, "source.checksums")
    checksums_path = path.parent / checksums_name
    if checksums_path.exists() and not checksums_path.resolve().is_relative_to(path.parent.resolve()):
        raise ManifestError(f"{where}: field 'source.checksums': {checksums_name} resolves outside the manifest's folder (a symlink)")
    checksums = _read_checksums(checksums_path, path, local=not base_url)

    images = _req(data, "images", Mapping, where)
    _unknown_keys(images, "images", where)
    globs = images.get("glob")
    if isinstance(globs, str):
        globs = [globs]
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
        raise ManifestError(f"{where}: field 'images.glob' must be a list of glob patterns")
    for g in globs:
        check_relative_path(g.replace("**", "x").replace("*", "x").replace("?", "x"), where, "images.glob")
    pattern_text = _req(images, "pattern", str, where, "images.")
    try:
        pattern = re.compile(pattern_text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ManifestError(f"{where}: field 'images.pattern' is not a valid regular expression ({exc})") from exc
    check_pattern_safe(pattern_text, where, "images.pattern")
    if "subject" not in pattern.groupindex:
        raise ManifestError(f"{where}: field 'images.pattern' needs a named group (?P<subject>...) that gives each image's subject")

    labels = data.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise ManifestError(f"{where}: field 'labels' must be a mapping")
    _unknown_keys(labels, "labels", where)
    labels_file = labels.get("file")
    labels_key = labels.get("key")
    if labels_file is not None and not isinstance(labels_file, str):
        raise ManifestError(f"{where}: field 'labels.file' must be a file path, found {labels_file!r}")
    if labels_key is not None and not isinstance(labels_key, str):
        raise ManifestError(f"{where}: field 'labels.key' must be a column name, found {labels_key!r}")
    if labels_file is not None and labels_key is None:
        raise ManifestError(f"{where}: field 'labels.key' is missing; name the column of {labels_file} that identifies the subject")
    if labels_file is not None and labels_file not in checksums:
        raise ManifestError(f"{where}: field 'labels.file' names {labels_file}, which the checksums file does not list")
    lists = labels.get("lists")
    if lists is not None:
        if not isinstance(lists, Mapping) or not isinstance(lists.get("column"), str) or not isinstance(lists.get("files"), Mapping):
            raise ManifestError(f"{where}: field 'labels.lists' must be {{column: NAME, files: {{value: list file}}}}")
        _unknown_keys(lists, "labels.lists", where)
        for value, f in lists["files"].items():
            if f not in checksums:
                raise ManifestError(f"{where}: field 'labels.lists.files.{value}' names {f}, which the checksums file does not list")
    derived = source.get("derived") or {}
    if not isinstance(derived, Mapping) or not all(
        isinstance(v, Mapping) and isinstance(v.get("url"), str) and isinstance(v.get("keep_rows_where"), str) for v in derived.values()
    ):
        raise ManifestError(f"{where}: field 'source.derived' must map a path to {{url: ..., keep_rows_where: column}}")
    for rel, spec in derived.items():
        _unknown_keys(spec, "source.derived.*", where, f"source.derived.{rel}")
        if rel not in checksums:
            raise ManifestError(f"{where}: field 'source.derived.{rel}' names a file the checksums file does not list")
    keep = labels.get("keep") or []
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise ManifestError(f"{where}: field 'labels.keep' must be a list of column names")

    groups_raw = _req(data, "groups", Mapping, where)
    if not groups_raw:
        raise ManifestError(f"{where}: field 'groups' is empty; define at least one audit group column")
    groups = []
    for gname, spec in groups_raw.items():
        if not isinstance(spec, Mapping):
            raise ManifestError(f"{where}: field 'groups.{gname}' must be a mapping with 'column' and 'values'")
        _unknown_keys(spec, "groups.*", where, f"groups.{gname}")
        col = _req(spec, "column", str, where, f"groups.{gname}.")
        values = _req(spec, "values", Mapping, where, f"groups.{gname}.")
        for k, v in values.items():
            scalar = (str, int, float, bool)
            if not isinstance(k, scalar) or not isinstance(v, scalar):
                raise ManifestError(
                    f"{where}: field 'groups.{gname}.values.{str(k)[:60]}': expected a raw value mapped to a label "
                    f"(text or a number), found {type(k).__name__} -> {type(v).__name__} ({str(v)[:60]!r})"
                )
        groups.append(GroupSpec(str(gname), col, {_yaml_text(k): _yaml_text(v) for k, v in values.items()}))

    protocol = data.get("protocol") or {}
    if not isinstance(protocol, Mapping):
        raise ManifestError(f"{where}: field 'protocol' must be a mapping")
    _unknown_keys(protocol, "protocol", where)
    kind = protocol.get("kind", "all_pairs")
    if kind not in _PROTOCOL_KINDS:
        raise ManifestError(f"{where}: field 'protocol.kind' is {kind!r}; expected one of {_PROTOCOL_KINDS}")
    group_names = [g.name for g in groups]
    groupings_raw = protocol.get("groupings") or [[g] for g in group_names]
    if not isinstance(groupings_raw, list):
        raise ManifestError(f"{where}: field 'protocol.groupings' must be a list of group lists, found {groupings_raw!r}")
    groupings = []
    for gg in groupings_raw:
        if not isinstance(gg, (str, list)) or (isinstance(gg, list) and not all(isinstance(x, str) for x in gg)):
            raise ManifestError(f"{where}: field 'protocol.groupings' must be a list of group lists, found {gg!r}")
        gg = [gg] if isinstance(gg, str) else list(gg)
        unknown = [g for g in gg if g not in group_names]
        if unknown:
            raise ManifestError(f"{where}: field 'protocol.groupings' names {unknown}, not among the groups {group_names}")
        groupings.append(tuple(gg))

    return Manifest(
        path=path,
        # the manifest's identity covers its checksums file too
        sha256=hashlib.sha256(raw + b"\0" + checksums_path.read_bytes()).hexdigest(),
        name=name,
        title=str(data.get("title", name)),
        description=str(data.get("description", "")),
        licence=str(data.get("licence", "unknown")),
        licence_url=str(data.get("licence_url", "")),
        citation=str(data.get("citation", "")),
        homepage=str(data.get("homepage", "")),
        label_source=str(data.get("label_source", "")),
        base_url=base_url,
        remote_paths={str(k): str(v) for k, v in remote_paths.items()},
        checksums=checksums,
        image_globs=tuple(globs),
        image_pattern=pattern,
        labels_file=labels_file,
        labels_key=labels_key,
        labels_keep=tuple(str(k) for k in keep),
        labels_per_image=bool(labels.get("per_image", False)),
        label_lists=dict(lists) if lists else None,
        derived={str(k): dict(v) for k, v in derived.items()},
        groups=tuple(groups),
        protocol_kind=kind,
        groupings=tuple(groupings),
        covariates=parse_covariates(data.get("covariates"), where),
    )
