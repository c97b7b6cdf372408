"""Per-stage time of the non-network work and peak memory against input and output length, with tiny models.

Two measurements:

1. `stages`: milliseconds per 1080p frame for the work outside the networks (the issue's budget is 80 ms a frame
   on a 2-core CPU), in the pipeline's two passes over demo1: analysis (decoding with `VideoReader`, landmarks with
   the `FaceFollower` of `track_faces` and the alignment matrix) and synthesis (decoding with `FrameSource` in
   chunks, cropping, paste-back of a stand-in face, encoding with `VideoWriter`). Each stage shows wall time and
   the CPU time of the calling thread; the pass totals give the CPU time of the whole process, which includes the
   background decoding and encoding threads (and making the stand-in face, ~1 ms). Wall time suffers when other
   programs share the cores; CPU time barely does. `--per-frame-detection --no-read-ahead` shows the plain paths.
2. `memory`: peak RSS and wall time of a whole `latentsync infer` run (tiny random-weight models, 1 DDIM step),
   each in a fresh process, against the output's length (`--seconds`: sync mode `loop` over demo1 with speech of
   each length) or the input's (`--input-seconds`: demo1's packets remuxed back to back into a video of each
   length, speech as long, sync mode `cut_off`, so both passes read every input frame). Flat numbers show the
   streaming design.

Run: python benchmarks/pipeline.py [stages] [memory [--seconds 10 60 600] [--input-seconds 10 600]] [--frames N]
     [--per-frame-detection] [--no-read-ahead]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import av
import numpy as np

from latentsync.config.defaults import INFERENCE
from latentsync.runtime import StageTimer
from latentsync.testing.assets import ASSETS

CHUNK = INFERENCE.batch_frames  # frames per synthesis request


def stages(frames: int, redetect_every: int | None, read_ahead: int) -> None:
    from latentsync.faces import create_detector, crop_face, paste_back
    from latentsync.faces.align import FaceAligner
    from latentsync.faces.track import FaceFollower
    from latentsync.media import FrameSource, VideoReader, VideoWriter

    video = ASSETS / "demo1_video.mp4"
    clock = StageTimer(["decode (analysis)", "landmarks", "decode (synthesis)", "crop", "paste", "encode"])
    follower = FaceFollower(create_detector("dlib"), redetect_every=redetect_every)
    aligner = FaceAligner(512)
    matrices = []
    start_wall, start_cpu = time.perf_counter(), time.process_time()

    reader = iter(VideoReader(video, read_ahead=read_ahead))
    for _ in range(frames):
        with clock("decode (analysis)"):
            frame = next(reader)
        with clock("landmarks"):
            matrices.append(aligner.matrix(follower(frame).anchors()))
    reader.close()
    analysis_wall, analysis_cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu

    with tempfile.TemporaryDirectory() as tmp, FrameSource(video) as source:
        writer = VideoWriter(Path(tmp) / "out.mp4", 1080, 1920, fps=25)
        with clock("encode"):
            writer.__enter__()
        for start in range(0, frames, CHUNK):
            with clock("decode (synthesis)"):
                chunk = source.get(range(start, min(start + CHUNK, frames)))
            for index, frame in enumerate(chunk, start):
                with clock("crop"):
                    crop = crop_face(frame, matrices[index], 512)
                # A stand-in for the generated face, laid out as the pipeline hands it over: float32 (H, W, 3) over
                # the networks' channels-first memory.
                generated = np.ascontiguousarray((255 - crop).transpose(2, 0, 1), dtype=np.float32).transpose(1, 2, 0)
                with clock("paste"):
                    out = paste_back(frame, generated, matrices[index])
                with clock("encode"):
                    writer.write(out)
        with clock("encode"):  # waits for the frames still queued
            writer.__exit__(None, None, None)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu

    mode = "per-frame detection" if redetect_every is None else f"whole-frame detection every {redetect_every}"
    print(
        f"non-network stages over {frames} frames of demo1 (1080x1920, 512 px crops; {mode}, "
        f"{follower.detections} whole-frame detections; read-ahead {read_ahead}), ms per frame:"
    )
    print(f"  {'stage':20s} {'wall':>7s} {'cpu':>7s}   (cpu: of the calling thread)")
    for name, wall in clock.seconds.items():
        print(f"  {name:20s} {1000 * wall / frames:7.1f} {1000 * clock.cpu_seconds[name] / frames:7.1f}")
    per_frame = 1000 / frames
    print(f"  {'analysis pass':20s} {analysis_wall * per_frame:7.1f} {analysis_cpu * per_frame:7.1f}   (cpu: process)")
    print(
        f"  {'synthesis pass':20s} {(wall - analysis_wall) * per_frame:7.1f} "
        f"{(cpu - analysis_cpu) * per_frame:7.1f}   (cpu: process)"
    )
    print(f"  {'total':20s} {wall * per_frame:7.1f} {cpu * per_frame:7.1f}   (cpu: process, all threads)")


def repeat_clip(clip: Path, copies: int, path: Path) -> Path:
    """Write `copies` copies of `clip`'s video stream back to back into `path`, by remuxing its packets (each copy
    shifted by the stream's duration) instead of re-encoding, so a 10-minute 1080p input takes seconds to make."""
    with av.open(str(path), "w") as output:
        stream = None
        for copy in range(copies):
            with av.open(str(clip)) as source:
                template = source.streams.video[0]
                if stream is None:
                    stream = output.add_stream_from_template(template)
                shift = copy * template.duration
                for packet in source.demux(template):
                    if packet.dts is None:  # the end-of-stream marker
                        continue
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = stream
                    output.mux(packet)
    return path


def write_speech(path: Path, seconds: float) -> Path:
    """demo1's speech repeated to `seconds`, as a 16 kHz 16-bit wav."""
    from latentsync.audio import load_audio

    samples = np.resize(load_audio(ASSETS / "demo1_audio.wav"), int(seconds * 16000))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def infer_peak_rss(
    video: Path, audio: Path, output: Path, sync_mode: str, model_args: list[str]
) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `latentsync infer` run (1 DDIM step) in a fresh process."""
    cmd = [
        sys.executable,
        "-c",
        "import resource, sys; from latentsync.cli import main; code = main(sys.argv[1:]); "
        "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)",
        "infer",
        "--video",
        str(video),
        "--audio",
        str(audio),
        "--output",
        str(output),
        "--sync-mode",
        sync_mode,
        "--steps",
        "1",
        "--quiet",
        *model_args,
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return int(out.split("RSS")[-1]) / 1024, time.perf_counter() - start


def memory(seconds_list: list[float], long_input: bool) -> None:
    """Peak RSS against the output's length (`loop` over demo1, audio of each length) or, with `long_input`, against
    the input's (demo1 repeated to each length, speech as long, `cut_off`); the output's frames are counted."""
    from latentsync.media import probe
    from latentsync.testing import write_tiny_models

    clip = ASSETS / "demo1_video.mp4"
    clip_seconds = probe(clip).duration
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = write_tiny_models(tmp / "tiny")
        source = "demo1 repeated, cut_off" if long_input else "loop over demo1"
        print(
            f"{'input' if long_input else 'output'} seconds, frames, peak RSS MB, wall seconds, wall ms per frame "
            f"(tiny models, 1 step, {source} at 1080p)"
        )
        for seconds in seconds_list:
            video = clip
            if long_input:
                copies = max(1, round(seconds / clip_seconds))
                video = repeat_clip(clip, copies, tmp / f"input_{copies}.mp4")
                seconds = probe(video).duration
            audio = write_speech(tmp / f"speech_{seconds:g}.wav", seconds)
            output = tmp / "out.mp4"
            rss_mb, wall = infer_peak_rss(video, audio, output, "cut_off" if long_input else "loop", tiny.cli_args())
            frames = probe(output).frame_count
            if frames != round(seconds * 25):
                raise RuntimeError(f"{seconds:g} s run wrote {frames} frames, expected {round(seconds * 25)}")
            print(f"  {seconds:8.0f} {frames:7d} {rss_mb:10.0f} {wall:10.0f} {1000 * wall / frames:8.0f}")
            if long_input:
                video.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", default=["stages", "memory"], choices=["stages", "memory"])
    parser.add_argument("--frames", type=int, default=100, help="frames for the stage timing")
    parser.add_argument(
        "--per-frame-detection", action="store_true", help="stages: scan every whole frame for the face"
    )
    parser.add_argument("--no-read-ahead", action="store_true", help="stages: decode in the calling thread")
    parser.add_argument("--seconds", type=float, nargs="+", help="memory: output lengths (default 10 60)")
    parser.add_argument(
        "--input-seconds", type=float, nargs="+", help="memory: input lengths (multiples of demo1's 10 s)"
    )
    args = parser.parse_args()
    if "stages" in args.what:
        from latentsync.faces.track import REDETECT_EVERY

        stages(args.frames, None if args.per_frame_detection else REDETECT_EVERY, 0 if args.no_read_ahead else 4)
    if "memory" in args.what:
        if args.seconds or not args.input_seconds:
            memory(args.seconds or [10, 60], long_input=False)
        if args.input_seconds:
            memory(args.input_seconds, long_input=True)


if __name__ == "__main__":
    main()
