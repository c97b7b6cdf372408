"""The whole clip's Whisper log-mel, computed in 30 s blocks so that memory peaks at the size of the mel itself.

whisper.audio.log_mel_spectrogram takes the STFT of the whole clip at once: its complex and power spectra
(201 bins every 10 ms) are ~150 MB of temporaries per 10 minutes of audio, against 19 MB for the mel. Here
each block's STFT gets exactly the samples its frames read (a frame spans N_FFT / 2 samples either side of
its centre), so interior frames never see padding and the clip's own ends keep the STFT's reflect padding;
every block of a long clip has the same length, so the mel filter product runs the same kernel for every
frame. Each frame's value thus equals whisper's bit for bit. Only the normalisation needs the whole clip
(its maximum); it runs in place.
"""

from __future__ import annotations

import torch
from whisper.audio import HOP_LENGTH, N_FFT, mel_filters

BLOCK_FRAMES = 3000  # 30 s: the length of one encoder window
CONTEXT_FRAMES = N_FFT // 2 // HOP_LENGTH + 1  # hops of samples before and after a block that its frames read


def log_mel(samples: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """(n_mels, len(samples) // 160) normalised log-mel of 16 kHz float32 `samples`, as whisper computes it."""
    num_frames = len(samples) // HOP_LENGTH
    window = torch.hann_window(N_FFT)
    filters = mel_filters(samples.device, n_mels)
    mel = torch.empty(n_mels, num_frames)
    last_block = max(num_frames - BLOCK_FRAMES, 0)  # a short clip is one block; a long one ends on a full block
    for first in [*range(0, last_block, BLOCK_FRAMES), last_block]:
        end = min(first + BLOCK_FRAMES, num_frames)
        lo = max(first - CONTEXT_FRAMES, 0) * HOP_LENGTH
        hi = min((end + CONTEXT_FRAMES) * HOP_LENGTH, len(samples))
        spectrum = torch.stft(samples[lo:hi], N_FFT, HOP_LENGTH, window=window, return_complex=True)
        skip = first - lo // HOP_LENGTH  # the STFT's frame k is centred on sample lo + k * hop
        power = spectrum[:, skip : skip + end - first].abs() ** 2
        mel[:, first:end] = torch.clamp(filters @ power, min=1e-10).log10()
    mel.clamp_(min=(mel.max() - 8.0).item())  # an 80 dB floor below the clip's loudest bin
    return mel.add_(4.0).div_(4.0)
