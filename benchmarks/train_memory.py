"""Projected GPU memory of one U-Net training step of every official config, measured on a machine without a GPU.

The real training step (`latentsync.train.objectives.unet_loss_terms`, then backward and the AdamW step) runs on
full-size models whose tensors are fakes (torch's FakeTensorMode): shapes, dtypes and no data, so nothing is
computed or allocated. A dispatch mode counts the bytes of live tensor storages (rounded to the CUDA caching
allocator's 512-byte blocks) from the op that makes each until its last tensor dies, as `benchmarks/vram.py` does
for inference: the figure `torch.cuda.max_memory_allocated()` would show.

The fakes live on the CPU device: torch's autograd engine and autocast refuse a fake CUDA device on a machine
without CUDA. Autocast therefore runs as CPU autocast in the same dtype (convolutions, linears and matmuls in
fp16/bf16, norms and losses in fp32, as on CUDA), and attention as the fused CPU kernel's op (output and
log-sum-exp, no score matrix), as flash / memory-efficient attention holds it on a GPU.

What one step holds, as the official `scripts/train_unet.py` builds it (training.md §1.1): the U-Net in fp32 with
gradient checkpointing per the config, fp32 AdamW moments of its trainable parameters (allocated up front: the
steady state after the first step) and their fp32 gradients; the VAE, the frozen SyncNet (syncnet_16_pixel_attn)
and VideoMAE-v2 giant in fp16, LPIPS-VGG in fp32, Whisper (tiny) in fp32 as the official trainer keeps it on the
GPU; a batch of `data.batch_size` clips (the official configs say 1). Weights are random: nothing is read.

Recipes: `official` (fp16 autocast, the config as shipped: CUDA's multi-tensor AdamW, every frame's decoder and
LPIPS activations kept for the backward), `default` (our trainer's default, the same maths: AdamW one tensor at a
time, the clean-latent decode and LPIPS recomputed in the backward 4 frames at a time), and on top of `default`:
`bf16` (autocast bf16, frozen models in bf16), `latents` (precomputed VAE moments in the batch: no encode in the
step), `fused` (`train.optimizer=adamw_fused`: torch's fused AdamW), `8bit` (`train.optimizer=adamw_8bit`:
bitsandbytes' block-wise 8-bit AdamW, its real step on the fake tensors: 1-byte moments plus one fp32 scale per
256 values), `lora` (`train.lora_rank=16`: adapters on the attention projections the trainer picks, base weights
frozen in fp32: no fp32 gradients or moments for the base), `lora_half` (`lora` with
`train.lora_base_dtype=fp16`: the frozen base stored in fp16; the trainer loads every model with the U-Net in fp32
and then halves it, so its `load` column, and the PEAK, count that moment).

NOT counted: the CUDA context and kernels (~0.3-0.5 GB), the caching allocator's reserve and fragmentation
(5-20 %), cuDNN/cuBLAS workspaces, GradScaler's few scalars, the DDP gradient buckets (about the size of the
trainable gradients again, with more than one GPU), the validation pipeline and SyncNet of the official loop.

Run: python benchmarks/train_memory.py [--configs stage2 ...] [--recipes official lora ...] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.utils import logging as diffusers_logging
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vram import (
    ALLOCATOR_BLOCK,
    GIB,
    MARGIN_FACTOR,
    MARGIN_GIB,
    WHISPER_TINY,
    CudaMemory,
    _fake_modules_movable,
    _patched,
)

from latentsync.config import bundled_config, load_config, to_dict
from latentsync.diffusion import load_scheduler
from latentsync.models.auxiliary.videomae import VideoMAEConfig, VideoMAEv2
from latentsync.models.syncnet import StableSyncNet
from latentsync.models.unet import UNet3DConditionModel
from latentsync.models.vae import SD_VAE_CONFIG
from latentsync.train.loop import adamw
from latentsync.train.lora import add_lora, store_base
from latentsync.train.losses import TREPALoss, build_lpips
from latentsync.train.objectives import UNetTrainingModels, trainable_parameters, unet_loss_terms

CONFIGS = ["stage1", "stage1_512", "stage2", "stage2_efficient", "stage2_512"]
RECIPES = ["official", "default", "bf16", "latents", "fused", "8bit", "lora", "lora_half"]
OFFICIAL_README_GB = {"stage1": 23, "stage2": 30, "stage2_efficient": 20, "stage2_512": 55}  # README's table
LORA_RANK = 16
PHASES = ("load", "unet", "decode", "lpips", "trepa", "syncnet", "backward", "step")
DEVICE = "cpu"  # fake tensors; see the module docstring


class FakeMemory(CudaMemory):
    """`vram.CudaMemory` counting every fake tensor's storage (they stand for the GPU's)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, FakeTensor):
                self._hold(t.untyped_storage())
        self.peak = max(self.peak, self.live)
        for name, peak in self._running.items():
            self._running[name] = max(peak, self.live)
        return out

    def hold_tensors(self, tensors: Any) -> None:
        """Count tensors that were made before this mode was entered (the moved weights)."""
        for t in tensors:
            if isinstance(t, FakeTensor):
                self._hold(t.untyped_storage())
        self.peak = max(self.peak, self.live)


def fused_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):  # type: ignore[no-untyped-def]
    """SDPA as a fused kernel holds it: the output and its log-sum-exp, no (queries x keys) matrix."""
    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    return op(query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]


@dataclass
class Row:
    config: str
    recipe: str
    resolution: int
    batch: int
    trainable: int
    weights: int
    optimizer: int
    phases: dict[str, int]
    peak: int
    seconds: float

    @property
    def with_margin(self) -> float:
        return self.peak / GIB * MARGIN_FACTOR + MARGIN_GIB


def build_models(cfg: Any, recipe: str, frozen: torch.dtype) -> UNetTrainingModels:
    """The official set of models on the meta device (no memory), before the fake mode moves them."""
    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(to_dict(cfg.model))
        unet.enable_gradient_checkpointing(bool(cfg.run.enable_gradient_checkpointing))
        vae = AutoencoderKL.from_config(SD_VAE_CONFIG)
        models = UNetTrainingModels(unet, vae, load_scheduler(), None)
        if recipe == "official":
            models.recompute_frames = None
        if cfg.run.pixel_space_supervise:
            vae.enable_gradient_checkpointing()
        if cfg.model.add_audio_layer and cfg.run.use_syncnet:
            sync_cfg = load_config(bundled_config("syncnet/syncnet_16_pixel_attn.yaml"))
            models.syncnet = StableSyncNet(to_dict(sync_cfg.model), gradient_checkpointing=True)
            models.syncnet_resolution = int(sync_cfg.data.resolution)
        if cfg.run.pixel_space_supervise and cfg.run.perceptual_loss_weight != 0:
            models.lpips = build_lpips("vgg")
        if cfg.run.pixel_space_supervise and cfg.run.trepa_loss_weight != 0:
            models.trepa = TREPALoss(VideoMAEv2(VideoMAEConfig(), gradient_checkpointing=True))
    if recipe.startswith("lora"):  # on the layers `latentsync.train.unet` gives adapters
        add_lora(unet, LORA_RANK, LORA_RANK, list(cfg.run.trainable_modules) if cfg.model.use_motion_module else [])
    return models


OPTIMIZERS = {"fused": "adamw_fused", "8bit": "adamw_8bit"}  # the other recipes: `default`'s adamw


def first_step_state(optimizer: torch.optim.Optimizer) -> None:
    """Allocate the optimizer's state as its first step does: the steady state of every later step."""
    for gindex, group in enumerate(optimizer.param_groups):
        for pindex, p in enumerate(group["params"]):
            if hasattr(optimizer, "init_state"):  # bitsandbytes: 8-bit moments and their block scales
                optimizer.init_state(group, p, gindex, pindex)
            else:
                optimizer.state[p] = {
                    "step": torch.tensor(1.0),
                    "exp_avg": torch.zeros_like(p),
                    "exp_avg_sq": torch.zeros_like(p),
                }


def whisper_bytes() -> int:
    """The whole fp32 Whisper tiny that the official trainer keeps on the GPU for the audio features."""
    from whisper.model import AudioEncoder, TextDecoder

    d = WHISPER_TINY
    with torch.device("meta"):
        encoder = AudioEncoder(d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer)
        decoder = TextDecoder(d.n_vocab, d.n_text_ctx, d.n_text_state, d.n_text_head, d.n_text_layer)
    return sum(p.numel() * 4 for part in (encoder, decoder) for p in part.parameters())


def project(name: str, recipe: str) -> Row:
    cfg = load_config(bundled_config(f"unet/{name}.yaml"))
    frozen = torch.bfloat16 if recipe == "bf16" else torch.float16
    models = build_models(cfg, recipe, frozen)
    res, b, f = int(cfg.data.resolution), int(cfg.data.batch_size), int(cfg.data.num_frames)
    started = time.perf_counter()
    memory = FakeMemory()
    with ExitStack() as stack:
        fake_mode = stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        stack.enter_context(_fake_modules_movable(fake_mode))
        stack.enter_context(_patched(F, "scaled_dot_product_attention", fused_attention))
        models.unet.to(DEVICE)
        halved = 0  # bytes the fp16 base gives back after loading: the trainer loads every model, then halves
        if recipe == "lora_half":
            halved = 2 * sum(p.numel() for n, p in models.unet.named_parameters() if ".lora_" not in n)
            store_base(models.unet, "fp16", keep_fp32=False)
        for part in (models.vae, models.syncnet, models.trepa):
            if part is not None:
                part.to(DEVICE, frozen).requires_grad_(False)
        if models.lpips is not None:
            models.lpips.to(DEVICE).requires_grad_(False)
        named = trainable_parameters(models.unet, cfg)
        stack.enter_context(memory)
        every = [models.unet, models.vae, models.syncnet, models.trepa, models.lpips]
        memory.hold_tensors(t for m in every if m is not None for t in [*m.parameters(), *m.buffers()])
        memory.live += whisper_bytes()  # its sparse buffer cannot be faked; it only sits there
        weights = memory.live

        params = [p for _, p in named]
        optimizer: torch.optim.Optimizer
        if recipe == "official":  # CUDA's default multi-tensor step
            optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01, foreach=True)
        else:
            with unset_fake_temporarily():  # bitsandbytes builds its quantisation maps from real numbers
                optimizer = adamw(params, 1e-5, kind=OPTIMIZERS.get(recipe, "adamw"))
        first_step_state(optimizer)
        optimizer_bytes = memory.live - weights

        batch = {
            "gt": torch.zeros(b, f, 3, res, res),
            "ref": torch.zeros(b, f, 3, res, res),
            "mask": torch.zeros(b, f, 1, res, res),
            "audio_embeds": torch.zeros(b, f, 50, int(cfg.model.cross_attention_dim)),
            "mel": torch.zeros(b, 1, 80, 52),
        }
        if recipe == "latents":
            for key in ("gt_moments", "masked_moments", "ref_moments"):
                batch[key] = torch.zeros(b, f, 8, res // 8, res // 8)
        autocast = torch.bfloat16 if recipe == "bf16" else torch.float16
        memory.watch(models.unet, "forward", "unet")
        memory.watch(models.vae, "decode", "decode")
        for part in ("lpips", "trepa", "syncnet"):
            if getattr(models, part) is not None:
                memory.watch(getattr(models, part), "forward", part)
        optimizer.zero_grad()
        loss, _ = unet_loss_terms(models, batch, cfg, autocast_dtype=autocast)
        with memory.phase("backward"):
            loss.backward()
        with memory.phase("step"):
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)  # CUDA's default
            optimizer.step()
    trainable = sum(p.numel() for p in params)
    seconds = time.perf_counter() - started
    phases = {"load": weights + halved, **memory.phases}
    peak = max(memory.peak, phases["load"])
    return Row(name, recipe, res, b, trainable, weights, optimizer_bytes, phases, peak, seconds)


def table(rows: list[Row]) -> str:
    head = (
        f"{'config':<17} {'recipe':<9} {'px':>4} {'batch':>5} {'trainable':>11} {'weights':>8} {'optim':>7} "
        f"{' '.join(f'{p:>8}' for p in PHASES)} {'PEAK':>7} {'+margin':>8} {'README':>7} {'vs official':>11}"
    )
    lines = [head, "-" * len(head)]
    official = {r.config: r.peak for r in rows if r.recipe == "official"}
    for r in rows:
        readme = OFFICIAL_README_GB.get(r.config)
        change = f"{100 * (r.peak / official[r.config] - 1):+.0f}%" if r.config in official else "-"
        lines.append(
            f"{r.config:<17} {r.recipe:<9} {r.resolution:>4} {r.batch:>5} {r.trainable:>11,} {r.weights / GIB:8.2f} "
            f"{r.optimizer / GIB:7.2f} {' '.join(f'{r.phases.get(p, 0) / GIB:8.2f}' for p in PHASES)} "
            f"{r.peak / GIB:7.2f} {r.with_margin:8.2f} "
            f"{(str(readme) + ' GB') if readme else '-':>7} {change:>11}"
        )
    return "\n".join(lines)


NOTES = f"""\
GiB (2**30 bytes) of live tensors of one step (forward, backward, gradient clipping, AdamW step); weights = all
models' weights; optim = the optimizer's moments; load = all weights as loading leaves them (lora_half: before the
base is halved); unet .. step = the highest total while that part runs (the forwards of the U-Net, the VAE decode
and the loss networks, then the backward pass, then clipping + AdamW); PEAK = over loading and the step.
+margin = PEAK * {MARGIN_FACTOR:.2f} + {MARGIN_GIB} GiB, a rough whole-card need. README = the GPU memory the
official README gives for training that config (GB as the card shows it: reserved memory, context included). The
allocator block is {ALLOCATOR_BLOCK} bytes."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--recipes", nargs="+", default=RECIPES, choices=RECIPES)
    parser.add_argument("--quick", action="store_true", help="stage1, official and default recipes (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.configs, args.recipes = ["stage1"], ["official", "default"]
    torch.set_num_threads(1)
    diffusers_logging.set_verbosity_error()
    print(f"torch {torch.__version__}, fake tensors (no GPU needed), one U-Net training step per row\n")
    rows = [project(name, recipe) for name in args.configs for recipe in args.recipes]
    print(table(rows))
    print(f"({sum(r.seconds for r in rows):.0f} s)\n")
    print(NOTES)


if __name__ == "__main__":
    main()
