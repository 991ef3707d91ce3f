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

from ..errors import ManifestError

__all__ = ["Manifest", "GroupSpec", "load_manifest", "manifest_dirs", "find_manifest", "list_manifests"]

_PROTOCOL_KINDS = ("all_pairs",)


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
            raise ManifestError(f"manifest file {p} does not exist")
        return p
    found = list_manifests()
    if str(name_or_path) not in found:
        raise ManifestError(
            f"no manifest named {str(name_or_path)!r}; known datasets: {sorted(found) or 'none'}. "
            "Give a path to a .yaml manifest or add its folder to $FACE_AUDIT_MANIFESTS."
        )
    return found[str(name_or_path)]


def _req(data: Mapping[str, Any], key: str, kind: type | tuple, where: str, prefix: str = "") -> Any:
    full = f"{prefix}{key}"
    if key not in data:
        raise ManifestError(f"{where}: field '{full}' is missing")
    val = data[key]
    if not isinstance(val, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}: field '{full}' must be a {names}, found {type(val).__name__} ({val!r})")
    return val


def _read_checksums(path: Path, manifest_path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ManifestError(f"{manifest_path}: field 'source.checksums' names {path.name}, which does not exist next to the manifest")
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
        if not m:
            raise ManifestError(f"{path}:{lineno}: expected '<sha256>  <path>' (sha256sum format), found {line[:80]!r}")
        out[m.group(2)] = m.group(1).lower()
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
    import yaml

    path = find_manifest(name_or_path)
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML ({exc})") from exc
    where = str(path)
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where}: expected a mapping at the top level")
    if data.get("schema", 1) != 1:
        raise ManifestError(f"{where}: field 'schema' is {data.get('schema')!r}; this face-audit reads schema 1")
    name = _req(data, "name", str, where)
    # A public dataset names its `source`; a local one (`face-audit datasets init`) has none and
    # lists its files in a top-level `checksums` file next to the manifest, in its data folder.
    if "source" in data or "checksums" not in data:
        source = _req(data, "source", Mapping, where)
        base_url = _req(source, "base_url", str, where, "source.")
        if not base_url.endswith("/"):
            base_url += "/"
    else:
        source, base_url = {"checksums": _req(data, "checksums", str, where)}, ""
    remote_paths = source.get("remote_paths") or {}
    if not isinstance(remote_paths, Mapping):
        raise ManifestError(f"{where}: field 'source.remote_paths' must be a mapping of local prefix to remote path")
    checksums_path = path.parent / _req(source, "checksums", str, where, "source.")
    checksums = _read_checksums(checksums_path, path)

    images = _req(data, "images", Mapping, where)
    globs = images.get("glob")
    if isinstance(globs, str):
        globs = [globs]
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
        raise ManifestError(f"{where}: field 'images.glob' must be a list of glob patterns")
    pattern_text = _req(images, "pattern", str, where, "images.")
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise ManifestError(f"{where}: field 'images.pattern' is not a valid regular expression ({exc})") from exc
    if "subject" not in pattern.groupindex:
        raise ManifestError(f"{where}: field 'images.pattern' needs a named group (?P<subject>...) that gives each image's subject")

    labels = data.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise ManifestError(f"{where}: field 'labels' must be a mapping")
    labels_file = labels.get("file")
    labels_key = labels.get("key")
    if labels_file is not None and labels_key is None:
        raise ManifestError(f"{where}: field 'labels.key' is missing; name the column of {labels_file} that identifies the subject")
    if labels_file is not None and labels_file not in checksums:
        raise ManifestError(f"{where}: field 'labels.file' names {labels_file}, which the checksums file does not list")
    lists = labels.get("lists")
    if lists is not None:
        if not isinstance(lists, Mapping) or not isinstance(lists.get("column"), str) or not isinstance(lists.get("files"), Mapping):
            raise ManifestError(f"{where}: field 'labels.lists' must be {{column: NAME, files: {{value: list file}}}}")
        for value, f in lists["files"].items():
            if f not in checksums:
                raise ManifestError(f"{where}: field 'labels.lists.files.{value}' names {f}, which the checksums file does not list")
    derived = source.get("derived") or {}
    if not isinstance(derived, Mapping) or not all(
        isinstance(v, Mapping) and isinstance(v.get("url"), str) and isinstance(v.get("keep_rows_where"), str) for v in derived.values()
    ):
        raise ManifestError(f"{where}: field 'source.derived' must map a path to {{url: ..., keep_rows_where: column}}")
    keep = labels.get("keep") or []
    if not isinstance(keep, list):
        raise ManifestError(f"{where}: field 'labels.keep' must be a list of column names")

    groups_raw = _req(data, "groups", Mapping, where)
    groups = []
    for gname, spec in groups_raw.items():
        if not isinstance(spec, Mapping):
            raise ManifestError(f"{where}: field 'groups.{gname}' must be a mapping with 'column' and 'values'")
        col = _req(spec, "column", str, where, f"groups.{gname}.")
        values = _req(spec, "values", Mapping, where, f"groups.{gname}.")
        groups.append(GroupSpec(str(gname), col, {str(k): str(v) for k, v in values.items()}))

    protocol = data.get("protocol") or {}
    kind = protocol.get("kind", "all_pairs")
    if kind not in _PROTOCOL_KINDS:
        raise ManifestError(f"{where}: field 'protocol.kind' is {kind!r}; expected one of {_PROTOCOL_KINDS}")
    group_names = [g.name for g in groups]
    groupings_raw = protocol.get("groupings") or [[g] for g in group_names]
    groupings = []
    for gg in groupings_raw:
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
    )
