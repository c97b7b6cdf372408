"""The raw folder the data-preparation tests run on, built from the shared demo clips (trimmed, 360x640)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from latentsync.audio import load_audio
from latentsync.media import VideoReader, VideoWriter

SIZE = (540, 960)  # width, height: half the demo clips' 1080x1920, quicker to decode; dlib's face boxes over 80 px


def clip(src: Path, seconds: float, fps: int = 25, start: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (at `fps`, shrunk to SIZE) and 16 kHz audio of `seconds` of `src` from `start`."""
    first, count = round(start * fps), round(seconds * fps)
    frames = []
    for index, frame in enumerate(VideoReader(src, fps=fps)):
        if index >= first:
            frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
        if len(frames) == count:
            break
    audio = load_audio(src)[round(start * 16000) : round((start + seconds) * 16000)]
    return frames, audio


def write(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, fps: int = 25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, fps=Fraction(fps), audio=audio) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def build_raw(assets: Path, raw: Path, seconds: float = 2.2) -> dict[str, str]:
    """The issue's test folder; returns {file: what it is}."""
    demo = {i: clip(assets / f"demo{i}_video.mp4", seconds) for i in (1, 2, 3)}
    for i, (frames, audio) in demo.items():
        write(raw / f"demo{i}.mp4", frames, audio)
    frames30, audio30 = clip(assets / "demo1_video.mp4", seconds, fps=30)
    write(raw / "rates" / "demo1_30fps.mp4", frames30, audio30, fps=30)
    half = 52  # two shots long enough to keep (51 frames or more)
    spliced = demo[1][0][-half:] + demo[2][0][:half]
    write(raw / "spliced.mp4", spliced, np.concatenate([demo[1][1][-half * 640 :], demo[2][1][: half * 640]]))
    data = (raw / "demo2.mp4").read_bytes()
    (raw / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (raw / "notes.mp4").write_text("this is not a video\n")
    write(raw / "silent.mp4", demo[3][0], None)
    # The lower body of demo2: a real clip in which no face shows.
    body = [cv2.resize(f[SIZE[1] // 2 :], SIZE, interpolation=cv2.INTER_AREA) for f in demo[2][0]]
    write(raw / "noface.mp4", body, demo[2][1])
    return {
        "demo1.mp4": "demo",
        "demo2.mp4": "demo",
        "demo3.mp4": "demo",
        "rates/demo1_30fps.mp4": "30 fps",
        "spliced.mp4": "two shots",
        "truncated.mp4": "truncated",
        "notes.mp4": "text",
        "silent.mp4": "no audio",
        "noface.mp4": "no face",
    }
