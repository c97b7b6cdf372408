"""Random access, by output-slot index, to the frames of a video retimed to a constant rate.

The sync plans play a video forward, from the start again (loop) or backward (bounce), and the
pipeline asks for a few dozen output frames at a time, so the whole video is never held. Where each
output slot's frame sits in the file is learned once from the packets' timestamps (demuxing only,
no decoding); frames are then decoded forward from a cursor, or from the keyframe at or before the
wanted frame when the request lies behind the cursor (or far ahead of it, past a keyframe). A seek
backward also keeps, still in YUV, a bounded number of the frames decoded on the way that lie just
before the request, so that a backward run is served from them until they run out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, cast

import av
import numpy as np

from latentsync.constants import VIDEO_FPS

from .errors import MediaError
from .probe import VideoInfo, open_video, probe, upright
from .reader import nominal_frame_duration
from .retime import spans, timed

# Seeking, then decoding the keyframe, costs about as much as decoding this many frames in sequence
# (1080p HEVC, 2 threads), so a cursor only jumps ahead to a keyframe when that skips more frames.
SEEK_COST_FRAMES = 10

# Frames a seek backward keeps for the requests that follow: three requests of 16 (the pipeline's batch), fewer
# for large frames, so that they take at most REWIND_BYTES as 8-bit YUV 4:2:0 (48 frames at 1080p, 13 at 4K).
REWIND_FRAMES = 48
REWIND_BYTES = 160 * 2**20


class _Stamp(NamedTuple):
    """A packet's timing without its payload, so the whole stream's can be kept and sorted."""

    pts: int | None
    duration: int | None
    time_base: Fraction
    keyframe: bool


@dataclass(frozen=True)
class Timeline:
    """Which frame fills each output slot, and where decoding can start, for one video stream.

    Frames are numbered in presentation order. Frame i has timestamp `pts[i]` (stream time base) and
    fills the output slots `stops[i - 1]` up to `stops[i]` (none when it is dropped), by the rule of
    `retime.spans` with the time origin at the first frame, so the slots are exactly the frames
    `VideoReader` yields. `keyframes` lists the frames decoding can start from (frame 0 always: the
    start of the file is where sequential decoding starts too).
    """

    pts: np.ndarray  # int64, ascending
    stops: np.ndarray  # int64, non-decreasing; stops[-1] is the number of output slots
    keyframes: np.ndarray  # int64, ascending, starting with 0

    @classmethod
    def read(cls, path: str | Path, fps: Fraction) -> Timeline:
        """Demux every packet of the first video stream (no decoding) and lay its frames out at `fps`.

        Costs reading the file once and about 0.03 ms per frame (15 ms for the 20 s demo clips).
        """
        with open_video(path) as (container, stream):
            stamps = [
                _Stamp(packet.pts, packet.duration, packet.time_base, packet.is_keyframe)
                for packet in container.demux(stream)
                if packet.size and not packet.is_discard  # skip the end-of-stream marker and edit-list cuts
            ]
            frame_duration = nominal_frame_duration(stream, fps)
        if not stamps:
            raise MediaError(f"{path}: video stream has no packets")
        if any(stamp.pts is None for stamp in stamps):
            raise MediaError(f"{path}: video packets carry no timestamps, so frames cannot be found by time")
        stamps.sort(key=lambda stamp: cast(int, stamp.pts))  # none is None, checked above
        pts = np.array([stamp.pts for stamp in stamps], np.int64)
        if (repeated := pts[1:][np.diff(pts) == 0]).size:
            raise MediaError(f"{path}: two video frames share the timestamp {repeated[0]}")
        stops = np.fromiter((stop for _, _, stop in spans(timed(stamps, frame_duration), fps)), np.int64, len(stamps))
        keyframes = np.union1d([0], np.flatnonzero([stamp.keyframe for stamp in stamps]))
        return cls(pts, stops, keyframes)

    def __len__(self) -> int:
        return int(self.stops[-1])

    def frames_at(self, slots: np.ndarray) -> np.ndarray:
        """The frame shown in each output slot."""
        return np.searchsorted(self.stops, slots, side="right")

    def keyframe_before(self, frame: int) -> int:
        """The last keyframe at or before `frame`, where decoding must start to reach it."""
        return int(self.keyframes[np.searchsorted(self.keyframes, frame, side="right") - 1])

    def frame_with(self, pts: int | None) -> int | None:
        """The number of the frame stamped `pts`, None when no packet announced such a frame."""
        frame = int(np.searchsorted(self.pts, pts)) if pts is not None else len(self.pts)
        return frame if frame < len(self.pts) and self.pts[frame] == pts else None


@dataclass
class DecodeStats:
    """What the requests have cost so far."""

    decoded: int = 0  # frames taken from the decoder, the passed-over and dropped ones included
    converted: int = 0  # frames converted to RGB (a wanted frame once per time it is decoded or rewound)
    seeks: int = 0  # restarts of decoding at a keyframe, the first start included
    rewound: int = 0  # wanted frames served from the rewind store instead of the decoder
    peak_rewind: int = 0  # the most frames the rewind store has held at once


class FrameSource:
    """The frames `VideoReader(path, fps)` yields, served by position in any order.

    `get(indices)` returns one (H, W, 3) uint8 RGB upright frame per index, in the order asked, each an
    independent writable array with the very pixels `VideoReader` yields at that position. `len()` is
    the exact number of output frames (from `Timeline`, without decoding). Use as a context manager, or
    call `close()`, to release the file between uses.

    Cost: a request whose frames lie ahead of the cursor continues decoding where the previous one
    stopped (frames passed over are decoded but never converted to RGB); one far ahead, past a
    keyframe, seeks forward to skip decoding. A request reaching behind the cursor seeks to the
    keyframe at or before its earliest missing frame m and decodes forward from there, and keeps the
    frames decoded on the way that lie just before m, the last `rewind_frames` of those from the
    keyframe to m - 1, in a rewind store, so the requests of a backward run that follow are served
    from it without seeking. Reading backward in chunks of c frames through keyframe intervals of G
    frames (G is the whole clip when it has a single keyframe), a seek is needed about once per
    c + rewind_frames frames and decodes at most c + G - 1, so each frame shown costs about
    1 + (G/2 - rewind_frames)/(c + rewind_frames) decodes when G/2 exceeds rewind_frames, and 1
    otherwise (no frame is decoded twice), instead of (c + G/2)/c without the store: 2.2 instead of
    8.8 for x264's default G = 250 and c = 16. Frames ahead of the cursor are served before those
    behind it, so a loop's wrap-around costs a single seek. `benchmarks/frames.py` measures both
    passes; `stats` counts the work done.

    Memory: between requests the source holds one RGB frame, the one at the request's last position
    (it is the one the next request starts with when a frame spans several output slots, whichever
    the direction of play), plus the rewind store: at most `rewind_frames` decoded frames in the
    stream's own format, held rather than converted because YUV 4:2:0 takes half the bytes of RGB
    and a kept frame never asked for is never converted: 48 x 3.3 MB = 160 MB at 1080p in 8 bits
    (twice that in 10 bits); by default larger frames get fewer (13 at 4K), `rewind_frames=0` none.
    The store only serves a backward run: each request drops the kept frames at or after its
    earliest frame, and a request that decodes ahead of the cursor without taking from the store or
    seeking back drops them all, so forward play holds the one frame only. During a request the
    source holds the distinct frames asked for in RGB, and the store; the decoder's own reference
    frames (a codec-bounded handful, in YUV) come on top.

    One decoding cursor: use a source from one thread at a time.
    """

    def __init__(
        self, path: str | Path, fps: float | Fraction = VIDEO_FPS, threads: int = 0, rewind_frames: int | None = None
    ) -> None:
        """`rewind_frames`: the rewind store's size (None: REWIND_FRAMES, fewer for frames above 1080p)."""
        if rewind_frames is not None and rewind_frames < 0:
            raise MediaError(f"rewind_frames must be 0 or more, got {rewind_frames}")
        self.path = Path(path)
        self.fps = Fraction(fps)
        self.threads = threads
        self.info: VideoInfo = probe(self.path)
        if rewind_frames is None:
            frame_bytes = self.info.width * self.info.height * 3 // 2
            rewind_frames = min(REWIND_FRAMES, REWIND_BYTES // max(frame_bytes, 1))
        self.rewind_frames = rewind_frames
        self.timeline = Timeline.read(self.path, self.fps)
        self.stats = DecodeStats()
        self._files = contextlib.ExitStack()
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._decoded: Iterator[av.VideoFrame] | None = None  # None: the next request must seek
        self._last = -1  # the last frame taken from the decoder
        self._held: tuple[int, np.ndarray] | None = None  # the frame at the last request's end, never handed out
        self._rewind: dict[int, av.VideoFrame] = {}  # frames kept by the last seek backward, by number

    def __len__(self) -> int:
        return len(self.timeline)

    @property
    def rewind_held(self) -> int:
        """How many decoded frames the rewind store holds now."""
        return len(self._rewind)

    def get(self, indices: Iterable[int]) -> list[np.ndarray]:
        """The frames at output positions `indices` (each in 0 .. len - 1), in that order."""
        frames = self.timeline.frames_at(self._checked(indices)).tolist()
        if not frames:
            return []
        pixels: dict[int, np.ndarray] = {}
        if self._held is not None and self._held[0] in frames:
            pixels[self._held[0]] = self._held[1]
        self._held = None  # let it go before converting, unless it is wanted again
        rewound = [frame for frame in set(frames) - pixels.keys() if frame in self._rewind]
        for frame in rewound:
            pixels[frame] = self._convert(self._rewind[frame])
        self.stats.rewound += len(rewound)
        missing = sorted(set(frames) - pixels.keys())
        ahead = [frame for frame in missing if frame > self._last]
        behind = [frame for frame in missing if frame <= self._last]
        try:
            for frame in ahead + behind:
                pixels[frame] = self._decode(frame)
        except BaseException as error:
            self._decoded = None  # the cursor is unknown now: the next request seeks
            self._rewind.clear()
            if isinstance(error, av.error.FFmpegError):
                raise MediaError(f"{self.path}: decoding failed ({error})") from error
            raise
        moved_on = ahead and not (rewound or behind)  # decoding forward only: no backward run to serve
        earliest = -1 if moved_on else min(frames)  # a backward run goes on below this request
        self._rewind = {frame: kept for frame, kept in self._rewind.items() if frame < earliest}
        self._held = (frames[-1], pixels[frames[-1]])
        given: set[int] = set()
        out = []
        for frame in frames:
            out.append(pixels[frame].copy() if frame in given or frame == frames[-1] else pixels[frame])
            given.add(frame)
        return out

    def close(self) -> None:
        """Close the file and drop the held and kept frames; a later `get` reopens it."""
        self._rewind.clear()
        self._files.close()
        self._container = self._stream = self._decoded = self._held = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _checked(self, indices: Iterable[int]) -> np.ndarray:
        slots = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices))
        if slots.ndim != 1:
            raise MediaError(f"{self.path}: frame indices must be a flat sequence, got shape {slots.shape}")
        if slots.size and not np.issubdtype(slots.dtype, np.integer):
            raise MediaError(f"{self.path}: frame indices must be integers, got {slots.dtype}")
        outside = slots[(slots < 0) | (slots >= len(self))]
        if outside.size:
            raise MediaError(
                f"{self.path}: frame index {outside[0]} is out of range: "
                f"the video has {len(self)} frames at {self.fps} fps"
            )
        return slots

    def _decode(self, frame: int) -> np.ndarray:
        """Decode up to `frame` (seeking first when it is behind the cursor, or far ahead past a keyframe)
        and return its pixels. Seeking backward refills the rewind store with the frames before `frame`."""
        keyframe = self.timeline.keyframe_before(frame)
        backward = frame <= self._last
        if self._decoded is None or backward or keyframe - self._last - 1 > SEEK_COST_FRAMES:
            self._seek(keyframe)
        if backward:
            self._rewind.clear()
        assert self._decoded is not None  # just set by _seek, or still open from the last request
        for decoded in self._decoded:
            self.stats.decoded += 1
            position = self.timeline.frame_with(decoded.pts)
            if position is None:
                raise MediaError(f"{self.path}: the decoder produced a frame at pts {decoded.pts} no packet announced")
            if position <= self._last:
                continue  # a leading picture of the keyframe sought to, or already passed
            if position > frame:
                raise MediaError(f"{self.path}: frame {frame} (pts {self.timeline.pts[frame]}) did not decode")
            self._last = position
            if position == frame:
                return self._convert(decoded)
            if backward and position >= frame - self.rewind_frames:
                self._rewind[position] = decoded
                self.stats.peak_rewind = max(self.stats.peak_rewind, len(self._rewind))
        raise MediaError(f"{self.path}: the stream ended before frame {frame} (pts {self.timeline.pts[frame]})")

    def _convert(self, decoded: av.VideoFrame) -> np.ndarray:
        """The frame's upright RGB pixels."""
        self.stats.converted += 1
        return upright(decoded.to_ndarray(format="rgb24"), decoded.rotation)

    def _seek(self, keyframe: int) -> None:
        """Restart decoding at `keyframe`, opening the file on first use."""
        if self._container is None:
            self._container, self._stream = self._files.enter_context(open_video(self.path))
            self._stream.thread_type = "AUTO"
            self._stream.thread_count = self.threads
        self._container.seek(int(self.timeline.pts[keyframe]), backward=True, stream=self._stream)
        assert self._stream is not None  # opened together with the container
        self._decoded = self._container.decode(self._stream)
        self._last = keyframe - 1
        self.stats.seeks += 1
