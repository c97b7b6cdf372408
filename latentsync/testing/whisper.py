"""Whisper checkpoints in the openai-whisper file format, written from any encoder weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def write_whisper_checkpoint(path: str | Path, dims: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Save `{"dims", "model_state_dict"}` as openai-whisper does; `AudioEncoder` reads only the `encoder.*` keys,
    so `state_dict` may hold the encoder alone."""
    path = Path(path)
    torch.save({"dims": dict(dims), "model_state_dict": dict(state_dict)}, path)
    return path
