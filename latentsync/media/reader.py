"""Streaming RGB frames of a video, retimed to a constant frame rate and turned upright."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .probe import VideoInfo, open_video, probe, upright
from .retime import retime, timed


class VideoReader:
    """Decode a video as (H, W, 3) uint8 RGB frames at `fps` (None: every decoded frame, untimed).

    Frame selection follows `retime` (ffmpeg's `fps` filter rule), so 25 fps input read at 25 fps
    comes out unchanged. Each iteration opens the file afresh and holds at most one decoded frame
    beyond the one being returned; dropped source frames are never converted to RGB. Every yielded
    array is C-contiguous, independent and writable (a held frame repeats as a copy).
    """

    def __init__(self, path: str | Path, fps: float | Fraction | None = 25, threads: int = 0) -> None:
        self.path = Path(path)
        self.fps = None if fps is None else Fraction(fps)
        self.threads = threads
        self.info: VideoInfo = probe(self.path)

    def __iter__(self) -> Iterator[np.ndarray]:
        with open_video(self.path) as (container, stream):
            stream.thread_type = "AUTO"
            stream.thread_count = self.threads
            frames = container.decode(stream)
            if self.fps is not None:
                frames = retime(timed(frames, nominal_frame_duration(stream, self.fps)), self.fps)
            last_frame = last_pixels = None
            for frame in frames:
                if frame is last_frame:
                    yield last_pixels.copy()
                    continue
                pixels = frame.to_ndarray(format="rgb24")
                last_frame, last_pixels = frame, upright(pixels, frame.rotation)
                yield last_pixels

    def iter_chunks(self, size: int) -> Iterator[np.ndarray]:
        """Frames stacked in (n, H, W, 3) arrays of `size` frames (the last one may be shorter)."""
        if size < 1:
            raise ValueError(f"chunk size must be positive, got {size}")
        chunk: list[np.ndarray] = []
        for pixels in self:
            chunk.append(pixels)
            if len(chunk) == size:
                yield np.stack(chunk)
                chunk.clear()
        if chunk:
            yield np.stack(chunk)


def nominal_frame_duration(stream: av.VideoStream, fallback_fps: Fraction) -> Fraction:
    """One frame at the stream's stated rate (`fallback_fps` when it states none): the duration of a
    frame or packet that carries none."""
    return 1 / Fraction(stream.average_rate or stream.guessed_rate or fallback_fps)
