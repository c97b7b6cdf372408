"""Fitting a video's length to an audio's length: the sync modes of the hosted lip-sync APIs.

Pure arithmetic on lengths, no I/O. Lengths are in frames of the output rate (25 fps). The audio
needs `ceil(n_audio)` frames to be fully covered (a 1e-6 frame tolerance absorbs float noise), and
the output audio always spans the output frames exactly: it is trimmed, or padded with silence.

- cut_off: as long as the shorter of the two; frames play in order.
- loop:    the video restarts from frame 0 until the audio ends.
- bounce:  the video plays forward, then backward, then forward... without showing the turning
           frames twice (0 1 2 3 2 1 0 1 ...), until the audio ends.
- silence: as long as the longer: extra video frames get silent audio; extra audio is spoken by the
           last frame held still.
- remap:   the video is time-stretched (or compressed) to the audio's length: output frame k of n
           shows source frame floor((k + 1/2) * n_video / n), the frame under the midpoint of
           output frame k on the linearly mapped timeline.

When the video is longer than the audio, loop and bounce cut it to the audio (as the hosted APIs
do); remap compresses it, dropping frames evenly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

import numpy as np

from latentsync.constants import MODEL_SAMPLE_RATE, VIDEO_FPS
from latentsync.errors import LatentSyncError

SyncMode = Literal["cut_off", "loop", "bounce", "silence", "remap"]
SYNC_MODES: tuple[str, ...] = get_args(SyncMode)


class SyncError(LatentSyncError, ValueError):
    """A sync mode or a length that no plan can be made from."""


@dataclass(frozen=True)
class SyncPlan:
    """Which source frame each output frame shows, and how long the output audio is."""

    mode: SyncMode
    frame_indices: np.ndarray  # int32, one source frame index per output frame
    audio_samples: int  # samples the output audio must have: n_frames at the output rate
    pad_samples: int  # silent samples appended after the input audio to reach audio_samples

    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)

    def fit_audio(self, audio: np.ndarray) -> np.ndarray:
        """Trim or zero-pad `audio` (samples on the last axis) to exactly `audio_samples`."""
        audio = audio[..., : self.audio_samples]
        padding = [(0, 0)] * (audio.ndim - 1) + [(0, self.audio_samples - audio.shape[-1])]
        return np.pad(audio, padding)


def plan_sync(
    mode: SyncMode, n_video: int, n_audio: float, sample_rate: int = MODEL_SAMPLE_RATE, fps: int | Fraction = VIDEO_FPS
) -> SyncPlan:
    """Plan the output of `mode` for a video of `n_video` frames and audio lasting `n_audio` frames."""
    if mode not in SYNC_MODES:
        raise SyncError(f"unknown sync mode {mode!r}; expected one of {', '.join(SYNC_MODES)}")
    if n_video < 1:
        raise SyncError(f"the video has no frames (n_video={n_video})")
    if not n_audio > 0:
        raise SyncError(f"the audio is empty (n_audio={n_audio})")
    audio_frames = math.ceil(n_audio - 1e-6)
    n_out = {"cut_off": min(n_video, audio_frames), "silence": max(n_video, audio_frames)}.get(mode, audio_frames)
    source = np.arange(n_out, dtype=np.int64)
    if mode == "loop":
        source %= n_video
    elif mode == "bounce":
        period = max(2 * n_video - 2, 1)  # a one-frame video just holds its frame
        source %= period
        source = np.where(source < n_video, source, period - source)
    elif mode == "silence":
        np.minimum(source, n_video - 1, out=source)
    elif mode == "remap":
        source = (2 * source + 1) * n_video // (2 * n_out)
    samples_per_frame = Fraction(sample_rate) / Fraction(fps)
    audio_samples = round(n_out * samples_per_frame)
    input_samples = round(float(n_audio) * samples_per_frame)
    return SyncPlan(mode, source.astype(np.int32), audio_samples, max(0, audio_samples - input_samples))
