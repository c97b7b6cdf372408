"""Options that several subcommands share: which models to load, where, and how to place them."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Sequence
from typing import Any

from latentsync.config.defaults import INFERENCE
from latentsync.faces.landmarks import BACKENDS
from latentsync.hub import DEFAULT_VERSION, HUB_REPOS, checkpoint_paths, download
from latentsync.media.sync import SYNC_MODES

# The per-video settings `infer` takes as options and `batch` as defaults that a jobs-file row may override.
JOB_OPTIONS = (
    "steps",
    "guidance_scale",
    "seed",
    "sync_mode",
    "deepcache",
    "batch_frames",
    "face_index",
    "face_at",
    "audio_windows",
    "face_tracking",
    "face_smoothing",
)

logger = logging.getLogger(__name__)


def point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in frame pixels such as 540,700, got {text!r}") from None
    return x, y


def devices(text: str) -> list[str]:
    """`--devices`: a comma-separated device list (one worker per entry, the same device may repeat)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected devices separated by commas (cuda:0,cuda:1 or cpu,cpu), got {text!r}"
        )
    return names


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores like the new one (`self.dest`) and says which one to use."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"latentsync: {option_string} here is deprecated, use {self.new} {values}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_model_version(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--model-version 1.5|1.6`; `--version` under a subcommand still works, with a notice (at the top level it
    is the program's version)."""
    parser.add_argument(
        "--model-version",
        dest="version",
        choices=sorted(HUB_REPOS),
        default=DEFAULT_VERSION,
        help="release: 1.5 (256 px crops) or 1.6 (512 px); picks the default config and weights",
    )
    parser.add_argument(
        "--version",
        dest="version",
        choices=sorted(HUB_REPOS),
        action=DeprecatedAlias,
        new="--model-version",
        help=argparse.SUPPRESS,
    )


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """How one video is lip-synced: `infer`'s settings, and `batch`'s defaults for every row."""
    parser.add_argument(
        "--steps", type=int, default=INFERENCE.steps, help=f"DDIM steps, 1 to 1000 (default {INFERENCE.steps})"
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=INFERENCE.guidance_scale,
        help=f"audio guidance, at least 1; 1 turns it off (default {INFERENCE.guidance_scale})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=INFERENCE.seed,
        help=f"the same seed gives the same output (default {INFERENCE.seed})",
    )
    parser.add_argument(
        "--sync-mode",
        choices=SYNC_MODES,
        default=INFERENCE.sync_mode,
        help="when lengths differ: cut_off, loop, bounce, silence or remap (default cut_off)",
    )
    parser.add_argument("--deepcache", action="store_true", help="reuse deep U-Net features between steps (faster)")
    parser.add_argument(
        "--batch-frames",
        type=int,
        default=INFERENCE.batch_frames,
        help=f"frames per diffusion chunk (default {INFERENCE.batch_frames})",
    )
    face = parser.add_mutually_exclusive_group()
    face.add_argument(
        "--face-index",
        type=face_index,
        default=None,
        metavar="N|speaker",
        help="with several faces: the N-th from the left, 0 first; negative counts from the right "
        "(-1 the rightmost); 'speaker': the one speaking the audio; then followed",
    )
    face.add_argument(
        "--face-at",
        type=point,
        default=None,
        metavar="X,Y",
        help="with several faces: the one at (or near) pixel X,Y of the first frame with faces; then followed",
    )
    parser.add_argument(
        "--audio-windows",
        choices=["official", "overlap"],
        default="official",
        help="Whisper context for audio over 30 s: official restarts, or overlapping windows",
    )
    parser.add_argument(
        "--no-face-tracking",
        dest="face_tracking",
        action="store_false",
        help="run the full-frame face finder on every frame instead of following the face",
    )
    parser.add_argument(
        "--face-smoothing",
        choices=["steady", "official"],
        default="steady",
        help="steady: drop landmark outliers and smooth the face's motion over the whole video (default); "
        "official: the official per-frame alignment",
    )


def face_index(text: str) -> int | str:
    if text == "speaker":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a face number or 'speaker', got {text!r}") from None


def job_options(args: argparse.Namespace, resolve_speaker: bool = False) -> dict[str, object]:
    """The pipeline keyword arguments that `add_job_options` parsed.

    With `resolve_speaker`, `--face-index speaker` becomes the pipeline's `face_chooser` (the active speaker).
    """
    options = {name: getattr(args, name) for name in JOB_OPTIONS}
    if resolve_speaker and options["face_index"] == "speaker":
        options["face_index"] = None
        from latentsync.eval.speaker import speaker_chooser

        options["face_chooser"] = speaker_chooser(args.version, args.checkpoints)
    return options


def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a network such as 10.0.0.0/8 or ::1, got {text!r}") from None


def add_fetch_options(parser: argparse.ArgumentParser, timeout_for: str) -> None:
    """How input URLs are fetched (the server's guarded fetcher); `serve` and `batch` share them."""
    parser.add_argument(
        "--max-download-mb", type=float, default=500, help="largest input fetched from a URL (default 500 MB)"
    )
    parser.add_argument(
        "--download-timeout", type=float, default=120, help=f"seconds allowed for fetching {timeout_for} (default 120)"
    )
    parser.add_argument(
        "--allow-url-network",
        type=network,
        action="append",
        default=[],
        metavar="CIDR",
        help="let input URLs point into this loopback/private/link-local network (repeatable); "
        "by default such addresses are refused",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose and place the models; `infer` and `serve` share them."""
    g = parser.add_argument_group("models")
    add_model_version(g)
    g.add_argument(
        "--checkpoints", default=None, help="folder laid out by `latentsync download` (default ./checkpoints)"
    )
    g.add_argument("--unet-config", default=None, help="U-Net YAML config (official format); default: the release's")
    g.add_argument(
        "--unet-checkpoint", default=None, help="U-Net weights (latentsync_unet.pt or a training checkpoint)"
    )
    g.add_argument("--whisper-checkpoint", default=None, help="openai-whisper checkpoint (tiny.pt)")
    g.add_argument("--vae", default=None, help="VAE: a local diffusers folder or a hub id")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: CUDA when available)")
    g.add_argument(
        "--dtype",
        choices=["fp16", "bf16", "fp32"],
        default=None,
        help="compute precision (default: fp16 on CUDA, fp32 on the CPU)",
    )
    g.add_argument(
        "--face-detector",
        choices=list(BACKENDS),
        default="dlib",
        help="landmark backend (dlib's 68-point model is for non-commercial use only)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the U-Net (slow first chunk, faster after)")
    g.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="fail instead of fetching missing default weights from the hub",
    )
    g.add_argument(
        "--lora",
        default=None,
        metavar="PATH",
        help="merge a LoRA adapter from `latentsync train` (checkpoint-N.lora.pt) into the U-Net",
    )
    g.add_argument(
        "--low-vram",
        action="store_true",
        help="VAE and Whisper wait on the CPU; the VAE decodes 4 frames at a time (1.3 GiB less at 512 px)",
    )


def load_pipeline(args: argparse.Namespace):
    """Build the pipeline from the model options; fetch missing default weights first unless --no-download.

    The device is checked first, so that a machine without CUDA hears so before any byte is fetched.
    """
    from latentsync.cli.checks import check_device
    from latentsync.pipelines.lipsync import LipsyncPipeline

    check_device(args.device)
    paths = checkpoint_paths(args.version, args.checkpoints)
    defaults = {
        "unet": (args.unet_checkpoint, paths.unet),
        "whisper": (args.whisper_checkpoint, paths.whisper),
        "vae": (args.vae, paths.vae),
    }
    missing = tuple(part for part, (given, path) in defaults.items() if given is None and not path.exists())
    if args.download and missing:
        logger.info("fetching the LatentSync %s weights (%s) into %s", paths.version, ", ".join(missing), paths.root)
        download(paths.version, paths.root, parts=missing)
    for part, (given, path) in defaults.items():
        logger.debug("%s: %s", part, given or path)
    pipeline = LipsyncPipeline.from_pretrained(
        version=args.version,
        checkpoints=args.checkpoints,
        unet_config=args.unet_config,
        unet_checkpoint=args.unet_checkpoint,
        whisper_checkpoint=args.whisper_checkpoint,
        vae=args.vae,
        device=args.device,
        dtype=args.dtype,
        face_detector=args.face_detector,
        compile=args.compile,
        low_vram=args.low_vram,
    )
    if getattr(args, "lora", None):
        from latentsync.train.lora import merge_adapter_file

        logger.info("merged %d LoRA adapters from %s", merge_adapter_file(pipeline.unet, args.lora), args.lora)
    return pipeline
