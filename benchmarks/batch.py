"""`latentsync batch` on the demo clips with tiny random-weight models: one worker against one per device.

Each demo clip (demo1..3) is lip-synced to the first seconds of its own audio, once with a single worker
(`--device cpu`) and once with `--devices cpu,cpu` (two worker processes sharing one queue of jobs), into fresh
output folders. Printed per run: wall time (model loading included), jobs done, and work seconds per second of
output video. With --quick the clips are cut to 8 frames at a third of their size. Then the server's side of
production use: submit and result latency (p50/p95) with 100 queued jobs and 8 polling clients
(`benchmarks/batch_server.py`, which also runs alone).

Run: python benchmarks/batch.py [--quick] [--seconds S] [--devices cpu,cpu] [--no-server]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2

from latentsync import cli
from latentsync.audio import load_audio
from latentsync.media import VideoReader, VideoWriter
from latentsync.testing import ASSETS, write_tiny_models, write_wav


def small_clip(source: Path, dest: Path, frames: int, scale: float) -> Path:
    """The first `frames` frames of `source` at 25 fps, resized by `scale`."""
    reader = VideoReader(source, fps=25)
    width, height = int(reader.info.width * scale) // 2 * 2, int(reader.info.height * scale) // 2 * 2
    with VideoWriter(dest, width, height, fps=25) as writer:
        for i, frame in enumerate(reader):
            if i == frames:
                break
            writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    return dest


def run(jobs: Path, out: Path, models: list[str], placement: list[str]) -> dict:
    started = time.perf_counter()
    logging.disable(logging.INFO)  # the pipeline's per-video lines
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        cli.main(
            ["batch", str(jobs), "--output-dir", str(out), "--steps", "1", "--quiet", "--json", *models, *placement]
        )
    summary = json.loads(stdout.getvalue())
    summary["wall_seconds"] = time.perf_counter() - started
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8-frame clips at a third of their size")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of each clip (default 2)")
    parser.add_argument("--devices", default="cpu,cpu", help="the multi-worker run's --devices (default cpu,cpu)")
    parser.add_argument("--no-server", dest="server", action="store_false", help="skip the server latency part")
    args = parser.parse_args()
    seconds, scale = (0.32, 1 / 3) if args.quick else (args.seconds, 1.0)

    with tempfile.TemporaryDirectory(prefix="latentsync-batch-bench-") as tmp:
        folder = Path(tmp)
        tiny = write_tiny_models(folder / "tiny")
        lines = ["video,audio,output"]
        for video in sorted(ASSETS.glob("demo*_video.mp4")):
            name = video.name.split("_")[0]
            audio = load_audio(ASSETS / f"{name}_audio.wav")[: int(16000 * seconds)]
            wav = write_wav(folder / f"{name}.wav", audio)
            clip = video if scale == 1 else small_clip(video, folder / f"{name}.mp4", round(25 * seconds), scale)
            lines.append(f"{clip},{wav},{name}.mp4")
        jobs = folder / "jobs.csv"
        jobs.write_text("\n".join(lines) + "\n")

        print(f"{len(lines) - 1} jobs of {seconds:g} s, tiny models, 1 DDIM step, {scale:.2g}x size")
        print(f"{'workers':<24}{'wall s':>8}{'done':>6}{'s per output s':>16}")
        for label, placement in (
            ("one (--device cpu)", ["--device", "cpu"]),
            (f"--devices {args.devices}", ["--devices", args.devices]),
        ):
            summary = run(jobs, folder / label.split()[0].strip("-"), tiny.cli_args(), placement)
            rate = summary["seconds_per_output_second"]
            print(f"{label:<24}{summary['wall_seconds']:>8.1f}{summary['done']:>6}{rate or float('nan'):>16.2f}")
            for failure in summary["failures"]:
                print(f"  failed: {failure['output']}: {failure['reason']}")
            sys.stdout.flush()

    if args.server:
        from batch_server import server_latency  # beside this script

        stats = server_latency(poll_seconds=3.0 if args.quick else 10.0)
        print(
            f"server, {stats['jobs']} queued jobs and {stats['clients']} polling clients: "
            f"submit p50 {stats['submit']['p50_ms']} ms / p95 {stats['submit']['p95_ms']} ms, "
            f"result p50 {stats['result']['p50_ms']} ms / p95 {stats['result']['p95_ms']} ms"
        )


if __name__ == "__main__":
    main()
