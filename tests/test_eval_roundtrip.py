"""The official scorer's lossy frame route (eval/roundtrip.py) against the frames and scores of the official run."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest
import torch
from helpers.evaluation import golden_syncnet_v2_state

from latentsync.audio import load_audio
from latentsync.eval.lse import score_video
from latentsync.eval.roundtrip import aac_round_trip, full_range, jpeg_frames, reencode_audio
from latentsync.eval.sync import SyncScore, SyncScorer
from latentsync.media import VideoReader, VideoWriter
from latentsync.models.auxiliary.syncnet_v2 import SyncNetV2

OFFICIAL = {"offset": -15, "min_dist": 28.6745548248291, "conf": 1.8995170593261719}  # syncnet_v2_eval.pt


def golden_frames(golden_dir) -> np.ndarray:
    """The 59 RGB frames the official scorer read back from its JPEG dump of the golden crop clip."""
    frames = torch.load(golden_dir / "syncnet_v2_eval.pt", weights_only=True)["inputs"]["frames_bgr_u8"]
    return frames.permute(0, 2, 3, 1).numpy()[..., ::-1]


def test_full_range_uses_ffmpeg_5_1_integer_formulas():
    """Video range 16..235 / 16..240 becomes 0..255; chroma rounds as ffmpeg 5.1's swscale does."""
    frame = av.VideoFrame(16, 2, "yuv420p")
    values = [np.array([[16, 235] * 8, [126, 128] * 8], np.uint8), np.array([[16, 129] * 4], np.uint8)]
    values.append(np.array([[240, 127] * 4], np.uint8))
    for plane, v in zip(frame.planes, values):
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = v
    out = full_range(frame)
    assert out.format.name == "yuvj420p"
    y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in out.planes)
    assert y[0, :2].tolist() == [0, 255] and y[1, :2].tolist() == [128, 130]
    assert u[0, :2].tolist() == [0, 129] and v[0, :2].tolist() == [255, 127]


@pytest.mark.parity
def test_jpeg_dump_reproduces_the_official_frames(golden_dir):
    """The scorer's JPEG dump of the golden crop clip (MJPEG rate control at ffmpeg's defaults, one slice, the
    source's aspect ratio), read back with cv2: every frame bit-identical to the official run's."""
    official = golden_frames(golden_dir)
    clip = golden_dir / "syncnet_v2_eval_crop.mp4"
    ours = np.stack(list(jpeg_frames(clip)))[: len(official)]
    assert np.array_equal(ours, official)
    decoded = np.stack(list(VideoReader(clip, fps=25)))[: len(official)]
    assert np.abs(decoded.astype(int) - official).mean() > 3  # decoding once is 3.4 grey levels off


@pytest.mark.parity
@pytest.mark.slow
def test_cropped_scores_reproduce_the_official_run(golden_dir):
    """`eval sync --cropped` on the golden crop clip with the golden weights gives the official LSE; --fast-decode
    does not (which is why the round trip is the default)."""
    model = SyncNetV2()
    model.load_state_dict(golden_syncnet_v2_state(golden_dir))
    scorer = SyncScorer(model)
    clip = golden_dir / "syncnet_v2_eval_crop.mp4"
    official = score_video(clip, scorer, None).tracks[0].score
    assert official.offset == OFFICIAL["offset"]
    # the frames are identical; the audio decoder's rounding (1 LSB here and there) leaves 2e-5
    assert abs(official.conf - OFFICIAL["conf"]) <= 1e-4
    assert abs(official.min_dist - OFFICIAL["min_dist"]) <= 1e-4
    fast = score_video(clip, scorer, None, fast_decode=True).tracks[0].score
    assert abs(fast.conf - OFFICIAL["conf"]) > 0.1 and abs(fast.min_dist - OFFICIAL["min_dist"]) > 0.5


def lag(reference: np.ndarray, other: np.ndarray, most: int = 1100) -> int:
    """Samples `other` is late against `reference` (the peak of their cross-correlation over +-most samples)."""
    n = min(len(reference), len(other)) - 2 * most
    scores = [float(np.dot(reference[most : most + n], other[most + k : most + k + n])) for k in range(-most, most + 1)]
    return int(np.argmax(scores)) - most


def test_aac_round_trips_keep_the_audio_in_place(tmp_path, assets):
    """The two AAC generations of the official route change the samples a little but do not shift them (the
    encoder's 1024 priming samples are hidden by the edit list, as in ffmpeg's files)."""
    audio = load_audio(assets / "demo1_video.mp4")
    again = load_audio(reencode_audio(assets / "demo1_video.mp4", tmp_path / "audio.m4a"))
    cut = audio[16000:48000]
    track = aac_round_trip(cut, tmp_path / "track.m4a")
    assert len(again) == len(audio) and len(cut) <= len(track) < len(cut) + 1024
    assert lag(audio[:48000], again[:48000]) == 0 and lag(cut, track[: len(cut)]) == 0
    assert 0 < np.abs(track[: len(cut)] - cut).mean() < 0.05 * np.abs(cut).mean()


class RecordingScorer(SyncScorer):
    """Keeps the crops it is given (random weights: only the frames matter here)."""

    def __init__(self) -> None:
        super().__init__(SyncNetV2())
        self.crops: list[np.ndarray] = []

    def score_crops(self, frames: np.ndarray, audio: np.ndarray) -> SyncScore:
        self.crops.append(frames)
        return SyncScore(0, 0.0, 0.0)


@pytest.mark.slow
def test_full_route_crops_a_real_clip_through_the_official_steps(tmp_path, assets):
    """Re-encode, q2 JPEG dump, crops through mp4v and the scorer's dump: the same face crops as decoding once,
    a few grey levels apart (the lossy steps), on 56 frames of demo1 (at half size, for speed) with a fixed face box."""
    frames = [f[::2, ::2].copy() for f in itertools.islice(VideoReader(assets / "demo1_video.mp4", fps=25), 56)]
    clip = tmp_path / "clip.mp4"
    audio = np.zeros(56 * 640, np.float32)
    with VideoWriter(clip, frames[0].shape[1], frames[0].shape[0], fps=25, audio=audio, sample_rate=16000) as w:
        for frame in frames:
            w.write(frame)
    box = np.array([[210.0, 280.0, 390.0, 460.0, 0.99]])
    scorers = {}
    for fast in (False, True):
        scorers[fast] = RecordingScorer()
        result = score_video(clip, scorers[fast], lambda batch: [box for _ in batch], min_track=50, fast_decode=fast)
        assert result.ok and [(t.first, t.frames) for t in result.tracks] == [(0, 56)]
    official, once = scorers[False].crops[0], scorers[True].crops[0]
    assert official.shape == once.shape == (56, 224, 224, 3)
    assert 0.5 < np.abs(official.astype(int) - once).mean() < 8
