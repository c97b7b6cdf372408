"""Tiny random-weight stand-ins for the official models, written in the official file formats.

They let the whole pipeline (and the server) run on a CPU in seconds, with no download: tests, benchmarks
and anyone checking an installation use them. The outputs are noise-like, not lip sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from diffusers import AutoencoderKL

from latentsync.config import bundled_config, load_config, save_config, to_dict
from latentsync.models.unet import UNet3DConditionModel
from latentsync.testing.whisper import write_whisper_checkpoint

if TYPE_CHECKING:
    from latentsync.pipelines.lipsync import LipsyncPipeline

M = TypeVar("M", bound=torch.nn.Module)

TINY_WIDTH = 64  # whisper width = U-Net cross-attention width


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
            "--unet-config", str(self.unet_config),
            "--unet-checkpoint", str(self.unet_checkpoint),
            "--whisper-checkpoint", str(self.whisper_checkpoint),
            "--vae", str(self.vae),
            "--device", "cpu",
            "--no-download",
        ]  # fmt: skip

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
        n_mels=80, n_audio_ctx=1500, n_audio_state=TINY_WIDTH, n_audio_head=2, n_audio_layer=2,
        n_vocab=64, n_text_ctx=8, n_text_state=TINY_WIDTH, n_text_head=2, n_text_layer=1,
    )  # fmt: skip
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
