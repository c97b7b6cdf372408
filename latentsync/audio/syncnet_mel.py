"""The mel spectrogram SyncNet hears: the Wav2Lip recipe the official trainers use for the sync loss and SyncNet.

It differs from Whisper's log-mel on purpose (pre-emphasis, 800-point STFT every 12.5 ms, 55-7600 Hz mel bands,
dB scaled and mapped to [-4, 4]): the released StableSyncNet was trained on exactly this, 80 columns per second.
Parameters are the official `configs/audio.yaml` values (`AudioMelConfig` defaults).
"""

from __future__ import annotations

import math
from functools import lru_cache

import librosa
import numpy as np
import torch
from scipy.signal import lfilter

from latentsync.config import AudioMelConfig

MEL_RATE = 80  # columns per second: 16 kHz / hop 200
WINDOW_FRAMES = 16  # video frames a SyncNet window covers


def window_columns(num_frames: int = WINDOW_FRAMES, fps: float = 25) -> int:
    """Mel columns of a window of `num_frames` video frames: ceil(16 / 5 * 16) = 52 for the official 16 at 25 fps."""
    return math.ceil(num_frames * MEL_RATE / fps)


@lru_cache(maxsize=4)
def _mel_basis(sample_rate: int, n_fft: int, num_mels: int, fmin: int, fmax: int) -> np.ndarray:
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)


def melspectrogram(wav: np.ndarray, cfg: AudioMelConfig | None = None) -> np.ndarray:
    """(num_mels, 1 + len(wav) // hop) float64 normalised mel of a 16 kHz mono waveform."""
    cfg = cfg or AudioMelConfig()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {wav.shape}")
    if cfg.preemphasize:
        wav = lfilter([1, -cfg.preemphasis], [1], wav)  # float64 from here on, as the official code computes it
    spectrum = np.abs(librosa.stft(y=wav, n_fft=cfg.n_fft, hop_length=cfg.hop_size, win_length=cfg.win_size))
    mel = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.num_mels, cfg.fmin, cfg.fmax) @ spectrum
    floor = np.exp(cfg.min_level_db / 20 * np.log(10))
    db = 20 * np.log10(np.maximum(floor, mel)) - cfg.ref_level_db
    peak = cfg.max_abs_value
    scaled = 2 * peak * ((db - cfg.min_level_db) / -cfg.min_level_db) - peak
    return np.clip(scaled, -peak, peak) if cfg.allow_clipping_in_normalization else scaled


def mel_window(
    mel: np.ndarray | torch.Tensor, start_frame: int, num_frames: int = WINDOW_FRAMES, fps: float = 25
) -> torch.Tensor:
    """The (1, num_mels, 52) float32 window under video frames start_frame .. start_frame + 15.

    Starts at column int(80 * start / 25) as the official datasets do; a window running past the end of the audio
    is an error (the datasets then draw another sample).
    """
    mel = torch.as_tensor(mel)
    length = window_columns(num_frames, fps)
    first = int(MEL_RATE * (start_frame / float(fps)))
    window = mel[:, first : first + length]
    if start_frame < 0 or window.shape[-1] != length:
        raise ValueError(f"mel window of frames {start_frame}..{start_frame + num_frames - 1} runs past the audio")
    return window.float().unsqueeze(0)
