"""What the two model-scored filters (sync, quality) share: a weight file in the auxiliary folder, the model loaded
once per process on first use, and a skip with the file's name and the command that fetches it when it is absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FETCH = "latentsync download --with-training"


class ScoringStage:
    """A filter stage scoring clips with the model of `auxiliary / WEIGHTS`; subclasses say how to load and score."""

    WEIGHTS: str

    def __init__(self, auxiliary: Path, device: str | None = None) -> None:
        self.weights = auxiliary / self.WEIGHTS
        self.device = device
        self._scorer: Any = None

    @property
    def skipped(self) -> str | None:
        """Why the stage cannot run here, or None."""
        if not self.weights.is_file():
            return f"{self.WEIGHTS} not found in {self.weights.parent}"
        return None

    @property
    def warning(self) -> str | None:
        """The skip reason as a user reads it: with the command that fetches a missing file."""
        why = self.skipped
        return f"{why}; fetch it with `{FETCH}`" if why else None

    def score(self, clip: Path) -> dict[str, Any]:
        """The clip's scores for the manifest, or {"skipped": why}."""
        if (why := self.skipped) is not None:
            return {"skipped": why}
        if self._scorer is None:
            self._scorer = self.load(self.weights, self.device)
        return self.measure(self._scorer, clip)

    def load(self, path: Path, device: str | None) -> Any:
        raise NotImplementedError

    def measure(self, scorer: Any, clip: Path) -> dict[str, Any]:
        raise NotImplementedError
