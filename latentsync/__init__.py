"""latentsync: audio-conditioned latent-diffusion lip sync compatible with the official LatentSync checkpoints."""

__version__ = "0.1.0"
