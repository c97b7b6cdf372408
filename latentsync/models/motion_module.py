"""AnimateDiff-style temporal transformer ("motion module") used by the stage-2 U-Net.

Each pixel position becomes a sequence over frames; attention mixes information between frames only.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from einops import rearrange
from torch import nn


class SinusoidalPositions(nn.Module):
    pe: torch.Tensor  # buffer
    """Fixed sin/cos frame positions (sin on even channels, cos on odd), kept as a checkpoint buffer."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * freq)
        pe[0, :, 1::2] = torch.cos(position * freq)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"motion module sees {x.shape[1]} frames; its positions cover {self.pe.shape[1]}")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalAttention(Attention):
    """Self-attention across frames at each pixel, with frame positions added to its input."""

    def __init__(self, dim: int, heads: int, max_len: int | None) -> None:
        super().__init__(dim, heads=heads, dim_head=dim // heads)
        self.pos_encoder = SinusoidalPositions(dim, max_len) if max_len else None

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        pixels = x.shape[1]
        seq = rearrange(x, "(b f) s c -> (b s) f c", f=frames)
        if self.pos_encoder is not None:
            seq = self.pos_encoder(seq)
        out = super().forward(seq)
        return rearrange(out, "(b s) f c -> (b f) s c", s=pixels)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, num_attentions: int, max_len: int | None) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(dim, heads, max_len) for _ in range(num_attentions)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attentions)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = x + attention(norm(x), frames)
        return x + self.ff(self.ff_norm(x))


class TemporalTransformer3DModel(nn.Module):
    def __init__(self, channels: int, heads: int, num_layers: int, num_attentions: int, max_len: int | None) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, heads, num_attentions, max_len) for _ in range(num_layers)]
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, f, h, w = x.shape
        residual = rearrange(x, "b c f h w -> (b f) c h w")
        tokens = self.proj_in(rearrange(self.norm(residual), "n c h w -> n (h w) c"))
        for block in self.transformer_blocks:
            tokens = block(tokens, f)
        out = rearrange(self.proj_out(tokens), "n (h w) c -> n c h w", h=h, w=w) + residual
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)


class VanillaTemporalModule(nn.Module):
    """The motion module as configured by `motion_module_kwargs`; a fresh one is an identity map."""

    def __init__(
        self,
        channels: int,
        num_attention_heads: int = 8,
        num_transformer_block: int = 1,
        attention_block_types: tuple[str, ...] = ("Temporal_Self", "Temporal_Self"),
        temporal_position_encoding: bool = True,
        temporal_position_encoding_max_len: int = 24,
        temporal_attention_dim_div: int = 1,
        zero_initialize: bool = True,
    ) -> None:
        super().__init__()
        unsupported = [t for t in attention_block_types if t != "Temporal_Self"]
        if unsupported:
            raise ValueError(f"unsupported motion-module attention_block_types {unsupported}; only Temporal_Self")
        if temporal_attention_dim_div != 1:
            raise ValueError(
                "temporal_attention_dim_div other than 1 changes no official checkpoint and is unsupported"
            )
        self.temporal_transformer = TemporalTransformer3DModel(
            channels,
            num_attention_heads,
            num_transformer_block,
            len(attention_block_types),
            temporal_position_encoding_max_len if temporal_position_encoding else None,
        )
        if zero_initialize:
            nn.init.zeros_(self.temporal_transformer.proj_out.weight)
            nn.init.zeros_(self.temporal_transformer.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal_transformer(x)
