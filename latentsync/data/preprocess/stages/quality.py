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
from .scoring import ScoringStage

WEIGHTS = "koniq_pretrained.pkl"


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


class QualityFilter(ScoringStage):
    """Scores clips with HyperIQA."""

    NAME = "quality"
    WEIGHTS = WEIGHTS

    def load(self, path: Path, device: str | None) -> Any:
        return load_scorer(path, device)

    def measure(self, scorer: Any, clip: Path) -> dict[str, Any]:
        """{"score"} of the clip (0-100, higher is better)."""
        return {"score": float(scorer(sampled_frames(clip)))}
