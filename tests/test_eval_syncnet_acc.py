"""StableSyncNet accuracy: seeded pair sampling (the training dataset's mel and windows) and the counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.evaluation import write_face_clips

from latentsync.eval.syncnet_acc import accuracy, sample_pairs


class SameEmbedding(torch.nn.Module):
    """Says every pair is in sync (cosine 1), so the accuracy is the share of in-sync pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images, mels):
        assert images.shape[1:] == (48, 64, 128) and mels.shape[1:] == (1, 80, 52)
        ones = torch.ones(len(images), 4)
        return ones, ones


@pytest.mark.slow
def test_pairs_are_seeded_half_in_sync_and_counted(tmp_path, assets):
    videos = write_face_clips(tmp_path, assets)
    first = list(sample_pairs(videos, 12, seed=42, size=128))
    again = list(sample_pairs(videos, 12, seed=42, size=128))
    assert all(np.array_equal(a[0], b[0]) and a[2] == b[2] for a, b in zip(first, again))
    assert first[0][0].shape == (16, 128, 128, 3) and first[0][1].shape == (1, 80, 52)
    positives = sum(p[2] for p in first)
    result = accuracy(SameEmbedding(), iter(first), batch=5)
    assert result["pairs"] == 12 and result["correct"] == positives and 0 < positives < 12


def tiny_latent_config(path):
    """The bundled latent config with narrow encoders, for 64 px frames (8 x 8 latents)."""
    from omegaconf import OmegaConf

    from latentsync.config import bundled_config

    cfg = OmegaConf.load(bundled_config("syncnet/syncnet_16_latent.yaml"))
    widths = [32] * 6  # group norms of 32 groups
    cfg.model.audio_encoder.block_out_channels = widths
    cfg.model.visual_encoder.block_out_channels = widths
    cfg.model.visual_encoder.downsample_factors = [2, 2, 2, 1, 1, 1]
    cfg.data.resolution = 64
    OmegaConf.save(cfg, path)
    return path


class Recorder(SameEmbedding):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, images, mels):
        self.inputs.append(images)
        ones = torch.ones(len(images), 4)
        return ones, ones


def test_latent_configs_score_sampled_vae_latents_of_whole_frames(tmp_path):
    from latentsync.diffusion import encode_latents
    from latentsync.models.vae import load_vae
    from latentsync.testing import write_tiny_models

    vae = load_vae(write_tiny_models(tmp_path).vae)
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8), np.zeros((1, 80, 52), np.float32), 1.0)]
    model = Recorder()
    torch.manual_seed(3)
    assert accuracy(model, iter(pairs), lower_half=False, latent_space=True, vae=vae)["correct"] == 1
    torch.manual_seed(3)
    frames = torch.from_numpy(pairs[0][0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    expected = encode_latents(vae, frames, None, batch=16).reshape(1, 64, 8, 8)  # b (f c) h w, 0.18215 applied
    assert torch.allclose(model.inputs[0], expected, atol=1e-5)
    with pytest.raises(Exception, match="needs the VAE"):
        accuracy(model, iter(pairs), latent_space=True)


@pytest.mark.slow
def test_cli_latent_config_with_a_vae_folder(tmp_path, assets, capsys):
    import json

    from omegaconf import OmegaConf

    from latentsync.cli import main
    from latentsync.models import StableSyncNet
    from latentsync.testing import write_tiny_models

    config = tiny_latent_config(tmp_path / "latent.yaml")
    torch.manual_seed(0)
    checkpoint = tmp_path / "stable_syncnet.pt"
    torch.save({"state_dict": StableSyncNet(OmegaConf.load(config).model).state_dict()}, checkpoint)
    vae = write_tiny_models(tmp_path / "tiny").vae
    videos = write_face_clips(tmp_path / "clips", assets)
    args = ["eval", "syncnet-acc", "--config", str(config), "--checkpoint", str(checkpoint), "--videos"]
    args += [str(videos[0].parent), "--samples", "6", "--device", "cpu", "--json"]
    assert main([*args, "--vae", str(vae)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"] == 6 and 0 <= out["correct"] <= 6 and out["accuracy"] == out["correct"] / 6
    assert main(args) == 2
    assert "--vae" in capsys.readouterr().err
