"""Random sources of the diffusion: per-video generators, inference's shared initial noise, training noise."""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """The random source for one video, on the device that runs the U-Net when that is a GPU.

    The official script seeds the global generators and draws on the GPU, so a CUDA generator with the same seed
    reproduces its noise there; elsewhere (CPU, and MPS, where the official code draws on the CPU) it is a CPU one.
    """
    device = torch.device(device)
    return torch.Generator(device if device.type == "cuda" else "cpu").manual_seed(seed)


def initial_noise(
    channels: int, size: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """One latent noise image (1, channels, 1, size, size) that every frame of a video starts from at inference.

    Draw it in the U-Net's dtype, as the official pipeline does, so that fp16 runs start from its noise.
    """
    return randn_tensor((1, channels, 1, size, size), generator=generator, device=device, dtype=dtype)


def mixed_noise(
    shape: tuple[int, ...] | torch.Size,
    alpha: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training noise (b, c, f, h, w) correlated across frames (PYoCo, arXiv 2305.10474), unit variance.

    A frame-0 part shared by all frames with variance alpha²/(1+alpha²) plus an independent part with variance
    1/(1+alpha²); drawn in the official order (the shared draw first, each of the full shape) so a seeded
    generator reproduces the official trainer's noise.
    """
    frames = shape[2]
    shared = torch.randn(shape, generator=generator, dtype=dtype, device=device) * (alpha**2 / (1 + alpha**2)) ** 0.5
    shared = shared[:, :, 0:1].repeat(1, 1, frames, 1, 1)
    independent = torch.randn(shape, generator=generator, dtype=dtype, device=device) * (1 / (1 + alpha**2)) ** 0.5
    return independent + shared


def repeated_noise(
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training noise with one frame's draw repeated over all frames (`use_mixed_noise: false`, arXiv 2308.09716)."""
    noise = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return noise[:, :, 0:1].repeat(1, 1, shape[2], 1, 1)
