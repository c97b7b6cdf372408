"""How much the mouth moves while the audio is silent: a weight-free check of "the mouth keeps moving in pauses".

Silent stretches are runs of at least `MIN_SILENCE` frames whose loudness is `SILENCE_BELOW` dB under the clip's
speech level (its 95th-percentile frame) or quieter than -50 dBFS. Movement is the mean absolute frame-to-frame
change of the mouth opening (mouth.py), in percent of the jaw width per frame; it is given for the silent frames and,
for comparison, for the speech frames. A still mouth scores 0; lips that talk score a few percent per frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from latentsync.faces.landmarks import LandmarkDetector
from latentsync.faces.track import FaceFollower

from .mouth import loudness, mouth_opening

SILENCE_BELOW = 30.0  # dB under the speech level
ABSOLUTE_SILENCE = -50.0  # dBFS
MIN_SILENCE = 5  # frames (0.2 s): shorter dips are the gaps between words


def mouth_series(frames: Iterable[np.ndarray], detector: LandmarkDetector, limit: int | None = None) -> np.ndarray:
    """Mouth opening of the followed face in each frame (NaN where no face was found).

    The finder runs on the whole of every frame: the landmarks of its faster local search differ from a whole-frame
    detection's by a pixel or so, and that alternation alone would read as lip movement."""
    follower = FaceFollower(detector, redetect_every=None)
    values = []
    for frame in frames:
        face = follower(frame)
        values.append(mouth_opening(face) if face is not None else np.nan)
        if limit is not None and len(values) >= limit:
            break
    return np.asarray(values, dtype=np.float64)


def silent_frames(levels: np.ndarray) -> np.ndarray:
    """Boolean per frame: inside a silent stretch of at least MIN_SILENCE frames."""
    threshold = max(np.percentile(levels, 95) - SILENCE_BELOW, ABSOLUTE_SILENCE) if len(levels) else 0.0
    quiet = levels < threshold
    out = np.zeros_like(quiet)
    start = None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= MIN_SILENCE:
                out[start:i] = True
            start = None
    return out


def movement(opening: np.ndarray, where: np.ndarray) -> float | None:
    """Mean |change of opening| (percent of jaw width per frame) over consecutive frame pairs both in `where`."""
    steps = np.abs(np.diff(opening)) * 100
    pairs = where[1:] & where[:-1] & np.isfinite(steps)
    return float(steps[pairs].mean()) if pairs.any() else None


def silence_report(opening: np.ndarray, audio: np.ndarray) -> dict:
    """The numbers of `latentsync eval silence` for one video's mouth series and its 16 kHz audio."""
    levels = loudness(audio, len(opening))
    silent = silent_frames(levels)
    speech = ~silent
    return {
        "frames": len(opening),
        "frames_with_face": int(np.isfinite(opening).sum()),
        "silent_seconds": float(silent.sum() / 25),
        "silent_movement": movement(opening, silent),
        "speech_movement": movement(opening, speech),
        "silent_opening": float(np.nanmean(opening[silent])) if np.isfinite(opening[silent]).any() else None,
    }
