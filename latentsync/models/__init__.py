"""Neural networks of LatentSync: the 3D U-Net, the SyncNet and the VAE, with official-checkpoint loading."""

from .loading import CheckpointError, LoadReport
from .syncnet import StableSyncNet
from .unet import UNet3DConditionModel, UNet3DConditionOutput
from .vae import VAE_SCALING_FACTOR, load_vae

__all__ = [
    "CheckpointError",
    "LoadReport",
    "StableSyncNet",
    "UNet3DConditionModel",
    "UNet3DConditionOutput",
    "VAE_SCALING_FACTOR",
    "load_vae",
]
