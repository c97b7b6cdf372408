"""Speed and steadiness of the landmark backends on the demo clips: how much the alignment anchors shake.

Per backend available here and per clip, the face is followed as inference follows it (`FaceFollower`), and the
three alignment anchors (two eyebrow centres, nose centre) are measured raw and after `faces.smooth` (the default
steadying), as is the final alignment matrix. Printed per row:

- ms/frame: wall time in the landmark backend (decoding excluded); smooth ms: the steadying's cost per frame;
- jitter px: mean frame-to-frame distance of the anchors from where steady motion would put them (the midpoint of
  their neighbours in the previous and next frames), averaged over the three anchors;
- jumps>5: frames where an anchor moves over 5 px while the head holds still (the slow reference below moves
  under 1 px there);
- lag px: mean distance from a slow, centred reference track (a running median then mean over 9 frames of the raw
  anchors), on frames where the head moves (reference moves over 1 px a frame): a smoother that trails real
  motion shows it here;
- matrix px: the same jitter measure for the alignment matrix, as the displacement of the crop's corners in the
  256 px crop.

Run: python benchmarks/landmarks.py [clip.mp4 ...] [--frames N] [--quick] [--cache DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from latentsync.faces import BACKENDS, BackendUnavailableError, FaceAligner, create_detector
from latentsync.faces.smooth import steady_anchors
from latentsync.faces.track import FaceFollower

ASSETS = next(
    (p / "shared" / "assets" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "assets").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "assets",
)
JUMP_PX = 5.0
STILL_PX = 1.0
REFERENCE_FRAMES = 9


def frames_of(path: Path, limit: int):
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if limit and index == limit:
                return
            yield frame.to_ndarray(format="rgb24")


def follow(clip: Path, backend: str, limit: int, cache: Path | None) -> tuple[np.ndarray, float]:
    """(n, 3, 2) anchors of the followed face (NaN without one) and the backend's ms per frame."""
    stored = cache / f"{backend}-{clip.stem}-{limit}.npz" if cache else None
    if stored is not None and stored.exists():
        data = np.load(stored)
        return data["anchors"], float(data["ms"])
    follower = FaceFollower(create_detector(backend))
    anchors, seconds = [], 0.0
    for frame in frames_of(clip, limit):
        start = time.perf_counter()
        face = follower(frame)
        seconds += time.perf_counter() - start
        anchors.append(face.anchors() if face is not None else np.full((3, 2), np.nan))
    result = np.asarray(anchors, dtype=np.float64), 1000 * seconds / max(len(anchors), 1)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez(stored, anchors=result[0], ms=result[1])
    return result


def jitter(points: np.ndarray) -> float:
    """Mean distance of each point from the midpoint of its neighbours, over the points (n, k, 2)."""
    residual = np.linalg.norm(points[1:-1] - (points[:-2] + points[2:]) / 2, axis=-1)
    return float(np.nanmean(residual))


def reference(anchors: np.ndarray) -> np.ndarray:
    """A slow, centred (lag-free) version of the raw track: where the head really is."""
    filled = np.where(np.isnan(anchors), np.nanmedian(anchors, axis=0), anchors)
    return uniform_filter1d(median_filter(filled, size=(REFERENCE_FRAMES, 1, 1), mode="nearest"), REFERENCE_FRAMES, 0)


def corners(anchors: np.ndarray) -> np.ndarray:
    """(n, 4, 2) crop corners in 256 px crop pixels after each frame's matrix maps them back... into the frame."""
    aligner = FaceAligner(256)
    box = np.array([[0, 0], [210, 0], [0, 280], [210, 280]], dtype=np.float64)
    out = np.full((len(anchors), 4, 2), np.nan)
    for i, points in enumerate(anchors):
        if np.isfinite(points).all():
            inverse = cv2.invertAffineTransform(aligner.matrix(points))
            out[i] = box @ inverse[:, :2].T + inverse[:, 2]
    return out


def measure(anchors: np.ndarray, ref: np.ndarray) -> tuple[float, int, float, float]:
    steps = np.linalg.norm(np.diff(anchors, axis=0), axis=-1).max(axis=1)
    ref_steps = np.linalg.norm(np.diff(ref, axis=0), axis=-1).max(axis=1)
    jumps = int(np.sum((steps > JUMP_PX) & (ref_steps < STILL_PX)))
    moving = np.concatenate([[False], ref_steps > STILL_PX])
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
            ref = reference(anchors)
            for name, points, cost in (("raw", anchors, 0.0), ("steady", steady, smooth_ms)):
                j, jumps, lag, matrix = measure(points, ref)
                print(
                    f"{backend:<16}{clip.stem:<18}{name:<9}{len(points):>7}{ms:>9.1f}{cost:>10.3f}"
                    f"{j:>10.2f}{jumps:>8}{lag:>8.2f}{matrix:>10.2f}"
                )


if __name__ == "__main__":
    main()
