"""Cost of serving frames by position with FrameSource, against VideoReader's plain forward stream.

Prints, per pass over a clip (demo1, 1080x1920 HEVC with a single keyframe, by default): milliseconds of
wall and CPU time per output frame, the decoding work per output frame (frames decoded, seeks) and the most
frames the rewind store held. Passes: VideoReader forward; FrameSource forward in chunks; FrameSource over a
bounce plan's backward run (n-2 .. 1) in chunks, each chunk reaching behind the cursor. Run:
python benchmarks/frames.py [clip.mp4] [--chunk 16] [--threads 0] [--rewind 48]

On 2 shared cores, demo1 in chunks of 16: VideoReader and FrameSource forward both about 9-12 ms of CPU per
frame. The backward run (whose first request decodes 0 .. n-2 from the start), keeping 48 frames per seek
back: about 27 ms of CPU per frame (3.2 frames decoded per frame shown, 5 seeks; the single keyframe is at
the start), against 54 ms (8.3 decoded, 16 seeks) with --rewind 0, which is how it went before the store.
demo3 (a keyframe every 250 source frames): 21 ms (3.0 decoded, 13 seeks) against 51 ms (7.8, 32).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from latentsync.media import FrameSource, VideoReader
from latentsync.testing.assets import ASSETS


def timed_pass(label: str, run: Callable[[], int], source: FrameSource | None = None) -> None:
    start, cpu_start = time.perf_counter(), time.process_time()
    frames = run()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    work = ""
    if source is not None:
        work = f"{source.stats.decoded / frames:>10.2f}{source.stats.seeks:>7}{source.stats.peak_rewind:>6}"
    print(f"{label:<28}{frames:>7}{1000 * seconds / frames:>10.1f}{1000 * cpu_seconds / frames:>8.1f}{work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path, default=ASSETS / "demo1_video.mp4")
    parser.add_argument("--chunk", type=int, default=16, help="output frames per request (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="decoder threads, 0 for automatic")
    parser.add_argument("--rewind", type=int, default=48, help="frames kept per seek back (default 48)")
    args = parser.parse_args()

    def chunks(indices: list[int]) -> list[list[int]]:
        return [indices[start : start + args.chunk] for start in range(0, len(indices), args.chunk)]

    def serve(source: FrameSource, indices: list[int]) -> int:
        return sum(len(source.get(chunk)) for chunk in chunks(indices))

    print(f"{args.clip.name}, requests of {args.chunk} frames, {args.rewind} kept per seek back")
    print(f"{'pass':<28}{'frames':>7}{'ms/frame':>10}{'cpu ms':>8}{'decoded/f':>10}{'seeks':>7}{'kept':>6}")
    timed_pass("VideoReader forward", lambda: sum(1 for _ in VideoReader(args.clip, threads=args.threads)))
    forward = FrameSource(args.clip, threads=args.threads, rewind_frames=args.rewind)
    timed_pass("FrameSource forward", lambda: serve(forward, list(range(len(forward)))), forward)
    backward = FrameSource(args.clip, threads=args.threads, rewind_frames=args.rewind)
    n = len(backward)
    timed_pass("FrameSource bounce backward", lambda: serve(backward, list(range(n - 2, 0, -1))), backward)


if __name__ == "__main__":
    main()
