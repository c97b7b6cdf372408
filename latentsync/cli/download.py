"""`latentsync download`: fetch the official weights ahead of time."""

from __future__ import annotations

import argparse

from latentsync.cli.options import add_model_version
from latentsync.hub import download


def run(args: argparse.Namespace) -> int:
    paths = download(args.version, args.dir, with_training=args.with_training)
    print(f"LatentSync {paths.version} weights are in {paths.folder}, the VAE in {paths.vae}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    dl = sub.add_parser(
        "download",
        help="fetch the official weights from the Hugging Face hub",
        description="Fetch the official weights of a release (U-Net, Whisper and the SD VAE, about 5 GB) ahead of "
        "time; `infer` fetches what it lacks on its first run. Files already there are kept, interrupted ones resume.",
    )
    add_model_version(dl)
    dl.add_argument(
        "--dir", default=None, help="checkpoints folder (default: ./checkpoints or $LATENTSYNC_CHECKPOINTS)"
    )
    dl.add_argument(
        "--with-training", action="store_true", help="also fetch the SyncNet and the auxiliary models training needs"
    )
    dl.set_defaults(run=run)
