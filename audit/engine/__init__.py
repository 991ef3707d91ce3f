"""How work is spread: a local process pool now, a distributed engine later."""

from .local import EmbedStats, default_workers, embed_missing

__all__ = ["EmbedStats", "default_workers", "embed_missing"]
