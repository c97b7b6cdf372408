"""VideoMAE-v2 (ViT, tubelet patches) as TREPA uses it: pooled clip features from the official `.pth` unchanged.

The module and parameter names are those of `vit_g_hybrid_pt_1200e_ssv2_ft.pth` (the OpenGVLab fine-tuning code
LatentSync vendors), so the file loads strictly with no key conversion. Widths and depth are read from the state
dict, so the giant and the tiny random test files load through the same path. Only `forward_features` (the
`fc_norm` of the token mean) is used; the SSv2 classification head is loaded but never run.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from latentsync.hub import MissingCheckpointError
from latentsync.models.loading import CheckpointError

# Heads are not visible in a state dict: the VideoMAE-v2 family's (ViT-S/B/L/H/g); other widths use 16-wide heads.
HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}
LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class VideoMAEConfig:
    """The architecture; the defaults are ViT-giant/14 on 16 frames of 224 px with the 174-class SSv2 head."""

    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_hidden: int = 6144
    patch_size: int = 14
    tubelet_size: int = 2
    in_channels: int = 3
    image_size: int = 224
    num_frames: int = 16
    num_classes: int = 174

    @property
    def num_tokens(self) -> int:
        return (self.num_frames // self.tubelet_size) * (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> VideoMAEConfig:
        """The architecture a VideoMAE-v2 state dict was saved from (16 frames of 224 px, as TREPA feeds it)."""
        try:
            proj = state_dict["patch_embed.proj.weight"]
            embed_dim, in_channels, tubelet, patch, _ = proj.shape
            depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
            mlp_hidden = state_dict["blocks.0.mlp.fc1.weight"].shape[0]
        except (KeyError, ValueError) as exc:
            raise CheckpointError(
                f"not a VideoMAE-v2 state dict (no {exc}); expected the keys of vit_g_hybrid_pt_1200e_ssv2_ft.pth"
            ) from None
        head = state_dict.get("head.weight")
        return cls(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=HEADS_BY_WIDTH.get(embed_dim, max(1, embed_dim // 16)),
            mlp_hidden=mlp_hidden,
            patch_size=patch,
            tubelet_size=tubelet,
            in_channels=in_channels,
            num_classes=0 if head is None else head.shape[0],
        )


def sinusoid_table(positions: int, width: int) -> torch.Tensor:
    """(1, positions, width) fixed position table: sin at even and cos at odd channels, float64 then float32."""
    pos = np.arange(positions, dtype=np.float64)[:, None]
    rates = np.power(10000.0, 2 * (np.arange(width) // 2) / width)
    table = pos / rates
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()[None]


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VideoMAEConfig) -> None:
        super().__init__()
        kernel = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_channels, cfg.embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # tokens ordered (t, h, w), time slowest


class Attention(nn.Module):
    """Multi-head self-attention with one bias-free qkv projection plus q and v biases (no k bias)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then MLP, each with a residual (no layer scale)."""

    def __init__(self, cfg: VideoMAEConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(cfg.embed_dim, cfg.mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VideoMAEv2(nn.Module):
    """VideoMAE-v2 encoder with mean pooling: (b, 3, 16, 224, 224) clips in [0, 1] -> (b, embed_dim) features."""

    pos_embed: torch.Tensor  # buffer

    def __init__(self, cfg: VideoMAEConfig = VideoMAEConfig(), gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.gradient_checkpointing = gradient_checkpointing
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes else None
        self.register_buffer("pos_embed", sinusoid_table(cfg.num_tokens, cfg.embed_dim), persistent=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled pre-head feature `fc_norm(mean over tokens)` that TREPA compares."""
        expected = (self.cfg.in_channels, self.cfg.num_frames, self.cfg.image_size, self.cfg.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"VideoMAE-v2 takes clips (b, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        x = self.patch_embed(x)
        x = x + self.pos_embed.to(x.device, x.dtype)
        use_checkpoint = self.gradient_checkpointing and torch.is_grad_enabled()
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if use_checkpoint else block(x)
        return self.fc_norm(x.mean(1))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", gradient_checkpointing: bool = False
    ) -> VideoMAEv2:
        """Load the official `.pth` (a state dict, or one under "model" / "module") strictly, in eval mode."""
        if not Path(path).is_file():
            raise MissingCheckpointError(
                f"VideoMAE-v2 weights {path} not found; fetch them with `latentsync download --with-training`"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, pickle.UnpicklingError) as exc:
            raise CheckpointError(f"{path}: cannot read the VideoMAE-v2 checkpoint ({exc})") from None
        for wrapper in ("model", "module"):
            if isinstance(state, Mapping) and wrapper in state:
                state = state[wrapper]
        model = cls(VideoMAEConfig.from_state_dict(state), gradient_checkpointing)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: does not match the VideoMAE-v2 layout: {exc}") from None
        return model.to(device).eval()
