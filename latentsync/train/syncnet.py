"""`train_syncnet`: StableSyncNet training (pixel or latent configs) with validation loss and accuracy.

As the official trainer: 50/50 in-sync and visually shifted pairs, BCE on the embeddings' cosine, AdamW without an
LR schedule, fp16 AMP, gradient accumulation with `no_sync`, validation on rank 0, checkpoints holding the loss
histories. Ours besides: full-state resume, accuracy (cosine > 0.5 means in sync) next to the validation loss,
per-term logging and charts.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from latentsync.data.sources import DataError
from latentsync.data.syncnet_dataset import SyncNetDataset
from latentsync.models.syncnet import StableSyncNet
from latentsync.train import state as ckpt
from latentsync.train.distributed import init_distributed, shutdown
from latentsync.train.logging import TrainLogger
from latentsync.train.loop import LoopResult, LoopSettings, TrainLoop, adamw, precision
from latentsync.train.unet import save_run_config, seed_everything, to_device, wrap_ddp

log = logging.getLogger(__name__)

HISTORY = ("train_step_list", "train_loss_list", "val_step_list", "val_loss_list")
VAL_BATCH = 40  # the official validation batch (640 // 16 frames)


def accuracy(cosine: torch.Tensor, y: torch.Tensor) -> float:
    return float(((cosine.flatten() > 0.5) == (y.flatten() > 0.5)).float().mean())


def train_syncnet(
    cfg: DictConfig,
    output_dir: str | Path | None = None,
    resume: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> LoopResult:
    from latentsync.train.objectives import syncnet_loss

    out = Path(output_dir or cfg.data.train_output_dir)
    env = init_distributed(device)
    try:
        seed = int(cfg.run.seed)
        seed_everything(seed + env.rank)
        dataset = SyncNetDataset.from_config(cfg)
        dataset.check_usable()
        model = StableSyncNet(cfg.model).to(env.device)
        history: dict[str, list[float]] = {key: [] for key in HISTORY}
        start_file = ckpt.resolve_resume(resume, out / "checkpoints")
        start_file = start_file or (Path(cfg.ckpt.resume_ckpt_path) if cfg.ckpt.resume_ckpt_path else None)
        resumed = ckpt.load_resume(start_file) if start_file is not None else None
        if resumed is not None:
            model.load_state_dict(resumed.weights["state_dict"])
            history.update({key: list(resumed.weights.get(key, [])) for key in HISTORY})
        model.train()
        vae = None
        if cfg.data.latent_space:
            from latentsync.models.vae import load_vae

            vae = load_vae(cfg.weights.vae, env.device, torch.float16 if env.device.type == "cuda" else None)
        if env.is_main:
            save_run_config(cfg, out, "syncnet_config.yaml")
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = adamw(params, float(cfg.optimizer.lr), kind=cfg.train.optimizer)
        autocast, use_scaler = precision(cfg.train.dtype, cfg.run.mixed_precision_training, env.device)
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        wrapped = wrap_ddp(model, env) if env.distributed else model

        def run_loss(net: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
            batch = to_device(batch, env.device)
            with torch.autocast(env.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                return syncnet_loss(net, batch, cfg, vae)

        def loss_fn(batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            loss, cosine = run_loss(wrapped, batch)
            return loss, {"loss": loss.item(), "accuracy": accuracy(cosine.detach(), batch["y"])}

        def on_step(step: int, terms: dict[str, float]) -> None:
            history["train_step_list"].append(step)
            history["train_loss_list"].append(terms["loss"])

        validate = make_validation(cfg, model, run_loss, history)

        def weights(step: int) -> dict[str, Any]:
            return {"state_dict": ckpt.official_state_dict(model), "global_step": step, **history}

        settings = LoopSettings(
            max_steps=int(cfg.run.max_train_steps),
            batch_size=int(cfg.data.batch_size),
            num_workers=int(cfg.data.num_workers),
            seed=seed,
            save_every=int(cfg.ckpt.save_ckpt_steps),
            log_every=int(cfg.train.log_every),
            keep_last=int(cfg.train.keep_last),
            accumulation=int(cfg.data.gradient_accumulation_steps),
            max_grad_norm=float(cfg.optimizer.max_grad_norm),
            max_bad_steps=int(cfg.train.max_bad_steps),
            validate_every=int(cfg.run.validation_steps),
        )
        start = resumed.step if resumed is not None else 0
        logger = TrainLogger(out, env.is_main, settings.max_steps, start, "SyncNet", progress)
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
            scaler=scaler,
            validate=validate,
            on_step=on_step if env.is_main else None,
        )
        if resumed is not None:
            loop.restore(resumed)
        return loop.run()
    finally:
        shutdown()


def make_validation(cfg: DictConfig, model: torch.nn.Module, run_loss, history: dict[str, list[float]]):
    """Validation loss and accuracy on `num_val_samples` fixed pairs of the validation clips (None without any)."""
    data = cfg.data
    if not (data.val_fileslist or data.val_data_dir):
        log.warning("no data.val_data_dir or data.val_fileslist: SyncNet validation is off")
        return None
    try:
        dataset = SyncNetDataset.from_config(cfg, split="val")
    except DataError as exc:
        log.warning("SyncNet validation is off: %s", exc)
        return None
    batch_size = min(VAL_BATCH, int(data.batch_size))
    batches = max(1, math.ceil(int(data.num_val_samples) / batch_size))

    def validate(step: int) -> dict[str, float]:
        model.eval()
        losses, correct, seen = [], 0.0, 0
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i == batches:
                    break
                batch.pop("replaced", None)
                loss, cosine = run_loss(model, batch)
                losses.append(float(loss))
                correct += accuracy(cosine, batch["y"]) * len(cosine)
                seen += len(cosine)
        model.train()
        mean = sum(losses) / len(losses)
        history["val_step_list"].append(step)
        history["val_loss_list"].append(mean)
        return {"loss": mean, "accuracy": correct / seen}

    return validate
