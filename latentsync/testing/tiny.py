"""Tiny random-weight stand-ins for the official models, written in the official file formats.

They let the whole pipeline (and the server) run on a CPU in seconds, with no download: tests, benchmarks
and anyone checking an installation use them. The outputs are noise-like, not lip sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from omegaconf import OmegaConf

from latentsync.config import bundled_config, load_config, save_config, to_dict
from latentsync.models.unet import UNet3DConditionModel
from latentsync.testing.whisper import write_whisper_checkpoint

if TYPE_CHECKING:
    from latentsync.pipelines.lipsync import LipsyncPipeline

M = TypeVar("M", bound=torch.nn.Module)

TINY_WIDTH = 64  # whisper width = U-Net cross-attention width
EMBED = 256  # the tiny SyncNet's embedding width: 8 channels in each of its last GroupNorm's 32 groups


@dataclass(frozen=True)
class TinyModels:
    unet_config: Path
    unet_checkpoint: Path
    whisper_checkpoint: Path
    vae: Path
    resolution: int

    def cli_args(self) -> list[str]:
        """The model options of `latentsync infer`/`serve` that select these models on the CPU, offline."""
        return [
            "--unet-config",
            str(self.unet_config),
            "--unet-checkpoint",
            str(self.unet_checkpoint),
            "--whisper-checkpoint",
            str(self.whisper_checkpoint),
            "--vae",
            str(self.vae),
            "--device",
            "cpu",
            "--no-download",
        ]

    def load_pipeline(self) -> LipsyncPipeline:
        from latentsync.pipelines.lipsync import LipsyncPipeline

        return LipsyncPipeline.from_pretrained(
            unet_config=self.unet_config,
            unet_checkpoint=self.unet_checkpoint,
            whisper_checkpoint=self.whisper_checkpoint,
            vae=self.vae,
            device="cpu",
        )


def randomize(module: M, generator: torch.Generator | int = 0) -> M:
    """Scaled normal weights everywhere, so that no zero-initialised layer hides a code path; returns `module`."""
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return module


def write_tiny_models(folder: str | Path, resolution: int = 64, seed: int = 0) -> TinyModels:
    """Write a tiny U-Net config and checkpoint, whisper checkpoint and VAE folder into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)

    cfg = load_config(bundled_config("unet/stage2.yaml"))
    cfg.data.resolution = resolution
    cfg.model.block_out_channels = [32, 32, 64, 64]
    cfg.model.attention_head_dim = 4
    cfg.model.layers_per_block = 1
    cfg.model.cross_attention_dim = TINY_WIDTH
    cfg.model.sample_size = resolution // 8
    unet_config = folder / "unet_tiny.yaml"
    save_config(cfg, unet_config)
    unet = UNet3DConditionModel.from_config(to_dict(cfg.model))
    randomize(unet, gen)
    unet_checkpoint = folder / "unet_tiny.pt"
    torch.save({"state_dict": unet.state_dict(), "global_step": 0}, unet_checkpoint)

    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=TINY_WIDTH,
        n_audio_head=2,
        n_audio_layer=2,
        n_vocab=64,
        n_text_ctx=8,
        n_text_state=TINY_WIDTH,
        n_text_head=2,
        n_text_layer=1,
    )
    whisper = Whisper(dims)
    randomize(whisper, gen)
    whisper_checkpoint = write_whisper_checkpoint(folder / "whisper_tiny.pt", dims.__dict__, whisper.state_dict())

    vae = AutoencoderKL(
        block_out_channels=[32, 32, 32, 32],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=resolution,
    )
    vae_folder = folder / "vae"
    vae.save_pretrained(vae_folder)
    return TinyModels(unet_config, unet_checkpoint, whisper_checkpoint, vae_folder, resolution)


@dataclass(frozen=True)
class TinyTrainingModels:
    """The inference set plus what training loads, and the override files that point the configs at them."""

    inference: TinyModels
    syncnet_config: Path
    syncnet_checkpoint: Path
    videomae: Path
    lpips_backbone: Path
    unet_overrides: Path
    syncnet_overrides: Path


def _tiny_syncnet_model(resolution: int) -> dict:
    """A narrow StableSyncNet whose visual encoder reduces the lower half of R px crops (R a power of 2) to 1x1.

    Both encoders end wide (EMBED channels): their last GroupNorm(32) normalises each group of the 1x1 embedding
    over its own channels, and with 2 channels a group (a width of 64) it outputs +-1 whatever the input (but for
    the eps), so next to no gradient reaches the encoders and a SyncNet of that width never learns (loss ln 2).
    """
    blocks = resolution.bit_length() - 1  # one (1, 2) block, then halving blocks down to 1x1
    return {
        "audio_encoder": {
            "in_channels": 1,
            "block_out_channels": [32] * 6 + [EMBED],
            "downsample_factors": [[2, 1], 2, 2, 1, 2, 2, [2, 3]],  # the official mel path: (80, 52) to 1x1
            "attn_blocks": [0, 0, 0, 1, 0, 0, 0],
            "dropout": 0.0,
        },
        "visual_encoder": {
            "in_channels": 48,
            "block_out_channels": [32] * (blocks - 1) + [EMBED],
            "downsample_factors": [[1, 2]] + [2] * (blocks - 1),
            "attn_blocks": [0] * (blocks - 2) + [1, 0],
            "dropout": 0.0,
        },
    }


def write_tiny_training_models(folder: str | Path, resolution: int = 64, seed: int = 0) -> TinyTrainingModels:
    """Everything `latentsync train` loads, tiny and random, in the official formats, plus two override files.

    Besides `write_tiny_models`' set: `syncnet_tiny.yaml` / `syncnet_tiny.pt` (pixel, lower half), a VideoMAE-v2
    in the official key layout, a torchvision SqueezeNet backbone for LPIPS, and `train_unet.overrides` /
    `train_syncnet.overrides` (one key=value a line) for `unet_tiny.yaml` (stage 2, all four losses) and
    `syncnet_tiny.yaml`: `latentsync train unet --config DIR/unet_tiny.yaml $(cat DIR/train_unet.overrides)`.
    """
    from torchvision.models import squeezenet1_1

    from latentsync.models.auxiliary.videomae import VideoMAEConfig, VideoMAEv2
    from latentsync.models.syncnet import StableSyncNet

    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"tiny training models need a power-of-two resolution, got {resolution}")
    folder = Path(folder)
    inference = write_tiny_models(folder, resolution, seed)
    gen = torch.Generator().manual_seed(seed + 1)

    model = _tiny_syncnet_model(resolution)
    syncnet = StableSyncNet(model)
    randomize(syncnet, gen)
    syncnet_checkpoint = folder / "syncnet_tiny.pt"
    torch.save({"state_dict": syncnet.state_dict(), "global_step": 0}, syncnet_checkpoint)
    cfg = load_config(bundled_config("syncnet/syncnet_16_pixel_attn.yaml"))
    cfg.model = OmegaConf.merge(cfg.model, model)
    cfg.data.resolution = resolution
    cfg.ckpt.inference_ckpt_path = str(syncnet_checkpoint)
    syncnet_config = folder / "syncnet_tiny.yaml"
    OmegaConf.save(cfg, syncnet_config)

    videomae = VideoMAEv2(VideoMAEConfig(embed_dim=32, depth=1, num_heads=2, mlp_hidden=64, num_classes=4))
    randomize(videomae, gen)
    videomae_path = folder / "videomae_tiny.pth"
    torch.save({"model": videomae.state_dict()}, videomae_path)

    lpips_backbone = folder / "squeezenet1_1_tiny.pth"
    torch.save(squeezenet1_1(weights=None).state_dict(), lpips_backbone)

    common = [f"data.resolution={resolution}", "data.num_workers=0", "run.max_train_steps=4", "ckpt.save_ckpt_steps=2"]
    unet_lines = [
        f"ckpt.resume_ckpt_path={inference.unet_checkpoint}",
        f"weights.vae={inference.vae}",
        f"weights.whisper={inference.whisper_checkpoint}",
        f"weights.trepa={videomae_path}",
        f"weights.lpips_vgg={lpips_backbone}",
        "weights.lpips_net=squeeze",
        f"data.syncnet_config_path={syncnet_config}",
        "data.batch_size=1",
        *common,
    ]
    syncnet_lines = ["data.batch_size=2", "data.num_val_samples=4", "run.validation_steps=2", *common]
    unet_overrides, syncnet_overrides = folder / "train_unet.overrides", folder / "train_syncnet.overrides"
    unet_overrides.write_text("\n".join(unet_lines) + "\n")
    syncnet_overrides.write_text("\n".join(syncnet_lines) + "\n")
    return TinyTrainingModels(
        inference, syncnet_config, syncnet_checkpoint, videomae_path, lpips_backbone, unet_overrides, syncnet_overrides
    )
