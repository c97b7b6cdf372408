"""HyperIQA (Su et al., CVPR 2020), the no-reference image quality model of the official data filter, with the
KonIQ-10k weights (`koniq_pretrained.pkl`).

A ResNet-50 sees a 224 x 224 crop. Pooled features of its four stages ("local distortion aware" vectors) are
concatenated into a 224-d description of the image, and the last stage's 7 x 7 map drives a hyper network that
writes, per image, the weights of a small target network: four sigmoid layers 224 -> 112 -> 56 -> 28 -> 14 and a
linear output, which maps the description to a quality score on KonIQ's 0-100 scale (higher is better).

The module names follow the official file's keys (`res.*` is torchvision's ResNet-50 without its classifier,
`conv1.*` the hyper network's input convolutions, `fc{i}w_conv` / `fc{i}b_fc` the generators of layer i's weights
and biases), so the file loads unchanged and nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import nn
from torchvision.models import resnet50

from .files import load_strict

CROP = 224  # the only input size: the hyper network's 7 x 7 map and the pooled stage sizes depend on it
FEATURE = 7  # side of ResNet-50's last feature map for a 224 crop
LDA_WIDTH = 16  # each of the first three stages' share of the target network's input
TARGET_WIDTHS = (224, 112, 56, 28, 14)  # the target network's input, then its hidden layers' widths
HYPER_CHANNELS = 112
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet statistics


def _lda_pool(channels: int, reduced: int) -> nn.Sequential:
    """1x1 reduction then 7x7 average pooling: the stage's map as a coarse grid of few channels."""
    return nn.Sequential(nn.Conv2d(channels, reduced, 1, bias=False), nn.AvgPool2d(7, stride=7))


class _Backbone(nn.Module):
    """torchvision's ResNet-50 layers (no classifier) plus the local distortion aware heads of each stage."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        # Stage maps for a 224 crop: 256 x 56², 512 x 28², 1024 x 14², 2048 x 7²; pooled by 7 to 8², 4², 2², 1².
        self.lda1_pool, self.lda1_fc = _lda_pool(256, 16), nn.Linear(16 * 8 * 8, LDA_WIDTH)
        self.lda2_pool, self.lda2_fc = _lda_pool(512, 32), nn.Linear(32 * 4 * 4, LDA_WIDTH)
        self.lda3_pool, self.lda3_fc = _lda_pool(1024, 64), nn.Linear(64 * 2 * 2, LDA_WIDTH)
        self.lda4_pool, self.lda4_fc = nn.AvgPool2d(7, stride=7), nn.Linear(2048, TARGET_WIDTHS[0] - 3 * LDA_WIDTH)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the target network's 224-d input, the last stage's 2048 x 7 x 7 map)."""
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        parts = [self.lda1_fc(self.lda1_pool(x).flatten(1))]
        x = self.layer2(x)
        parts.append(self.lda2_fc(self.lda2_pool(x).flatten(1)))
        x = self.layer3(x)
        parts.append(self.lda3_fc(self.lda3_pool(x).flatten(1)))
        x = self.layer4(x)
        parts.append(self.lda4_fc(self.lda4_pool(x).flatten(1)))
        return torch.cat(parts, 1), x


class HyperIQA(nn.Module):
    """`forward` maps (N, 3, 224, 224) ImageNet-normalised RGB crops to N quality scores (0-100)."""

    def __init__(self) -> None:
        super().__init__()
        self.res = _Backbone()
        self.conv1 = nn.Sequential(
            nn.Conv2d(2048, 1024, 1),
            nn.ReLU(),
            nn.Conv2d(1024, 512, 1),
            nn.ReLU(),
            nn.Conv2d(512, HYPER_CHANNELS, 1),
            nn.ReLU(),
        )
        # Layer i's weight matrix (out x in) comes from a 3x3 convolution of the 7 x 7 map, whose output is read
        # as that matrix in row-major order; its bias, from the map's spatial mean.
        for i, (width_in, width_out) in enumerate(zip(TARGET_WIDTHS, TARGET_WIDTHS[1:]), start=1):
            conv = nn.Conv2d(HYPER_CHANNELS, width_in * width_out // FEATURE**2, 3, padding=1)
            self.add_module(f"fc{i}w_conv", conv)
            self.add_module(f"fc{i}b_fc", nn.Linear(HYPER_CHANNELS, width_out))
        self.fc5w_fc = nn.Linear(HYPER_CHANNELS, TARGET_WIDTHS[-1])
        self.fc5b_fc = nn.Linear(HYPER_CHANNELS, 1)

    def target_network(self, last: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each image's target-network layers, made from the backbone's last map, as (weight (N, out, in), bias
        (N, out)), the output layer last."""
        feature = self.conv1(last)
        pooled = feature.mean((2, 3))
        n = len(last)
        layers = []
        for i, (width_in, width_out) in enumerate(zip(TARGET_WIDTHS, TARGET_WIDTHS[1:]), start=1):
            weight = getattr(self, f"fc{i}w_conv")(feature).reshape(n, width_out, width_in)
            layers.append((weight, getattr(self, f"fc{i}b_fc")(pooled)))
        layers.append((self.fc5w_fc(pooled).reshape(n, 1, -1), self.fc5b_fc(pooled)))
        return layers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (CROP, CROP):
            raise ValueError(f"HyperIQA takes {CROP} x {CROP} crops, got {tuple(images.shape[-2:])}")
        description, last = self.res(images)
        *hidden, (weight, bias) = self.target_network(last)
        q = description
        for w, b in hidden:
            q = torch.sigmoid(torch.bmm(w, q.unsqueeze(-1)).squeeze(-1) + b)
        return (torch.bmm(weight, q.unsqueeze(-1)).squeeze(-1) + bias).squeeze(-1)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> HyperIQA:
        """Load `koniq_pretrained.pkl` (a bare state dict with the keys above); any key that does not fit is an
        error. Files saved before torch 0.4.1 lack the BatchNorm batch counters, which inference does not use."""
        what = "HyperIQA's KonIQ-10k weights, koniq_pretrained.pkl"
        return load_strict(cls(), path, what, allowed_missing=("num_batches_tracked",)).to(device)


def preprocess(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB frames -> the model's input: scaled to 0-1, centre 224 crop, ImageNet-normalised."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return TF.normalize(TF.center_crop(images, [CROP, CROP]), MEAN, STD)


@torch.no_grad()
def score_frames(model: HyperIQA, frames: np.ndarray) -> float:
    """The official clip score: the mean of the frames' scores (fp32, as the keep threshold was set)."""
    device = next(model.parameters()).device
    return float(model(preprocess(frames).to(device)).mean())
