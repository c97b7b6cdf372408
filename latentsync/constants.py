"""The contract the official models were trained under: rates, clip length and audio context.

Every stage that must agree with the trained weights reads these instead of repeating the numbers, so training,
data preparation and inference cannot drift apart.
"""

from __future__ import annotations

VIDEO_FPS = 25  # every input video is retimed to the rate the models were trained at
MODEL_SAMPLE_RATE = 16000  # Whisper and SyncNet hear 16 kHz mono
OUTPUT_SAMPLE_RATE = 48000  # the output keeps the speech at full quality; only the models see 16 kHz
SAMPLES_PER_FRAME = MODEL_SAMPLE_RATE // VIDEO_FPS  # 640 samples of speech per video frame
FEATURE_RATE = 50  # Whisper feature rows per second: one per two 10 ms mel frames
ROWS_PER_FRAME = FEATURE_RATE // VIDEO_FPS
CLIP_FRAMES = 16  # frames per training clip and per default inference chunk
# `audio_feat_length` of the official configs: video frames of audio context before and after each frame.
AUDIO_CONTEXT_FRAMES = (2, 2)
AUDIO_ROWS_BEFORE = AUDIO_CONTEXT_FRAMES[0] * ROWS_PER_FRAME  # 4 rows before a frame's centre row
AUDIO_ROWS_AFTER = (AUDIO_CONTEXT_FRAMES[1] + 1) * ROWS_PER_FRAME  # 6 rows: the frame's own pair and 2 frames after
AUDIO_CONTEXT_ROWS = AUDIO_ROWS_BEFORE + AUDIO_ROWS_AFTER  # 10 rows (0.2 s) per video frame
