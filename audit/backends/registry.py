"""Find recognition backends by name: the built-ins and those other packages register.

A backend is named by a short registry key (``"dlib"``, ``"deepface"``) and implemented by a
:class:`~audit.backends.base.Backend` subclass written as ``"module:Class"``. Other packages add
backends through the entry-point group ``face_audit.backends``::

    # their pyproject.toml
    [project.entry-points."face_audit.backends"]
    mybackend = "my_package.backend:MyBackend"

The built-in backends are also registered here directly, so that they work from a source
checkout that was never installed. Nothing heavy is imported until a class is asked for, and the
backends themselves import their libraries only in :meth:`~audit.backends.base.Backend.load`.

Examples
--------
>>> from audit.backends.registry import available_backends, create_backend
>>> {"dlib", "deepface", "opencv-sface"} <= set(available_backends())
True
>>> backend = create_backend("dlib", upsample=0)      # validates options, loads nothing
>>> backend.load()                                     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import warnings
from dataclasses import dataclass

from ..errors import BackendError, MissingDependencyError
from .base import Backend

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_backends",
    "get_backend_class",
    "create_backend",
    "register_backend",
    "service_backends",
]

ENTRY_POINT_GROUP = "face_audit.backends"


@dataclass(frozen=True)
class _Entry:
    target: str  # "module:Class"
    extra: str | None  # face-audit extra that installs its dependencies, if any
    origin: str  # where the registration comes from, for error messages


# name -> (target, face-audit extra)
_BUILTINS: dict[str, tuple[str, str | None]] = {
    "dlib": ("audit.backends.dlib:DlibBackend", "dlib"),
    "deepface": ("audit.backends.deepface:DeepFaceBackend", "deepface"),
    "opencv-sface": ("audit.backends.opencv_sface:OpenCVSFaceBackend", "opencv"),
}

# Services that score pairs or search collections themselves (cloud APIs) rather than embedding
# images: name -> (target, face-audit extra, what they do). `backends doctor` and `backends list`
# show them from here; `run` answers with what to do instead of "unknown backend".
_SERVICES: dict[str, tuple[str, str | None, str]] = {
    "rekognition": (
        "audit.backends.rekognition:RekognitionBackend", "rekognition",
        "a cloud service that scores pairs and searches collections, not an embedding backend: score your pairs with "
        "audit.backends.rekognition.RekognitionBackend and audit the scores ([scores] in a config, or audit.from_scores), "
        "or search with audit.identification.CollectionSearch",
    ),
}


def service_backends() -> dict[str, tuple[str, str | None, str]]:
    """Pair-scoring and collection-search services by name: ``(target, extra, what they do)``.
    They are not :class:`~audit.backends.base.Backend` classes, so ``run`` cannot drive them."""
    return dict(_SERVICES)


# registered at run time with register_backend()
_RUNTIME: dict[str, _Entry] = {}


def _entry_point_entries() -> dict[str, _Entry]:
    found: dict[str, _Entry] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = getattr(dist, "name", None) or "an installed package"
        # face-audit's own distribution declares the built-ins as entry points too
        extra = _BUILTINS[ep.name][1] if ep.name in _BUILTINS else None
        found[ep.name] = _Entry(ep.value, extra, f"entry point {ep.name!r} of {dist_name}")
    return found


def _registry() -> dict[str, _Entry]:
    entries = {
        name: _Entry(target, extra, "face-audit's built-in backends")
        for name, (target, extra) in _BUILTINS.items()
    }
    for name, entry in _entry_point_entries().items():
        known = entries.get(name)
        if known is None:
            entries[name] = entry
        elif known.target != entry.target:
            warnings.warn(
                f"{entry.origin} registers the backend name {name!r} for {entry.target}, but "
                f"that name already means {known.target}; ignoring the entry point. "
                "Rename the entry point in that package's metadata to use it.",
                RuntimeWarning,
                stacklevel=3,
            )
    entries.update(_RUNTIME)
    return entries


def available_backends() -> dict[str, str]:
    """Every backend name that can be asked for, with the class that implements it.

    Returns
    -------
    dict of str to str
        Registry name -> ``"module:Class"``, sorted by name. Listing does not import anything.
    """
    return {name: entry.target for name, entry in sorted(_registry().items())}


def register_backend(name: str, target: str, *, extra: str | None = None, replace: bool = False) -> None:
    """Register a backend class for this process (notebooks, tests, plugins not yet installed).

    Parameters
    ----------
    name : str
        The registry key, e.g. ``"mybackend"``.
    target : str
        ``"module:Class"`` of a :class:`~audit.backends.base.Backend` subclass.
    extra : str, optional
        A face-audit extra that installs the backend's dependencies; named in the error raised
        when one of them is missing.
    replace : bool, default False
        Allow replacing a name that is already registered.
    """
    if not isinstance(name, str) or not name.strip():
        raise BackendError(f"a backend name must be a non-empty string, got {name!r}")
    _split_target(target, name)
    if not replace and name in _registry():
        raise BackendError(
            f"the backend name {name!r} is already registered for {_registry()[name].target}; "
            "pass replace=True to override it, or choose another name."
        )
    _RUNTIME[name] = _Entry(target, extra, "register_backend()")


def _split_target(target: str, name: str) -> tuple[str, str]:
    module, sep, attr = str(target).partition(":")
    if not sep or not module or not attr:
        raise BackendError(
            f"backend {name!r} points to {target!r}, expected 'package.module:ClassName'."
        )
    return module, attr


def _install_hint(entry: _Entry, missing: str) -> str:
    if entry.extra:
        return f"pip install 'face-audit[{entry.extra}]'"
    return f"pip install {missing.split('.')[0]}"


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the class registered under ``name``.

    Raises
    ------
    BackendError
        When the name is unknown (the message lists the known ones), or its target cannot be
        imported or is not a :class:`~audit.backends.base.Backend` subclass.
    MissingDependencyError
        When importing the class fails because an optional dependency is not installed; the
        message names the extra (or package) to install.
    """
    entries = _registry()
    if name not in entries and name in _SERVICES:
        raise BackendError(f"backend {name!r} is {_SERVICES[name][2]}. `face-audit run` needs an embedding backend: "
                           f"{', '.join(sorted(entries))}.")
    if name not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise BackendError(
            f"unknown backend {name!r}; known backends: {known}. Install a package that registers "
            f"it under the entry-point group {ENTRY_POINT_GROUP!r}, or fix the name."
        )
    entry = entries[name]
    module_name, attr = _split_target(entry.target, name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        # the target module itself (or a parent package) is absent: a registration error
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise BackendError(
                f"backend {name!r} ({entry.origin}) points to {entry.target}, but the module "
                f"{module_name!r} cannot be found; reinstall the package that provides it."
            ) from exc
        raise MissingDependencyError(
            f"backend {name!r} needs the module {missing or '?'!r}, which is not installed. "
            f"Install it with: {_install_hint(entry, missing or module_name)}"
        ) from exc
    except ImportError as exc:
        raise MissingDependencyError(
            f"backend {name!r} could not import one of its dependencies ({exc}). "
            f"Install or repair it with: {_install_hint(entry, getattr(exc, 'name', None) or module_name)}"
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise BackendError(
            f"backend {name!r} points to {entry.target}, but {module_name!r} has no attribute {attr!r}."
        )
    if not (inspect.isclass(cls) and issubclass(cls, Backend)):
        raise BackendError(
            f"backend {name!r} points to {entry.target}, which is not a subclass of "
            "audit.backends.base.Backend."
        )
    return cls


def create_backend(name: str, **options: object) -> Backend:
    """Create a backend by registry name. Options are validated; nothing is loaded yet.

    Parameters
    ----------
    name : str
        A key of :func:`available_backends`.
    **options
        Keyword options of that backend's class (see its docstring).

    Returns
    -------
    Backend
        Call :meth:`~audit.backends.base.Backend.load` (or just ``embed``) to load weights.

    Raises
    ------
    BackendError
        Unknown name, unknown option or an invalid option value.
    MissingDependencyError
        The backend's module needs a package that is not installed.
    """
    cls = get_backend_class(name)
    try:
        signature = inspect.signature(cls)
        signature.bind(**options)
    except TypeError as exc:
        accepted = [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        raise BackendError(
            f"backend {name!r} got options {sorted(options)} that it does not accept ({exc}); "
            f"its options are: {', '.join(accepted) or '(none)'}."
        ) from exc
    except ValueError:  # no signature (a C extension class): let the constructor decide
        pass
    return cls(**options)
