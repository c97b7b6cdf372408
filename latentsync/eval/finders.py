"""Which face finder builds the sync-scoring tracks: S3FD as published, or the project's own landmark finder.

S3FD (`sfd_face.pth`) is what the official numbers use. Without it the project's landmark backends (dlib by default)
give the boxes, drawn around each face's landmarks; they are tighter than S3FD's, so the crops and hence the numbers
differ from the published kind, and a warning says so.
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


# The landmark finder's box is drawn around the landmarks at the size and place of dlib's own box on average
# (measured on the demo clips: a side 1.05 times the landmarks' larger extent, its centre 0.08 of a side above
# theirs). dlib's box jumps between the sizes of its image pyramid from one frame to the next, so two consecutive
# boxes of one face can overlap by less than the tracker's IoU 0.5 (demo3, frame 489: 0.49) and cut the track in
# two; the landmarks move by a pixel or two.
LANDMARK_BOX_SCALE = 1.05
LANDMARK_BOX_RAISE = 0.08


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """x1, y1, x2, y2 of the square box around a face's landmarks (see LANDMARK_BOX_SCALE)."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    side = LANDMARK_BOX_SCALE * float((high - low).max())
    cx, cy = (low + high) / 2
    cy -= LANDMARK_BOX_RAISE * side
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float64)


def landmark_finder(detector: LandmarkDetector) -> BoxFinder:
    """Boxes from the project's landmark backends, drawn around each face's landmarks (steadier than the finder's)."""

    def find(frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame in frames:
            faces = detector.detect(frame)
            out.append(
                np.array([[*landmark_box(f.landmarks), f.score] for f in faces], dtype=np.float64).reshape(-1, 5)
            )
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
