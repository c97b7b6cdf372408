"""LoRA fine-tuning of the U-Net's attention projections (peft), and applying an adapter to a loaded U-Net.

With `train.lora_rank` > 0 the U-Net's own weights stay frozen and low-rank adapters are trained on the q/k/v/out
projections of the attention layers the config's `trainable_modules` select (every attention layer in stage 1):
a few MB instead of gigabytes of optimizer state. Checkpoints stay official files with the adapters merged in, and
an adapter file (`checkpoint-<step>.lora.pt`) beside each one applies to the starting U-Net with `infer --lora`.

`train.lora_base_dtype` fp16/bf16 stores the frozen U-Net in half precision (half the weight memory: 2.6 GB less for
stage 2), while the adapters and their optimizer stay fp32; the forward runs under the run's autocast as before.
The merged checkpoints still add the adapters to the exact fp32 starting weights, kept on the host by the saving rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from latentsync.models.loading import CheckpointError

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER = "default"
BASE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def add_lora(
    unet: torch.nn.Module, rank: int, alpha: float, within: Sequence[str] = ()
) -> list[tuple[str, torch.nn.Parameter]]:
    """Inject adapters into the attention projections under `within` (substrings; empty: all); return them."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = [
        name
        for name, _ in unet.named_modules()
        if name.endswith(tuple(f".{p}" for p in PROJECTIONS)) and (not within or any(w in name for w in within))
    ]
    if not targets:
        raise CheckpointError(f"no attention projection matches {list(within)} for LoRA")
    # peft annotates lora_alpha as int, but it is only used in the float scale alpha / r
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets)  # type: ignore[arg-type]
    inject_adapter_in_model(config, unet)
    unet.requires_grad_(False)
    trained = [(n, p) for n, p in unet.named_parameters() if ".lora_" in n]
    for _, p in trained:
        p.requires_grad_(True)
    return trained


def store_base(unet: torch.nn.Module, dtype: str, keep_fp32: bool = True) -> dict[str, torch.Tensor] | None:
    """Store the frozen (non-adapter) parameters of a U-Net with adapters in `dtype` (`train.lora_base_dtype`).

    Returns their fp32 values on the host, for `merged_state_dict` (only where `keep_fp32`: the saving rank), or
    None when nothing changed (fp32).
    """
    half = BASE_DTYPES[dtype]
    if half == torch.float32:
        return None
    kept = None
    if keep_fp32:
        kept = {k: v.detach().to("cpu", copy=True) for k, v in unet.state_dict().items() if ".lora_" not in k}
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if ".lora_" not in name and param.is_floating_point():
                param.data = param.data.to(half)
    return kept


def merged_state_dict(unet: torch.nn.Module, base: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The U-Net's official-layout state dict (fp32, CPU) with every adapter merged into its projection.

    `base`: the fp32 weights `store_base` kept, used instead of the model's half-precision copies.
    """
    from peft.tuners.lora import LoraLayer

    deltas = {
        # every concrete LoraLayer (Linear, Conv, Embedding) defines get_delta_weight; the base class doesn't declare it
        f"{name}.weight": module.get_delta_weight(ADAPTER)  # type: ignore[attr-defined]
        for name, module in unet.named_modules()
        if isinstance(module, LoraLayer)
    }
    state = {}
    for name, value in unet.state_dict().items():
        if ".lora_" in name:
            continue
        value = base[name] if base is not None else value
        key = name.replace(".base_layer.", ".")
        value = value.detach().float().cpu()
        state[key] = value + deltas[key].float().cpu() if key in deltas else value
    return state


def adapter_payload(unet: torch.nn.Module, rank: int, alpha: float, step: int) -> dict[str, Any]:
    weights = {k: v.detach().float().cpu() for k, v in unet.state_dict().items() if ".lora_" in k}
    return {"lora": {"rank": rank, "alpha": alpha}, "state_dict": weights, "global_step": step}


def merge_adapter_file(unet: torch.nn.Module, path: str | Path) -> int:
    """Merge the adapters of `path` (written by training) into a loaded U-Net's weights; returns how many."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        rank, alpha = payload["lora"]["rank"], payload["lora"]["alpha"]
        adapters = payload["state_dict"]
    except Exception as exc:  # noqa: BLE001 - unreadable or foreign file alike
        raise CheckpointError(f"--lora {path}: not a LoRA adapter file written by `latentsync train` ({exc})") from None
    params: dict[str, torch.Tensor] = dict(unet.named_parameters())
    suffix = f".lora_A.{ADAPTER}.weight"
    merged = 0
    with torch.no_grad():
        for key, down in adapters.items():
            if not key.endswith(suffix):
                continue
            prefix = key.removesuffix(suffix).replace(".base_layer", "")
            target = params.get(f"{prefix}.weight")
            up = adapters[f"{key.removesuffix(suffix)}.lora_B.{ADAPTER}.weight"]
            if target is None or target.shape != (up.shape[0], down.shape[1]):
                raise CheckpointError(f"--lora {path}: adapter {prefix} does not fit this U-Net (another config?)")
            target += (alpha / rank) * (up @ down).to(target.device, target.dtype)
            merged += 1
    return merged


def write_merged_checkpoint(model_config: Any, start: str | Path, adapter: str | Path, output: str | Path) -> Path:
    """Write the official-layout fp32 checkpoint of the U-Net `start` with the adapters of `adapter` merged in.

    `start` is the U-Net the LoRA run started from (its `ckpt.resume_ckpt_path`); the result is what that run's own
    checkpoint at the adapter's step holds, for users who keep only the adapter. Written atomically.
    """
    from latentsync.data.feature_cache import atomic_torch_save
    from latentsync.models.unet import UNet3DConditionModel
    from latentsync.train.state import official_state_dict

    unet = UNet3DConditionModel.from_pretrained(model_config, start)
    merge_adapter_file(unet, adapter)
    step = torch.load(adapter, map_location="cpu", weights_only=True).get("global_step", 0)
    output = Path(output)
    atomic_torch_save({"state_dict": official_state_dict(unet), "global_step": step}, output)
    return output
