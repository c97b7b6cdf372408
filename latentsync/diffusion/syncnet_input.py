"""StableSyncNet's visual input: 16 frames (or their VAE latents) stacked along the channels, frame-major.

One home for the U-Net's sync loss, SyncNet training and the SyncNet accuracy evaluation, so all three feed the
network the same tensor. It lives beside the latents because the latent-space configs score VAE latents drawn as
every other training latent is drawn (`encode_latents`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

from latentsync.diffusion.latents import encode_latents
from latentsync.errors import InvalidArgumentError


def syncnet_input(frames: torch.Tensor, num_frames: int, resolution: int | None, lower_half: bool) -> torch.Tensor:
    """(b*f, c, R, R) frames (or latents) to SyncNet's (b, f*c, H, W) stack, frame-major channels.

    Frames of another size are resized bicubically (no antialias) to the SyncNet's `resolution` first, as the
    official trainer does for 512 px U-Nets (None: never, for latents); with `lower_half` only rows H//2: are kept.
    """
    if resolution is not None and frames.shape[-1] != resolution:
        frames = F.interpolate(frames, size=(resolution, resolution), mode="bicubic")
    n, c, h, w = frames.shape
    stack = frames.reshape(n // num_frames, num_frames * c, h, w)
    return stack[:, :, h // 2 :, :] if lower_half else stack


def syncnet_stack(
    frames: torch.Tensor, latent_space: bool, lower_half: bool, vae: AutoencoderKL | None = None
) -> torch.Tensor:
    """StableSyncNet's visual input `b (f c) h w` of (b, f, 3, R, R) frames in [-1, 1], as its config says.

    Latent-space configs score the frames' VAE latents, one posterior draw from torch's global generator
    (`latent_dist.sample()` x 0.18215), encoded without gradients; `lower_half` keeps the lower half rows.
    """
    f = frames.shape[1]
    if latent_space:
        if vae is None:
            raise InvalidArgumentError("a latent-space SyncNet config (data.latent_space: true) needs the VAE")
        with torch.no_grad():
            flat = frames.flatten(0, 1).to(vae.device, vae.dtype)
            per_frame = encode_latents(vae, flat, None, batch=flat.shape[0])
    else:
        per_frame = frames.flatten(0, 1)
    return syncnet_input(per_frame, f, None, lower_half)
