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
from latentsync.train.loop import LoopResult, adamw
from latentsync.train.setup import to_device, training_run

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

    with training_run(cfg, output_dir, resume, device, SyncNetDataset.from_config) as run:
        env = run.env
        model = StableSyncNet(cfg.model).to(env.device)
        history: dict[str, list[float]] = {key: [] for key in HISTORY}
        start_file = run.resume_from or (Path(cfg.ckpt.resume_ckpt_path) if cfg.ckpt.resume_ckpt_path else None)
        resumed = ckpt.load_resume(start_file) if start_file is not None else None
        if resumed is not None:
            model.load_state_dict(resumed.weights["state_dict"])
            history.update({key: list(resumed.weights.get(key, [])) for key in HISTORY})
        model.train()
        vae = None
        if cfg.data.latent_space:
            from latentsync.models.vae import load_vae

            vae = load_vae(cfg.weights.vae, env.device, torch.float16 if env.device.type == "cuda" else None)
        run.save_config("syncnet_config.yaml")
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = adamw(params, float(cfg.optimizer.lr), kind=cfg.train.optimizer)
        autocast, scaler = run.precision()
        wrapped = run.wrap(model)

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

        settings = run.settings(int(cfg.data.gradient_accumulation_steps), int(cfg.run.validation_steps))
        loop = run.loop(
            settings,
            "SyncNet",
            progress,
            resumed,
            model=wrapped,
            params=params,
            optimizer=optimizer,
            loss_fn=loss_fn,
            weights_payload=weights,
            scaler=scaler,
            validate=validate,
            on_step=on_step if env.is_main else None,
        )
        return loop.run()


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
