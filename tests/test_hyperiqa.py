"""HyperIQA, the data preparation's quality scorer: it loads `koniq_pretrained.pkl` in the official key layout,
computes what the official code computes, and scores a real aligned clip as the official filter does."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.training import align_clip

from latentsync.data.preprocess.stages.quality import QualityFilter
from latentsync.media import VideoReader
from latentsync.models.auxiliary.hyperiqa import HyperIQA
from latentsync.models.loading import CheckpointError


def _bn(name: str, channels: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    for suffix in ("weight", "bias", "running_mean", "running_var"):
        yield f"{name}.{suffix}", (channels,)
    yield f"{name}.num_batches_tracked", ()


def _resnet50() -> Iterator[tuple[str, tuple[int, ...]]]:
    """ResNet-50 (bottleneck blocks 3-4-6-3, stride on the 3x3 conv, projection shortcut in each stage's first
    block), as the official `ResNetBackbone` names it: no `fc`, no `avgpool`."""
    yield "res.conv1.weight", (64, 3, 7, 7)
    yield from _bn("res.bn1", 64)
    channels = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for block in range(blocks):
            name = f"res.layer{stage}.{block}"
            yield f"{name}.conv1.weight", (width, channels, 1, 1)
            yield from _bn(f"{name}.bn1", width)
            yield f"{name}.conv2.weight", (width, width, 3, 3)
            yield from _bn(f"{name}.bn2", width)
            yield f"{name}.conv3.weight", (4 * width, width, 1, 1)
            yield from _bn(f"{name}.bn3", 4 * width)
            if block == 0:
                yield f"{name}.downsample.0.weight", (4 * width, channels, 1, 1)
                yield from _bn(f"{name}.downsample.1", 4 * width)
            channels = 4 * width


# The rest of `HyperNet(16, 112, 224, 112, 56, 28, 14, 7)`'s state dict (LatentSync `eval/hyper_iqa.py`, from
# SSL92/hyperIQA `models.py`), derived from its constructor: the local distortion aware heads of the backbone,
# the hyper network's input convolutions and the generators of the target network's weights and biases.
HEAD_KEYS: dict[str, tuple[int, ...]] = {
    "res.lda1_pool.0.weight": (16, 256, 1, 1),
    "res.lda1_fc.weight": (16, 1024),
    "res.lda1_fc.bias": (16,),
    "res.lda2_pool.0.weight": (32, 512, 1, 1),
    "res.lda2_fc.weight": (16, 512),
    "res.lda2_fc.bias": (16,),
    "res.lda3_pool.0.weight": (64, 1024, 1, 1),
    "res.lda3_fc.weight": (16, 256),
    "res.lda3_fc.bias": (16,),
    "res.lda4_fc.weight": (176, 2048),
    "res.lda4_fc.bias": (176,),
    "conv1.0.weight": (1024, 2048, 1, 1),
    "conv1.0.bias": (1024,),
    "conv1.2.weight": (512, 1024, 1, 1),
    "conv1.2.bias": (512,),
    "conv1.4.weight": (112, 512, 1, 1),
    "conv1.4.bias": (112,),
    "fc1w_conv.weight": (512, 112, 3, 3),  # 224 * 112 / 7²
    "fc1w_conv.bias": (512,),
    "fc1b_fc.weight": (112, 112),
    "fc1b_fc.bias": (112,),
    "fc2w_conv.weight": (128, 112, 3, 3),  # 112 * 56 / 7²
    "fc2w_conv.bias": (128,),
    "fc2b_fc.weight": (56, 112),
    "fc2b_fc.bias": (56,),
    "fc3w_conv.weight": (32, 112, 3, 3),  # 56 * 28 / 7²
    "fc3w_conv.bias": (32,),
    "fc3b_fc.weight": (28, 112),
    "fc3b_fc.bias": (28,),
    "fc4w_conv.weight": (8, 112, 3, 3),  # 28 * 14 / 7²
    "fc4w_conv.bias": (8,),
    "fc4b_fc.weight": (14, 112),
    "fc4b_fc.bias": (14,),
    "fc5w_fc.weight": (14, 112),
    "fc5w_fc.bias": (14,),
    "fc5b_fc.weight": (1, 112),
    "fc5b_fc.bias": (1,),
}


def official_keys() -> dict[str, tuple[int, ...]]:
    """Every key of `koniq_pretrained.pkl` with its shape: 355 (53 of them BatchNorm batch counters)."""
    backbone = dict(_resnet50())
    lda = {k: v for k, v in HEAD_KEYS.items() if k.startswith("res.")}
    return {**backbone, **lda, **{k: v for k, v in HEAD_KEYS.items() if k not in lda}}


def write_koniq(path: Path, seed: int = 0, counters: bool = True) -> Path:
    """A random `koniq_pretrained.pkl` in the official layout (a bare state dict), built from the key list above
    alone: weights scaled by their fan-in so that scores stay finite, BatchNorm statistics near identity."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in official_keys().items():
        if key.endswith("num_batches_tracked"):
            if counters:
                state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif ".bn" in key or "downsample.1" in key:  # BatchNorm scale
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
    torch.save(state, path)
    return path


def test_the_model_has_exactly_the_official_keys_and_shapes() -> None:
    expected = official_keys()
    assert len(expected) == 355
    assert {k: tuple(v.shape) for k, v in HyperIQA().state_dict().items()} == expected


def test_a_file_without_batch_counters_loads_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    old = HyperIQA.from_file(write_koniq(tmp_path / "old.pkl", counters=False))  # saved before torch 0.4.1
    state = old.state_dict()
    del state["fc5b_fc.bias"]
    torch.save(state, tmp_path / "broken.pkl")
    with pytest.raises(CheckpointError, match="fc5b_fc.bias.*koniq_pretrained.pkl"):
        HyperIQA.from_file(tmp_path / "broken.pkl")


@pytest.mark.parity
def test_scores_are_those_of_the_official_code(tmp_path: Path) -> None:
    model = HyperIQA.from_file(write_koniq(tmp_path / "koniq_pretrained.pkl", seed=0))
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        scores = model(images)
    # The official HyperNet + TargetNet (LatentSync eval/hyper_iqa.py), run once on this file and these images.
    torch.testing.assert_close(scores, torch.tensor([-3.7192, -3.2703, -3.7378]), rtol=0, atol=1e-3)


@pytest.mark.slow
def test_a_real_aligned_clip_is_scored_on_its_first_middle_and_last_frames(tmp_path: Path, assets: Path) -> None:
    clip = align_clip(assets / "demo1_video.mp4", tmp_path / "demo1.mp4", frames=9, resolution=256)
    aux = tmp_path / "aux"
    aux.mkdir()
    weights = write_koniq(aux / "koniq_pretrained.pkl")
    stage = QualityFilter(aux)
    assert stage.skipped is None
    result = stage.score(clip)
    # The same score worked out by hand: frames 0, 4 and 8, pixels 16-239 of each side, ImageNet-normalised.
    frames = np.stack(list(VideoReader(clip, fps=25)))[[0, 4, 8], 16:240, 16:240]
    images = torch.from_numpy(frames).permute(0, 3, 1, 2) / 255.0
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        per_frame = HyperIQA.from_file(weights)((images - mean[:, None, None]) / std[:, None, None])
    assert math.isfinite(result["score"])
    assert result["score"] == pytest.approx(float(per_frame.mean()), abs=1e-4)
    assert float(per_frame.max() - per_frame.min()) > 1e-3  # the frames differ, so the choice of frames matters


def test_without_the_weights_the_stage_is_skipped_naming_the_file_and_the_command(tmp_path: Path) -> None:
    stage = QualityFilter(tmp_path)
    assert stage.score(tmp_path / "any.mp4") == {"skipped": f"koniq_pretrained.pkl not found in {tmp_path}"}
    assert stage.warning is not None and "latentsync download --with-training" in stage.warning
