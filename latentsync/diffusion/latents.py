"""Face crops to scaled VAE latents and back, in bounded batches.

The posterior noise is one draw for all frames of a call, as the official single-batch `latent_dist.sample()`,
so the batch size bounds memory and never changes the result. Precomputed posterior moments (mean, log-variance)
sample to the same latents as encoding the frames again.
"""

from __future__ import annotations

from typing import cast

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.utils.torch_utils import randn_tensor
from torch.utils.checkpoint import checkpoint as recompute

# diffusers' DiagonalGaussianDistribution clamps the log-variance to this range before taking exp.
LOGVAR_RANGE = (-30.0, 20.0)


def encode_moments(vae: AutoencoderKL, images: torch.Tensor, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) of the VAE posterior of (n, 3, R, R) images in [-1, 1], each (n, 4, R/8, R/8), unscaled."""
    means, logvars = [], []
    for part in images.split(batch):
        dist = vae.encode(part.to(vae.device, vae.dtype)).latent_dist
        means.append(dist.mean)
        logvars.append(dist.logvar)
    return torch.cat(means), torch.cat(logvars)


def sample_latents(
    vae: AutoencoderKL, mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scaled latents `(mean + std * eps - shift) * scale` with one noise draw for the whole tensor.

    A None generator draws from torch's global generator, as the official training's `latent_dist.sample()`.
    """
    std = torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE))
    eps = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return (mean + std * eps - _shift(vae)) * vae.config["scaling_factor"]


def encode_latents(
    vae: AutoencoderKL, images: torch.Tensor, generator: torch.Generator | None = None, batch: int = 8
) -> torch.Tensor:
    """Sampled, scaled latents (n, 4, R/8, R/8) of (n, 3, R, R) images in [-1, 1], encoded `batch` at a time."""
    return sample_latents(vae, *encode_moments(vae, images, batch), generator)


def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, batch: int = 8, checkpoint: bool = False) -> torch.Tensor:
    """(n, 3, R, R) images, nominally in [-1, 1] and not clamped, of scaled (n, 4, h, w) latents.

    Gradients flow through when enabled (the training step decodes its clean-latent estimate this way). With
    `checkpoint`, each batch's decode is recomputed in the backward pass instead of kept, so the backward holds one
    batch's decoder activations at a time; every frame decodes on its own, so the result is the same.
    """

    def decode(part: torch.Tensor) -> torch.Tensor:
        return vae.decode(part.to(vae.device, vae.dtype) / vae.config["scaling_factor"] + _shift(vae)).sample

    if checkpoint and torch.is_grad_enabled():
        return torch.cat(
            [cast(torch.Tensor, recompute(decode, part, use_reentrant=False)) for part in latents.split(batch)]
        )
    return torch.cat([decode(part) for part in latents.split(batch)])


def _shift(vae: AutoencoderKL) -> float:
    return getattr(vae.config, "shift_factor", None) or 0.0
