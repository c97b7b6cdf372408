"""Which clips a training run reads: a file list (one path a line) or every video under a folder.

Clips are aligned face crops with their audio track, as data preparation (or the official pipeline) writes them.
Each clip also gets a cache name relative to its data root, so two `00001.mp4` in different folders never share
cached audio (the official caches key on the bare file name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latentsync.errors import LatentSyncError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".webm", ".avi")


class DataError(LatentSyncError, ValueError):
    """Training data that cannot be used: no list or folder given, nothing in it, or no usable clip."""


@dataclass(frozen=True)
class Clip:
    path: Path
    root: Path  # the folder cache keys are relative to (the data folder, or the file list's folder)

    @property
    def relative(self) -> str:
        try:
            return self.path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:  # a listed path outside the list's folder: its absolute path is its name
            return self.path.resolve().as_posix()


def list_clips(fileslist: str | Path = "", data_dir: str | Path = "", what: str = "training") -> list[Clip]:
    """The clips of a file list (relative lines are relative to the list's folder) or, failing that, every video
    under `data_dir` (recursively, sorted). An empty result is a DataError naming the source."""
    if str(fileslist):
        listing = Path(fileslist)
        if not listing.is_file():
            raise DataError(f"{what} file list {listing} not found")
        root = listing.resolve().parent
        lines = [line.strip() for line in listing.read_text().splitlines()]
        clips = [Clip(p if p.is_absolute() else root / p, root) for p in map(Path, lines) if str(p) and str(p) != "."]
        source = f"file list {listing}"
    elif str(data_dir):
        folder = Path(data_dir)
        if not folder.is_dir():
            raise DataError(f"{what} data folder {folder} not found")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        clips = [Clip(p, folder) for p in found]
        source = f"folder {folder}"
    else:
        raise DataError(f"no {what} data: set data.train_fileslist or data.train_data_dir, or pass --data DIR|LIST")
    if not clips:
        raise DataError(f"{source} holds no video clips ({', '.join(VIDEO_SUFFIXES)})")
    return clips


def data_overrides(data: str | Path, prefix: str = "train") -> list[str]:
    """The config overrides that point a run at `data` (a folder, or a file list), for `--data`."""
    path = Path(data)
    if path.is_dir():
        return [f"data.{prefix}_data_dir={path}", f"data.{prefix}_fileslist=''"]
    if path.is_file():
        return [f"data.{prefix}_fileslist={path}", f"data.{prefix}_data_dir=''"]
    raise DataError(f"--data {path}: neither a folder of clips nor a file list")
