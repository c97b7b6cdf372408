"""Down, mid and up levels of the 3D U-Net ("level": one resolution of the U-Net; "stage" is kept for the
pipeline's stages and the training stages 1 and 2).

Every level is a stack of layers of the same shape: a residual block, then (in the attention levels) a
spatial transformer, then (in stage-2 models) a motion module. Down levels end in a stride-2 conv, up levels
start each layer by concatenating the matching skip connection and end in a x2 upsampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Transformer3DModel
from .motion_module import VanillaTemporalModule
from .resnet import Downsample3D, ResnetBlock3D, Upsample3D


@dataclass(frozen=True)
class LevelOptions:
    """What every level of one U-Net shares."""

    temb_channels: int
    norm_groups: int
    norm_eps: float
    time_embedding_norm: str
    cross_attention_dim: int | None  # None: no audio cross-attention layer
    motion_kwargs: dict[str, Any]


class UNetLevel(nn.Module):
    """Base of all levels: holds the per-layer modules and runs one layer, checkpointed when training asks."""

    def __init__(self) -> None:
        super().__init__()
        self.gradient_checkpointing = False

    def _build(
        self,
        opts: LevelOptions,
        channels: list[tuple[int, int]],
        heads: int | None,
        motion: bool,
        output_scale_factor: float = 1.0,
        layer_channels: list[int] | None = None,
    ) -> None:
        """Create one resnet per (in, out) pair, and a transformer (when `heads` is set) and a motion module (when
        `motion`) per entry of `layer_channels` (by default, one per resnet at its output width)."""
        outs = layer_channels if layer_channels is not None else [c_out for _, c_out in channels]
        self.attentions = nn.ModuleList(
            [Transformer3DModel(c, heads, opts.cross_attention_dim, opts.norm_groups) for c in outs] if heads else []
        )
        self.resnets = nn.ModuleList(
            [
                ResnetBlock3D(
                    c_in,
                    c_out,
                    opts.temb_channels,
                    opts.norm_groups,
                    opts.norm_eps,
                    opts.time_embedding_norm,
                    output_scale_factor,
                )
                for c_in, c_out in channels
            ]
        )
        self.motion_modules = nn.ModuleList(
            [VanillaTemporalModule(c, **opts.motion_kwargs) for c in outs] if motion else []
        )

    def _call(self, module: nn.Module, *args: Any) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _layer(self, i: int, x: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        x = self._call(self.resnets[i], x, temb)
        if self.attentions:
            x = self._call(self.attentions[i], x, audio)
        if self.motion_modules:
            x = self._call(self.motion_modules[i], x)
        return x


class DownBlock3D(UNetLevel):
    """`CrossAttnDownBlock3D` (with `heads`) or `DownBlock3D` (without) of the official configs."""

    def __init__(
        self,
        opts: LevelOptions,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        heads: int | None,
        motion: bool,
        add_downsample: bool,
        downsample_padding: int,
    ) -> None:
        super().__init__()
        pairs = [(in_channels if i == 0 else out_channels, out_channels) for i in range(num_layers)]
        self._build(opts, pairs, heads, motion)
        self.downsamplers = nn.ModuleList([Downsample3D(out_channels, downsample_padding)]) if add_downsample else None

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i in range(len(self.resnets)):
            x = self._layer(i, x, temb, audio)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UNetMidBlock3DCrossAttn(UNetLevel):
    """Resnet, then `num_layers` times (transformer, motion module, resnet), at the lowest resolution."""

    def __init__(
        self,
        opts: LevelOptions,
        channels: int,
        heads: int,
        motion: bool,
        output_scale_factor: float,
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        pairs = [(channels, channels)] * (num_layers + 1)
        self._build(opts, pairs, heads, motion, output_scale_factor, layer_channels=[channels] * num_layers)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        x = self._call(self.resnets[0], x, temb)
        for i, attention in enumerate(self.attentions):
            x = self._call(attention, x, audio)
            if self.motion_modules:
                x = self._call(self.motion_modules[i], x)
            x = self._call(self.resnets[i + 1], x, temb)
        return x


class UpBlock3D(UNetLevel):
    """`CrossAttnUpBlock3D` (with `heads`) or `UpBlock3D` (without) of the official configs."""

    def __init__(
        self,
        opts: LevelOptions,
        in_channels: int,
        out_channels: int,
        prev_output_channels: int,
        num_layers: int,
        heads: int | None,
        motion: bool,
        add_upsample: bool,
    ) -> None:
        super().__init__()
        pairs = []
        for i in range(num_layers):
            skip = in_channels if i == num_layers - 1 else out_channels
            below = prev_output_channels if i == 0 else out_channels
            pairs.append((below + skip, out_channels))
        self._build(opts, pairs, heads, motion)
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels)]) if add_upsample else None

    def forward(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        temb: torch.Tensor,
        audio: torch.Tensor | None,
        upsample_size: tuple[int, int] | None = None,
        layers: range | None = None,
    ) -> torch.Tensor:
        """Run `layers` (default: all), each on `x` joined with the next skip popped off the end of `skips`; the
        upsampling follows when the last layer ran."""
        layers = layers if layers is not None else range(len(self.resnets))
        for i in layers:
            x = self._layer(i, torch.cat([x, skips.pop()], dim=1), temb, audio)
        if self.upsamplers is not None and layers.stop == len(self.resnets):
            x = self.upsamplers[0](x, upsample_size)
        return x
