"""Decoding any media file's audio track to the mono 16 kHz waveform the Whisper features are computed from."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from latentsync.constants import MODEL_SAMPLE_RATE as SAMPLE_RATE
from latentsync.errors import LatentSyncError


class AudioError(LatentSyncError, ValueError):
    """An audio input cannot be used: missing, unreadable, without an audio stream, empty or too short."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, as_int16: bool = False) -> np.ndarray:
    """Decode the first audio stream of `path` (wav, mp3, m4a, aac, a video's track...) to mono float32
    (or the int16 samples themselves with `as_int16`, half the memory, e.g. for audio that is only re-encoded).

    The stream is down-mixed and resampled by libswresample (PyAV's AudioResampler) to signed 16-bit
    samples and divided by 32768, as the official pipeline's ffmpeg call does: a 16 kHz mono int16 wav
    comes back bit-for-bit, and other sources are quantised exactly like the features were trained on.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise AudioError(f"{path}: not a readable media file ({exc})") from exc
    with container:
        if not container.streams.audio:
            kinds = ", ".join(s.type for s in container.streams) or "none"
            raise AudioError(f"{path}: no audio stream (streams found: {kinds})")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        pieces: list[np.ndarray] = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except av.FFmpegError as exc:
            raise AudioError(f"{path}: audio decoding failed ({exc})") from exc
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
    del pieces  # from here on only the int16 copy and the float32 result are alive: 3x the int16 size
    if samples.size == 0:
        raise AudioError(f"{path}: the audio stream contains no samples")
    if as_int16:
        return samples
    audio = samples.astype(np.float32)
    audio /= 32768.0
    return audio
