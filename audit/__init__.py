"""face-audit: measure how a face recognition system's errors differ across demographic groups."""

__version__ = "0.1.0"
