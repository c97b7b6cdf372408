"""The `latentsync` command: one subcommand per job (download now; infer, serve and train beside it)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from latentsync import __version__
from latentsync.checkpoints import DEFAULT_VERSION, HUB_REPOS, checkpoint_paths, download
from latentsync.errors import LatentSyncError
from latentsync.media.sync import SYNC_MODES


def _download(args: argparse.Namespace) -> int:
    paths = download(args.version, args.dir, with_training=args.with_training)
    print(f"LatentSync {paths.version} weights are in {paths.folder}, the VAE in {paths.vae}")
    return 0


OUTPUT_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in frame pixels, got {text!r}") from None
    return x, y


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose and place the models; `infer` and `serve` share them."""
    g = parser.add_argument_group("models")
    g.add_argument("--version", choices=sorted(HUB_REPOS), default=DEFAULT_VERSION,
                   help="release: 1.5 (256 px crops) or 1.6 (512 px); picks the default config and weights")
    g.add_argument("--checkpoints", default=None, help="folder laid out by `latentsync download` (default ./checkpoints)")
    g.add_argument("--unet-config", default=None, help="U-Net YAML config (official format); default: the release's")
    g.add_argument("--unet-checkpoint", default=None, help="U-Net weights (latentsync_unet.pt or a training checkpoint)")
    g.add_argument("--whisper-checkpoint", default=None, help="openai-whisper checkpoint (tiny.pt)")
    g.add_argument("--vae", default=None, help="VAE: a local diffusers folder or a hub id")
    g.add_argument("--device", default=None, help="cuda, cuda:1, cpu, ... (default: CUDA when available)")
    g.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None,
                   help="compute precision (default: fp16 on CUDA, fp32 on the CPU)")
    g.add_argument("--face-detector", choices=["dlib", "face-alignment", "insightface"], default="dlib",
                   help="landmark backend (dlib's 68-point model is for non-commercial use only)")
    g.add_argument("--compile", action="store_true", help="torch.compile the U-Net (slow first chunk, faster after)")
    g.add_argument("--no-download", dest="download", action="store_false",
                   help="fail instead of fetching missing default weights from the hub")
    g.add_argument("--low-vram", action="store_true",
                   help="VAE and Whisper wait on the CPU; the VAE decodes 4 frames at a time (1.3 GiB less at 512 px)")


def load_pipeline(args: argparse.Namespace):
    """Build the pipeline from the model options; fetch missing default weights first unless --no-download."""
    from latentsync.pipelines.lipsync import LipsyncPipeline

    paths = checkpoint_paths(args.version, args.checkpoints)
    defaults = {
        "unet": (args.unet_checkpoint, paths.unet),
        "whisper": (args.whisper_checkpoint, paths.whisper),
        "vae": (args.vae, paths.vae),
    }
    missing = tuple(part for part, (given, path) in defaults.items() if given is None and not path.exists())
    if args.download and missing:
        logging.info("fetching the LatentSync %s weights (%s) into %s", paths.version, ", ".join(missing), paths.root)
        download(paths.version, paths.root, parts=missing)
    return LipsyncPipeline.from_pretrained(
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


def _infer(args: argparse.Namespace) -> int:
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


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a network such as 10.0.0.0/8 or ::1, got {text!r}") from None


def _serve(args: argparse.Namespace) -> int:
    try:
        from latentsync.server import ServerSettings, serve
    except ImportError as exc:
        missing = f"the server needs its extra ({exc.name} is missing): pip install 'latentsync[server]'"
        raise LatentSyncError(missing) from None
    settings = ServerSettings(
        data_dir=Path(args.data_dir),
        api_key=os.environ.get("LATENTSYNC_API_KEY") or None,
        max_duration=args.max_duration,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_download_bytes=int(args.max_download_mb * 1024 * 1024),
        download_timeout=args.download_timeout,
        allow_networks=tuple(args.allow_url_network),
    )
    pipeline = load_pipeline(args)
    serve(settings, pipeline, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentsync", description="Audio-driven lip sync with the LatentSync models, on your own hardware."
    )
    parser.add_argument("--version", action="version", version=f"latentsync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dl = sub.add_parser("download", help="fetch the official weights from the Hugging Face hub")
    dl.add_argument("--version", choices=sorted(HUB_REPOS), default=DEFAULT_VERSION, help="model release")
    dl.add_argument("--dir", default=None, help="checkpoints folder (default: ./checkpoints or $LATENTSYNC_CHECKPOINTS)")
    dl.add_argument(
        "--with-training", action="store_true", help="also fetch the SyncNet and the auxiliary models training needs"
    )
    dl.set_defaults(run=_download)

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
    inf.add_argument("--face-index", type=int, default=None, help="with several faces: the N-th from the left (then followed)")
    inf.add_argument("--face-at", type=_point, default=None, metavar="X,Y", help="with several faces: the one at X,Y (then followed)")
    inf.add_argument("--audio-windows", choices=["official", "overlap"], default="official",
                     help="Whisper context for audio over 30 s: official restarts, or overlapping windows")
    inf.add_argument("--no-face-tracking", dest="face_tracking", action="store_false",
                     help="run the full-frame face finder on every frame instead of following the face")
    inf.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    add_model_options(inf)
    inf.set_defaults(run=_infer)

    srv = sub.add_parser("serve", help="run the lip-sync HTTP API (hosted-service shapes) and its web page")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument("--data-dir", default="latentsync-data", help="jobs database, uploads and results (default ./latentsync-data)")  # fmt: skip
    srv.add_argument("--max-duration", type=float, default=600, help="longest accepted video or audio, seconds (default 600)")  # fmt: skip
    srv.add_argument("--max-upload-mb", type=float, default=500, help="largest accepted upload (default 500 MB)")
    srv.add_argument("--max-download-mb", type=float, default=500, help="largest input fetched from a URL (default 500 MB)")  # fmt: skip
    srv.add_argument("--download-timeout", type=float, default=120, help="seconds allowed for fetching one input URL (default 120)")  # fmt: skip
    srv.add_argument("--allow-url-network", type=_network, action="append", default=[], metavar="CIDR",
                     help="let input URLs point into this loopback/private/link-local network (repeatable); "
                     "by default such addresses are refused")  # fmt: skip
    add_model_options(srv)
    srv.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except LatentSyncError as exc:
        print(f"latentsync: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentsync: interrupted", file=sys.stderr)
        return 130
