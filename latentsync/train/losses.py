"""The loss terms of LatentSync's training, as the official trainer computes them.

TREPA (VideoMAE-v2 feature distance), LPIPS on the lower half of the face, and the SyncNet loss (binary cross
entropy on the cosine of the vision and audio embeddings). Each takes the shapes the training step has at hand;
the frozen networks are passed in, so nothing here loads or downloads.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

from latentsync.models.auxiliary.videomae import VideoMAEv2
from latentsync.models.loading import CheckpointError
from latentsync.models.syncnet import StableSyncNet

TREPA_SIZE = 224


def sync_cosine(vision: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """(b,) cosine similarity of (b, d) vision and audio embeddings, held at most 1.

    The embeddings are post-ReLU and unit length, so the cosine lies in [0, 1]; one that rounds above 1 (fp16)
    is held at 1, where the official loss stops with an error.
    """
    return F.cosine_similarity(vision, audio, dim=1, eps=1e-8).clamp(max=1.0)


def cosine_bce(vision: torch.Tensor, audio: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample (b,) BCE of the `sync_cosine` of two (b, d) embeddings against labels y (b, 1) in {0, 1}.

    The official SyncNet loss of both trainers; the log is floored at -100 as in `nn.BCELoss`.
    """
    cosine = sync_cosine(vision, audio)
    return F.binary_cross_entropy(cosine.unsqueeze(1), y.to(cosine.dtype), reduction="none").squeeze(1)


def sync_loss(syncnet: StableSyncNet, images: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """The U-Net's sync loss: mean BCE of the cosine against "in sync" for a (b, f*c, H, W) stack and its mel.

    The SyncNet runs in its own dtype (fp16 in the official trainer), outside autocast, with frozen weights;
    gradients reach `images`.
    """
    dtype = next(syncnet.parameters()).dtype
    vision, audio = syncnet(images.to(dtype), mel.to(dtype))
    ones = torch.ones(vision.shape[0], 1, device=vision.device)
    return cosine_bce(vision.float(), audio.float(), ones).mean()


def build_lpips(net: str = "vgg", backbone_path: str | Path | None = None) -> nn.Module:
    """LPIPS v0.1 with the linear heads shipped in the lpips package and the torchvision backbone from a local file.

    `backbone_path` is a torchvision state dict of the backbone (`vgg16-397923af.pth` for "vgg", also "alex" and
    "squeeze"); its `features.*` weights go into lpips' slices, so nothing is downloaded. Frozen, eval mode.
    """
    import lpips

    with warnings.catch_warnings():  # lpips builds the torchvision backbone with the deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if backbone_path is not None:
        path = Path(backbone_path)
        if not path.is_file():
            raise CheckpointError(
                f"LPIPS backbone {path} not found; fetch it with `latentsync download --with-training`"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        slice_of = {
            index: name for name, part in model.net.named_children() for index, _ in part.named_children()
        }  # torchvision feature index -> the lpips slice that holds it
        mapped = {}
        for key, value in state.items():
            parts = key.split(".")
            if parts[0] == "features" and parts[1] in slice_of:
                mapped[f"{slice_of[parts[1]]}.{parts[1]}.{'.'.join(parts[2:])}"] = value
        missing, _ = model.net.load_state_dict(mapped, strict=False)
        if missing:
            raise CheckpointError(f"LPIPS backbone {path} lacks {missing[:3]}...: not a torchvision {net} state dict")
    model.requires_grad_(False)
    return model.eval()


def lpips_lower_half(
    lpips_model: nn.Module, pred: torch.Tensor, target: torch.Tensor, batch: int | None = None
) -> torch.Tensor:
    """Mean LPIPS between the lower halves (rows H//2:) of (n, 3, H, W) frames in [-1, 1], computed in fp32.

    With `batch`, the frames go through LPIPS `batch` at a time under activation checkpointing (recomputed in the
    backward pass, one batch at a time); LPIPS scores every frame on its own, so the mean is the same.
    """
    half = pred.shape[2] // 2
    pred, target = pred[:, :, half:, :], target[:, :, half:, :]

    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return lpips_model(p.float(), t.float()).flatten()

    if batch is None or not torch.is_grad_enabled():
        return score(pred, target).mean()
    parts = [
        cast(torch.Tensor, recompute(score, p, t, use_reentrant=False))
        for p, t in zip(pred.split(batch), target.split(batch), strict=True)
    ]
    return torch.cat(parts).mean()


class TREPALoss(nn.Module):
    """Temporal representation alignment: MSE between unit-length VideoMAE-v2 features of two clips.

    Clips (b, 3, f, H, W) in [-1, 1] are resized bicubically (no antialias) to 224 px in their own dtype, mapped
    to [0, 1] and clamped, without mean/std normalisation, as the official loss does.
    """

    def __init__(self, model: VideoMAEv2) -> None:
        super().__init__()
        self.model = model

    def features(self, videos: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = videos.shape
        frames = videos.transpose(1, 2).reshape(b * f, c, h, w)
        frames = F.interpolate(frames, size=(TREPA_SIZE, TREPA_SIZE), mode="bicubic")
        clips = frames.reshape(b, f, c, TREPA_SIZE, TREPA_SIZE).transpose(1, 2)
        clips = (clips / 2 + 0.5).clamp(0, 1)
        dtype = next(self.model.parameters()).dtype
        return self.model.forward_features(clips.to(dtype))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = F.normalize(self.features(real), p=2, dim=1)
        return F.mse_loss(F.normalize(self.features(fake), p=2, dim=1), target)


def reconstruction_loss(noise_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between predicted and true noise over every latent element (no mask weighting), in fp32."""
    return F.mse_loss(noise_pred.float(), target.float())
