"""The command line as a new user meets it (issue 9): bad input refused before any model loads, with messages that
name the option, the value and what works; the input never overwritten; every kind of stop cleaned up; the hub
given up at once offline; the same seed the same video; and only the lines a user asked for."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync import cli, hub
from latentsync.audio import load_audio
from latentsync.media import VideoReader, VideoWriter
from latentsync.testing import ASSETS, write_tiny_models, write_wav

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """A 12-frame half-size demo1 clip (one face), 1 s of mono and stereo speech, and broken files."""
    import cv2

    folder = tmp_path_factory.mktemp("media")
    clip = folder / "clip.mp4"
    with VideoWriter(clip, 540, 960, fps=25) as writer:
        for _, frame in zip(range(12), VideoReader(ASSETS / "demo1_video.mp4")):
            writer.write(cv2.resize(frame, (540, 960), interpolation=cv2.INTER_AREA))
    speech = load_audio(ASSETS / "demo2_audio.wav")[:16000]
    stereo = folder / "stereo.wav"
    import wave

    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.repeat(speech[:, None], 2, axis=1) * 32767).astype("<i2").tobytes())
    empty = folder / "empty.mp4"
    empty.touch()
    cut = folder / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:300])
    (folder / "a folder.mp4").mkdir()
    return {
        "clip": clip,
        "mono": write_wav(folder / "mono.wav", speech),
        "stereo": stereo,
        "empty": empty,
        "cut": cut,
        "folder": folder / "a folder.mp4",
    }


def infer(video, audio, output, *extra: str) -> int:
    return cli.main(["infer", "--video", str(video), "--audio", str(audio), "--output", str(output), *extra])


@pytest.fixture
def no_models(monkeypatch):
    """Loading a model or fetching a weight fails the test: the checks must have refused the run before."""
    from latentsync.pipelines.lipsync import LipsyncPipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded or a download started before the input was checked")

    monkeypatch.setattr(LipsyncPipeline, "from_pretrained", forbidden)
    monkeypatch.setattr("latentsync.cli.options.download", forbidden)


BAD = {  # case: (video, audio, output, extra options, words the one-line error must contain)
    "empty video": ("empty", "mono", "out.mp4", [], ["--video", "empty.mp4", "empty (0 bytes)", "video file"]),
    "truncated video": ("cut", "mono", "out.mp4", [], ["--video", "cut.mp4", "no video stream", "truncated", ".mp4"]),
    "wav as video": ("mono", "mono", "out.mp4", [], ["--video", "mono.wav", "no video stream (audio)", "video file"]),
    "png as video": ("png", "mono", "out.mp4", [], ["--video", "mask.png", "still image", "video file"]),
    "folder as video": ("folder", "mono", "out.mp4", [], ["--video", "a folder.mp4", "is a folder"]),
    "missing folder": (
        "clip",
        "mono",
        "no/such/out.mp4",
        [],
        ["--output", "no/such", "output folder does not exist", "create it"],
    ),
    "steps 0": ("clip", "mono", "out.mp4", ["--steps", "0"], ["--steps 0", "at least 1", "20 is the official"]),
    "batch 0": ("clip", "mono", "out.mp4", ["--batch-frames", "0"], ["--batch-frames 0", "at least 1"]),
    "guidance -1": ("clip", "mono", "out.mp4", ["--guidance-scale", "-1"], ["--guidance-scale -1", "at least 1"]),
    "output is the video": ("clip", "mono", "clip.mp4", [], ["--output", "is the input", "new file"]),
    "output links to the video": ("clip", "mono", "link.mp4", [], ["--output", "is the input", "new file"]),
    "device gpu": ("clip", "mono", "out.mp4", ["--device", "gpu"], ["--device gpu", "not a device", "cpu"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_before_any_model_loads(media, tmp_path, capsys, no_models, case) -> None:
    """Items 2, 3, 4, 8, 9: one line naming the option, the value and what would work; exit 2; input untouched."""
    video, audio, output, extra, words = BAD[case]
    paths = {**media, "png": ASSETS / "mask.png"}
    output_path = media["clip"].parent / output if output in ("clip.mp4", "link.mp4") else tmp_path / output
    if output == "link.mp4":
        output_path = tmp_path / output
        output_path.symlink_to(media["clip"])
    before = media["clip"].read_bytes()
    started = time.monotonic()
    code = infer(paths[video], paths[audio], output_path, "--checkpoints", str(tmp_path / "none"), *extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("latentsync: error:") and err.count("\n") == 1
    for word in words:
        assert word in err
    assert time.monotonic() - started < 10
    assert media["clip"].read_bytes() == before
    assert not list(tmp_path.glob("**/.*partial*"))


def test_help_names_every_subcommand_in_one_line_and_each_says_what_it_does() -> None:
    parser = cli.build_parser()
    (sub,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    summaries = {action.dest: action.help for action in sub._choices_actions}
    readme = (REPO / "README.md").read_text()
    assert summaries.keys() == sub.choices.keys() and len(summaries) >= 8
    for name, summary in summaries.items():
        assert summary and "\n" not in summary and len(summary) < 80, name  # one line in `latentsync --help`
        assert sub.choices[name].description, f"`latentsync {name} --help` does not say what it does"
        assert f"latentsync {name} " in readme, f"README does not show `latentsync {name}`"


@pytest.mark.parametrize("name", ["demo2_audio.wav", "demo3_video.mp4"])
def test_the_audio_check_states_what_the_file_holds(name) -> None:
    import av

    from latentsync.cli.checks import check_audio

    with av.open(str(ASSETS / name)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        rate = container.streams.audio[0].sample_rate
    checked = check_audio(ASSETS / name)
    assert checked.sample_rate == rate and checked.duration == pytest.approx(samples / rate, abs=0.05)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_card_is_one_line(media, tmp_path, capsys, no_models) -> None:
    """Item 3: `--device cuda` as README shows, on a machine without a card."""
    assert infer(media["clip"], media["mono"], tmp_path / "out.mp4", "--device", "cuda:0") == 2
    err = capsys.readouterr().err
    assert err.startswith("latentsync: error: --device cuda:0: CUDA is not available") and "available here: cpu" in err


def test_face_choice_far_from_any_face_says_what_was_found(tiny, media, tmp_path, capsys) -> None:
    """Item 8: --face-at far from the face and --face-index past the faces are refused, saying how many and where."""
    output = tmp_path / "out.mp4"
    assert infer(media["clip"], media["mono"], output, "--face-at", "5,5", "--quiet", *tiny.cli_args()) == 2
    err = capsys.readouterr().err
    assert "--face-at 5,5 is far from every face" in err and "frame 0" in err and "1 face, at x " in err
    assert infer(media["clip"], media["mono"], output, "--face-index", "1", "--quiet", *tiny.cli_args()) == 2
    err = capsys.readouterr().err
    assert "--face-index 1" in err and "1 face, at x " in err and "0 to 0" in err and "-1 to -1" in err
    assert not output.exists()


def test_a_normal_run_says_what_it_did_to_the_inputs(tiny, media, tmp_path, capsys) -> None:
    """Items 7 and 11: the face bar counts the 12 video frames (not the 25 audio frames) and ends full; the summary
    says the stereo audio was mixed to mono and cut to the video."""
    assert infer(media["clip"], media["stereo"], tmp_path / "out.mp4", "--steps", "1", *tiny.cli_args()) == 0
    captured = capsys.readouterr()
    last_bar = [part for part in captured.err.split("\r") if part.startswith("Finding faces")][-1]
    assert "100%" in last_bar and "12/12" in last_bar
    assert "mixed to mono" in captured.out and "the audio (1.00 s) was cut to the output's 0.48 s" in captured.out


def test_a_truncated_video_that_still_plays_is_reported(tiny, media, tmp_path, capsys, caplog) -> None:
    """Item 6: the header says 2 s, the frames end well before: a warning, and the summary says so."""
    frames = list(VideoReader(media["clip"]))
    whole = tmp_path / "whole.mp4"
    with VideoWriter(whole, 540, 960, fps=25) as writer:
        for number in range(50):
            writer.write(frames[number % len(frames)])
    data = whole.read_bytes()  # +faststart: the index (with the full duration) comes first
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    assert infer(truncated, media["mono"], tmp_path / "out.mp4", "--steps", "1", *tiny.cli_args()) == 0
    out = capsys.readouterr().out
    assert "the video states 2.0 s but its frames end at" in out
    assert any("truncated" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def run_in_process(tiny, media, tmp_path, stop: signal.Signals, monkeypatch) -> int:
    """Run infer and send this process `stop` once the output has been opened and a frame written."""
    real = VideoWriter.write

    def write_then_stop(self, frame):
        real(self, frame)
        if self.frames_written == 2:
            assert list(tmp_path.glob(".*partial*"))  # the partial file exists at this point
            os.kill(os.getpid(), stop)

    monkeypatch.setattr(VideoWriter, "write", write_then_stop)
    return infer(media["clip"], media["mono"], tmp_path / "out.mp4", "--steps", "1", "--quiet", *tiny.cli_args())


@pytest.mark.parametrize("stop, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tiny, media, tmp_path, capsys, monkeypatch, stop, code) -> None:
    """Item 5: no hidden partial file, no output, and the shell's exit status for the signal."""
    before = signal.getsignal(stop)
    assert run_in_process(tiny, media, tmp_path, stop, monkeypatch) == code
    assert f"stopped by {stop.name}" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*partial*"))
    assert signal.getsignal(stop) == before  # the handler is the command's only while it runs


@pytest.mark.slow
def test_same_seed_same_video(tiny, media, tmp_path) -> None:
    """Item 10: two runs of one command decode to exactly the same frames."""
    outputs = [tmp_path / "first.mp4", tmp_path / "second.mp4"]
    for output in outputs:
        assert infer(media["clip"], media["mono"], output, "--steps", "2", "--quiet", *tiny.cli_args()) == 0
    first, second = (np.stack(list(VideoReader(output, fps=None))) for output in outputs)
    assert first.shape[0] == 12 and np.array_equal(first, second)


def test_offline_hub_fails_at_once_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    """Item 1: HF_HUB_OFFLINE, or a hub that does not answer, fails in well under a second, without .lock files."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.DownloadError, match="HF_HUB_OFFLINE is set"):
        hub.download("1.6", tmp_path / "ckpt")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(hub.DownloadError, match=r"cannot reach the Hugging Face hub at http://127.0.0.1:9"):
        hub.download("1.6", tmp_path / "ckpt")
    assert time.monotonic() - started < 3
    assert not list(tmp_path.rglob("*.lock")) and not list(tmp_path.rglob("*"))


def test_quiet_hides_info_and_verbose_adds_debug(media, tmp_path, caplog) -> None:
    """Item 11: --quiet leaves warnings and errors only; -v (before or after the command) adds debug lines."""
    caplog.set_level(logging.DEBUG)
    for extra in (["--quiet"], []):
        caplog.clear()
        cli.main(
            [
                "infer",
                "--video",
                str(media["clip"]),
                "--audio",
                str(media["mono"]),
                "--output",
                str(tmp_path / "o.mp4"),
                "--steps",
                "0",
                *extra,
            ]
        )
        cli.main(
            [
                "infer",
                "--video",
                str(media["clip"]),
                "--audio",
                str(media["mono"]),
                "--output",
                str(tmp_path / "o.mp4"),
                "--device",
                "gpu",
                *extra,
            ]
        )
        infos = [r for r in caplog.records if r.name.startswith("latentsync") and r.levelno == logging.INFO]
        assert bool(infos) == (not extra), [r.getMessage() for r in infos]
    for verbose in (["-v", "infer"], ["infer", "-v"]):
        caplog.clear()
        cli.main(
            [
                *verbose,
                "--video",
                str(media["clip"]),
                "--audio",
                str(media["mono"]),
                "--output",
                str(tmp_path / "o.mp4"),
                "--device",
                "gpu",
            ]
        )
        assert any(r.levelno == logging.DEBUG and "audio" in r.getMessage() for r in caplog.records)


def test_torch_info_lines_stay_hidden_at_exit(tmp_path) -> None:
    """Item 11: torch's "FakeTensor cache stats" (INFO lines at exit) never show, even when a Ctrl-C cut torch's
    import short before it set up its own loggers (simulated here by undoing that set-up)."""
    script = (
        "import logging, sys, torch._subclasses.fake_tensor\n"
        "torch_log = logging.getLogger('torch'); torch_log.handlers.clear()\n"
        "torch_log.setLevel(logging.NOTSET); torch_log.propagate = True\n"
        "from latentsync import cli\n"
        "sys.exit(cli.main(['infer', '--video', 'missing.mp4', '--audio', 'a.wav', '--output', "
        f"{str(tmp_path / 'o.mp4')!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and "--video missing.mp4: no such file" in done.stderr
    assert "FakeTensor" not in done.stderr and "INFO" not in done.stderr


def test_model_version_has_its_own_name_and_the_old_one_still_works(capsys) -> None:
    """Item 11: `--version` is the program's version at the top level; under a command the model release is
    `--model-version`, and `--version` there still works, with a notice."""
    parser = cli.build_parser()
    args = parser.parse_args(["infer", "--video", "v", "--audio", "a", "--output", "o.mp4", "--model-version", "1.5"])
    assert args.version == "1.5" and "deprecated" not in capsys.readouterr().err
    args = parser.parse_args(["infer", "--video", "v", "--audio", "a", "--output", "o.mp4", "--version", "1.5"])
    assert args.version == "1.5" and "--version here is deprecated, use --model-version 1.5" in capsys.readouterr().err
    assert parser.parse_args(["download", "--model-version", "1.5"]).version == "1.5"
