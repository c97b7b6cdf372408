"""Audio input: decoding media to 16 kHz mono and turning it into Whisper features for the U-Net."""

from latentsync.audio.chunks import frame_chunks, num_video_frames, training_window
from latentsync.audio.decode import SAMPLE_RATE, AudioError, load_audio
from latentsync.audio.features import AudioEncoder, plan_windows

__all__ = [
    "SAMPLE_RATE",
    "AudioEncoder",
    "AudioError",
    "frame_chunks",
    "load_audio",
    "num_video_frames",
    "plan_windows",
    "training_window",
]
