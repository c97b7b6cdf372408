"""Stage 7: the visual quality filter. The official rule scores the first, middle and last frames of the aligned
clip with HyperIQA (`koniq_pretrained.pkl`, centre 224 crop) and keeps the clip when their mean is 40 or more.

The score is stored in the manifest, so a changed threshold is decided again without scoring again. Without the
weight file the stage is skipped with a warning, and the manifest says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latentsync.media import VideoReader

from ..settings import FPS

WEIGHTS = "koniq_pretrained.pkl"
FETCH = "latentsync download --with-training"


def load_scorer(path: Path, device: str | None = None) -> Any:
    """A callable (N, H, W, 3) uint8 RGB frames -> the official clip score, with HyperIQA's weights at `path`."""
    from functools import partial

    from latentsync.models.auxiliary.hyperiqa import HyperIQA, score_frames
    from latentsync.runtime import pick_device

    return partial(score_frames, HyperIQA.from_file(path, pick_device(device)))


def sampled_frames(clip: Path) -> np.ndarray:
    """The clip's first, middle and last frames (3, H, W, 3), as the official filter picks them."""
    frames = list(VideoReader(clip, fps=FPS, read_ahead=0))
    if not frames:
        raise ValueError(f"{clip}: no frames to score")
    return np.stack([frames[0], frames[len(frames) // 2], frames[-1]])


class QualityFilter:
    """Scores clips with HyperIQA, loading it once per process on first use."""

    def __init__(self, auxiliary: Path, device: str | None = None) -> None:
        self.weights = auxiliary / WEIGHTS
        self.device = device
        self._scorer: Any = None

    @property
    def skipped(self) -> str | None:
        """Why the stage cannot run here, or None."""
        if not self.weights.is_file():
            return f"{WEIGHTS} not found in {self.weights.parent}"
        return None

    @property
    def warning(self) -> str | None:
        """The skip reason as a user reads it: with the command that fetches a missing file."""
        why = self.skipped
        return f"{why}; fetch it with `{FETCH}`" if why else None

    def score(self, clip: Path) -> dict[str, Any]:
        """{"score"} of the clip (0-100, higher is better), or {"skipped": why}."""
        if (why := self.skipped) is not None:
            return {"skipped": why}
        if self._scorer is None:
            self._scorer = load_scorer(self.weights, self.device)
        return {"score": float(self._scorer(sampled_frames(clip)))}
