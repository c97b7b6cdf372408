"""Sync confidence and distance (LSE-C / LSE-D) of face crops against their audio, as the original SyncNet scores them.

The procedure is the one the field reports (joonson/syncnet_python, LatentSync's `eval/syncnet`):

- frames: 224 px face crops as raw BGR 0-255 floats; audio: 16 kHz int16-scale samples, MFCC with
  python_speech_features' defaults (13 coefficients, 100 per second);
- window i pairs frames i..i+4 with MFCC columns 4i..4i+19, for i < min(frames, samples // 640) - 5;
- each video feature is compared with the audio features of windows i-15..i+15 (zero vectors past the ends);
- the mean distance per shift gives offset = 15 - argmin, min_dist = its minimum and conf = median - minimum.

`SyncScorer` is the entry point shared with data preparation (its sync filter) and inference (active speaker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentsync.errors import InvalidArgumentError
from latentsync.models.auxiliary.syncnet_v2 import SyncNetV2

SAMPLE_RATE = 16000
FPS = 25
CROP_SIZE = 224
WINDOW_FRAMES = 5  # video frames per window
MFCC_STEPS = 20  # MFCC columns per window (0.2 s)
MFCC_PER_FRAME = 4  # 100 MFCC columns per second / 25 frames per second
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
MAX_SHIFT = 15  # offsets searched: -15..+15 frames
BATCH = 20


@dataclass(frozen=True)
class SyncScore:
    """offset: frames the audio leads (+) or lags (-) the lips; min_dist: LSE-D; conf: LSE-C."""

    offset: int
    min_dist: float
    conf: float


@dataclass(frozen=True)
class SyncDetails:
    """Everything the score is computed from, for reports and checks against the official code."""

    score: SyncScore
    mfcc: np.ndarray  # (n, 13) float64
    video_features: torch.Tensor  # (windows, 1024)
    audio_features: torch.Tensor  # (windows, 1024)
    distances: torch.Tensor  # (windows, 2 * MAX_SHIFT + 1)
    mean_distances: torch.Tensor  # (2 * MAX_SHIFT + 1,)


def mfcc(audio: np.ndarray) -> np.ndarray:
    """(n, 13) float64 MFCC of 16 kHz audio in [-1, 1], computed on int16-scale samples as the official scorer reads
    them (float64 throughout: a float32 pre-emphasis alone moves the coefficients by 2e-5)."""
    import python_speech_features

    return python_speech_features.mfcc(np.asarray(audio, dtype=np.float64) * 32768.0, SAMPLE_RATE)


def window_count(frames: int, samples: int) -> int:
    """How many 5-frame windows the official scorer compares (it needs 5 frames and 0.2 s of audio past each)."""
    return max(min(frames, samples // SAMPLES_PER_FRAME) - WINDOW_FRAMES, 0)


def distance_table(video_features: torch.Tensor, audio_features: torch.Tensor, max_shift: int = MAX_SHIFT):
    """(windows, 2*max_shift+1): distance of video window i to audio window i+j-max_shift (zeros past the ends)."""
    padded = F.pad(audio_features, (0, 0, max_shift, max_shift))
    shifts = 2 * max_shift + 1
    rows = [
        F.pairwise_distance(video_features[i : i + 1].expand(shifts, -1), padded[i : i + shifts])
        for i in range(len(video_features))
    ]
    return torch.stack(rows)


def offset_and_confidence(distances: torch.Tensor, max_shift: int = MAX_SHIFT) -> tuple[SyncScore, torch.Tensor]:
    """The score from a distance table, and the mean distance per shift it was read from."""
    mean = distances.mean(0)
    min_dist, index = torch.min(mean, 0)
    conf = torch.median(mean) - min_dist
    return SyncScore(max_shift - int(index), float(min_dist), float(conf)), mean


def bgr_crops(frames: np.ndarray) -> torch.Tensor:
    """(n, 3, 224, 224) uint8 BGR from (n, H, W, 3) uint8 RGB crops, resized bilinearly if they are not 224 px."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InvalidArgumentError(f"face crops must be uint8 (n, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    if frames.shape[1:3] != (CROP_SIZE, CROP_SIZE):
        import cv2

        frames = np.stack([cv2.resize(f, (CROP_SIZE, CROP_SIZE)) for f in frames])
    return torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])).permute(0, 3, 1, 2)


class SyncScorer:
    """The original SyncNet with the scoring procedure around it. Build with `SyncScorer.load(path)`."""

    def __init__(self, model: SyncNetV2, device: str | torch.device = "cpu", batch_size: int = BATCH) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def load(cls, weights: str | Path, device: str | torch.device | None = None) -> SyncScorer:
        """Load `syncnet_v2.model`; the device defaults to CUDA when present. Always fp32, as the metric is defined."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(SyncNetV2.from_file(weights), device)

    def score_crops(self, frames: np.ndarray, audio: np.ndarray) -> SyncScore:
        """Score 25 fps RGB face crops (n, H, W, 3) against 16 kHz mono float audio of the same span."""
        return self.details(frames, audio).score

    @torch.no_grad()
    def details(self, frames: np.ndarray, audio: np.ndarray) -> SyncDetails:
        """`score_crops` with the MFCC, features and distance table it came from."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise InvalidArgumentError(f"audio must be mono (samples,), got shape {audio.shape}")
        windows = window_count(len(frames), len(audio))
        if windows < 1:
            raise InvalidArgumentError(
                f"too short to score: {len(frames)} frames and {len(audio) / SAMPLE_RATE:.2f} s of audio "
                f"(at least {WINDOW_FRAMES + 1} frames and as much audio are needed)"
            )
        crops = bgr_crops(frames[: windows + WINDOW_FRAMES - 1])
        coefficients = mfcc(audio)
        cc = torch.from_numpy(coefficients.T.astype(np.float32))[None]  # (1, 13, n)
        video, sound = [], []
        for start in range(0, windows, self.batch_size):
            stop = min(start + self.batch_size, windows)
            clip = crops[start : stop + WINDOW_FRAMES - 1].to(self.device, torch.float32)  # (t, 3, H, W)
            lips = clip.unfold(0, WINDOW_FRAMES, 1).permute(0, 1, 4, 2, 3)  # (b, 3, 5, H, W)
            steps = torch.stack(
                [cc[..., MFCC_PER_FRAME * i : MFCC_PER_FRAME * i + MFCC_STEPS] for i in range(start, stop)]
            )
            video.append(self.model.forward_lip(lips).cpu())
            sound.append(self.model.forward_aud(steps.to(self.device)).cpu())
        video_features, audio_features = torch.cat(video), torch.cat(sound)
        distances = distance_table(video_features, audio_features)
        score, mean = offset_and_confidence(distances)
        return SyncDetails(score, coefficients, video_features, audio_features, distances, mean)
