"""`latentsync infer` end to end on the real clips, with tiny random-weight models the tests write."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from latentsync import cli
from latentsync.audio import load_audio
from latentsync.config import bundled_config
from latentsync.media import VideoReader, VideoWriter, probe
from latentsync.testing import ASSETS, psnr, write_tiny_models, write_wav


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def one_second(tmp_path_factory) -> Path:
    speech = load_audio(ASSETS / "demo2_audio.wav")[:16000]
    return write_wav(tmp_path_factory.mktemp("audio") / "speech 1s.wav", speech)


def infer(tiny, video, audio, output, *extra: str) -> int:
    return cli.main(
        [
            "infer",
            "--video",
            str(video),
            "--audio",
            str(audio),
            "--output",
            str(output),
            "--steps",
            "1",
            "--quiet",
            *tiny.cli_args(),
            *extra,
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["demo1_video.mp4", "demo3_video.mp4"])  # 25 fps and 30 fps sources
def test_lip_syncs_a_real_clip_at_its_own_resolution(tiny, one_second, tmp_path, clip) -> None:
    output = tmp_path / "out dir with 'quotes'" / "result.mp4"
    output.parent.mkdir()
    assert infer(tiny, ASSETS / clip, one_second, output) == 0

    info = probe(output)
    source = probe(ASSETS / clip)
    assert (info.width, info.height) == (source.width, source.height)
    assert info.fps == 25 and info.frame_count == 25 and info.has_audio
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert len(load_audio(output)) == pytest.approx(16000, abs=1100)  # one AAC frame of slack

    out_frames = list(VideoReader(output))
    src_frames = [f for f, _ in zip(VideoReader(ASSETS / clip), range(25))]
    for out, src in zip(out_frames[::6], src_frames[::6]):
        assert psnr(out[:500], src[:500]) > 35  # above the face: only codec noise
        assert psnr(out[1300:], src[1300:]) > 35  # below the chin likewise
    face = slice(650, 1050)
    assert min(psnr(o[face], s[face]) for o, s in zip(out_frames, src_frames)) < 30  # the mouth was regenerated
    assert not list(output.parent.glob(".*partial*"))


@pytest.fixture(scope="module")
def faceless_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "wall.mp4"
    with VideoWriter(path, 320, 240, fps=25) as writer:
        for i in range(10):
            writer.write(np.full((240, 320, 3), 60 + i, np.uint8))
    return path


def bad_inputs(tmp_path: Path, one_second: Path, faceless: Path) -> dict[str, tuple[Path, Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0))
    frameless = tmp_path / "frameless.mp4"
    with av.open(str(frameless), "w") as container:  # a video track with not a single frame in it
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 64
        container.mux(stream.encode(None))
    broken_config = tmp_path / "typo.yaml"
    broken_config.write_text(bundled_config("unet/stage2.yaml").read_text().replace("num_frames:", "num_frame:"))
    return {
        "missing video": (tmp_path / "nope.mp4", one_second, "no such file"),
        "not media": (text, one_second, "notes.mp4"),
        "missing audio": (ASSETS / "demo1_video.mp4", tmp_path / "nope.wav", "no such file"),
        "empty audio": (ASSETS / "demo1_video.mp4", empty, "empty.wav"),
        "audio not media": (ASSETS / "demo1_video.mp4", ASSETS / "mask.png", "mask.png"),
        "no face": (faceless, one_second, "no face"),
        "video without frames": (frameless, one_second, "frameless.mp4"),
        "config typo": (ASSETS / "demo1_video.mp4", one_second, "num_frame"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing video",
        "not media",
        "missing audio",
        "empty audio",
        "audio not media",
        "no face",
        "video without frames",
        "config typo",
    ],
)
def test_bad_input_is_a_clear_error_with_no_output(tiny, one_second, faceless_video, tmp_path, capsys, case) -> None:
    video, audio, words = bad_inputs(tmp_path, one_second, faceless_video)[case]
    output = tmp_path / "out.mp4"
    extra = ["--unet-config", str(tmp_path / "typo.yaml")] if case == "config typo" else []
    assert infer(tiny, video, audio, output, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentsync: error:") and words in err
    assert not output.exists() and not list(tmp_path.glob(".*partial*"))


def test_checkpoint_that_does_not_fit_the_config_names_the_keys(tiny, one_second, tmp_path, capsys) -> None:
    output = tmp_path / "out.mp4"
    config = tmp_path / "stage1.yaml"
    config.write_text(tiny.unet_config.read_text().replace("use_motion_module: true", "use_motion_module: false"))
    assert infer(tiny, ASSETS / "demo1_video.mp4", one_second, output, "--unet-config", str(config)) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and "motion_modules" in err
    assert not output.exists()


def test_missing_weights_name_the_download_command(one_second, tmp_path, capsys) -> None:
    output = tmp_path / "out.mp4"
    code = cli.main(
        [
            "infer",
            "--video",
            str(ASSETS / "demo1_video.mp4"),
            "--audio",
            str(one_second),
            "--output",
            str(output),
            "--checkpoints",
            str(tmp_path / "ckpt"),
            "--no-download",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "latentsync_unet.pt" in err and "latentsync download --model-version 1.6" in err


def test_unusable_output_path_fails_before_any_work(tiny, one_second, tmp_path, capsys) -> None:
    assert infer(tiny, ASSETS / "demo1_video.mp4", one_second, tmp_path / "result.gif") == 2
    assert "one of .mp4" in capsys.readouterr().err
    assert infer(tiny, ASSETS / "demo1_video.mp4", one_second, tmp_path / "no" / "such" / "dir.mp4") == 2
    assert "output folder does not exist" in capsys.readouterr().err


BITS = 4  # frame numbers written as black/white 48 px squares along the top edge, far from the face


def stamp(frame: np.ndarray, number: int) -> np.ndarray:
    frame = frame.copy()
    for bit in range(BITS):
        frame[:48, 48 * bit : 48 * (bit + 1)] = 255 if number >> bit & 1 else 0
    return frame


def read_stamp(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if frame[8:40, 48 * bit + 8 : 48 * bit + 40].mean() > 128)


@pytest.mark.slow
@pytest.mark.parametrize("low_vram, remedy", [(False, "run with --low-vram"), (True, "--model-version 1.5")])
def test_gpu_out_of_memory_names_the_remedy(
    tiny, one_second, short_clip, tmp_path, capsys, monkeypatch, low_vram, remedy
) -> None:
    """CUDA's out-of-memory error in the middle of a video: a one-line error saying what to try, no output."""
    from latentsync.pipelines.diffusion import ChunkDenoiser

    real = ChunkDenoiser.__call__
    calls = []

    def second_chunk_runs_out(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ChunkDenoiser, "__call__", second_chunk_runs_out)
    output = tmp_path / "out.mp4"
    extra = ["--batch-frames", "4", *(["--low-vram"] if low_vram else [])]
    assert infer(tiny, short_clip, one_second, output, *extra) == 2
    err = capsys.readouterr().err
    assert "the GPU ran out of memory" in err and remedy in err and len(calls) == 2
    assert not output.exists() and not list(tmp_path.glob(".*partial*"))


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """12 numbered frames of demo1 at half size: short enough that 1 s of audio makes bounce play backward."""
    import cv2

    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    with VideoWriter(path, 540, 960, fps=25) as writer:
        for number, frame in zip(range(12), VideoReader(ASSETS / "demo1_video.mp4")):
            writer.write(stamp(cv2.resize(frame, (540, 960), interpolation=cv2.INTER_AREA), number))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, order", [("bounce", [*range(12), *range(10, -1, -1), 1, 2]), ("loop", [*range(12)] * 2 + [0])]
)
def test_sync_modes_replay_the_file_in_plan_order(tiny, one_second, short_clip, tmp_path, mode, order) -> None:
    output = tmp_path / f"{mode}.mp4"
    assert infer(tiny, short_clip, one_second, output, "--sync-mode", mode) == 0
    assert [read_stamp(frame) for frame in VideoReader(output)] == order
