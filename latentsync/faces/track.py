"""The analysis pass: find the face in every frame and fix its alignment matrix, before any diffusion runs.

Only a (2, 3) matrix per frame is kept, so a long video costs a few bytes per frame here. Smoothing runs over
the frames in display order, as the official pipeline does, whatever order the frames are later played in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from latentsync.errors import LatentSyncError

from .align import FaceAligner
from .landmarks import LandmarkDetector, select_face


class NoFaceError(LatentSyncError, ValueError):
    """No usable face in any frame of the video."""


@dataclass
class FaceTrack:
    """Per source frame: whether a face was found and the frame-to-crop matrix (NaN where none)."""

    matrices: np.ndarray  # (n, 2, 3) float64
    found: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.found)

    @property
    def faces_found(self) -> int:
        return int(self.found.sum())


def track_faces(
    frames: Iterable[np.ndarray],
    detector: LandmarkDetector,
    resolution: int,
    index: int | None = None,
    at: tuple[float, float] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> FaceTrack:
    """Detect, select and align the face of each frame; stop after `limit` frames if given.

    `index`/`at` choose among several faces as `select_face` does (default: the largest).
    Raises NoFaceError when no frame has a face.
    """
    aligner = FaceAligner(resolution)
    matrices: list[np.ndarray] = []
    found: list[bool] = []
    nan = np.full((2, 3), np.nan)
    bar = tqdm(total=limit, desc="Finding faces", unit="frame", disable=not progress)
    for frame in frames:
        face = select_face(detector.detect(frame), index=index, at=at)
        found.append(face is not None)
        matrices.append(aligner.matrix(face.anchors()) if face is not None else nan)
        bar.update()
        if limit is not None and len(found) >= limit:
            break
    bar.close()
    track = FaceTrack(np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3), np.asarray(found, dtype=bool))
    if track.faces_found == 0:
        where = "" if index is None and at is None else " matching --face-index/--face-at"
        raise NoFaceError(f"no face{where} found in any of the {len(track)} frames of the video")
    return track
