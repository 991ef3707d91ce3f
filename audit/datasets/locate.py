"""Find a dataset's files, or fetch them, and prove they are the bytes the manifest names.

Search order (the first location that holds every file wins):

1. an explicit ``data_dir`` (``--data-dir``);
2. ``$FACE_AUDIT_DATA``;
3. a mirror, ``$FACE_AUDIT_MIRROR``: a local folder used in place, or an ``http(s)://`` /
   ``file://`` base URL that files are downloaded from;
4. the public source in the manifest, downloaded into the user cache
   (``$FACE_AUDIT_CACHE/datasets/NAME``, default ``~/.cache/face-audit``).

Each of the folders in 1–3 may be the dataset root itself or a folder holding ``NAME/``.
Every file is checked against its sha256 before use; a mismatch stops with a
:class:`~audit.errors.ChecksumError` that names the manifest and the file.

Confinement: every path a manifest lists is a plain relative path (checked when the manifest is
read) and must resolve inside its root here too: a symlink that leads out of the dataset folder
is refused, and a download writes only under its destination. URLs that come from a manifest
must be ``https://``; ``http://`` and ``file://`` there need ``$FACE_AUDIT_ALLOW_INSECURE_URLS=1``
(or ``allow_insecure=True``). A mirror the user names (``--base-url``, ``$FACE_AUDIT_MIRROR``) is
an explicit choice and may also be ``http://`` or ``file://``. No other scheme is ever opened.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import ChecksumError, DatasetError, ManifestError
from ..images import sha256_file
from .manifest import Manifest, check_relative_path

__all__ = ["DataLocation", "cache_dir", "locate_dataset", "verify_files", "download_dataset", "keep_listed_rows", "confined_path",
           "check_url"]


def confined_path(root: Path, rel: str, manifest: Manifest | None = None) -> Path:
    """``root / rel``, after checking that it resolves (symlinks followed) inside ``root``."""
    where = str(manifest.path) if manifest is not None else str(root)
    if manifest is not None and not manifest.base_url:
        # a local dataset (``face-audit datasets init``, no public source): the user's own files,
        # which may be links to, or a label file beside, the image folder
        check_relative_path(rel, where, "checksums", allow_parent=True)
        return root / rel
    check_relative_path(rel, where, "source.checksums")
    target = root / rel
    base = root.resolve()
    real = target.resolve()
    if real != base and not real.is_relative_to(base):
        raise DatasetError(
            f"{where}: {rel} under {root} resolves to {real}, outside the dataset folder (a symlink); "
            "replace the link with the file itself"
        )
    return target


def _insecure_allowed() -> bool:
    return os.environ.get("FACE_AUDIT_ALLOW_INSECURE_URLS", "").strip().lower() in ("1", "true", "yes")


def check_url(url: str, *, allow_insecure: bool | None = None, what: str = "download") -> str:
    """Raise unless ``url`` is https (or http/file when insecure URLs are allowed)."""
    allow = _insecure_allowed() if allow_insecure is None else allow_insecure
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "https" or (allow and scheme in ("http", "file")):
        return url
    hint = (" (http:// and file:// need $FACE_AUDIT_ALLOW_INSECURE_URLS=1)" if scheme in ("http", "file") else
            "; only https:// URLs are fetched")
    raise DatasetError(f"{what}: refusing to fetch {url[:200]!r}: scheme {scheme or 'none'!r} is not allowed{hint}")


def keep_listed_rows(data: bytes, column: str, listed: set[str]) -> bytes:
    """Keep a CSV's header line and the lines whose ``column`` value is in ``listed``, byte for byte.

    Used for ``source.derived`` files: a published label file cut down to the images present.
    Line endings and quoting are kept as published, so the result's sha256 is reproducible.
    """
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    header = lines[0].decode("utf-8-sig").rstrip("\r\n").split(",")
    if column not in header:
        raise ChecksumError(f"the published CSV has no column {column!r} (columns: {header}); the manifest's source.derived is out of date")
    k = header.index(column)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.decode("utf-8").rstrip("\r\n").split(",")
        if len(fields) > k and fields[k] in listed:
            out.append(line)
    return b"".join(out)


@dataclass(frozen=True)
class DataLocation:
    """Where a dataset was found: ``root`` and ``how`` (``"data-dir"``, ``"FACE_AUDIT_DATA"``,
    ``"mirror"``, ``"cache"`` or ``"download"``), with the sha256 of every file checked."""

    root: Path
    how: str
    sha256: dict[str, str]


def cache_dir() -> Path:
    """The user cache: ``$FACE_AUDIT_CACHE`` or ``~/.cache/face-audit`` (XDG_CACHE_HOME honoured)."""
    env = os.environ.get("FACE_AUDIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "face-audit"


def _candidate_roots(folder: Path, name: str) -> list[Path]:
    return [folder / name, folder]


def _missing(root: Path, manifest: Manifest) -> list[str]:
    return [rel for rel in manifest.checksums if not (root / rel).is_file()]


def _hash(root: Path, rel: str, manifest: Manifest) -> str:
    path = confined_path(root, rel, manifest)
    try:
        return sha256_file(path)
    except OSError as exc:
        raise DatasetError(
            f"{manifest.path}: field 'source.checksums': cannot read {rel} under {root} ({exc.strerror or exc}); "
            "fix its permissions or restore the file"
        ) from exc


def verify_files(root: Path, manifest: Manifest, *, progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, str]:
    """Hash every file the manifest lists under ``root``; raise on a missing file or a mismatch.

    Returns
    -------
    dict of str to str
        Root-relative path -> sha256 (equal to the manifest's).
    """
    missing = _missing(root, manifest)
    if missing:
        raise DatasetError(
            f"{manifest.path}: field 'source.checksums' lists {len(missing)} file(s) absent from {root}, "
            f"e.g. {missing[:3]}. Restore them, or point --data-dir / $FACE_AUDIT_MIRROR at a complete copy."
        )
    items = list(manifest.checksums.items())
    it = progress(items) if progress else items
    bad = []
    out = {}
    for rel, expected in it:
        got = _hash(root, rel, manifest)
        if got != expected:
            bad.append((rel, expected, got))
        out[rel] = got
    if bad:
        rel, expected, got = bad[0]
        raise ChecksumError(
            f"{manifest.path}: field 'source.checksums': {len(bad)} file(s) under {root} differ from the published bytes, "
            f"e.g. {rel} has sha256 {got[:16]}…, expected {expected[:16]}…. "
            "Re-download the dataset (delete the file and run `face-audit datasets fetch "
            f"{manifest.name}`) or use an unmodified copy."
        )
    return out


def locate_dataset(
    manifest: Manifest,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> DataLocation:
    """Find (or fetch) a dataset and verify every file's sha256. See the module docstring for the order."""
    tried: list[str] = []
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        for root in _candidate_roots(folder, manifest.name):
            if root.is_dir() and not _missing(root, manifest):
                return DataLocation(root, "data-dir", verify_files(root, manifest, progress=progress))
        # an explicit folder that is incomplete is an error, not a reason to look elsewhere
        root = folder / manifest.name if (folder / manifest.name).is_dir() else folder
        if not root.is_dir():
            raise DatasetError(f"--data-dir {folder} does not exist")
        verify_files(root, manifest)  # raises, naming the missing files
    if not manifest.base_url:  # a local dataset: its manifest sits in its root (`face-audit datasets init`)
        root = manifest.path.parent
        if not _missing(root, manifest):
            return DataLocation(root, "manifest folder", verify_files(root, manifest, progress=progress))
        verify_files(root, manifest)  # raises, naming the missing files
    env_sources = [("FACE_AUDIT_DATA", os.environ.get("FACE_AUDIT_DATA")), ("mirror", os.environ.get("FACE_AUDIT_MIRROR"))]
    for how, value in env_sources:
        if not value:
            continue
        if how == "mirror" and "://" in value:
            continue  # a URL mirror is a download source, below
        for root in _candidate_roots(Path(value).expanduser(), manifest.name):
            if root.is_dir() and not _missing(root, manifest):
                return DataLocation(root, how, verify_files(root, manifest, progress=progress))
        tried.append(f"${'FACE_AUDIT_MIRROR' if how == 'mirror' else how}={value}")
    cached = cache_dir() / "datasets" / manifest.name
    if cached.is_dir() and not _missing(cached, manifest):
        return DataLocation(cached, "cache", verify_files(cached, manifest, progress=progress))
    tried.append(str(cached))
    if not download:
        raise DatasetError(
            f"dataset {manifest.name!r} not found (looked in: {', '.join(tried)}). "
            f"Run `face-audit datasets fetch {manifest.name}`, or give --data-dir, $FACE_AUDIT_DATA or $FACE_AUDIT_MIRROR."
        )
    mirror = os.environ.get("FACE_AUDIT_MIRROR", "")
    base = mirror.rstrip("/") + f"/{manifest.name}/" if "://" in mirror else None
    sha = download_dataset(manifest, cached, base_url=base, progress=progress)
    return DataLocation(cached, "download", sha)


def download_dataset(
    manifest: Manifest,
    dest: Path,
    *,
    base_url: str | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    timeout: float = 60.0,
    allow_insecure: bool | None = None,
) -> dict[str, str]:
    """Download every file the manifest lists into ``dest``, verifying each sha256.

    Files already present with the right hash are kept, so an interrupted download resumes.
    Each file is written to a temporary name and renamed into place only once its hash matches.
    ``base_url`` replaces the public source (a mirror laid out as ``<base_url>/<path>``).
    A manifest's URLs must be ``https://`` unless ``allow_insecure`` (default:
    ``$FACE_AUDIT_ALLOW_INSECURE_URLS``) permits ``http://`` and ``file://``; a ``base_url`` given
    by the caller may be https, http or file. Every file is written under ``dest`` and nowhere else.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DatasetError(f"--dest {dest} is a file, not a folder")
    if base_url is not None:
        # a mirror the user gave (--base-url, $FACE_AUDIT_MIRROR) is an explicit choice: http and file allowed
        check_url(base_url, allow_insecure=True, what=f"--base-url for dataset {manifest.name!r}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"--dest {dest}: cannot create the folder ({exc.strerror or exc})") from exc
    out: dict[str, str] = {}
    items = list(manifest.checksums.items())
    it = progress(items) if progress else items
    for rel, expected in it:
        try:
            check_relative_path(rel, str(manifest.path), "source.checksums")
        except ManifestError as exc:
            raise DatasetError(str(exc)) from exc
        target = dest / rel
        derived = manifest.derived.get(rel) if not base_url else None
        url = (base_url + rel) if base_url else (derived["url"] if derived else manifest.remote_url(rel))
        check_url(url, allow_insecure=True if base_url else allow_insecure, what=f"dataset {manifest.name!r}, file {rel}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(f"cannot create {target.parent} for {rel} ({exc.strerror or exc})") from exc
        confined_path(dest, rel, manifest)  # a symlinked folder under dest must not lead out of it
        if target.is_file() and sha256_file(target) == expected:
            out[rel] = expected
            continue
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as tmp, urllib.request.urlopen(url, timeout=timeout) as resp:
                if derived:
                    tmp.write(keep_listed_rows(resp.read(), derived["keep_rows_where"], set(manifest.checksums)))
                else:
                    shutil.copyfileobj(resp, tmp)
            got = sha256_file(tmp_name)
            if got != expected:
                raise ChecksumError(
                    f"{manifest.path}: field 'source.checksums': {url} gave bytes with sha256 {got[:16]}…, expected "
                    f"{expected[:16]}… for {rel}. The source changed or the download was corrupted; nothing was kept."
                )
            os.replace(tmp_name, target)
        except (urllib.error.URLError, OSError) as exc:
            raise DatasetError(
                f"could not download {url} for dataset {manifest.name!r} ({exc}). Files fetched so far are kept in {dest}; "
                "run the command again to resume, or set $FACE_AUDIT_MIRROR to a local copy."
            ) from exc
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        out[rel] = expected
    return out
