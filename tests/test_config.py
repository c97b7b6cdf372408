"""The bundled configs mirror the official ones, and mistakes in a user's config are named, not ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentsync.config import (
    CONFIG_DIR,
    MASK_VARIANTS,
    ConfigError,
    bundled_config,
    load_config,
    mask_variant,
    save_config,
)
from latentsync.models.unet import UNetConfig


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert set(cfg) in ({"data", "ckpt", "run", "optimizer", "model", "weights", "train"}, {"audio"})


def test_release_configs_have_the_official_values() -> None:
    v15, v16 = load_config(bundled_config("unet/stage2.yaml")), load_config(bundled_config("unet/stage2_512.yaml"))
    assert (v15.data.resolution, v16.data.resolution) == (256, 512)
    assert v16.model.use_motion_module and v16.model.cross_attention_dim == 384
    assert list(v16.model.block_out_channels) == [320, 640, 1280, 1280]
    assert list(v16.run.trainable_modules) == ["motion_modules.", "attentions."]
    assert v16.optimizer.lr == pytest.approx(1e-5)
    efficient = load_config(bundled_config("unet/stage2_efficient.yaml"))
    assert efficient.model.motion_module_decoder_only and efficient.run.trepa_loss_weight == 0
    syncnet = load_config(bundled_config("syncnet/syncnet_16_pixel_attn.yaml"))
    assert syncnet.ckpt.inference_ckpt_path == "checkpoints/stable_syncnet.pt"
    assert list(syncnet.model.audio_encoder.attn_blocks) == [0, 0, 0, 1, 1, 0, 0]
    scheduler = json.loads(bundled_config("scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDIMScheduler" and scheduler["steps_offset"] == 1


def test_package_ships_the_configs() -> None:
    assert bundled_config("unet/stage2_512.yaml").is_file()
    with pytest.raises(ConfigError, match="stage2.yaml"):
        bundled_config("unet/stage9.yaml")


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("  layers_per_block: 2", "  layers_per_blok: 2", "layers_per_blok"),
        ("  layers_per_block: 2", "  layers_per_block: two", "layers_per_block"),
        ("  batch_size: 1", "  batch_sise: 1", "batch_sise"),
        ("ckpt:", "ckpts:", "ckpts"),
    ],
)
def test_typos_are_errors_naming_key_and_file(tmp_path: Path, old: str, new: str, key: str) -> None:
    text = bundled_config("unet/stage2.yaml").read_text()
    assert old in text
    path = tmp_path / "my_config.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value) and "my_config.yaml" in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


def test_model_section_defaults_are_the_release_architecture() -> None:
    cfg = UNetConfig.from_any(load_config(bundled_config("unet/stage2.yaml")).model)
    assert cfg.heads() == [8, 8, 8, 8] and cfg.in_channels == 13


def test_overrides_are_applied_and_checked_like_the_file() -> None:
    path = bundled_config("unet/stage2.yaml")
    cfg = load_config(path, ["data.batch_size=2", "model.use_motion_module=false"])
    assert cfg.data.batch_size == 2 and cfg.model.use_motion_module is False
    for bad, key in (["data.batch_sise=2"], "batch_sise"), (["data.batch_size=two"], "batch_size"):
        with pytest.raises(ConfigError, match=key):
            load_config(path, bad)
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(path, ["trian.lr=1"])


def test_saved_config_loads_back_equal(tmp_path: Path) -> None:
    for name in ("unet/stage2_512.yaml", "syncnet/syncnet_16_latent.yaml", "audio.yaml"):
        cfg = load_config(bundled_config(name), ["data.batch_size=3"] if "audio" not in name else ())
        saved = save_config(cfg, tmp_path / name.replace("/", "_") / "config.yaml")
        assert load_config(saved) == cfg
        assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary file left behind


@pytest.mark.parametrize("stem", ["mask", "mask2", "mask3", "mask4"])
def test_the_official_mask_paths_name_the_drawn_masks(tmp_path: Path, stem: str) -> None:
    from latentsync.faces.mask import MASK_SHAPES

    cfg = load_config(bundled_config("unet/stage2.yaml"), [f"data.mask_image_path=latentsync/utils/{stem}.png"])
    assert mask_variant(cfg.data.mask_image_path) == stem
    assert set(MASK_SHAPES) == set(MASK_VARIANTS)
    with pytest.raises(ConfigError, match="mask_image_path.*mask.png"):
        load_config(bundled_config("unet/stage2.yaml"), ["data.mask_image_path=my_mask.png"])
