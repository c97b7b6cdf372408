"""CPU cost of data preparation per second of 1080p raw video, stage by stage, beside the official chain.

Ours, on each clip: the decode retimed to 25 fps, the 16 kHz audio decode, shot detection on the decoded frames,
the face search (stages/faces.py: dlib, followed), the alignment (face regions held per 5 s segment, anchors
steadied, the warp) and the one H.264 encode of each R x R clip (CRF 18, keyint 25). The official chain for the
same clip, with the same libraries (PyAV's libx264, PySceneDetect), face work excluded on both sides: resample (a
stream copy at 25 fps, else a libx264 CRF 23 re-encode at 25 fps, audio to 16 kHz), then the shot split (decode,
adaptive detection, a libx264 veryfast CRF 22 re-encode), then the 5 s segmenting (a stream copy, not timed: it is
cheap), then stage 5's decode of the segment before its face work.

Run: python benchmarks/preprocess.py [--loops N] [--quick]
(--quick: the first 4 s of demo1 and demo3, one pass, well under a minute.) Prints CPU seconds per second of video.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from latentsync.audio import load_audio
from latentsync.data.preprocess.settings import Settings
from latentsync.data.preprocess.stages.align import SegmentCrops, encode_clip
from latentsync.data.preprocess.stages.faces import FaceCheck
from latentsync.data.preprocess.stages.shots import with_shots
from latentsync.faces import create_detector
from latentsync.media import VideoReader, VideoWriter
from latentsync.testing import ASSETS


class Clock:
    """CPU seconds per named step (process time: all threads of this process)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.process_time()
        yield
        self.seconds[name] += time.process_time() - start


def timed_iter(items: Iterator, clock: Clock, name: str) -> Iterator:
    while True:
        with clock(name):
            item = next(items, None)
        if item is None:
            return
        yield item


def ours(clip: Path, limit: int, clock: Clock, work: Path) -> int:
    settings = Settings()
    with clock("audio decode"):
        audio = load_audio(clip)
    frames = timed_iter(iter(_first(VideoReader(clip, fps=25, read_ahead=0), limit)), clock, "video decode")
    count, check, crops = 0, None, None
    for _shot, _index, frame in timed_iter(with_shots(frames, 25, 2.0, 15), clock, "shot detection"):
        if count % settings.segment_frames == 0:  # a new 5 s segment: a new face follower and alignment
            if crops is not None:
                _finish(crops, count - len(crops), audio, clock, work, settings)
            check, crops = FaceCheck(create_detector("dlib"), settings), SegmentCrops(settings)
        assert check is not None and crops is not None
        with clock("face search"):
            face = check(frame)
        if not isinstance(face, str):
            with clock("alignment"):
                crops.add(frame, face)
        count += 1
    if crops is not None:
        _finish(crops, count - len(crops), audio, clock, work, settings)
    clock.seconds["shot detection"] -= clock.seconds["video decode"]  # the decode ran inside the shot iterator
    return count


def _finish(crops: SegmentCrops, start: int, audio: np.ndarray, clock: Clock, work: Path, settings: Settings) -> None:
    with clock("alignment"):
        aligned = crops.crops()
    assert aligned is not None, "a steadied crop left the held region: the run would decode the clip again"
    with clock("encode"):
        encode_clip(work / f"ours_{start}.mp4", aligned, audio, start, settings)


def official(clip: Path, limit: int, clock: Clock, work: Path) -> None:
    resampled = work / "resampled.mp4"
    with clock("official resample"):
        if VideoReader(clip).info.fps == 25:
            _remux_first(clip, resampled, limit)
        else:
            _encode(_first(VideoReader(clip, fps=25), limit), resampled, load_audio(clip), crf=23, preset="medium")
    with clock("official shot split"):
        shots = (frame for _s, _i, frame in with_shots(VideoReader(resampled, fps=25), 25, 2.0, 15))
        _encode(shots, work / "shot.mp4", load_audio(resampled), crf=22, preset="veryfast")
    with clock("official stage-5 decode"):
        for _frame in VideoReader(work / "shot.mp4", fps=25):
            pass


def _first(frames: VideoReader, limit: int) -> Iterator[np.ndarray]:
    for index, frame in enumerate(frames):
        if index >= limit:
            return
        yield frame


def _remux_first(source: Path, target: Path, limit: int) -> None:
    """The video stream copied (first `limit` frames at 25 fps) and the audio re-encoded at 16 kHz."""
    audio = load_audio(source)[: limit * 640]
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        sound = out.add_stream("aac", rate=16000, layout="mono")
        for count, packet in enumerate(inp.demux(inp.streams.video[0])):
            if packet.dts is None or count >= limit:
                continue
            packet.stream = video
            out.mux(packet)
        frame = av.AudioFrame.from_ndarray(audio[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))


def _encode(frames: Iterator[np.ndarray], target: Path, audio: np.ndarray, crf: int, preset: str) -> None:
    first = next(frames)
    height, width = first.shape[:2]
    with VideoWriter(target, width, height, audio=audio, crf=crf, preset=preset) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=1, help="passes over each clip (default 1)")
    parser.add_argument("--quick", action="store_true", help="4 s of demo1 and demo3, one pass")
    args = parser.parse_args()
    clips = ["demo1_video.mp4", "demo3_video.mp4"] if args.quick else [f"demo{i}_video.mp4" for i in (1, 2, 3)]
    limit = 100 if args.quick else 10**9
    loops = 1 if args.quick else args.loops
    create_detector("dlib")  # model loading is not a per-video cost
    for name in clips:
        clock, seconds = Clock(), 0.0
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(loops):
                seconds += ours(ASSETS / name, limit, clock, Path(folder)) / 25
                official(ASSETS / name, limit, clock, Path(folder))
        print(f"{name}: {seconds:.1f} s of 1080x1920 video; CPU seconds per second of video")
        ours_total = sum(v for k, v in clock.seconds.items() if not k.startswith("official"))
        no_faces = ours_total - clock.seconds["face search"] - clock.seconds["alignment"]
        official_total = sum(v for k, v in clock.seconds.items() if k.startswith("official"))
        for key, value in clock.seconds.items():
            print(f"  {key:<26}{value / seconds:>7.3f}")
        print(f"  {'ours, all stages':<26}{ours_total / seconds:>7.3f}")
        print(f"  {'ours without face work':<26}{no_faces / seconds:>7.3f}")
        print(f"  {'official chain':<26}{official_total / seconds:>7.3f}  ({official_total / no_faces:.1f}x ours)")


if __name__ == "__main__":
    main()
