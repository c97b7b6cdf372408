"""The DDIM noise schedule of LatentSync and the two training-side uses of it: forward diffusion and the one-step
clean-latent estimate that the pixel-space losses decode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import torch
from diffusers.schedulers.scheduling_ddim import DDIMScheduler

from latentsync.config import bundled_config

SCHEDULERS = {"ddim": DDIMScheduler}


def load_scheduler(source: str | Path | None = None) -> DDIMScheduler:
    """The scheduler of `configs/scheduler_config.json` (`None` or "ddim"), or of a user's JSON file of that form.

    1000 training steps, scaled-linear betas 0.00085..0.012, no sample clipping, epsilon prediction.
    """
    kind = "ddim" if source is None else str(source)
    if kind in SCHEDULERS:
        return SCHEDULERS[kind].from_config(json.loads(bundled_config("scheduler_config.json").read_text()))
    path = Path(source)  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"scheduler config {path} not found; use one of {sorted(SCHEDULERS)} or a JSON file")
    return DDIMScheduler.from_config(json.loads(path.read_text()))


def add_noise(
    scheduler: DDIMScheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """Forward diffusion sqrt(abar_t)·x0 + sqrt(1-abar_t)·eps, one timestep per clip of (b, c, f, h, w) latents."""
    # diffusers annotates timesteps as IntTensor; any integer tensor (here int64) is accepted
    return scheduler.add_noise(latents, noise, cast(torch.IntTensor, timesteps))


def one_step_clean_latent(
    scheduler: DDIMScheduler, noisy: torch.Tensor, noise_pred: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The clean latent x0 = (x_t - sqrt(1-abar_t)·eps_hat) / sqrt(abar_t) implied by one noise prediction.

    Computed in the prediction's dtype (fp16 under the official AMP) and, as the official trainer, not clamped
    unless the scheduler clips samples. Only epsilon prediction is defined (the official trainer has no other).
    """
    if scheduler.config["prediction_type"] != "epsilon":
        raise NotImplementedError(
            f"prediction_type {scheduler.config['prediction_type']!r}: only 'epsilon' is supported"
        )
    alpha = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].to(noise_pred.dtype)
    alpha = alpha.reshape(-1, *([1] * (noise_pred.dim() - 1)))
    beta = 1 - alpha
    clean = (noisy - beta**0.5 * noise_pred) / alpha**0.5
    return clean.clamp(-1, 1) if scheduler.config["clip_sample"] else clean
