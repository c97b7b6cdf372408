"""SyncNet training samples: 16 frames with the mel window of the first 16, in sync (y = 1) or visually shifted.

Official semantics: clips of at least 32 frames; the mel window is always the positive window's; a fair coin picks
the true frames or frames of another start of the same clip (which may overlap them, never equal them). Frames are
whole crops in [-1, 1]; the trainer takes the lower half or encodes latents as the config says.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from omegaconf import DictConfig

from latentsync.data.base import ClipDataset
from latentsync.data.clips import ClipReader, syncnet_windows
from latentsync.data.feature_cache import FeatureCache
from latentsync.data.sources import Clip, list_clips


class SyncNetDataset(ClipDataset):
    def __init__(self, clips: list[Clip], cfg: DictConfig, seed: int) -> None:
        self.num_frames = int(cfg.data.num_frames)
        cache = FeatureCache(cfg.data.audio_mel_cache_dir or None, "syncnet_mel")
        super().__init__(clips, ClipReader(int(cfg.data.resolution), 2 * self.num_frames, cache), seed)

    @classmethod
    def from_config(cls, cfg: DictConfig, split: str = "train") -> SyncNetDataset:
        data = cfg.data
        clips = list_clips(data[f"{split}_fileslist"], data[f"{split}_data_dir"], what=split)
        return cls(clips, cfg, int(cfg.run.seed))

    def sample(self, clip: Clip, rng: random.Random) -> dict[str, Any]:
        with self.reader.open(clip) as source:
            start, wrong = syncnet_windows(rng, len(source), self.num_frames)
            mel = self.reader.mel_window(clip, start)
            in_sync = rng.choice([True, False])
            frames = self.reader.frames(clip, source, start if in_sync else wrong, self.num_frames)
        return {"frames": frames, "mel": mel, "y": torch.tensor([float(in_sync)])}
