"""What both trainers do around their own models: the process group, seeds, the run folder, the resume file,
precision, DDP wrapping, the loop's settings and its logger, so the U-Net and SyncNet trainers differ only in what
they train.

`training_run` joins torchrun's process group (a world of one without it), seeds every rank (`run.seed + rank`, as
the official trainers), checks the training data, finds the checkpoint `--resume` names and leaves the group
however the run ends.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from latentsync.data.base import ClipDataset
from latentsync.train import state as ckpt
from latentsync.train.distributed import DistEnv, init_distributed, shutdown
from latentsync.train.logging import TrainLogger
from latentsync.train.loop import LoopSettings, TrainLoop, precision


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


@dataclass(frozen=True)
class TrainingRun:
    """One rank's view of a run: its config, process group, run folder, seed, data and the checkpoint to resume."""

    cfg: DictConfig
    env: DistEnv
    output_dir: Path
    seed: int
    dataset: ClipDataset  # the training clips, at least one of them usable
    resume_from: Path | None  # what `--resume` names (auto: the run's newest checkpoint); None starts afresh

    def save_config(self, name: str) -> None:
        """Keep the run's full config (overrides applied) in the run folder, as the official trainers do."""
        if self.env.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.cfg, self.output_dir / name)

    def precision(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
        """(autocast dtype or None, GradScaler or None) for `train.dtype` and `run.mixed_precision_training`."""
        autocast, use_scaler = precision(self.cfg.train.dtype, self.cfg.run.mixed_precision_training, self.env.device)
        return autocast, torch.amp.GradScaler("cuda") if use_scaler else None

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` under DDP when there are several ranks, else itself."""
        return wrap_ddp(module, self.env) if self.env.distributed else module

    def settings(self, accumulation: int, validate_every: int) -> LoopSettings:
        """The loop's settings from the keys both official configs share (the two others sit in other sections)."""
        cfg = self.cfg
        return LoopSettings(
            max_steps=int(cfg.run.max_train_steps),
            batch_size=int(cfg.data.batch_size),
            num_workers=int(cfg.data.num_workers),
            seed=self.seed,
            save_every=int(cfg.ckpt.save_ckpt_steps),
            log_every=int(cfg.train.log_every),
            keep_last=int(cfg.train.keep_last),
            accumulation=accumulation,
            max_grad_norm=float(cfg.optimizer.max_grad_norm),
            max_bad_steps=int(cfg.train.max_bad_steps),
            validate_every=validate_every,
        )

    def loop(
        self,
        settings: LoopSettings,
        desc: str,
        progress: bool,
        resumed: ckpt.Resume | None,
        start: int = 0,
        **parts: Any,
    ) -> TrainLoop:
        """The loop over the run's data with `parts` (TrainLoop's fields from `model` on), continuing `resumed` or
        at step `start`."""
        first = resumed.step if resumed is not None else start
        logger = TrainLogger(self.output_dir, self.env.is_main, settings.max_steps, first, desc, progress)
        loop = TrainLoop(self.env, settings, self.dataset, output_dir=self.output_dir, logger=logger, **parts)
        if resumed is not None:
            loop.restore(resumed)
        else:
            loop.step = start
        return loop


@contextmanager
def training_run(
    cfg: DictConfig,
    output_dir: str | Path | None,
    resume: str | None,
    device: str | None,
    dataset: Callable[[DictConfig], ClipDataset],
) -> Iterator[TrainingRun]:
    """Join the process group, seed this rank, build the training data from `cfg` with `dataset` (a DataError
    before any model loads when no clip is usable) and find the resume file; leave the group when the run ends."""
    out = Path(output_dir or cfg.data.train_output_dir)
    env = init_distributed(device)
    try:
        seed = int(cfg.run.seed)
        seed_everything(seed + env.rank)
        data = dataset(cfg)
        data.check_usable()
        yield TrainingRun(cfg, env, out, seed, data, ckpt.resolve_resume(resume, out / "checkpoints"))
    finally:
        shutdown()
