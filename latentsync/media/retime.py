"""Constant-frame-rate retiming: which decoded frame fills each output slot.

The rule is the one of ffmpeg's `fps` filter with its default `round=near`. Times are measured
from the first frame's presentation time. Source frame i, shown from t_i to t_{i+1}, claims the
output slots from `round(fps * t_i)` up to (not including) `round(fps * t_{i+1})`, halves rounded
up; when several frames claim the same slot the latest one wins, so output frame k shows the last
source frame whose start rounds to k or earlier, i.e. the frame on screen just before the middle
(k + 1/2) / fps of output frame k. The last frame lasts until its own end (pts + duration), so a
clip of duration D yields `round(fps * D)` frames. Input already at `fps` maps frame i to slot i
(and tolerates timestamp jitter below half a frame), so retiming it is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Protocol, TypeVar, cast

T = TypeVar("T")


class Stamped(Protocol):
    """What `timed` reads: a decoded frame or a demuxed packet both have these."""

    @property
    def pts(self) -> int | None: ...
    @property
    def duration(self) -> int | None: ...
    @property
    def time_base(self) -> Fraction | None: ...


S = TypeVar("S", bound=Stamped)


def slot(seconds: Fraction, fps: Fraction) -> int:
    """Output slot that a time falls on: seconds * fps rounded to the nearest integer, halves up."""
    return math.floor(seconds * fps + Fraction(1, 2))


def timed(items: Iterable[S], frame_duration: Fraction) -> Iterator[tuple[S, Fraction, Fraction]]:
    """Attach exact start/end times in seconds; a missing pts continues from the previous item's end and
    a missing duration is `frame_duration` (one frame at the stream's nominal rate)."""
    end = Fraction(0)
    for item in items:
        # Set on every demuxed packet and decoded frame; PyAV's Frame stub allows None for frames built by hand.
        time_base = cast(Fraction, item.time_base)
        start = end if item.pts is None else item.pts * time_base
        end = start + (item.duration * time_base if item.duration else frame_duration)
        yield item, start, end


def spans(items: Iterable[tuple[T, Fraction, Fraction]], fps: Fraction) -> Iterator[tuple[T, int, int]]:
    """Yield each `(item, start, end)` item with the output slots `[first, stop)` it fills (empty when dropped).

    Consecutive spans tile `0 .. n` in order, so this is the whole retiming decision; `retime` merely
    repeats items, and random access (`frames.Timeline`) looks slots up in the stops.
    """
    origin: Fraction | None = None
    held: T | None = None
    held_end = Fraction(0)  # the end of `held`, read only while there is one
    next_slot = 0
    for item, start, end in items:
        if origin is None:
            origin = start
        start_slot = slot(start - origin, fps)
        if held is not None:
            stop = max(next_slot, start_slot)
            yield held, next_slot, stop
            next_slot = stop
        held, held_end = item, end
    if held is not None:
        assert origin is not None  # set by the first item, as held
        yield held, next_slot, max(next_slot, slot(held_end - origin, fps))


def retime(timed: Iterable[tuple[T, Fraction, Fraction]], fps: Fraction) -> Iterator[T]:
    """Yield one item per output slot from `(item, start, end)` triples in presentation order.

    Times are in seconds (exact fractions); items may be yielded several times (the frame is held)
    or not at all (dropped). Only one item is held back at a time, so this streams.
    """
    for item, first, stop in spans(timed, fps):
        for _ in range(stop - first):
            yield item
