"""`latentsync preprocess --report OUT_DIR`: what went in and what came out, from the manifest alone, and a contact
sheet (one aligned frame per kept clip) to look at before training for days."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from latentsync.errors import InvalidArgumentError
from latentsync.media import MediaError, VideoReader

from . import manifest
from .settings import FPS

SHEET = "contact_sheet.png"
SHEET_COLUMNS = 10
SHEET_TILE = 128
SHEET_MAX = 400  # clips shown; the sheet of a large set samples them evenly


@dataclass
class Report:
    inputs: int = 0
    inputs_hours: float = 0.0
    dropped_inputs: Counter = field(default_factory=Counter)  # (stage, reason) -> count
    segments: int = 0
    segment_hours: float = 0.0
    kept: int = 0
    kept_hours: float = 0.0
    dropped_segments: Counter = field(default_factory=Counter)  # (stage, reason kind) -> count
    dropped_hours: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # stage -> clips judged without it

    def text(self) -> str:
        lines = [
            f"inputs: {self.inputs} ({self.inputs_hours:.3f} h), dropped {sum(self.dropped_inputs.values())}",
            *(f"  dropped at {stage}: {reason}: {n}" for (stage, reason), n in sorted(self.dropped_inputs.items())),
            f"segments: {self.segments} ({self.segment_hours:.3f} h)",
            *(
                f"  dropped at {stage}: {reason}: {n} ({self.dropped_hours[stage, reason]:.3f} h)"
                for (stage, reason), n in sorted(self.dropped_segments.items())
            ),
            f"kept clips: {self.kept} ({self.kept_hours:.3f} h)",
            *(f"  {stage} skipped for {n} clips" for stage, n in sorted(self.skipped.items())),
        ]
        return "\n".join(lines)


def reason_kind(reason: str) -> str:
    """The reason without its particulars (frame numbers, sizes), so that drops group."""
    return reason.split(" (")[0].split(" at frame ")[0].split(" after frame ")[0]


def build_report(out_dir: str | Path) -> Report:
    records = manifest.load(Path(out_dir))
    if not records:
        raise InvalidArgumentError(f"{out_dir}: no manifest here; run `latentsync preprocess RAW_DIR {out_dir}` first")
    report = Report()
    for record in records.values():
        report.inputs += 1
        report.inputs_hours += record.get("duration", 0.0) / 3600
        if record["state"] == "dropped":
            report.dropped_inputs[record["stage"], reason_kind(record["reason"])] += 1
        for segment in record["segments"]:
            hours = segment["frames"] / FPS / 3600
            report.segments += 1
            report.segment_hours += hours
            for stage in ("sync", "quality"):
                if "skipped" in segment.get(stage, {}):
                    report.skipped[stage] += 1
            if segment["state"] == "kept":
                report.kept += 1
                report.kept_hours += hours
            else:
                key = (segment["stage"], reason_kind(segment["reason"]))
                report.dropped_segments[key] += 1
                report.dropped_hours[key] += hours
    return report


def contact_sheet(out_dir: str | Path, path: Path) -> int:
    """Write the middle frame of each kept clip (at most SHEET_MAX, evenly sampled) tiled into a PNG; how many."""
    from latentsync.data.fileslist import kept_clips

    clips = kept_clips(out_dir)
    if len(clips) > SHEET_MAX:
        clips = [clips[i] for i in np.linspace(0, len(clips) - 1, SHEET_MAX).astype(int)]
    tiles = [tile for clip in clips if (tile := _middle_frame(clip)) is not None]
    if not tiles:
        return 0
    rows = -(-len(tiles) // SHEET_COLUMNS)
    columns = min(len(tiles), SHEET_COLUMNS)
    sheet = np.full((rows * SHEET_TILE, columns * SHEET_TILE, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, SHEET_COLUMNS)
        sheet[r * SHEET_TILE : (r + 1) * SHEET_TILE, c * SHEET_TILE : (c + 1) * SHEET_TILE] = tile
    temp = path.with_name(f".{path.stem}.partial.png")
    if not cv2.imwrite(str(temp), sheet[:, :, ::-1]):
        raise OSError(f"could not write {path}")
    temp.replace(path)
    return len(tiles)


def _middle_frame(clip: Path) -> np.ndarray | None:
    try:
        reader = VideoReader(clip, fps=FPS, read_ahead=0)
        middle = reader.info.frames_at(FPS) // 2
        for index, frame in enumerate(reader):
            if index == middle:
                return cv2.resize(frame, (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA)
    except MediaError:
        return None
    return None
