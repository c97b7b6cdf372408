"""Options that several subcommands share: which models to load, where, and how to place them."""

from __future__ import annotations

import argparse
import logging

from latentsync.hub import DEFAULT_VERSION, HUB_REPOS, checkpoint_paths, download


def point(text: str) -> tuple[float, float]:
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
