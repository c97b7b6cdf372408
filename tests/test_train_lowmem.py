"""Memory options of training: the optimizer choice (official AdamW, fused, bitsandbytes 8-bit) and LoRA over a
half-precision frozen U-Net, on tiny models and real aligned clips (pixel-space losses off: these are about the
optimizer and the weights, and the steps stay cheap)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers.training import overrides, unet_config

from latentsync.config import ConfigError, load_config
from latentsync.errors import LatentSyncError
from latentsync.train.loop import adamw
from latentsync.train.state import ResumeError, adapter_path, sidecar_path
from latentsync.train.unet import train_unet

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
PROJECTIONS = ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")


def cheap_config(tiny: Path, clips: Path, *extra: str):
    """The tiny U-Net config on the clips, reconstruction loss only, a checkpoint every step."""
    return unet_config(
        tiny, clips, "run.pixel_space_supervise=false", "run.use_syncnet=false", "ckpt.save_ckpt_steps=1", *extra
    )


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def logged_losses(run: Path) -> list[float]:
    lines = (run / "logs" / "metrics.jsonl").read_text().splitlines()
    return [row["total"] for row in map(json.loads, lines) if row.get("split") == "train" and "total" in row]


def test_choices_are_checked_when_the_config_loads() -> None:
    stage2 = REPO / "configs/unet/stage2.yaml"
    cfg = load_config(stage2)
    assert (cfg.train.optimizer, cfg.train.lora_base_dtype) == ("adamw", "fp32")  # official by default
    with pytest.raises(ConfigError, match=r"train\.optimizer='adam8'.*adamw_8bit"):
        load_config(stage2, ["train.optimizer=adam8"])
    with pytest.raises(ConfigError, match=r"train\.lora_base_dtype='half'.*bf16"):
        load_config(stage2, ["train.lora_base_dtype=half"])
    with pytest.raises(ConfigError, match=r"train\.optimizer='sgd'"):
        load_config(REPO / "configs/syncnet/syncnet_16_pixel_attn.yaml", ["train.optimizer=sgd"])


def test_fused_adamw_makes_the_official_update() -> None:
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(32)]
    grads = [[torch.randn_like(t) for t in start] for _ in range(3)]
    results = []
    for kind in ("adamw", "adamw_fused"):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = adamw(params, lr=1e-2, kind=kind)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            optimizer.step()
        results.append(params)
    official, fused = results
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(official, fused))
    assert not torch.equal(official[0], start[0])


def test_8bit_adamw_without_bitsandbytes_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "bitsandbytes.optim", None)
    with pytest.raises(LatentSyncError, match=r"adamw_8bit needs bitsandbytes.*pip install"):
        adamw([torch.nn.Parameter(torch.zeros(3))], lr=1e-3, kind="adamw_8bit")


@pytest.mark.slow
def test_8bit_adamw_trains_and_resumes_exactly(tiny_training: Path, aligned_clips: Path, tmp_path: Path) -> None:
    """train.optimizer=adamw_8bit on the CPU: 8-bit moments in the sidecar, and 1 + 1 steps equal 2 bit for bit."""
    pytest.importorskip("bitsandbytes")

    def run(steps: int, folder: str, resume: str | None = None):
        cfg = cheap_config(tiny_training, aligned_clips, f"run.max_train_steps={steps}", "train.optimizer=adamw_8bit")
        return train_unet(cfg, tmp_path / folder, resume, progress=False)

    straight = run(2, "a")
    run(1, "b")
    resumed = run(2, "b", "auto")
    a, b = state_dict(straight.last_checkpoint), state_dict(resumed.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = state_dict(Path(cheap_config(tiny_training, aligned_clips).ckpt.resume_ckpt_path))
    assert any(not torch.equal(a[k], start[k]) for k in a)
    moments = torch.load(sidecar_path(straight.last_checkpoint), weights_only=False)["optimizer"]["state"]
    dtypes = {s["__bnb_optimizer_quant_state__"]["state1"].dtype for s in moments.values()}
    assert torch.uint8 in dtypes  # the larger tensors' moments are 8-bit (under 4096 elements they stay fp32)
    assert all(torch.isfinite(torch.tensor(loss)) for loss in logged_losses(tmp_path / "a"))
    # resuming into another optimizer is an error naming both, not a KeyError at the first step
    cfg = cheap_config(tiny_training, aligned_clips, "run.max_train_steps=3", "train.optimizer=adamw")
    with pytest.raises(ResumeError, match=r"AdamW8bit.*torch\.optim\.adamw\.AdamW"):
        train_unet(cfg, tmp_path / "b", "auto", progress=False)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_lora_over_a_half_precision_base(dtype: str, tiny_training: Path, aligned_clips: Path, tmp_path: Path) -> None:
    """train.lora_base_dtype: the adapters train over the half-precision U-Net, and the merged checkpoint is the
    exact fp32 starting weights plus the adapters (not their half-precision rounding)."""
    from latentsync import cli

    cfg = cheap_config(
        tiny_training, aligned_clips, "run.max_train_steps=2", "train.lora_rank=4", f"train.lora_base_dtype={dtype}"
    )
    result = train_unet(cfg, tmp_path / "run", progress=False)
    losses = logged_losses(tmp_path / "run")
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    merged, start = state_dict(result.last_checkpoint), state_dict(Path(cfg.ckpt.resume_ckpt_path))
    assert merged.keys() == start.keys() and all(v.dtype == torch.float32 for v in merged.values())
    changed = {k for k in merged if not torch.equal(merged[k], start[k])}
    assert changed and all(k.endswith(PROJECTIONS) for k in changed)  # the frozen base is bit for bit the start
    adapter = adapter_path(result.last_checkpoint)
    adapters = torch.load(adapter, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for v in adapters.values())
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in adapters.items())  # trained
    # `train merge` folds the adapter file into the fp32 starting U-Net: the run's own checkpoint again
    out = tmp_path / "merged.pt"
    command = ["train", "merge", "--config", str(tiny_training / "unet_tiny.yaml"), *overrides(tiny_training, "unet")]
    assert cli.main([*command, "--lora", str(adapter), "--output", str(out)]) == 0
    written = torch.load(out, weights_only=True)
    assert set(written) == {"state_dict", "global_step"} and written["global_step"] == 2
    assert written["state_dict"].keys() == merged.keys()
    assert all(
        v.dtype == torch.float32 and torch.allclose(v, merged[k], atol=1e-6) for k, v in written["state_dict"].items()
    )


def test_merge_refuses_what_is_not_an_adapter(tiny_training: Path, tmp_path: Path) -> None:
    from latentsync import cli

    start = dict(item.split("=", 1) for item in overrides(tiny_training, "unet"))["ckpt.resume_ckpt_path"]
    out = tmp_path / "merged.pt"
    command = ["train", "merge", "--config", str(tiny_training / "unet_tiny.yaml"), *overrides(tiny_training, "unet")]
    assert cli.main([*command, "--lora", start, "--output", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.iterdir())


def test_store_base_halves_only_the_frozen_weights() -> None:
    from latentsync.train.lora import add_lora, merged_state_dict, store_base

    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"attn": torch.nn.ModuleDict({"to_q": torch.nn.Linear(8, 8)})})
    exact = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, rank=2, alpha=2.0)
    kept = store_base(model, "bf16")
    assert kept is not None and all(v.dtype == torch.float32 for v in kept.values())
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert all((d == torch.float32) == (".lora_" in n) for n, d in dtypes.items())
    merged = merged_state_dict(model, kept)  # lora_B starts at zero: the exact weights come back
    assert merged.keys() == exact.keys() and all(torch.equal(merged[k], exact[k]) for k in exact)
    assert store_base(torch.nn.Linear(2, 2), "fp32") is None
