"""Stage 7: the visual quality filter. The official rule scores the first, middle and last frames (centre 224
crop) with HyperIQA (`koniq_pretrained.pkl`) and keeps the clip at a mean of 40 or more.

The HyperIQA network is not part of latentsync yet, so this stage is always skipped with a warning that says why
(the weight file's absence first, as that is what a user can act on); the manifest records the skip, and the day
the scorer exists, clips are scored on the next run without being prepared again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTS = "koniq_pretrained.pkl"
FETCH = "latentsync download --with-training"


class QualityFilter:
    def __init__(self, auxiliary: Path) -> None:
        self.weights = auxiliary / WEIGHTS

    @property
    def skipped(self) -> str:
        if not self.weights.is_file():
            return f"{WEIGHTS} not found in {self.weights.parent}"
        return "the HyperIQA scorer is not implemented in this version of latentsync"

    @property
    def warning(self) -> str | None:
        """The skip reason as a user reads it: with the command that fetches a missing file."""
        why = self.skipped
        return f"{why}; fetch it with `{FETCH}`" if why and not self.weights.is_file() else why

    def score(self, clip: Path) -> dict[str, Any]:
        return {"skipped": self.skipped}
