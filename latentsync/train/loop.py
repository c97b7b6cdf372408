"""The optimisation loop both trainers share: data order, accumulation, precision, clipping, skipped steps,
checkpoints, validation and stopping on a signal.

- Data: a shuffled, rank-sharded order per epoch (seeded), consumed from a saved position on resume; the dataset
  draws each sample's windows from (seed, epoch, index), so the resumed run sees exactly the samples the
  uninterrupted one would have seen.
- A step: `accumulation` micro-batches (`no_sync` on all but the last under DDP), GradScaler when training in fp16,
  unscale, clip at `max_grad_norm`, optimizer and LR-scheduler steps. A step whose gradient norm is not finite is
  skipped (the GradScaler's own rule; the norm is taken after the all-reduce, so every rank skips it together);
  `max_bad_steps` of them in a row stop the run with an error naming the step, keeping the last good checkpoint.
- SIGTERM/SIGINT (a cluster preempting the job, Ctrl-C) finish the current step, save, and return.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Sampler

from latentsync.config.files import OPTIMIZERS
from latentsync.errors import LatentSyncError
from latentsync.train import state as ckpt
from latentsync.train.distributed import DistEnv, all_reduce, barrier, gather_objects
from latentsync.train.logging import TrainLogger

PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}
LossFn = Callable[[dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]


class TrainingDivergedError(LatentSyncError, RuntimeError):
    """Too many steps in a row had a non-finite loss or gradient."""


def precision(name: str, mixed_precision: bool, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether to use a GradScaler) for `train.dtype` and `run.mixed_precision_training`.

    fp16 is the official AMP (autocast + GradScaler); bf16 needs no scaler; the CPU always trains in fp32.
    """
    if name not in PRECISIONS:
        raise LatentSyncError(f"train.dtype={name!r}: use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda" or not mixed_precision or name == "fp32":
        return None, False
    return PRECISIONS[name], name == "fp16"


def adamw(
    params: list[torch.nn.Parameter], lr: float, weight_decay: float = 0.01, kind: str = "adamw"
) -> torch.optim.Optimizer:
    """The AdamW of `train.optimizer` (the official betas, eps and weight decay in each).

    - `adamw`: torch's AdamW stepping one tensor at a time (`foreach=False`). CUDA's default multi-tensor step makes
      temporaries the size of all trainable parameters at once (a third fp32 copy of 850 M parameters in stage 1,
      where the step is the memory peak); the per-tensor step computes the same update holding one tensor's.
    - `adamw_fused`: torch's fused kernel (`fused=True`): the same update in place, no temporaries, fewer launches.
    - `adamw_8bit`: bitsandbytes' block-wise 8-bit AdamW: 2 bytes of moments per parameter instead of 8 (tensors
      under 4096 elements keep fp32 moments), on CUDA and (bitsandbytes 0.50) on the CPU.
    """
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)
    if kind == "adamw_fused":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if kind == "adamw_8bit":
        return adamw_8bit(params, lr, weight_decay)
    raise LatentSyncError(f"train.optimizer={kind!r}: use one of {', '.join(OPTIMIZERS)}")


def adamw_8bit(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    try:
        from bitsandbytes.optim import AdamW8bit
    except ImportError as exc:
        raise LatentSyncError(
            f"train.optimizer=adamw_8bit needs bitsandbytes ({exc}): pip install 'latentsync[lowmem]' "
            "(or pip install bitsandbytes), or choose train.optimizer=adamw_fused"
        ) from None
    return AdamW8bit(params, lr=lr, weight_decay=weight_decay)


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """The optimizer's class (torch's AdamW for adamw and adamw_fused, whose states are alike): resuming into another
    one would fail on a missing state key at the first step."""
    return f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"


class EpochSampler(Sampler[int]):
    """This rank's share of a seeded permutation of the dataset for one epoch, from a starting position.

    Like DistributedSampler (padded so every rank gets as many indices), but able to start mid-epoch.
    """

    def __init__(self, size: int, rank: int, world: int, seed: int, epoch: int, start: int = 0) -> None:
        self.size, self.rank, self.world, self.seed, self.epoch, self.start = size, rank, world, seed, epoch, start

    def indices(self) -> list[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        per_rank = math.ceil(self.size / self.world)
        order += order[: per_rank * self.world - self.size]
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return math.ceil(self.size / self.world) - self.start


@dataclass
class LoopSettings:
    max_steps: int
    batch_size: int
    num_workers: int
    seed: int
    save_every: int
    log_every: int = 10
    keep_last: int = 3
    accumulation: int = 1
    max_grad_norm: float = 1.0
    max_bad_steps: int = 20
    validate_every: int = 0  # 0: never (the trainer validates at checkpoints itself if it wants to)


@dataclass
class LoopResult:
    step: int
    stopped_by: str | None = None  # the signal's name when a signal stopped the run
    last_checkpoint: Path | None = None
    replaced_samples: int = 0


@dataclass
class TrainLoop:
    """Runs steps of `loss_fn` over `dataset`; the trainer supplies the model pieces and the checkpoint payload."""

    env: DistEnv
    settings: LoopSettings
    dataset: Any  # a sized map-style Dataset, optionally with set_epoch(epoch)
    model: torch.nn.Module  # what the loss runs (DDP-wrapped under torchrun)
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    output_dir: Path
    weights_payload: Callable[[int], dict[str, Any]]  # the official-layout checkpoint content at a step
    logger: TrainLogger
    lr_scheduler: Any = None
    scaler: torch.amp.GradScaler | None = None
    generator: torch.Generator | None = None  # the step's random source, saved with the checkpoint
    validate: Callable[[int], dict[str, float] | None] | None = None
    on_step: Callable[[int, dict[str, float]], None] | None = None  # e.g. SyncNet's loss-history lists
    extra_state: dict[str, Any] = field(default_factory=dict)  # trainer state saved in the sidecar
    adapter_payload: Callable[[int], dict[str, Any]] | None = None  # LoRA runs: the adapter file's content
    step: int = 0
    epoch: int = 0
    position: int = 0  # micro-batches of this epoch already consumed
    bad_steps: int = 0
    _stop: str | None = None
    _saved_at: int = -1

    # ----------------------------------------------------------------------------------------------------------
    def restore(self, resume: ckpt.Resume) -> None:
        """Continue from a checkpoint's sidecar (a file without one restarts the optimizer cold, at its step)."""
        self.step = self._saved_at = resume.step
        if resume.state is None:
            return
        s = resume.state
        kind, saved = optimizer_kind(self.optimizer), s.get("optimizer_kind")
        if saved is not None and saved != kind:
            raise ckpt.ResumeError(
                f"the checkpoint of step {resume.step} holds the state of {saved}, this run's train.optimizer makes "
                f"{kind}: resume with the train.optimizer it was written with"
            )
        self.optimizer.load_state_dict(s["optimizer"])
        if self.lr_scheduler is not None and s.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(s["lr_scheduler"])
        if self.scaler is not None and s.get("scaler"):
            self.scaler.load_state_dict(s["scaler"])
        self.epoch, self.position, self.bad_steps = s["epoch"], s["position"], s.get("bad_steps", 0)
        self.extra_state.update(s.get("extra", {}))
        rngs = s.get("rng") or []
        if len(rngs) == self.env.world_size:
            ckpt.set_rng_state(rngs[self.env.rank], self.generator)
        else:  # another world size: fresh, distinct streams
            torch.manual_seed(self.settings.seed + self.env.rank + self.step)
            if self.generator is not None:
                self.generator.manual_seed(self.settings.seed + self.env.rank + self.step)

    def save(self) -> Path | None:
        rngs = gather_objects(ckpt.rng_state(self.generator))
        path = None
        self._saved_at = self.step
        if self.env.is_main:
            state = {
                "step": self.step,
                "epoch": self.epoch,
                "position": self.position,
                "bad_steps": self.bad_steps,
                "optimizer": self.optimizer.state_dict(),
                "optimizer_kind": optimizer_kind(self.optimizer),
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rngs,
                "extra": self.extra_state,
                "world_size": self.env.world_size,
            }
            folder = self.output_dir / "checkpoints"
            adapter = self.adapter_payload(self.step) if self.adapter_payload is not None else None
            path = ckpt.save_checkpoint(
                folder, self.step, self.weights_payload(self.step), state, self.settings.keep_last, adapter
            )
            self.logger.charts(self.step)
            self.logger.message(f"saved {path}")
        barrier()
        return path

    # ----------------------------------------------------------------------------------------------------------
    def batches(self) -> Iterator[dict[str, Any]]:
        """Micro-batches forever, epoch after epoch, from the current position; keeps `epoch`/`position` current."""
        s, env = self.settings, self.env
        while True:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            sampler = EpochSampler(
                len(self.dataset), env.rank, env.world_size, s.seed, self.epoch, self.position * s.batch_size
            )
            if len(sampler) + self.position * s.batch_size < s.batch_size:
                raise LatentSyncError(
                    f"{len(self.dataset)} clips cannot fill a batch of {s.batch_size} on each of {env.world_size} "
                    "ranks; lower data.batch_size or add clips"
                )
            loader = DataLoader(
                self.dataset,
                batch_size=s.batch_size,
                sampler=sampler,
                num_workers=s.num_workers,
                drop_last=True,
                pin_memory=env.device.type == "cuda",
                persistent_workers=False,
            )
            for batch in loader:
                self.position += 1
                yield batch
            self.epoch, self.position = self.epoch + 1, 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop = signal.Signals(signum).name

    def run(self) -> LoopResult:
        s = self.settings
        result = LoopResult(self.step)
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        data = self.batches()
        sums: dict[str, float] = {}
        logged, started = 0, time.perf_counter()
        try:
            while self.step < s.max_steps:
                terms = self._one_step(data, result)
                self.step += 1
                result.step = self.step
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
                logged += 1
                self.logger.step(self.step, terms)
                if self.on_step is not None:
                    self.on_step(self.step, terms)
                if self.step % s.log_every == 0 or self.step == s.max_steps:
                    elapsed = time.perf_counter() - started
                    means = {k: v / logged for k, v in sums.items()}
                    keys = sorted(means)
                    reduced = all_reduce(torch.tensor([means[k] for k in keys], dtype=torch.float64))
                    values = dict(zip(keys, reduced.tolist()))
                    values["samples_per_second"] = (
                        logged * s.accumulation * s.batch_size * self.env.world_size / elapsed
                    )
                    self.logger.log(self.step, values)
                    sums, logged, started = {}, 0, time.perf_counter()
                if self.validate is not None and s.validate_every and self.step % s.validate_every == 0:
                    self._validate()  # before the save, so the checkpoint holds this step's validation
                if s.save_every and self.step % s.save_every == 0:
                    result.last_checkpoint = self.save()
                    if self.validate is not None and not s.validate_every:
                        self._validate()  # at each checkpoint, as the official U-Net trainer
                stop = all_reduce(torch.tensor([float(self._stop is not None)]), op="max").item() > 0
                if stop:
                    result.stopped_by = self._stop or "signal on another rank"
                    break
            if self._saved_at != self.step:  # the end of the run, or a signal, between two regular saves
                result.last_checkpoint = self.save()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self.logger.close()
        return result

    def _validate(self) -> None:
        if self.env.is_main:
            values = self.validate(self.step)  # type: ignore[misc]
            if values:
                self.logger.log(self.step, values, prefix="val")
                self.logger.charts(self.step)
        barrier()

    def _one_step(self, data: Iterator[dict[str, Any]], result: LoopResult) -> dict[str, float]:
        s = self.settings
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for micro in range(s.accumulation):
            batch = next(data)
            result.replaced_samples += int(batch.pop("replaced", torch.zeros(1)).sum())
            last = micro == s.accumulation - 1
            sync = (
                contextlib.nullcontext()
                if last or not hasattr(self.model, "no_sync")
                else cast(Any, self.model).no_sync()
            )
            with sync:
                loss, terms = self.loss_fn(batch)
                scaled = loss / s.accumulation
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + float(value) / s.accumulation
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, s.max_grad_norm)
        finite = bool(torch.isfinite(norm))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update itself when the gradients are not finite
            self.scaler.update()
            totals["loss_scale"] = float(self.scaler.get_scale())
        elif finite:
            self.optimizer.step()
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        totals["grad_norm"] = float(norm)
        totals["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.bad_steps = 0 if finite else self.bad_steps + 1
        if self.bad_steps > s.max_bad_steps:
            raise TrainingDivergedError(
                f"step {self.step + 1}: {self.bad_steps} steps in a row had a non-finite loss or gradient "
                f"(train.max_bad_steps={s.max_bad_steps}); stopped, the last good checkpoint is kept in "
                f"{self.output_dir / 'checkpoints'} (try a lower optimizer.lr or train.dtype=bf16/fp32)"
            )
        return totals
