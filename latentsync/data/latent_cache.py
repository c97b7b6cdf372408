"""Precomputed VAE posterior moments of every frame of a clip (`train.latent_cache_dir`), so that a U-Net step
samples its three latents from them instead of running three VAE encodes.

Moments (mean and log-variance, (frames, 8, R/8, R/8): the mean's 4 channels then the log-variance's) keep the
official `latent_dist.sample()` meaning: each step still draws new latents from them. Each clip's entry holds the
whole frames and the masked frames; `latentsync train cache` fills the entries (on the GPU when there is one),
otherwise the dataset computes a missing one on the CPU when it first needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latentsync.data.feature_cache import FeatureCache
from latentsync.data.sources import Clip

ENCODE_BATCH = 16


def vae_tag(source: str) -> str:
    """Cache tag of a VAE (hub id, or local folder with its weights' size and mtime)."""
    path = Path(source)
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    return ";".join([source, *(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)])


class LatentCache:
    def __init__(self, folder: str, vae_source: str, mask: torch.Tensor, device: str = "cpu") -> None:
        self.cache = FeatureCache(folder, "vae_moments", vae_tag(vae_source))
        self.vae_source, self.mask, self.device = vae_source, mask, torch.device(device)
        self._vae: Any = None

    def moments(self, clip: Clip, frames: Any) -> dict[str, torch.Tensor]:
        """{"frames", "masked"}: (n, 8, h, w) fp16 moments of all of the clip's frames; `frames()` gives them
        (n, 3, R, R) in [-1, 1] on a miss."""
        return self.cache.get(clip, lambda: self._compute(frames()))

    @torch.no_grad()
    def _compute(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._vae is None:
            from latentsync.models.vae import load_vae

            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            self._vae = load_vae(self.vae_source, self.device, dtype)
        vae = self._vae

        def encode(images: torch.Tensor) -> torch.Tensor:
            parts = []
            for part in images.split(ENCODE_BATCH):
                dist = vae.encode(part.to(vae.device, vae.dtype)).latent_dist
                parts.append(torch.cat([dist.mean, dist.logvar], dim=1).half().cpu())
            return torch.cat(parts)

        return {"frames": encode(pixels), "masked": encode(pixels * self.mask)}
