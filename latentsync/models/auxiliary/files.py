"""Reading the auxiliary weight files, some of which predate torch's zip format (so they cannot be memory-mapped)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from latentsync.models.loading import CheckpointError, load_into, load_weights_file

M = TypeVar("M", bound=nn.Module)


def read_state_dict(path: str | Path, prefixes: tuple[str, ...] = ("module.",)) -> dict[str, torch.Tensor]:
    """A bare state dict (legacy or zip format, tensors only) with any of `prefixes` stripped from its keys."""
    obj = load_weights_file(path, "weight file")
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"weight file {path} holds a {type(obj).__name__}, not a state dict")
    stripped = {}
    for key, value in obj.items():
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        stripped[key] = value
    return stripped


def load_strict(
    model: M,
    path: str | Path,
    what: str,
    prefixes: tuple[str, ...] = ("module.",),
    allowed_missing: tuple[str, ...] = (),
) -> M:
    """Load `path` into `model` with every key accounted for (bar those containing one of `allowed_missing`); the
    error names the file and what it should be."""
    try:
        load_into(model, read_state_dict(path, prefixes), str(path), strict=True, allowed_missing=allowed_missing)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (expected {what})") from None
    return model.eval().requires_grad_(False)
