"""From inputs to a lip-synced video: the diffusion core and the end-to-end pipeline around it."""

from .diffusion import ChunkDenoiser, DiffusionSettings

__all__ = ["ChunkDenoiser", "DiffusionSettings"]
