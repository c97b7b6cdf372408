"""`latentsync infer`: lip-sync one video to one audio track."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentsync.cli.options import OUTPUT_SUFFIXES, add_job_options, add_model_options, job_options, load_pipeline
from latentsync.errors import LatentSyncError


def run(args: argparse.Namespace) -> int:
    for flag, path in (("--video", args.video), ("--audio", args.audio)):
        if not Path(path).is_file():
            raise LatentSyncError(f"{flag} {path}: no such file")
    if Path(args.output).suffix.lower() not in OUTPUT_SUFFIXES:
        raise LatentSyncError(f"--output {args.output}: write an H.264 video file, one of {', '.join(OUTPUT_SUFFIXES)}")
    pipeline = load_pipeline(args)
    result = pipeline(
        args.video,
        args.audio,
        args.output,
        **job_options(args),
        progress=not args.quiet,
    )
    if not args.quiet:
        print(result.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    inf = sub.add_parser("infer", help="lip-sync a video to an audio track")
    inf.add_argument("--video", required=True, help="input talking-head video (any format and frame rate)")
    inf.add_argument("--audio", required=True, help="speech: any audio file, or a video whose sound to use")
    inf.add_argument("--output", required=True, help="output .mp4 (written only when complete)")
    add_job_options(inf)
    inf.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    add_model_options(inf)
    inf.set_defaults(run=run)
