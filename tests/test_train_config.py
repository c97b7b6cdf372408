"""The training sections: optional with official defaults, overridable from the command line, typos named."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentsync.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


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


def test_overrides_may_stand_anywhere_among_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`train unet $(cat tiny/train_unet.overrides) --data D run.max_train_steps=2` takes both runs of overrides."""
    from latentsync.cli import parse

    args = parse(["train", "unet", "--config", "c.yaml", "a.b=1", "--data", "d", "c.d=[x,y]", "e=2"])
    assert args.overrides == ["a.b=1", "c.d=[x,y]", "e=2"] and args.data == "d"
    for stray in (["train", "unet", "--config", "c.yaml", "a.b=1", "--data", "d", "oops"], ["download", "a.b=1"]):
        with pytest.raises(SystemExit) as exit_info:
            parse(stray)
        assert exit_info.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err
