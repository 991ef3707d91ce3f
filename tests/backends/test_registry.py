"""The backend registry: built-ins, entry points, and the errors for bad names and missing extras."""

from __future__ import annotations

import warnings

import importlib.metadata
import textwrap

import pytest

from audit.backends import registry
from audit.backends.base import Backend
from audit.backends.deepface import DeepFaceBackend
from audit.backends.dlib import DlibBackend
from audit.errors import BackendError, MissingDependencyError


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path holding small plugin modules written by each test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _write_module(folder, name, source):
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def _fake_entry_points(monkeypatch, *pairs):
    eps = [
        importlib.metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)
        for name, value in pairs
    ]

    def entry_points(*, group=None, **kwargs):
        assert group == registry.ENTRY_POINT_GROUP
        return eps

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)


@pytest.fixture(autouse=True)
def _clean_runtime_registrations():
    before = dict(registry._RUNTIME)
    yield
    registry._RUNTIME.clear()
    registry._RUNTIME.update(before)


def test_builtins_are_listed_without_installation():
    backends = registry.available_backends()
    assert backends["dlib"] == "audit.backends.dlib:DlibBackend"
    assert backends["deepface"] == "audit.backends.deepface:DeepFaceBackend"
    assert list(backends) == sorted(backends)


def test_get_backend_class_returns_the_builtin_classes():
    assert registry.get_backend_class("dlib") is DlibBackend
    assert registry.get_backend_class("deepface") is DeepFaceBackend
    for name in ("dlib", "deepface"):
        cls = registry.get_backend_class(name)
        assert issubclass(cls, Backend)
        assert cls.name == name


def test_create_backend_validates_options_and_loads_nothing():
    backend = registry.create_backend("dlib", upsample=0, multiple_faces="reject")
    assert isinstance(backend, DlibBackend)
    assert backend.upsample == 0 and backend.multiple_faces == "reject"
    assert backend._encoder is None  # nothing loaded yet

    with pytest.raises(BackendError, match="upsample"):
        registry.create_backend("dlib", upsample=-1)


def test_unknown_backend_lists_the_known_names():
    with pytest.raises(BackendError) as err:
        registry.get_backend_class("arcface-pro")
    message = str(err.value)
    assert "'arcface-pro'" in message
    assert "dlib" in message and "deepface" in message
    with pytest.raises(BackendError, match="known backends"):
        registry.create_backend("nope")


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(BackendError) as err:
        registry.create_backend("dlib", upsampling=2)
    message = str(err.value)
    assert "upsampling" in message
    for option in ("upsample", "max_detect_side", "multiple_faces", "jitter", "weights_dir"):
        assert option in message


def test_entry_points_are_discovered(plugin_dir, monkeypatch):
    _write_module(
        plugin_dir,
        "fa_plugin_ok",
        """
        from audit.backends.base import Backend, BackendInfo, FaceResult, FaceStatus

        class EchoBackend(Backend):
            name = "echo"

            def __init__(self, *, size=4):
                self.size = size

            def load(self):
                pass

            def info(self):
                return BackendInfo("echo", "echo", "1", "0" * 64, self.size, "cosine")

            def embed(self, image):
                return FaceResult(FaceStatus.NO_FACE)
        """,
    )
    _fake_entry_points(monkeypatch, ("echo", "fa_plugin_ok:EchoBackend"))
    assert registry.available_backends()["echo"] == "fa_plugin_ok:EchoBackend"
    backend = registry.create_backend("echo", size=8)
    assert type(backend).__name__ == "EchoBackend"
    assert backend.info().dim == 8
    # the built-ins are still there
    assert {"dlib", "deepface"} <= set(registry.available_backends())


def test_missing_optional_dependency_names_the_extra(plugin_dir, monkeypatch):
    _write_module(
        plugin_dir,
        "fa_plugin_needs_dep",
        """
        import face_audit_test_dependency_that_is_not_installed  # noqa: F401
        from audit.backends.base import Backend

        class NeedsDep(Backend):
            pass
        """,
    )
    # as a built-in with an extra: the message names the face-audit extra
    monkeypatch.setitem(registry._BUILTINS, "dlib", ("fa_plugin_needs_dep:NeedsDep", "dlib"))
    # face-audit's own 'dlib' entry point now disagrees with the patched built-in and is ignored with a warning
    with pytest.raises(MissingDependencyError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        registry.get_backend_class("dlib")
    message = str(err.value)
    assert "pip install 'face-audit[dlib]'" in message
    assert "face_audit_test_dependency_that_is_not_installed" in message
    assert isinstance(err.value, ImportError)  # callers catching ImportError keep working

    # as a third-party entry point: the message names the missing package
    _fake_entry_points(monkeypatch, ("thirdparty", "fa_plugin_needs_dep:NeedsDep"))
    with pytest.raises(MissingDependencyError, match="pip install face_audit_test_dependency"):
        registry.create_backend("thirdparty")


def test_target_module_that_does_not_exist_is_a_registration_error(monkeypatch):
    _fake_entry_points(monkeypatch, ("ghost", "fa_no_such_plugin_module.backend:Ghost"))
    with pytest.raises(BackendError) as err:
        registry.get_backend_class("ghost")
    assert not isinstance(err.value, MissingDependencyError)
    assert "fa_no_such_plugin_module.backend" in str(err.value)


def test_target_that_is_not_a_backend_is_rejected(plugin_dir, monkeypatch):
    _write_module(plugin_dir, "fa_plugin_bad", "class NotABackend:\n    pass\n")
    _fake_entry_points(
        monkeypatch,
        ("notabackend", "fa_plugin_bad:NotABackend"),
        ("noattr", "fa_plugin_bad:Missing"),
        ("badtarget", "fa_plugin_bad.NotABackend"),
    )
    with pytest.raises(BackendError, match="not a subclass"):
        registry.get_backend_class("notabackend")
    with pytest.raises(BackendError, match="no attribute 'Missing'"):
        registry.get_backend_class("noattr")
    with pytest.raises(BackendError, match="module:ClassName"):
        registry.get_backend_class("badtarget")


def test_entry_point_cannot_hijack_a_builtin_name(monkeypatch):
    _fake_entry_points(
        monkeypatch,
        ("dlib", "evil_plugin:EvilBackend"),
        ("deepface", "audit.backends.deepface:DeepFaceBackend"),  # face-audit's own metadata: fine
    )
    with pytest.warns(RuntimeWarning, match="evil_plugin"):
        backends = registry.available_backends()
    assert backends["dlib"] == "audit.backends.dlib:DlibBackend"
    assert backends["deepface"] == "audit.backends.deepface:DeepFaceBackend"


def test_register_backend_at_run_time():
    registry.register_backend("dlib-fast", "audit.backends.dlib:DlibBackend", extra="dlib")
    assert registry.available_backends()["dlib-fast"] == "audit.backends.dlib:DlibBackend"
    assert isinstance(registry.create_backend("dlib-fast", upsample=0), DlibBackend)
    with pytest.raises(BackendError, match="already registered"):
        registry.register_backend("dlib", "audit.backends.dlib:DlibBackend")
    with pytest.raises(BackendError, match="module:ClassName"):
        registry.register_backend("x", "no_colon_here")
