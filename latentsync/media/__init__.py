"""Video in and out: probing, streaming retimed RGB frames, atomic H.264/AAC writing, length sync plans."""

from .errors import MediaError
from .frames import DecodeStats, FrameSource, Timeline
from .probe import VideoInfo, media_duration, probe, stated_duration
from .reader import VideoReader
from .retime import retime
from .sync import SYNC_MODES, SyncError, SyncMode, SyncPlan, plan_sync
from .writer import VideoWriter

__all__ = [
    "SYNC_MODES",
    "DecodeStats",
    "FrameSource",
    "MediaError",
    "SyncError",
    "SyncMode",
    "SyncPlan",
    "Timeline",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "media_duration",
    "plan_sync",
    "probe",
    "retime",
    "stated_duration",
]
