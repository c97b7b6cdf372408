"""Stage 1: what an input holds. An undecodable file, or one without a video or an audio stream, is dropped with
the reason; the file itself is only ever read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync.audio import AudioError, load_audio
from latentsync.media import MediaError, VideoInfo, probe

from ..settings import SAMPLE_RATE


class Dropped(Exception):
    """An input or segment leaves the pipeline at `stage` for `reason` (a manifest entry, not an error)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def open_input(path: Path) -> tuple[VideoInfo, np.ndarray]:
    """The video's facts and its whole audio track, 16 kHz mono float32 (a minute is 3.8 MB)."""
    try:
        info = probe(path)
    except MediaError as error:
        raise Dropped("probe", _without_path(error, path)) from None
    if not info.has_audio:
        raise Dropped("probe", "no audio stream")
    try:
        audio = load_audio(path, SAMPLE_RATE)
    except AudioError as error:
        raise Dropped("probe", _without_path(error, path)) from None
    return info, audio


def _without_path(error: Exception, path: Path) -> str:
    """The error message without the leading file name (the manifest line names the input already)."""
    text = str(error)
    prefix = f"{path}: "
    return text.removeprefix(prefix)
