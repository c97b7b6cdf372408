"""LoRA adapters (peft) on the U-Net's attention projections, for fine-tuning on a small GPU or little data.

Every attention of the U-Net (spatial self-attention, audio cross-attention and the motion modules' temporal
attention) gets low-rank adapters on its q, k, v and output projections; the base weights stay frozen. The
adapters save on their own (a few MB) and merge back into plain weights, so a merged U-Net has the official
checkpoint layout again.
"""

from __future__ import annotations

import torch
from torch import nn

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def apply_lora(unet: nn.Module, rank: int, alpha: float = 16.0) -> list[tuple[str, nn.Parameter]]:
    """Inject rank-`rank` adapters (scale alpha/rank) into `unet` in place; returns the adapter parameters.

    The adapters' B matrices start at zero, so the U-Net's output is unchanged until training moves them.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=LORA_TARGETS, lora_dropout=0.0)
    inject_adapter_in_model(config, unet)
    return [(name, param) for name, param in unet.named_parameters() if "lora_" in name]


def lora_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights only (what a LoRA checkpoint holds), keyed by their names in the U-Net."""
    return {name: value for name, value in unet.state_dict().items() if "lora_" in name}


def merge_lora(unet: nn.Module) -> nn.Module:
    """Fold the adapters into the base weights and put the plain layers back (official key layout); in place."""
    from peft.tuners.lora import LoraLayer

    layers = [(name, module) for name, module in unet.named_modules() if isinstance(module, LoraLayer)]
    for name, module in layers:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = unet.get_submodule(parent_name) if parent_name else unet
        setattr(parent, child, module.get_base_layer())
    return unet
