"""`latentsync train cache`: compute every clip's cached audio features before a run, in parallel.

Workers are DataLoader processes (each with its own Whisper encoder and, with `train.latent_cache_dir`, VAE on the
CPU); under torchrun each rank fills its share of the clips. Clips that cannot be read are counted, not fatal.
"""

from __future__ import annotations

from collections import Counter

from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from latentsync.data.clips import ClipError
from latentsync.data.syncnet_dataset import SyncNetDataset
from latentsync.data.unet_dataset import UNetDataset


class _Fill(Dataset):
    def __init__(self, dataset: UNetDataset | SyncNetDataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> str:
        clip, reader = self.dataset.clips[self.indices[i]], self.dataset.reader
        try:
            reader.mel(clip)
            if reader.embeds_cache is not None:
                reader.embeds(clip)
            latents = getattr(self.dataset, "latents", None)
            if latents is not None:
                with reader.open(clip) as source:
                    latents.moments(clip, lambda: reader.frames(clip, source, 0, len(source)))
        except ClipError as exc:
            return exc.reason
        return "cached"


def fill_caches(cfg: DictConfig, kind: str, workers: int = 0, rank: int = 0, world: int = 1) -> Counter[str]:
    """Fill the caches the `kind` ("unet" or "syncnet") trainer reads; returns how many clips ended how."""
    dataset = UNetDataset.from_config(cfg) if kind == "unet" else SyncNetDataset.from_config(cfg)
    fill = _Fill(dataset, list(range(rank, len(dataset), world)))
    loader = DataLoader(fill, batch_size=None, num_workers=workers)
    return Counter(loader)
