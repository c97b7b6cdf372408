"""Every threshold of data preparation, with the official values as defaults, and the fingerprints that decide
which stages a changed setting must redo."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from latentsync.errors import InvalidArgumentError

FPS = 25
SAMPLE_RATE = 16000
RESOLUTIONS = (256, 512)
FACE_SMOOTHING = ("steady", "official")
# Settings of stage 5 alone (alignment and encoding): a change redoes the warp from the stored anchors, not the search.
ALIGN_KEYS = ("resolution", "face_smoothing", "crf", "keyint")


@dataclass(frozen=True)
class Settings:
    """Thresholds of stages 2-7 (see README, "Data preparation").

    The CRF: 18, not the official 23. x264 at 18 is commonly treated as visually transparent, and the clips are
    encoded once and read for days, so the ~1.6x larger files buy teeth and lip edges that CRF 23 smears; the official
    code meant to keep more (its intermediate file is CRF 13) but its final mux falls back to 23.
    A keyframe every 25 frames lets a trainer's random 16-frame read decode at most 40 frames.

    `face_smoothing`: "steady" steadies each segment's anchors before the alignment as inference does by default
    (`faces.smooth.steady_anchors`), so training clips and inference crops are made the same way; "official"
    aligns frame by frame as the official data pipeline did.
    """

    resolution: int = 256
    shot_threshold: float = 2.0  # PySceneDetect adaptive detector, official value (library default 3.0)
    shot_min_frames: int = 15  # PySceneDetect's minimum scene length, 0.6 s
    segment_frames: int = 125  # 5 s segments, as the official ffmpeg segmenter cuts
    min_segment_frames: int = 51  # the official sync filter needs a face track of more than 50 frames
    min_face_width: int = 50  # official: faces under 50 x 80 px are not considered (dlib finds none that small)
    min_face_height: int = 80
    min_face_aspect: float = 0.2  # official width / height range
    max_face_aspect: float = 1.5
    second_face_ratio: float = 0.5  # drop when another face has this share of the chosen face's area (0: never)
    landmarks: str = "dlib"
    face_smoothing: str = "steady"
    crf: int = 18
    keyint: int = 25
    sync_min_conf: float = 3.0
    sync_max_offset: int = 6
    quality_min: float = 40.0

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise InvalidArgumentError(f"--resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.face_smoothing not in FACE_SMOOTHING:
            raise InvalidArgumentError(f"--face-smoothing must be one of {FACE_SMOOTHING}, got {self.face_smoothing!r}")
        if self.min_segment_frames > self.segment_frames:
            raise InvalidArgumentError("min_segment_frames cannot exceed segment_frames")

    def fingerprint(self, stage: str) -> str:
        """A short hash of the settings a stage group depends on: "prepare" (stages 1-5), "faces" (stages 1-4: the
        segments and their face anchors), "sync" or "quality"."""
        values = asdict(self)
        keys = {
            "sync": ("sync_min_conf", "sync_max_offset"),
            "quality": ("quality_min",),
        }.get(stage)
        if keys is None:
            keys = tuple(k for k in values if not k.startswith(("sync_", "quality_")))
        if stage == "faces":
            keys = tuple(k for k in keys if k not in ALIGN_KEYS)
        text = json.dumps({k: values[k] for k in keys}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]
