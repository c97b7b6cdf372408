"""Checks of a run's inputs, output, numbers and device that need no model.

`infer`, `serve` and `batch` run them before any model loads or any weight is downloaded, so a wrong path or a
mistyped number costs a second, not a minute. Each error names the option (`label`), the value given and what
would work; callers outside the command line (the server's JSON fields) pass their own `label`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from latentsync.errors import InvalidArgumentError, LatentSyncError
from latentsync.media import MediaError, Timeline, VideoInfo, probe, stated_duration

OUTPUT_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
FPS = 25  # the models' frame rate (pipelines.lipsync.FPS, not imported here: that would load torch)
# A video whose decodable frames end this many seconds before its stated duration is reported as truncated.
TRUNCATION_SECONDS = 1.0
# Containers that hold a still image, not a video (FFmpeg's image demuxers).
_IMAGE_FORMATS = ("image2", "_pipe")


class DeviceError(LatentSyncError, ValueError):
    """The device asked for does not exist on this machine."""


def flag(name: str) -> str:
    """The command-line option of a setting: `batch_frames` -> `--batch-frames`."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Limit:
    """The accepted range of one numeric setting, and what it means, for the error message."""

    low: float
    high: float
    hint: str

    def check(self, name: str, value: float, label: Callable[[str], str]) -> None:
        if not (math.isfinite(value) and self.low <= value <= self.high):
            high = "" if math.isinf(self.high) else f" and at most {self.high:g}"
            raise InvalidArgumentError(f"{label(name)} {value:g}: must be at least {self.low:g}{high} ({self.hint})")


LIMITS: dict[str, Limit] = {
    "steps": Limit(1, 1000, "DDIM steps; 20 is the official setting, the scheduler has 1000 timesteps"),
    "guidance_scale": Limit(1, 20, "1 turns audio guidance off, 1.5 is the official setting"),
    "batch_frames": Limit(1, 1024, "frames diffused together; 16 is the official setting"),
}


def check_settings(values: Mapping[str, float | None], label: Callable[[str], str] = flag) -> None:
    """Every numeric setting in `values` that LIMITS knows lies in its range (None: left at its default)."""
    for name, value in values.items():
        if value is not None and name in LIMITS:
            LIMITS[name].check(name, float(value), label)
    if values.get("face_index") is not None and values.get("face_at") is not None:
        raise InvalidArgumentError(f"{label('face_index')} and {label('face_at')}: give one of them, not both")


def parsed_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings `check_settings` looks at, as the command line parsed them (None where a command has none)."""
    return {name: getattr(args, name, None) for name in (*LIMITS, "face_index", "face_at")}


@dataclass(frozen=True)
class VideoCheck:
    """What the video holds, and how much of its stated duration can actually be decoded."""

    info: VideoInfo
    decodable_seconds: float

    @property
    def truncated(self) -> bool:
        return self.info.duration - self.decodable_seconds > TRUNCATION_SECONDS

    def truncation_note(self) -> str:
        return (
            f"the video states {self.info.duration:.1f} s but its frames end at {self.decodable_seconds:.1f} s "
            "(a truncated file?); only those frames were used"
        )


@dataclass(frozen=True)
class AudioCheck:
    """The first audio stream of a file: enough to plan a run and describe it, without decoding it all."""

    path: Path
    channels: int
    sample_rate: int
    duration: float | None  # seconds, as the container states it (None when it states none)


def _regular_file(path: str | Path, label: str, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{label} {path}: no such file; give the path of {what}")
    if path.is_dir():
        raise MediaError(f"{label} {path}: is a folder; give the path of {what} inside it")
    if not path.is_file():
        raise MediaError(f"{label} {path}: not a regular file; give the path of {what}")
    if path.stat().st_size == 0:
        raise MediaError(f"{label} {path}: the file is empty (0 bytes); give the path of {what}")
    return path


def _found(kinds: list[str]) -> str:
    """The streams a file holds, for a message; a file with neither sound nor picture is probably cut short."""
    found = ", ".join(kinds) or "no streams"
    return found if {"audio", "video"} & set(kinds) else f"{found}: a truncated or damaged file?"


def _streams(path: Path, label: str, what: str) -> tuple[str, list[str]]:
    """(container format name, kinds of its streams), or an error saying the file is not media."""
    try:
        with av.open(str(path)) as container:
            return container.format.name, [stream.type for stream in container.streams]
    except av.error.FFmpegError as error:
        raise MediaError(f"{label} {path}: not a media file FFmpeg can read ({error}); give {what}") from error


def check_video(path: str | Path, label: str = "--video") -> VideoCheck:
    """The video exists, is a video (not audio only, not a still image) and has a decodable frame."""
    what = "a video file with a face (.mp4, .mov, .mkv, .webm, ...)"
    path = _regular_file(path, label, what)
    form, kinds = _streams(path, label, what)
    if "video" not in kinds:
        raise MediaError(f"{label} {path}: has no video stream ({_found(kinds)}); give {what}")
    if any(name in form for name in _IMAGE_FORMATS):
        raise MediaError(f"{label} {path}: is a still image ({form}), not a video; give {what}")
    try:
        info = probe(path)
        decodable = Timeline.read(path, info.fps).stops[-1] / info.fps
    except MediaError as error:
        raise MediaError(f"{label} {error}; give {what}") from error
    return VideoCheck(info, float(decodable))


def check_audio(path: str | Path, label: str = "--audio") -> AudioCheck:
    """The audio exists, has an audio stream and at least one decodable sample."""
    what = "speech as an audio file (.wav, .mp3, .m4a, .flac, ...) or a video with sound"
    path = _regular_file(path, label, what)
    _, kinds = _streams(path, label, what)
    if "audio" not in kinds:
        raise MediaError(f"{label} {path}: has no audio stream ({_found(kinds)}); give {what}")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            if not any(frame.samples for frame in container.decode(stream)):
                raise MediaError(f"{label} {path}: the audio stream holds no samples; give {what}")
            channels, rate = stream.codec_context.channels, stream.codec_context.sample_rate
            return AudioCheck(path, channels, rate, stated_duration(container, stream))
    except av.error.FFmpegError as error:
        raise MediaError(f"{label} {path}: audio decoding failed ({error}); give {what}") from error


def check_output(path: str | Path, inputs: Sequence[str | Path] = (), label: str = "--output") -> Path:
    """The output is a video file name in an existing, writable folder, and is none of the inputs."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InvalidArgumentError(
            f"{label} {path}: cannot write {path.suffix or 'a file without extension'}; "
            f"name an H.264 video file ending in one of {', '.join(OUTPUT_SUFFIXES)}"
        )
    if path.is_dir():
        raise InvalidArgumentError(f"{label} {path}: is a folder; name a file inside it, e.g. {path / 'synced.mp4'}")
    folder = path.parent
    if not folder.is_dir():
        raise InvalidArgumentError(f"{label} {path}: the output folder does not exist ({folder}); create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"{label} {path}: the folder {folder} is not writable; choose another")
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise InvalidArgumentError(
                f"{label} {path}: is the input {source} (it would be overwritten); name a new file"
            )
    return path


def check_device(device: str | None, label: str = "--device") -> None:
    """The device parses and exists here: CUDA needs a driver and a card, a CUDA index an existing card."""
    if device is None:
        return
    import torch

    available = ["cpu"]
    if torch.cuda.is_available():
        available += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        available.append("mps")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"{label} {device}: not a device name; available here: {', '.join(available)}") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no NVIDIA driver or card found"
            raise DeviceError(
                f"{label} {device}: CUDA is not available ({why}); available here: {', '.join(available)}"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise DeviceError(f"{label} {device}: no such card; available here: {', '.join(available)}")
        return
    if parsed.type == "mps" and "mps" in available:
        return
    raise DeviceError(f"{label} {device}: not available on this machine; available here: {', '.join(available)}")


def check_inputs(
    video: str | Path,
    audio: str | Path,
    output: str | Path | None = None,
    settings: Mapping[str, float | None] | None = None,
    label: Callable[[str], str] = flag,
) -> tuple[VideoCheck, AudioCheck]:
    """All of the above for one lip-sync job (what `infer`, `serve` and `batch` run before any model work):
    the numbers, both inputs, and the output when there is one. `label` turns "video", "steps"... into the names
    the user typed (default: the command-line options)."""
    check_settings(settings or {}, label)
    checked = check_video(video, label("video")), check_audio(audio, label("audio"))
    if output is not None:
        check_output(output, inputs=(video, audio), label=label("output"))
    return checked
