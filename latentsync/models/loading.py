"""Reading official checkpoint files and reporting how well they fit a model.

The official loader silently drops weights whose shapes differ and loads non-strictly, so a wrong
config or a truncated file goes unnoticed. Everything here reports instead of hiding.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentsync.errors import LatentSyncError

logger = logging.getLogger(__name__)


class CheckpointError(LatentSyncError, RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model's config."""


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a model."""

    path: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    global_step: int | None = None

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 8) -> str:
        def head(items: list[Any]) -> str:
            shown = ", ".join(str(i) for i in items[:limit])
            return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")

        parts = []
        if self.mismatched:
            parts.append(
                "shape mismatch: "
                + head([f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in self.mismatched])
            )
        if self.missing:
            parts.append("missing from checkpoint: " + head(self.missing))
        if self.unexpected:
            parts.append("not in model: " + head(self.unexpected))
        return "; ".join(parts) if parts else "all keys matched"


def load_weights_file(path: str | Path, what: str = "checkpoint", mmap: bool = False) -> Any:
    """`torch.load` of a tensors-only file onto the CPU; a missing, corrupt or foreign file is a CheckpointError
    naming `what`. `mmap` only for torch's zip format (older auxiliary files predate it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read {what} {path}: {exc}") from exc


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict, extra entries) of an official `{"state_dict": ...}` file or a bare state dict."""
    obj = load_weights_file(path, mmap=True)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    if "state_dict" in obj:
        state_dict = obj["state_dict"]
        extra = {k: v for k, v in obj.items() if k != "state_dict"}
    else:
        state_dict, extra = obj, {}
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    return state_dict, extra


def fit_report(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str) -> LoadReport:
    """Which keys of `state_dict` fit `model` by name and shape, without copying anything."""
    own = model.state_dict()
    report = LoadReport(path=path)
    for key, tensor in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(own[key].shape)))
    report.missing = [k for k in own if k not in state_dict]
    return report


def load_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: str,
    strict: bool,
    allowed_missing: tuple[str, ...] = (),
) -> LoadReport:
    """Copy matching tensors into `model` and return a report of every key that did not fit.

    Keys whose shapes differ are skipped (as the official loader does for conv_in/conv_out and audio
    projections) but listed. With `strict`, any problem not covered by `allowed_missing` (key substrings
    that may legitimately be absent, such as motion modules when a stage-1 file feeds a stage-2 model)
    raises a CheckpointError naming the keys.
    """
    report = fit_report(model, state_dict, path)
    skipped = set(report.unexpected) | {key for key, *_ in report.mismatched}
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in skipped}, strict=False)

    tolerated = [k for k in report.missing if any(s in k for s in allowed_missing)]
    problems = LoadReport(
        path=path,
        missing=[k for k in report.missing if k not in tolerated],
        unexpected=report.unexpected,
        mismatched=report.mismatched,
    )
    if tolerated:
        logger.info("%s: %d keys left at their initial values (%s)", path, len(tolerated), ", ".join(allowed_missing))
    if not problems.clean:
        if strict:
            raise CheckpointError(f"checkpoint {path} does not fit the model config: {problems.summary()}")
        logger.warning("checkpoint %s loaded with problems: %s", path, problems.summary())
    return report
