"""The I3D video classifier behind FVD: StyleGAN-V's TorchScript export (`i3d_torchscript.pt`), used as shipped.

Called as the field calls it, `model(x, rescale=False, resize=False, return_features=True)` on (N, 3, 16, 224, 224)
clips, giving 400-d features taken before the softmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentsync.models.loading import CheckpointError


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    try:
        model = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch.jit raises several types for missing or foreign files
        raise CheckpointError(f"cannot load the I3D TorchScript model {path}: {exc}") from exc
    return model.eval()


@torch.no_grad()
def i3d_features(model: torch.jit.ScriptModule, clips: torch.Tensor, batch: int = 8) -> np.ndarray:
    """(N, 400) float64 features of (N, 3, 16, 224, 224) clips, `batch` clips at a time."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    out = [
        model(clips[i : i + batch].to(device), rescale=False, resize=False, return_features=True).double().cpu()
        for i in range(0, len(clips), batch)
    ]
    return torch.cat(out).numpy()
