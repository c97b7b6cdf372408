"""Steadier alignment anchors: reject single-frame outliers against the track, then smooth with a speed-aware filter.

Jitter in the three anchors is jitter in the aligned crop, and the diffused mouth flickers with it. Landmark
detectors shake by a few pixels from frame to frame and now and then jump (dlib's 68-point model by up to ~40 px
on the demo clips) while the head holds still. The analysis pass sees the whole face track before any diffusion,
so the steadying works offline, looking ahead as well as back:

1. The track is cut into runs of consecutive frames with a face; a step larger than CUT_STEP face widths in one
   frame (a scene cut, another person) also starts a new run. Nothing is smoothed across a cut.
2. Outliers: a point further than OUTLIER_SIGMAS robust deviations (and at least OUTLIER_FLOOR face widths) from
   the running median of its OUTLIER_WINDOW neighbours is replaced by that median. A median follows steady
   motion exactly, so only spikes are removed, not movement.
3. A One-Euro filter (Casiez et al., CHI 2012): a low-pass whose cutoff rises with the point's speed, so a still
   head is held still and a moving one is followed closely. The speed is measured on the running median, ahead
   and behind, so the detector's noise hardly raises the cutoff and the cutoff rises as motion starts. It runs
   forward and backward over the run and the two are averaged, which cancels its lag (each pass trails motion in its
   own direction by the same amount).

Units are face widths (the distance between the two eyebrow anchors), so the settings hold at any resolution.
Cost: about 0.01 ms a frame on one core (benchmarks/landmarks.py), nothing next to landmark detection.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

FPS = 25.0  # inference aligns frames retimed to 25 fps
CUT_STEP = 0.35  # face widths in one frame: faster than any head turn at 25 fps
OUTLIER_WINDOW = 7
OUTLIER_SIGMAS = 3.0
OUTLIER_FLOOR = 0.06  # face widths (~6 px on a 1080p talking head): smaller wobble is left to the filter
MIN_CUTOFF = 0.3  # Hz: the cutoff of a still point
BETA = 4.0  # Hz of extra cutoff per face width a second of speed
SPEED_SPAN = 2  # frames each side of the centred difference that measures speed


def steady_anchors(anchors: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(n, 3, 2) float64 steadied anchors of a face track; frames without a face (NaN rows) stay NaN."""
    points = np.asarray(anchors, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (3, 2):
        raise ValueError(f"anchors must have shape (n, 3, 2), got {points.shape}")
    out = points.copy()
    found = np.asarray(np.isfinite(points).all(axis=(1, 2)))
    for start, stop in runs(found):
        width = float(np.median(np.linalg.norm(points[start:stop, 1] - points[start:stop, 0], axis=-1)))
        if width <= 0:
            continue
        unit = reject_outliers(points[start:stop] / width)  # before looking for cuts: a spike is no cut
        steps = np.linalg.norm(np.diff(unit, axis=0), axis=-1).max(axis=1)
        for first, last in runs(np.ones(len(unit), dtype=bool), cuts=steps > CUT_STEP):
            piece = unit[first:last]
            alpha = one_euro_alpha(track_speed(piece, fps), fps)
            smoothed = (low_pass(piece, alpha) + low_pass(piece[::-1], alpha[::-1])[::-1]) / 2
            out[start + first : start + last] = width * smoothed
    return out


def runs(found: np.ndarray, cuts: np.ndarray | None = None) -> list[tuple[int, int]]:
    """[start, stop) spans of consecutive `found` frames, also split before frame i + 1 where cuts[i]."""
    breaks = ~found[1:] | ~found[:-1]
    if cuts is not None:
        breaks = breaks | cuts
    edges = np.concatenate([[0], np.flatnonzero(breaks) + 1, [len(found)]])
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a and found[a]]


def running_median(points: np.ndarray) -> np.ndarray:
    """The median of each point's OUTLIER_WINDOW neighbours (edges repeated): follows steady motion without lag."""
    n, half = len(points), OUTLIER_WINDOW // 2
    padded = np.concatenate([points[:1].repeat(half, 0), points, points[-1:].repeat(half, 0)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, OUTLIER_WINDOW, axis=0)[:n], axis=-1)


def reject_outliers(points: np.ndarray) -> np.ndarray:
    """Points replaced by their running median where they stray from it far more than the track's own spread."""
    if len(points) < 3:
        return points
    median = running_median(points)
    distance = np.linalg.norm(points - median, axis=-1)  # (n, 3)
    spread = 1.4826 * np.median(distance, axis=0)  # robust sigma per anchor over the run
    outlier = distance > np.maximum(OUTLIER_SIGMAS * spread, OUTLIER_FLOOR)
    return np.where(outlier[..., None], median, points)


def track_speed(points: np.ndarray, fps: float) -> np.ndarray:
    """(n, 3, 1) speed of each anchor in face widths a second, from the running median's centred difference:
    the head's motion, hardly the detector's noise, and known ahead (no lag in raising the cutoff)."""
    median = running_median(points)
    ahead = np.concatenate([median[SPEED_SPAN:], median[-1:].repeat(min(SPEED_SPAN, len(points)), 0)])[: len(points)]
    behind = np.concatenate([median[:1].repeat(min(SPEED_SPAN, len(points)), 0), median])[: len(points)]
    return np.linalg.norm(ahead - behind, axis=-1, keepdims=True) * fps / (2 * SPEED_SPAN)


def one_euro_alpha(speed: np.ndarray, fps: float) -> np.ndarray:
    """The One-Euro filter's smoothing factor per frame and anchor: its cutoff rises with the speed."""
    return 1.0 / (1.0 + fps / (2 * math.pi * (MIN_CUTOFF + BETA * speed)))


def low_pass(points: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """First-order low-pass over (n, 3, 2) points in order, with a factor per frame and anchor (n, 3, 1)."""
    out = np.empty_like(points)
    previous = np.median(points[: OUTLIER_WINDOW // 2 + 1], axis=0)  # not the first point alone: it may be off
    for i in range(len(points)):
        previous = previous + alpha[i] * (points[i] - previous)
        out[i] = previous
    return out
