"""Loading and validating the official YAML configs.

A user's own copy of an official config must work unchanged, and a typo in it must not silently fall back to
a default: every section and key is checked against a schema, and errors name the key and the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from latentsync.errors import LatentSyncError

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(LatentSyncError, ValueError):
    """A config file or section that is missing, malformed, or has unknown or mistyped keys."""


def structured(schema: type[T], values: Mapping[str, Any] | DictConfig, source: str) -> T:
    """Check `values` against the dataclass `schema` and return a schema instance.

    Unknown keys and values of the wrong type raise ConfigError naming the key and `source`; keys left out take
    the schema's defaults (the official configs leave some out, e.g. `attn_blocks` in syncnet_25_pixel).
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{source}: invalid key '{key}': {exc.msg if hasattr(exc, 'msg') else exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Schemas of the official files, section by section.


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
    def from_any(cls, cfg: "UNetConfig | Mapping[str, Any]", source: str | None = None) -> "UNetConfig":
        """Validate a dict or OmegaConf node (unknown keys and wrong types are errors naming the key)."""
        if isinstance(cfg, cls):
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


@dataclass
class UNetDataConfig:
    syncnet_config_path: str = "configs/syncnet/syncnet_16_pixel_attn.yaml"
    train_output_dir: str = "debug/unet"
    train_fileslist: str = ""
    train_data_dir: str = ""
    audio_embeds_cache_dir: str = ""
    audio_mel_cache_dir: str = ""
    val_video_path: str = ""
    val_audio_path: str = ""
    batch_size: int = 1
    num_workers: int = 12
    num_frames: int = 16
    resolution: int = 256
    mask_image_path: str = "latentsync/utils/mask.png"
    audio_sample_rate: int = 16000
    video_fps: int = 25
    audio_feat_length: list[int] = field(default_factory=lambda: [2, 2])


@dataclass
class UNetCkptConfig:
    resume_ckpt_path: str = ""
    save_ckpt_steps: int = 10000


@dataclass
class UNetRunConfig:
    pixel_space_supervise: bool = False
    use_syncnet: bool = False
    sync_loss_weight: float = 0.05
    perceptual_loss_weight: float = 0.1
    recon_loss_weight: float = 1.0
    guidance_scale: float = 1.5
    trepa_loss_weight: float = 10.0
    inference_steps: int = 20
    trainable_modules: list[str] = field(default_factory=list)
    seed: int = 1247
    use_mixed_noise: bool = True
    mixed_noise_alpha: float = 1.0
    mixed_precision_training: bool = True
    enable_gradient_checkpointing: bool = True
    max_train_steps: int = 10000000
    max_train_epochs: int = -1


@dataclass
class OptimizerConfig:
    lr: float = 1e-5
    scale_lr: bool = False
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0


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


@dataclass
class SyncNetCkptConfig:
    resume_ckpt_path: str = ""
    inference_ckpt_path: str = ""
    save_ckpt_steps: int = 2500


@dataclass
class SyncNetDataConfig:
    train_output_dir: str = "debug/syncnet"
    num_val_samples: int = 2048
    batch_size: int = 256
    gradient_accumulation_steps: int = 1
    num_workers: int = 12
    latent_space: bool = False
    num_frames: int = 16
    resolution: int = 256
    train_fileslist: str = ""
    train_data_dir: str = ""
    val_fileslist: str = ""
    val_data_dir: str = ""
    audio_mel_cache_dir: str = ""
    lower_half: bool = True
    audio_sample_rate: int = 16000
    video_fps: int = 25


@dataclass
class SyncNetOptimizerConfig:
    lr: float = 1e-5
    max_grad_norm: float = 1.0


@dataclass
class SyncNetRunConfig:
    max_train_steps: int = 10000000
    validation_steps: int = 2500
    mixed_precision_training: bool = True
    seed: int = 42


@dataclass
class SyncNetFileConfig:
    model: SyncNetModelConfig = field(default_factory=SyncNetModelConfig)
    ckpt: SyncNetCkptConfig = field(default_factory=SyncNetCkptConfig)
    data: SyncNetDataConfig = field(default_factory=SyncNetDataConfig)
    optimizer: SyncNetOptimizerConfig = field(default_factory=SyncNetOptimizerConfig)
    run: SyncNetRunConfig = field(default_factory=SyncNetRunConfig)


@dataclass
class AudioMelConfig:
    num_mels: int = 80
    rescale: bool = True
    rescaling_max: float = 0.9
    use_lws: bool = False
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    sample_rate: int = 16000
    frame_shift_ms: Any = None
    signal_normalization: bool = True
    allow_clipping_in_normalization: bool = True
    symmetric_mels: bool = True
    max_abs_value: float = 4.0
    preemphasize: bool = True
    preemphasis: float = 0.97
    min_level_db: int = -100
    ref_level_db: int = 20
    fmin: int = 55
    fmax: int = 7600


@dataclass
class AudioFileConfig:
    audio: AudioMelConfig = field(default_factory=AudioMelConfig)


@dataclass
class UNetFileConfig:
    data: UNetDataConfig = field(default_factory=UNetDataConfig)
    ckpt: UNetCkptConfig = field(default_factory=UNetCkptConfig)
    run: UNetRunConfig = field(default_factory=UNetRunConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    model: UNetConfig = field(default_factory=UNetConfig)


# ---------------------------------------------------------------------------------------------------------------


def _schema_for(raw: DictConfig) -> type:
    if "audio" in raw and "model" not in raw:
        return AudioFileConfig
    model = raw.get("model")
    if isinstance(model, DictConfig) and ("audio_encoder" in model or "visual_encoder" in model):
        return SyncNetFileConfig
    return UNetFileConfig


def load_config(path: str | Path) -> DictConfig:
    """Load an official-format YAML config (U-Net, SyncNet or audio), validated, as an OmegaConf node.

    The kind is recognised from its sections. The result keeps the official attribute access
    (`cfg.model.block_out_channels`, `cfg.data.resolution`, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml scanner/parser errors
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    schema = _schema_for(raw)
    unknown = [k for k in raw if k not in {f.name for f in fields(schema)}]
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}")
    return OmegaConf.structured(structured(schema, raw, str(path)))


def bundled_config(name: str) -> Path:
    """Path of a config shipped with the package, e.g. `unet/stage2_512.yaml` or `scheduler_config.json`."""
    path = CONFIG_DIR / name
    if not path.is_file():
        available = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*") if p.is_file())
        raise ConfigError(f"no bundled config {name!r}; available: {', '.join(available)}")
    return path


def to_dict(node: Any) -> Any:
    """Plain Python containers from an OmegaConf node or a (nested) dataclass."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if is_dataclass(node):
        return OmegaConf.to_container(OmegaConf.structured(node), resolve=True)
    return node
