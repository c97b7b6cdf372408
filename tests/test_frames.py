"""Random access by output position: the frames VideoReader yields, in any order, with bounded memory."""

from __future__ import annotations

import weakref
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
import pytest

from latentsync.media import FrameSource, MediaError, Timeline, VideoReader, plan_sync
from latentsync.media import frames as frames_module

X265_OPEN_GOP = "keyint=8:min-keyint=8:open-gop=1:bframes=3:scenecut=0:log-level=error"
ONE_KEYFRAME = {"sc_threshold": "0"}  # the bars change abruptly: without this x264 makes each change a keyframe

# name: (file name, frame rate, frame count, encoder, encoder options, pts time base or None for 1/rate)
CLIPS = {
    "h264-30fps": ("h264.mp4", 30, 45, "libx264", {"g": "8"}, None),
    "hevc-open-gop-30fps": ("hevc.mp4", 30, 45, "libx265", {"x265-params": X265_OPEN_GOP}, None),
    "h264-24fps-mkv": ("h264.mkv", 24, 40, "libx264", {"g": "8"}, None),
    "vp9-25fps-webm": ("vp9.webm", 25, 40, "libvpx-vp9", {"g": "8"}, None),
    "h264-25fps-jitter-mkv": ("jitter.mkv", 25, 40, "libx264", {"g": "8"}, Fraction(1, 1000)),
    "h264-25fps-one-keyframe": ("single.mp4", 25, 40, "libx264", ONE_KEYFRAME, None),
}
JITTER_MS = [0, 12, -15, 7, 19, -19, 3, 0, 15, -8]  # all under half a 25 fps frame


def coded_clip(path: Path, rate: int, count: int, codec: str, options: dict, time_base: Fraction | None) -> Path:
    """A 64x48 clip (B-frames, keyframes as `options` say) whose frame i shows i in binary as 8 black or
    white bars, so a frame survives lossy coding recognisably."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i in range(count):
            bars = np.repeat(255 * ((i >> np.arange(8)) & 1).astype(np.uint8), 8)
            frame = av.VideoFrame.from_ndarray(np.repeat(bars[None, :, None], 48, 0).repeat(3, 2), format="rgb24")
            if time_base is None:
                frame.pts, frame.time_base = i, Fraction(1, rate)
            else:
                frame.pts, frame.time_base = 40 * i + 20 + JITTER_MS[i % 10], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def numbers(frames: list[np.ndarray]) -> list[int]:
    """The frame numbers coded_clip drew."""
    return [int((frame[:, :, 0].reshape(48, 8, 8).mean(axis=(0, 2)) > 128) @ (1 << np.arange(8))) for frame in frames]


class Clip(NamedTuple):
    path: Path
    reference: list[np.ndarray]  # every frame VideoReader yields at 25 fps
    count: int  # frames in the file


@pytest.fixture(scope="module", params=list(CLIPS))
def clip(request, tmp_path_factory) -> Clip:
    name, rate, count, *spec = CLIPS[request.param]
    path = coded_clip(tmp_path_factory.mktemp(request.param) / name, rate, count, *spec)
    return Clip(path, list(VideoReader(path)), count)


def chunked(indices, size: int):
    return [indices[start : start + size] for start in range(0, len(indices), size)]


def assert_same(got: list[np.ndarray], reference: list[np.ndarray], indices) -> None:
    assert len(got) == len(indices)
    for k, (frame, index) in enumerate(zip(got, indices)):
        np.testing.assert_array_equal(frame, reference[index], err_msg=f"request position {k} (output frame {index})")


# ---------------------------------------------------------------- synthetic clips


def test_forward_chunks_decode_each_frame_once(clip):
    path, reference, count = clip
    source = FrameSource(path)
    n = len(reference)
    assert len(source) == n > 30
    for chunk in chunked(list(range(n)), 16):
        assert_same(source.get(chunk), reference, chunk)
    assert (source.stats.seeks, source.stats.decoded) == (1, count)  # one start, no re-decoding
    assert source.stats.converted == len({frame.tobytes() for frame in reference})  # held frames not redone


def test_a_far_jump_ahead_seeks_instead_of_decoding_through(tmp_path):
    # With a keyframe every 8 frames, 90 is reached from 88; with a single keyframe, only by decoding 0..90.
    for keyframes, seeks, decoded in (({"g": "8"}, 2, 1 + 3), (ONE_KEYFRAME, 1, 91)):
        path = coded_clip(tmp_path / f"{seeks}.mp4", 25, 100, "libx264", keyframes, None)
        source = FrameSource(path)
        assert numbers(source.get([0]) + source.get([90])) == [0, 90]
        assert (source.stats.seeks, source.stats.decoded) == (seeks, decoded)


@pytest.mark.parametrize(
    "mode, audio_per_video", [("loop", 2.5), ("bounce", 2.5), ("silence", 2.5), ("remap", 2.5), ("remap", 0.4)]
)
def test_sync_plan_orders_match_the_reader(clip, mode, audio_per_video):
    path, reference, _ = clip
    plan = plan_sync(mode, len(reference), n_audio=audio_per_video * len(reference) + 0.3)
    with FrameSource(path) as source:
        for chunk in chunked(plan.frame_indices, 16):
            assert_same(source.get(chunk), reference, chunk)


def test_random_order_with_repeats_matches_the_reader(clip):
    path, reference, _ = clip
    order = np.random.default_rng(0).integers(0, len(reference), 60)
    with FrameSource(path) as source:
        for chunk in chunked(order, 7):
            assert_same(source.get(chunk), reference, chunk)


def test_bounce_backward_run_over_the_whole_clip(clip):
    path, reference, _ = clip
    n = len(reference)
    backward = list(range(n - 2, 0, -1))
    source = FrameSource(path)
    source.get([n - 1])
    got = []
    for chunk in chunked(backward, 16):
        got += source.get(chunk)
    assert_same(got, reference, backward)
    shown = numbers(got)
    assert shown == sorted(shown, reverse=True) and shown[0] > shown[-1]
    assert source.stats.seeks == 1 + len(chunked(backward, 16))  # one seek per backward chunk
    assert_same(source.get(backward), reference, backward)  # and in a single request


def test_memory_holds_the_requested_frames_plus_one(clip, monkeypatch):
    path, reference, _ = clip
    live: list[weakref.ref] = []
    allowed = 0
    real_upright = frames_module.upright

    def counted_upright(pixels, rotation):
        live[:] = [ref for ref in live if ref() is not None]
        assert len(live) + 1 <= allowed, "more RGB frames alive than the request needs plus the held one"
        frame = real_upright(pixels, rotation)
        live.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(frames_module, "upright", counted_upright)
    n = len(reference)
    requests = chunked(plan_sync("bounce", n, 3 * n).frame_indices, 16) + [[3, 3, 1, 1, n - 1, 0, 2]] * 2
    source = FrameSource(path)
    for request in requests:
        allowed = len(set(request)) + 1
        got = source.get(request)
        assert_same(got, reference, request)
        del got
        assert sum(ref() is not None for ref in live) <= 1


def test_returned_frames_are_independent_of_the_held_one(clip):
    path, reference, _ = clip
    with FrameSource(path) as source:
        first, again = source.get([5, 5])
        first[:] = 0
        again[:] = 1
        assert_same(source.get([5]), reference, [5])


# ---------------------------------------------------------------- errors


def test_out_of_range_and_bad_indices_are_named(tmp_path):
    path = coded_clip(tmp_path / "clip.mp4", 25, 20, "libx264", {}, None)
    source = FrameSource(path)
    assert source.get([]) == []
    for bad, named in (([0, 20], "frame index 20 is out of range"), ([-1], "frame index -1 is out of range")):
        with pytest.raises(MediaError, match=named) as caught:
            source.get(bad)
        assert "has 20 frames" in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(MediaError, match="must be integers"):
        source.get([1.5])
    source.close()
    assert numbers(source.get([19, 0])) == [19, 0]  # reopens after close


def test_a_stream_without_timestamps_is_refused(tmp_path):
    path = coded_clip(tmp_path / "raw.h264", 25, 10, "libx264", {}, None)  # an elementary stream has none
    with pytest.raises(MediaError, match="carry no timestamps"):
        Timeline.read(path, Fraction(25))
    with pytest.raises(MediaError, match="no duration"):  # probe refuses it before that
        FrameSource(path)


# ---------------------------------------------------------------- the real clips


@pytest.mark.parametrize("name, count, keyframes", [("demo1", 250, [0]), ("demo3", 500, [0, 250, 500])])
def test_real_clips_in_any_order(assets, name, count, keyframes):
    path = assets / f"{name}_video.mp4"
    source = FrameSource(path)
    assert len(source) == count  # exact, from the packets alone
    assert source.timeline.keyframes.tolist() == keyframes
    reference = [frame for _, frame in zip(range(24), VideoReader(path))]
    for request in ([23, 22, 21, 20, 19], [3, 2, 1, 0, 1, 2], [4, 23, 5, 5, 12, 11]):
        assert_same(source.get(request), reference, request)
    assert source.stats.seeks == 2  # the first start, then one for going back


@pytest.mark.slow
def test_demo3_backward_across_its_open_gop_keyframes(assets):
    path = assets / "demo3_video.mp4"
    wanted = {*range(200, 216), *range(410, 426)}  # around the keyframes at source frames 250 and 500
    reference = {}
    for index, frame in enumerate(VideoReader(path)):
        if index in wanted:
            reference[index] = frame
        if index == max(wanted):
            break
    source = FrameSource(path)
    for request in (list(range(425, 409, -1)), list(range(215, 199, -1)), [416, 417, 207, 208, 209, 418]):
        assert_same(source.get(request), reference, request)
