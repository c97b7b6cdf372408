"""`latentsync infer`: lip-sync one video to one audio track.

Every check that needs no model (inputs, output, numbers, device) runs first, so bad input is refused in a second,
before any model loads or any weight is downloaded.
"""

from __future__ import annotations

import argparse
import logging

from latentsync.cli.checks import FPS, AudioCheck, VideoCheck, check_inputs
from latentsync.cli.options import add_model_options, load_pipeline, point
from latentsync.media.sync import SYNC_MODES

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    settings = {
        name: getattr(args, name) for name in ("steps", "guidance_scale", "batch_frames", "face_index", "face_at")
    }
    video, audio = check_inputs(args.video, args.audio, args.output, settings)
    describe_inputs(video, audio)
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
        print("; ".join([result.summary(), *notes(video, audio, result.frames)]))
    return 0


def describe_inputs(video: VideoCheck, audio: AudioCheck) -> None:
    """Say what was found in the inputs: the facts at INFO, what a user may not expect as a warning."""
    info = video.info
    logger.info("video %s: %dx%d, %.3f fps, %.1f s", info.path, info.width, info.height, info.fps, info.duration)
    logger.debug("video codec %s, %d frames%s, rotation %d", info.codec, info.frame_count,
                 "" if info.frame_count_exact else " (estimated)", info.rotation)  # fmt: skip
    logger.debug("audio %s: %d channel(s) at %d Hz, %s s", audio.path, audio.channels, audio.sample_rate,
                 "unknown" if audio.duration is None else f"{audio.duration:.2f}")  # fmt: skip
    if video.truncated:
        logger.warning(video.truncation_note())
    if audio.channels > 1:
        logger.info("the audio has %d channels: the models hear, and the output carries, them mixed to mono", audio.channels)  # fmt: skip


def notes(video: VideoCheck, audio: AudioCheck, frames: int) -> list[str]:
    """What the summary adds about the inputs: a truncated video, stereo mixed down, audio cut or padded."""
    said = [video.truncation_note()] if video.truncated else []
    if audio.channels > 1:
        said.append(f"the {audio.channels}-channel audio was mixed to mono")
    if audio.duration is not None:
        length = frames / FPS
        if audio.duration > length + 1 / FPS:
            said.append(f"the audio ({audio.duration:.2f} s) was cut to the output's {length:.2f} s")
        elif audio.duration < length - 1 / FPS:
            said.append(
                f"the audio ({audio.duration:.2f} s) was padded with {length - audio.duration:.2f} s of silence"
            )
    return said


def register(sub: argparse._SubParsersAction) -> None:
    inf = sub.add_parser("infer", help="lip-sync a video to an audio track")
    inf.add_argument("--video", required=True, help="input talking-head video (any format and frame rate)")
    inf.add_argument("--audio", required=True, help="speech: any audio file, or a video whose sound to use")
    inf.add_argument("--output", required=True, help="output .mp4 (written only when complete; not one of the inputs)")
    inf.add_argument("--steps", type=int, default=20, help="DDIM steps, 1 to 1000 (default 20)")
    inf.add_argument(
        "--guidance-scale", type=float, default=1.5, help="audio guidance, at least 1; 1 turns it off (default 1.5)"
    )
    inf.add_argument("--seed", type=int, default=1247, help="the same seed gives the same output (default 1247)")
    inf.add_argument(
        "--sync-mode",
        choices=SYNC_MODES,
        default="cut_off",
        help="when lengths differ: cut_off, loop, bounce, silence or remap (default cut_off)",
    )
    inf.add_argument("--deepcache", action="store_true", help="reuse deep U-Net features between steps (faster)")
    inf.add_argument("--batch-frames", type=int, default=16, help="frames per diffusion chunk (default 16)")
    face = inf.add_mutually_exclusive_group()
    face.add_argument(
        "--face-index",
        type=int,
        default=None,
        metavar="N",
        help="with several faces: the N-th from the left, 0 first; negative counts from the right "
        "(-1 the rightmost); then followed",
    )
    face.add_argument(
        "--face-at",
        type=point,
        default=None,
        metavar="X,Y",
        help="with several faces: the one at (or near) pixel X,Y of the first frame with faces; then followed",
    )
    inf.add_argument(
        "--audio-windows",
        choices=["official", "overlap"],
        default="official",
        help="Whisper context for audio over 30 s: official restarts, or overlapping windows",
    )
    inf.add_argument(
        "--no-face-tracking",
        dest="face_tracking",
        action="store_false",
        help="run the full-frame face finder on every frame instead of following the face",
    )
    inf.add_argument("-q", "--quiet", action="store_true", help="no progress bars, summary or INFO lines")
    inf.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details")
    add_model_options(inf)
    inf.set_defaults(run=run)
