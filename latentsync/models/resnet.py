"""Per-frame convolutions and the residual block of the 3D U-Net.

Video tensors are (batch, channels, frames, height, width). Convolutions run on each frame on its own (the
"inflated" 2D convs of AnimateDiff), while the GroupNorms see the whole clip at once: the official model
normalises over frames as well, and the checkpoints were trained that way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class InflatedConv3d(nn.Conv2d):
    """A 2D convolution applied to every frame of a (b, c, f, h, w) video."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        x = super().forward(rearrange(x, "b c f h w -> (b f) c h w"))
        return rearrange(x, "(b f) c h w -> b c f h w", f=frames)


class ResnetBlock3D(nn.Module):
    """GroupNorm-SiLU-conv twice, with the timestep embedding added (or scale/shift) in between."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        groups: int = 32,
        eps: float = 1e-5,
        time_embedding_norm: str = "default",
        output_scale_factor: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if time_embedding_norm not in ("default", "scale_shift"):
            raise ValueError(f"resnet_time_scale_shift must be 'default' or 'scale_shift', not {time_embedding_norm!r}")
        self.scale_shift = time_embedding_norm == "scale_shift"
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = InflatedConv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels * (2 if self.scale_shift else 1))
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = InflatedConv3d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut = (
            InflatedConv3d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        t = self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        if self.scale_shift:
            scale, shift = t.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + t)
        h = self.conv2(self.dropout(F.silu(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (shortcut + h) / self.output_scale_factor


class Downsample3D(nn.Module):
    """Halves height and width of every frame with a stride-2 convolution."""

    def __init__(self, channels: int, padding: int = 1) -> None:
        super().__init__()
        self.conv = InflatedConv3d(channels, channels, kernel_size=3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample3D(nn.Module):
    """Nearest-neighbour x2 on height and width (or to an explicit size), then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = InflatedConv3d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        frames, height, width = x.shape[2:]
        target = (frames, *size) if size is not None else (frames, height * 2, width * 2)
        return self.conv(F.interpolate(x, size=target, mode="nearest"))
