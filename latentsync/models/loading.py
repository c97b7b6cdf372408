"""Reading official checkpoint files and reporting how well they fit a model.

The official U-Net loader silently drops conv_in/conv_out and cross-attention weights of other shapes and
loads non-strictly, so a wrong config or a truncated file goes unnoticed. Everything here reports instead.
"""

from __future__ import annotations

import logging
from collections import Counter
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
    loaded: int = 0  # tensors of the file that fit the model by name and shape
    reshaped: list[str] = field(default_factory=list)  # left out on purpose: their layers start as initialised

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.reshaped)

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

    def counts(self) -> str:
        """One line with counts: tensors loaded, the file's tensors ignored and the model's left as initialised."""
        line = f"{self.loaded} tensors loaded"
        if self.reshaped:
            line += f"; {len(self.reshaped)} of another shape left as initialised ({key_groups(self.reshaped)})"
        if self.unexpected:
            line += f"; {len(self.unexpected)} of the file ignored ({key_groups(self.unexpected)})"
        if self.missing:
            groups = key_groups(self.missing)
            line += f"; {len(self.missing)} of the model not in the file, left as initialised ({groups})"
        return line


def key_groups(keys: list[str], limit: int = 4) -> str:
    """Counts of `keys` by their first two named parts: `down_blocks.motion_modules 32, mid_block.motion_modules 4`."""
    groups = Counter(".".join([part for part in key.split(".") if not part.isdigit()][:2]) for key in keys)
    shown = [f"{name} {count}" for name, count in groups.most_common(limit)]
    return ", ".join(shown) + (f", {len(groups) - limit} more groups" if len(groups) > limit else "")


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
    report.loaded = len(state_dict) - len(report.unexpected) - len(report.mismatched)
    return report


def load_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: str,
    strict: bool,
    allowed_missing: tuple[str, ...] = (),
    reshaped: list[str] | tuple[str, ...] = (),
) -> LoadReport:
    """Copy matching tensors into `model` and return a report of every key that did not fit.

    With `strict`, any problem not covered by `allowed_missing` (key substrings that may legitimately be absent,
    such as motion modules when a stage-1 file feeds a stage-2 model) raises a CheckpointError naming the keys;
    keys whose shapes differ are otherwise skipped but listed. Without it, loading is by name as the official
    trainers' `load_state_dict(strict=False)`: keys only one side has, and the file's `reshaped` keys (which the
    official loader drops so that those layers start afresh), are left out and counted in one logged line; any other
    shape mismatch still raises (as torch does), and so does a file of which no tensor fits at all.
    """
    left_out = set(reshaped)
    report = fit_report(model, {k: v for k, v in state_dict.items() if k not in left_out}, path)
    report.reshaped = list(reshaped)
    report.missing = [k for k in report.missing if k not in left_out]
    if not strict:
        if report.mismatched or not report.loaded:
            raise CheckpointError(
                f"checkpoint {path} does not fit the model config: "
                + (report.summary() if report.mismatched else f"none of its {len(state_dict)} tensors is in the model")
            )
        if not report.clean:
            logger.warning("%s: %s", path, report.counts())
    skipped = set(report.unexpected) | {key for key, *_ in report.mismatched} | left_out
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in skipped}, strict=False)
    if not strict:
        return report

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
        raise CheckpointError(f"checkpoint {path} does not fit the model config: {problems.summary()}")
    return report
