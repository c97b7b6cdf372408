"""FVD as LatentSync's `eval/eval_fvd.py` computes it, with the field's input range one switch away.

Per video: frames 20..35 as decoded (16 frames, no retiming); in each, the face box (the project's landmark finder
stands in for MediaPipe, see CROPS_NOTE) clamped to the frame and resized to 224x224 with area averaging (aspect not
kept). The clips
go through I3D in [0, 1], as the official code feeds them, or in [-1, 1] with `standard=True`, as StyleGAN-V and most
papers feed the same model; the two give different numbers, so reports say which was used. The distance is
Fréchet's between Gaussians fitted to the 400-d features: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from latentsync.errors import LatentSyncError
from latentsync.faces.landmarks import LandmarkDetector, select_face

logger = logging.getLogger(__name__)

FIRST_FRAME, CLIP_FRAMES = 20, 16
SIZE = 224
RECOMMENDED_CLIPS = 30  # the covariance is 400x400: with fewer clips it is far from full rank
# The official crops come from MediaPipe's legacy `solutions.face_detection` (short-range BlazeFace, confidence 0.5,
# first detection). mediapipe >= 0.10.30 (1.x) dropped that API and ships no face model (its Tasks FaceDetector needs
# a .tflite fetched from Google's storage); the releases that have it need numpy < 2, protobuf 4 and OpenCV 4.
CROPS_NOTE = (
    "face boxes from the {name} landmark finder, not MediaPipe's as in the official FVD: close to, but not exactly, "
    "the published kind"
)


def face_clip(path: str | Path, detector: LandmarkDetector) -> np.ndarray:
    """(16, 224, 224, 3) uint8 face crops of frames 20..35 of `path`; a frame without a face is an error."""
    import itertools

    import cv2

    from latentsync.media import VideoReader

    frames = list(itertools.islice(VideoReader(path, fps=None), FIRST_FRAME, FIRST_FRAME + CLIP_FRAMES))
    if len(frames) < CLIP_FRAMES:
        raise LatentSyncError(f"{path}: FVD needs frames 20..35, the video has {FIRST_FRAME + len(frames)} frames")
    crops = []
    for number, frame in enumerate(frames, FIRST_FRAME):
        face = select_face(detector.detect(frame))
        if face is None:
            raise LatentSyncError(f"{path}: no face in frame {number}")
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = face.box.astype(int)
        region = frame[max(y1, 0) : min(y2, h), max(x1, 0) : min(x2, w)]
        crops.append(cv2.resize(region, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return np.stack(crops)


def clips_tensor(clips: list[np.ndarray], standard: bool) -> torch.Tensor:
    """(N, 3, 16, 224, 224) float in [0, 1], or [-1, 1] with `standard`."""
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 255.0
    return x * 2 - 1 if standard else x


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, d) feature sets (the real part, as everyone takes)."""
    from scipy.linalg import sqrtm

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = sqrtm(cov_a @ cov_b, disp=False)
    return float(np.real(np.square(mu_a - mu_b).sum() + np.trace(cov_a + cov_b - 2 * root)))


def fvd(real: list[np.ndarray], fake: list[np.ndarray], model: torch.jit.ScriptModule, standard: bool = False) -> float:
    from latentsync.models.auxiliary.i3d import i3d_features

    if min(len(real), len(fake)) < 2:
        raise LatentSyncError("FVD needs at least 2 clips on each side (more than 30 recommended)")
    if min(len(real), len(fake)) < RECOMMENDED_CLIPS:
        logger.warning(
            "FVD from %d real and %d generated clips: below %d clips the 400x400 covariance is rank-deficient and the "
            "number is unstable",
            len(real),
            len(fake),
            RECOMMENDED_CLIPS,
        )
    return frechet_distance(
        i3d_features(model, clips_tensor(real, standard)), i3d_features(model, clips_tensor(fake, standard))
    )
