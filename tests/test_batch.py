"""`latentsync batch`: jobs files, failures that do not stop the batch, resuming, worker processes and Ray actors."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from latentsync import cli
from latentsync.audio import load_audio
from latentsync.batch import (
    RECORDS_FILE,
    JobRecord,
    JobsFileError,
    ModelSpec,
    Records,
    probe_inputs,
    read_jobs,
    run_in_process,
    run_processes,
)
from latentsync.cli.options import job_options
from latentsync.media import VideoWriter, probe
from latentsync.testing import ASSETS, decode_frames, write_tiny_models, write_wav

DEFAULTS = {"steps": 20, "seed": 1247, "sync_mode": "cut_off", "face_index": None, "face_at": None}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Half a second of demo1 and demo3 at a third of their size (a real face, quick to run), speech, and a wall."""
    folder = tmp_path_factory.mktemp("media")
    paths = {}
    for name in ("demo1", "demo3"):
        paths[name] = folder / f"{name}.mp4"
        with VideoWriter(paths[name], 360, 640, fps=25) as writer:
            for frame in decode_frames(ASSETS / f"{name}_video.mp4", 13):
                writer.write(cv2.resize(frame, (360, 640), interpolation=cv2.INTER_AREA))
    paths["speech"] = write_wav(folder / "speech.wav", load_audio(ASSETS / "demo2_audio.wav")[:8000])
    paths["wall"] = folder / "wall.mp4"
    with VideoWriter(paths["wall"], 320, 240, fps=25) as writer:
        for i in range(10):
            writer.write(np.full((240, 320, 3), 60 + i, np.uint8))
    return paths


@pytest.fixture(scope="module")
def file_server(media):
    """Serves the media folder on the loopback address."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(media["speech"].parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def batch(tiny, jobs: Path, out: Path, *extra: str) -> int:
    return cli.main(
        ["batch", str(jobs), "--output-dir", str(out), "--steps", "1", "--quiet", "--json", *tiny.cli_args(), *extra]
    )


def summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


# -- the jobs file ------------------------------------------------------------------------------------------------
def test_rows_override_the_command_line_defaults(media, tmp_path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "video,audio,output,steps,seed,sync_mode,guidance_scale,face_at\n"
        f"{media['demo1']},{media['speech']},,,,,,\n"
        f'{media["demo3"]},{media["speech"]},sub/b.mov,3,7,loop,1.0,"10,20"\n'
    )
    defaults = {**DEFAULTS, "face_index": 1}
    first, second = read_jobs(jobs, tmp_path / "out", defaults)
    assert first.output == (tmp_path / "out" / "demo1-speech.mp4").resolve() and first.problem is None
    assert first.options == defaults
    assert second.output == (tmp_path / "out" / "sub" / "b.mov").resolve()
    assert second.options == {
        **DEFAULTS,
        "steps": 3,
        "seed": 7,
        "sync_mode": "loop",
        "guidance_scale": 1.0,
        "face_at": (10.0, 20.0),
    }
    assert first.fingerprint != second.fingerprint


def test_json_lines_rows_need_the_right_types_and_relative_paths_follow_the_jobs_file(media, tmp_path) -> None:
    (tmp_path / "clip.mp4").write_bytes(media["demo1"].read_bytes())
    jobs = tmp_path / "jobs.jsonl"
    rows = [
        {"video": "clip.mp4", "audio": str(media["speech"]), "steps": 2, "face_at": [5, 6]},
        {"video": "clip.mp4", "audio": str(media["speech"]), "output": "b.mp4", "steps": True},
        {"video": "clip.mp4", "audio": str(media["speech"]), "output": "c.mp4", "steps": "3"},
        {"video": "clip.mp4", "audio": str(media["speech"]), "output": "d.mp4", "face_index": 0, "face_at": [1, 2]},
        {"video": "nope.mp4", "audio": str(media["speech"]), "output": "e.mp4"},
        {"video": "ftp://example.com/a.mp4", "audio": str(media["speech"]), "output": "f.mp4"},
        {"video": "clip.mp4", "audio": str(media["speech"]), "output": "g.gif"},
    ]
    jobs.write_text("\n".join(json.dumps(row) for row in rows) + "\n{not json\n")
    parsed = read_jobs(jobs, tmp_path / "out", DEFAULTS)
    assert parsed[0].video == str(tmp_path / "clip.mp4") and parsed[0].problem is None
    assert parsed[0].options["steps"] == 2 and parsed[0].options["face_at"] == (5.0, 6.0)
    problems = [job.problem for job in probe_inputs(parsed)[1:]]
    assert problems[0] == "steps: True is not a whole number"
    assert problems[1] == "steps: '3' is not a whole number"
    assert problems[2] == "give face_index or face_at, not both"
    assert "nope.mp4: no such file" in problems[3]
    assert "not an http(s) URL" in problems[4]
    assert "one of .mp4" in problems[5]
    assert "not valid JSON" in problems[6] and parsed[7].key == "line 8"


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("jobs.csv", "video,audio,stpes\na.mp4,b.wav,3\n", "unknown column 'stpes'"),
        ("jobs.csv", "video,audio,output\na.mp4,b.wav,x.mp4\nc.mp4,d.wav,x.mp4\n", "lines 2 and 3 would both write"),
        ("jobs.txt", "a.mp4,b.wav\n", "write the jobs as .csv"),
    ],
)
def test_a_broken_jobs_file_stops_before_any_model_loads(tmp_path, capsys, name, text, words) -> None:
    jobs = tmp_path / name
    jobs.write_text(text)
    with pytest.raises(JobsFileError, match=words):
        read_jobs(jobs, tmp_path, DEFAULTS)
    assert cli.main(["batch", str(jobs), "--no-download", "--quiet"]) == 2
    assert words in capsys.readouterr().err


def test_batch_and_serve_take_the_same_url_fetch_options(capsys) -> None:
    fetch = ["--max-download-mb", "5", "--download-timeout", "9", "--allow-url-network", "10.0.0.0/8"]
    for command in (["batch", "jobs.csv"], ["serve"]):
        args = cli.build_parser().parse_args([*command, *fetch])
        assert (args.max_download_mb, args.download_timeout) == (5, 9)
        assert [str(n) for n in args.allow_url_network] == ["10.0.0.0/8"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["batch", "jobs.csv", "--allow-url-network", "the intranet"])
    assert "expected a network such as 10.0.0.0/8" in capsys.readouterr().err


def test_rows_that_cannot_run_are_all_refused_before_any_model_loads(media, tmp_path, monkeypatch, capsys) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(media["demo1"].read_bytes())
    (folder / "broken.mp4").write_bytes(media["demo1"].read_bytes()[:600])  # a download cut short
    jobs = folder / "jobs.csv"
    rows = [
        f"clip.mp4,{media['speech']},good.mp4,",  # relative to the jobs file, not to the working folder
        f"missing.mp4,{media['speech']},missing.mp4,",
        f"broken.mp4,{media['speech']},broken.mp4,",
        f"clip.mp4,{media['wall']},silent.mp4,",  # a video without sound as the speech
        f"clip.mp4,{media['speech']},steps.mp4,0",
    ]
    jobs.write_text("video,audio,output,steps\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["batch", str(jobs), "--output-dir", str(out), "--no-download", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "4 row(s) cannot run; nothing was run" in err and "line 2:" not in err
    listed = dict(line.strip().split(": ", 1) for line in err.splitlines() if line.startswith("  line "))
    assert "missing.mp4: no such file" in listed["line 3"]
    assert "broken.mp4: not a media file FFmpeg can read" in listed["line 4"]
    assert "has no audio stream" in listed["line 5"]
    assert listed["line 6"].startswith("steps 0: must be at least 1")
    assert not out.exists()
    assert cli.main(["batch", str(jobs), "--output-dir", str(out), "--no-download", "--steps", "0"]) == 2
    assert "--steps 0: must be at least 1" in capsys.readouterr().err  # a default from the command line is named so

    # A finished row whose inputs are gone since is skipped, not refused.
    done = folder / "done.csv"
    done.write_text(f"video,audio,output\nmissing.mp4,{media['speech']},missing.mp4\n")
    (job,) = read_jobs(done, out, job_options(cli.build_parser().parse_args(["batch", str(done)])))
    out.mkdir()
    (out / "missing.mp4").write_bytes(b"made earlier")
    Records(out / RECORDS_FILE).add(JobRecord(job.key, "done", job.fingerprint))
    assert cli.main(["batch", str(done), "--output-dir", str(out), "--no-download", "--quiet", "--json"]) == 0
    assert summary(capsys)["skipped"] == 1


# -- running ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_failing_jobs_are_recorded_and_a_rerun_skips_what_is_done(tiny, media, file_server, tmp_path, capsys) -> None:
    jobs = tmp_path / "jobs.csv"
    rows = [
        f"{media['demo1']},{file_server}/speech.wav,good.mp4",  # the audio fetched from a URL
        f"{media['wall']},{media['speech']},wall.mp4",  # no face: only running shows it
    ]
    jobs.write_text("video,audio,output\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert batch(tiny, jobs, out, "--allow-url-network", "127.0.0.1/32") == 1
    first = summary(capsys)
    assert (first["done"], first["failed"], first["skipped"]) == (1, 1, 0)
    reasons = {Path(f["output"]).name: f["reason"] for f in first["failures"]}
    assert "no face" in reasons["wall.mp4"]
    assert first["seconds_per_output_second"] > 0
    good = out / "good.mp4"
    info = probe(good)
    assert info.frame_count == 13 and info.has_audio and (info.width, info.height) == (360, 640)
    assert sorted(p.name for p in out.iterdir()) == [RECORDS_FILE, "good.mp4"]  # nothing half-written
    stamp = good.stat().st_mtime_ns

    assert batch(tiny, jobs, out, "--allow-url-network", "127.0.0.1/32") == 1  # failures are tried again
    second = summary(capsys)
    assert (second["done"], second["failed"], second["skipped"]) == (0, 1, 1)
    assert good.stat().st_mtime_ns == stamp

    jobs.write_text("video,audio,output\n" + rows[0] + "\n")  # without the allowance the URL is refused
    assert batch(tiny, jobs, out, "--seed", "5") == 1  # another seed: the output is made again
    third = summary(capsys)
    assert third["done"] == 0 and "loopback" in third["failures"][0]["reason"]
    assert good.stat().st_mtime_ns == stamp
    assert Records(out / RECORDS_FILE).latest[str(good)].status == "failed"


@pytest.mark.slow
def test_one_worker_process_per_device(tiny, media, tmp_path, capsys) -> None:
    jobs = tmp_path / "jobs.jsonl"
    rows = [
        {"video": str(media["demo1"]), "audio": str(media["speech"]), "output": "one.mp4"},
        {"video": str(media["wall"]), "audio": str(media["speech"]), "output": "wall.mp4"},
        {"video": str(media["demo3"]), "audio": str(media["speech"]), "output": "three.mp4", "seed": 3},
    ]
    jobs.write_text("\n".join(json.dumps(row) for row in rows))
    out = tmp_path / "out"
    assert batch(tiny, jobs, out, "--devices", "cpu,cpu") == 1
    result = summary(capsys)
    assert (result["done"], result["failed"]) == (2, 1) and "no face" in result["failures"][0]["reason"]
    assert {job["worker"] for job in result["jobs"]} <= {"cpu#0", "cpu#1"}
    assert probe(out / "one.mp4").frame_count == 13 and probe(out / "three.mp4").frame_count == 13


@pytest.mark.slow
def test_ray_actors_run_the_jobs_and_return_outputs_to_the_driver(tiny, media, tmp_path, capsys) -> None:
    pytest.importorskip("ray")
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "video,audio,output\n"
        f"{media['demo1']},{media['speech']},one.mp4\n"
        f"{media['wall']},{media['speech']},wall.mp4\n"
        f"{media['demo3']},{media['speech']},three.mp4\n"
    )
    out = tmp_path / "out"
    assert batch(tiny, jobs, out, "--ray", "--devices", "cpu,cpu", "--ray-return-outputs") == 1
    result = summary(capsys)
    assert (result["done"], result["failed"]) == (2, 1) and "no face" in result["failures"][0]["reason"]
    assert {job["worker"] for job in result["jobs"]} <= {"ray-cpu#0", "ray-cpu#1"}
    assert probe(out / "one.mp4").frame_count == 13 and probe(out / "three.mp4").frame_count == 13
    jobs.write_text("\n".join(jobs.read_text().splitlines()[:2]) + "\n")
    assert batch(tiny, jobs, out, "--ray", "--devices", "cpu,cpu") == 0  # resuming is ours, not Ray's
    assert summary(capsys)["skipped"] == 1


# -- the workers, with a stand-in for the pipeline -------------------------------------------------------------------
class FakeResult:
    frames = 50


class FakePipeline:
    """Writes a file, or fails the way a real run can: out of GPU memory, a bug, or the process dying."""

    def __call__(self, video, audio, output, **options):
        name = Path(video).stem
        if name == "oom":
            from latentsync.runtime import GPUMemoryError

            raise GPUMemoryError("the GPU ran out of memory; try --low-vram")
        if name == "bug":
            raise ZeroDivisionError("division by zero")
        if name == "crash":
            os._exit(3)
        Path(output).write_bytes(b"video")
        return FakeResult()


class FakeSpec(ModelSpec):
    def load(self, device):
        return FakePipeline()


def fake_jobs(tmp_path: Path, names: list[str]) -> list:
    jobs = tmp_path / "jobs.csv"
    lines = ["video,audio,output"]
    for name in names:
        (tmp_path / f"{name}.mp4").write_bytes(b"x")
        lines.append(f"{name}.mp4,{name}.mp4,{name}-out.mp4")
    jobs.write_text("\n".join(lines) + "\n")
    return read_jobs(jobs, tmp_path / "out", DEFAULTS)


def test_out_of_memory_and_bugs_fail_only_their_job(tmp_path) -> None:
    records = []
    run_in_process(fake_jobs(tmp_path, ["oom", "bug", "fine"]), FakeSpec({}), "cpu", None, records.append)
    assert [r.status for r in records] == ["failed", "failed", "done"]
    assert "ran out of memory" in records[0].reason
    assert records[1].reason == "internal error (ZeroDivisionError: division by zero)"
    assert records[2].output_seconds == 2.0 and (tmp_path / "out" / "fine-out.mp4").read_bytes() == b"video"


@pytest.mark.slow
def test_a_worker_process_that_dies_fails_only_its_job(tmp_path) -> None:
    records = []
    jobs = fake_jobs(tmp_path, ["crash", "one", "two", "three"])
    run_processes(jobs, FakeSpec({}), ["cpu", "cpu"], None, records.append)
    status = {Path(r.key).name: r for r in records}
    assert len(records) == 4
    assert status["crash-out.mp4"].status == "failed" and "died (exit code 3)" in status["crash-out.mp4"].reason
    assert all(status[f"{n}-out.mp4"].status == "done" for n in ("one", "two", "three"))
