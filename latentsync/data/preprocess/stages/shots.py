"""Stage 3a: shot changes, found by PySceneDetect's adaptive detector on the frames we decode anyway.

Frames are shrunk as PySceneDetect itself shrinks them (to about 256 px wide, bilinear) and handed over in its BGR
order, so the cuts are the ones `scenedetect detect-adaptive --threshold 2` finds on the retimed video, without a
second decode. The detector decides about a frame `window_width` frames later, so frames are held back that long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from latentsync.errors import LatentSyncError

# PySceneDetect shrinks frames to at least this width before scoring them (scene_manager.DEFAULT_MIN_WIDTH).
DETECT_WIDTH = 256


def shrink(frame: np.ndarray) -> np.ndarray:
    """The BGR frame PySceneDetect would score for this RGB frame."""
    height, width = frame.shape[:2]
    factor = width / DETECT_WIDTH
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # a third of the cost of a reversed copy


def with_shots(
    frames: Iterable[np.ndarray], fps: float, threshold: float, min_frames: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(shot number from 1, frame index, frame) for each frame, as soon as the detector has decided its shot."""
    try:
        from scenedetect import FrameTimecode
        from scenedetect.detectors import AdaptiveDetector
    except ImportError:
        raise LatentSyncError('shot detection needs PySceneDetect: pip install "latentsync[train]"') from None

    detector = AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=min_frames)
    held: deque[tuple[int, np.ndarray]] = deque()
    cuts: set[int] = set()
    shot = 1
    for index, frame in enumerate(frames):
        found = detector.process_frame(FrameTimecode(index, fps=float(fps)), shrink(frame))
        cuts.update(cut.frame_num for cut in found)
        held.append((index, frame))
        while held and held[0][0] <= index - detector.window_width:
            held_index, held_frame = held.popleft()
            if held_index in cuts:
                shot += 1
            yield shot, held_index, held_frame
    for held_index, held_frame in held:
        if held_index in cuts:
            shot += 1
        yield shot, held_index, held_frame
