"""The lip-sync pipeline from Python, on real frames with tiny random-weight models (outputs are noise-like)."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from latentsync.audio import load_audio
from latentsync.faces import NoFaceError
from latentsync.media import VideoReader
from latentsync.pipelines.lipsync import LipsyncPipeline
from latentsync.testing import ASSETS, write_tiny_models

SECOND = 16000


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> LipsyncPipeline:
    return write_tiny_models(tmp_path_factory.mktemp("tiny")).load_pipeline()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """The first 20 frames of demo1 at half size (540 x 960), as a 25 fps array."""
    reader = VideoReader(ASSETS / "demo1_video.mp4")
    out = []
    for frame in reader:
        out.append(cv2.resize(frame, (540, 960), interpolation=cv2.INTER_AREA))
        if len(out) == 20:
            break
    return np.stack(out)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(ASSETS / "demo1_audio.wav")


def run(pipeline, frames, audio, **options):
    return pipeline(frames, audio, steps=1, progress=False, **options)


def changed_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.flatnonzero((a != b).any(axis=(1, 2)))


@pytest.mark.slow
def test_only_the_lower_face_changes_and_the_seed_fixes_the_output(pipeline, frames, speech) -> None:
    result = run(pipeline, frames, speech[: SECOND // 2])  # 0.5 s of audio: 13 frames (cut_off)
    assert result.video.shape == (13, *frames.shape[1:])
    assert result.frames_with_face == 13 and result.audio.shape == (13 * 48000 // 25,)
    for out, src in zip(result.video, frames):
        rows = changed_rows(out, src)
        assert len(rows) > 0
        assert 350 < rows.mean() < 700  # the face of demo1 sits around rows 300-700 at this size
        assert (out[:200] == src[:200]).all() and (out[800:] == src[800:]).all()
    again = run(pipeline, frames, speech[: SECOND // 2])
    np.testing.assert_array_equal(again.video, result.video)
    other = run(pipeline, frames, speech[: SECOND // 2], seed=1)
    assert (other.video != result.video).any()


@pytest.mark.slow
def test_low_vram_gives_the_same_video(pipeline, frames, speech) -> None:
    """--low-vram only moves models and decodes fewer frames at a time: the frames stay the same."""
    frugal = LipsyncPipeline(pipeline.unet, pipeline.vae, pipeline.audio_encoder, pipeline.resolution, low_vram=True)
    plain = run(pipeline, frames, speech[: SECOND // 2])
    low = run(frugal, frames, speech[: SECOND // 2])
    assert np.abs(low.video.astype(int) - plain.video.astype(int)).max() <= 1
    assert (low.video != frames[:13]).any()  # it did lip-sync


@pytest.fixture(scope="module")
def eight_frames_fp32(pipeline, frames, speech) -> np.ndarray:
    return run(pipeline, frames[:8], speech[: 8 * 640]).video


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_gives_nearly_the_fp32_video(pipeline, frames, speech, eight_frames_fp32, dtype) -> None:
    """The GPU precisions, run on the CPU: every tensor meets the models in their dtype, the noise is the same."""
    half = LipsyncPipeline(
        copy.deepcopy(pipeline.unet).to(dtype),
        copy.deepcopy(pipeline.vae).to(dtype),
        pipeline.audio_encoder,
        pipeline.resolution,
        low_vram=True,
    )
    out = run(half, frames[:8], speech[: 8 * 640])
    diff = np.abs(out.video.astype(int) - eight_frames_fp32.astype(int))
    assert diff.max() <= 8 and diff.mean() < 0.05
    assert (out.video != frames[:8]).any()


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, seconds, expected",
    [
        ("cut_off", 2.0, list(range(20))),  # video (20 frames) shorter than audio (50)
        ("loop", 1.2, list(range(20)) + list(range(10))),
        ("bounce", 1.2, list(range(20)) + list(range(18, 8, -1))),
        ("silence", 1.2, list(range(20)) + [19] * 10),
        ("silence", 0.4, list(range(20))),  # video longer: kept whole, audio padded with silence
        ("remap", 0.4, [(2 * k + 1) * 20 // 20 for k in range(10)]),
    ],
)
def test_sync_modes_play_the_planned_frames(pipeline, frames, speech, mode, seconds, expected) -> None:
    result = run(pipeline, frames, speech[: int(seconds * SECOND)], sync_mode=mode)
    assert len(result.video) == len(expected)
    assert len(result.audio) == len(expected) * 48000 // 25
    for out, source_index in zip(result.video, expected):
        # Above the face nothing is touched: it identifies the source frame exactly.
        assert (out[:250] == frames[source_index][:250]).all()


@pytest.mark.slow
def test_frames_without_a_face_pass_through(pipeline, frames, speech) -> None:
    video = frames[:12].copy()
    video[4:8] = 90  # four grey frames: no face to find
    result = run(pipeline, video, speech[: int(0.48 * SECOND)])
    assert result.frames_with_face == 8 and result.frames_without_face == 4
    np.testing.assert_array_equal(result.video[4:8], video[4:8])
    assert (result.video[0] != video[0]).any()
    summary = result.summary()  # what the command prints at the end
    assert summary.startswith("12 frames at 25 fps (cut_off)")
    assert "faces found in 8/12 source frames, 4 output frames passed through unchanged" in summary
    assert all(f"{stage} " in summary for stage in ("audio", "faces", "lip sync"))
    assert result.gpu_memory_peak is None and "GPU" not in summary  # measured on CUDA runs only


def test_no_face_anywhere_fails_before_diffusion(pipeline, speech) -> None:
    with pytest.raises(NoFaceError, match="no face"):
        run(pipeline, np.full((8, 256, 256, 3), 90, np.uint8), speech[:SECOND])


def test_bad_arguments_are_named(pipeline, frames, speech) -> None:
    with pytest.raises(ValueError, match="sync mode"):
        run(pipeline, frames, speech, sync_mode="stretch")
    with pytest.raises(ValueError, match="16 kHz mono"):
        run(pipeline, frames, np.zeros(0, np.float32))


@pytest.mark.slow
def test_progress_is_reported_per_chunk(pipeline, frames, speech) -> None:
    calls: list[tuple[int, int]] = []
    run(pipeline, frames, speech[:SECOND], batch_frames=8, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(8, 20), (16, 20), (20, 20)]


def test_unsupported_crop_resolution_is_refused(tmp_path) -> None:
    from latentsync.config import ConfigError

    tiny = write_tiny_models(tmp_path)
    config = tmp_path / "odd.yaml"
    config.write_text(tiny.unet_config.read_text().replace("resolution: 64", "resolution: 100"))
    with pytest.raises(ConfigError, match="resolution 100"):
        LipsyncPipeline.from_pretrained(
            unet_config=config,
            unet_checkpoint=tiny.unet_checkpoint,
            whisper_checkpoint=tiny.whisper_checkpoint,
            vae=tiny.vae,
            device="cpu",
        )
