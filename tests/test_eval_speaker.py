"""Weight-free signals: the active speaker on composites of two real speakers, and the silence metric."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentsync.audio import load_audio
from latentsync.cli import build_parser
from latentsync.eval.silence import mouth_series, silence_report, silent_frames
from latentsync.eval.speaker import ANALYSIS_FRAMES, choose_speaker
from latentsync.media import VideoReader

FACE_CENTRES = {"demo1": (599, 734), "demo2": (560, 477), "demo3": (581, 651)}  # dlib's faces in the 1080x1920 clips
HALF = 200
FRAMES = 100


def face_region(assets, name: str, frames: int = FRAMES) -> list[np.ndarray]:
    """The 400x400 region around the speaker's face, first `frames` frames at 25 fps."""
    cx, cy = FACE_CENTRES[name]
    clip = itertools.islice(VideoReader(assets / f"{name}_video.mp4", fps=25), frames)
    return [f[cy - HALF : cy + HALF, cx - HALF : cx + HALF] for f in clip]


class CachedDetector:
    """The dlib finder, remembering each frame's faces so that one composite can be scored with two audios."""

    def __init__(self) -> None:
        from latentsync.faces import create_detector

        self.detector = create_detector("dlib")
        self.name = "dlib"
        self.seen: dict[int, list] = {}

    def detect(self, frame):
        key = id(frame)
        if key not in self.seen:
            self.seen[key] = self.detector.detect(frame)
        return self.seen[key]


@pytest.fixture(scope="module")
def speakers(assets):
    return {name: face_region(assets, name) for name in ("demo1", "demo2")}


def assert_picks_the_speaker(assets, regions: dict[str, list[np.ndarray]], left: str, right: str, frames: int):
    composite = [np.ascontiguousarray(np.concatenate(pair, 1)) for pair in zip(regions[left], regions[right])]
    detector = CachedDetector()
    for speaking, side in ((left, 0), (right, 1)):
        audio = load_audio(assets / f"{speaking}_video.mp4")[: frames * 640]
        point = choose_speaker(composite, audio, detector, limit=frames)
        assert point is not None, f"no choice with {speaking}'s audio"
        assert int(point[0] // (2 * HALF)) == side, f"{speaking}'s audio chose the face at {point}"


@pytest.mark.slow
@pytest.mark.parametrize("left,right", [("demo1", "demo2"), ("demo2", "demo1")])
def test_weight_free_scorer_picks_the_person_speaking_the_audio(assets, speakers, left, right):
    assert_picks_the_speaker(assets, speakers, left, right, FRAMES)


@pytest.mark.slow
def test_weight_free_scorer_over_the_default_ten_seconds_with_the_30_fps_speaker(assets):
    """demo3 (a 30 fps source) moves its lips little in its first 4 s; over the default analysis span of 10 s it is
    told from demo2 with either one's audio."""
    regions = {name: face_region(assets, name, ANALYSIS_FRAMES) for name in ("demo2", "demo3")}
    assert_picks_the_speaker(assets, regions, "demo2", "demo3", ANALYSIS_FRAMES)


def test_silent_audio_means_no_choice(speakers):
    frames = [np.concatenate(pair, 1) for pair in zip(speakers["demo1"][:5], speakers["demo2"][:5])]
    assert choose_speaker(frames, np.zeros(5 * 640, np.float32), CachedDetector()) is None


def test_silent_stretches_need_a_fifth_of_a_second():
    levels = np.full(40, -20.0)
    levels[5:8] = -70  # a 3-frame gap between words
    levels[20:30] = -70
    silent = silent_frames(levels)
    assert not silent[5:8].any() and silent[20:30].all() and silent.sum() == 10


@pytest.mark.slow
def test_silence_metric_is_zero_for_a_still_mouth_and_larger_for_a_talking_one(speakers):
    from latentsync.faces import create_detector

    detector = create_detector("dlib")
    silence = np.zeros(50 * 640, np.float32)
    still = silence_report(mouth_series([speakers["demo1"][0]] * 50, detector), silence)
    talking = silence_report(mouth_series(speakers["demo1"][:50], detector), silence)
    assert still["silent_seconds"] == talking["silent_seconds"] == 2.0
    assert still["silent_movement"] == 0.0
    assert talking["silent_movement"] > 0.3


@pytest.mark.slow
def test_pipeline_dubs_the_face_the_chooser_points_at(speakers, tmp_path):
    """The inference hook: `face_chooser` (what `--face-index speaker` passes) decides whose mouth is redrawn."""
    from latentsync.testing import write_tiny_models

    frames = np.stack([np.concatenate(pair, 1) for pair in zip(speakers["demo1"][:6], speakers["demo2"][:6])])
    pipeline = write_tiny_models(tmp_path).load_pipeline()
    seen = []

    def right_face(video, audio, detector):
        seen.append(len(audio))
        return (3 * HALF, HALF)  # the middle of the right half

    result = pipeline(frames, np.zeros(6 * 640, np.float32), steps=1, progress=False, face_chooser=right_face)
    changed = np.flatnonzero((result.video != frames).any(axis=(0, 1, 3)))
    assert seen == [6 * 640] and len(changed) and changed.min() >= 2 * HALF - 20
    args = build_parser().parse_args(
        ["infer", "--video", "v", "--audio", "a", "--output", "o", "--face-index", "speaker"]
    )
    assert args.face_index == "speaker"
