"""The Stable Diffusion VAE (stabilityai/sd-vae-ft-mse) that maps face crops to 4-channel latents."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

from .loading import CheckpointError

VAE_HUB_ID = "stabilityai/sd-vae-ft-mse"
VAE_SCALING_FACTOR = 0.18215  # LatentSync uses SD-1.5's factor, with no shift
VAE_SHIFT_FACTOR = 0.0

# The architecture of sd-vae-ft-mse, for building a model without downloading (tests, custom VAEs).
SD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 256,
    "scaling_factor": VAE_SCALING_FACTOR,
}


def load_vae(
    source: str | Path = VAE_HUB_ID,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> AutoencoderKL:
    """Load the VAE from a local diffusers folder, or from a hub id (which may download on first use).

    The scaling factor is forced to LatentSync's 0.18215 whatever the folder's config says, because the U-Net
    was trained on latents scaled that way.
    """
    path = Path(source)
    looks_local = path.exists() or str(source).startswith((".", "/", "~")) or path.suffix
    if looks_local and not (path / "config.json").is_file():
        raise CheckpointError(
            f"VAE folder {path} has no config.json; fetch the official VAE with `latentsync download` "
            f"or pass a diffusers folder or a hub id such as {VAE_HUB_ID}"
        )
    vae = AutoencoderKL.from_pretrained(
        str(path.expanduser()) if looks_local else str(source), torch_dtype=dtype or torch.float32
    )
    vae.register_to_config(scaling_factor=VAE_SCALING_FACTOR, shift_factor=VAE_SHIFT_FACTOR)
    vae.requires_grad_(False)
    return vae.to(device=device).eval()
