"""A deterministic backend for engine and pipeline tests: the embedding is the mean colour of
4 image quadrants (12-D). It decodes real files through the same reader as real backends."""

from __future__ import annotations

import os

import numpy as np

from audit.backends.base import Backend, BackendInfo, FaceResult, FaceStatus


class QuadrantColourBackend(Backend):
    name = "quadrant-colour"

    def __init__(self, *, fail_below: float = -1.0, sleep: float = 0.0) -> None:
        self.fail_below = fail_below
        self.sleep = sleep
        self.loaded_in: int | None = None

    def load(self) -> None:
        self.loaded_in = os.getpid()

    def info(self) -> BackendInfo:
        return BackendInfo("quadrant-colour", "q4", "1", "0" * 64, 12, "cosine", options={"fail_below": self.fail_below})

    def embed(self, image: np.ndarray) -> FaceResult:
        if self.sleep:
            import time

            time.sleep(self.sleep)
        h, w, _ = image.shape
        quads = [image[:h // 2, :w // 2], image[:h // 2, w // 2:], image[h // 2:, :w // 2], image[h // 2:, w // 2:]]
        vec = np.concatenate([q.reshape(-1, 3).mean(0) for q in quads]) / 255.0
        if vec.mean() < self.fail_below:
            return FaceResult(FaceStatus.NO_FACE, detail="too dark")
        return FaceResult(FaceStatus.OK, vec, n_faces=1)
