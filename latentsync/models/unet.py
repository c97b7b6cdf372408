"""The audio-conditioned 3D U-Net of LatentSync, loadable from the official `latentsync_unet.pt`.

Shape conventions: `sample` is (batch, 13, frames, h, w), the noisy latent (4) + mask (1) + masked-frame
latent (4) + reference latent (4); audio embeddings are (batch * frames, tokens, width) batch-major, or
(batch, frames, tokens, width) as training passes them. The output is the noise prediction (batch, 4, f, h, w).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from diffusers.models.attention_processor import Attention, AttentionProcessor
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.utils import BaseOutput
from torch import nn

from .loading import LoadReport, load_into, read_checkpoint
from .resnet import InflatedConv3d
from .unet_blocks import DownBlock3D, LevelOptions, UNetLevel, UNetMidBlock3DCrossAttn, UpBlock3D
from .unet_config import DOWN_TYPES, UP_TYPES, UNetConfig

if TYPE_CHECKING:
    from latentsync.diffusion.deepcache import DeepCache

logger = logging.getLogger(__name__)


@dataclass
class UNet3DConditionOutput(BaseOutput):
    sample: torch.Tensor


class UNet3DConditionModel(nn.Module):
    """LatentSync's denoiser: SD-1.5 shaped U-Net, per-frame convs, audio cross-attention, motion modules."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        channels = config.block_out_channels
        heads = config.heads()
        temb_dim = channels[0] * 4
        motion_kwargs = asdict(config.motion_module_kwargs)
        motion_kwargs["attention_block_types"] = tuple(motion_kwargs["attention_block_types"])
        opts = LevelOptions(
            temb_channels=temb_dim,
            norm_groups=config.norm_num_groups,
            norm_eps=config.norm_eps,
            time_embedding_norm=config.resnet_time_scale_shift,
            cross_attention_dim=config.cross_attention_dim if config.add_audio_layer else None,
            motion_kwargs=motion_kwargs,
        )

        def motion_at(level: int, decoder: bool) -> bool:
            wanted = config.use_motion_module and 2**level in config.motion_module_resolutions
            return wanted and (decoder or not config.motion_module_decoder_only)

        self.conv_in = InflatedConv3d(config.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], config.flip_sin_to_cos, config.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], temb_dim)

        last = len(channels) - 1
        self.down_blocks = nn.ModuleList(
            DownBlock3D(
                opts,
                channels[max(i - 1, 0)],
                channels[i],
                config.layers_per_block,
                heads[i] if DOWN_TYPES[kind] else None,
                motion_at(i, decoder=False),
                add_downsample=i < last,
                downsample_padding=config.downsample_padding,
            )
            for i, kind in enumerate(config.down_block_types)
        )
        rev_channels, rev_heads = channels[::-1], heads[::-1]
        self.up_blocks = nn.ModuleList(
            UpBlock3D(
                opts,
                rev_channels[min(i + 1, last)],
                rev_channels[i],
                rev_channels[max(i - 1, 0)],
                config.layers_per_block + 1,
                rev_heads[i] if UP_TYPES[kind] else None,
                motion_at(last - i, decoder=True),
                add_upsample=i < last,
            )
            for i, kind in enumerate(config.up_block_types)
        )
        self.mid_block = UNetMidBlock3DCrossAttn(
            opts,
            channels[-1],
            heads[-1],
            config.use_motion_module and config.motion_module_mid_block,
            config.mid_block_scale_factor,
        )
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = InflatedConv3d(channels[0], config.out_channels, kernel_size=3, padding=1)

        # A fresh model predicts exactly zero, so that training starts from a neutral point.
        for conv in (self.conv_in, self.conv_out):
            nn.init.zeros_(conv.weight)
            assert conv.bias is not None  # both are built with a bias
            nn.init.zeros_(conv.bias)

    # ----------------------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: UNetConfig | Mapping[str, Any], source: str | None = None) -> UNet3DConditionModel:
        """Build from the `model:` section of an official U-Net config (dict, OmegaConf node or UNetConfig)."""
        return cls(UNetConfig.from_any(config, source))

    @classmethod
    def from_pretrained(
        cls,
        config: UNetConfig | Mapping[str, Any],
        ckpt_path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        strict: bool = True,
    ) -> UNet3DConditionModel:
        """Build from `config` and load an official `latentsync_unet.pt` (or a checkpoint of ours).

        A stage-1 checkpoint loads into a stage-2 model: its motion modules keep their (zero-output) initial
        values. Any other missing, unexpected or mis-shaped key raises with `strict`, else is logged; the full
        report stays on `model.load_report`.
        """
        model = cls.from_config(config)
        model.load_checkpoint(ckpt_path, strict=strict)
        return model.to(device=device, dtype=dtype).eval()

    def load_checkpoint(self, ckpt_path: str | Path, strict: bool = True) -> LoadReport:
        """Load a checkpoint file (see `from_pretrained`); without `strict`, as the official trainer starts from
        one: by name, the layers the official loader re-initialises left out (`official_reshaped`)."""
        state_dict, extra = read_checkpoint(ckpt_path)
        has_motion = any("motion_modules." in k for k in state_dict)
        allowed = () if has_motion else ("motion_modules.",)
        reshaped = [] if strict else self.official_reshaped(state_dict)
        report = load_into(self, state_dict, str(ckpt_path), strict=strict, allowed_missing=allowed, reshaped=reshaped)
        report.global_step = extra.get("global_step")
        self.load_report = report
        return report

    def official_reshaped(self, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
        """The keys the official loader drops so that their layers keep their initial values: conv_in (weight and
        bias) of another input channel count, conv_out of another output count, and the cross-attention key/value
        projections of another audio width (`UNet3DConditionModel.load_state_dict` of the official code)."""
        config, dropped = self.config, []
        conv_in, conv_out = state_dict.get("conv_in.weight"), state_dict.get("conv_out.weight")
        if conv_in is not None and conv_in.shape[1] != config.in_channels:
            dropped += [k for k in ("conv_in.weight", "conv_in.bias") if k in state_dict]
        if conv_out is not None and conv_out.shape[0] != config.out_channels:
            dropped += [k for k in ("conv_out.weight", "conv_out.bias") if k in state_dict]
        return dropped + [
            k
            for k, v in state_dict.items()
            if ("attn2.to_k." in k or "attn2.to_v." in k) and v.ndim == 2 and v.shape[1] != config.cross_attention_dim
        ]

    # ----------------------------------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.conv_in.weight.device

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each resnet/transformer/motion module in the backward pass instead of storing activations."""
        for module in self.modules():
            if isinstance(module, UNetLevel):
                module.gradient_checkpointing = enabled

    def set_attn_processor(self, processor: AttentionProcessor) -> None:
        """Use one diffusers attention processor (e.g. AttnProcessor2_0, XFormersAttnProcessor) everywhere."""
        for module in self.modules():
            if isinstance(module, Attention):
                # diffusers annotates set_processor's argument as AttnProcessor, yet it takes any AttentionProcessor
                module.set_processor(processor)  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int | float,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
        deep_cache: DeepCache | None = None,
    ) -> UNet3DConditionOutput | tuple[torch.Tensor]:
        audio = encoder_hidden_states
        if audio is not None:
            if not self.config.add_audio_layer:
                raise ValueError("this U-Net config has no audio layer (add_audio_layer: false); pass no audio")
            if audio.dim() == 4:  # (b, f, tokens, width) -> (b * f, tokens, width), batch-major
                audio = audio.flatten(0, 1)
            audio = audio.to(self.dtype)
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0

        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0]) if t.numel() == 1 else t.to(sample.device)
        temb = self.time_embedding(self.time_proj(t).to(self.dtype))

        x = self.conv_in(sample)
        if deep_cache is not None and not deep_cache.refresh:
            last = cast(UpBlock3D, self.up_blocks[-1])
            x = last(deep_cache.features, [x], temb, audio, layers=range(len(last.resnets) - 1, len(last.resnets)))
        else:
            x = self._full_pass(x, temb, audio, sample.shape[-2:], deep_cache)

        out = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return UNet3DConditionOutput(sample=out) if return_dict else (out,)

    def _full_pass(
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        audio: torch.Tensor | None,
        size: torch.Size,
        deep_cache: DeepCache | None,
    ) -> torch.Tensor:
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, audio)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, audio)

        # Sizes that are not a multiple of the total down factor need explicit upsampling targets.
        odd = any(s % 2 ** (len(self.up_blocks) - 1) for s in size)
        for block in cast("list[UpBlock3D]", self.up_blocks):  # a ModuleList of UpBlock3D
            block_skips = [skips.pop() for _ in block.resnets][::-1]
            upsample_to = tuple(skips[-1].shape[-2:]) if odd and skips else None
            if deep_cache is not None and block is self.up_blocks[-1]:
                n = len(block.resnets)
                x = block(x, block_skips, temb, audio, layers=range(n - 1))
                deep_cache.features = x
                x = block(x, block_skips, temb, audio, layers=range(n - 1, n))
            else:
                x = block(x, block_skips, temb, audio, upsample_to)
        return x
