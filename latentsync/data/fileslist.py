"""The training file list: one absolute clip path a line, sorted, the format of the official `train_fileslist`."""

from __future__ import annotations

from pathlib import Path

from latentsync.errors import InvalidArgumentError

from .preprocess import manifest
from .preprocess.video import CLIPS


def kept_clips(out_dir: str | Path) -> list[Path]:
    """The clips the manifest of OUT_DIR keeps, absolute and sorted."""
    out = Path(out_dir).resolve()
    records = manifest.load(out)
    if not records:
        raise InvalidArgumentError(f"{out_dir}: no manifest here; run `latentsync preprocess RAW_DIR {out_dir}` first")
    clips = (
        out / CLIPS / segment["clip"]
        for record in records.values()
        for segment in record["segments"]
        if segment["state"] == "kept"
    )
    return sorted(clip for clip in clips if clip.is_file())


def fileslist(out_dir: str | Path) -> str:
    return "".join(f"{clip}\n" for clip in kept_clips(out_dir))
