"""Fixtures of the training tests: a few seconds of the demo clips aligned by the project's own face path, and the
tiny training models."""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from latentsync.config import load_config
from latentsync.data.sources import data_overrides
from latentsync.testing import ASSETS

CLIP_FRAMES = 64  # 2.56 s: more than the U-Net's 48-frame minimum
CLIP_RESOLUTION = 64


def align_clip(video: Path, output: Path, frames: int = CLIP_FRAMES, resolution: int = CLIP_RESOLUTION) -> Path:
    """The first `frames` frames of `video` as aligned face crops with their own audio, as data preparation would."""
    from latentsync.audio.decode import load_audio
    from latentsync.faces import create_detector, crop_face, track_faces
    from latentsync.media import VideoReader, VideoWriter

    pictures = list(islice(VideoReader(video, fps=25), frames))
    track = track_faces(pictures, create_detector("dlib"), resolution, progress=False)
    matrices = track.matrices.copy()
    for i in range(len(matrices)):  # a frame without a face keeps the previous alignment
        if not track.found[i]:
            matrices[i] = matrices[i - 1] if i else matrices[np.argmax(track.found)]
    audio = load_audio(video)[: frames * 640]
    with VideoWriter(output, resolution, resolution, fps=25, audio=audio, sample_rate=16000) as writer:
        for picture, matrix in zip(pictures, matrices):
            writer.write(crop_face(picture, matrix, resolution))
    return output


@pytest.fixture(scope="session")
def aligned_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three 64 px aligned clips (demo1..3, 2.56 s each); made once per test session."""
    if not ASSETS.is_dir():
        pytest.fail(f"shared assets not found at {ASSETS}")
    kept = os.environ.get("LATENTSYNC_ALIGNED_CLIPS")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("aligned_clips")
    for name in ("demo1", "demo2", "demo3"):  # LATENTSYNC_ALIGNED_CLIPS keeps them between sessions
        if not (folder / f"{name}.mp4").is_file():
            align_clip(ASSETS / f"{name}_video.mp4", folder / f"{name}.mp4")
    return folder


def write_tiny_training_setup(folder: Path) -> Path:
    """The tiny models of training and the two override files (`write_tiny_training_models`)."""
    from latentsync.testing import write_tiny_training_models

    write_tiny_training_models(folder)
    return folder


# The tiny stage-2 config as stage 1: no motion modules, reconstruction loss only (everything trains).
STAGE1 = ("model.use_motion_module=false", "run.pixel_space_supervise=false", "run.use_syncnet=false")


def overrides(folder: Path, kind: str) -> list[str]:
    return (folder / f"train_{kind}.overrides").read_text().split()


def unet_config(tiny: Path, clips: Path, *extra: str):
    return load_config(
        tiny / "unet_tiny.yaml",
        [
            *overrides(tiny, "unet"),
            *data_overrides(clips),
            "data.val_video_path=''",
            "train.log_every=1",
            "optimizer.lr=1e-3",
            *extra,
        ],
    )


def syncnet_config(tiny: Path, clips: Path, *extra: str):
    return load_config(
        tiny / "syncnet_tiny.yaml",
        [
            *overrides(tiny, "syncnet"),
            *data_overrides(clips),
            *data_overrides(clips, "val"),
            "train.log_every=1",
            *extra,
        ],
    )


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_training_setup(tmp_path_factory.mktemp("tiny_training"))
