"""Where the 30 s encoder windows of a clip go, and how their rows are weighed where neighbours overlap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

WindowMode = Literal["official", "overlap"]


@dataclass(frozen=True)
class Window:
    """One encoder pass: mel frames [start, start + window length) give feature rows [row_lo, row_hi).

    The first `fade_in` of those rows are shared with the previous window and the last `fade_out` with
    the next one; over shared rows the two windows' weights cross-fade and sum to one.
    """

    start: int
    row_lo: int
    row_hi: int
    fade_in: int = 0
    fade_out: int = 0

    def weights(self) -> torch.Tensor:
        """Its weight on each of its rows: rising over `fade_in`, 1 in between, falling over `fade_out`."""
        full = self.row_hi - self.row_lo - self.fade_in - self.fade_out
        return torch.cat([_rise(self.fade_in), torch.ones(full), 1 - _rise(self.fade_out)])


def _rise(n: int) -> torch.Tensor:
    """A raised-cosine ramp from 0 to 1 over n rows, sampled at row centres so that r[i] = 1 - r[n - 1 - i]."""
    return torch.sin(torch.pi / 2 * (torch.arange(n) + 0.5) / n) ** 2


def plan_windows(num_mel_frames: int, window: int, mode: WindowMode = "official") -> list[Window]:
    """Where each encoder window starts and which feature rows it supplies, and how (rows are mel frames // 2).

    "official": back-to-back windows from 0, each supplying all of its rows alone, as the official
    code does; each window restart is a context cut and a jump in the features.
    "overlap": full-length windows hopping by 2/3 of a window (the last one ends at the clip's end
    instead of being padded). Neighbours hand over mid-way through their overlap with a raised-cosine
    cross-fade over 1/6 window (250 rows, 5 s): a row's position within the window, which whisper's
    positional embedding feeds into every row, changes at a switch, and the cross-fade spreads that
    change over 5 s instead of one row. Each window's rows at full weight have at least 7.5 s of real
    audio on each side (except at the clip's ends) and cross-fading rows at least 2.5 s, the window
    weighing more having at least 5 s. A clip of at most one window is one window in both modes, so
    the results are identical.
    """
    num_rows = num_mel_frames // 2
    if mode == "official":
        plan = [Window(s, s // 2, (s + min(window, num_mel_frames - s)) // 2) for s in range(0, num_mel_frames, window)]
        return [w for w in plan if w.row_hi > w.row_lo]  # a 1-frame tail window supplies no row
    if mode != "overlap":
        raise ValueError(f"windows must be 'official' or 'overlap', got {mode!r}")
    if num_mel_frames <= window:
        return [Window(0, 0, num_rows)]
    hop = window * 2 // 3 // 2 * 2  # even, so window rows stay aligned with the global rows
    half_fade = window // 24  # rows each side of a switch: the fade spans half the smallest overlap (window // 6 rows)
    last = (num_mel_frames - window) // 2 * 2
    starts = sorted(set(range(0, last, hop)) | {last})
    switches = [(a + b + window) // 4 for a, b in zip(starts, starts[1:])]  # mid-way through each overlap
    los = [0] + [r - half_fade for r in switches]
    his = [r + half_fade for r in switches] + [num_rows]
    fades = [0] + [2 * half_fade] * len(switches) + [0]
    return [Window(*w) for w in zip(starts, los, his, fades, fades[1:])]
