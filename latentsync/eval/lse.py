"""LSE-C / LSE-D of whole videos: face tracks (tracks.py), each scored by the original SyncNet (sync.py).

Frames reach the networks through the official pipeline's lossy steps (roundtrip.py) unless `fast_decode` is set.

Per video, as the official `eval_sync_conf.py`: offset = int(mean of the tracks' offsets), conf = mean conf; we also
give min_dist (LSE-D) as the mean over tracks. A folder's mean is over the videos that could be scored; a video that
cannot (unreadable, no face track, too short) is reported with its reason instead of stopping the others.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

import numpy as np

from latentsync.errors import LatentSyncError

from .sync import SAMPLES_PER_FRAME, SyncScore, SyncScorer
from .tracks import MIN_TRACK, BoxFinder, crop_tracks, find_tracks

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm")


@dataclass(frozen=True)
class TrackScore:
    first: int  # first frame (25 fps) of the track
    frames: int
    score: SyncScore


@dataclass
class VideoScore:
    path: str
    tracks: list[TrackScore] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.tracks)

    @property
    def offset(self) -> int:
        return int(fmean(t.score.offset for t in self.tracks))

    @property
    def min_dist(self) -> float:
        return fmean(t.score.min_dist for t in self.tracks)

    @property
    def conf(self) -> float:
        return fmean(t.score.conf for t in self.tracks)

    def as_dict(self) -> dict:
        if not self.ok:
            return {"path": self.path, "tracks": [], "error": self.error}
        tracks = [
            {
                "offset": t.score.offset,
                "min_dist": t.score.min_dist,
                "conf": t.score.conf,
                "frames": t.frames,
                "first_frame": t.first,
            }
            for t in self.tracks
        ]
        return {
            "path": self.path,
            "offset": self.offset,
            "min_dist": self.min_dist,
            "conf": self.conf,
            "tracks": tracks,
            "error": None,
        }


def expand_videos(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders replaced by their video files (sorted, not recursive)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES))
        else:
            found.append(item)
    return found


def score_video(
    path: str | Path,
    scorer: SyncScorer,
    find_boxes: BoxFinder | None,
    min_track: int = MIN_TRACK,
    fast_decode: bool = False,
) -> VideoScore:
    """Score one video; `find_boxes=None` treats the whole video as one face crop (`--cropped`).

    By default frames take the official pipeline's lossy route (roundtrip.py: H.264 re-encode, JPEG dumps read back
    with cv2, the mp4v crop video), so the numbers are the published kind; `fast_decode` decodes once and hands the
    frames over directly (faster; LSE-C moves by up to a few tenths).
    """
    from latentsync.audio import load_audio

    from . import roundtrip

    result = VideoScore(str(path))
    try:
        audio = load_audio(path)
        official_tracks = find_boxes is not None and not fast_decode  # the official audio route: AAC twice
        with tempfile.TemporaryDirectory(prefix="latentsync-eval-") as tmp:
            if official_tracks:
                audio = load_audio(roundtrip.reencode_audio(path, Path(tmp) / "audio.m4a"))
            for first, faces in _face_crops(Path(path), find_boxes, min_track, fast_decode, Path(tmp)):
                span = audio[first * SAMPLES_PER_FRAME : (first + len(faces)) * SAMPLES_PER_FRAME]
                if official_tracks:
                    span = roundtrip.aac_round_trip(span, Path(tmp) / f"track{first}.m4a")
                result.tracks.append(TrackScore(first, len(faces), scorer.score_crops(faces, span)))
    except LatentSyncError as exc:
        result.error = str(exc)
        result.tracks = []
        logger.warning("skipped: %s", exc)
    return result


def _face_crops(
    path: Path, find_boxes: BoxFinder | None, min_track: int, fast_decode: bool, tmp: Path
) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, (n, 224, 224, 3) RGB crops) per face track, as the scorer sees them."""
    from latentsync.media import VideoReader

    from . import roundtrip

    if find_boxes is None:
        frames: Iterable[np.ndarray] = VideoReader(path, fps=25) if fast_decode else roundtrip.jpeg_frames(path)
        yield 0, np.stack(list(frames))
        return
    files: list[Path] = []
    if not fast_decode:
        dump = roundtrip.JpegDump(roundtrip.DETECT_QSCALE)
        for index, frame in enumerate(roundtrip.decoded_frames(roundtrip.reencode(path, tmp / "video.mp4"))):
            files.append(tmp / f"{index:06d}.jpg")
            files[-1].write_bytes(dump(frame))

    def video() -> Iterable[np.ndarray]:
        if fast_decode:
            return VideoReader(path, fps=25)
        return (roundtrip.read_jpeg(f.read_bytes()) for f in files)

    tracks, total = find_tracks(video(), find_boxes, min_track=min_track)
    if not tracks:
        raise LatentSyncError(f"no face track of more than {min_track} frames (at least 100 px) in its {total} frames")
    for number, (track, crops) in enumerate(zip(tracks, crop_tracks(video(), tracks))):
        if not fast_decode:
            crop_video = roundtrip.write_crops(crops, tmp / f"crop{number:05d}.mp4")
            crops = np.stack(list(roundtrip.jpeg_frames(crop_video)))
        yield track.first, crops


def summary(videos: list[VideoScore]) -> dict:
    """The JSON object of `latentsync eval sync --json`."""
    scored = [v for v in videos if v.ok]
    mean = None
    if scored:
        mean = {
            "offset": fmean(v.offset for v in scored),
            "min_dist": fmean(v.min_dist for v in scored),
            "conf": fmean(v.conf for v in scored),
        }
    return {
        "videos": [v.as_dict() for v in videos],
        "mean": mean,
        "scored": len(scored),
        "failed": len(videos) - len(scored),
    }
