"""Neural networks of LatentSync: the 3D U-Net, the SyncNet and the VAE, with official-checkpoint loading.

The networks are imported on first use, so that the config schemas beside them (`unet_config`,
`syncnet_config`) load without torch and diffusers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loading import CheckpointError, LoadReport
    from .syncnet import StableSyncNet
    from .unet import UNet3DConditionModel, UNet3DConditionOutput
    from .vae import VAE_SCALING_FACTOR, load_vae

_HOMES = {
    "CheckpointError": "loading",
    "LoadReport": "loading",
    "StableSyncNet": "syncnet",
    "UNet3DConditionModel": "unet",
    "UNet3DConditionOutput": "unet",
    "VAE_SCALING_FACTOR": "vae",
    "load_vae": "vae",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VAE_SCALING_FACTOR",
    "CheckpointError",
    "LoadReport",
    "StableSyncNet",
    "UNet3DConditionModel",
    "UNet3DConditionOutput",
    "load_vae",
]
