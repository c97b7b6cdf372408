"""`latentsync preprocess`: on a folder built from the demo clips (trimmed to 2.2 s, half size) with the inputs a
real data set holds: another frame rate, two shots spliced, a truncated file, a text file named .mp4, a video
without audio and a clip without a face."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.preprocess import build_raw

from latentsync.audio import load_audio
from latentsync.cli import main
from latentsync.data.fileslist import kept_clips
from latentsync.data.preprocess import Settings, run_preprocess
from latentsync.data.preprocess import manifest as manifest_module
from latentsync.data.preprocess import video as video_module
from latentsync.data.preprocess.lock import OutputLock, OutputLockedError
from latentsync.data.preprocess.report import build_report, contact_sheet
from latentsync.data.preprocess.runner import in_shard, list_inputs, parse_shard
from latentsync.data.preprocess.stages import align as align_stage
from latentsync.data.preprocess.stages import quality as quality_stage
from latentsync.data.preprocess.stages import sync as sync_stage
from latentsync.data.preprocess.stages.align import segment_matrices
from latentsync.data.preprocess.stages.faces import FaceCheck
from latentsync.errors import InvalidArgumentError
from latentsync.faces import create_detector, crop_face
from latentsync.media import VideoReader

REPO = Path(__file__).resolve().parents[1]
SMALL = ("demo1.mp4", "spliced.mp4", "notes.mp4", "silent.mp4")  # a cheap subset for the runs compared with each other


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def linked_copy(src: Path, dst: Path) -> Path:
    """A copy of an OUT_DIR whose clips and anchors are hard links (an unchanged file keeps its inode) and whose
    manifest is a file of its own (a run appends to it)."""
    shutil.copytree(src, dst, copy_function=os.link)
    for path in dst.glob("manifest*.jsonl"):
        path.unlink()
        shutil.copy2(src / path.name, path)
    return dst


@dataclass
class Prepared:
    raw: Path
    out: Path
    aux: Path
    raw_hashes: dict[str, str]


@pytest.fixture(scope="module")
def raw(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    build_raw(assets, folder)
    return folder


@pytest.fixture(scope="module")
def prepared(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    before = tree_hashes(raw)
    out, aux = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("aux")
    run_preprocess(raw, out, Settings(), aux, progress=False)
    return Prepared(raw, out, aux, before)


@pytest.fixture(scope="module")
def small_raw(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    for name in SMALL:
        shutil.copy2(raw / name, folder / name)
    return folder


@pytest.mark.slow
def test_manifest_explains_every_input_and_raw_dir_is_untouched(prepared: Prepared) -> None:
    records = {r["input"]: r for r in manifest_lines(prepared.out)}
    assert sorted(records) == list_inputs(prepared.raw)
    assert tree_hashes(prepared.raw) == prepared.raw_hashes
    assert records["notes.mp4"]["state"] == "dropped" and "not a readable media file" in records["notes.mp4"]["reason"]
    assert records["silent.mp4"]["reason"] == "no audio stream"
    truncated = records["truncated.mp4"]
    assert truncated["state"] == "dropped" or all(s["state"] == "dropped" for s in truncated["segments"])
    assert all(s["stage"] == "faces" and s["reason"].startswith("no face") for s in records["noface.mp4"]["segments"])
    for name in ("demo1.mp4", "demo2.mp4", "demo3.mp4", "rates/demo1_30fps.mp4"):
        (segment,) = records[name]["segments"]
        assert segment["state"] == "kept" and segment["frames"] == 55, segment
        assert "syncnet_v2.model not found" in segment["sync"]["skipped"]
    # The splice (52 + 52 frames) is a shot change: two clips, the second starting at the splice.
    assert [(s["shot"], s["start"], s["frames"], s["state"]) for s in records["spliced.mp4"]["segments"]] == [
        (1, 0, 52, "kept"),
        (2, 52, 52, "kept"),
    ]
    # Sub-folders are mirrored; the file list names exactly the kept clips, each on disk.
    assert (prepared.out / "clips" / "rates" / "demo1_30fps_shot_001_000.mp4").is_file()
    assert len(kept_clips(prepared.out)) == 6


@pytest.mark.slow
def test_kept_clips_are_square_25fps_16khz_with_a_keyframe_every_25_frames(prepared: Prepared) -> None:
    for clip in kept_clips(prepared.out):
        with av.open(str(clip)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.width, video.height, video.average_rate) == (256, 256, 25)
            assert (audio.rate, audio.channels) == (16000, 1)
            keyframes = [i for i, p in enumerate(p for p in container.demux(video) if p.size) if p.is_keyframe]
        frames = len(list(VideoReader(clip, read_ahead=0)))
        assert keyframes == list(range(0, frames, 25))
        assert abs(len(load_audio(clip)) / 16000 - frames / 25) < 0.07  # AAC pads at most a frame or so


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rates/demo1_30fps.mp4", "spliced.mp4"])
def test_clips_are_in_sync_with_their_source(prepared: Prepared, name: str) -> None:
    """Clip frame k is the aligned face of source frame start + k (not of a neighbour) and the clip's audio is the
    source's audio of the same span, so the mouth moves with the sound exactly as in the source."""
    record = {r["input"]: r for r in manifest_lines(prepared.out)}[name]
    segment = record["segments"][-1]
    clip = prepared.out / "clips" / segment["clip"]
    start, count = segment["start"], segment["frames"]
    source = list(VideoReader(prepared.raw / name))[start : start + count]
    # The stage's face path (its follower, the default steady alignment) on the source frames of the segment.
    check = FaceCheck(create_detector("dlib"), Settings())
    anchors = np.stack([face.anchors() for face in map(check, source) if not isinstance(face, str)])
    crops = [crop_face(frame, matrix, 256) for frame, matrix in zip(source, segment_matrices(anchors, Settings()))]
    frames = list(VideoReader(clip))
    for k in (10, 25, 40):
        errors = {lag: np.abs(frames[k].astype(int) - crops[k + lag]).mean() for lag in (-2, -1, 0, 1, 2)}
        assert min(errors, key=errors.get) == 0 and errors[0] < 4, errors
    heard, said = load_audio(clip)[: count * 640], np.pad(load_audio(prepared.raw / name), 800)
    lags = range(-800, 801, 8)
    scores = [np.dot(heard, said[800 + start * 640 + lag :][: len(heard)]) for lag in lags]
    assert abs(lags[int(np.argmax(scores))]) <= 8


@pytest.mark.slow
def test_rerun_does_no_work_and_a_new_threshold_redoes_only_its_stage(prepared: Prepared, tmp_path: Path) -> None:
    out = linked_copy(prepared.out, tmp_path / "out")
    before = {p: p.stat().st_ino for p in out.rglob("*.mp4")}
    again = run_preprocess(prepared.raw, out, Settings(), prepared.aux, progress=False)
    assert again.processed == 0
    assert manifest_lines(out) == manifest_lines(prepared.out)
    changed = run_preprocess(prepared.raw, out, Settings(sync_min_conf=5), prepared.aux, progress=False)
    assert changed.processed == 5  # the inputs with an aligned clip, only to be judged again
    assert {p: p.stat().st_ino for p in out.rglob("aligned/**/*.mp4")} == {
        p: i for p, i in before.items() if "/aligned/" in p.as_posix()
    }


@pytest.mark.slow
def test_switching_face_smoothing_redoes_only_the_alignment_and_steady_clips_shake_less(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = linked_copy(prepared.out, tmp_path / "out")
    before = {p: p.stat().st_ino for p in out.rglob("aligned/**/*.mp4")}

    def searched_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("shots or faces were searched again")

    monkeypatch.setattr(video_module, "with_shots", searched_again)
    monkeypatch.setattr(video_module, "FaceCheck", searched_again)
    official = run_preprocess(prepared.raw, out, Settings(face_smoothing="official"), prepared.aux, progress=False)
    assert official.kept_clips == 6
    after = {p: p.stat().st_ino for p in out.rglob("aligned/**/*.mp4")}
    assert after.keys() == before.keys() and all(after[p] != before[p] for p in before)  # every clip cut again

    def segments(folder: Path) -> dict[str, list[tuple]]:
        return {
            r["input"]: [(s["start"], s["frames"], s["state"]) for s in r["segments"]] for r in manifest_lines(folder)
        }

    assert segments(out) == segments(prepared.out)
    assert {r["face_smoothing"] for r in manifest_lines(prepared.out)} == {"steady"}  # the default, as inference's
    assert {r["face_smoothing"] for r in manifest_lines(out)} == {"official"}
    # The crop's upper band (brows and eyes: still while the mouth speaks) changes less from frame to frame.
    for clip in ("demo1_shot_001_000.mp4", "demo2_shot_001_000.mp4"):
        shake = {}
        for mode, folder in (("steady", prepared.out), ("official", out)):
            band = np.stack([frame[:100] for frame in VideoReader(folder / "aligned" / clip)]).astype(np.float32)
            shake[mode] = float(np.abs(np.diff(band, 2, axis=0)).mean())
        assert shake["steady"] < 0.85 * shake["official"], (clip, shake)


@pytest.mark.slow
def test_a_steadied_crop_beyond_the_held_region_comes_from_a_second_decode(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(align_stage, "HOLD_MARGIN", -0.2)  # hold less than any crop reads
    second_decodes = []

    def realign(src: Path, segments: list, *args: object) -> None:
        second_decodes.extend(segments)
        align_stage.realign(src, segments, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(video_module, "realign", realign)
    (tmp_path / "raw").mkdir()
    shutil.copy2(prepared.raw / "demo1.mp4", tmp_path / "raw" / "demo1.mp4")
    run_preprocess(tmp_path / "raw", tmp_path / "out", Settings(), prepared.aux, progress=False)
    assert len(second_decodes) == 1
    clip = Path("aligned") / "demo1_shot_001_000.mp4"
    again, first = (list(VideoReader(folder / clip)) for folder in (tmp_path / "out", prepared.out))
    assert len(again) == len(first) == 55 and all(np.array_equal(a, b) for a, b in zip(again, first))


@pytest.mark.slow
def test_a_shots_remainder_is_its_own_segment(raw: Path, tmp_path: Path) -> None:
    """As the official split (ffmpeg's segment muxer) leaves it: not merged into the segment before, and dropped when
    shorter than the minimum (the official sync filter's 51 frames). Shown with 20-frame segments of 55 frames."""
    (tmp_path / "raw").mkdir()
    shutil.copy2(raw / "demo1.mp4", tmp_path / "raw" / "demo1.mp4")
    settings = Settings(segment_frames=20, min_segment_frames=16)
    run_preprocess(tmp_path / "raw", tmp_path / "out", settings, tmp_path / "aux", progress=False)
    (record,) = manifest_lines(tmp_path / "out")
    assert [(s["start"], s["frames"], s["state"], s["reason"]) for s in record["segments"]] == [
        (0, 20, "kept", None),
        (20, 20, "kept", None),
        (40, 15, "dropped", "15 frames, under 16"),
    ]


@pytest.mark.slow
def test_sync_filter_keeps_shifts_and_drops_by_the_official_rule(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclass(frozen=True)
    class Score:
        offset: int
        min_dist: float
        conf: float

    verdicts = {55: Score(2, 7.0, 6.0), 52: Score(0, 9.0, 1.5)}  # by clip length: the demos, the spliced shots

    class StandIn:
        def score_crops(self, frames: np.ndarray, audio: np.ndarray) -> Score:
            assert frames.shape[1:] == (256, 256, 3) and audio.dtype == np.float32
            return verdicts[len(frames)]

    monkeypatch.setattr(sync_stage, "load_scorer", lambda path, device=None: StandIn())
    out, aux = tmp_path / "out", tmp_path / "aux"
    shutil.copytree(prepared.out, out)
    aux.mkdir()
    (aux / "syncnet_v2.model").write_bytes(b"stand-in")
    run_preprocess(prepared.raw, out, Settings(), aux, progress=False)
    segments = {s["clip"]: s for r in manifest_lines(out) for s in r["segments"]}
    assert segments["spliced_shot_002_000.mp4"]["reason"] == "sync confidence 1.50 under 3.0"
    assert not (out / "clips" / "spliced_shot_002_000.mp4").exists()
    kept = segments["demo1_shot_001_000.mp4"]
    assert kept["state"] == "kept" and kept["sync"] == {"offset": 2, "min_dist": 7.0, "conf": 6.0}
    aligned, shifted = out / "aligned" / kept["clip"], out / "clips" / kept["clip"]
    with av.open(str(aligned)) as a, av.open(str(shifted)) as b:  # video packets copied, not re-encoded
        assert [bytes(p) for p in a.demux(video=0)] == [bytes(p) for p in b.demux(video=0)]
    before, after = load_audio(aligned), load_audio(shifted)
    lags = list(range(0, 3 * 640, 16))
    best = lags[int(np.argmax([np.dot(after[lag : lag + 16000], before[:16000]) for lag in lags]))]
    assert abs(best - 2 * 640) <= 16  # the audio now starts two frames later


@pytest.mark.slow
def test_quality_filter_keeps_by_the_threshold_and_a_new_threshold_needs_no_rescoring(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def stand_in(frames: np.ndarray) -> float:  # a score that differs from clip to clip: the mean brightness
        assert frames.shape == (3, 256, 256, 3) and frames.dtype == np.uint8  # first, middle and last frames
        calls.append(frames)
        return float(frames.mean()) * 100 / 255

    monkeypatch.setattr(quality_stage, "load_scorer", lambda path, device=None: stand_in)
    out, aux = tmp_path / "out", tmp_path / "aux"
    shutil.copytree(prepared.out, out)
    aux.mkdir()
    (aux / "koniq_pretrained.pkl").write_bytes(b"stand-in")

    def judged(settings: Settings) -> dict[str, dict]:
        run_preprocess(prepared.raw, out, settings, aux, progress=False)
        segments = {s["clip"]: s for r in manifest_lines(out) for s in r["segments"] if "quality" in s}
        for clip, segment in segments.items():
            kept = segment["quality"]["score"] >= settings.quality_min
            assert segment["state"] == ("kept" if kept else "dropped"), segment
            assert (out / "clips" / clip).is_file() == kept
            if not kept:
                assert segment["reason"] == f"quality {segment['quality']['score']:.1f} under {settings.quality_min}"
        return segments

    first = judged(Settings())
    assert len(first) == len(calls) == 6
    scores = sorted(s["quality"]["score"] for s in first.values())
    threshold = (scores[2] + scores[3]) / 2  # half the clips on either side
    again = judged(Settings(quality_min=threshold))
    assert len(calls) == 6  # decided again from the stored scores
    assert sum(s["state"] == "kept" for s in again.values()) == 3


@pytest.mark.slow
def test_report_counts_hours_and_draws_a_contact_sheet(prepared: Prepared, tmp_path: Path) -> None:
    report = build_report(prepared.out)
    assert (report.inputs, report.kept) == (9, 6)
    assert report.dropped_inputs[("probe", "no audio stream")] == 1
    assert report.dropped_segments[("faces", "no face")] == 1
    assert report.kept_hours == pytest.approx((4 * 55 + 2 * 52) / 25 / 3600)
    assert report.skipped["sync"] == 6
    import cv2

    assert contact_sheet(prepared.out, tmp_path / "sheet.png") == 6
    assert cv2.imread(str(tmp_path / "sheet.png")).shape == (128, 6 * 128, 3)


@pytest.mark.slow
def test_file_list_is_what_the_trainer_reads(prepared: Prepared, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fileslist", str(prepared.out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [str(p) for p in kept_clips(prepared.out)] and lines == sorted(lines)
    for line in lines:  # the official loader: absolute .mp4 paths of clips with at least 3 x 16 frames
        assert Path(line).is_absolute() and line.endswith(".mp4")
        assert len(list(VideoReader(line, read_ahead=0))) >= 48


@pytest.fixture(scope="module")
def with_workers(small_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small folder prepared by `--workers 2`: the manifest the other ways of running must give."""
    out = tmp_path_factory.mktemp("workers")
    run_preprocess(small_raw, out, Settings(), out.parent / "no-aux", workers=2, progress=False)
    return out


@pytest.mark.slow
def test_workers_shards_and_kill_minus_9_give_the_same_manifest(
    small_raw: Path, with_workers: Path, tmp_path: Path
) -> None:
    aux, reference = with_workers.parent / "no-aux", with_workers
    expected = manifest_lines(reference)
    assert [r["input"] for r in expected] == sorted(SMALL)

    sharded = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        run_preprocess(small_raw, sharded, Settings(), aux, shard=parse_shard(shard), progress=False)
    run_preprocess(small_raw, sharded, Settings(), aux, progress=False)  # no work left: folds the shard files
    assert manifest_lines(sharded) == expected
    assert tree_hashes(sharded / "clips") == tree_hashes(reference / "clips")

    # kill -9 in the middle of the run (a process forked from a clean server: the command without its imports).
    killed = tmp_path / "killed"
    process = get_context("forkserver").Process(
        target=run_preprocess, args=(small_raw, killed, Settings(), aux), kwargs={"progress": False}
    )
    process.start()
    deadline = time.monotonic() + 120
    while not manifest_module.read_lines(killed / "manifest.jsonl") and process.is_alive():
        assert time.monotonic() < deadline, "the first input took over 2 minutes"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=30)
    assert 0 < len(manifest_module.read_lines(killed / "manifest.jsonl")) < len(SMALL)
    run_preprocess(small_raw, killed, Settings(), aux, progress=False)
    assert manifest_lines(killed) == expected
    assert tree_hashes(killed / "clips") == tree_hashes(reference / "clips")
    assert not list(killed.rglob(".*partial*"))


@pytest.mark.slow
def test_ray_gives_the_manifest_of_local_workers(small_raw: Path, with_workers: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}}
    )
    try:
        run_preprocess(
            small_raw, tmp_path / "ray", Settings(), with_workers.parent / "no-aux", use_ray=True, progress=False
        )
    finally:
        ray.shutdown()
    assert manifest_lines(tmp_path / "ray") == manifest_lines(with_workers)


def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    out.mkdir()
    with OutputLock(out):
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
            run_preprocess(raw, out, Settings(), tmp_path, progress=False)
        assert main(["preprocess", "-q", str(raw), str(out)]) == 2
    with OutputLock(out, (0, 2)), OutputLock(out, (1, 2)):  # the shards of one array run side by side
        with pytest.raises(OutputLockedError, match="shard-0-of-2"):
            OutputLock(out, (0, 2)).__enter__()
        with pytest.raises(OutputLockedError):
            OutputLock(out).__enter__()
    run_preprocess(raw, out, Settings(), tmp_path, progress=False)  # free again


def test_shards_are_disjoint_and_cover_every_input() -> None:
    names = [f"speaker{i}/clip{j}.mp4" for i in range(40) for j in range(5)]
    shards = [{n for n in names if in_shard(n, (i, 3))} for i in range(3)]
    assert set().union(*shards) == set(names) and sum(map(len, shards)) == len(names)
    assert all(40 < len(s) < 95 for s in shards)
    with pytest.raises(InvalidArgumentError):
        parse_shard("2/2")


def test_a_torn_manifest_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"input": "a.mp4", "segments": []}\n{"input": "b.m')
    assert [r["input"] for r in manifest_module.read_lines(path)] == ["a.mp4"]
    writer = manifest_module.ManifestWriter(path)
    writer.append({"input": "b.mp4", "segments": []})
    writer.close()
    assert list(manifest_module.load(tmp_path)) == ["a.mp4", "b.mp4"]


def test_output_inside_the_raw_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="must not contain one another"):
        run_preprocess(tmp_path, tmp_path / "out", Settings(), tmp_path, progress=False)


def test_a_broken_input_is_recorded_and_retried_and_a_full_disk_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from latentsync.data.preprocess import video
    from latentsync.data.preprocess.video import DiskFullError

    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "a.mp4").write_text("text")

    def broken(job: video.Job) -> dict:
        raise RuntimeError("a bug")

    monkeypatch.setattr(video, "process", broken)
    run_preprocess(raw, out, Settings(), tmp_path, progress=False)
    (record,) = manifest_lines(out)
    assert (record["state"], record["reason"]) == ("failed", "RuntimeError: a bug")
    monkeypatch.undo()
    assert run_preprocess(raw, out, Settings(), tmp_path, progress=False).processed == 1  # retried
    assert manifest_lines(out)[0]["stage"] == "probe"

    def full(job: video.Job) -> dict:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(video, "process", full)
    (raw / "b.mp4").write_text("text")
    with pytest.raises(DiskFullError, match="disk is full"):
        run_preprocess(raw, out, Settings(), tmp_path, progress=False)
