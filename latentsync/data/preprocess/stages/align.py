"""Stage 5: warp each frame of a segment to the R x R face crop with the inference alignment, then encode the clip
once (H.264, `Settings.crf`, a keyframe every `Settings.keyint` frames) with its 16 kHz audio.

The aligner is new for every segment: its smoothing state starts afresh at each clip (the official code carries it
over from whatever clip the worker handled before).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync.faces import Face, FaceAligner, crop_face
from latentsync.media import VideoWriter

from ..settings import FPS, SAMPLE_RATE, Settings

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


class SegmentCrops:
    """The aligned crops of one segment, kept until the segment is known to be complete and usable."""

    def __init__(self, settings: Settings) -> None:
        self.aligner = FaceAligner(settings.resolution)
        self.settings = settings
        self.crops: list[np.ndarray] = []

    def add(self, frame: np.ndarray, face: Face) -> None:
        self.crops.append(crop_face(frame, self.aligner.matrix(face.anchors()), self.settings.resolution))

    def encode(self, path: Path, audio: np.ndarray, start: int) -> None:
        """Write the clip to `path` (it appears only when complete) with the audio of its frames."""
        size = self.settings.resolution
        samples = audio[start * SAMPLES_PER_FRAME : (start + len(self.crops)) * SAMPLES_PER_FRAME]
        path.parent.mkdir(parents=True, exist_ok=True)
        with VideoWriter(
            path,
            size,
            size,
            fps=FPS,
            audio=samples,
            sample_rate=SAMPLE_RATE,
            crf=self.settings.crf,
            keyint=self.settings.keyint,
        ) as writer:
            for crop in self.crops:
                writer.write(crop)
