"""The latent-diffusion core shared by inference and training: latents, conditioning, noise, schedulers, DeepCache.

Inference (`pipelines/diffusion.py`) and the training step (`train/objectives.py`) both build the U-Net's input
from these functions, so the 13-channel order, the latent scaling and the noise can never drift apart.
"""

from .conditioning import from_video, latent_mask, null_audio, to_video, unet_condition, unet_input
from .deepcache import DeepCache
from .latents import decode_latents, encode_latents, encode_moments, sample_latents
from .noise import initial_noise, mixed_noise, repeated_noise, seeded_generator
from .schedulers import add_noise, load_scheduler, one_step_clean_latent

__all__ = [
    "DeepCache",
    "add_noise",
    "decode_latents",
    "encode_latents",
    "encode_moments",
    "from_video",
    "initial_noise",
    "latent_mask",
    "load_scheduler",
    "mixed_noise",
    "null_audio",
    "one_step_clean_latent",
    "repeated_noise",
    "sample_latents",
    "seeded_generator",
    "to_video",
    "unet_condition",
    "unet_input",
]
