"""Milliseconds per frame of paste-back restricted to the face region versus the same maths on the whole frame.

Usage: python benchmarks/paste.py [--video demo1_video.mp4] [--repeats 30]

Runs single-threaded (torch and OpenCV) so that numbers compare across machines with different core counts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from latentsync.faces import create_detector, select_face
from latentsync.faces.align import FaceAligner
from latentsync.faces.paste import paste_back
from latentsync.testing.assets import ASSETS

DEFAULT_VIDEO = ASSETS / "demo1_video.mp4"


def milliseconds(run, repeats: int) -> float:
    """Median wall time of `run()` in ms, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="a clip with a face in its first frame")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    with av.open(str(args.video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    face = select_face(create_detector("dlib").detect(frame))
    if face is None:
        raise SystemExit(f"no face found in the first frame of {args.video}")
    whole = (slice(0, frame.shape[0]), slice(0, frame.shape[1]))
    print(f"frame {frame.shape[1]}x{frame.shape[0]}, face box {np.round(face.box).astype(int).tolist()}")

    for resolution in (256, 512):
        crop, matrix = FaceAligner(resolution).align(frame, face.anchors())
        aligner = FaceAligner(resolution)
        align_ms = milliseconds(lambda aligner=aligner: aligner.align(frame, face.anchors()), args.repeats)
        region_ms = milliseconds(lambda crop=crop, matrix=matrix: paste_back(frame, crop, matrix), args.repeats)
        full_ms = milliseconds(
            lambda crop=crop, matrix=matrix: paste_back(frame, crop, matrix, region=whole), max(args.repeats // 5, 3)
        )
        print(
            f"{resolution}px: align {align_ms:.1f} ms, paste region {region_ms:.1f} ms, "
            f"paste full frame {full_ms:.1f} ms ({full_ms / region_ms:.0f}x)"
        )


if __name__ == "__main__":
    main()
