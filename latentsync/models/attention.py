"""The spatial transformer of the U-Net: self-attention within a frame, then cross-attention to audio.

Attention itself is diffusers' `Attention`, so users can swap attention processors (SDPA by default,
xformers, sliced) exactly as with any diffusers model, and its parameter names match the official keys.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from einops import rearrange
from torch import nn


class BasicTransformerBlock(nn.Module):
    """Pre-LayerNorm self-attention, optional audio cross-attention and GEGLU feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, cross_attention_dim: int | None) -> None:
        super().__init__()
        head_dim = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads=heads, dim_head=head_dim)
        if cross_attention_dim is not None:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2: Attention | None = Attention(
                dim, cross_attention_dim=cross_attention_dim, heads=heads, dim_head=head_dim
            )
        else:
            self.attn2 = None
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        if self.attn2 is not None and audio is not None:
            x = x + self.attn2(self.norm2(x), encoder_hidden_states=audio)
        return x + self.ff(self.norm3(x))


class Transformer3DModel(nn.Module):
    """Runs a 2D transformer on every frame: frames are folded into the batch, tokens are pixels."""

    def __init__(self, channels: int, heads: int, cross_attention_dim: int | None, norm_groups: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, cross_attention_dim)])
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        b, _, f, h, w = x.shape
        residual = rearrange(x, "b c f h w -> (b f) c h w")
        tokens = rearrange(self.proj_in(self.norm(residual)), "n c h w -> n (h w) c")
        for block in self.transformer_blocks:
            tokens = block(tokens, audio)
        out = self.proj_out(rearrange(tokens, "n (h w) c -> n c h w", h=h, w=w)) + residual
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)
