"""Stage 5: warp each frame of a segment to the R x R face crop with the inference alignment, then encode the clip
once (H.264, `Settings.crf`, a keyframe every `Settings.keyint` frames) with its 16 kHz audio.

The alignment is inference's (`faces.track.alignment_matrices`), run afresh for every segment (the official code
carries its smoothing state over from whatever clip the worker handled before). With `face_smoothing="steady"` (the
default, as in inference) the anchors are steadied over the whole segment, so the warp waits for the segment's end;
meanwhile only the part of each frame around the face is held: what the unsteadied alignment reads, grown by
HOLD_MARGIN of its size on each side (0.5-0.9 MB a frame on the 1080p demo clips, at most ~115 MB for a 5 s
segment). A steadied crop reaching beyond it (a far outlier replaced) is cut from a second decode instead
(`realign`), which also redoes the clips from the stored anchors when only a stage 5 setting changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from latentsync.faces import Face, crop_face
from latentsync.faces.align import fit_similarity, frame_region, shift_source, template_points, warp_size
from latentsync.faces.track import alignment_matrices
from latentsync.media import VideoReader, VideoWriter

from ..settings import FPS, SAMPLE_RATE, Settings

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
HOLD_MARGIN = 0.25


def segment_matrices(anchors: np.ndarray, settings: Settings) -> np.ndarray:
    """(n, 2, 3) frame-to-crop matrices of one segment's (n, 3, 2) anchors, as inference aligns a face track."""
    return alignment_matrices(anchors, settings.resolution, steady=settings.face_smoothing == "steady")


class SegmentCrops:
    """Each frame's anchors and the part of the frame around its face, until the segment is complete."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.anchors: list[np.ndarray] = []
        self.held: list[tuple[np.ndarray, int, int]] = []  # part of the frame, its left and top in the frame
        self._shape: tuple[int, ...] = ()
        self._box = warp_size(settings.resolution)
        self._template = template_points(settings.resolution)

    def __len__(self) -> int:
        return len(self.anchors)

    def add(self, frame: np.ndarray, face: Face) -> None:
        anchors = face.anchors()
        rows, cols = frame_region(fit_similarity(anchors, self._template)[0], self._box, frame.shape)
        rows, cols = _grown(rows, frame.shape[0]), _grown(cols, frame.shape[1])
        self.held.append((frame[rows, cols].copy(), cols.start, rows.start))
        self.anchors.append(anchors)
        self._shape = frame.shape

    def clear(self) -> None:
        self.anchors.clear()
        self.held.clear()

    def crops(self) -> list[np.ndarray] | None:
        """The aligned crops, or None when one would read beyond the held part of its frame."""
        crops = []
        for (part, left, top), matrix in zip(self.held, segment_matrices(np.stack(self.anchors), self.settings)):
            rows, cols = frame_region(matrix, self._box, self._shape)  # what the crop reads (nothing: all grey)
            reads = rows.start < rows.stop and cols.start < cols.stop
            held = top <= rows.start and rows.stop <= top + part.shape[0]
            held = held and left <= cols.start and cols.stop <= left + part.shape[1]
            if reads and not held:
                return None
            crops.append(crop_face(part, shift_source(matrix, left, top), self.settings.resolution))
        return crops


def _grown(span: slice, length: int) -> slice:
    """`span` grown by HOLD_MARGIN of its size on each side, within 0 .. length."""
    margin = int(np.ceil(HOLD_MARGIN * (span.stop - span.start)))
    return slice(max(span.start - margin, 0), min(span.stop + margin, length))


def encode_clip(path: Path, crops: Iterable[np.ndarray], audio: np.ndarray, start: int, settings: Settings) -> None:
    """Write the crops of the segment starting at frame `start` to `path` (it appears only when complete) with the
    audio of its frames."""
    crops = list(crops)
    size = settings.resolution
    samples = audio[start * SAMPLES_PER_FRAME : (start + len(crops)) * SAMPLES_PER_FRAME]
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(
        path, size, size, fps=FPS, audio=samples, sample_rate=SAMPLE_RATE, crf=settings.crf, keyint=settings.keyint
    ) as writer:
        for crop in crops:
            writer.write(crop)


def realign(src: Path, segments: list[tuple[Path, int, np.ndarray]], audio: np.ndarray, settings: Settings) -> None:
    """Cut and encode the clips of `segments` (clip path, start frame, (n, 3, 2) anchors; they do not overlap) from a
    new decode of `src`."""
    plans = iter(sorted(segments, key=lambda segment: segment[1]))
    plan = next(plans, None)
    if plan is None:
        return
    crops: list[np.ndarray] = []
    matrices = segment_matrices(plan[2], settings)
    for index, frame in enumerate(VideoReader(src, fps=FPS)):
        path, start, anchors = plan
        if index < start:
            continue
        crops.append(crop_face(frame, matrices[index - start], settings.resolution))
        if len(crops) == len(anchors):
            encode_clip(path, crops, audio, start, settings)
            crops, plan = [], next(plans, None)
            if plan is None:
                return
            matrices = segment_matrices(plan[2], settings)
    raise RuntimeError(f"{src}: the video ended before frame {plan[1] + len(plan[2])}, seen when finding its faces")
