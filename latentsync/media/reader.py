"""Streaming RGB frames of a video, retimed to a constant frame rate and turned upright."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .probe import VideoInfo, open_video, probe, upright
from .retime import retime


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
                frames = retime(self._timed(frames, stream), self.fps)
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

    def _timed(
        self, frames: Iterator[av.VideoFrame], stream: av.VideoStream
    ) -> Iterator[tuple[av.VideoFrame, Fraction, Fraction]]:
        """Attach exact start/end times; a missing pts continues from the previous frame's end and a
        missing duration is one frame at the stream's nominal rate."""
        nominal = 1 / Fraction(stream.average_rate or stream.guessed_rate or self.fps)
        end = Fraction(0)
        for frame in frames:
            start = end if frame.pts is None else frame.pts * frame.time_base
            end = start + (frame.duration * frame.time_base if frame.duration else nominal)
            yield frame, start, end
