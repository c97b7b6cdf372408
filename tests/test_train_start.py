"""Starting U-Net training from a checkpoint as the official trainer does: by name, either stage's file into either
stage's model, with one line saying what was left out; while our own full-state checkpoints resume strictly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from helpers.training import STAGE1, unet_config

from latentsync.models import CheckpointError
from latentsync.train.objectives import load_unet_training_models
from latentsync.train.state import save_checkpoint
from latentsync.train.unet import train_unet


def stage2_weights(tiny: Path, clips: Path) -> dict[str, torch.Tensor]:
    return torch.load(unet_config(tiny, clips).ckpt.resume_ckpt_path, weights_only=True)["state_dict"]


def start_from(tiny: Path, clips: Path, path: Path, *extra: str) -> torch.nn.Module:
    return load_unet_training_models(unet_config(tiny, clips, f"ckpt.resume_ckpt_path={path}", *extra), "cpu").unet


def test_either_stage_starts_the_other(
    tiny_training: Path, aligned_clips: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = stage2_weights(tiny_training, aligned_clips)
    motion = [k for k in full if "motion_modules." in k]
    assert motion
    stage2_file = tmp_path / "stage2.pt"
    torch.save({"state_dict": full, "global_step": 3}, stage2_file)
    with caplog.at_level(logging.WARNING, logger="latentsync"):
        unet = start_from(tiny_training, aligned_clips, stage2_file, *STAGE1)
    own = unet.state_dict()
    assert not any("motion_modules." in k for k in own)
    assert all(torch.equal(own[k], full[k]) for k in own)  # every tensor of the stage-1 model came from the file
    (line,) = [r.getMessage() for r in caplog.records if str(stage2_file) in r.getMessage()]
    assert f"{len(full) - len(motion)} tensors loaded; {len(motion)} of the file ignored" in line
    assert "motion_modules" in line and "\n" not in line

    stage1_file = tmp_path / "stage1.pt"
    torch.save({"state_dict": {k: v for k, v in full.items() if k not in motion}}, stage1_file)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latentsync"):
        unet = start_from(tiny_training, aligned_clips, stage1_file)
    own = unet.state_dict()
    assert all(torch.equal(own[k], full[k]) for k in own if k not in motion)
    (line,) = [r.getMessage() for r in caplog.records if str(stage1_file) in r.getMessage()]
    assert f"{len(motion)} of the model not in the file, left as initialised" in line


def test_layers_the_official_loader_reinitialises_start_afresh_other_shapes_are_errors(
    tiny_training: Path, aligned_clips: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = stage2_weights(tiny_training, aligned_clips)
    to_k = next(k for k in full if "attn2.to_k." in k)
    other = {**full, "conv_in.weight": full["conv_in.weight"][:, :4], to_k: full[to_k][:, :8]}  # e.g. an SD U-Net's
    reshaped = tmp_path / "reshaped.pt"
    torch.save({"state_dict": other}, reshaped)
    with caplog.at_level(logging.WARNING, logger="latentsync"):
        unet = start_from(tiny_training, aligned_clips, reshaped)
    own = unet.state_dict()
    left = ("conv_in.weight", "conv_in.bias", to_k)  # the official loader drops conv_in's bias with its weight
    assert not torch.equal(own["conv_in.bias"], full["conv_in.bias"])
    assert all(torch.equal(own[k], full[k]) for k in own if k not in left)
    (line,) = [r.getMessage() for r in caplog.records if str(reshaped) in r.getMessage()]
    assert "3 of another shape left as initialised (conv_in.weight 1, conv_in.bias 1, " in line

    conv = next(k for k in full if k.endswith("resnets.0.conv1.weight"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {**full, conv: full[conv][:8]}}, wrong)
    with pytest.raises(CheckpointError, match=f"shape mismatch: {conv}"):  # torch's non-strict load raises too
        start_from(tiny_training, aligned_clips, wrong)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in full.items()}}, foreign)
    with pytest.raises(CheckpointError, match=f"none of its {len(full)} tensors is in the model"):
        start_from(tiny_training, aligned_clips, foreign)


def test_resume_is_strict_for_our_checkpoints_only(
    tiny_training: Path, aligned_clips: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--resume` of an official-layout file starts a stage-1 run from stage-2 weights; our own checkpoint (with
    its full-state sidecar) of another model is refused, naming the keys."""
    full = stage2_weights(tiny_training, aligned_clips)
    official = tmp_path / "official.pt"
    torch.save({"state_dict": full, "global_step": 5}, official)
    cfg = unet_config(tiny_training, aligned_clips, "run.max_train_steps=5", *STAGE1)
    with caplog.at_level(logging.WARNING, logger="latentsync"):
        result = train_unet(cfg, tmp_path / "a", str(official), progress=False)  # at its last step already
    assert result.step == 5
    motion = sum("motion_modules." in k for k in full)
    assert any(f"{official}: {len(full) - motion} tensors loaded" in r.getMessage() for r in caplog.records)
    ours = save_checkpoint(tmp_path / "b" / "checkpoints", 5, {"state_dict": full, "global_step": 5}, {"step": 5})
    with pytest.raises(CheckpointError, match=r"not in model: .*motion_modules"):
        train_unet(cfg, tmp_path / "b", "auto", progress=False)
    assert ours.is_file()
