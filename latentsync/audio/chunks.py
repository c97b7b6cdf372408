"""Slicing the 50 rows/s feature array into the per-video-frame audio embeddings the U-Net attends to.

Each video frame sees 10 feature rows (0.2 s) around its own time: the frames' worth of context the
official checkpoints were trained with (two video frames before, two after, at 2 rows per frame).
Rows are flattened time-major, so token `layers * t + layer` is layer `layer` of row t.
"""

from __future__ import annotations

import numpy as np
import torch

from latentsync.constants import AUDIO_ROWS_AFTER, AUDIO_ROWS_BEFORE, CLIP_FRAMES, FEATURE_RATE, VIDEO_FPS


def num_video_frames(num_rows: int, fps: float = VIDEO_FPS) -> int:
    """How many frames the official pipeline makes for `num_rows` feature rows at `fps`.

    The official loop emits frame i, then stops once frame i's start row int(i * 50 / fps) is past
    the last row, so it runs one to two frames beyond the audio: N // 2 + 2 at 25 fps.
    """
    if num_rows <= 0:
        raise ValueError(f"num_rows must be positive, got {num_rows}")
    step = FEATURE_RATE / float(fps)
    first_past_end = max(int(num_rows / step) - 2, 0)  # a frame known to start within the audio
    while int(first_past_end * step) <= num_rows:
        first_past_end += 1
    return first_past_end + 1


def frame_rows(num_rows: int, fps: float = VIDEO_FPS, start: int = 0, count: int | None = None) -> np.ndarray:
    """Indices (count, 10) of the feature rows video frames start .. start + count - 1 see, clamped to the audio.

    Without `count`, frames run to the official frame count (`num_video_frames`); frames beyond the
    audio repeat its last row.
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if count is None:
        count = max(num_video_frames(num_rows, fps) - start, 0)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    frames = np.arange(start, start + count, dtype=np.int64)
    centres = np.floor(frames * FEATURE_RATE / float(fps)).astype(np.int64)
    return np.clip(centres[:, None] + np.arange(-AUDIO_ROWS_BEFORE, AUDIO_ROWS_AFTER), 0, num_rows - 1)


def take_chunks(features: torch.Tensor, rows: np.ndarray, first_row: int = 0) -> torch.Tensor:
    """The (len(rows), 10 * layers, width) embeddings of `frame_rows` output, from rows numbered from `first_row`."""
    picked = features[torch.from_numpy(rows - first_row).to(features.device)]  # (count, 10, layers, width)
    return picked.reshape(len(rows), rows.shape[1] * features.shape[1], features.shape[2])


def frame_chunks(
    features: torch.Tensor, fps: float = VIDEO_FPS, start: int = 0, count: int | None = None
) -> torch.Tensor:
    """Per-frame embeddings (count, 10 * layers, width) for video frames start .. start + count - 1.

    `features` is the (N, layers, width) array from `AudioEncoder.features`; `frame_rows` says which rows
    each frame sees. `AudioFeatureStream.frame_chunks` gives the same without holding the whole array.
    """
    if features.ndim != 3 or len(features) == 0:
        raise ValueError(f"features must be a non-empty (rows, layers, width) array, got shape {tuple(features.shape)}")
    return take_chunks(features, frame_rows(len(features), fps, start, count))


def training_window(features: torch.Tensor, start: int, num_frames: int = CLIP_FRAMES) -> torch.Tensor:
    """The (num_frames, 10 * layers, width) audio condition of a training clip starting at video frame `start`."""
    return frame_chunks(features, VIDEO_FPS, start, num_frames)
