"""StableSyncNet: the audio-visual sync expert behind LatentSync's sync loss and its sync metric.

Two convolutional encoders, one for a stack of mouth-region frames and one for the matching mel
window, each reduce their input to a (b, C, 1, 1) map. The unit-length flattened maps are compared by
cosine similarity: high when lips and speech agree. Module and parameter names follow the official
checkpoints (`stable_syncnet.pt`) so they load strictly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from latentsync.errors import LatentSyncError

from .loading import LoadReport, load_into, read_checkpoint
from .syncnet_config import SyncNetConfigError, SyncNetEncoderConfig, SyncNetModelConfig

NORM_GROUPS = 32
NORM_EPS = 1e-6
ATTN_HEADS = 8


class SyncNetInputError(LatentSyncError, ValueError):
    """Images or mels have a size the configured encoders do not reduce to a single embedding."""


def _pair(factor: int | Sequence[int]) -> tuple[int, int]:
    """A downsample factor as (height, width); configs write either `2` or `[1, 2]`."""
    if isinstance(factor, int):
        return factor, factor
    pair = tuple(int(f) for f in factor)
    if len(pair) != 2:
        raise SyncNetConfigError(f"downsample factor {list(pair)} must be an int or a [height, width] pair")
    return pair


class ResnetDownBlock(nn.Module):
    """Pre-activation residual block, then an optional strided downsampling conv.

    The downsampling conv has no padding of its own: the map is padded by one on the far side of each
    strided axis (and on both sides of an unstrided axis, so that axis keeps its size).
    """

    def __init__(self, in_channels: int, out_channels: int, factor: tuple[int, int], dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(NORM_GROUPS, in_channels, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(NORM_GROUPS, out_channels, eps=NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        if factor == (1, 1):
            self.downsample_conv = None
        else:
            self.downsample_conv = nn.Conv2d(out_channels, out_channels, 3, stride=factor)
            pad_h, pad_w = ((1, 1) if f == 1 else (0, 1) for f in factor)
            self.pad = (*pad_w, *pad_h)  # F.pad takes the last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        h = h + (x if self.conv_shortcut is None else self.conv_shortcut(x))
        if self.downsample_conv is not None:
            h = self.downsample_conv(F.pad(h, self.pad))
        return h


class AttentionBlock(nn.Module):
    """Transformer block over the pixels of a map: GroupNorm, 1x1 conv in, attention and GEGLU
    feed-forward (each pre-LayerNorm with a residual), 1x1 conv out, residual around it all."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(NORM_GROUPS, dim, eps=NORM_EPS)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn="geglu")
        self.conv_in = nn.Conv2d(dim, dim, 1)
        self.conv_out = nn.Conv2d(dim, dim, 1)
        self.attn = Attention(dim, heads=ATTN_HEADS, dim_head=dim // ATTN_HEADS, dropout=dropout, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        tokens = rearrange(self.conv_in(self.norm1(x)), "b c h w -> b (h w) c")
        tokens = tokens + self.attn(self.norm2(tokens))
        tokens = tokens + self.ff(self.norm3(tokens))
        return x + self.conv_out(rearrange(tokens, "b (h w) c -> b c h w", h=height))


class DownEncoder(nn.Module):
    """conv_in, one residual (+ optional attention) block per stage, GroupNorm and ReLU out."""

    def __init__(self, config: SyncNetEncoderConfig, name: str, gradient_checkpointing: bool) -> None:
        super().__init__()
        in_channels, widths, dropout = config.in_channels, list(config.block_out_channels), config.dropout
        factors = [_pair(f) for f in config.downsample_factors]
        if not widths:
            raise SyncNetConfigError(f"{name} config lacks 'block_out_channels'")
        # Official syncnet_25_pixel.yaml has no attn_blocks; it means no attention anywhere.
        attn_blocks = list(config.attn_blocks) or [0] * len(widths)
        if not (len(widths) == len(factors) == len(attn_blocks)):
            raise SyncNetConfigError(
                f"{name}: block_out_channels, downsample_factors and attn_blocks must have equal lengths, "
                f"got {len(widths)}, {len(factors)}, {len(attn_blocks)}"
            )
        self.gradient_checkpointing = gradient_checkpointing
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        for in_width, width, factor, attn in zip([widths[0], *widths], widths, factors, attn_blocks):
            self.down_blocks.append(ResnetDownBlock(in_width, width, factor, dropout))
            if attn:
                self.down_blocks.append(AttentionBlock(width, dropout))
        self.norm_out = nn.GroupNorm(NORM_GROUPS, widths[-1], eps=NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        use_checkpoint = self.gradient_checkpointing and torch.is_grad_enabled()  # frozen in eval mode too
        for block in self.down_blocks:
            x = checkpoint(block, x, use_reentrant=False) if use_checkpoint else block(x)
        return F.relu(self.norm_out(x))


class StableSyncNet(nn.Module):
    """Embeds a face-frame stack and a mel window into unit vectors whose dot product scores sync.

    `config` is the `model:` section of a SyncNet config: a SyncNetModelConfig, or a dict or OmegaConf node
    validated into one. Inputs are images (b, frames*3 or frames*4, H, W) and mels (b, 1, 80, T) sized so both
    encoders end at 1x1.
    """

    load_report: LoadReport  # both set by `from_pretrained`
    global_step: int | None

    def __init__(self, config: SyncNetModelConfig | Mapping[str, Any], gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.config = SyncNetModelConfig.from_any(config)
        self.audio_encoder = DownEncoder(self.config.audio_encoder, "audio_encoder", gradient_checkpointing)
        self.visual_encoder = DownEncoder(self.config.visual_encoder, "visual_encoder", gradient_checkpointing)
        self.eval()

    def forward(
        self, image_sequences: torch.Tensor, audio_sequences: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return L2-normalised (vision_embeds, audio_embeds), each (b, C)."""
        embeds = []
        for name, encoder, inputs in (
            ("image_sequences", self.visual_encoder, image_sequences),
            ("audio_sequences", self.audio_encoder, audio_sequences),
        ):
            feature_map = encoder(inputs)
            if feature_map.shape[2:] != (1, 1):
                raise SyncNetInputError(
                    f"{name} of shape {tuple(inputs.shape)} reduce to a {tuple(feature_map.shape[2:])} map, "
                    "not 1x1: the input size does not match this SyncNet config"
                )
            embeds.append(F.normalize(feature_map.flatten(1), dim=1))
        return embeds[0], embeds[1]

    @classmethod
    def from_pretrained(
        cls, config: SyncNetModelConfig | Mapping[str, Any], ckpt_path: str | Path, device: str | torch.device = "cpu"
    ) -> StableSyncNet:
        """Build from `config` and strictly load an official `stable_syncnet.pt` (or a bare state dict).

        The LoadReport is kept as `load_report` and the training step, if recorded, as `global_step`.
        """
        state_dict, extra = read_checkpoint(ckpt_path)
        model = cls(config)
        report = load_into(model, state_dict, str(ckpt_path), strict=True)
        report.global_step = extra.get("global_step")
        model.load_report = report
        model.global_step = report.global_step
        return model.to(device).eval()
