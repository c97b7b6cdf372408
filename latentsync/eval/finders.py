"""Which face finder builds the sync-scoring tracks: S3FD as published, or the project's own landmark finder.

S3FD (`sfd_face.pth`) is what the official numbers use. Without it the project's landmark backends (dlib by default)
give the boxes; their boxes are tighter than S3FD's, so the crops and hence the numbers differ from the published
kind, and a warning says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latentsync.faces.landmarks import BACKENDS, LandmarkDetector

from .tracks import FACE_DETECT_SCALE, FACE_THRESHOLD, BoxFinder

logger = logging.getLogger(__name__)

S3FD_FILE = "sfd_face.pth"
FINDERS = ("auto", "s3fd", *BACKENDS)


def s3fd_finder(weights: str | Path, device: str | None = None) -> BoxFinder:
    from latentsync.models.auxiliary.s3fd import S3FD

    detector = S3FD.load(weights, device)

    def find(frames: list[np.ndarray]) -> list[np.ndarray]:
        return detector.detect(frames, FACE_DETECT_SCALE, FACE_THRESHOLD)

    return find


def landmark_finder(detector: LandmarkDetector) -> BoxFinder:
    def find(frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame in frames:
            faces = detector.detect(frame)
            out.append(np.array([[*f.box, f.score] for f in faces], dtype=np.float64).reshape(-1, 5))
        return out

    return find


def box_finder(
    name: str, auxiliary: Path, require_s3fd: Callable[[Path], Path], device: str | None = None
) -> tuple[BoxFinder, str]:
    """(The finder called `name`, its name); "auto" is S3FD when its weights are in `auxiliary`, else dlib with a
    warning.

    `require_s3fd(path)` returns the path or raises the error naming the file and the command that fetches it.
    """
    weights = auxiliary / S3FD_FILE
    if name == "auto":
        if weights.is_file():
            name = "s3fd"
        else:
            logger.warning(
                "%s not found in %s: face tracks come from the dlib landmark finder, so the numbers are not the "
                "published kind (fetch it with `latentsync download --with-training`)",
                S3FD_FILE,
                auxiliary,
            )
            name = "dlib"
    if name == "s3fd":
        return s3fd_finder(require_s3fd(weights), device), "S3FD"
    from latentsync.faces import create_detector

    if name != "dlib":
        logger.warning("face tracks from the %s landmark finder: the numbers are not the published (S3FD) kind", name)
    return landmark_finder(create_detector(name, device=device)), name
