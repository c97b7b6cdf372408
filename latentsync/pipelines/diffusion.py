"""Denoising one chunk of aligned faces: the latent-diffusion core of the lip-sync pipeline.

Per chunk of (typically 16) face crops, as the official pipeline does: encode the masked faces and the faces
themselves (the reference) with the VAE, start from noise shared by every frame of the video, run DDIM with
classifier-free guidance on the audio (the unconditional branch gets zeroed audio embeddings), decode, and keep
the generated pixels only inside the mouth mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.schedulers.scheduling_ddim import DDIMScheduler, DDIMSchedulerOutput

from latentsync.config.defaults import INFERENCE
from latentsync.diffusion import (
    DeepCache,
    decode_latents,
    encode_latents,
    from_video,
    initial_noise,
    latent_mask,
    null_audio,
    to_video,
    unet_condition,
    unet_input,
)
from latentsync.models.unet import UNet3DConditionModel


@dataclass
class DiffusionSettings:
    num_inference_steps: int = INFERENCE.steps
    guidance_scale: float = INFERENCE.guidance_scale
    deepcache_interval: int = 0  # 0: off; 3 is the interval the official --enable_deepcache uses
    vae_batch: int = 8  # frames per VAE encode/decode call: bounds activation memory (benchmarks/vram.py)


class ChunkDenoiser:
    """Runs the diffusion for chunks of aligned faces with a fixed set of models and settings."""

    def __init__(
        self,
        unet: UNet3DConditionModel,
        vae: AutoencoderKL,
        scheduler: DDIMScheduler,
        settings: DiffusionSettings,
        offload_vae: bool = False,
    ) -> None:
        """With `offload_vae`, the VAE waits on the CPU and visits the U-Net's device only to encode/decode."""
        self.unet, self.vae, self.scheduler, self.settings = unet, vae, scheduler, settings
        self.offload_vae = offload_vae
        self.deep_cache = DeepCache(settings.deepcache_interval) if settings.deepcache_interval > 1 else None

    @property
    def latent_scale(self) -> int:
        return 2 ** (len(self.vae.config["block_out_channels"]) - 1)

    def initial_noise(self, resolution: int, generator: torch.Generator) -> torch.Tensor:
        """One latent noise image (1, 4, 1, h, w) that every frame of the video starts from.

        Drawn in the U-Net's dtype, as the official pipeline draws it, so that fp16 runs start from its noise.
        """
        size = resolution // self.latent_scale
        return initial_noise(self.vae.config["latent_channels"], size, generator, self.unet.device, self.unet.dtype)

    @torch.no_grad()
    def __call__(
        self,
        pixel_values: torch.Tensor,
        mask: torch.Tensor,
        audio_embeds: torch.Tensor | None,
        noise: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Lip-sync one chunk.

        pixel_values: (f, 3, R, R) aligned faces in [-1, 1]; mask: (1, 1, R, R) or (f, 1, R, R), 1 where the
        face is kept and 0 over the mouth; audio_embeds: (f, tokens, width) or None for a U-Net without audio.
        Returns the faces (f, 3, R, R) in [-1, 1] with the mouth region generated.
        """
        s = self.settings
        device, dtype = self.unet.device, self.unet.dtype
        frames = pixel_values.shape[0]
        pixel_values = pixel_values.to(device, dtype)
        mask = mask.to(device, dtype).expand(frames, -1, -1, -1)
        guided = s.guidance_scale > 1.0

        with self._vae_ready():  # one visit for both encodes
            masked_latents = self._encode(pixel_values * mask, generator)
            reference_latents = self._encode(pixel_values, generator)
        mask_latents = latent_mask(mask, masked_latents.shape[-2:])
        condition = unet_condition(*(to_video(x, frames) for x in (mask_latents, masked_latents, reference_latents)))

        if audio_embeds is not None:
            audio_embeds = audio_embeds.to(device, dtype)
            if guided:
                audio_embeds = torch.cat([null_audio(audio_embeds), audio_embeds])
        if guided:
            condition = torch.cat([condition, condition])

        self.scheduler.set_timesteps(s.num_inference_steps, device=device)
        latents = noise.expand(-1, -1, frames, -1, -1) * self.scheduler.init_noise_sigma
        if self.deep_cache is not None:
            self.deep_cache.reset()
        for i, t in enumerate(self.scheduler.timesteps):
            if self.deep_cache is not None:
                self.deep_cache.step(i)
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = unet_input(self.scheduler.scale_model_input(model_input, t), condition)
            noise_pred = self.unet(model_input, t, audio_embeds, deep_cache=self.deep_cache).sample
            if guided:
                unconditional, conditional = noise_pred.chunk(2)
                noise_pred = unconditional + s.guidance_scale * (conditional - unconditional)
            # return_dict defaults to True, so step returns a DDIMSchedulerOutput, never the tuple
            latents = cast(DDIMSchedulerOutput, self.scheduler.step(noise_pred, t, latents)).prev_sample

        decoded = self._decode(from_video(latents))
        return decoded * (1 - mask) + pixel_values * mask

    @contextmanager
    def _vae_ready(self) -> Iterator[AutoencoderKL]:
        if self.offload_vae:
            # diffusers types ModelMixin.to as @wraps(nn.Module.to), i.e. unbound; the call is a plain method call
            self.vae.to(self.unet.device)  # type: ignore[arg-type]
        try:
            yield self.vae
        finally:
            if self.offload_vae:
                self.vae.to("cpu")  # type: ignore[arg-type]  # ModelMixin.to stub, as above

    def _encode(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sampled, scaled VAE latents in the U-Net's dtype (call inside `_vae_ready`)."""
        latents = encode_latents(self.vae, images, generator, self.settings.vae_batch)
        return latents.to(self.unet.device, self.unet.dtype)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        with self._vae_ready() as vae:
            decoded = decode_latents(vae, latents, self.settings.vae_batch)
        return decoded.to(self.unet.device, self.unet.dtype)
