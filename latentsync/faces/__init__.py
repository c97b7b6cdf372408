"""Face finding and landmarks for the lip-sync pipeline."""

from .landmarks import (
    BACKENDS,
    BackendUnavailableError,
    Face,
    InvalidFrameError,
    LandmarkDetector,
    create_detector,
    select_face,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "Face",
    "InvalidFrameError",
    "LandmarkDetector",
    "create_detector",
    "select_face",
]
