"""What the U-Net sees besides the noisy latents: the 13-channel input order and the audio of each guidance branch.

Layouts: per-frame tensors are (b*f, c, h, w) batch-major; the U-Net's clip layout is (b, c, f, h, w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_video(frames: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(b*f, c, h, w) per-frame tensors to the U-Net's (b, c, f, h, w) clip layout."""
    n, c, h, w = frames.shape
    return frames.reshape(n // num_frames, num_frames, c, h, w).transpose(1, 2)


def from_video(video: torch.Tensor) -> torch.Tensor:
    """(b, c, f, h, w) clips back to (b*f, c, h, w) per-frame tensors."""
    b, c, f, h, w = video.shape
    return video.transpose(1, 2).reshape(b * f, c, h, w)


def latent_mask(mask: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """A (n, 1, R, R) pixel mask (1 keeps, 0 regenerates) at latent size: nearest, i.e. `mask[::8, ::8]`."""
    return F.interpolate(mask, size=tuple(size))


def unet_condition(mask: torch.Tensor, masked_latents: torch.Tensor, reference_latents: torch.Tensor) -> torch.Tensor:
    """The 9 conditioning channels (b, 9, f, h, w): latent mask (1), masked-frame latents (4), reference (4).

    All three in the clip layout; the mask already at latent size (`latent_mask`).
    """
    return torch.cat([mask, masked_latents, reference_latents], dim=1)


def unet_input(noisy_latents: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """The U-Net's 13 input channels: noisy latents (4) first, then `unet_condition`'s 9."""
    return torch.cat([noisy_latents, condition], dim=1)


def null_audio(audio_embeds: torch.Tensor) -> torch.Tensor:
    """The unconditional branch's audio for classifier-free guidance: all zeros, as the official pipeline."""
    return torch.zeros_like(audio_embeds)
