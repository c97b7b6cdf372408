"""Face tracks for sync scoring, built as the official evaluation builds them (eval/syncnet_detect.py):

1. faces detected in every 25 fps frame (S3FD at scale 0.25, score > 0.9, or another box finder);
2. shots split by PySceneDetect's ContentDetector with its defaults; shots under `min_track` frames are skipped;
3. per shot, greedy tracks: a face joins a track when its box overlaps the track's last one by IoU > 0.5 within
   25 frames; tracks of more than `min_track` detections are kept, their boxes linearly interpolated, and dropped
   unless their mean width or height exceeds 100 px;
4. the crop: box half-size and centre median-filtered (kernel 13); rows from centre - s to centre + 1.8 s, columns
   centre +- 1.4 s, outside the frame filled with grey 110, resized to 224 px (bilinear).

The frames come from lse.py: through the official pipeline's re-encode and JPEG dumps (roundtrip.py), or decoded
once with `--fast-decode`. Detection runs on batches of frames instead of one frame at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from latentsync.faces.geometry import box_iou

FACE_DETECT_SCALE = 0.25
FACE_THRESHOLD = 0.9
MIN_TRACK = 50
MAX_GAP = 25  # frames a track may go without a detection
TRACK_IOU = 0.5
MIN_FACE_SIZE = 100
SMOOTHING = 13  # median filter kernel over the crop centre and size
CROP_MARGIN = 0.4
FILL = 110
CROP_SIZE = 224
SCENE_WIDTH = 256  # frames are shrunk to about this width for shot detection, as PySceneDetect does by default

# Frames in, per frame an (k, 5) array of x1, y1, x2, y2, score in frame pixels.
BoxFinder = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Track:
    """One person's face over consecutive frames `first`..`first + len - 1`, with a box per frame."""

    first: int
    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def last(self) -> int:
        return self.first + len(self.boxes) - 1


class ShotDetector:
    """PySceneDetect's ContentDetector (default settings) fed frame by frame; `cuts` are the first frames of shots."""

    def __init__(self, fps: float = 25.0) -> None:
        from scenedetect import ContentDetector

        self.detector = ContentDetector()
        self.fps = fps
        self.cuts: list[int] = []
        self.frames = 0

    def __call__(self, frame: np.ndarray) -> None:
        from scenedetect import FrameTimecode

        step = max(1, round(frame.shape[1] / SCENE_WIDTH))
        small = np.ascontiguousarray(frame[::step, ::step, ::-1])  # BGR, as the detector expects
        found = self.detector.process_frame(FrameTimecode(self.frames, fps=self.fps), small)
        self.cuts.extend(int(cut.frame_num) for cut in found)
        self.frames += 1

    def shots(self) -> list[tuple[int, int]]:
        """(start, end) frame ranges, end exclusive; the whole video when there is no cut."""
        edges = [0, *sorted(c for c in set(self.cuts) if 0 < c < self.frames), self.frames]
        return list(itertools.pairwise(edges))


def link_tracks(
    detections: list[np.ndarray],
    start: int = 0,
    min_track: int = MIN_TRACK,
    max_gap: int = MAX_GAP,
    min_size: float = MIN_FACE_SIZE,
) -> list[Track]:
    """Greedy IoU tracks over one shot's per-frame boxes (frame `start` first), longest-first as found."""
    remaining = [[np.asarray(box[:4], dtype=np.float64) for box in frame] for frame in detections]
    tracks: list[Track] = []
    while True:
        frames: list[int] = []
        boxes: list[np.ndarray] = []
        for index, faces in enumerate(remaining):
            if frames and index - frames[-1] > max_gap:
                break
            for k, box in enumerate(faces):
                if not frames or box_iou(box, boxes[-1]) > TRACK_IOU:
                    frames.append(index)
                    boxes.append(faces.pop(k))
                    break
        if not frames:
            return tracks
        if len(frames) <= min_track:
            continue
        span = np.arange(frames[0], frames[-1] + 1)
        stacked = np.stack(boxes)
        filled = np.stack([np.interp(span, frames, stacked[:, j]) for j in range(4)], 1)
        widths, heights = filled[:, 2] - filled[:, 0], filled[:, 3] - filled[:, 1]
        if max(widths.mean(), heights.mean()) > min_size:
            tracks.append(Track(start + frames[0], filled))


def find_tracks(
    frames: Iterable[np.ndarray], find_boxes: BoxFinder, batch: int = 8, min_track: int = MIN_TRACK
) -> tuple[list[Track], int]:
    """All face tracks of a 25 fps frame stream, and the number of frames read (one decoding pass)."""
    shots = ShotDetector()
    detections: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    for frame in frames:
        shots(frame)
        pending.append(frame)
        if len(pending) == batch:
            detections.extend(find_boxes(pending))
            pending = []
    if pending:
        detections.extend(find_boxes(pending))
    tracks: list[Track] = []
    for start, end in shots.shots():
        if end - start >= min_track:
            tracks.extend(link_tracks(detections[start:end], start, min_track))
    return tracks, shots.frames


def crop_geometry(track: Track) -> np.ndarray:
    """(n, 3) median-filtered centre x, centre y and half-size per frame."""
    from scipy.signal import medfilt

    b = track.boxes
    size = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    return np.stack([medfilt(v, SMOOTHING) for v in (cx, cy, size)], 1)


def crop_face(frame: np.ndarray, cx: float, cy: float, size: float) -> np.ndarray:
    """The 224 px crop around a face: a little above the box to well below the chin, grey where off-frame."""
    import cv2

    pad = int(size * (1 + 2 * CROP_MARGIN))  # the official code pads the frame by this much, then crops
    r0, r1 = int(cy + pad - size) - pad, int(cy + pad + size * (1 + 2 * CROP_MARGIN)) - pad
    c0, c1 = int(cx + pad - size * (1 + CROP_MARGIN)) - pad, int(cx + pad + size * (1 + CROP_MARGIN)) - pad
    out = np.full((max(r1 - r0, 1), max(c1 - c0, 1), 3), FILL, np.uint8)
    h, w = frame.shape[:2]
    y0, y1, x0, x1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if y1 > y0 and x1 > x0:
        out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = frame[y0:y1, x0:x1]
    return cv2.resize(out, (CROP_SIZE, CROP_SIZE))


def crop_tracks(frames: Iterable[np.ndarray], tracks: list[Track]) -> list[np.ndarray]:
    """Per track, its (n, 224, 224, 3) crops, from a second pass over the same frames."""
    geometry = [crop_geometry(t) for t in tracks]
    crops: list[list[np.ndarray]] = [[] for _ in tracks]
    end = max((t.last for t in tracks), default=-1)
    for index, frame in enumerate(frames):
        if index > end:
            break
        for track, geo, out in zip(tracks, geometry, crops):
            if track.first <= index <= track.last:
                out.append(crop_face(frame, *geo[index - track.first]))
    return [np.stack(c) if c else np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8) for c in crops]
