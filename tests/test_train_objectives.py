"""The training step: models gated as the official trainer, trainable selection, gradients only where they belong,
and the U-Net input identical to what inference feeds for the same crops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from latentsync.config import bundled_config, load_config, to_dict
from latentsync.diffusion import add_noise, load_scheduler
from latentsync.faces.mask import diffusion_inputs, fixed_mask
from latentsync.models.unet import UNet3DConditionModel
from latentsync.pipelines.diffusion import ChunkDenoiser, DiffusionSettings
from latentsync.testing import TINY_WIDTH, write_tiny_training_models
from latentsync.train.loop import adamw
from latentsync.train.objectives import load_unet_training_models, trainable_parameters, unet_loss, unet_step_input

# (config, trainable tensors or None when not recorded, trainable parameters), from the official runs and spec.
OFFICIAL_COUNTS = [
    ("stage1", 686, 849_962_244),
    ("stage1_512", 686, 849_962_244),
    ("stage2", 936, 674_792_320),
    ("stage2_512", 936, 674_792_320),
    ("stage2_efficient", None, 284_660_480),
]


@pytest.mark.parametrize(("name", "tensors", "params"), OFFICIAL_COUNTS)
def test_trainable_parameters_of_the_official_configs(name: str, tensors: int | None, params: int) -> None:
    cfg = load_config(bundled_config(f"unet/{name}.yaml"))
    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(to_dict(cfg.model))
    selected = trainable_parameters(unet, cfg)
    assert sum(p.numel() for _, p in selected) == params
    assert tensors is None or len(selected) == tensors
    assert sum(p.numel() for p in unet.parameters() if p.requires_grad) == params


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return write_tiny_training_models(tmp_path_factory.mktemp("tiny_training"))


def tiny_config(tiny, *extra: str):
    overrides = tiny.unet_overrides.read_text().split()
    return load_config(tiny.inference.unet_config, [*overrides, *extra])


def crops(resolution: int, frames: int = 16) -> torch.Tensor:
    """(frames, 3, R, R) smooth face-like crops in [-1, 1] (a moving gradient, so frames differ)."""
    y, x = np.mgrid[0:resolution, 0:resolution] / resolution
    faces = [np.stack([np.sin(3 * x + i / 4), np.cos(2 * y - i / 5), x * y], axis=-1) for i in range(frames)]
    uint8 = [((face + 1) * 127.5).clip(0, 255).astype(np.uint8) for face in faces]
    mask = fixed_mask(resolution)
    return torch.stack([diffusion_inputs(face, mask).pixel_values for face in uint8])


def make_batch(resolution: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    gt = crops(resolution)[None]
    mask = torch.from_numpy(fixed_mask(resolution))[None, None, None].expand(1, 16, 1, -1, -1).contiguous()
    return {
        "gt": gt,
        "ref": gt.flip(1),
        "mask": mask,
        "audio_embeds": torch.randn(1, 16, 50, TINY_WIDTH, generator=gen),
        "mel": torch.randn(1, 1, 80, 52, generator=gen).clamp(-4, 4),
    }


def frozen_states(models) -> dict[str, dict[str, torch.Tensor]]:
    parts = {"vae": models.vae, "syncnet": models.syncnet, "lpips": models.lpips, "trepa": models.trepa}
    return {name: copy.deepcopy(part.state_dict()) for name, part in parts.items() if part is not None}


@pytest.mark.slow
def test_stage2_step_all_losses_gradients_only_on_trainable_parameters(tiny) -> None:
    cfg = tiny_config(tiny)
    models = load_unet_training_models(cfg, "cpu")
    assert models.syncnet is not None and models.lpips is not None and models.trepa is not None
    named = trainable_parameters(models.unet, cfg)
    trainable = {name for name, _ in named}
    assert trainable and all(("motion_modules." in n or "attentions." in n) for n in trainable)
    before = frozen_states(models)
    unet_before = {n: p.detach().clone() for n, p in models.unet.named_parameters()}

    loss, terms = unet_loss(models, make_batch(tiny.inference.resolution), cfg, torch.Generator().manual_seed(1))
    assert set(terms) == {"recon", "sync", "lpips", "trepa", "total"}
    assert all(np.isfinite(v) for v in terms.values())
    weighted = terms["recon"] + 0.05 * terms["sync"] + 0.1 * terms["lpips"] + 10 * terms["trepa"]
    assert abs(terms["total"] - weighted) < 1e-5 * max(1.0, abs(weighted))
    loss.backward()
    for name, param in models.unet.named_parameters():
        assert (param.grad is not None) == (name in trainable), name
    assert sum(float(p.grad.abs().sum()) for _, p in named) > 0
    for part in (models.vae, models.syncnet, models.lpips, models.trepa):
        assert all(p.grad is None for p in part.parameters())

    torch.optim.AdamW([p for _, p in named], lr=1e-3).step()
    after = frozen_states(models)
    for name, state in before.items():
        assert all(torch.equal(state[k], after[name][k]) for k in state), name
    changed = {n for n, p in models.unet.named_parameters() if not torch.equal(p, unet_before[n])}
    assert changed and changed <= trainable


@pytest.mark.slow
def test_stage1_step_is_reconstruction_only_and_trains_everything(tiny) -> None:
    stage1 = ("run.pixel_space_supervise=false", "run.use_syncnet=false", "model.use_motion_module=false")
    cfg = tiny_config(tiny, *stage1, "run.enable_gradient_checkpointing=false", "ckpt.resume_ckpt_path=''")
    models = load_unet_training_models(cfg, "cpu")
    assert models.syncnet is None and models.lpips is None and models.trepa is None
    named = trainable_parameters(models.unet, cfg)
    assert len(named) == len(list(models.unet.parameters()))
    loss, terms = unet_loss(models, make_batch(tiny.inference.resolution), cfg, torch.Generator().manual_seed(1))
    assert set(terms) == {"recon", "total"} and terms["recon"] == terms["total"] > 0
    loss.backward()
    assert all(p.grad is not None for _, p in named)


def test_missing_weight_file_names_it_and_the_download_command(tiny, tmp_path) -> None:
    from latentsync.hub import MissingCheckpointError

    cfg = tiny_config(tiny, f"weights.trepa={tmp_path / 'absent.pth'}")
    with pytest.raises(MissingCheckpointError, match=r"absent\.pth.*weights\.trepa.*--with-training"):
        load_unet_training_models(cfg, "cpu")


@pytest.mark.slow
def test_training_unet_input_equals_the_inference_input(tiny) -> None:
    """Same crops (reference = the crops, as inference uses them): the 9 conditioning channels are identical, the
    4 noisy ones are the forward diffusion of the same latents, and the audio reaches the U-Net the same way."""
    cfg = tiny_config(tiny, "run.pixel_space_supervise=false", "run.use_syncnet=false")
    models = load_unet_training_models(cfg, "cpu")
    vae = models.vae
    with torch.no_grad():  # a posterior with ~0 spread, so the two paths' different draw orders cannot matter
        vae.quant_conv.weight[4:] = 0
        vae.quant_conv.bias[4:] = -1000
    batch = make_batch(tiny.inference.resolution)
    batch["ref"] = batch["gt"]

    seen = []
    hook = models.unet.register_forward_pre_hook(lambda _m, args: seen.append(args))
    with torch.no_grad():
        denoiser = ChunkDenoiser(models.unet, vae, load_scheduler(), DiffusionSettings(1, guidance_scale=1.0))
        gen = torch.Generator().manual_seed(5)
        noise = denoiser.initial_noise(tiny.inference.resolution, gen)
        denoiser(batch["gt"][0], batch["mask"][0, :1], batch["audio_embeds"][0], noise, gen)
        training, timesteps, train_noise, _ = unet_step_input(models, batch, cfg, torch.Generator().manual_seed(6))
        models.unet(training, timesteps, batch["audio_embeds"])
    hook.remove()
    (inference, _, inference_audio), (_, _, training_audio) = seen[0], seen[1]
    assert training.shape == inference.shape == (1, 13, 16, 8, 8)
    torch.testing.assert_close(training[:, 4:], inference[:, 4:], atol=1e-5, rtol=0)
    assert torch.equal(training[:, 4:5], inference[:, 4:5])  # the latent mask, exactly
    expected = add_noise(models.scheduler, inference[:, 9:13], train_noise, timesteps)
    torch.testing.assert_close(training[:, :4], expected, atol=1e-5, rtol=0)
    assert torch.equal(training_audio.flatten(0, 1), inference_audio)


@pytest.mark.slow
def test_lora_trains_only_adapters_and_merges_to_the_official_layout(tiny) -> None:
    from latentsync.train.lora import add_lora, merged_state_dict

    cfg = tiny_config(tiny, "train.lora_rank=4")
    unet = UNet3DConditionModel.from_pretrained(to_dict(cfg.model), tiny.inference.unet_checkpoint)
    keys = list(unet.state_dict())
    gen = torch.Generator().manual_seed(0)
    x, audio = torch.randn(1, 13, 4, 8, 8, generator=gen), torch.randn(4, 50, TINY_WIDTH, generator=gen)
    with torch.no_grad():
        before = unet(x, 500, audio).sample
    adapters = add_lora(unet, cfg.train.lora_rank, cfg.train.lora_alpha)
    assert [n for n, _ in trainable_parameters(unet, cfg)] == [n for n, _ in adapters]
    assert all(not p.requires_grad for n, p in unet.named_parameters() if "lora_" not in n)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 500, audio).sample, before)  # B starts at zero
        for _, param in adapters:
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
        adapted = unet(x, 500, audio).sample
    assert (adapted - before).abs().max() > 1e-4
    merged = merged_state_dict(unet)
    assert list(merged) == keys
    plain = UNet3DConditionModel.from_pretrained(to_dict(cfg.model), tiny.inference.unet_checkpoint)
    plain.load_state_dict(merged)
    with torch.no_grad():
        torch.testing.assert_close(plain(x, 500, audio).sample, adapted, atol=1e-5, rtol=1e-4)


def test_syncnet_loss_pixel_lower_half(tiny) -> None:
    from latentsync.models.syncnet import StableSyncNet
    from latentsync.train.objectives import syncnet_loss

    cfg = load_config(tiny.syncnet_config, tiny.syncnet_overrides.read_text().split())
    assert cfg.data.lower_half and not cfg.data.latent_space
    syncnet = StableSyncNet.from_pretrained(to_dict(cfg.model), tiny.syncnet_checkpoint).train()
    gen = torch.Generator().manual_seed(0)
    res = cfg.data.resolution
    batch = {
        "frames": torch.rand(2, 16, 3, res, res, generator=gen) * 2 - 1,
        "mel": torch.randn(2, 1, 80, 52, generator=gen),
        "y": torch.tensor([[1.0], [0.0]]),
    }
    loss, cosine = syncnet_loss(syncnet, batch, cfg)
    assert cosine.shape == (2,) and ((cosine >= 0) & (cosine <= 1)).all()
    expected = -(torch.log(cosine[0]) + torch.log(1 - cosine[1])) / 2
    assert abs(loss.item() - expected.item()) < 1e-5
    loss.backward()
    assert all(p.grad is not None for p in syncnet.parameters())
    # The upper half of the frames never reaches the SyncNet.
    batch["frames"][:, :, :, : res // 2] = 0
    assert torch.equal(syncnet_loss(syncnet, batch, cfg)[1], cosine)


def step_gradients(models, named, batch, cfg) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    for _, param in named:
        param.grad = None
    loss, terms = unet_loss(models, batch, cfg, torch.Generator().manual_seed(1))
    loss.backward()
    return terms, {name: param.grad.clone() for name, param in named if param.grad is not None}


@pytest.mark.slow
def test_recomputed_decode_and_lpips_give_the_official_loss_and_gradients(tiny) -> None:
    """The default step recomputes the clean-latent decode and LPIPS a few frames at a time in the backward (to
    save memory); loss terms and every trainable gradient match the all-frames step of the official trainer."""
    cfg = tiny_config(tiny)
    models = load_unet_training_models(cfg, "cpu")
    assert models.recompute_frames == 4  # the default
    named = trainable_parameters(models.unet, cfg)
    batch = make_batch(tiny.inference.resolution)
    models.recompute_frames = None
    official_terms, official_grads = step_gradients(models, named, batch, cfg)
    models.recompute_frames = 3  # an uneven split of 16 frames too
    terms, grads = step_gradients(models, named, batch, cfg)
    assert set(terms) == set(official_terms) == {"recon", "sync", "lpips", "trepa", "total"}
    for name, value in official_terms.items():
        assert abs(terms[name] - value) <= 1e-5 * max(1.0, abs(value)), name
    assert grads.keys() == official_grads.keys() and len(grads) == len(named)
    # All trainable gradients as one vector, to 1e-4 of its size: fp32 sums in another order (measured 3e-6 to
    # 1e-5; the same step run twice already differs by ~1e-6 on the CPU); a lost or doubled frame is far off.
    ours = torch.cat([grads[name].flatten() for name in official_grads])
    official = torch.cat([grad.flatten() for grad in official_grads.values()])
    assert float((ours - official).norm()) <= 1e-4 * float(official.norm())


def test_default_adamw_steps_as_the_multi_tensor_one() -> None:
    """The trainers' AdamW steps one tensor at a time (fewer temporaries); the update is the official one."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(64, 32), (32,), (8, 4, 3, 3)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt_ours = adamw(ours, 1e-3)
    opt_theirs = torch.optim.AdamW(theirs, lr=1e-3, weight_decay=0.01, foreach=True)
    assert opt_ours.defaults["foreach"] is False
    for _ in range(3):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
