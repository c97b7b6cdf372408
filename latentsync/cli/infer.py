"""`latentsync infer`: lip-sync one video to one audio track."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentsync.cli.options import add_model_options, load_pipeline, point
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
        face_index=None if args.face_index == "speaker" else args.face_index,
        face_chooser=speaker_chooser(args) if args.face_index == "speaker" else None,
        face_at=args.face_at,
        audio_windows=args.audio_windows,
        face_tracking=args.face_tracking,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(result.summary())
    return 0


def face_index(text: str) -> int | str:
    if text == "speaker":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a face number or 'speaker', got {text!r}") from None


def speaker_chooser(args: argparse.Namespace):
    """The active-speaker choice: SyncNet confidence when syncnet_v2.model is downloaded, else lip movement."""
    from functools import partial

    from latentsync.checkpoints import checkpoint_paths
    from latentsync.eval.speaker import choose_speaker

    weights = checkpoint_paths(args.version, args.checkpoints).auxiliary / "syncnet_v2.model"
    return partial(choose_speaker, syncnet_weights=weights if weights.is_file() else None)


def register(sub: argparse._SubParsersAction) -> None:
    inf = sub.add_parser("infer", help="lip-sync a video to an audio track")
    inf.add_argument("--video", required=True, help="input talking-head video (any format and frame rate)")
    inf.add_argument("--audio", required=True, help="speech: any audio file, or a video whose sound to use")
    inf.add_argument("--output", required=True, help="output .mp4 (written only when complete)")
    inf.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    inf.add_argument("--guidance-scale", type=float, default=1.5, help="audio guidance; 1 turns it off (default 1.5)")
    inf.add_argument("--seed", type=int, default=1247, help="the same seed gives the same output (default 1247)")
    inf.add_argument("--sync-mode", choices=SYNC_MODES, default="cut_off",
                     help="when lengths differ: cut_off, loop, bounce, silence or remap (default cut_off)")
    inf.add_argument("--deepcache", action="store_true", help="reuse deep U-Net features between steps (faster)")
    inf.add_argument("--batch-frames", type=int, default=16, help="frames per diffusion chunk (default 16)")
    inf.add_argument("--face-index", type=face_index, default=None, metavar="N|speaker",
                     help="with several faces: the N-th from the left, or 'speaker': the one speaking the audio (then followed)")
    inf.add_argument("--face-at", type=point, default=None, metavar="X,Y", help="with several faces: the one at X,Y (then followed)")
    inf.add_argument("--audio-windows", choices=["official", "overlap"], default="official",
                     help="Whisper context for audio over 30 s: official restarts, or overlapping windows")
    inf.add_argument("--no-face-tracking", dest="face_tracking", action="store_false",
                     help="run the full-frame face finder on every frame instead of following the face")
    inf.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    add_model_options(inf)
    inf.set_defaults(run=run)
