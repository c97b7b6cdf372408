"""Speed and yield of the dlib landmark backend on the demo clips.

Prints, per clip: milliseconds per frame spent in `detect` (decoding excluded), as wall time and as this process's
CPU time (the latter barely changes when other programs share the cores), frames where a face was found, and
the nose anchor's jitter (median distance from the midpoint of its neighbours in the previous and next frames,
which cancels steady head motion). Run: python benchmarks/landmarks.py [clip.mp4 ...] [--frames N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import cv2
import numpy as np

from latentsync.faces import create_detector, select_face
from latentsync.testing.assets import ASSETS


def frames_of(path: Path, limit: int):
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if limit and index == limit:
                return
            yield frame.to_ndarray(format="rgb24")


def nose_jitter(noses: np.ndarray) -> float:
    """Median |n[t] - (n[t-1] + n[t+1]) / 2| over frame triples that all have a face (NaN rows have none)."""
    residual = np.linalg.norm(noses[1:-1] - (noses[:-2] + noses[2:]) / 2, axis=1)
    residual = residual[~np.isnan(residual)]
    return float(np.median(residual)) if residual.size else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path, help="videos (default: demo1..3 in shared/assets)")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip, 0 for all (default 150)")
    parser.add_argument("--upsample", type=int, default=0)
    parser.add_argument("--detect-scale", type=float, default=None, help="default: long side scaled to 960 px")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one thread, as the figures in the docs are quoted

    clips = args.clips or sorted(ASSETS.glob("demo*_video.mp4"))
    detector = create_detector("dlib", upsample=args.upsample, detect_scale=args.detect_scale)
    print(f"{'clip':<24}{'frames':>8}{'ms/frame':>10}{'cpu ms':>8}{'with face':>11}{'>1 face':>9}{'nose jitter px':>16}")
    for clip in clips:
        seconds, cpu_seconds, found, several, noses = 0.0, 0.0, 0, 0, []
        for frame in frames_of(clip, args.frames):
            start, cpu_start = time.perf_counter(), time.process_time()
            faces = detector.detect(frame)
            seconds += time.perf_counter() - start
            cpu_seconds += time.process_time() - cpu_start
            found += bool(faces)
            several += len(faces) > 1
            face = select_face(faces)
            noses.append(face.anchors()[2] if face else (np.nan, np.nan))
        count = len(noses)
        jitter = nose_jitter(np.array(noses, dtype=np.float64))
        print(f"{clip.name:<24}{count:>8}{1000 * seconds / count:>10.1f}{1000 * cpu_seconds / count:>8.1f}{found:>11}{several:>9}{jitter:>16.2f}")


if __name__ == "__main__":
    main()
