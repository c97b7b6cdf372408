"""Whisper encoder features: the per-layer hidden states that condition the U-Net, at 50 rows per second.

Only the encoder of an openai-whisper checkpoint is built and run; no text is ever decoded. The
features reproduce the official pipeline bit for bit: one log-mel over the whole clip, 30 s windows
padded with 0.0 in the normalised log-mel domain, the input to the first block plus every block's output
(no final LayerNorm), and whisper's non-fused attention (the fused kernel differs by ~4e-6).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from whisper.audio import HOP_LENGTH
from whisper.model import AudioEncoder as WhisperAudioEncoder
from whisper.model import ModelDimensions, disable_sdpa

from latentsync.audio.chunks import frame_chunks, training_window
from latentsync.audio.decode import SAMPLE_RATE, AudioError, load_audio
from latentsync.audio.mel import log_mel
from latentsync.audio.stream import AudioFeatureStream
from latentsync.audio.windows import WindowMode
from latentsync.models.loading import CheckpointError, load_into, load_weights_file

MIN_SAMPLES = 2 * HOP_LENGTH  # two mel frames make one feature row


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

    def stream(
        self, audio: str | Path | np.ndarray | torch.Tensor, windows: WindowMode = "official"
    ) -> AudioFeatureStream:
        """The clip's features as a lazy `AudioFeatureStream`: its log-mel now, each window when first read.

        `audio` is a media path or a 16 kHz mono waveform; the stream keeps no reference to it. `windows`
        picks how clips longer than 30 s are cut (see `plan_windows`): "official" reproduces the official
        features, restarting the encoder every 30 s (the source of the lip glitch at each restart);
        "overlap" gives every row context on both sides and cross-fades neighbouring windows over 5 s, so
        the features change as smoothly across a switch as anywhere else, at about 1.5x the encoder cost.
        Up to 30 s both are identical.
        """
        return AudioFeatureStream(self, log_mel(_waveform(audio), self.dims.n_mels), windows)

    def features(self, audio: str | Path | np.ndarray | torch.Tensor, windows: WindowMode = "official") -> torch.Tensor:
        """The whole feature array (samples // 320, num_layers, width), float32 on the CPU, 50 rows per second.

        The rows of `stream(audio, windows)`; prefer the stream for long clips, whose array this holds whole.
        """
        features = self.stream(audio, windows)
        return features.rows(0, len(features))

    def encode_window(self, mel: torch.Tensor) -> torch.Tensor:
        """(window_frames // 2, num_layers, width) float32 CPU features of up to 30 s of log-mel (n_mels, frames).

        A shorter `mel` is padded with 0.0 in the normalised log-mel domain, as the official code does.
        """
        mel = F.pad(mel, (0, self.window_frames - mel.shape[-1]), value=0.0)
        return self._hidden_states(mel.to(self.device, self.dtype)[None])[0].float().cpu()

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
    ckpt = load_weights_file(path, "whisper checkpoint")
    if not isinstance(ckpt, dict) or not {"dims", "model_state_dict"} <= ckpt.keys():
        raise CheckpointError(f"{path} is not an openai-whisper checkpoint (needs 'dims' and 'model_state_dict')")
    try:
        dims = ModelDimensions(**ckpt["dims"])
    except TypeError as exc:
        raise CheckpointError(f"{path}: unusable whisper 'dims' {ckpt['dims']}: {exc}") from exc
    encoder = {k.removeprefix("encoder."): v for k, v in ckpt["model_state_dict"].items() if k.startswith("encoder.")}
    return dims, encoder
