"""The training step's maths against the official trainer's outputs (`../shared/golden`, official code on CPU).

Mixed noise, forward diffusion, the one-step clean latent (fp32 and fp16), the reconstruction loss, the masks
and masked frames of the training dataset, the SyncNet loss and TREPA with its VideoMAE-v2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import InterpolationMode, resize

from latentsync.diffusion import (
    add_noise,
    latent_mask,
    load_scheduler,
    mixed_noise,
    one_step_clean_latent,
    repeated_noise,
)
from latentsync.diffusion.syncnet_input import syncnet_input
from latentsync.faces.mask import diffusion_inputs, fixed_mask
from latentsync.models.auxiliary.videomae import VideoMAEConfig, VideoMAEv2
from latentsync.models.syncnet import StableSyncNet
from latentsync.testing import GOLDEN, read_manifest
from latentsync.train.losses import TREPALoss, cosine_bce, reconstruction_loss, sync_loss

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def helpers() -> dict:
    return torch.load(GOLDEN / "training_helpers.pt", weights_only=True)["outputs"]


def test_mixed_noise_draws_as_the_official_trainer(helpers: dict) -> None:
    ref = helpers["mixed_noise"]
    shape = tuple(ref["gt_latents_shape"])
    for case in ref["cases"]:
        ours = mixed_noise(shape, case["alpha"], torch.Generator().manual_seed(ref["torch_manual_seed_before_block"]))
        assert (ours - case["noise"]).abs().max() <= 1e-6
    repeated = repeated_noise(shape, torch.Generator().manual_seed(ref["torch_manual_seed_before_block"]))
    assert torch.equal(repeated, ref["not_mixed_noise"])
    # The statistics the recipe wants: unit variance, frames correlated by alpha²/(1+alpha²) = 0.5.
    big = mixed_noise((64, 4, 16, 8, 8), 1.0, torch.Generator().manual_seed(0))
    assert abs(big.var().item() - 1) < 0.02
    corr = torch.corrcoef(torch.stack([big[:, :, 3].flatten(), big[:, :, 11].flatten()]))[0, 1].item()
    assert abs(corr - 0.5) < 0.03


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_add_noise_and_one_step_clean_latent(helpers: dict, index: int) -> None:
    ref = helpers["add_noise_one_step"]
    case = ref["cases"][index]
    dtype = getattr(torch, case["dtype"].split(".")[1])
    scheduler = load_scheduler()
    assert torch.equal(scheduler.alphas_cumprod, helpers["alphas_cumprod"])
    noisy = add_noise(scheduler, ref["gt_latents"].to(dtype), ref["noise"].to(dtype), case["timesteps"])
    clean = one_step_clean_latent(scheduler, noisy, case["pred_noise"], case["timesteps"])
    assert noisy.dtype == clean.dtype == dtype
    assert (noisy.float() - case["noisy_gt_latents"].float()).abs().max() <= 1e-4
    assert (clean.float() - case["pred_latents"].float()).abs().max() <= 1e-4
    true_noise = one_step_clean_latent(scheduler, noisy, ref["noise"].to(dtype), case["timesteps"])
    assert (true_noise.float() - case["x0_from_true_noise"].float()).abs().max() <= 1e-4


def test_reconstruction_loss(helpers: dict) -> None:
    pred = helpers["add_noise_one_step"]["cases"][0]["pred_noise"]
    loss = reconstruction_loss(pred, helpers["add_noise_one_step"]["noise"])
    assert abs(loss.item() - helpers["recon_loss"]["recon_loss"].item()) <= 1e-6


def test_latent_mask_is_the_nearest_subsample(helpers: dict) -> None:
    ref = helpers["mask_latent"]
    mask = torch.from_numpy(fixed_mask(256))
    assert torch.equal(mask.double(), ref["mask_256"])
    ours = latent_mask(mask[None, None].half(), (32, 32))[0, 0]
    assert torch.equal(ours, ref["masks_latent_32"])


@pytest.mark.parametrize("index", [0, 1])
def test_training_mask_and_masked_frames(index: int) -> None:
    """The dataset's tensors: bicubic antialiased uint8 resize, [-1, 1] frames, masked frames, the mask."""
    case = torch.load(GOLDEN / "training_masks_256.pt", weights_only=True)["cases"][index]
    res = case["resolution"]
    frames = case["input_frames_u8"].permute(0, 3, 1, 2)
    resized = resize(frames, [res, res], InterpolationMode.BICUBIC, antialias=True)
    assert torch.equal(resized, case["resized_u8"])
    mask = fixed_mask(res)
    assert np.array_equal(mask.astype(np.float64), case["mask_image_ch0"].numpy())
    for i, face in enumerate(resized.permute(0, 2, 3, 1).numpy()):
        inputs = diffusion_inputs(np.ascontiguousarray(face), mask)
        assert (inputs.pixel_values - case["pixel_values"][i]).abs().max() <= 1e-6
        assert (inputs.masked_pixel_values.double() - case["masked_pixel_values"][i]).abs().max() <= 1e-6


@pytest.fixture(scope="module")
def syncnet_losses() -> dict:
    return torch.load(GOLDEN / "syncnet_losses.pt", weights_only=True)


def test_cosine_bce_cases(syncnet_losses: dict) -> None:
    for case in syncnet_losses["cases"]:
        per_sample = cosine_bce(case["vision_embeds"].float(), case["audio_embeds"].float(), case["y"])
        if "error" in case:  # the official loss stops when the cosine rounds above 1; ours holds it at 1
            assert per_sample.tolist() == [100.0 if y == 0 else 0.0 for y in case["y"].flatten().tolist()]
            continue
        assert (per_sample - case["per_sample_loss"].reshape(-1)).abs().max() <= 1e-4, case["name"]
        assert abs(per_sample.mean().item() - case["loss_mean"].item()) <= 1e-4


@pytest.fixture(scope="module")
def syncnet_small() -> tuple[StableSyncNet, dict]:
    ref = torch.load(GOLDEN / "syncnet_small.pt", weights_only=True)
    model = StableSyncNet(ref["config"])
    model.load_state_dict(ref["state_dict"])
    return model.eval(), ref


@pytest.mark.slow
def test_unet_sync_loss_and_its_gradient(syncnet_small, syncnet_losses: dict, helpers: dict) -> None:
    """The U-Net's sync term from (b*f, 3, 256, 256) decoded frames: layout, lower half, loss, gradient."""
    model, ref = syncnet_small
    images, mel = ref["inputs"]["image_sequences"], ref["inputs"]["audio_sequences"]
    lower = images.reshape(2, 16, 3, 128, 256).reshape(32, 3, 128, 256)
    frames = torch.cat([torch.full_like(lower, 0.3), lower], dim=2)  # the upper half never reaches the SyncNet
    stack = syncnet_input(frames, num_frames=16, resolution=256, lower_half=True)
    assert torch.equal(stack, images)
    loss = sync_loss(model, stack, mel)
    assert abs(loss.item() - helpers["train_unet_sync_block"]["sync_loss"].item()) <= 1e-4

    vision = ref["output"]["vision_embeds"].clone().requires_grad_(True)
    cosine_bce(vision, ref["output"]["audio_embeds"], torch.ones(2, 1)).mean().backward()
    expected = syncnet_losses["syncnet_small_grad_vision_embeds_train_unet_loss"]
    assert (vision.grad - expected).abs().max() <= 1e-4


@pytest.fixture(scope="module")
def trepa() -> dict:
    return torch.load(GOLDEN / "trepa_small.pt", weights_only=True)


def videos(trepa: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(fake, real) in [-1, 1]: real frames are uint8 crops, fake values are stored as k/64 - 2."""
    real = trepa["inputs"]["videos_real_u8"].float() / 127.5 - 1
    fake = trepa["inputs"]["videos_fake_u8"].float() / 64 - 2
    return fake, real


def official_small_model(trepa: dict, dtype: torch.dtype) -> VideoMAEv2:
    """The small VideoMAE-v2 as the official TREPALoss holds it: loaded, then cast to fp16 (and back for fp32)."""
    model = VideoMAEv2(VideoMAEConfig.from_state_dict(trepa["state_dict"]))
    model.load_state_dict(trepa["state_dict"])
    return model.half().to(dtype).eval().requires_grad_(False)


def test_videomae_loads_the_official_layout(trepa: dict, tmp_path) -> None:
    path = tmp_path / "videomae_small.pth"
    torch.save({"model": trepa["state_dict"]}, path)
    model = VideoMAEv2.from_pretrained(path)
    assert model.cfg.num_heads == 4 and model.cfg.mlp_hidden == 279 and model.cfg.depth == 2
    manifest = read_manifest("videomae_v2_small")
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [(k, s) for k, s, _ in manifest]
    assert sum(p.numel() for p in model.parameters()) == trepa["meta"]["num_params_small"]


def test_videomae_giant_state_dict_matches_the_manifest() -> None:
    with torch.device("meta"):
        model = VideoMAEv2(VideoMAEConfig())
    manifest = read_manifest("videomae_v2_giant")
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [(k, s) for k, s, _ in manifest]
    assert sum(p.numel() for p in model.parameters()) == 1_011_855_918
    assert VideoMAEConfig.from_state_dict(model.state_dict()) == VideoMAEConfig()


@pytest.mark.slow
def test_trepa_fp32_features_loss_and_gradient(trepa: dict) -> None:
    ref = trepa["outputs"]["fp32"]
    loss_fn = TREPALoss(official_small_model(trepa, torch.float32))
    fake, real = videos(trepa)
    with torch.no_grad():
        feats_fake, feats_real = loss_fn.features(fake), loss_fn.features(real)
    scale = ref["feats_fake"].abs().max()
    assert (feats_fake - ref["feats_fake"]).abs().max() <= 1e-4 * scale
    assert (feats_real - ref["feats_real"]).abs().max() <= 1e-4 * scale
    fake.requires_grad_(True)
    loss = loss_fn(fake, real)
    # The loss is a tiny difference of nearly equal unit vectors: compare it relative to itself.
    assert abs(loss.item() - ref["loss"].item()) <= 1e-3 * ref["loss"].item()
    loss.backward()
    assert abs(fake.grad.norm().item() - ref["grad_fake_norm"].item()) <= 1e-2 * ref["grad_fake_norm"].item()
    assert loss_fn(real, real).item() == 0.0


@pytest.mark.slow
def test_trepa_official_fp16_path(trepa: dict) -> None:
    ref = trepa["outputs"]["fp16_official"]
    loss_fn = TREPALoss(official_small_model(trepa, torch.float16))
    fake, real = (v.half() for v in videos(trepa))
    with torch.no_grad():
        loss = loss_fn(fake, real)
        feats = loss_fn.features(fake)
    assert loss.dtype == torch.float16
    assert abs(loss.item() - ref["loss"].item()) <= 1e-2 * ref["loss"].item()
    assert (feats.float() - ref["feats_fake"].float()).abs().max() <= 2e-3 * ref["feats_fake"].float().abs().max()
    assert F.mse_loss(feats.float(), ref["feats_fake"].float()).item() < 1e-5
