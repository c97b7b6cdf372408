"""What a video file holds, learned without decoding more than its first frame."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from latentsync.constants import VIDEO_FPS

from .errors import MediaError


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the first video stream of a file.

    `width`/`height` are the *display* size, i.e. after applying `rotation`, which is the
    counter-clockwise turn (0, 90, 180 or 270 degrees) the stored pixels need to be upright.
    `frame_count` is the container's count, or `round(duration * fps)` when it has none
    (`frame_count_exact` tells which).
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    frame_count_exact: bool
    duration: float
    has_audio: bool
    rotation: int
    codec: str

    def frames_at(self, fps: float | Fraction = VIDEO_FPS) -> int:
        """How many frames a reader retimed to `fps` yields: duration * fps, halves rounded up."""
        return math.floor(self.duration * fps + 0.5)


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise display rotation in degrees -> number of `np.rot90` quarter turns (0..3)."""
    return round(rotation / 90) % 4


def upright(pixels: np.ndarray, rotation: float) -> np.ndarray:
    """Turn stored pixels (H, W, C) the way the display matrix says, as a C-contiguous array
    (decoded planes carry row padding, which some consumers mishandle)."""
    return np.ascontiguousarray(np.rot90(pixels, quarter_turns(rotation)))


@contextmanager
def open_video(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open `path` for decoding its first video stream; every failure becomes a MediaError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise MediaError(f"{path}: not a readable media file ({error})") from error
    with container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        try:
            yield container, container.streams.video[0]
        except av.error.FFmpegError as error:
            raise MediaError(f"{path}: decoding failed ({error})") from error


def media_duration(path: str | Path) -> float:
    """Seconds of any media file (video or audio), read from its headers without decoding; 0 when it states none.

    Cheaper than `probe` and not limited to video: servers use it to refuse over-long inputs before any work.
    """
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: not a readable media file ({exc})") from exc
    with container:
        if container.duration is not None:
            return container.duration / av.time_base
        stated = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
        return max(stated, default=0.0)


def stated_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    """Seconds the file states for `stream`: its own duration, else the container's (None when neither is stated)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def probe(path: str | Path) -> VideoInfo:
    """Read the stream headers and decode the first frame (to prove there is one and read its rotation)."""
    path = Path(path)
    with open_video(path) as (container, stream):
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise MediaError(f"{path}: video stream has no frame rate")
        first = next(container.decode(stream), None)
        if first is None:
            raise MediaError(f"{path}: video stream has no decodable frames")
        duration = stated_duration(container, stream)
        if duration is None:
            raise MediaError(f"{path}: container states no duration")
        exact = stream.frames > 0
        rotation = quarter_turns(first.rotation) * 90
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=Fraction(fps),
            frame_count=stream.frames if exact else math.floor(duration * fps + 0.5),
            frame_count_exact=exact,
            duration=duration,
            has_audio=bool(container.streams.audio),
            rotation=rotation,
            codec=stream.codec_context.name,
        )
