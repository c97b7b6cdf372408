"""Audio input: decoding media to 16 kHz mono and turning it into Whisper features for the U-Net."""

from latentsync.audio.chunks import frame_chunks, frame_rows, num_video_frames, training_window
from latentsync.audio.decode import SAMPLE_RATE, AudioError, load_audio
from latentsync.audio.features import AudioEncoder
from latentsync.audio.mel import log_mel
from latentsync.audio.stream import AudioFeatureStream
from latentsync.audio.windows import Window, WindowMode, plan_windows

__all__ = [
    "SAMPLE_RATE",
    "AudioEncoder",
    "AudioError",
    "AudioFeatureStream",
    "Window",
    "WindowMode",
    "frame_chunks",
    "frame_rows",
    "load_audio",
    "log_mel",
    "num_video_frames",
    "plan_windows",
    "training_window",
]
