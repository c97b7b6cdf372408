"""One training step's maths: which models a U-Net run loads, which parameters it trains, and its losses.

The official recipe exactly (`../shared/spec/training.md` §1): three VAE encodes with one posterior draw each,
nearest-resized mask, mixed noise, one uniform timestep per clip, epsilon target, MSE over the whole latent, the
unclamped one-step clean latent decoded with gradients, LPIPS on the lower half, TREPA on the whole crop, and the
frozen SyncNet's BCE-on-cosine. The U-Net's input is built by `latentsync.diffusion`, as inference builds it. No
data loading and no loop here: the trainer (`train/unet.py`, `train/syncnet.py`) calls these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from omegaconf import DictConfig
from torch import nn

from latentsync.audio import AudioEncoder
from latentsync.config import config_file, load_config, to_dict
from latentsync.diffusion import (
    add_noise,
    decode_latents,
    encode_latents,
    from_video,
    latent_mask,
    load_scheduler,
    mixed_noise,
    one_step_clean_latent,
    repeated_noise,
    sample_latents,
    to_video,
    unet_condition,
    unet_input,
)
from latentsync.diffusion.syncnet_input import syncnet_input, syncnet_stack
from latentsync.hub import MissingCheckpointError
from latentsync.models.auxiliary.videomae import VideoMAEv2
from latentsync.models.syncnet import StableSyncNet
from latentsync.models.unet import UNet3DConditionModel
from latentsync.models.vae import load_vae

from .losses import (
    TREPALoss,
    build_lpips,
    cosine_bce,
    lpips_lower_half,
    reconstruction_loss,
    sync_cosine,
    sync_loss,
)

FETCH_HINT = "latentsync download --with-training"


@dataclass
class UNetTrainingModels:
    """Everything a U-Net training step runs. Only `unet` trains; the rest is frozen (None when not used)."""

    unet: nn.Module  # UNet3DConditionModel, or its DDP wrapper during distributed training
    vae: AutoencoderKL
    scheduler: DDIMScheduler
    whisper: AudioEncoder | None
    syncnet: StableSyncNet | None = None
    lpips: nn.Module | None = None
    trepa: TREPALoss | None = None
    syncnet_resolution: int = 256
    syncnet_lower_half: bool = True
    # Frames per recomputed piece of the clean-latent decode and of LPIPS: the backward pass holds one piece's
    # activations at a time instead of all frames' (benchmarks/train_memory.py); the losses are the same.
    # None keeps every frame's activations, as the official step.
    recompute_frames: int | None = 4


def frozen_dtype(cfg: DictConfig, device: torch.device) -> torch.dtype:
    """The weight dtype of the frozen networks: fp16 on CUDA as the official trainer (bf16/fp32 when the run's
    `train.dtype` says so), fp32 on the CPU."""
    if device.type != "cuda":
        return torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[str(cfg.train.dtype)]


def require_file(path: str | Path, what: str, key: str) -> Path:
    """`path` if it exists, else an error naming it, the config key that sets it and the command that fetches it."""
    path = Path(path)
    if not path.exists():
        raise MissingCheckpointError(f"{what} not found at {path} (config key {key}); fetch it with `{FETCH_HINT}`")
    return path


def load_unet_training_models(cfg: DictConfig, device: str | torch.device) -> UNetTrainingModels:
    """The models of a U-Net run of `cfg` (a U-Net file config), built and gated as the official trainer.

    The U-Net starts from `ckpt.resume_ckpt_path` (a fresh model when empty; loaded by name as the official trainer
    loads it, what did not match logged in one line), fp32, in train mode, gradient
    checkpointing per `run.enable_gradient_checkpointing`. SyncNet when `model.add_audio_layer` and
    `run.use_syncnet`; LPIPS and TREPA when `run.pixel_space_supervise` and their weight is not 0.
    """
    device = torch.device(device)
    dtype = frozen_dtype(cfg, device)
    checkpointing = bool(cfg.run.enable_gradient_checkpointing)
    pixel = bool(cfg.run.pixel_space_supervise)
    model_cfg = to_dict(cfg.model)

    if cfg.ckpt.resume_ckpt_path:
        path = require_file(cfg.ckpt.resume_ckpt_path, "starting U-Net checkpoint", "ckpt.resume_ckpt_path")
        # by name, as the official trainer: a stage-2 file starts a stage-1 model (its motion modules ignored)
        unet = UNet3DConditionModel.from_pretrained(model_cfg, path, device=device, strict=False)
    else:
        unet = UNet3DConditionModel.from_config(model_cfg).to(device)
    unet.enable_gradient_checkpointing(checkpointing)
    unet.train()

    vae = load_vae(cfg.weights.vae, device, dtype)
    if pixel and checkpointing:
        vae.enable_gradient_checkpointing()

    whisper = None
    if cfg.model.add_audio_layer:
        whisper = AudioEncoder(require_file(cfg.weights.whisper, "Whisper checkpoint", "weights.whisper"), device)

    models = UNetTrainingModels(unet, vae, load_scheduler(), whisper)
    if cfg.model.add_audio_layer and cfg.run.use_syncnet:
        sync_cfg = load_config(
            require_file(config_file(cfg.data.syncnet_config_path), "SyncNet config", "data.syncnet_config_path")
        )
        path = require_file(sync_cfg.ckpt.inference_ckpt_path, "SyncNet weights", "ckpt.inference_ckpt_path")
        syncnet = StableSyncNet.from_pretrained(to_dict(sync_cfg.model), path, device)
        for module in (syncnet.audio_encoder, syncnet.visual_encoder):
            module.gradient_checkpointing = checkpointing
        models.syncnet = syncnet.to(dtype=dtype).requires_grad_(False).eval()
        models.syncnet_resolution = int(sync_cfg.data.resolution)
        models.syncnet_lower_half = bool(sync_cfg.data.lower_half)
    if pixel and cfg.run.perceptual_loss_weight != 0:
        backbone = require_file(cfg.weights.lpips_vgg, "LPIPS backbone weights", "weights.lpips_vgg")
        models.lpips = build_lpips(str(cfg.weights.lpips_net), backbone).to(device)
    if pixel and cfg.run.trepa_loss_weight != 0:
        path = require_file(cfg.weights.trepa, "VideoMAE-v2 weights (TREPA)", "weights.trepa")
        videomae = VideoMAEv2.from_pretrained(path, device, gradient_checkpointing=checkpointing)
        models.trepa = TREPALoss(videomae.to(dtype=dtype).requires_grad_(False).eval())
    return models


def trainable_parameters(unet: nn.Module, cfg: DictConfig) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs a run trains, with `requires_grad` set on exactly those.

    LoRA adapters when the U-Net has them; else, with motion modules, every parameter whose name contains one
    of `run.trainable_modules` (the official substring rule); else (stage 1) every parameter.
    """
    core: nn.Module = getattr(unet, "module", unet)
    named = list(core.named_parameters())
    selected = [(n, p) for n, p in named if "lora_" in n]
    if not selected:
        if cfg.model.use_motion_module:
            wanted = list(cfg.run.trainable_modules)
            selected = [(n, p) for n, p in named if any(part in n for part in wanted)]
        else:
            selected = named
    core.requires_grad_(False)
    for _, param in selected:
        param.requires_grad_(True)
    return selected


def _latents(
    vae: AutoencoderKL, batch: dict[str, Any], key: str, pixels: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """(b, 4, f, h, w) sampled, scaled latents of (b, f, 3, R, R) pixels, or of their precomputed moments
    `batch[key]` (b, f, 8, h, w): mean then log-variance, the VAE's posterior parameters."""
    frames = pixels.shape[1]
    moments = batch.get(key)
    if moments is not None:
        mean, logvar = moments.flatten(0, 1).to(vae.device, vae.dtype).chunk(2, dim=1)
        latents = sample_latents(vae, mean, logvar, generator)
    else:
        flat = pixels.flatten(0, 1).to(vae.dtype)
        latents = encode_latents(vae, flat, generator, batch=flat.shape[0])
    return to_video(latents, frames)


def unet_step_input(
    models: UNetTrainingModels, batch: dict[str, Any], cfg: DictConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(unet input (b, 13, f, h, w), timesteps (b,), noise, noisy latents) of a batch, drawn in the official order:
    the ground-truth, masked and reference posteriors, the noise (shared part first), then the timesteps."""
    vae, gt, mask = models.vae, batch["gt"], batch["mask"]
    with torch.no_grad():
        gt_latents = _latents(vae, batch, "gt_moments", gt, generator)
        masked_latents = _latents(vae, batch, "masked_moments", gt * mask, generator)
        ref_latents = _latents(vae, batch, "ref_moments", batch["ref"], generator)
    frames, size = gt.shape[1], gt_latents.shape[-2:]
    mask_latents = to_video(latent_mask(mask.flatten(0, 1).to(gt_latents.dtype), size), frames)

    shape, dtype, device = gt_latents.shape, gt_latents.dtype, gt_latents.device
    if cfg.run.use_mixed_noise:
        noise = mixed_noise(shape, float(cfg.run.mixed_noise_alpha), generator, dtype, device)
    else:
        noise = repeated_noise(shape, generator, dtype, device)
    steps = models.scheduler.config["num_train_timesteps"]
    timesteps = torch.randint(0, steps, (shape[0],), generator=generator, device=device)
    noisy = add_noise(models.scheduler, gt_latents, noise, timesteps)
    condition = unet_condition(mask_latents, masked_latents, ref_latents)
    return unet_input(noisy, condition), timesteps, noise, noisy


def unet_loss(
    models: UNetTrainingModels,
    batch: dict[str, Any],
    cfg: DictConfig,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss of one U-Net step on a collated batch, and each term that ran (plus "total") as floats.

    batch: `gt`, `ref` (b, 16, 3, R, R) in [-1, 1]; `mask` (b, 16, 1, R, R), 1 keeps and 0 is the mouth;
    `audio_embeds` (b, 16, 50, C); `mel` (b, 1, 80, 52); optionally `gt_moments`, `masked_moments`, `ref_moments`.
    The U-Net forward runs under autocast in `autocast_dtype` (None: off); everything else as the official step.
    """
    total, terms = unet_loss_terms(models, batch, cfg, generator, autocast_dtype)
    report = {name: float(value.detach()) for name, value in terms.items()}
    report["total"] = float(total.detach())
    return total, report


def unet_loss_terms(
    models: UNetTrainingModels,
    batch: dict[str, Any],
    cfg: DictConfig,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`unet_loss` with the terms as tensors (no host sync; what benchmarks/train_memory.py runs)."""
    run = cfg.run
    core: Any = getattr(models.unet, "module", models.unet)  # the bare U-Net under a DDP wrapper
    model_input, timesteps, noise, noisy = unet_step_input(models, batch, cfg, generator)
    audio = None
    if core.config.add_audio_layer:
        audio = batch["audio_embeds"].to(model_input.device, model_input.dtype)
    if autocast_dtype is None:
        model_input = model_input.to(core.dtype)
    device_type = model_input.device.type
    with torch.autocast(device_type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        noise_pred = models.unet(model_input, timesteps, audio).sample

    terms: dict[str, torch.Tensor] = {}
    if run.recon_loss_weight != 0:
        terms["recon"] = reconstruction_loss(noise_pred, noise)
    clean = one_step_clean_latent(models.scheduler, noisy.to(noise_pred.dtype), noise_pred, timesteps)
    frames = batch["gt"].shape[1]
    if run.pixel_space_supervise:
        vae, chunk, latents = models.vae, models.recompute_frames, from_video(clean)
        pred_pixels = decode_latents(vae, latents, batch=chunk or len(latents), checkpoint=chunk is not None)
        gt_pixels = batch["gt"].flatten(0, 1).to(vae.device, vae.dtype)
        if run.perceptual_loss_weight != 0 and models.lpips is not None:
            terms["lpips"] = lpips_lower_half(models.lpips, pred_pixels, gt_pixels, batch=chunk)
        if run.trepa_loss_weight != 0 and models.trepa is not None:
            terms["trepa"] = models.trepa(to_video(pred_pixels, frames), to_video(gt_pixels, frames))
    if core.config.add_audio_layer and run.use_syncnet and models.syncnet is not None:
        if run.pixel_space_supervise:
            stack = syncnet_input(pred_pixels, frames, models.syncnet_resolution, models.syncnet_lower_half)
        else:  # a latent-space SyncNet scores the clean latents
            stack = syncnet_input(from_video(clean), frames, None, models.syncnet_lower_half)
        terms["sync"] = sync_loss(models.syncnet, stack, batch["mel"])

    weights = {
        "recon": run.recon_loss_weight,
        "sync": run.sync_loss_weight,
        "lpips": run.perceptual_loss_weight,
        "trepa": run.trepa_loss_weight,
    }
    total = sum((float(weights[name]) * value for name, value in terms.items()), torch.zeros((), device=noise.device))
    return total, terms


def syncnet_loss(
    syncnet: nn.Module, batch: dict[str, Any], cfg: DictConfig, vae: AutoencoderKL | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean BCE-on-cosine loss, per-sample cosine (b,)) of one SyncNet training batch.

    batch: `frames` (b, 16, 3, R, R) in [-1, 1], `mel` (b, 1, 80, 52), `y` (b, 1) with 1 in sync, 0 shifted.
    A latent-space config (`data.latent_space`) scores the frames' VAE latents (encoded without gradients);
    `data.lower_half` keeps the lower half rows. Autocast, if any, is the caller's.
    """
    stack = syncnet_stack(batch["frames"], bool(cfg.data.latent_space), bool(cfg.data.lower_half), vae)
    vision, audio = syncnet(stack, batch["mel"])
    vision, audio = vision.float(), audio.float()
    loss = cosine_bce(vision, audio, batch["y"].float()).mean()
    return loss, sync_cosine(vision, audio).detach()
