"""All stages for one input: the unit of work a worker process or a Ray task runs.

Stages 1-5 make the aligned clips of a video in one streaming pass (one decode; each frame is scored for shot
changes and its face followed, then dropped; only the current segment's face regions are held until its alignment).
The face anchors of the aligned segments are kept in OUT_DIR/anchors, so that a change of a stage 5 setting
(resolution, face smoothing, CRF, keyframe interval) cuts the clips again from one decode without finding shots and
faces again. Stages 6-7 then judge each aligned clip; their scores are kept in the record, so a later run with other
thresholds decides again without scoring again. The result is the input's manifest record.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from latentsync.atomic import atomic_path
from latentsync.errors import LatentSyncError
from latentsync.faces import LandmarkDetector, create_detector
from latentsync.media import MediaError, VideoReader

from .manifest import Record
from .settings import FPS, Settings
from .stages.align import SAMPLES_PER_FRAME, SegmentCrops, encode_clip, realign
from .stages.faces import FaceCheck
from .stages.probe import Dropped, open_input
from .stages.quality import QualityFilter
from .stages.shots import with_shots
from .stages.sync import SyncFilter, decide, shift_audio

# Segment drops decided while preparing (stages 3-5); the others come from the filters (stages 6-7).
PREPARE_STAGES = ("segment", "faces", "audio", "decode")
ALIGNED, CLIPS, ANCHORS = "aligned", "clips", "anchors"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What a worker needs to process one input (picklable, for processes and Ray)."""

    raw_dir: str
    out_dir: str
    input: str  # relative to raw_dir
    settings: Settings
    auxiliary: str  # folder of the auxiliary weight files
    previous: Record | None = None


class DiskFullError(LatentSyncError, OSError):
    """OUT_DIR's disk is full: the run stops (a clip being written is discarded, finished ones are kept)."""


def process_safely(job: Job) -> Record:
    """`process`, with an input that breaks it recorded as "failed" (and retried next run) instead of ending the run;
    only a full disk ends it."""
    try:
        return process(job)
    except (OSError, MediaError) as error:
        if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error):
            raise DiskFullError(f"{job.out_dir}: the disk is full ({error}); free space and run again") from error
        failure: Exception = error
    except Exception as error:  # noqa: BLE001 (a bug or an input no stage foresaw: recorded, the run goes on)
        failure = error
    log.error("%s failed", job.input, exc_info=failure)
    return {
        "input": job.input,
        "prepare": job.settings.fingerprint("prepare"),
        "size": None,
        "mtime_ns": None,
        "state": "failed",
        "stage": "error",
        "reason": f"{type(failure).__name__}: {failure}",
        "segments": [],
    }


def process(job: Job) -> Record:
    """The input's new manifest record, with every output it lists on disk."""
    src = Path(job.raw_dir) / job.input
    out = Path(job.out_dir)
    stat = src.stat()
    fingerprint = job.settings.fingerprint("prepare")
    previous = job.previous
    same_file = previous is not None and (previous["size"], previous["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    if (
        previous
        and same_file
        and previous["prepare"] == fingerprint
        and all((out / ALIGNED / s["clip"]).is_file() for s in previous["segments"] if aligned(s))
    ):
        record = {**previous, "segments": [dict(s) for s in previous["segments"]]}
    elif (
        previous
        and same_file
        and previous["state"] == "done"
        and previous.get("faces") == job.settings.fingerprint("faces")
        and anchors_path(out, job.input).is_file()
    ):
        record = realigned(src, out, previous, job.settings)
    else:
        record = {"input": job.input, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "prepare": fingerprint}
        record["faces"] = job.settings.fingerprint("faces")
        record.update(prepare(src, out, job.input, job.settings))
        made = {s["clip"] for s in record["segments"] if aligned(s)}
        for segment in (previous or {}).get("segments", []):  # what an earlier run made that this one does not
            if segment["clip"] not in made:
                (out / ALIGNED / segment["clip"]).unlink(missing_ok=True)
                (out / CLIPS / segment["clip"]).unlink(missing_ok=True)
    record["face_smoothing"] = job.settings.face_smoothing  # how the clips were aligned, for a reader of the manifest
    sync, quality = filters(job.auxiliary)
    record["filters"] = filters_fingerprint(job.settings, job.auxiliary)
    for segment in record["segments"]:
        judge(segment, out, job.settings, sync, quality)
    return record


def aligned(segment: dict[str, Any]) -> bool:
    """Whether stage 5 made the segment's clip (it passed stages 3-4)."""
    return segment["state"] != "dropped" or segment["stage"] not in PREPARE_STAGES


def anchors_path(out: Path, rel: str) -> Path:
    """Where the input's face anchors are kept: (frames, 3, 2) float32, NaN outside the aligned segments."""
    return out / ANCHORS / f"{rel}.npy"


def realigned(src: Path, out: Path, previous: Record, settings: Settings) -> Record:
    """The record of an input whose segments and faces stand and whose stage 5 settings changed: its clips cut again
    from the stored anchors (one decode, no shot or face search) and judged afresh."""
    _, audio = open_input(src)
    anchors = np.load(anchors_path(out, previous["input"]))
    record = {**previous, "prepare": settings.fingerprint("prepare"), "segments": []}
    todo = []
    for old in previous["segments"]:
        segment = {k: v for k, v in old.items() if k not in ("sync", "quality")}
        if aligned(segment):
            segment.update(state="aligned", stage=None, reason=None)
            start, count = segment["start"], segment["frames"]
            todo.append((out / ALIGNED / segment["clip"], start, anchors[start : start + count]))
        record["segments"].append(segment)
    realign(src, todo, audio, settings)
    return record


def prepare(src: Path, out: Path, rel: str, settings: Settings) -> dict[str, Any]:
    """Stages 1-5 for one video: the input's state and its segments, aligned clips written under `out`/aligned and
    the face anchors of the aligned segments kept for a later change of a stage 5 setting."""
    try:
        info, audio = open_input(src)
    except Dropped as drop:
        return {"state": "dropped", "stage": drop.stage, "reason": drop.reason, "segments": []}
    detector = landmark_detector(settings.landmarks)
    aligned_dir = out / ALIGNED
    name = Path(rel).stem if Path(rel).suffix.lower() == ".mp4" else Path(rel).name.replace(".", "_")
    folder = Path(rel).parent
    segments: list[dict[str, Any]] = []
    anchors: dict[int, np.ndarray] = {}  # start frame -> anchors of each aligned segment
    second_pass: list[tuple[Path, int, np.ndarray]] = []  # segments whose steadied crops need the whole frames
    current: _Segment | None = None
    shot_start = frames = 0
    result: dict[str, Any] = {"state": "done", "stage": None, "reason": None, "duration": info.duration}

    def finish(segment: _Segment) -> None:
        segments.append(segment.finish(aligned_dir, audio))
        if segment.reason is None:
            anchors[segment.start] = np.stack(segment.crops.anchors)
            if segment.pending:
                second_pass.append((aligned_dir / segment.clip, segment.start, anchors[segment.start]))
        segment.crops.clear()

    decoded = _decoded(with_shots(VideoReader(src, fps=FPS), FPS, settings.shot_threshold, settings.shot_min_frames))
    for item in decoded:
        if isinstance(item, MediaError):
            result["error"] = f"decoding stopped after frame {frames}: {item}"
            if current is not None:
                current.reason, current.stage = "the video's decoding failed in this segment", "decode"
            break
        shot, index, frame = item
        frames = index + 1
        if current is None or shot != current.shot:
            shot_start = index
        number = (index - shot_start) // settings.segment_frames
        if current is None or (shot, number) != (current.shot, current.number):
            if current is not None:
                finish(current)
            clip = (folder / f"{name}_shot_{shot:03d}_{number:03d}.mp4").as_posix()
            current = _Segment(clip, shot, number, index, FaceCheck(detector, settings), SegmentCrops(settings))
        current.add(frame)
    if current is not None:
        finish(current)
    expected = info.frames_at(FPS)
    if "error" not in result and frames < expected - 1:
        result["error"] = f"the video ends after frame {frames} of the {expected} its header states (truncated?)"
    if frames == 0:
        return {"state": "dropped", "stage": "decode", "reason": result.get("error", "no frames"), "segments": []}
    realign(src, second_pass, audio, settings)
    save_anchors(anchors_path(out, rel), frames, anchors)
    result.update(frames=frames, segments=segments)
    return result


def save_anchors(path: Path, frames: int, anchors: dict[int, np.ndarray]) -> None:
    """The anchors of the segments starting at each key, in one (frames, 3, 2) array, written atomically."""
    track = np.full((frames, 3, 2), np.nan, dtype=np.float32)
    for start, points in anchors.items():
        track[start : start + len(points)] = points
    with atomic_path(path) as temp:
        np.save(temp, track)


def _decoded(frames: Iterator[tuple[int, int, np.ndarray]]) -> Iterator[tuple[int, int, np.ndarray] | MediaError]:
    """The items of `frames`, then the decoding error that ended them, if one did (as an item, so that errors of
    the consumer's own work, such as a full disk while encoding, are never taken for a broken input)."""
    try:
        yield from frames
    except MediaError as error:
        yield error


class _Segment:
    """The segment being built: its frames are checked and held as they arrive, aligned and encoded when it ends."""

    def __init__(self, clip: str, shot: int, number: int, start: int, check: FaceCheck, crops: SegmentCrops) -> None:
        self.clip, self.shot, self.number, self.start = clip, shot, number, start
        self.check, self.crops = check, crops
        self.frames = 0
        self.stage: str | None = None
        self.reason: str | None = None
        self.pending = False  # aligned and encoded from a second decode (see `stages.align`)

    def add(self, frame: np.ndarray) -> None:
        if self.reason is None:  # once dropped, later frames are not looked at
            found = self.check(frame)
            if isinstance(found, str):
                self.stage, self.reason = "faces", f"{found} at frame {self.frames}"
                self.crops.clear()
            else:
                self.crops.add(frame, found)
        self.frames += 1

    def finish(self, aligned_dir: Path, audio: np.ndarray) -> dict[str, Any]:
        settings = self.crops.settings
        heard = len(audio) / SAMPLES_PER_FRAME - self.start
        if self.reason is None and self.frames < settings.min_segment_frames:
            self.stage, self.reason = "segment", f"{self.frames} frames, under {settings.min_segment_frames}"
        elif self.reason is None and heard < self.frames - 1:
            self.stage, self.reason = "audio", f"the audio ends {max(heard, 0):.0f} frames into the segment"
        if self.reason is None:
            crops = self.crops.crops()
            self.pending = crops is None
            if crops is not None:
                encode_clip(aligned_dir / self.clip, crops, audio, self.start, settings)
        return {
            "clip": self.clip,
            "shot": self.shot,
            "index": self.number,
            "start": self.start,
            "frames": self.frames,
            "state": "dropped" if self.reason else "aligned",
            "stage": self.stage,
            "reason": self.reason,
        }


def judge(segment: dict[str, Any], out: Path, settings: Settings, sync: SyncFilter, quality: QualityFilter) -> None:
    """Stages 6-7 for one aligned clip (scores reused when the record has them), then publish or withdraw it."""
    if segment["state"] == "dropped" and segment["stage"] in PREPARE_STAGES:
        return
    aligned, final = out / ALIGNED / segment["clip"], out / CLIPS / segment["clip"]
    if "skipped" in segment.get("sync", {"skipped": ""}):
        segment["sync"] = sync.score(aligned)
    reason = decide(segment["sync"], settings)
    stage = "sync"
    if reason is None:
        if "skipped" in segment.get("quality", {"skipped": ""}):
            segment["quality"] = quality.score(aligned)
        stage = "quality"
        score = segment["quality"].get("score")
        if score is not None and score < settings.quality_min:
            reason = f"quality {score:.1f} under {settings.quality_min}"
    if reason is not None:
        segment.update(state="dropped", stage=stage, reason=reason)
        final.unlink(missing_ok=True)
        return
    segment.update(state="kept", stage=None, reason=None)
    final.parent.mkdir(parents=True, exist_ok=True)
    offset = segment["sync"].get("offset", 0)
    if offset:
        shift_audio(aligned, final, offset)
    else:
        publish_link(aligned, final)


def publish_link(source: Path, target: Path) -> None:
    """`target` becomes the same file as `source` (a hard link; a copy where links are impossible), atomically."""
    with atomic_path(target) as temp:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)


@cache
def landmark_detector(name: str) -> LandmarkDetector:
    """One detector per process, built on first use (the dlib model takes seconds to load)."""
    return create_detector(name)


@cache
def filters(auxiliary: str) -> tuple[SyncFilter, QualityFilter]:
    """The stage 6-7 filters of this process, models loaded on first use and kept."""
    return SyncFilter(Path(auxiliary)), QualityFilter(Path(auxiliary))


def filters_fingerprint(settings: Settings, auxiliary: str) -> str:
    """What stages 6-7 depend on: their thresholds and which of their models are there."""
    sync, quality = filters(auxiliary)
    return "-".join(
        (
            settings.fingerprint("sync"),
            settings.fingerprint("quality"),
            "s" if sync.skipped else "S",
            "q" if quality.skipped else "Q",
        )
    )
