"""The helper scripts under scripts/ work as their docstrings say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.slow
def test_make_tiny_models_then_inspect_checkpoint(tmp_path) -> None:
    made = run("scripts/make_tiny_models.py", str(tmp_path))
    assert made.returncode == 0, made.stderr
    ckpt, config = tmp_path / "unet_tiny.pt", tmp_path / "unet_tiny.yaml"
    assert ckpt.is_file() and config.is_file() and (tmp_path / "vae" / "config.json").is_file()
    assert "latentsync infer --video" in made.stdout and f"--unet-checkpoint {ckpt}" in made.stdout  # what to run next
    assert "--steps 1 " in made.stdout  # a plumbing check that takes seconds, not minutes, on a CPU

    fits = run("scripts/inspect_checkpoint.py", str(ckpt), "--config", str(config))
    assert fits.returncode == 0 and "all keys matched" in fits.stdout

    wrong = run("scripts/inspect_checkpoint.py", str(ckpt))  # the full-size 1.6 config
    assert wrong.returncode == 1 and "shape mismatch: conv_in.weight" in wrong.stdout


@pytest.mark.slow
def test_make_tiny_models_for_training_writes_configs_that_load_with_their_overrides(tmp_path) -> None:
    from latentsync.config import load_config

    made = run("scripts/make_tiny_models.py", str(tmp_path), "--training")
    assert made.returncode == 0, made.stderr
    unet = load_config(tmp_path / "unet_tiny.yaml", (tmp_path / "train_unet.overrides").read_text().split())
    assert unet.run.pixel_space_supervise and unet.run.use_syncnet and unet.run.trepa_loss_weight == 10
    for key in ("ckpt.resume_ckpt_path", "weights.vae", "weights.whisper", "weights.trepa", "weights.lpips_vgg"):
        section, name = key.split(".")
        assert Path(getattr(getattr(unet, section), name)).exists(), key
    syncnet_config = Path(unet.data.syncnet_config_path)
    syncnet = load_config(syncnet_config, (tmp_path / "train_syncnet.overrides").read_text().split())
    assert Path(syncnet.ckpt.inference_ckpt_path).is_file() and syncnet.data.resolution == unet.data.resolution
    assert syncnet.data.num_workers == unet.data.num_workers == 0
