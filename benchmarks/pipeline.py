"""Per-stage time of the non-network work and peak memory against output length, with tiny models.

Two measurements:

1. `stages`: milliseconds per 1080p frame for decoding, landmarks, cropping, paste-back and encoding (the work
   outside the networks; the issue's budget is 80 ms a frame on a 2-core CPU).
2. `memory`: peak RSS of a whole `latentsync infer` run (tiny random-weight models, 1 DDIM step, sync mode `loop`
   over demo1) for several output lengths, each in a fresh process. Flat numbers show the streaming design.

Run: python benchmarks/pipeline.py [stages] [memory --seconds 10 60 600]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"


def stages(frames: int) -> None:
    from latentsync.faces import create_detector, crop_face, paste_back, select_face
    from latentsync.faces.align import FaceAligner
    from latentsync.media import VideoReader, VideoWriter

    clock: dict[str, float] = dict.fromkeys(["decode", "landmarks", "crop", "paste", "encode"], 0.0)
    detector = create_detector("dlib")
    aligner = FaceAligner(512)
    with tempfile.TemporaryDirectory() as tmp:
        reader = iter(VideoReader(ASSETS / "demo1_video.mp4"))
        with VideoWriter(Path(tmp) / "out.mp4", 1080, 1920, fps=25) as writer:
            for _ in range(frames):
                t0 = time.perf_counter()
                frame = next(reader)
                t1 = time.perf_counter()
                face = select_face(detector.detect(frame))
                t2 = time.perf_counter()
                matrix = aligner.matrix(face.anchors())
                crop = crop_face(frame, matrix, 512)
                t3 = time.perf_counter()
                out = paste_back(frame, 255 - crop, matrix)
                t4 = time.perf_counter()
                writer.write(out)
                t5 = time.perf_counter()
                for name, dt in zip(clock, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    clock[name] += dt
    total = sum(clock.values())
    print(f"non-network stages over {frames} frames of demo1 (1080x1920, 512 px crops), ms per frame:")
    for name, seconds in clock.items():
        print(f"  {name:10s} {1000 * seconds / frames:7.1f}")
    print(f"  {'total':10s} {1000 * total / frames:7.1f}")


def memory(seconds_list: list[float]) -> None:
    from latentsync.audio import load_audio
    from latentsync.testing import write_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        tiny = write_tiny_models(Path(tmp) / "tiny")
        speech = load_audio(ASSETS / "demo1_audio.wav")
        print("output seconds, peak RSS MB, wall seconds (tiny models, 1 step, loop over demo1 at 1080p)")
        for seconds in seconds_list:
            audio = Path(tmp) / f"speech_{seconds}.wav"
            samples = np.resize(speech, int(seconds * 16000))
            with wave.open(str(audio), "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
                w.writeframes((samples * 32767).astype("<i2").tobytes())
            cmd = [
                sys.executable, "-c",
                "import resource, sys; from latentsync.cli import main; code = main(sys.argv[1:]); "
                "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)",
                "infer", "--video", str(ASSETS / "demo1_video.mp4"), "--audio", str(audio),
                "--output", str(Path(tmp) / "out.mp4"), "--sync-mode", "loop", "--steps", "1", "--quiet",
                "--unet-config", str(tiny.unet_config), "--unet-checkpoint", str(tiny.unet_checkpoint),
                "--whisper-checkpoint", str(tiny.whisper_checkpoint), "--vae", str(tiny.vae),
                "--device", "cpu", "--no-download",
            ]  # fmt: skip
            start = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rss_kb = int(out.split("RSS")[-1])
            print(f"  {seconds:8.0f} {rss_kb / 1024:10.0f} {time.perf_counter() - start:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", default=["stages", "memory"], choices=["stages", "memory"])
    parser.add_argument("--frames", type=int, default=100, help="frames for the stage timing")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60], help="output lengths for memory")
    args = parser.parse_args()
    if "stages" in args.what:
        stages(args.frames)
    if "memory" in args.what:
        memory(args.seconds)


if __name__ == "__main__":
    main()
