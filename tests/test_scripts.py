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

    fits = run("scripts/inspect_checkpoint.py", str(ckpt), "--config", str(config))
    assert fits.returncode == 0 and "all keys matched" in fits.stdout

    wrong = run("scripts/inspect_checkpoint.py", str(ckpt))  # the full-size 1.6 config
    assert wrong.returncode == 1 and "shape mismatch: conv_in.weight" in wrong.stdout
