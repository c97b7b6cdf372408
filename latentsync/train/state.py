"""Checkpoints that resume exactly and that the official code loads unchanged.

Each save writes two files into `checkpoints/`: `checkpoint-<step>.pt` in the official layout (`{"state_dict",
"global_step"}`, fp32, no `module.` prefix, plus SyncNet's loss-history lists), which our inference, the official
trainers and `StableSyncNet.from_pretrained` load as they are; and `checkpoint-<step>.state.pt` with what the
official checkpoints leave out: optimizer moments, GradScaler, LR scheduler, every rank's random states and the
data position. Both are written to temporary names and renamed (the weights last), so a crash or a full disk
never leaves a half-written checkpoint that `--resume auto` would pick. `keep_last` removes older pairs.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentsync.data.feature_cache import atomic_torch_save
from latentsync.errors import LatentSyncError

NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


class ResumeError(LatentSyncError, ValueError):
    """A checkpoint to resume from is missing or unreadable."""


def weights_path(folder: Path, step: int) -> Path:
    return folder / f"checkpoint-{step}.pt"


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name.removesuffix(".pt") + ".state.pt")


def official_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as the official files hold it: fp32 CPU tensors, no DDP `module.` prefix."""
    bare = getattr(model, "module", model)
    return {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in bare.state_dict().items()}


def adapter_path(weights: Path) -> Path:
    return weights.with_name(weights.name.removesuffix(".pt") + ".lora.pt")


def save_checkpoint(
    folder: Path,
    step: int,
    weights: dict[str, Any],
    state: dict[str, Any],
    keep_last: int = 0,
    adapter: dict[str, Any] | None = None,
) -> Path:
    """Write the files of `step` (sidecar and LoRA adapter first, weights last) and prune to the newest
    `keep_last` (0: keep all)."""
    path = weights_path(folder, step)
    atomic_torch_save(state, sidecar_path(path))
    if adapter is not None:
        atomic_torch_save(adapter, adapter_path(path))
    atomic_torch_save(weights, path)
    if keep_last > 0:
        for old in checkpoints(folder)[:-keep_last]:
            sidecar_path(old).unlink(missing_ok=True)
            adapter_path(old).unlink(missing_ok=True)
            old.unlink(missing_ok=True)
    return path


def checkpoints(folder: Path) -> list[Path]:
    """The weights files of `folder`, oldest step first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str | None, folder: Path) -> Path | None:
    """`auto`: the newest checkpoint in `folder` (None when there is none yet); a path: that checkpoint."""
    if not resume:
        return None
    if resume == "auto":
        found = checkpoints(folder)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_file():
        raise ResumeError(f"--resume {path}: no such checkpoint file")
    return path


@dataclass
class Resume:
    weights: dict[str, Any]  # the official-layout payload
    state: dict[str, Any] | None  # the sidecar, None for a file without one (e.g. written by the official code)

    @property
    def step(self) -> int:
        return int(self.state["step"] if self.state else self.weights.get("global_step", 0) or 0)


def load_resume(path: Path) -> Resume:
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
        sidecar = sidecar_path(path)
        state = torch.load(sidecar, map_location="cpu", weights_only=False) if sidecar.is_file() else None
    except Exception as exc:  # noqa: BLE001 - every unreadable file is the same error to the user
        raise ResumeError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(weights, dict) or "state_dict" not in weights:
        weights = {"state_dict": weights}  # a bare state dict
    return Resume(weights, state)


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])
