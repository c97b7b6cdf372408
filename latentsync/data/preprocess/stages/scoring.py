"""What the two model-scored filters (sync, quality) share: a weight file in the auxiliary folder, a skip with the
file's name and the command that fetches it when it is absent, and where the scoring runs.

A stage scores either here, in this process (its model loaded on first use and kept), or through a long-lived
scorer that holds the models for many workers (a scoring process per GPU, a Ray actor; see `..scorers`). Which
one is a property of the worker process, set once when it starts (`score_through`), like its thread count: the
stages' callers (`video.judge`) do not change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

FETCH = "latentsync download --with-training"
log = logging.getLogger(__name__)


class Route(Protocol):
    """A long-lived scorer as a worker sees it: the scores of stage `name` for the aligned clip at `clip`."""

    def __call__(self, name: str, clip: Path) -> dict[str, Any]: ...


_route: Route | None = None


def score_through(route: Route | None) -> None:
    """Send this process's clips to `route` from now on (None: score here, loading the models in this process)."""
    global _route
    _route = route


class ScoringStage:
    """A filter stage scoring clips with the model of `auxiliary / WEIGHTS`; subclasses say how to load and score."""

    NAME: str  # the manifest key of its scores
    WEIGHTS: str

    def __init__(self, auxiliary: Path, device: str | None = None) -> None:
        self.weights = auxiliary / self.WEIGHTS
        self.device = device
        self.loads = 0  # times this stage loaded its model (once per process, or per scorer)
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
        """The clip's scores for the manifest, or {"skipped": why}: from the process's scorer when it has one."""
        if (why := self.skipped) is not None:
            return {"skipped": why}
        if _route is not None:
            return _route(self.NAME, clip)
        return self.score_here(clip)

    def score_here(self, clip: Path) -> dict[str, Any]:
        """The clip's scores computed in this process, the model loaded on the first call."""
        if self._scorer is None:
            self._scorer = self.load(self.weights, self.device)
            self.loads += 1
            log.info("loaded the %s model %s (%s)", self.NAME, self.weights.name, self.device or "default device")
        return self.measure(self._scorer, clip)

    def load(self, path: Path, device: str | None) -> Any:
        raise NotImplementedError

    def measure(self, scorer: Any, clip: Path) -> dict[str, Any]:
        raise NotImplementedError
