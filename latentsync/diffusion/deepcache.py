"""DeepCache (Ma et al., 2024): a sampling policy that reuses the deep U-Net features between denoising steps."""

from __future__ import annotations

import torch


class DeepCache:
    """Which denoising steps run the whole U-Net, and the features kept from the last one that did.

    Every `interval`-th step runs the whole U-Net and keeps the input of the last layer of the last up stage; the
    steps in between run only conv_in, that last layer (on the kept features and the fresh conv_in skip) and the
    output convolution. This is DeepCache's shallowest branch (cache_branch_id 0), which the official
    `--enable_deepcache` uses with interval 3. Call `step(i)` before each denoising step and `reset()` before a new
    chunk.
    """

    def __init__(self, interval: int = 3) -> None:
        if interval < 1:
            raise ValueError(f"DeepCache interval must be at least 1, not {interval}")
        self.interval = interval
        self.reset()

    def reset(self) -> None:
        self.features: torch.Tensor | None = None
        self.refresh = True

    def step(self, index: int) -> None:
        self.refresh = index % self.interval == 0 or self.features is None
