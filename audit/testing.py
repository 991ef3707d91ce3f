"""A conformance kit for recognition backends: run it in your backend's own tests.

A :class:`~audit.backends.base.Backend` is only useful to an audit if it keeps the contract the
rest of face-audit relies on: its :class:`~audit.backends.base.BackendInfo` identifies the
embeddings exactly (the cache is keyed on it), every per-image problem becomes a status instead of
an exception (failures to acquire are results), the same image always gives the same embedding,
and a pickled copy in a worker process behaves like the original. This module checks each of
those on real faces and synthetic bad images, with plain ``assert`` statements whose messages say
what was expected and what was found.

Typical use, in a plugin's ``tests/test_conformance.py``::

    import pytest
    from audit.testing import ConformanceKit, CHECKS, sample_faces
    from my_package.backend import MyBackend

    @pytest.fixture(scope="module")
    def kit(tmp_path_factory):
        return ConformanceKit(
            MyBackend,                                   # called as MyBackend(**options)
            images=sample_faces(),                       # or your own {"face": ..., "other_person": ...}
            tmp_path=tmp_path_factory.mktemp("conformance"),
            alternative_options={"detector": "other"},   # an option that changes embeddings
        )

    @pytest.mark.parametrize("check", CHECKS)
    def test_conformance(kit, check):
        kit.run(check)

or all at once with :func:`check_backend`. The checks need real faces: :func:`sample_faces`
finds the London set in ``$FACE_AUDIT_MIRROR`` or ``../shared/datasets`` next to the repository
(or the current folder) and skips the calling test when there is none.

The checks (:data:`CHECKS`):

``info``
    ``info()`` fields are valid: ``backend`` is the class's registry ``name``, ``model`` and
    ``version`` are non-empty, ``weights_sha256`` is 64 lowercase hex digits, ``dim > 0``,
    ``metric`` is ``"cosine"`` or ``"euclidean"``, a ``default_threshold`` is finite and has a
    ``default_threshold_source``, and ``options`` are JSON-serialisable.
``fingerprint``
    Two fresh instances give the same fingerprint; so does a pickled copy; an instance built with
    ``alternative_options`` gives a different one.
``embed_face``
    ``embed_path`` of a real face is ``ok``: a finite float32 embedding of shape ``(dim,)``.
``deterministic``
    The same image twice gives identical embeddings (within ``atol``).
``bad_images``
    A zero-byte file and a truncated JPEG are ``unreadable``, a flat grey image is ``no_face``,
    and ``embed`` of a 2-D array or a float array gives a failure status; none of them raises.
``pickle``
    The backend pickles before and after ``load()``, and an unpickled copy gives the same
    embedding as the original.
``batch_order``
    Embedding a list of images in different orders, by one instance and by a fresh one, gives the
    same result for each image (state must not leak from one image into the next).
``exif_rotation``
    A JPEG stored sideways with EXIF orientation 6 is embedded upright: ``ok`` and closer to the
    upright photo than the other person is.
``mated_closer``
    When ``images`` has ``"same_person"``: the same person (another photo) is more similar than
    the other person. This catches colour-order (RGB/BGR) and alignment mistakes.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .backends.base import Backend, BackendInfo, FaceResult, FaceStatus

__all__ = ["CHECKS", "ConformanceKit", "check_backend", "sample_faces", "find_london"]

#: The names of the checks, in the order :func:`check_backend` runs them.
CHECKS = (
    "info",
    "fingerprint",
    "embed_face",
    "deterministic",
    "bad_images",
    "pickle",
    "batch_order",
    "exif_rotation",
    "mated_closer",
)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- sample faces


def find_london() -> Path | None:
    """The London set's folder, or None: ``$FACE_AUDIT_MIRROR/london``, else ``../shared/datasets/london``
    next to face-audit's source tree or next to the current folder."""
    roots: list[Path] = []
    env = os.environ.get("FACE_AUDIT_MIRROR")
    if env and "://" not in env:
        roots.append(Path(env).expanduser())
    roots += [_REPO.parent / "shared" / "datasets", Path.cwd().parent / "shared" / "datasets"]
    for root in roots:
        if (root / "london" / "neutral_front").is_dir() and (root / "london" / "smiling_front").is_dir():
            return root / "london"
    return None


def sample_faces() -> dict[str, Path]:
    """Real faces for the checks: two photos of one person and one of another (London set).

    Returns
    -------
    dict of str to Path
        ``"face"`` (subject 001, neutral), ``"same_person"`` (subject 001, smiling) and
        ``"other_person"`` (subject 002, neutral); 1350x1350 JPEGs.

    Notes
    -----
    Calls ``pytest.skip`` when the London set is not found (see :func:`find_london`), so a test
    that uses it is skipped, not failed, on a machine without the data.
    """
    london = find_london()
    files = None
    if london is not None:
        files = {
            "face": london / "neutral_front" / "001_03.jpg",
            "same_person": london / "smiling_front" / "001_08.jpg",
            "other_person": london / "neutral_front" / "002_03.jpg",
        }
        if not all(p.is_file() for p in files.values()):
            files = None
    if files is None:
        import pytest

        pytest.skip("no London set: set FACE_AUDIT_MIRROR to a folder holding london/, or put it in ../shared/datasets")
    return files


# ---------------------------------------------------------------------------- helpers


def _similarity(info: BackendInfo, a: np.ndarray, b: np.ndarray) -> float:
    """Higher = more alike, in the backend's own metric."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if info.metric == "cosine":
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return -float(np.linalg.norm(a - b))


def _describe(result: FaceResult) -> str:
    return f"status {result.status.value!r}, n_faces {result.n_faces}, detail {result.detail!r}"


class ConformanceKit:
    """The conformance checks for one backend, with the images they share.

    Parameters
    ----------
    backend_factory : callable
        Called as ``backend_factory(**options)`` to build a fresh, unloaded backend: the backend
        class itself, or a function (``lambda **kw: MyBackend(model="x", **kw)``).
    images : mapping of str to Path, optional
        ``"face"`` (a photo with one face) and ``"other_person"`` (another person) are required;
        ``"same_person"`` (another photo of the ``"face"`` person) enables ``mated_closer``.
        Default: :func:`sample_faces` (skips the test when the London set is absent).
    tmp_path : Path, optional
        A folder for the synthetic images; default a new temporary folder.
    alternative_options : mapping, optional
        Options that change embeddings (so the fingerprint must change). Without them the
        fingerprint check only tests stability.
    atol : float, default 0.0
        Largest allowed absolute difference between embeddings that must be identical
        (0: bit-identical, right for CPU backends).
    max_side : int or None, default 400
        The faces are downscaled to this longer side (PNG copies in ``tmp_path``) to keep the
        checks fast; None uses the images as given.

    Examples
    --------
    >>> from audit.testing import ConformanceKit
    >>> from audit.backends.dlib import DlibBackend
    >>> kit = ConformanceKit(DlibBackend, alternative_options={"upsample": 0})   # doctest: +SKIP
    >>> kit.run_all()                                                            # doctest: +SKIP
    """

    def __init__(
        self,
        backend_factory: Callable[..., Backend],
        *,
        images: Mapping[str, str | os.PathLike[str]] | None = None,
        tmp_path: str | os.PathLike[str] | None = None,
        alternative_options: Mapping[str, Any] | None = None,
        atol: float = 0.0,
        max_side: int | None = 400,
    ) -> None:
        if not callable(backend_factory):
            raise TypeError(f"backend_factory must be a backend class or a function returning a backend, got {backend_factory!r}")
        self.factory = backend_factory
        given = dict(images) if images is not None else sample_faces()
        for key in ("face", "other_person"):
            if key not in given:
                raise KeyError(f"images needs the key {key!r} (a real photo); got keys {sorted(given)}")
        if tmp_path is None:
            import tempfile

            tmp_path = tempfile.mkdtemp(prefix="face-audit-conformance-")
        self.workdir = Path(tmp_path)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.alternative_options = dict(alternative_options) if alternative_options is not None else None
        self.atol = float(atol)
        self.max_side = max_side
        self.images = {key: self._prepared(key, Path(path)) for key, path in given.items()}
        self._backend: Backend | None = None
        self._bad: dict[str, Path] | None = None

    # ------------------------------------------------------------------ fixtures

    def _prepared(self, key: str, path: Path) -> Path:
        if self.max_side is None:
            return path
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            scale = self.max_side / max(im.size)
            if scale < 1:
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
            out = self.workdir / f"{key}.png"
            im.save(out)
        return out

    @property
    def backend(self) -> Backend:
        """One loaded instance shared by the checks."""
        if self._backend is None:
            backend = self.factory()
            backend.load()
            self._backend = backend
        return self._backend

    def _bad_images(self) -> dict[str, Path]:
        if self._bad is None:
            from PIL import Image

            out = self.workdir
            empty = out / "empty.jpg"
            empty.write_bytes(b"")
            with Image.open(self.images["face"]) as im:
                im.convert("RGB").save(out / "full.jpg", quality=92)
            data = (out / "full.jpg").read_bytes()
            truncated = out / "truncated.jpg"
            truncated.write_bytes(data[: len(data) // 3])
            flat = out / "flat_gray.png"
            Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(flat)
            self._bad = {"empty": empty, "truncated": truncated, "flat": flat}
        return self._bad

    def _embed_ok(self, backend: Backend, path: Path, what: str) -> FaceResult:
        result = backend.embed_path(path)
        assert isinstance(result, FaceResult), f"{what}: embed_path returned {type(result).__name__}, expected a FaceResult"
        assert result.status is FaceStatus.OK, f"{what}: expected status 'ok' for a real face in {path}, got {_describe(result)}"
        return result

    def _assert_same(self, a: FaceResult, b: FaceResult, what: str) -> None:
        assert a.status is b.status, f"{what}: status {a.status.value!r} vs {b.status.value!r}"
        assert a.n_faces == b.n_faces, f"{what}: n_faces {a.n_faces} vs {b.n_faces}"
        if a.embedding is None or b.embedding is None:
            return
        diff = float(np.max(np.abs(a.embedding.astype(np.float64) - b.embedding.astype(np.float64))))
        assert diff <= self.atol, f"{what}: embeddings differ by up to {diff:.3g} (allowed: atol={self.atol:g})"

    # ------------------------------------------------------------------ the checks

    def check_info(self) -> None:
        backend = self.backend
        info = backend.info()
        assert isinstance(info, BackendInfo), f"info() returned {type(info).__name__}, expected a BackendInfo"
        name = getattr(type(backend), "name", "")
        assert isinstance(name, str) and name, f"{type(backend).__name__}.name must be the registry key, got {name!r}"
        assert info.backend == name, f"info().backend is {info.backend!r}, expected the class's name {name!r}"
        assert isinstance(info.model, str) and info.model.strip(), f"info().model must be a non-empty string, got {info.model!r}"
        assert isinstance(info.version, str) and info.version.strip(), f"info().version must be a non-empty string, got {info.version!r}"
        assert isinstance(info.weights_sha256, str) and _HEX64.fullmatch(info.weights_sha256), (
            f"info().weights_sha256 must be 64 lowercase hex digits, got {info.weights_sha256!r}"
        )
        assert isinstance(info.dim, (int, np.integer)) and not isinstance(info.dim, bool) and info.dim > 0, (
            f"info().dim must be a positive integer, got {info.dim!r}"
        )
        assert info.metric in ("cosine", "euclidean"), (
            f"an embedding backend's info().metric must be 'cosine' or 'euclidean' (how its embeddings are compared), "
            f"got {info.metric!r}"
        )
        if info.default_threshold is not None:
            assert isinstance(info.default_threshold, (int, float)) and math.isfinite(info.default_threshold), (
                f"info().default_threshold must be a finite number or None, got {info.default_threshold!r}"
            )
            assert info.default_threshold_source.strip(), "info().default_threshold is set but default_threshold_source is empty"
        try:
            json.dumps(info.to_dict())
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"info().to_dict() must be JSON-serialisable (options go into results.json): {exc}") from exc
        assert info.fingerprint == backend.info().fingerprint, "info() changes between calls on one instance"

    def check_fingerprint(self) -> None:
        reference = self.backend.info().fingerprint
        again = self.factory().info().fingerprint
        assert again == reference, f"two instances with the same options give different fingerprints: {reference} vs {again}"
        copy = pickle.loads(pickle.dumps(self.backend))
        assert copy.info().fingerprint == reference, "a pickled copy gives a different fingerprint from the original"
        if self.alternative_options is not None:
            other = self.factory(**self.alternative_options).info().fingerprint
            assert other != reference, (
                f"options {self.alternative_options} change embeddings but not the fingerprint: put them in "
                "BackendInfo.options, or the cache will mix embeddings of different settings"
            )

    def check_embed_face(self) -> None:
        backend = self.backend
        info = backend.info()
        result = self._embed_ok(backend, self.images["face"], "a real face")
        emb = result.embedding
        assert emb is not None and isinstance(emb, np.ndarray), "status 'ok' without an embedding array"
        assert emb.dtype == np.float32, f"embedding dtype is {emb.dtype}, expected float32"
        assert emb.shape == (info.dim,), f"embedding shape is {emb.shape}, expected ({info.dim},) from info().dim"
        assert np.all(np.isfinite(emb)), "the embedding has NaN or infinite values"
        assert float(np.linalg.norm(emb)) > 0.0, "the embedding is all zeros"
        assert result.n_faces >= 1, f"status 'ok' but n_faces is {result.n_faces}"

    def check_deterministic(self) -> None:
        backend = self.backend
        first = self._embed_ok(backend, self.images["face"], "first embedding")
        second = self._embed_ok(backend, self.images["face"], "second embedding")
        self._assert_same(first, second, "the same image embedded twice")

    def check_bad_images(self) -> None:
        backend = self.backend
        bad = self._bad_images()
        expected = {"empty": FaceStatus.UNREADABLE, "truncated": FaceStatus.UNREADABLE, "flat": FaceStatus.NO_FACE}
        for key, status in expected.items():
            try:
                result = backend.embed_path(bad[key])
            except Exception as exc:  # the contract: a problem with one image never raises
                raise AssertionError(
                    f"embed_path raised {type(exc).__name__} for the {key} image {bad[key]} instead of returning "
                    f"status {status.value!r}: {exc}"
                ) from exc
            assert result.status is status, f"{key} image {bad[key].name}: expected status {status.value!r}, got {_describe(result)}"
            assert result.embedding is None, f"{key} image: a failure status must not carry an embedding"
        for label, array in (("a 2-D array", np.zeros((64, 64), np.uint8)), ("a float array", np.zeros((64, 64, 3), np.float32))):
            try:
                result = backend.embed(array)
            except Exception as exc:
                raise AssertionError(f"embed raised {type(exc).__name__} for {label} instead of returning a status: {exc}") from exc
            assert result.status is not FaceStatus.OK, f"embed of {label} returned status 'ok'"

    def check_pickle(self) -> None:
        expected = self._embed_ok(self.backend, self.images["face"], "the original")
        before = pickle.loads(pickle.dumps(self.factory()))
        self._assert_same(self._embed_ok(before, self.images["face"], "a copy pickled before load()"), expected,
                          "a copy pickled before load() vs the original")  # fmt: skip
        after = pickle.loads(pickle.dumps(self.backend))
        self._assert_same(self._embed_ok(after, self.images["face"], "a copy pickled after load()"), expected,
                          "a copy pickled after load() vs the original")  # fmt: skip

    def check_batch_order(self) -> None:
        bad = self._bad_images()
        paths = [self.images["face"], bad["flat"], self.images["other_person"], bad["empty"]]
        if "same_person" in self.images:
            paths.append(self.images["same_person"])
        forward = {p: self.backend.embed_path(p) for p in paths}
        fresh = self.factory()
        backward = {p: fresh.embed_path(p) for p in reversed(paths)}
        shuffled_order = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]
        shuffled = {p: self.backend.embed_path(p) for p in shuffled_order}
        for p in paths:
            self._assert_same(forward[p], backward[p], f"{p.name} embedded first-to-last vs last-to-first by a fresh instance")
            self._assert_same(forward[p], shuffled[p], f"{p.name} embedded in two orders by one instance")

    def check_exif_rotation(self) -> None:
        from PIL import Image

        backend = self.backend
        info = backend.info()
        with Image.open(self.images["face"]) as im:
            face = np.asarray(im.convert("RGB"))
        upright_path = self.workdir / "upright.jpg"
        Image.fromarray(face).save(upright_path, quality=95)
        rotated_path = self.workdir / "exif_rotated.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6  # stored rotated 90 degrees counter-clockwise: "rotate 90 clockwise to view"
        Image.fromarray(np.ascontiguousarray(np.rot90(face, k=1))).save(rotated_path, exif=exif.tobytes(), quality=95)
        upright = self._embed_ok(backend, upright_path, "the upright JPEG")
        rotated = self._embed_ok(backend, rotated_path, "a JPEG stored sideways with EXIF orientation 6")
        other = self._embed_ok(backend, self.images["other_person"], "the other person")
        to_rotated = _similarity(info, upright.embedding, rotated.embedding)
        to_other = _similarity(info, upright.embedding, other.embedding)
        assert to_rotated > to_other, (
            f"the EXIF-rotated copy of a face is less similar to the upright photo ({to_rotated:.4f}) than another "
            f"person is ({to_other:.4f}): the EXIF orientation was not applied (read images with audit.images.read_rgb)"
        )

    def check_mated_closer(self) -> None:
        if "same_person" not in self.images:
            return
        backend = self.backend
        info = backend.info()
        face = self._embed_ok(backend, self.images["face"], "the face")
        same = self._embed_ok(backend, self.images["same_person"], "another photo of the same person")
        other = self._embed_ok(backend, self.images["other_person"], "another person")
        mated = _similarity(info, face.embedding, same.embedding)
        impostor = _similarity(info, face.embedding, other.embedding)
        assert mated > impostor, (
            f"the same person is less similar ({mated:.4f}) than another person ({impostor:.4f}) in the backend's "
            f"{info.metric} metric: check the colour order (embed receives RGB) and the alignment"
        )

    # ------------------------------------------------------------------ running

    def run(self, check: str) -> None:
        """Run one check by name (one of :data:`CHECKS`); raises AssertionError when it fails."""
        if check not in CHECKS:
            raise KeyError(f"unknown check {check!r}; the checks are {', '.join(CHECKS)}")
        getattr(self, f"check_{check}")()

    def run_all(self) -> None:
        """Run every check in :data:`CHECKS` order; the first failure raises AssertionError."""
        for check in CHECKS:
            self.run(check)


def check_backend(
    backend_factory: Callable[..., Backend],
    *,
    images: Mapping[str, str | os.PathLike[str]] | None = None,
    tmp_path: str | os.PathLike[str] | None = None,
    alternative_options: Mapping[str, Any] | None = None,
    atol: float = 0.0,
) -> None:
    """Run every conformance check on a backend; raise AssertionError at the first failure.

    Parameters are those of :class:`ConformanceKit`. Returns None when the backend conforms.

    Examples
    --------
    >>> from audit.testing import check_backend
    >>> from audit.backends.opencv_sface import OpenCVSFaceBackend
    >>> check_backend(OpenCVSFaceBackend, alternative_options={"score_threshold": 0.8})  # doctest: +SKIP
    """
    ConformanceKit(
        backend_factory, images=images, tmp_path=tmp_path, alternative_options=alternative_options, atol=atol
    ).run_all()
