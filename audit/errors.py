"""The package's own exception classes.

Every message says what was expected, what was found, and how to fix it. Each class also
subclasses the matching built-in so that callers who catch ``ValueError`` or ``ImportError``
keep working.
"""

from __future__ import annotations

__all__ = [
    "FaceAuditError",
    "ConfigError",
    "ManifestError",
    "DatasetError",
    "ChecksumError",
    "BackendError",
    "MissingDependencyError",
    "MissingWeightsError",
    "UnreadableImageError",
    "MetricError",
    "ResultsError",
    "DataError",
]


class FaceAuditError(Exception):
    """Base class of every error face-audit raises on purpose."""


class ConfigError(FaceAuditError, ValueError):
    """An audit config (TOML) is missing a field or has a bad value. The message names file and field."""


class ManifestError(FaceAuditError, ValueError):
    """A dataset manifest is malformed, or the data it describes do not match it."""


class DatasetError(FaceAuditError, FileNotFoundError):
    """A dataset's files cannot be found or fetched."""


class ChecksumError(ManifestError):
    """A file's sha256 differs from the one its manifest records."""


class BackendError(FaceAuditError, RuntimeError):
    """A recognition backend cannot be created, loaded or run."""


class MissingDependencyError(BackendError, ImportError):
    """An optional dependency (an extra) is not installed. The message names the extra."""


class MissingWeightsError(BackendError, FileNotFoundError):
    """A model's weight file is absent. The message names the file, the folder and where to get it."""


class UnreadableImageError(FaceAuditError, ValueError):
    """Image bytes cannot be decoded. Raised by the image reader; backends turn it into a status."""


class MetricError(FaceAuditError, ValueError):
    """A metric got inputs it cannot use (wrong shape, NaN scores, a target outside (0, 1])."""


class ResultsError(FaceAuditError, ValueError):
    """A results file does not follow the results schema."""


class DataError(FaceAuditError, ValueError):
    """A scores, embeddings or samples file has a bad row or column. The message names file, row and column."""
