"""Shared fixtures: the read-only assets, specs and goldens beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The shared folder beside the repository, or beside a folder of worktrees (/work/wt/<name> -> /work/shared).
SHARED = next((p / "shared" for p in REPO.parents if (p / "shared" / "assets").is_dir()), REPO.parent / "shared")
ASSETS = SHARED / "assets"
SPEC = SHARED / "spec"
GOLDEN = SHARED / "golden"


@pytest.fixture(scope="session")
def assets() -> Path:
    if not ASSETS.is_dir():
        pytest.fail(f"shared assets not found at {ASSETS}")
    return ASSETS


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    return SPEC


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


def read_manifest(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, kind) rows of `../shared/spec/manifest_<name>.tsv`, in state_dict order."""
    rows = []
    for line in (SPEC / f"manifest_{name}.tsv").read_text().splitlines():
        key, shape, _dtype, kind = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.split(",") if s), kind))
    return rows


def decode_frames(path: Path, count: int) -> list:
    """The first `count` frames of a video exactly as decoded (RGB uint8), without any retiming."""
    import av

    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    raise AssertionError(f"{path} has fewer than {count} frames")


def write_wav(path: Path, samples, rate: int = 16000) -> Path:
    """A 16-bit mono wav of float samples in [-1, 1]."""
    import wave

    import numpy as np

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


from train_support import aligned_clips, tiny_training  # noqa: F401  (the training tests' fixtures)
