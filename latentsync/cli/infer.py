"""`latentsync infer`: lip-sync one video to one audio track.

Every check that needs no model (inputs, output, numbers, device) runs first, so bad input is refused in a second,
before any model loads or any weight is downloaded.
"""

from __future__ import annotations

import argparse
import logging

from latentsync.cli.checks import FPS, AudioCheck, VideoCheck, check_inputs, parsed_settings
from latentsync.cli.options import add_job_options, add_model_options, job_options, load_pipeline

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    video, audio = check_inputs(args.video, args.audio, args.output, parsed_settings(args))
    describe_inputs(video, audio)
    pipeline = load_pipeline(args)
    result = pipeline(
        args.video,
        args.audio,
        args.output,
        **job_options(args, resolve_speaker=True),
        progress=not args.quiet,
    )
    if not args.quiet:
        print("; ".join([result.summary(), *notes(video, audio, result.frames)]))
    return 0


def describe_inputs(video: VideoCheck, audio: AudioCheck) -> None:
    """Say what was found in the inputs: the facts at INFO, what a user may not expect as a warning."""
    info = video.info
    logger.info("video %s: %dx%d, %.3f fps, %.1f s", info.path, info.width, info.height, info.fps, info.duration)
    logger.debug(
        "video codec %s, %d frames%s, rotation %d",
        info.codec,
        info.frame_count,
        "" if info.frame_count_exact else " (estimated)",
        info.rotation,
    )
    logger.debug(
        "audio %s: %d channel(s) at %d Hz, %s s",
        audio.path,
        audio.channels,
        audio.sample_rate,
        "unknown" if audio.duration is None else f"{audio.duration:.2f}",
    )
    if video.truncated:
        logger.warning(video.truncation_note())
    if audio.channels > 1:
        logger.info(
            "the audio has %d channels: the models hear, and the output carries, them mixed to mono", audio.channels
        )


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
    text = "lip-sync a video to an audio track"
    inf = sub.add_parser("infer", help=text, description=text)
    inf.add_argument("--video", required=True, help="input talking-head video (any format and frame rate)")
    inf.add_argument("--audio", required=True, help="speech: any audio file, or a video whose sound to use")
    inf.add_argument(
        "--output", required=True, help="output .mp4, .mov, .m4v or .mkv (written only when complete; not an input)"
    )
    add_job_options(inf)
    inf.add_argument("-q", "--quiet", action="store_true", help="no progress bars, summary or INFO lines")
    inf.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details")
    add_model_options(inf)
    inf.set_defaults(run=run)
