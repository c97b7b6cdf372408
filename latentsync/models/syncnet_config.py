"""The SyncNet's architecture: the `model:` section of an official SyncNet config, kept beside the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from latentsync.config.schema import ConfigError, structured


class SyncNetConfigError(ConfigError):
    """The `model:` section of a SyncNet config is incomplete or inconsistent."""


@dataclass
class SyncNetEncoderConfig:
    in_channels: int = 1
    block_out_channels: list[int] = field(default_factory=list)
    downsample_factors: list[Any] = field(default_factory=list)  # an int or an [h, w] pair per block
    attn_blocks: list[int] = field(default_factory=list)  # empty: no attention block anywhere
    dropout: float = 0.0


@dataclass
class SyncNetModelConfig:
    audio_encoder: SyncNetEncoderConfig = field(default_factory=SyncNetEncoderConfig)
    visual_encoder: SyncNetEncoderConfig = field(default_factory=SyncNetEncoderConfig)

    @classmethod
    def from_any(cls, cfg: SyncNetModelConfig | Mapping[str, Any], source: str | None = None) -> SyncNetModelConfig:
        """Validate a dict or OmegaConf node; both encoder sections must be there (they have no usable default)."""
        if isinstance(cfg, SyncNetModelConfig):
            return cfg
        for part in ("audio_encoder", "visual_encoder"):
            if part not in cfg:
                raise SyncNetConfigError(f"SyncNet config lacks the '{part}' section")
        return structured(cls, cfg, source or "SyncNet model config")
