"""Disk caches of per-clip audio features (Whisper feature arrays, SyncNet mels), safe to share between ranks.

An entry's name hashes the clip's path relative to the data root, its size and modification time, and the
producer's tag (e.g. the Whisper checkpoint), so a re-encoded clip or another model never reads a stale entry, and
clips of the same file name in different folders never share one. Entries are written to a temporary name and
renamed, so a reader (another rank, a later run, a crash) sees a whole file or none; a file that fails to load is
deleted and computed again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from latentsync.atomic import atomic_path
from latentsync.data.sources import Clip

T = TypeVar("T")

log = logging.getLogger(__name__)


def atomic_torch_save(obj: object, path: Path) -> None:
    """torch.save that never leaves a half-written file (`atomic_path`)."""
    with atomic_path(path) as temp:
        torch.save(obj, temp)


class FeatureCache:
    """A folder of cached tensors for one kind of feature (`kind` names the subfolder, `tag` the producer)."""

    def __init__(self, folder: str | Path | None, kind: str, tag: str = "") -> None:
        self.folder = Path(folder) / kind if folder else None
        self.kind, self.tag = kind, tag

    def path(self, clip: Clip) -> Path | None:
        if self.folder is None:
            return None
        stat = clip.path.stat()
        key = f"{clip.relative}\n{stat.st_size}\n{stat.st_mtime_ns}\n{self.tag}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:20]
        return self.folder / f"{clip.path.stem[:40]}-{digest}.pt"

    def get(self, clip: Clip, compute: Callable[[], T]) -> T:
        """The cached value (a tensor or dict of tensors) of `clip`, computing and storing it on a miss (no cache
        folder: always computed)."""
        path = self.path(clip)
        if path is not None and path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed
                log.warning("cache entry %s is unreadable (%s); computing it again", path, exc)
                path.unlink(missing_ok=True)
        value = compute()
        if path is not None:
            atomic_torch_save(value, path)
        return value

    def has(self, clip: Clip) -> bool:
        path = self.path(clip)
        return path is not None and path.is_file()
