"""S3FD (Zhang et al. 2017), the face detector of the official sync evaluation and data filter (`sfd_face.pth`).

A VGG-16 trunk with L2-normalised taps at conv3_3, conv4_3 and conv5_3, two extra stages and six anchor heads
(strides 4..128, one square anchor of 4x the stride each). The first head scores three background channels and keeps
their maximum ("max-out"). Layer names follow the official file's keys, which load with no renaming.

`S3FD.detect` batches frames, which the official per-frame loop does not; the boxes are the same: face scores above
the threshold, decoded with variances (0.1, 0.2), non-maximum suppression at 0.3 and then 0.1 IoU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms

from .files import load_strict

# The network was trained on BGR images minus these means; we feed RGB, so the means come reversed.
RGB_MEAN = (123.0, 117.0, 104.0)
STEPS = (4, 8, 16, 32, 64, 128)
ANCHORS = (16, 32, 64, 128, 256, 512)
VARIANCES = (0.1, 0.2)
NMS_HEADS = 0.3  # suppression inside the detection layer
NMS_FINAL = 0.1  # and again over the kept boxes, as the official wrapper does


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnt per-channel scale (initialised to `scale`)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) * self.weight[None, :, None, None]


def _vgg() -> nn.ModuleList:
    layers: list[nn.Module] = []
    channels = 3
    for width, convs, ceil in ((64, 2, False), (128, 2, False), (256, 3, True), (512, 3, False), (512, 3, False)):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil))
    layers += [nn.Conv2d(512, 1024, 3, padding=6, dilation=6), nn.ReLU(), nn.Conv2d(1024, 1024, 1), nn.ReLU()]
    return nn.ModuleList(layers)


class S3FDNet(nn.Module):
    """Returns per-anchor face probabilities (B, A) and box regressions (B, A, 4) for RGB-minus-mean input."""

    TAPS = (16, 23, 30)  # vgg indices after conv3_3, conv4_3 and conv5_3 (with their ReLU)

    def __init__(self) -> None:
        super().__init__()
        self.vgg = _vgg()
        self.L2Norm3_3 = L2Norm(256, 10)
        self.L2Norm4_3 = L2Norm(512, 8)
        self.L2Norm5_3 = L2Norm(512, 5)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1),
                nn.Conv2d(256, 512, 3, 2, padding=1),
                nn.Conv2d(512, 128, 1),
                nn.Conv2d(128, 256, 3, 2, padding=1),
            ]
        )
        widths = (256, 512, 512, 1024, 512, 256)
        self.loc = nn.ModuleList([nn.Conv2d(w, 4, 3, padding=1) for w in widths])
        self.conf = nn.ModuleList([nn.Conv2d(w, 4 if i == 0 else 2, 3, padding=1) for i, w in enumerate(widths)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        sources = []
        norms = (self.L2Norm3_3, self.L2Norm4_3, self.L2Norm5_3)
        start = 0
        for tap, norm in zip(self.TAPS, norms):
            for layer in self.vgg[start:tap]:
                x = layer(x)
            sources.append(norm(x))
            start = tap
        for layer in self.vgg[start:]:
            x = layer(x)
        sources.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x))
            if k % 2 == 1:
                sources.append(x)
        scores, boxes, sizes = [], [], []
        for i, source in enumerate(sources):
            conf = self.conf[i](source)
            if i == 0:  # max-out background
                conf = torch.cat([conf[:, :3].amax(1, keepdim=True), conf[:, 3:]], 1)
            scores.append(conf.permute(0, 2, 3, 1).reshape(len(x), -1, 2))
            boxes.append(self.loc[i](source).permute(0, 2, 3, 1).reshape(len(x), -1, 4))
            sizes.append((source.shape[2], source.shape[3]))
        return torch.cat(scores, 1).softmax(-1)[..., 1], torch.cat(boxes, 1), sizes


def anchors(height: int, width: int, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """(A, 4) anchor centres and sizes (cx, cy, w, h) relative to the image, in the heads' order."""
    rows = []
    for (fh, fw), step, size in zip(sizes, STEPS, ANCHORS):
        ys, xs = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
        cx = (xs.reshape(-1) + 0.5) * step / width
        cy = (ys.reshape(-1) + 0.5) * step / height
        rows.append(torch.stack([cx, cy, torch.full_like(cx, size / width), torch.full_like(cy, size / height)], 1))
    return torch.cat(rows)


class S3FD:
    """Face boxes in frame pixels: `detect(frames)` -> per frame an (k, 5) array of x1, y1, x2, y2, score."""

    def __init__(self, net: S3FDNet, device: str | torch.device = "cpu") -> None:
        self.net = net.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> S3FD:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(load_strict(S3FDNet(), path, "the S3FD face detector's sfd_face.pth"), device)

    @torch.no_grad()
    def detect(self, frames: list[np.ndarray], scale: float = 0.25, threshold: float = 0.9) -> list[np.ndarray]:
        """Detect in RGB uint8 frames of one size, resized by `scale` (bilinear, as cv2 does) before the network."""
        import cv2

        if not frames:
            return []
        height, width = frames[0].shape[:2]
        small = np.stack([cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for f in frames])
        x = torch.from_numpy(small).to(self.device).permute(0, 3, 1, 2).float()
        x -= torch.tensor(RGB_MEAN, device=self.device)[None, :, None, None]
        scores, loc, sizes = self.net(x)
        priors = anchors(x.shape[2], x.shape[3], sizes).to(self.device)
        pixels = torch.tensor([width, height, width, height], device=self.device, dtype=torch.float32)
        out = []
        for score, regression in zip(scores, loc):
            keep = score > threshold
            boxes = decode(regression[keep], priors[keep])
            kept = score[keep]
            order = nms(boxes, kept, NMS_HEADS)
            boxes, kept = boxes[order], kept[order]
            order = nms(boxes, kept, NMS_FINAL)
            out.append(torch.cat([boxes[order] * pixels, kept[order, None]], 1).cpu().numpy().astype(np.float64))
        return out


def decode(regression: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) relative boxes from the heads' offsets to their anchors."""
    centre = priors[:, :2] + regression[:, :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(regression[:, 2:] * VARIANCES[1])
    return torch.cat([centre - size / 2, centre + size / 2], 1)
