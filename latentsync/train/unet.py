"""`train_unet`: the U-Net trainer (stage 1 and stage 2) around trainrecipe's training step.

The official recipe (see `objectives.unet_loss`) in a runner of ours: full-state resume, DDP under torchrun, bad
clips replaced in the dataset, per-term logging, official-layout checkpoints, validation renders.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from omegaconf import DictConfig

from latentsync.data.unet_dataset import UNetDataset
from latentsync.train import lora
from latentsync.train import state as ckpt
from latentsync.train.loop import LoopResult, adamw
from latentsync.train.setup import to_device, training_run

if TYPE_CHECKING:
    from latentsync.models.unet import UNet3DConditionModel

log = logging.getLogger(__name__)


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

    with training_run(cfg, output_dir, resume, device, UNetDataset.from_config) as run:
        env, out = run.env, run.output_dir
        models = load_unet_training_models(cfg, env.device)
        unet = cast("UNet3DConditionModel", models.unet)  # as loaded: not wrapped in DDP yet (that is `wrapped`)
        start = int(getattr(getattr(unet, "load_report", None), "global_step", 0) or 0)  # official: continue it
        resumed = None
        lora_rank, lora_alpha = int(cfg.train.lora_rank), float(cfg.train.lora_alpha)
        if run.resume_from is not None:
            resumed = ckpt.load_resume(run.resume_from)
            if not lora_rank:  # a LoRA run keeps the starting U-Net and resumes its adapters below
                # our own full-state checkpoint must fit exactly; a file without a sidecar starts as the official
                # trainer starts from any file (a stage-1 file keeps a stage-2 model's motion modules at zero)
                unet.load_checkpoint(run.resume_from, strict=resumed.state is not None)
        named = trainable_parameters(unet, cfg)
        if lora_rank:
            within = list(cfg.run.trainable_modules) if cfg.model.use_motion_module else []
            named = lora.add_lora(unet, lora_rank, lora_alpha, within)
            if run.resume_from is not None:
                adapters = torch.load(ckpt.adapter_path(run.resume_from), map_location="cpu", weights_only=True)
                unet.load_state_dict(adapters["state_dict"], strict=False)
        base = lora.store_base(unet, cfg.train.lora_base_dtype, env.is_main) if lora_rank else None
        params = [p for _, p in named]
        run.save_config("unet_config.yaml")
        if env.is_main:
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
        autocast, scaler = run.precision()
        wrapped = run.wrap(unet)
        step_models = replace(models, unet=wrapped)
        generator = torch.Generator(env.device).manual_seed(run.seed + env.rank)

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

        settings = run.settings(int(cfg.train.gradient_accumulation_steps), int(cfg.train.validation_steps))
        loop = run.loop(
            settings,
            "U-Net",
            progress,
            resumed,
            start,
            model=wrapped,
            params=params,
            optimizer=optimizer,
            loss_fn=loss_fn,
            weights_payload=weights,
            lr_scheduler=scheduler,
            scaler=scaler,
            generator=generator,
            validate=validate,
            adapter_payload=adapter if lora_rank else None,
        )
        unet.train()
        return loop.run()
