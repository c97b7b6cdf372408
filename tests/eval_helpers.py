"""Random-weight auxiliary files in the official formats, for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import torch

from latentsync.models.auxiliary.syncnet_v2 import SyncNetV2


def golden_syncnet_v2_state(golden_dir: Path) -> dict[str, torch.Tensor]:
    """The golden's random syncnet_v2 weights, decoded as its meta says (int8 codes times a power of two)."""
    w = torch.load(golden_dir / "syncnet_v2_random_weights.pt", weights_only=True)
    codes, exps = w["weight_codes_int8"], w["weight_exp2"]
    return {**w["state_dict_rest"], **{k: codes[k].float() * 2.0 ** exps[k] for k in codes}}


def write_syncnet_v2(path: Path, seed: int = 0) -> Path:
    """A random `syncnet_v2.model` in the official layout (a bare state dict, torch's legacy format)."""
    torch.manual_seed(seed)
    torch.save(SyncNetV2().state_dict(), path, _use_new_zipfile_serialization=False)
    return path


def write_s3fd(path: Path, seed: int = 0) -> Path:
    """A random `sfd_face.pth` in the official layout (a bare state dict)."""
    from latentsync.models.auxiliary.s3fd import S3FDNet

    torch.manual_seed(seed)
    torch.save(S3FDNet().state_dict(), path)
    return path
