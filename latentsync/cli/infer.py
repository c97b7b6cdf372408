"""`latentsync infer`: lip-sync one video to one audio track."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentsync.cli.options import add_model_options, load_pipeline, point
from latentsync.config.defaults import INFERENCE
from latentsync.errors import LatentSyncError
from latentsync.media.sync import SYNC_MODES

OUTPUT_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")


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
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        seed=args.seed,
        sync_mode=args.sync_mode,
        deepcache=args.deepcache,
        batch_frames=args.batch_frames,
        face_index=args.face_index,
        face_at=args.face_at,
        audio_windows=args.audio_windows,
        face_tracking=args.face_tracking,
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
    inf.add_argument("--steps", type=int, default=INFERENCE.steps, help=f"DDIM steps (default {INFERENCE.steps})")
    inf.add_argument("--guidance-scale", type=float, default=INFERENCE.guidance_scale,
                     help=f"audio guidance; 1 turns it off (default {INFERENCE.guidance_scale})")
    inf.add_argument("--seed", type=int, default=INFERENCE.seed,
                     help=f"the same seed gives the same output (default {INFERENCE.seed})")
    inf.add_argument("--sync-mode", choices=SYNC_MODES, default=INFERENCE.sync_mode,
                     help="when lengths differ: cut_off, loop, bounce, silence or remap (default cut_off)")
    inf.add_argument("--deepcache", action="store_true", help="reuse deep U-Net features between steps (faster)")
    inf.add_argument("--batch-frames", type=int, default=INFERENCE.batch_frames,
                     help=f"frames per diffusion chunk (default {INFERENCE.batch_frames})")
    inf.add_argument("--face-index", type=int, default=None, help="with several faces: the N-th from the left (then followed)")
    inf.add_argument("--face-at", type=point, default=None, metavar="X,Y", help="with several faces: the one at X,Y (then followed)")
    inf.add_argument("--audio-windows", choices=["official", "overlap"], default="official",
                     help="Whisper context for audio over 30 s: official restarts, or overlapping windows")
    inf.add_argument("--no-face-tracking", dest="face_tracking", action="store_false",
                     help="run the full-frame face finder on every frame instead of following the face")
    inf.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    add_model_options(inf)
    inf.set_defaults(run=run)
