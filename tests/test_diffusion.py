"""The per-chunk diffusion: DDIM with audio guidance, mask compositing, DeepCache, determinism."""

from __future__ import annotations

import pytest
import torch

from latentsync.config import load_config, to_dict
from latentsync.diffusion import DeepCache, load_scheduler
from latentsync.models import UNet3DConditionModel, load_vae
from latentsync.pipelines.diffusion import ChunkDenoiser, DiffusionSettings
from latentsync.testing import TINY_WIDTH, write_tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tiny = write_tiny_models(tmp_path_factory.mktemp("tiny"))
    cfg = load_config(tiny.unet_config)
    unet = UNet3DConditionModel.from_pretrained(to_dict(cfg.model), tiny.unet_checkpoint)
    return unet, load_vae(tiny.vae), tiny.resolution


def chunk(resolution: int, frames: int = 4):
    gen = torch.Generator().manual_seed(3)
    faces = torch.rand(frames, 3, resolution, resolution, generator=gen) * 2 - 1
    mask = torch.ones(1, 1, resolution, resolution)
    mask[..., resolution // 2 :, resolution // 4 : 3 * resolution // 4] = 0  # the "mouth"
    audio = torch.randn(frames, 50, TINY_WIDTH, generator=gen)
    return faces, mask, audio


def run(models, seed: int = 7, **settings) -> torch.Tensor:
    unet, vae, resolution = models
    denoiser = ChunkDenoiser(unet, vae, load_scheduler(), DiffusionSettings(num_inference_steps=4, **settings))
    gen = torch.Generator().manual_seed(seed)
    noise = denoiser.initial_noise(resolution, gen)
    faces, mask, audio = chunk(resolution)
    return denoiser(faces, mask, audio, noise, gen)


@pytest.mark.slow
def test_generates_inside_the_mask_only_and_is_deterministic(models) -> None:
    faces, mask, _ = chunk(models[2])
    out = run(models)
    assert out.shape == faces.shape
    keep = mask.expand_as(faces).bool()
    torch.testing.assert_close(out[keep], faces[keep])
    assert (out[~keep] - faces[~keep]).abs().mean() > 0.05
    torch.testing.assert_close(run(models), out, atol=0, rtol=0)
    assert (run(models, seed=8) - out).abs().max() > 1e-3


@pytest.mark.slow
def test_guidance_and_deepcache_change_the_result(models) -> None:
    base = run(models)
    assert (run(models, guidance_scale=1.0) - base).abs().max() > 1e-4
    cached = run(models, deepcache_interval=2)
    assert torch.isfinite(cached).all() and (cached - base).abs().max() > 1e-6


@pytest.mark.slow
def test_deepcache_shallow_step_reuses_the_deep_features_exactly(models) -> None:
    unet = models[0]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 13, 4, 8, 8, generator=gen)
    audio = torch.randn(4, 50, TINY_WIDTH, generator=gen)
    cache = DeepCache(interval=3)
    with torch.no_grad():
        full = unet(x, 500, audio).sample
        cache.step(0)
        assert cache.refresh
        torch.testing.assert_close(unet(x, 500, audio, deep_cache=cache).sample, full)
        cache.step(1)
        assert not cache.refresh
        deep_calls = []
        hooks = [
            m.register_forward_hook(lambda *_: deep_calls.append(1)) for m in (unet.down_blocks[0], unet.mid_block)
        ]
        torch.testing.assert_close(unet(x, 500, audio, deep_cache=cache).sample, full, atol=1e-5, rtol=1e-5)
        for hook in hooks:
            hook.remove()
        assert deep_calls == []  # only conv_in, the last up layer and conv_out ran
        cache.step(3)
        assert cache.refresh
    with pytest.raises(ValueError):
        DeepCache(0)
