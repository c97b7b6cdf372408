"""Helpers and fixtures of the training tests (import the fixtures into a test module to use them): a few seconds of the demo clips aligned by the project's own face path."""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

# The shared assets and goldens beside the repository; LATENTSYNC_SHARED points elsewhere (e.g. from a worktree).
SHARED = Path(os.environ.get("LATENTSYNC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
ASSETS, GOLDEN = SHARED / "assets", SHARED / "golden"
CLIP_FRAMES = 64  # 2.56 s: more than the U-Net's 48-frame minimum
CLIP_RESOLUTION = 64


def align_clip(video: Path, output: Path, frames: int = CLIP_FRAMES, resolution: int = CLIP_RESOLUTION) -> Path:
    """The first `frames` frames of `video` as aligned face crops with their own audio, as data preparation would."""
    from latentsync.audio.decode import load_audio
    from latentsync.faces import create_detector, crop_face, track_faces
    from latentsync.media import VideoReader, VideoWriter

    pictures = list(islice(VideoReader(video, fps=25), frames))
    track = track_faces(pictures, create_detector("dlib"), resolution, progress=False)
    matrices = track.matrices.copy()
    for i in range(len(matrices)):  # a frame without a face keeps the previous alignment
        if not track.found[i]:
            matrices[i] = matrices[i - 1] if i else matrices[np.argmax(track.found)]
    audio = load_audio(video)[: frames * 640]
    with VideoWriter(output, resolution, resolution, fps=25, audio=audio, sample_rate=16000) as writer:
        for picture, matrix in zip(pictures, matrices):
            writer.write(crop_face(picture, matrix, resolution))
    return output


@pytest.fixture(scope="session")
def aligned_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three 64 px aligned clips (demo1..3, 2.56 s each); made once per test session."""
    if not ASSETS.is_dir():
        pytest.fail(f"shared assets not found at {ASSETS}")
    kept = os.environ.get("LATENTSYNC_ALIGNED_CLIPS")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("aligned_clips")
    for name in ("demo1", "demo2", "demo3"):  # LATENTSYNC_ALIGNED_CLIPS keeps them between sessions
        if not (folder / f"{name}.mp4").is_file():
            align_clip(ASSETS / f"{name}_video.mp4", folder / f"{name}.mp4")
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Until the training step (latentsync.train.objectives, trainrecipe's) and its tiny models land in this tree, the
# tests run against these small stand-ins with the same names and batch keys. The real modules win when present.


def install_objectives_stand_in() -> None:
    import sys
    import types
    from dataclasses import dataclass
    from typing import Any

    import torch
    import torch.nn.functional as F

    try:
        import latentsync.train.objectives  # noqa: F401

        return
    except ImportError:
        pass

    @dataclass
    class UNetTrainingModels:
        unet: Any
        vae: Any
        scheduler: Any
        whisper: Any
        syncnet: Any = None
        lpips: Any = None
        trepa: Any = None

    def load_unet_training_models(cfg, device):
        from diffusers import DDIMScheduler

        from latentsync.audio.features import AudioEncoder
        from latentsync.config import bundled_config, to_dict
        from latentsync.models.unet import UNet3DConditionModel
        from latentsync.models.vae import load_vae

        unet = UNet3DConditionModel.from_pretrained(to_dict(cfg.model), cfg.ckpt.resume_ckpt_path, device=device)
        unet.train()
        scheduler = DDIMScheduler.from_pretrained(bundled_config("scheduler_config.json").parent)
        vae = load_vae(cfg.weights.vae, device=device)
        return UNetTrainingModels(unet, vae, scheduler, AudioEncoder(cfg.weights.whisper, device=device))

    def trainable_parameters(unet, cfg):
        named = list(unet.named_parameters())
        if cfg.model.use_motion_module:
            keep = [(n, p) for n, p in named if any(m in n for m in cfg.run.trainable_modules)]
        else:
            keep = named
        unet.requires_grad_(False)
        for _, p in keep:
            p.requires_grad_(True)
        return keep

    def unet_loss(models, batch, cfg, generator=None, autocast_dtype=None):
        vae, unet = models.vae, models.unet
        b, f = batch["gt"].shape[:2]

        def encode(frames):
            dist = vae.encode(frames.flatten(0, 1).to(vae.device)).latent_dist
            latents = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator)
            return (latents * vae.config.scaling_factor).unflatten(0, (b, f)).transpose(1, 2)

        with torch.no_grad():
            gt = encode(batch["gt"])
            masked = encode(batch["gt"] * batch["mask"])
            ref = encode(batch["ref"])
        size = gt.shape[-1]
        mask = F.interpolate(batch["mask"].flatten(0, 1), size=size).unflatten(0, (b, f)).transpose(1, 2)
        noise = torch.randn(gt.shape, generator=generator)
        t = torch.randint(0, 1000, (b,), generator=generator)
        noisy = models.scheduler.add_noise(gt, noise, t)
        pred = unet(torch.cat([noisy, mask, masked, ref], 1), t, batch["audio_embeds"]).sample
        loss = F.mse_loss(pred.float(), noise.float())
        return loss, {"recon": loss.item(), "total": loss.item()}

    def syncnet_loss(syncnet, batch, cfg, vae=None):
        frames = batch["frames"]
        if cfg.data.lower_half:
            frames = frames[..., frames.shape[-2] // 2 :, :]
        vision, audio = syncnet(frames.flatten(1, 2), batch["mel"])
        cosine = F.cosine_similarity(vision, audio).clamp(0, 1)
        return F.binary_cross_entropy(cosine[:, None], batch["y"].to(cosine.dtype)), cosine

    module = types.ModuleType("latentsync.train.objectives")
    module.UNetTrainingModels = UNetTrainingModels
    module.load_unet_training_models = load_unet_training_models
    module.trainable_parameters = trainable_parameters
    module.unet_loss = unet_loss
    module.syncnet_loss = syncnet_loss
    sys.modules["latentsync.train.objectives"] = module


TINY_SYNCNET_MODEL = {
    "audio_encoder": {
        "in_channels": 1,
        "block_out_channels": [32, 32, 32, 32, 32, 64, 64],
        "downsample_factors": [[2, 1], 2, 2, 1, 2, 2, [2, 3]],
        "attn_blocks": [0, 0, 0, 0, 1, 0, 0],
        "dropout": 0.0,
    },
    "visual_encoder": {
        "in_channels": 48,
        "block_out_channels": [32, 32, 32, 32, 64, 64],
        "downsample_factors": [[1, 2], 2, 2, 2, 2, 2],
        "attn_blocks": [0, 0, 0, 1, 0, 0],
        "dropout": 0.0,
    },
}


def write_tiny_training_setup(folder: Path) -> Path:
    """The tiny models of training (`write_tiny_training_models` once it exists) and the two override files."""
    from omegaconf import OmegaConf

    from latentsync import testing

    if hasattr(testing, "write_tiny_training_models"):
        testing.write_tiny_training_models(folder)
        return folder
    import torch

    from latentsync.config import bundled_config, load_config
    from latentsync.models.syncnet import StableSyncNet

    tiny = testing.write_tiny_models(folder, resolution=CLIP_RESOLUTION)
    cfg = load_config(bundled_config("syncnet/syncnet_16_pixel_attn.yaml"))
    cfg.model = OmegaConf.merge(cfg.model, TINY_SYNCNET_MODEL)
    cfg.data.resolution = CLIP_RESOLUTION
    cfg.ckpt.inference_ckpt_path = str(folder / "syncnet_tiny.pt")  # the U-Net's sync loss reads it from the file
    OmegaConf.save(cfg, folder / "syncnet_tiny.yaml")
    torch.manual_seed(0)
    syncnet = StableSyncNet(TINY_SYNCNET_MODEL)
    torch.save({"state_dict": syncnet.state_dict(), "global_step": 0}, folder / "syncnet_tiny.pt")
    unet_lines = [
        f"ckpt.resume_ckpt_path={tiny.unet_checkpoint}",
        f"weights.vae={tiny.vae}",
        f"weights.whisper={tiny.whisper_checkpoint}",
        f"data.syncnet_config_path={folder / 'syncnet_tiny.yaml'}",
        f"data.resolution={CLIP_RESOLUTION}",
        "data.batch_size=1",
        "data.num_workers=0",
        "run.max_train_steps=4",
        "ckpt.save_ckpt_steps=2",
        "run.pixel_space_supervise=false",
        "run.use_syncnet=false",
        "run.mixed_precision_training=false",
        "run.enable_gradient_checkpointing=false",
    ]
    (folder / "train_unet.overrides").write_text("\n".join(unet_lines) + "\n")
    syncnet_lines = [
        "data.batch_size=2",
        "data.num_workers=0",
        f"data.resolution={CLIP_RESOLUTION}",
        "data.num_val_samples=4",
        "run.max_train_steps=4",
        "run.validation_steps=2",
        "ckpt.save_ckpt_steps=2",
        f"ckpt.inference_ckpt_path={folder / 'syncnet_tiny.pt'}",
    ]
    (folder / "train_syncnet.overrides").write_text("\n".join(syncnet_lines) + "\n")
    return folder


def overrides(folder: Path, kind: str) -> list[str]:
    return (folder / f"train_{kind}.overrides").read_text().split()


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_training_setup(tmp_path_factory.mktemp("tiny_training"))
