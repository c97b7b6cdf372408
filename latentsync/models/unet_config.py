"""The U-Net's architecture: the `model:` section of an official U-Net config, kept beside the model it builds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from latentsync.config.schema import structured

# Block type names of the official configs -> whether the block has cross-attention.
DOWN_TYPES = {"CrossAttnDownBlock3D": True, "DownBlock3D": False}
UP_TYPES = {"CrossAttnUpBlock3D": True, "UpBlock3D": False}


@dataclass
class MotionModuleConfig:
    num_attention_heads: int = 8
    num_transformer_block: int = 1
    attention_block_types: list[str] = field(default_factory=lambda: ["Temporal_Self", "Temporal_Self"])
    temporal_position_encoding: bool = True
    temporal_position_encoding_max_len: int = 24
    temporal_attention_dim_div: int = 1
    zero_initialize: bool = True


@dataclass
class UNetConfig:
    """The `model:` section of an official U-Net config; field names and defaults are the official ones."""

    sample_size: int = 64
    in_channels: int = 13
    out_channels: int = 4
    center_input_sample: bool = False
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    down_block_types: list[str] = field(
        default_factory=lambda: ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"]
    )
    mid_block_type: str = "UNetMidBlock3DCrossAttn"
    up_block_types: list[str] = field(
        default_factory=lambda: ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"]
    )
    block_out_channels: list[int] = field(default_factory=lambda: [320, 640, 1280, 1280])
    layers_per_block: int = 2
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    act_fn: str = "silu"
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    cross_attention_dim: int = 384
    attention_head_dim: Any = 8  # int, or one per down stage; the number of heads, as in the official code
    resnet_time_scale_shift: str = "default"
    add_audio_layer: bool = True
    use_motion_module: bool = False
    motion_module_resolutions: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    motion_module_mid_block: bool = False
    motion_module_decoder_only: bool = False
    motion_module_type: str = "Vanilla"
    motion_module_kwargs: MotionModuleConfig = field(default_factory=MotionModuleConfig)

    @classmethod
    def from_any(cls, cfg: UNetConfig | Mapping[str, Any], source: str | None = None) -> UNetConfig:
        """Validate a dict or OmegaConf node (unknown keys and wrong types are errors naming the key)."""
        if isinstance(cfg, UNetConfig):
            return cfg
        return structured(cls, cfg, source or "U-Net model config")

    def validate(self) -> None:
        n = len(self.block_out_channels)
        if len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length")
        for name, known in (("down_block_types", DOWN_TYPES), ("up_block_types", UP_TYPES)):
            bad = [t for t in getattr(self, name) if t not in known]
            if bad:
                raise ValueError(f"unknown {name} {bad}; known: {sorted(known)}")
        if self.mid_block_type != "UNetMidBlock3DCrossAttn":
            raise ValueError(f"unknown mid_block_type {self.mid_block_type!r}")
        if self.act_fn != "silu":
            raise ValueError(f"act_fn {self.act_fn!r} is not supported (the official models use silu)")
        if self.use_motion_module and self.motion_module_type != "Vanilla":
            raise ValueError(f"unknown motion_module_type {self.motion_module_type!r}")

    def heads(self) -> list[int]:
        heads = self.attention_head_dim
        return list(heads) if isinstance(heads, (list, tuple)) else [int(heads)] * len(self.block_out_channels)
