"""Streaming RGB frames of a video, retimed to a constant frame rate and turned upright."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from latentsync.constants import VIDEO_FPS

from .probe import VideoInfo, open_video, probe, upright
from .retime import retime, timed

T = TypeVar("T")


class VideoReader:
    """Decode a video as (H, W, 3) uint8 RGB frames at `fps` (None: every decoded frame, untimed).

    Frame selection follows `retime` (ffmpeg's `fps` filter rule), so 25 fps input read at 25 fps
    comes out unchanged. Each iteration opens the file afresh; dropped source frames are never
    converted to RGB. Every yielded array is C-contiguous, independent and writable (a held frame
    repeats as a copy).

    With `read_ahead` > 0 a background thread decodes up to that many frames ahead of the consumer
    (decoding releases the GIL, so it overlaps the consumer's work), holding at most that many RGB
    frames plus one decoded frame; 0 decodes in the consumer's thread, one frame at a time. A
    decoding error is raised where the frame it cost would have been yielded.
    """

    def __init__(
        self, path: str | Path, fps: float | Fraction | None = VIDEO_FPS, threads: int = 0, read_ahead: int = 4
    ) -> None:
        if read_ahead < 0:
            raise ValueError(f"read_ahead must be >= 0, got {read_ahead}")
        self.path = Path(path)
        self.fps = None if fps is None else Fraction(fps)
        self.threads = threads
        self.read_ahead = read_ahead
        self.info: VideoInfo = probe(self.path)

    def __len__(self) -> int:
        """The frames the header promises (a truncated file yields fewer): for progress bars."""
        return self.info.frame_count if self.fps is None else self.info.frames_at(self.fps)

    def __iter__(self) -> Iterator[np.ndarray]:
        return in_background(self._decode, self.read_ahead) if self.read_ahead else self._decode()

    def _decode(self) -> Generator[np.ndarray, None, None]:
        with open_video(self.path) as (container, stream):
            stream.thread_type = "AUTO"
            stream.thread_count = self.threads
            frames = container.decode(stream)
            if self.fps is not None:
                frames = retime(timed(frames, nominal_frame_duration(stream, self.fps)), self.fps)
            last_frame: av.VideoFrame | None = None
            last_pixels: np.ndarray | None = None
            for frame in frames:
                if frame is last_frame:
                    assert last_pixels is not None  # set together with last_frame
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


def in_background(produce: Callable[[], Generator[T, None, None]], depth: int) -> Iterator[T]:
    """The items of `produce()`, which runs in a background thread up to `depth` items ahead.

    An exception in the producer is raised here, after the items before it. Closing this generator
    early (a `break` in the consumer's loop) stops and closes the producer before returning, so the
    resources it holds are released then.
    """
    items: queue.Queue[tuple[bool, object]] = queue.Queue(depth)  # (is the end, item or the producer's error)
    stop = threading.Event()

    def run() -> None:
        source = produce()
        try:
            for item in source:
                items.put((False, item))
                if stop.is_set():
                    return
            items.put((True, None))
        except BaseException as error:  # handed to the consumer's thread
            items.put((True, error))
        finally:
            source.close()

    worker = threading.Thread(target=run, name="read ahead", daemon=True)
    worker.start()
    try:
        while True:
            end, item = items.get()
            if end:
                if item is not None:
                    raise item  # type: ignore[misc]
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting for room, until it sees `stop`
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.01)
        worker.join()
