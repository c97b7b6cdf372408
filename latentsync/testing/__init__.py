"""Helpers for tests and benchmarks: tiny random-weight models in the official formats, the shared test material,
and small media utilities. Tests import them from here, never from `conftest` or from each other."""

from latentsync.testing.assets import ASSETS, GOLDEN, SHARED, SPEC, read_manifest, shared_dir
from latentsync.testing.media import decode_frames, psnr, write_wav
from latentsync.testing.tiny import (
    TINY_WIDTH,
    TinyModels,
    TinyTrainingModels,
    randomize,
    write_tiny_models,
    write_tiny_training_models,
)
from latentsync.testing.whisper import write_whisper_checkpoint

__all__ = [
    "ASSETS",
    "GOLDEN",
    "SHARED",
    "SPEC",
    "TINY_WIDTH",
    "TinyModels",
    "TinyTrainingModels",
    "decode_frames",
    "psnr",
    "randomize",
    "read_manifest",
    "shared_dir",
    "write_tiny_models",
    "write_tiny_training_models",
    "write_wav",
    "write_whisper_checkpoint",
]
