"""Stage 6: the sync filter. The aligned clip is scored with SyncNet (syncnet_v2, the evaluation's scorer); the
official rule keeps it when the confidence is at least 3 and the offset at most 6 frames either way, and moves its
audio by the offset (the video packets are copied, not re-encoded).

The score is stored in the manifest, so a changed threshold is decided again without scoring again. Without the
weight file the stage is skipped with a warning, and the manifest says so.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from latentsync.audio import load_audio
from latentsync.media import VideoReader

from ..settings import FPS, SAMPLE_RATE, Settings
from .scoring import ScoringStage

WEIGHTS = "syncnet_v2.model"
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


def load_scorer(path: Path, device: str | None = None) -> Any:
    """The evaluation's SyncNet scorer (`latentsync.eval.sync.SyncScorer`) with the weights at `path`."""
    from latentsync.eval.sync import SyncScorer

    return SyncScorer.load(path, device=device)


class SyncFilter(ScoringStage):
    """Scores clips with SyncNet."""

    NAME = "sync"
    WEIGHTS = WEIGHTS

    def load(self, path: Path, device: str | None) -> Any:
        return load_scorer(path, device)

    def measure(self, scorer: Any, clip: Path) -> dict[str, Any]:
        """{"offset", "conf", "min_dist"} of the clip."""
        frames = np.stack(list(VideoReader(clip, fps=FPS, read_ahead=0)))
        result = scorer.score_crops(frames, load_audio(clip, SAMPLE_RATE))
        return {"offset": int(result.offset), "conf": float(result.conf), "min_dist": float(result.min_dist)}


def decide(result: dict[str, Any], settings: Settings) -> str | None:
    """Why the clip fails the sync rule, or None when it passes (or was not scored)."""
    if "skipped" in result:
        return None
    if result["conf"] < settings.sync_min_conf:
        return f"sync confidence {result['conf']:.2f} under {settings.sync_min_conf}"
    if abs(result["offset"]) > settings.sync_max_offset:
        return f"audio offset {result['offset']} frames beyond ±{settings.sync_max_offset}"
    return None


def shift_audio(source: Path, target: Path, offset: int) -> None:
    """Write `source` to `target` with its audio `offset` frames later (earlier when negative), length unchanged.

    The video packets are copied as they are; the audio is re-encoded from the 16 kHz track, with silence where the
    shift opens a gap (the official `-itsoffset` leaves the gap empty). `target` appears only when complete.
    """
    audio = load_audio(source, SAMPLE_RATE)
    shift = offset * SAMPLES_PER_FRAME
    moved = np.zeros_like(audio)
    if shift >= 0:
        moved[shift:] = audio[: len(audio) - shift]
    else:
        moved[: len(audio) + shift] = audio[-shift:]
    temp = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        with av.open(str(source)) as inp, av.open(str(temp), "w") as out:
            video_in = inp.streams.video[0]
            video_out = out.add_stream_from_template(video_in)
            sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            for packet in inp.demux(video_in):
                if packet.dts is None:
                    continue
                packet.stream = video_out
                out.mux(packet)
            frame = av.AudioFrame.from_ndarray(moved[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, 0, Fraction(1, SAMPLE_RATE)
            out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
