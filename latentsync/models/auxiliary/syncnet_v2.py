"""The original SyncNet (Chung & Zisserman 2016, `syncnet_v2.model`): the network behind LSE-C / LSE-D.

Two VGG-like towers map 5 face frames (raw BGR 0-255, 224 px) and 20 MFCC steps (13 coefficients) to 1024-d
vectors; in-sync pairs lie close in Euclidean distance. The module and layer indices follow the official file's
keys (`netcnnaud.0.weight` ...) so it loads with no renaming; the BatchNorm statistics are part of the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .files import load_strict

EMBED_DIM = 1024


def _conv_bn(conv: nn.Module, channels: int, norm: type[nn.Module]) -> list[nn.Module]:
    return [conv, norm(channels), nn.ReLU()]


def _head(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, width))


class SyncNetV2(nn.Module):
    """`forward_aud` takes (N, 1, 13, 20) MFCC windows, `forward_lip` (N, 3, 5, 224, 224) BGR frames."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        bn2, bn3 = nn.BatchNorm2d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(
            *_conv_bn(nn.Conv2d(1, 64, 3, padding=1), 64, bn2),
            nn.MaxPool2d(1, 1),
            *_conv_bn(nn.Conv2d(64, 192, 3, padding=1), 192, bn2),
            nn.MaxPool2d(3, (1, 2)),
            *_conv_bn(nn.Conv2d(192, 384, 3, padding=1), 384, bn2),
            *_conv_bn(nn.Conv2d(384, 256, 3, padding=1), 256, bn2),
            *_conv_bn(nn.Conv2d(256, 256, 3, padding=1), 256, bn2),
            nn.MaxPool2d(3, 2),
            *_conv_bn(nn.Conv2d(256, 512, (5, 4)), 512, bn2),
        )
        self.netfcaud = _head(embed_dim)
        self.netfclip = _head(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_conv_bn(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, bn3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, bn3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn(nn.Conv3d(256, 512, (1, 6, 6)), 512, bn3),
        )

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(frames).flatten(1))

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> SyncNetV2:
        """Load `syncnet_v2.model` (a bare state dict with the keys above); any key that does not fit is an error."""
        return load_strict(cls(), path, "the original SyncNet's syncnet_v2.model", ("__S__.",)).to(device)
