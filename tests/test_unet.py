"""The 3D U-Net: official key layout, numerical parity with the official code, checkpoint loading."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from latentsync.config import ConfigError, bundled_config, load_config
from latentsync.models import CheckpointError, UNet3DConditionModel
from latentsync.testing import GOLDEN, randomize, read_manifest

OFFICIAL_CONFIGS = ["stage1", "stage1_512", "stage2", "stage2_512", "stage2_efficient"]


def tiny_config(**overrides) -> dict:
    cfg = dict(load_config(bundled_config("unet/stage2.yaml")).model)
    cfg.update(block_out_channels=[32, 32, 64, 64], attention_head_dim=4, layers_per_block=1, sample_size=8)
    cfg.update(overrides)
    return cfg


def inputs(batch: int = 1, frames: int = 4, size: int = 8, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(batch, 13, frames, size, size, generator=gen),
        "timestep": torch.tensor(500),
        "encoder_hidden_states": torch.randn(batch * frames, 50, 384, generator=gen),
    }


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN / "unet_small.pt", weights_only=True)


@pytest.mark.parity
@pytest.mark.parametrize("name", OFFICIAL_CONFIGS)
def test_state_dict_matches_official_manifest(name: str) -> None:
    cfg = load_config(bundled_config(f"unet/{name}.yaml"))
    with torch.device("meta"):
        model = UNet3DConditionModel.from_config(cfg.model)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    official = [(k, shape) for k, shape, _ in read_manifest(f"unet_{name}")]
    assert ours == official
    buffers = {k for k, _ in model.named_buffers()}
    assert buffers == {k for k, _, kind in read_manifest(f"unet_{name}") if kind == "buffer"}


@pytest.mark.parity
@pytest.mark.slow
def test_golden_outputs_match_official_code(golden: dict) -> None:
    model = UNet3DConditionModel.from_config(golden["config"])
    model.load_state_dict(golden["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        for case in [
            {"name": "primary", "inputs": golden["inputs"], "output": golden["output"]},
            *golden["extra_cases"],
        ]:
            out = model(**case["inputs"]).sample
            diff = (out - case["output"]).abs().max().item()
            assert diff <= 1e-4, f"{case['name']}: max abs diff {diff}"


def test_fresh_model_predicts_zero_and_uses_sdpa() -> None:
    model = UNet3DConditionModel.from_config(tiny_config()).eval()
    with torch.no_grad():
        assert model(**inputs()).sample.abs().max() == 0
    processors = {type(m.processor) for m in model.modules() if isinstance(m, Attention)}
    assert processors == {AttnProcessor2_0}


def test_stage1_checkpoint_loads_into_stage2_model(tmp_path) -> None:
    stage1 = randomize(UNet3DConditionModel.from_config(tiny_config(use_motion_module=False))).eval()
    path = tmp_path / "stage1.pt"
    torch.save({"state_dict": stage1.state_dict(), "global_step": 1234}, path)

    stage2 = UNet3DConditionModel.from_pretrained(tiny_config(), path)
    report = stage2.load_report
    assert report.global_step == 1234
    assert report.missing and all("motion_modules." in k for k in report.missing)
    assert not report.unexpected and not report.mismatched
    with torch.no_grad():  # zero-initialised motion modules are identities: stage 2 behaves as stage 1
        torch.testing.assert_close(stage2(**inputs()).sample, stage1(**inputs()).sample, atol=1e-5, rtol=0)


def test_checkpoint_that_does_not_fit_is_reported(tmp_path, caplog) -> None:
    model = randomize(UNet3DConditionModel.from_config(tiny_config())).eval()
    state = model.state_dict()
    state["conv_in.weight"] = torch.zeros(32, 9, 3, 3)  # e.g. an inpainting checkpoint with other input channels
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "unet.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)

    with pytest.raises(CheckpointError, match=r"conv_in\.weight.*\(32, 9, 3, 3\)"):
        UNet3DConditionModel.from_pretrained(tiny_config(), path)
    loose = UNet3DConditionModel.from_pretrained(tiny_config(), path, strict=False)  # as the official loader:
    assert loose.load_report.reshaped == ["conv_in.weight", "conv_in.bias"]  # conv_in of other channels starts afresh
    assert loose.load_report.unexpected == ["extra.weight"]
    assert "conv_in.weight" in caplog.text
    torch.testing.assert_close(loose.conv_out.weight, model.conv_out.weight)


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        UNet3DConditionModel.from_pretrained(tiny_config(), tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        UNet3DConditionModel.from_pretrained(tiny_config(), bad)


@pytest.mark.parametrize(
    "what", ["checkpoint", "weight file", "whisper checkpoint"], ids=["unet", "auxiliary", "whisper"]
)
def test_every_weight_reader_names_a_missing_or_corrupt_file(tmp_path, what: str) -> None:
    from latentsync.audio import AudioEncoder
    from latentsync.models.auxiliary.files import read_state_dict
    from latentsync.models.loading import read_checkpoint

    read = {"checkpoint": read_checkpoint, "weight file": read_state_dict, "whisper checkpoint": AudioEncoder}[what]
    with pytest.raises(CheckpointError, match=f"^{what} not found: .*nope.pt$"):
        read(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"^cannot read {what} .*bad.pt: "):
        read(bad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward_runs_close_to_fp32(dtype: torch.dtype) -> None:
    model = randomize(UNet3DConditionModel.from_config(tiny_config())).eval()
    with torch.no_grad():
        ref = model(**inputs()).sample
        half = copy.deepcopy(model).to(dtype)
        x = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs().items()}
        out = half(**x).sample
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().mean() < 0.05 * ref.abs().mean()


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    model = randomize(UNet3DConditionModel.from_config(tiny_config())).train()
    x = inputs()

    def grads() -> torch.Tensor:
        model.zero_grad()
        model(**x).sample.square().mean().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain = grads()
    model.enable_gradient_checkpointing()
    torch.testing.assert_close(grads(), plain, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_audio_conditioning_layouts_and_no_audio_config() -> None:
    model = randomize(UNet3DConditionModel.from_config(tiny_config())).eval()
    x = inputs(batch=2)
    with torch.no_grad():
        flat = model(**x).sample
        four_d = model(x["sample"], x["timestep"], x["encoder_hidden_states"].reshape(2, 4, 50, 384)).sample
        silent = model(x["sample"], x["timestep"], None).sample
    torch.testing.assert_close(four_d, flat)
    assert (silent - flat).abs().max() > 1e-3  # the audio really conditions the output

    no_audio = randomize(UNet3DConditionModel.from_config(tiny_config(add_audio_layer=False))).eval()
    assert not any(".attn2." in k for k in no_audio.state_dict())
    with torch.no_grad():
        assert no_audio(x["sample"], 10, None).sample.shape == (2, 4, 4, 8, 8)
        with pytest.raises(ValueError, match="no audio layer"):
            no_audio(**x)


def test_unknown_or_mistyped_model_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match="block_out_chanels"):
        UNet3DConditionModel.from_config({**tiny_config(), "block_out_chanels": [32]})
    with pytest.raises(ConfigError, match="layers_per_block"):
        UNet3DConditionModel.from_config({**tiny_config(), "layers_per_block": "two"})
