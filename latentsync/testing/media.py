"""Small media helpers for tests and benchmarks: exact decoding, wav writing and picture similarity."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

from latentsync.constants import MODEL_SAMPLE_RATE


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def decode_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a video exactly as decoded (RGB uint8), without any retiming."""
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    raise AssertionError(f"{path} has fewer than {count} frames")


def write_wav(path: Path, samples: np.ndarray, rate: int = MODEL_SAMPLE_RATE) -> Path:
    """A 16-bit mono wav of float samples in [-1, 1]."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path
