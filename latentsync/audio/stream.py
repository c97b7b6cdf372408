"""A clip's Whisper features encoded window by window as rows are asked for, so memory does not grow with the clip.

The whole (N, layers, width) array is 230 MB per 10 minutes for whisper tiny; a stream holds the clip's
log-mel (19 MB per 10 minutes) and the rows of the last two encoded windows (one window, or two across an
overlap mode cross-fade or a chunk straddling two windows). `AudioEncoder.features` is a stream read whole,
so the rows a stream returns are bitwise those of the eager array.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch

from latentsync.audio.chunks import frame_rows, num_video_frames, take_chunks
from latentsync.audio.windows import WindowMode, plan_windows
from latentsync.constants import VIDEO_FPS

if TYPE_CHECKING:
    from latentsync.audio.features import AudioEncoder


class AudioFeatureStream:
    """The feature rows of one clip, computed on demand; requests may come in any order.

    Requests in increasing order (as a pipeline walks the video) encode every window once.
    """

    CACHED_WINDOWS = 2

    def __init__(self, encoder: AudioEncoder, mel: torch.Tensor, windows: WindowMode = "official"):
        """`mel` is the clip's normalised log-mel (n_mels, frames); `windows` as in `plan_windows`."""
        self.encoder = encoder
        self.mel = mel
        self.plan = plan_windows(mel.shape[-1], encoder.window_frames, windows)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()  # plan index -> its weighted rows

    def __len__(self) -> int:
        """Feature rows: 50 per second of audio."""
        return self.mel.shape[-1] // 2

    @property
    def cached_windows(self) -> list[int]:
        """Plan indices of the windows whose rows are held, least recently used first."""
        return list(self._cache)

    def num_frames(self, fps: float = VIDEO_FPS) -> int:
        """The official number of video frames for this audio at `fps` (see `num_video_frames`)."""
        return num_video_frames(len(self), fps)

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        """Feature rows [lo, hi) as a (hi - lo, layers, width) float32 CPU tensor.

        Each window covering them adds its weighted rows in plan order, as the eager array is built.
        """
        if not 0 <= lo <= hi <= len(self):
            raise ValueError(f"rows [{lo}, {hi}) are outside the {len(self)} feature rows")
        out = torch.zeros(hi - lo, self.encoder.num_layers, self.encoder.width)
        for index, w in enumerate(self.plan):
            a, b = max(lo, w.row_lo), min(hi, w.row_hi)
            if a < b:
                out[a - lo : b - lo] += self._window_rows(index)[a - w.row_lo : b - w.row_lo]
        return out

    def frame_chunks(self, fps: float = VIDEO_FPS, start: int = 0, count: int | None = None) -> torch.Tensor:
        """What `frame_chunks(features, fps, start, count)` returns, encoding only the windows those frames see."""
        picks = frame_rows(len(self), fps, start, count)
        lo, hi = (int(picks.min()), int(picks.max()) + 1) if picks.size else (0, 0)
        return take_chunks(self.rows(lo, hi), picks, first_row=lo)

    def _window_rows(self, index: int) -> torch.Tensor:
        """Rows [row_lo, row_hi) of window `index`, times its weights, from the cache or encoded now."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        while len(self._cache) >= self.CACHED_WINDOWS:  # make room before encoding: at most 2 windows are held
            self._cache.popitem(last=False)
        w = self.plan[index]
        hidden = self.encoder.encode_window(self.mel[:, w.start : w.start + self.encoder.window_frames])
        first = w.start // 2  # the window's first row
        self._cache[index] = w.weights()[:, None, None] * hidden[w.row_lo - first : w.row_hi - first]
        return self._cache[index]
