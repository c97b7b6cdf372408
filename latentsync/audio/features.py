"""Whisper encoder features: the per-layer hidden states that condition the U-Net, at 50 rows per second.

Only the encoder of an openai-whisper checkpoint is built and run; no text is ever decoded. The
features reproduce the official pipeline bit for bit: one log-mel over the whole clip, 30 s windows
padded with 0.0 in the normalised log-mel domain, the input to the first block plus every block's output
(no final LayerNorm), and whisper's non-fused attention (the fused kernel differs by ~4e-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from whisper.audio import HOP_LENGTH, log_mel_spectrogram
from whisper.model import AudioEncoder as WhisperAudioEncoder
from whisper.model import ModelDimensions, disable_sdpa

from latentsync.audio.chunks import frame_chunks, training_window
from latentsync.audio.decode import SAMPLE_RATE, AudioError, load_audio
from latentsync.models.loading import CheckpointError, load_into

WindowMode = Literal["official", "overlap"]
MIN_SAMPLES = 2 * HOP_LENGTH  # two mel frames make one feature row


@dataclass(frozen=True)
class Window:
    """One encoder pass: mel frames [start, start + window length) give feature rows [row_lo, row_hi).

    The first `fade_in` of those rows are shared with the previous window and the last `fade_out` with
    the next one; over shared rows the two windows' weights cross-fade and sum to one.
    """

    start: int
    row_lo: int
    row_hi: int
    fade_in: int = 0
    fade_out: int = 0

    def weights(self) -> torch.Tensor:
        """Its weight on each of its rows: rising over `fade_in`, 1 in between, falling over `fade_out`."""
        full = self.row_hi - self.row_lo - self.fade_in - self.fade_out
        return torch.cat([_rise(self.fade_in), torch.ones(full), 1 - _rise(self.fade_out)])


def _rise(n: int) -> torch.Tensor:
    """A raised-cosine ramp from 0 to 1 over n rows, sampled at row centres so that r[i] = 1 - r[n - 1 - i]."""
    return torch.sin(torch.pi / 2 * (torch.arange(n) + 0.5) / n) ** 2


def plan_windows(num_mel_frames: int, window: int, mode: WindowMode = "official") -> list[Window]:
    """Where each encoder window starts and which feature rows it supplies, and how (rows are mel frames // 2).

    "official": back-to-back windows from 0, each supplying all of its rows alone, as the official
    code does; each window restart is a context cut and a jump in the features.
    "overlap": full-length windows hopping by 2/3 of a window (the last one ends at the clip's end
    instead of being padded). Neighbours hand over mid-way through their overlap with a raised-cosine
    cross-fade over 1/6 window (250 rows, 5 s): a row's position within the window, which whisper's
    positional embedding feeds into every row, changes at a switch, and the cross-fade spreads that
    change over 5 s instead of one row. Each window's rows at full weight have at least 7.5 s of real
    audio on each side (except at the clip's ends) and cross-fading rows at least 2.5 s, the window
    weighing more having at least 5 s. A clip of at most one window is one window in both modes, so
    the results are identical.
    """
    num_rows = num_mel_frames // 2
    if mode == "official":
        plan = [Window(s, s // 2, (s + min(window, num_mel_frames - s)) // 2) for s in range(0, num_mel_frames, window)]
        return [w for w in plan if w.row_hi > w.row_lo]  # a 1-frame tail window supplies no row
    if mode != "overlap":
        raise ValueError(f"windows must be 'official' or 'overlap', got {mode!r}")
    if num_mel_frames <= window:
        return [Window(0, 0, num_rows)]
    hop = window * 2 // 3 // 2 * 2  # even, so window rows stay aligned with the global rows
    half_fade = window // 24  # rows each side of a switch: the fade spans half the smallest overlap (window // 6 rows)
    last = (num_mel_frames - window) // 2 * 2
    starts = sorted(set(range(0, last, hop)) | {last})
    switches = [(a + b + window) // 4 for a, b in zip(starts, starts[1:])]  # mid-way through each overlap
    los = [0] + [r - half_fade for r in switches]
    his = [r + half_fade for r in switches] + [num_rows]
    fades = [0] + [2 * half_fade] * len(switches) + [0]
    return [Window(*w) for w in zip(starts, los, his, fades, fades[1:])]


class AudioEncoder:
    """The encoder half of an openai-whisper checkpoint, turning audio into U-Net conditioning features."""

    def __init__(
        self, checkpoint_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ):
        """Build the encoder from `checkpoint_path` ({"dims", "model_state_dict"}), ignoring the decoder.

        Weights stay float32; `dtype` is the compute dtype (default fp16 on CUDA, fp32 elsewhere, as
        in the official pipeline, whose whisper layers cast weights to the input's dtype).
        """
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.dims, state_dict = _read_whisper_checkpoint(Path(checkpoint_path))
        d = self.dims
        self.encoder = WhisperAudioEncoder(d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer)
        load_into(self.encoder, state_dict, str(checkpoint_path), strict=True)
        self.encoder.eval().requires_grad_(False).to(self.device)

    @property
    def width(self) -> int:
        """Channels per feature row (384 for tiny, 768 for small)."""
        return self.dims.n_audio_state

    @property
    def num_layers(self) -> int:
        """Hidden states per row: the first block's input plus one per block (5 for tiny, 13 for small)."""
        return self.dims.n_audio_layer + 1

    @property
    def window_frames(self) -> int:
        """Mel frames per encoder pass (3000 = 30 s for every released whisper model)."""
        return 2 * self.dims.n_audio_ctx

    def features(self, audio: str | Path | np.ndarray | torch.Tensor, windows: WindowMode = "official") -> torch.Tensor:
        """Feature array (samples // 320, num_layers, width), float32 on the CPU, 50 rows per second.

        `audio` is a media path or a 16 kHz mono waveform. `windows` picks how clips longer than 30 s
        are cut (see `plan_windows`): "official" reproduces the official features, restarting the
        encoder every 30 s (the source of the lip glitch at each restart); "overlap" gives every row
        context on both sides and cross-fades neighbouring windows over 5 s, so the features change
        as smoothly across a switch as anywhere else, at about 1.5x the encoder cost. Up to 30 s both
        are identical. One window is encoded at a time and added into the output with its weights, so
        memory beyond the output does not grow with the clip's length.
        """
        mel = log_mel_spectrogram(_waveform(audio), n_mels=self.dims.n_mels)
        plan = plan_windows(mel.shape[-1], self.window_frames, windows)
        out = torch.zeros(mel.shape[-1] // 2, self.num_layers, self.width)
        for w in plan:
            segment = mel[:, w.start : w.start + self.window_frames]
            segment = F.pad(segment, (0, self.window_frames - segment.shape[-1]), value=0.0)
            hidden = self._hidden_states(segment.to(self.device, self.dtype)[None])[0]
            rows = hidden[w.row_lo - w.start // 2 : w.row_hi - w.start // 2].float().cpu()
            out[w.row_lo : w.row_hi] += w.weights()[:, None, None] * rows  # weight 1 alone: exact copy
        return out

    @torch.inference_mode()
    def _hidden_states(self, mel: torch.Tensor) -> torch.Tensor:
        """(batch, n_audio_ctx, num_layers, width): the first block's input and every block's output."""
        enc = self.encoder
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(mel)))).permute(0, 2, 1)
        x = (x + enc.positional_embedding).to(x.dtype)
        states = [x]
        with disable_sdpa():
            for block in enc.blocks:
                x = block(x)
                states.append(x)
        return torch.stack(states, dim=2)

    frame_chunks = staticmethod(frame_chunks)
    training_window = staticmethod(training_window)


def _waveform(audio: str | Path | np.ndarray | torch.Tensor) -> torch.Tensor:
    """A 1-D float32 CPU tensor of 16 kHz samples, long enough for one feature row."""
    if isinstance(audio, (str, Path)):
        samples = torch.from_numpy(load_audio(audio, SAMPLE_RATE))
    else:
        samples = torch.as_tensor(audio).detach().cpu()
        if samples.ndim != 1 or not samples.is_floating_point():
            shape = tuple(samples.shape)
            raise AudioError(f"audio array must be 1-D float samples at 16 kHz, got {samples.dtype} {shape}")
        samples = samples.float()
    if samples.numel() < MIN_SAMPLES:
        raise AudioError(f"audio too short: {samples.numel()} samples; one feature row needs {MIN_SAMPLES} (20 ms)")
    return samples


def _read_whisper_checkpoint(path: Path) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """The model dimensions and the `encoder.*` weights (prefix removed) of an openai-whisper file."""
    if not path.is_file():
        raise CheckpointError(f"whisper checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read whisper checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or not {"dims", "model_state_dict"} <= ckpt.keys():
        raise CheckpointError(f"{path} is not an openai-whisper checkpoint (needs 'dims' and 'model_state_dict')")
    try:
        dims = ModelDimensions(**ckpt["dims"])
    except TypeError as exc:
        raise CheckpointError(f"{path}: unusable whisper 'dims' {ckpt['dims']}: {exc}") from exc
    encoder = {k.removeprefix("encoder."): v for k, v in ckpt["model_state_dict"].items() if k.startswith("encoder.")}
    return dims, encoder
