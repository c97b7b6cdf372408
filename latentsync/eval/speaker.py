"""Active speaker: which face in a video is the one speaking its audio (`latentsync infer --face-index speaker`).

Every face seen in the first seconds becomes a candidate track (matched frame to frame by box overlap). Each is
scored against the audio by one of two scorers:

- weight-free: the Pearson correlation between how much the face's lips move (the change of the mouth opening of
  mouth.py) and the audio's loudness per frame, the best over lags of up to `MAX_LAG` frames either way;
- SyncNet: the original SyncNet's confidence (LSE-C) on the candidate's 224 px crops, when `syncnet_v2.model` is
  at hand.

The best candidate is chosen when it scores clearly (above a floor, and ahead of the runner-up by a margin);
otherwise None, and the caller falls back to the largest face. The result is a point in the candidate's first box,
which `--face-at` style selection then follows through the video.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from latentsync.faces.geometry import box_iou
from latentsync.faces.landmarks import LandmarkDetector
from latentsync.hub import checkpoint_paths

from .mouth import loudness, mouth_opening
from .tracks import Track, crop_face, crop_geometry

logger = logging.getLogger(__name__)

ANALYSIS_FRAMES = 250  # 10 s at 25 fps
MAX_LAG = 3
SMOOTHING = 9  # frames
SILENT_DB = -60.0  # loudness floor: quieter is all the same silence
SAME_FACE_IOU = 0.3
MIN_PRESENCE = 0.5  # a candidate must be seen in at least half of the analysed frames
# (floor, margin) of a clear choice per scorer
CLEAR = {"mouth": (0.2, 0.1), "syncnet": (1.5, 1.0)}


@dataclass
class Candidate:
    """One face over the analysed frames: its box and mouth opening per frame (NaN where unseen)."""

    boxes: list[np.ndarray] = field(default_factory=list)
    opening: list[float] = field(default_factory=list)

    def last_box(self) -> np.ndarray | None:
        seen = [b for b in self.boxes if np.isfinite(b).all()]
        return seen[-1] if seen else None

    def presence(self) -> float:
        return float(np.isfinite(self.opening).mean())

    def first_centre(self) -> tuple[float, float]:
        box = next(b for b in self.boxes if np.isfinite(b).all())
        return float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2

    def filled_boxes(self) -> np.ndarray:
        """(n, 4) boxes with the unseen frames interpolated from their neighbours."""
        boxes = np.stack(self.boxes)
        seen = np.isfinite(boxes[:, 0])
        frames = np.arange(len(boxes))
        return np.stack([np.interp(frames, frames[seen], boxes[seen, j]) for j in range(4)], 1)


def find_candidates(
    frames: Iterable[np.ndarray], detector: LandmarkDetector, limit: int = ANALYSIS_FRAMES
) -> list[Candidate]:
    """Candidate face tracks over the first `limit` frames (landmarks in every frame)."""
    candidates: list[Candidate] = []
    nan_box = np.full(4, np.nan)
    for count, frame in enumerate(frames):
        taken: set[int] = set()
        for face in detector.detect(frame):
            lasts = [c.last_box() for c in candidates]
            overlaps = [
                box_iou(face.box, last) if i not in taken and last is not None else 0.0 for i, last in enumerate(lasts)
            ]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best < 0 or overlaps[best] < SAME_FACE_IOU:
                candidates.append(Candidate([nan_box] * count, [np.nan] * count))
                best = len(candidates) - 1
            taken.add(best)
            candidates[best].boxes.append(face.box.astype(np.float64))
            candidates[best].opening.append(mouth_opening(face))
        for i, c in enumerate(candidates):
            if i not in taken:
                c.boxes.append(nan_box)
                c.opening.append(np.nan)
        if count + 1 >= limit:
            break
    return candidates


def lagged_correlation(signal: np.ndarray, reference: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """The largest Pearson correlation of `signal` with `reference` shifted by up to `max_lag` frames either way."""
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        a = signal[max(lag, 0) : len(signal) + min(lag, 0)]
        b = reference[max(-lag, 0) : len(reference) + min(-lag, 0)]
        if len(a) > 2 and a.std() > 0 and b.std() > 0:
            best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best


def smooth(x: np.ndarray, frames: int = SMOOTHING) -> np.ndarray:
    return np.convolve(x, np.ones(frames) / frames, mode="same")


def mouth_scores(candidates: list[Candidate], audio: np.ndarray) -> list[float]:
    """Weight-free score per candidate: lagged correlation of lip movement with loudness.

    Movement (|frame-to-frame change of the opening|), not the opening itself: a smile parts the lips in silence, and
    lips that move follow speech far better than how wide they are. Both signals are averaged over `SMOOTHING` frames.
    """
    levels = smooth(np.maximum(loudness(audio, len(candidates[0].opening)), SILENT_DB))
    scores = []
    for c in candidates:
        opening = np.asarray(c.opening)
        seen = np.isfinite(opening)
        frames = np.arange(len(opening))
        filled = np.interp(frames, frames[seen], opening[seen])
        motion = np.abs(np.diff(filled, prepend=filled[0]))
        scores.append(lagged_correlation(smooth(motion), levels))
    return scores


def syncnet_scores(
    candidates: list[Candidate], frames: Iterable[np.ndarray], audio: np.ndarray, weights: Path
) -> list[float]:
    """SyncNet confidence per candidate, on crops cut as the sync evaluation cuts them (a second pass over the
    frames, so that none is held)."""
    from .sync import SAMPLES_PER_FRAME, SyncScorer

    scorer = SyncScorer.load(weights)
    geometry = [crop_geometry(Track(0, c.filled_boxes())) for c in candidates]
    crops: list[list[np.ndarray]] = [[] for _ in candidates]
    for frame, *places in zip(frames, *geometry):
        for out, place in zip(crops, places):
            out.append(crop_face(frame, *place))
    span = audio[: len(crops[0]) * SAMPLES_PER_FRAME]
    return [scorer.score_crops(np.stack(c), span).conf for c in crops]


def choose_speaker(
    frames: Iterable[np.ndarray],
    audio: np.ndarray,
    detector: LandmarkDetector,
    syncnet_weights: str | Path | None = None,
    limit: int = ANALYSIS_FRAMES,
) -> tuple[float, float] | None:
    """A point inside the speaking face's first box, or None (with a warning) when no face clearly speaks."""
    if len(audio) == 0 or not np.any(audio):
        logger.warning("active speaker: the audio is silent; using the largest face")
        return None
    candidates = find_candidates(frames, detector, limit)
    candidates = [c for c in candidates if c.presence() >= MIN_PRESENCE]
    if not candidates:
        logger.warning("active speaker: no face stays in view; using the largest face")
        return None
    if len(candidates) == 1:
        return candidates[0].first_centre()
    kind = "syncnet" if syncnet_weights is not None and Path(syncnet_weights).is_file() else "mouth"
    if kind == "syncnet":
        scores = syncnet_scores(candidates, frames, audio, Path(syncnet_weights))  # type: ignore[arg-type]
    else:
        scores = mouth_scores(candidates, audio)
    order = np.argsort(scores)[::-1]
    best, runner_up = scores[order[0]], scores[order[1]]
    floor, margin = CLEAR[kind]
    logger.info("active speaker (%s scorer): scores %s", kind, ", ".join(f"{s:.2f}" for s in scores))
    if best < floor or best - runner_up < margin:
        logger.warning(
            "active speaker: no face is clearly speaking (%s scores %.2f vs %.2f); using the largest face",
            kind,
            best,
            runner_up,
        )
        return None
    return candidates[order[0]].first_centre()


def speaker_chooser(version: str, checkpoints: str | Path | None) -> Callable[..., tuple[float, float] | None]:
    """The active-speaker choice: SyncNet confidence when syncnet_v2.model is downloaded, else lip movement."""
    weights = checkpoint_paths(version, checkpoints).auxiliary / "syncnet_v2.model"
    return partial(choose_speaker, syncnet_weights=weights if weights.is_file() else None)
