"""The config reading every audit kind shares: TOML files read safely, the sections all of them have
([dataset], [backend], [thresholds], [run]) as typed objects, and the field readers whose errors
name the file and the field.

The 1:1 audit config (and its sections) is :mod:`audit.verification.config`; the 1:N, classifier,
skin-tone and mitigation configs build on it (:mod:`audit.identification.config`, ...).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError




@dataclass(frozen=True)
class DatasetConfig:
    name: str
    manifest: Path | None = None
    data_dir: Path | None = None
    groupings: tuple[tuple[str, ...], ...] | None = None
    subjects: int | None = None
    huggingface: str | None = None
    hf_groups: Mapping[str, Any] | None = None
    hf_subject_column: str = "subject"
    hf_split: str = "train"
    hf_revision: str | None = None
    labels: Path | None = None  # extra label columns (audit.labelfile), e.g. a skin-tone bin per person
    balance: tuple[str, ...] | None = None  # with subjects: sample people evenly over these columns' cells


@dataclass(frozen=True)
class BackendConfig:
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ThresholdConfig:
    target_fmr: tuple[float, ...] = (1e-2, 1e-3)
    fixed: tuple[float, ...] = ()
    backend_default: bool = True


@dataclass(frozen=True)
class RunConfig:
    """How a run is carried out, and how its uncertainty is computed.

    ``bootstrap``: people-level bootstrap replicates (0 turns the bootstrap off). ``interval``: each
    rate's 95% interval, ``"wilson"`` (default) or ``"clopper-pearson"`` (exact, wider; the
    config also accepts ``"clopper_pearson"``).
    """

    workers: int | None = None
    batch_size: int = 8
    seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True
    bootstrap: int = 1000
    interval: str = "wilson"


#: Accepted spellings of ``[run] interval`` -> the method name used in results.
INTERVALS = {"wilson": "wilson", "clopper-pearson": "clopper-pearson", "clopper_pearson": "clopper-pearson"}


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad TOML is a ConfigError naming the file."""
    try:
        if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes is too large for an audit config")
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config file {path} is a folder; give the path of a TOML config file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); a config is a TOML file") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to be an audit config") from exc


def field_readers(raw: Mapping[str, Any], allowed: Mapping[str, set], *, path: Path | None = None, base: Path | None = None):
    """The three helpers every config reader uses, for one parsed TOML file:

    ``err(field, message)`` -> a ConfigError naming the file and the field; ``table(name)`` -> the
    ``[name]`` table (empty when absent), refusing a non-table and keys outside ``allowed[name]``;
    ``rel(value, field)`` -> a path string resolved against ``base`` (default: the file's folder).
    Top-level keys outside ``allowed[""]`` are refused at once."""
    src = str(path) if path else "<config>"
    base = base or (path.parent if path else Path.cwd())

    def err(fld: str, msg: str) -> ConfigError:
        return ConfigError(f"{src}: field '{fld}': {msg}")

    def table(name: str) -> Mapping[str, Any]:
        val = raw.get(name, {})
        if not isinstance(val, Mapping):
            raise err(name, f"expected a table [{name}], found {type(val).__name__}")
        unknown = set(val) - allowed[name]
        if unknown:
            raise err(f"{name}.{sorted(unknown)[0]}", f"unknown key; allowed keys are {sorted(allowed[name])}")
        return val

    def rel(p: Any, fld: str) -> Path:
        if not isinstance(p, str):
            raise err(fld, f"expected a path string, found {p!r}")
        q = Path(p).expanduser()
        return q if q.is_absolute() else (base / q).resolve()

    unknown = set(raw) - allowed[""]
    if unknown:
        raise err(sorted(unknown)[0], f"unknown key; allowed top-level keys are {sorted(allowed[''])}")
    return err, table, rel


#: Configs larger than this are refused before parsing.
MAX_CONFIG_BYTES = 1 << 20
#: Upper bounds of numeric fields: beyond these a run would not finish (or exhaust memory).
MAX_VALUES = {
    "run.workers": 1024,
    "run.batch_size": 100_000,
    "run.bootstrap": 100_000,
    "dataset.subjects": 100_000_000,
    "protocol.sample_impostors": 10_000_000_000,
}


def _pos_int(err):
    def pos_int(v: Any, fld: str, minimum: int = 1) -> int:
        top = MAX_VALUES.get(fld)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (top is not None and v > top):
            within = f"from {minimum} to {top:,}" if top is not None else f">= {minimum}"
            raise err(fld, f"expected an integer {within}, found {v!r}")
        return v

    return pos_int


# ------------------------------------------------------------------------------------------------
# [engine]: how work is spread (audit/engine/select.py uses it); shared by every audit kind

ENGINE_KEYS = {"kind", "address", "device", "gpus_per_worker", "recognition", "recognition_batch"}


@dataclass(frozen=True)
class EngineConfig:
    """``[engine]``: ``kind`` ("local" | "ray"), ``address`` of a Ray cluster (None: a local Ray
    instance), ``device`` of the scan's matrix products and of the backends' ONNX recognition step
    ("cpu" | "auto" | "cuda"), ``gpus_per_worker`` of embedding actors (None: shared out when the
    cluster has GPUs), ``recognition`` ("native": each backend's own path; "batched": the
    recognition step on batches of aligned faces through onnxruntime, on ``device``; None:
    "batched" when ``device`` is "auto" or "cuda", else "native") and ``recognition_batch`` (faces
    per onnxruntime run)."""

    kind: str = "local"
    address: str | None = None
    device: str = "cpu"
    gpus_per_worker: float | None = None
    recognition: str | None = None
    recognition_batch: int = 64

    @property
    def recognition_device(self) -> str | None:
        """The device of the batched recognition path, or None for each backend's own path."""
        batched = self.recognition == "batched" or (self.recognition is None and self.device != "cpu")
        return self.device if batched else None


def engine_section(table, err) -> EngineConfig:
    """Validate ``[engine]`` with a config reader's ``table``/``err`` (see :func:`field_readers`)."""
    t = table("engine")
    kind = t.get("kind", "local")
    if kind not in ("local", "ray"):
        raise err("engine.kind", f"expected \"local\" or \"ray\", found {kind!r}")
    address = t.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise err("engine.address", f"expected a Ray address such as \"auto\" or \"host:6379\", found {address!r}")
    if address is not None and kind != "ray":
        raise err("engine.address", "only used with kind = \"ray\"; set engine.kind = \"ray\" or drop it")
    device = t.get("device", "cpu")
    if device not in ("cpu", "auto", "cuda"):
        raise err("engine.device", f"expected \"cpu\", \"auto\" or \"cuda\", found {device!r}")
    gpw = t.get("gpus_per_worker")
    if gpw is not None and (isinstance(gpw, bool) or not isinstance(gpw, (int, float)) or not 0 <= gpw <= 8):
        raise err("engine.gpus_per_worker", f"expected a number from 0 to 8 (0.5: two actors per GPU), found {gpw!r}")
    rec = t.get("recognition")
    if rec is not None and rec not in ("native", "batched"):
        raise err("engine.recognition", f"expected \"native\" or \"batched\", found {rec!r}")
    rb = t.get("recognition_batch", 64)
    if isinstance(rb, bool) or not isinstance(rb, int) or not 1 <= rb <= 65536:
        raise err("engine.recognition_batch", f"expected an integer from 1 to 65536 (faces per onnxruntime run), found {rb!r}")
    return EngineConfig(kind, address, device, None if gpw is None else float(gpw), rec, rb)
