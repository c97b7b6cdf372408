"""Stage 4: follow one face through a segment with the inference face path, and reject frames the official data
pipeline would reject (no face, a face too small or oddly shaped) or, beyond it, a second face of comparable size.

The follower is new for every segment, so each segment chooses its own (largest) face, as the official per-clip
alignment does. It scans the whole frame every REDETECT_EVERY frames (2 s) and after a lost face; the second-face
check runs on those frames, the only ones where all faces are looked for. In between, it looks for the face around
its last box every CONFIRM_EVERY frames and otherwise only fits the landmarks to the followed box, so a face that is
gone for that many frames is noticed (the segment is dropped). On the 1080p demo clips this keeps the anchors of a
whole-frame detection in every frame as closely as inference's default following (a face search in every frame)
does, for about a third of its CPU time (benchmarks/preprocess.py).
"""

from __future__ import annotations

import numpy as np

from latentsync.faces import Face, LandmarkDetector
from latentsync.faces.track import FaceFollower

from ..settings import Settings

REDETECT_EVERY = 50
CONFIRM_EVERY = 5


class FaceCheck:
    """Per frame of one segment: the face to align, or the reason the segment must go."""

    def __init__(self, detector: LandmarkDetector, settings: Settings) -> None:
        self.follower = FaceFollower(detector, redetect_every=REDETECT_EVERY, confirm_every=CONFIRM_EVERY)
        self.settings = settings

    def __call__(self, frame: np.ndarray) -> Face | str:
        face = self.follower(frame)
        if face is None:
            return "no face"
        s = self.settings
        x1, y1, x2, y2 = face.box.astype(np.int_).tolist()
        width, height = x2 - x1, y2 - y1
        if width < s.min_face_width or height < s.min_face_height:
            return f"face too small ({width}x{height} px, under {s.min_face_width}x{s.min_face_height})"
        if not s.min_face_aspect <= width / height <= s.max_face_aspect:
            return f"face shape out of range (width/height {width / height:.2f})"
        if s.second_face_ratio > 0 and self.follower.faces:
            others = [other.area for other in self.follower.faces if other is not face]
            if others and max(others) >= s.second_face_ratio * face.area:
                return f"second face ({max(others) / face.area:.0%} of the chosen face's area)"
        return face
