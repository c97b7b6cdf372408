"""Schemas of the official config files, one dataclass per file kind and one per section.

A file's kind is recognised from its sections (`_schema_for` in `latentsync.config`); adding a section to a
kind is adding a field here. The `model:` sections live beside their models (`models/unet_config.py`,
`models/syncnet_config.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latentsync.config.defaults import INFERENCE
from latentsync.config.schema import ConfigError
from latentsync.constants import CLIP_FRAMES, MODEL_SAMPLE_RATE, VIDEO_FPS
from latentsync.models.syncnet_config import SyncNetModelConfig
from latentsync.models.unet_config import UNetConfig


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
    num_frames: int = CLIP_FRAMES
    resolution: int = 256
    mask_image_path: str = "latentsync/utils/mask.png"
    audio_sample_rate: int = MODEL_SAMPLE_RATE
    video_fps: int = VIDEO_FPS
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
    guidance_scale: float = INFERENCE.guidance_scale
    trepa_loss_weight: float = 10.0
    inference_steps: int = INFERENCE.steps
    trainable_modules: list[str] = field(default_factory=list)
    seed: int = INFERENCE.seed
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
    num_frames: int = CLIP_FRAMES
    resolution: int = 256
    train_fileslist: str = ""
    train_data_dir: str = ""
    val_fileslist: str = ""
    val_data_dir: str = ""
    audio_mel_cache_dir: str = ""
    lower_half: bool = True
    audio_sample_rate: int = MODEL_SAMPLE_RATE
    video_fps: int = VIDEO_FPS


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


# Our training options (not in the official files, so every key is optional and off / official by default).

OPTIMIZERS = ("adamw", "adamw_fused", "adamw_8bit")  # latentsync.train.loop.adamw builds them
WEIGHT_DTYPES = ("fp32", "fp16", "bf16")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    """A string option outside its choices is a ConfigError naming the key (the schema only checks types)."""
    if value not in choices:
        raise ConfigError(f"train.{key}={value!r}: use one of {', '.join(choices)}")


@dataclass
class UNetWeightsConfig:
    """Every file U-Net training loads besides the U-Net and the frozen SyncNet, at the official locations."""

    vae: str = "stabilityai/sd-vae-ft-mse"  # hub id or local diffusers folder (scaling forced to 0.18215)
    whisper: str = "checkpoints/whisper/tiny.pt"
    trepa: str = "checkpoints/auxiliary/vit_g_hybrid_pt_1200e_ssv2_ft.pth"
    lpips_vgg: str = "checkpoints/auxiliary/vgg16-397923af.pth"  # torchvision's VGG16 state dict
    lpips_net: str = "vgg"
    # Validation's sync confidence (the official trainer's chart); optional here: absent, only the cosine is logged.
    syncnet_v2: str = "checkpoints/auxiliary/syncnet_v2.model"
    s3fd: str = "checkpoints/auxiliary/sfd_face.pth"  # its face tracks; absent, the project's own finder


@dataclass
class SyncNetWeightsConfig:
    vae: str = "stabilityai/sd-vae-ft-mse"  # latent-space SyncNets only


@dataclass
class UNetTrainConfig:
    keep_last: int = 3  # checkpoints kept; 0 keeps all
    log_every: int = 10
    gradient_accumulation_steps: int = 1
    dtype: str = "fp16"  # fp16 (official AMP + GradScaler), bf16 or fp32; the CPU always trains in fp32
    audio_dropout: float = 0.0  # rate of samples shown zero audio (inference's guidance branch)
    max_bad_steps: int = 20  # non-finite steps in a row before training stops
    validation_steps: int = 0  # 0: at each checkpoint, as the official trainer
    lora_rank: int = 0  # 0: full fine-tune
    lora_alpha: float = 16.0
    lora_base_dtype: str = "fp32"  # fp16/bf16: the frozen U-Net of a LoRA run stored in half precision
    latent_cache_dir: str = ""
    optimizer: str = "adamw"  # adamw (official), adamw_fused (torch), adamw_8bit (bitsandbytes)

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lora_base_dtype", self.lora_base_dtype, WEIGHT_DTYPES)


@dataclass
class SyncNetTrainConfig:
    keep_last: int = 3
    log_every: int = 10
    dtype: str = "fp16"
    max_bad_steps: int = 20
    optimizer: str = "adamw"

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)


@dataclass
class SyncNetFileConfig:
    model: SyncNetModelConfig = field(default_factory=SyncNetModelConfig)
    ckpt: SyncNetCkptConfig = field(default_factory=SyncNetCkptConfig)
    data: SyncNetDataConfig = field(default_factory=SyncNetDataConfig)
    optimizer: SyncNetOptimizerConfig = field(default_factory=SyncNetOptimizerConfig)
    run: SyncNetRunConfig = field(default_factory=SyncNetRunConfig)
    weights: SyncNetWeightsConfig = field(default_factory=SyncNetWeightsConfig)
    train: SyncNetTrainConfig = field(default_factory=SyncNetTrainConfig)


@dataclass
class AudioMelConfig:
    num_mels: int = 80
    rescale: bool = True
    rescaling_max: float = 0.9
    use_lws: bool = False
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    sample_rate: int = MODEL_SAMPLE_RATE
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
    weights: UNetWeightsConfig = field(default_factory=UNetWeightsConfig)
    train: UNetTrainConfig = field(default_factory=UNetTrainConfig)
