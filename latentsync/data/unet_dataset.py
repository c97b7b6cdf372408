"""U-Net training samples: 16 target frames, their masked copy, 16 reference frames, audio features and mel.

Official semantics: clips of at least 48 frames; a uniform start; a reference window of the same clip that does
not overlap the target; the fixed mask of `data.mask_image_path` (1 keeps, 0 is the mouth); the Whisper features
of the clip's own audio windowed as inference windows them; the SyncNet mel window of the target frames.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from latentsync.audio.chunks import training_window
from latentsync.data.base import ClipDataset
from latentsync.data.clips import ClipReader, unet_windows
from latentsync.data.feature_cache import FeatureCache
from latentsync.data.latent_cache import LatentCache
from latentsync.data.sources import Clip, DataError, list_clips
from latentsync.faces.mask import MASK_SHAPES, fixed_mask


def mask_variant(mask_image_path: str) -> str:
    """The built-in mask named by an official `mask_image_path` (its file stem: mask, mask2, mask3, mask4)."""
    stem = Path(mask_image_path).stem
    return stem if stem in MASK_SHAPES else "mask"


def whisper_tag(path: str | Path) -> str:
    """Cache tag of a Whisper checkpoint: its name, size and mtime (another model never reads these features)."""
    if not Path(path).is_file():
        raise DataError(f"Whisper checkpoint {path} not found (weights.whisper); fetch it with `latentsync download`")
    stat = Path(path).stat()
    return f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns}"


class UNetDataset(ClipDataset):
    def __init__(self, clips: list[Clip], cfg: DictConfig, seed: int) -> None:
        data = cfg.data
        self.num_frames = int(data.num_frames)
        self.audio_dropout = float(cfg.train.audio_dropout)
        self.with_audio = bool(cfg.model.add_audio_layer)
        self.mask = torch.from_numpy(fixed_mask(int(data.resolution), mask_variant(data.mask_image_path)))[None]
        whisper = cfg.weights.whisper
        reader = ClipReader(
            int(data.resolution),
            min_frames=3 * self.num_frames,
            mel_cache=FeatureCache(data.audio_mel_cache_dir or None, "syncnet_mel"),
            embeds_cache=FeatureCache(data.audio_embeds_cache_dir or None, "whisper", whisper_tag(whisper))
            if self.with_audio
            else None,
            whisper=whisper,
        )
        super().__init__(clips, reader, seed)
        self.latents = (
            LatentCache(cfg.train.latent_cache_dir, cfg.weights.vae, self.mask) if cfg.train.latent_cache_dir else None
        )

    @classmethod
    def from_config(cls, cfg: DictConfig) -> UNetDataset:
        return cls(list_clips(cfg.data.train_fileslist, cfg.data.train_data_dir), cfg, int(cfg.run.seed))

    def sample(self, clip: Clip, rng: random.Random) -> dict[str, Any]:
        with self.reader.open(clip) as source:
            start, ref_start = unet_windows(rng, len(source), self.num_frames)
            mel = self.reader.mel_window(clip, start)
            gt = self.reader.frames(clip, source, start, self.num_frames)
            ref = self.reader.frames(clip, source, ref_start, self.num_frames)
            if self.latents is not None:
                moments = self.latents.moments(clip, lambda: self.reader.frames(clip, source, 0, len(source)))
        item: dict[str, Any] = {"gt": gt, "ref": ref, "mask": self.mask.expand(self.num_frames, -1, -1, -1), "mel": mel}
        if self.latents is not None:
            window, ref_window = slice(start, start + self.num_frames), slice(ref_start, ref_start + self.num_frames)
            item["gt_moments"] = moments["frames"][window].float()
            item["masked_moments"] = moments["masked"][window].float()
            item["ref_moments"] = moments["frames"][ref_window].float()
        if self.with_audio:
            embeds = training_window(self.reader.embeds(clip), start, self.num_frames).float()
            if self.audio_dropout and rng.random() < self.audio_dropout:
                embeds = torch.zeros_like(embeds)
            item["audio_embeds"] = embeds
        return item
