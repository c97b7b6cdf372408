"""`train_unet`: the U-Net trainer (stage 1 and stage 2) around trainrecipe's training step.

The official recipe (see `objectives.unet_loss`) in a runner of ours: full-state resume, DDP under torchrun, bad
clips replaced in the dataset, per-term logging, official-layout checkpoints, validation renders.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from latentsync.data.unet_dataset import UNetDataset
from latentsync.train import lora
from latentsync.train import state as ckpt
from latentsync.train.distributed import DistEnv, init_distributed, shutdown
from latentsync.train.logging import TrainLogger
from latentsync.train.loop import LoopResult, LoopSettings, TrainLoop, adamw, precision

if TYPE_CHECKING:
    from latentsync.models.unet import UNet3DConditionModel

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def wrap_ddp(module: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DDP around `module` that still answers the module's own attributes (`config`, `dtype`, ...)."""
    from torch.nn.parallel import DistributedDataParallel

    class Wrapped(DistributedDataParallel):
        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    ids = [env.device.index] if env.device.type == "cuda" else None
    return Wrapped(module, device_ids=ids, output_device=ids[0] if ids else None)


def save_run_config(cfg: DictConfig, output_dir: Path, name: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / name)


def train_unet(
    cfg: DictConfig,
    output_dir: str | Path | None = None,
    resume: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> LoopResult:
    """Train the U-Net of `cfg` (a validated U-Net file config); returns the last step and checkpoint."""
    from diffusers.optimization import get_scheduler

    from latentsync.train.objectives import load_unet_training_models, trainable_parameters, unet_loss

    out = Path(output_dir or cfg.data.train_output_dir)
    env = init_distributed(device)
    try:
        seed = int(cfg.run.seed)
        seed_everything(seed + env.rank)
        dataset = UNetDataset.from_config(cfg)
        dataset.check_usable()
        resume_from = ckpt.resolve_resume(resume, out / "checkpoints")
        models = load_unet_training_models(cfg, env.device)
        unet = cast("UNet3DConditionModel", models.unet)  # as loaded: not wrapped in DDP yet (that is `wrapped`)
        start = int(getattr(getattr(unet, "load_report", None), "global_step", 0) or 0)  # official: continue it
        resumed = None
        lora_rank, lora_alpha = int(cfg.train.lora_rank), float(cfg.train.lora_alpha)
        if resume_from is not None:
            resumed = ckpt.load_resume(resume_from)
            if not lora_rank:  # a LoRA run keeps the starting U-Net and resumes its adapters below
                unet.load_checkpoint(resume_from)  # a stage-1 file keeps a stage-2 model's motion modules at zero
        named = trainable_parameters(unet, cfg)
        if lora_rank:
            within = list(cfg.run.trainable_modules) if cfg.model.use_motion_module else []
            named = lora.add_lora(unet, lora_rank, lora_alpha, within)
            if resume_from is not None:
                adapters = torch.load(ckpt.adapter_path(resume_from), map_location="cpu", weights_only=True)
                unet.load_state_dict(adapters["state_dict"], strict=False)
        base = lora.store_base(unet, cfg.train.lora_base_dtype, env.is_main) if lora_rank else None
        params = [p for _, p in named]
        if env.is_main:
            save_run_config(cfg, out, "unet_config.yaml")
            count = sum(p.numel() for p in params)
            log.info("training %d tensors, %s parameters, on %d rank(s)", len(params), f"{count:,}", env.world_size)
        lr = float(cfg.optimizer.lr) * (env.world_size if cfg.optimizer.scale_lr else 1)
        optimizer = adamw(params, lr, kind=cfg.train.optimizer)
        scheduler = get_scheduler(
            cfg.optimizer.lr_scheduler,
            optimizer,
            num_warmup_steps=int(cfg.optimizer.lr_warmup_steps),
            num_training_steps=int(cfg.run.max_train_steps),
        )
        autocast, use_scaler = precision(cfg.train.dtype, cfg.run.mixed_precision_training, env.device)
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        wrapped = wrap_ddp(unet, env) if env.distributed else unet
        step_models = replace(models, unet=wrapped)
        generator = torch.Generator(env.device).manual_seed(seed + env.rank)

        def loss_fn(batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            return unet_loss(
                step_models, to_device(batch, env.device), cfg, generator=generator, autocast_dtype=autocast
            )

        def weights(step: int) -> dict[str, Any]:
            if lora_rank:
                return {"state_dict": lora.merged_state_dict(unet, base), "global_step": step}
            return {"state_dict": ckpt.official_state_dict(unet), "global_step": step}

        def adapter(step: int) -> dict[str, Any]:
            return lora.adapter_payload(unet, lora_rank, lora_alpha, step)

        validate = None
        if cfg.data.val_video_path and cfg.data.val_audio_path:
            from latentsync.train.validation import render_validation

            def validate(step: int) -> dict[str, float] | None:
                return render_validation(models, cfg, step, out)

        settings = LoopSettings(
            max_steps=int(cfg.run.max_train_steps),
            batch_size=int(cfg.data.batch_size),
            num_workers=int(cfg.data.num_workers),
            seed=seed,
            save_every=int(cfg.ckpt.save_ckpt_steps),
            log_every=int(cfg.train.log_every),
            keep_last=int(cfg.train.keep_last),
            accumulation=int(cfg.train.gradient_accumulation_steps),
            max_grad_norm=float(cfg.optimizer.max_grad_norm),
            max_bad_steps=int(cfg.train.max_bad_steps),
            validate_every=int(cfg.train.validation_steps),
        )
        start = resumed.step if resumed is not None else start
        logger = TrainLogger(out, env.is_main, settings.max_steps, start, "U-Net", progress)
        loop = TrainLoop(
            env,
            settings,
            dataset,
            wrapped,
            params,
            optimizer,
            loss_fn,
            out,
            weights,
            logger,
            lr_scheduler=scheduler,
            scaler=scaler,
            generator=generator,
            validate=validate,
            adapter_payload=adapter if lora_rank else None,
        )
        if resumed is not None:
            loop.restore(resumed)
        else:
            loop.step = start
        unet.train()
        return loop.run()
    finally:
        shutdown()
