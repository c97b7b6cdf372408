"""Video probing, retimed streaming reads, atomic H.264/AAC writing and the sync-mode plans."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from latentsync.audio import load_audio
from latentsync.media import MediaError, SyncError, VideoReader, VideoWriter, plan_sync, probe, retime
from latentsync.testing import decode_frames, psnr

# Source frames shown by the first five 25 fps output frames of every 6-frame group of a 30 fps clip
# (ffmpeg fps filter, round=near: the frame starting at 2.5 output frames rounds up, so frame 3 of
# each group is dropped).
THIRTY_TO_25 = (0, 1, 2, 4, 5)


def make_clip(path: Path, pts: list[int], time_base: Fraction, rotation: int = 0, upright_frames=None) -> None:
    """A tiny lossless clip whose frame i is flat grey at level 8*(i % 32) (left) and 8*(i // 32) (right),
    or the given upright frames stored turned so that `rotation` (ccw degrees) makes them upright again."""
    if upright_frames is None:
        images = np.empty((len(pts), 48, 64, 3), np.uint8)
        for i, image in enumerate(images):
            image[:, :32], image[:, 32:] = 8 * (i % 32), 8 * (i // 32)
    else:
        images = [np.ascontiguousarray(np.rot90(image, -rotation // 90)) for image in upright_frames]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(1 / (time_base * (pts[1] - pts[0]))))
        stream.codec_context.time_base = time_base
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv444p", {"qp": "0"}
        if rotation:
            stream.set_display_rotation(rotation)
        for stamp, image in zip(pts, images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def frame_ids(frames) -> list[int]:
    """Recover make_clip's frame numbers from the grey levels."""
    return [round(f[:, :32].mean() / 8) + 32 * round(f[:, 32:].mean() / 8) for f in frames]


@pytest.mark.parametrize(
    "name, fps, count, duration, at25",
    [("demo1", 25, 250, 10.0, 250), ("demo2", 25, 502, 20.08, 502), ("demo3", 30, 600, 20.0, 500)],
)
def test_probe_reads_the_demo_clips(assets, name, fps, count, duration, at25):
    info = probe(assets / f"{name}_video.mp4")
    assert (info.width, info.height, info.codec, info.rotation) == (1080, 1920, "hevc", 0)
    assert info.fps == fps and info.frame_count == count and info.frame_count_exact
    assert info.duration == pytest.approx(duration)
    assert info.has_audio
    assert info.frames_at(25) == at25


def test_probe_errors_name_the_file_and_the_problem(assets, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    no_frames = tmp_path / "empty video.mkv"
    with av.open(str(no_frames), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height = 64, 48
        audio = container.add_stream("aac", rate=16000, layout="mono")
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        silence.sample_rate, silence.pts = 16000, 0
        container.mux(audio.encode(silence))
        container.mux(audio.encode(None))
    cases = [
        (tmp_path / "missing.mp4", "no such file"),
        (text, "not a readable media file"),
        (assets / "demo1_audio.wav", "has no video stream"),
        (no_frames, "no decodable frames"),
    ]
    for path, problem in cases:
        with pytest.raises(MediaError, match=problem) as caught:
            probe(path)
        assert str(path) in str(caught.value)
        assert isinstance(caught.value, ValueError)


def test_probe_estimates_the_frame_count_when_the_container_has_none(tmp_path):
    path = tmp_path / "clip.mkv"  # Matroska stores no frame count
    make_clip(path, list(range(30)), Fraction(1, 30))
    info = probe(path)
    assert (info.frame_count, info.frame_count_exact, info.fps, info.frames_at(25)) == (30, False, 30, 25)
    assert info.duration == pytest.approx(1.0)


# ---------------------------------------------------------------- reading


def test_retime_follows_the_fps_filter_rule():
    def run(n, rate):
        return list(retime(((i, Fraction(i, rate), Fraction(i + 1, rate)) for i in range(n)), Fraction(25)))

    assert run(12, 30) == [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]
    assert run(24, 24) == list(range(12)) + [11] + list(range(12, 24))  # 24 -> 25 holds frame 11
    assert run(7, 25) == list(range(7))
    assert run(0, 25) == []


def test_25fps_real_clip_reads_unchanged(assets):
    path = assets / "demo1_video.mp4"
    expected = decode_frames(path, 12)
    got = [frame for _, frame in zip(range(12), VideoReader(path))]
    assert got[0].shape == (1920, 1080, 3) and got[0].dtype == np.uint8 and got[0].flags.c_contiguous
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(have, want)


def test_30fps_real_clip_drops_one_frame_in_six(assets):
    path = assets / "demo3_video.mp4"
    source = decode_frames(path, 18)
    got = [frame for _, frame in zip(range(15), VideoReader(path, fps=25))]
    wanted = [6 * (k // 5) + THIRTY_TO_25[k % 5] for k in range(15)]
    for k, (index, frame) in enumerate(zip(wanted, got)):
        np.testing.assert_array_equal(frame, source[index], err_msg=f"output frame {k}")


@pytest.mark.slow
def test_30fps_real_clip_yields_duration_times_25_frames(assets):
    reader = VideoReader(assets / "demo3_video.mp4")
    assert sum(len(chunk) for chunk in reader.iter_chunks(50)) == reader.info.frames_at(25) == 500


@pytest.mark.parametrize(
    "rate, count, expected",
    [
        (30, 33, [6 * (k // 5) + THIRTY_TO_25[k % 5] for k in range(28)]),  # 1.1 s -> 27.5 -> 28 frames
        (24, 30, list(range(12)) + [11] + list(range(12, 30))),  # 1.25 s -> 31.25 -> 31 frames
    ],
)
def test_reader_retimes_whole_clips(tmp_path, rate, count, expected):
    path = tmp_path / f"clip{rate}.mp4"
    make_clip(path, list(range(count)), Fraction(1, rate))
    reader = VideoReader(path)
    frames = list(reader)
    assert len(frames) == reader.info.frames_at(25) == len(expected)
    assert frame_ids(frames) == expected
    assert frame_ids(VideoReader(path, fps=None)) == list(range(count))


def test_jittery_25fps_timestamps_still_read_every_frame_once(tmp_path):
    path = tmp_path / "jitter.mp4"
    jitter = [0, 12, -15, 7, 19, -19, 3, 0, 15, -8] * 3  # milliseconds, all under half a frame
    make_clip(path, [40 * i + 20 + j for i, j in enumerate(jitter)], Fraction(1, 1000))
    assert frame_ids(VideoReader(path)) == list(range(30))


def test_chunks_cover_the_stream_in_order(tmp_path):
    path = tmp_path / "chunks.mp4"
    make_clip(path, list(range(23)), Fraction(1, 25))
    chunks = list(VideoReader(path).iter_chunks(8))
    assert [c.shape for c in chunks] == [(8, 48, 64, 3), (8, 48, 64, 3), (7, 48, 64, 3)]
    assert frame_ids(np.concatenate(chunks)) == list(range(23))
    with pytest.raises(ValueError):
        next(VideoReader(path).iter_chunks(0))


def test_display_rotation_is_applied(tmp_path):
    upright = np.zeros((3, 64, 48, 3), np.uint8)  # portrait, marker in the top-left corner
    upright[:, :16, :16] = 255
    for rotation, expected in ((90, 90), (-90, 270), (180, 180)):
        path = tmp_path / f"rotated{rotation}.mp4"
        make_clip(path, [0, 1, 2], Fraction(1, 25), rotation=rotation, upright_frames=upright)
        info = probe(path)
        assert (info.width, info.height, info.rotation) == (48, 64, expected)
        frame = next(iter(VideoReader(path)))
        assert frame.shape == (64, 48, 3)
        assert frame[:16, :16].mean() > 250 and frame[16:].mean() < 5


def test_full_range_sources_keep_their_levels(tmp_path):
    levels = np.array([10, 128, 245], np.uint8)  # outside 16..235 only a full-range decode keeps them
    image = np.repeat(np.repeat(levels, 32)[None, :, None], 32, axis=0).repeat(3, axis=2)
    path = tmp_path / "full range.mkv"
    with av.open(str(path), "w") as container:  # VP9 decodes to yuv420p + a range flag (H.264 would use yuvj420p)
        stream = container.add_stream("libvpx-vp9", rate=25)
        stream.width, stream.height, stream.options = 96, 32, {"lossless": "1"}
        stream.codec_context.color_range = 2  # JPEG / "pc"
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p", dst_color_range="JPEG")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    back = next(iter(VideoReader(path))).astype(int)
    assert np.abs(back.reshape(32, 3, 32, 3)[8:24, :, 8:24].mean(axis=(0, 2, 3)) - levels).max() < 3


# ---------------------------------------------------------------- writing


@pytest.fixture(scope="module")
def small_frames(assets) -> list[np.ndarray]:
    """25 real frames downscaled to 270x480 (a quarter of 1080x1920 per side)."""
    frames = [f for _, f in zip(range(25), VideoReader(assets / "demo1_video.mp4"))]
    return [cv2.resize(f, (270, 480), interpolation=cv2.INTER_AREA) for f in frames]


def test_written_clip_reads_back_with_audio(tmp_path, small_frames):
    path = tmp_path / "out.mp4"
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)  # 1.0 s
    with VideoWriter(path, 270, 480, audio=audio) as writer:
        for frame in small_frames:
            writer.write(frame)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as readable as any new file, despite the rename
    info = probe(path)
    assert (info.width, info.height, info.fps, info.frame_count) == (270, 480, 25, 25)
    assert info.has_audio and info.duration == pytest.approx(1.0)
    with av.open(str(path)) as container:
        audio_stream = container.streams.audio[0]
        assert (audio_stream.codec_context.name, audio_stream.sample_rate) == ("aac", 16000)
        assert float(audio_stream.duration * audio_stream.time_base) == pytest.approx(1.0, abs=1024 / 16000)
    decoded = list(VideoReader(path))
    assert len(decoded) == 25
    assert min(psnr(a, b) for a, b in zip(decoded, small_frames)) > 35


def test_odd_sizes_lose_a_row_and_column_and_odd_paths_work(tmp_path, small_frames):
    path = tmp_path / "my 'odd' \"clip\".mp4"
    with VideoWriter(path, 269, 479) as writer:
        for frame in small_frames[:3]:
            writer.write(frame[:479, :269])
    info = probe(path)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (268, 478, 3, False)
    first = next(iter(VideoReader(path)))
    assert psnr(first, small_frames[0][:478, :268]) > 35


def test_failures_leave_no_output_and_no_temp_file(tmp_path, small_frames):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 270, 480, audio=np.zeros(16000, np.float32)) as writer:
            for frame in small_frames[:10]:
                writer.write(frame)
            assert [p.suffixes[-2:] for p in tmp_path.iterdir()] == [[".partial", ".mp4"]]  # data went out
            raise RuntimeError("boom")
    with pytest.raises(MediaError, match="expected uint8"):
        with VideoWriter(path, 270, 480) as writer:
            writer.write(small_frames[0][:100])
    with pytest.raises(MediaError, match="no frames were written"):
        with VideoWriter(path, 270, 480):
            pass
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_file(tmp_path, small_frames):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 270, 480) as writer:
        writer.write(small_frames[0])
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, 270, 480, audio=np.zeros(16000, np.float32)) as writer:
            for frame in small_frames[:10]:
                writer.write(frame)
            raise KeyboardInterrupt
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_saturated_colours_survive_the_round_trip(tmp_path):
    colours = np.array(
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [40, 200, 220], [128, 128, 128]], np.uint8
    )
    frame = np.repeat(np.repeat(colours[None], 32, axis=0), 32, axis=1)  # 32x192, six flat patches
    path = tmp_path / "colours.mp4"
    with VideoWriter(path, 192, 32) as writer:
        writer.write(frame)
    back = next(iter(VideoReader(path))).astype(int)
    patch_means = back.reshape(32, 6, 32, 3)[8:24, :, 8:24].mean(axis=(0, 2))
    assert np.abs(patch_means - colours).max() < 4


def test_writer_takes_int16_audio(tmp_path):
    tone = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440) * 16000).astype(np.int16)
    path = tmp_path / "int16.mp4"
    with VideoWriter(path, 64, 48, fps=25, audio=tone, sample_rate=16000) as writer:
        for _ in range(25):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    back = load_audio(path)
    assert abs(len(back) - 16000) <= 1024
    assert 0.3 < np.abs(back[2000:14000]).max() < 0.6  # 16000 / 32768 ~ 0.49: scaled, not clipped or silent


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(MediaError, match="float samples"):
        VideoWriter(tmp_path / "a.mp4", 64, 48, audio=np.zeros(100, np.int32))
    with pytest.raises(MediaError, match="channels"):
        VideoWriter(tmp_path / "a.mp4", 64, 48, audio=np.zeros((3, 100), np.float32))
    with pytest.raises(MediaError, match="cannot write this kind of file"):
        with VideoWriter(tmp_path / "a.unknown", 64, 48):
            pass
    with pytest.raises(MediaError, match="parent directory does not exist"):
        with VideoWriter(tmp_path / "missing" / "a.mp4", 64, 48):
            pass
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- sync plans


def test_sync_plans_when_the_video_is_shorter():
    n_video, n_audio = 4, 9.5  # 10 output frames cover the audio; 0.5 frame of silence pads it
    expected = {
        "cut_off": [0, 1, 2, 3],
        "loop": [0, 1, 2, 3, 0, 1, 2, 3, 0, 1],
        "bounce": [0, 1, 2, 3, 2, 1, 0, 1, 2, 3],
        "silence": [0, 1, 2, 3, 3, 3, 3, 3, 3, 3],
        "remap": [0, 0, 1, 1, 1, 2, 2, 3, 3, 3],
    }
    for mode, frames in expected.items():
        plan = plan_sync(mode, n_video, n_audio)
        assert plan.frame_indices.dtype == np.int32
        assert plan.frame_indices.tolist() == frames and plan.n_frames == len(frames), mode
        assert plan.audio_samples == 640 * len(frames), mode
        assert plan.pad_samples == (0 if mode == "cut_off" else 640 * len(frames) - 6080), mode


def test_sync_plans_when_the_video_is_longer():
    n_video, n_audio = 10, 4
    for mode in ("cut_off", "loop", "bounce"):
        plan = plan_sync(mode, n_video, n_audio)
        assert plan.frame_indices.tolist() == [0, 1, 2, 3] and plan.pad_samples == 0, mode
    silence = plan_sync("silence", n_video, n_audio)
    assert silence.frame_indices.tolist() == list(range(10)) and silence.pad_samples == 6 * 640
    assert plan_sync("remap", n_video, n_audio).frame_indices.tolist() == [1, 3, 6, 8]


def test_sync_plan_edge_cases_and_audio_fitting():
    assert plan_sync("bounce", 1, 3).frame_indices.tolist() == [0, 0, 0]
    assert plan_sync("bounce", 2, 5).frame_indices.tolist() == [0, 1, 0, 1, 0]
    assert plan_sync("remap", 7, 7).frame_indices.tolist() == list(range(7))
    assert plan_sync("loop", 3, 6.0000000001).n_frames == 6  # float noise does not add a frame
    assert plan_sync("loop", np.int64(4), np.float32(9.5)).pad_samples == 320  # numpy scalars work
    long_plan = plan_sync("loop", 250, 90_000)  # an hour of audio stays a small int32 array
    assert long_plan.frame_indices.nbytes == 360_000 and long_plan.frame_indices[-1] == 89_999 % 250
    plan = plan_sync("silence", 5, 2.5)
    fitted = plan.fit_audio(np.ones(1600, np.float32))
    assert fitted.shape == (3200,) and fitted[:1600].all() and not fitted[1600:].any()
    assert plan_sync("cut_off", 2, 5).fit_audio(np.ones((2, 3200))).shape == (2, 1280)
    for bad in (("shuffle", 5, 5), ("loop", 0, 5), ("loop", 5, 0)):
        with pytest.raises(SyncError):
            plan_sync(*bad)
