"""Speed and steadiness of the landmark backends on the demo clips: how much the alignment anchors shake.

Per backend available here and per clip, the face is followed as inference follows it (`FaceFollower`), and the
three alignment anchors (two eyebrow centres, nose centre) are measured raw and after `faces.smooth` (the default
steadying), as is the final alignment matrix. Printed per row:

- ms/frame: wall time in the landmark backend (decoding excluded); smooth ms: the steadying's cost per frame;
- jitter px: shake: mean distance of each anchor from the midpoint of its positions in the previous and next
  frames (steady motion adds nothing), averaged over the three anchors;
- jumps>5: frame steps where an anchor moves over 5 px while the head holds still (neither a 5- nor a 9-frame
  running median of the raw anchors moves over 1 px);
- lag px: mean distance from where the head is (the 9-frame running median of the raw anchors, centred, so it
  follows motion without lag) on frames where the head moves over 3 px a frame. The raw row shows the detector's
  own noise; a smoother that trails real motion shows more;
- matrix px: the jitter measure for the alignment matrix: the frame positions of the corners of the box each
  frame's matrix cuts out (at 256 px crops).

Frames are read at 25 fps, as inference reads them. --cache keeps the landmarks found, so that a second run only
measures the steadying.

Run: python benchmarks/landmarks.py [clip.mp4 ...] [--frames N] [--quick] [--cache DIR]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import median_filter

from latentsync.constants import VIDEO_FPS
from latentsync.faces import BACKENDS, BackendUnavailableError, FaceAligner, create_detector
from latentsync.faces.align import warp_size
from latentsync.faces.smooth import steady_anchors
from latentsync.faces.track import FaceFollower
from latentsync.media import VideoReader
from latentsync.testing.assets import ASSETS

JUMP_PX = 5.0
STILL_PX = 1.0
MOVING_PX = 3.0
REFERENCE_FRAMES = 9


def follow(clip: Path, backend: str, limit: int, cache: Path | None) -> tuple[np.ndarray, float]:
    """(n, 3, 2) anchors of the followed face (NaN without one) and the backend's ms per frame."""
    stored = cache / f"{backend}-{clip.stem}-{limit}.npz" if cache else None
    if stored is not None and stored.exists():
        data = np.load(stored)
        return data["anchors"], float(data["ms"])
    options = {"allow_download": False} if backend == "face-alignment" else {}  # measure what is here, fetch nothing
    follower = FaceFollower(create_detector(backend, **options))
    anchors, seconds = [], 0.0
    for frame in itertools.islice(VideoReader(clip, fps=VIDEO_FPS), limit or None):  # the frames inference aligns
        start = time.perf_counter()
        face = follower(frame)
        seconds += time.perf_counter() - start
        anchors.append(face.anchors() if face is not None else np.full((3, 2), np.nan))
    result = np.asarray(anchors, dtype=np.float64), 1000 * seconds / max(len(anchors), 1)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez(stored, anchors=result[0], ms=result[1])
    return result


def reference(anchors: np.ndarray, frames: int = REFERENCE_FRAMES) -> np.ndarray:
    """Where the head is: the running median of the raw anchors over `frames`, centred. A median follows steady
    motion and stops without lag, and ignores the detector's single-frame jumps."""
    filled = np.where(np.isnan(anchors), np.nanmedian(anchors, axis=0), anchors)
    return median_filter(filled, size=(frames, 1, 1), mode="nearest")


def head_still(anchors: np.ndarray) -> np.ndarray:
    """(n - 1,) frame steps in which the head holds still: neither a 5- nor a 9-frame median of the raw anchors
    moves over STILL_PX (the short one sees brief real moves, the long one ignores a detector's longer wobble)."""
    steps = [np.linalg.norm(np.diff(reference(anchors, frames), axis=0), axis=-1).max(axis=1) for frames in (5, 9)]
    return (steps[0] < STILL_PX) & (steps[1] < STILL_PX)


def corners(anchors: np.ndarray) -> np.ndarray:
    """(n, 4, 2) frame positions of the corners of the box each frame's alignment matrix cuts out."""
    aligner = FaceAligner(256)
    width, height = warp_size(256)
    box = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    out = np.full((len(anchors), 4, 2), np.nan)
    for i, points in enumerate(anchors):
        if np.isfinite(points).all():
            inverse = cv2.invertAffineTransform(aligner.matrix(points))
            out[i] = box @ inverse[:, :2].T + inverse[:, 2]
    return out


def jitter(points: np.ndarray) -> float:
    """Mean distance of each point from the midpoint of its neighbours in the previous and next frames, in px:
    shake, which steady motion does not contribute to."""
    return float(np.nanmean(np.linalg.norm(points[1:-1] - (points[:-2] + points[2:]) / 2, axis=-1)))


def measure(anchors: np.ndarray, ref: np.ndarray, still: np.ndarray) -> tuple[float, int, float, float]:
    """(anchor jitter, jumps over JUMP_PX where the head holds still, lag while it moves, matrix jitter)."""
    steps = np.linalg.norm(np.diff(anchors, axis=0), axis=-1).max(axis=1)
    ref_steps = np.linalg.norm(np.diff(ref, axis=0), axis=-1).max(axis=1)
    jumps = int(np.sum((steps > JUMP_PX) & still))
    moving = np.concatenate([[False], ref_steps > MOVING_PX])
    lag = np.linalg.norm(anchors - ref, axis=-1).mean(axis=1)[moving]
    lag_px = float(np.nanmean(lag)) if moving.any() else 0.0
    return jitter(anchors), jumps, lag_px, jitter(corners(anchors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path, help="videos (default: demo1..3 in shared/assets)")
    parser.add_argument("--frames", type=int, default=0, help="frames per clip, 0 for all (default)")
    parser.add_argument("--quick", action="store_true", help="the first 60 frames of each clip")
    parser.add_argument("--cache", type=Path, default=None, help="keep the landmarks found here for the next run")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one thread, as the figures in the docs are quoted
    limit = 60 if args.quick else args.frames

    clips = args.clips or sorted(ASSETS.glob("demo*_video.mp4"))
    header = f"{'backend':<16}{'clip':<18}{'anchors':<9}{'frames':>7}{'ms/frame':>9}{'smooth ms':>10}"
    print(header + f"{'jitter px':>10}{'jumps>5':>8}{'lag px':>8}{'matrix px':>10}")
    for backend in BACKENDS:
        for clip in clips:
            try:
                anchors, ms = follow(clip, backend, limit, args.cache)
            except BackendUnavailableError as exc:
                print(f"{backend:<16}unavailable here: {str(exc)[:90]}")
                break
            start = time.perf_counter()
            steady = steady_anchors(anchors)
            smooth_ms = 1000 * (time.perf_counter() - start) / len(anchors)
            ref, still = reference(anchors), head_still(anchors)
            for name, points, cost in (("raw", anchors, 0.0), ("steady", steady, smooth_ms)):
                j, jumps, lag, matrix = measure(points, ref, still)
                print(
                    f"{backend:<16}{clip.stem:<18}{name:<9}{len(points):>7}{ms:>9.1f}{cost:>10.3f}"
                    f"{j:>10.2f}{jumps:>8}{lag:>8.2f}{matrix:>10.2f}"
                )


if __name__ == "__main__":
    main()
