"""Reading one training clip: its frames as model input, its audio features, and the official window sampling.

Windows are drawn with a `random.Random` per sample (seeded from the run seed, epoch and sample index), so a
sample is the same whatever worker or rank draws it and a resumed run sees exactly the samples it would have seen.
The draws follow the official datasets: a start uniform over the clip; the U-Net's reference window redrawn until it
does not overlap the target window; SyncNet's negative window redrawn only while it equals the positive one.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentsync.audio.decode import load_audio
from latentsync.audio.syncnet_mel import mel_window, melspectrogram
from latentsync.data.feature_cache import FeatureCache
from latentsync.data.sources import Clip, DataError
from latentsync.media.errors import MediaError
from latentsync.media.frames import FrameSource

FPS = 25
MAX_REPLACEMENTS = 50  # samples drawn in place of unusable ones before a batch gives up


class ClipError(DataError):
    """One clip cannot give a sample; `reason` is a short word for the counts in the log."""

    def __init__(self, clip: Clip, reason: str, detail: str = "") -> None:
        super().__init__(f"{clip.path}: {reason}{f' ({detail})' if detail else ''}")
        self.reason = reason


def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> random.Random:
    return random.Random(f"{seed}/{epoch}/{index}/{attempt}")


def unet_windows(rng: random.Random, num_frames: int, window: int = 16) -> tuple[int, int]:
    """(start, reference start): uniform starts, the reference redrawn until the two windows do not overlap."""
    start = rng.randint(0, num_frames - window)
    while True:
        ref = rng.randint(0, num_frames - window)
        if abs(ref - start) >= window:
            return start, ref


def syncnet_windows(rng: random.Random, num_frames: int, window: int = 16) -> tuple[int, int]:
    """(start, shifted start): the negative window may overlap the positive one, but never equals it."""
    start = rng.randint(0, num_frames - window)
    while True:
        wrong = rng.randint(0, num_frames - window)
        if wrong != start:
            return start, wrong


def to_model_range(frames: list[np.ndarray], resolution: int) -> torch.Tensor:
    """(n, 3, R, R) float32 in [-1, 1] from RGB uint8 frames (bicubic, antialiased, when not already R x R)."""
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    if pixels.shape[-2:] != (resolution, resolution):
        pixels = F.interpolate(pixels, size=(resolution, resolution), mode="bicubic", antialias=True).clamp(0, 1)
    return pixels * 2 - 1


class ClipReader:
    """Frames, mels and (optionally) Whisper features of clips, through the caches; one per dataset and worker."""

    def __init__(
        self,
        resolution: int,
        min_frames: int,
        mel_cache: FeatureCache,
        embeds_cache: FeatureCache | None = None,
        whisper: str | Path | None = None,
    ) -> None:
        self.resolution, self.min_frames = resolution, min_frames
        self.mel_cache, self.embeds_cache, self.whisper = mel_cache, embeds_cache, whisper
        self._encoder = None  # built in the process that first needs it (a DataLoader worker, or the main one)
        self.replaced: Counter[str] = Counter()  # reasons of samples replaced in this process

    def open(self, clip: Clip) -> FrameSource:
        try:
            source = FrameSource(clip.path, fps=FPS)
        except (MediaError, OSError) as exc:
            raise ClipError(clip, "undecodable", str(exc)) from None
        if len(source) < self.min_frames:
            source.close()
            raise ClipError(clip, "too short", f"{len(source)} frames, at least {self.min_frames} needed")
        if not source.info.has_audio:
            source.close()
            raise ClipError(clip, "no audio")
        return source

    def frames(self, clip: Clip, source: FrameSource, start: int, count: int = 16) -> torch.Tensor:
        try:
            frames = source.get(range(start, start + count))
        except (MediaError, OSError, ValueError) as exc:
            raise ClipError(clip, "undecodable", str(exc)) from None
        return to_model_range(frames, self.resolution)

    def _audio(self, clip: Clip) -> np.ndarray:
        try:
            return load_audio(clip.path)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - AudioError and decoder failures alike make the clip unusable
            raise ClipError(clip, "no audio", str(exc)) from None

    def mel(self, clip: Clip) -> torch.Tensor:
        """The whole clip's SyncNet mel (80, T), float32."""
        return self.mel_cache.get(clip, lambda: torch.from_numpy(melspectrogram(self._audio(clip))).float())

    def mel_window(self, clip: Clip, start: int) -> torch.Tensor:
        try:
            return mel_window(self.mel(clip), start)
        except ValueError as exc:
            raise ClipError(clip, "audio too short", str(exc)) from None

    def embeds(self, clip: Clip) -> torch.Tensor:
        """The clip's whole Whisper feature array (rows, layers, width), stored in fp16 as the official cache."""
        if self.embeds_cache is None or self.whisper is None:
            raise RuntimeError("this reader was built without Whisper")
        return self.embeds_cache.get(clip, lambda: self.encoder().features(self._audio(clip)).half())

    def encoder(self):
        from latentsync.audio.features import AudioEncoder

        if self._encoder is None:
            self._encoder = AudioEncoder(self.whisper, device="cpu")
        return self._encoder
