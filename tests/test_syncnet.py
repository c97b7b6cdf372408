"""StableSyncNet: official key layout, parity with the official code, checkpoint loading, precisions."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import latentsync.models.syncnet as syncnet_module
from latentsync.config import bundled_config
from latentsync.models.loading import CheckpointError
from latentsync.models.syncnet import StableSyncNet, SyncNetConfigError, SyncNetInputError
from latentsync.testing import read_manifest

TINY = {  # smallest net with attention on both sides: 6x6 images and 6x6 mels reduce to 1x1
    "audio_encoder": {
        "in_channels": 1,
        "block_out_channels": [32, 64],
        "downsample_factors": [2, 2],
        "attn_blocks": [0, 1],
        "dropout": 0.0,
    },
    "visual_encoder": {
        "in_channels": 6,
        "block_out_channels": [32, 64],
        "downsample_factors": [2, 2],
        "attn_blocks": [1, 0],
        "dropout": 0.0,
    },
}


def model_config(name: str):
    return OmegaConf.load(bundled_config(f"syncnet/syncnet_{name}.yaml")).model


@pytest.fixture(scope="module")
def golden(golden_dir):
    return torch.load(golden_dir / "syncnet_small.pt", weights_only=True)


@pytest.fixture(scope="module")
def golden_net(golden):
    net = StableSyncNet(golden["config"])
    net.load_state_dict(golden["state_dict"], strict=True)
    return net


@pytest.mark.parity
@pytest.mark.parametrize("name", ["16_latent", "16_pixel", "16_pixel_attn"])
def test_state_dict_matches_official_manifest(name):
    with torch.device("meta"):
        net = StableSyncNet(model_config(name))
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == [(key, shape) for key, shape, _ in read_manifest(f"syncnet_{name}")]


@pytest.mark.parity
def test_matches_official_outputs(golden, golden_net):
    images, mels = golden["inputs"]["image_sequences"], golden["inputs"]["audio_sequences"]
    expected = golden["output"]
    with torch.no_grad():
        vision, audio = golden_net(images, mels)
        raw_vision, raw_audio = golden_net.visual_encoder(images), golden_net.audio_encoder(mels)
    got = {
        "vision_embeds": vision,
        "audio_embeds": audio,
        "visual_encoder_raw": raw_vision,
        "audio_encoder_raw": raw_audio,
    }
    for key, value in got.items():
        assert value.shape == expected[key].shape, key
        assert (value - expected[key]).abs().max() <= 1e-4, key
    assert torch.allclose(vision.norm(dim=1), torch.ones(2))


def test_config_without_attn_blocks_builds_and_runs():
    config = model_config("25_pixel")
    assert "attn_blocks" not in config.visual_encoder
    net = StableSyncNet(config)
    assert not any(".attn." in key for key in net.state_dict())
    with torch.no_grad():
        vision, audio = net(torch.randn(1, 75, 128, 256), torch.randn(1, 1, 80, 80))
    assert vision.shape == audio.shape == (1, 1024)
    assert torch.allclose(torch.stack([vision.norm(), audio.norm()]), torch.ones(2))


@pytest.mark.parity
def test_from_pretrained_round_trips_official_layout(tmp_path, golden):
    path = tmp_path / "stable_syncnet.pt"
    state = {f"module.{k}": v for k, v in golden["state_dict"].items()}  # a DDP-saved file
    torch.save(
        {
            "state_dict": state,
            "global_step": 1234,
            "train_step_list": [],
            "train_loss_list": [],
            "val_step_list": [],
            "val_loss_list": [],
        },
        path,
    )
    net = StableSyncNet.from_pretrained(OmegaConf.create(golden["config"]), path)
    assert net.global_step == 1234 and net.load_report.clean and not net.training
    with torch.no_grad():
        vision, _ = net(golden["inputs"]["image_sequences"], golden["inputs"]["audio_sequences"])
    assert (vision - golden["output"]["vision_embeds"]).abs().max() <= 1e-4


def test_wrong_shaped_checkpoint_key_is_named(tmp_path):
    state = StableSyncNet(TINY).state_dict()
    state["visual_encoder.conv_in.weight"] = torch.zeros(32, 7, 3, 3)
    torch.save({"state_dict": state, "global_step": 1}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"visual_encoder\.conv_in\.weight"):
        StableSyncNet.from_pretrained(TINY, tmp_path / "bad.pt")


def test_bad_config_and_wrong_input_size_are_reported():
    config = copy.deepcopy(TINY)
    config["audio_encoder"]["downsample_factors"] = [2]
    with pytest.raises(SyncNetConfigError, match="audio_encoder"):
        StableSyncNet(config)
    with pytest.raises(SyncNetInputError, match="image_sequences"):
        StableSyncNet(TINY)(torch.randn(1, 6, 12, 12), torch.randn(1, 1, 6, 6))


@pytest.mark.parity
def test_bf16_forward_close_to_fp32(golden, golden_net):
    inputs = golden["inputs"]
    net = copy.deepcopy(golden_net).to(torch.bfloat16)
    with torch.no_grad():
        outputs = net(inputs["image_sequences"].bfloat16(), inputs["audio_sequences"].bfloat16())
    for got, key in zip(outputs, ("vision_embeds", "audio_embeds")):
        assert got.dtype == torch.bfloat16
        assert F.cosine_similarity(got.float(), golden["output"][key]).min() > 0.99


@pytest.mark.slow
def test_gradient_checkpointing_gives_same_gradients(monkeypatch):
    calls = []

    def counting_checkpoint(*args, **kwargs):
        calls.append(kwargs["use_reentrant"])
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(syncnet_module, "checkpoint", counting_checkpoint)
    torch.manual_seed(0)
    images, mels = torch.randn(2, 6, 6, 6), torch.randn(2, 1, 6, 6)
    grads = []
    for flag in (False, True):
        torch.manual_seed(1)
        net = StableSyncNet(TINY, gradient_checkpointing=flag).train()
        vision, audio = net(images, mels)
        (vision * audio).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert calls == [False] * 6  # 3 blocks per encoder, all checkpointed
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
