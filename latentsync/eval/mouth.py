"""Weight-free signals for how a mouth moves with speech: the lip gap from landmarks, the audio's loudness per frame.

Mouth opening is the mean gap between the three inner upper-lip and inner lower-lip points of the 68-point scheme
(iBUG 61-63 over 67-65), divided by the jaw width (points 0 to 16) so it does not depend on the face's size in the
frame. Loudness is the RMS level in dBFS of each 40 ms frame of 16 kHz audio (one value per video frame at 25 fps).
"""

from __future__ import annotations

import numpy as np

from latentsync.errors import InvalidArgumentError
from latentsync.faces.landmarks import Face

UPPER_INNER, LOWER_INNER = (61, 62, 63), (67, 66, 65)
JAW_ENDS = (0, 16)
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
FLOOR_DB = -100.0


def mouth_opening(face: Face) -> float:
    """Inner-lip gap over jaw width (0 for closed lips, about 0.1-0.3 for a mouth open in speech)."""
    points = face.landmarks
    if len(points) != 68:
        raise InvalidArgumentError(
            f"mouth opening needs 68-point landmarks (dlib or face-alignment), got {len(points)} points"
        )
    gap = np.linalg.norm(points[list(UPPER_INNER)] - points[list(LOWER_INNER)], axis=1).mean()
    width = np.linalg.norm(points[JAW_ENDS[0]] - points[JAW_ENDS[1]])
    return float(gap / width) if width > 0 else 0.0


def loudness(audio: np.ndarray, frames: int | None = None) -> np.ndarray:
    """RMS level in dBFS of each video frame's 640 samples (the last partial frame padded with silence)."""
    count = frames if frames is not None else int(np.ceil(len(audio) / SAMPLES_PER_FRAME))
    padded = np.zeros(count * SAMPLES_PER_FRAME, np.float64)
    used = min(len(audio), len(padded))
    padded[:used] = audio[:used]
    rms = np.sqrt((padded.reshape(count, SAMPLES_PER_FRAME) ** 2).mean(1))
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-10)), FLOOR_DB)
