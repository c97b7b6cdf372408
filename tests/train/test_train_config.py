"""The training sections: optional with official defaults, overridable from the command line, typos named."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentsync.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def test_official_files_get_the_default_training_sections() -> None:
    unet = load_config(REPO / "configs/unet/stage2.yaml")
    assert unet.weights.vae == "stabilityai/sd-vae-ft-mse" and unet.weights.lpips_net == "vgg"
    assert unet.weights.trepa.endswith("vit_g_hybrid_pt_1200e_ssv2_ft.pth")
    assert (unet.train.keep_last, unet.train.dtype, unet.train.lora_rank) == (3, "fp16", 0)
    syncnet = load_config(REPO / "configs/syncnet/syncnet_16_latent.yaml")
    assert syncnet.weights.vae == "stabilityai/sd-vae-ft-mse" and syncnet.train.max_bad_steps == 20
    assert "gradient_accumulation_steps" not in syncnet.train  # SyncNet keeps the official data. key


def test_overrides_are_merged_and_validated() -> None:
    cfg = load_config(REPO / "configs/unet/stage2.yaml", ["data.batch_size=4", "train.audio_dropout=0.1"])
    assert cfg.data.batch_size == 4 and cfg.train.audio_dropout == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(REPO / "configs/unet/stage2.yaml", ["data.batch_sise=4"])
    with pytest.raises(ConfigError, match="keep_last"):
        load_config(REPO / "configs/unet/stage2.yaml", ["train.keep_last=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(REPO / "configs/unet/stage2.yaml", ["data.batch_size"])
