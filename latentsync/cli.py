"""The `latentsync` command: one subcommand per job (download now; infer, serve and train beside it)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from latentsync import __version__
from latentsync.checkpoints import DEFAULT_VERSION, HUB_REPOS, download
from latentsync.errors import LatentSyncError


def _download(args: argparse.Namespace) -> int:
    paths = download(args.version, args.dir, with_training=args.with_training)
    print(f"LatentSync {paths.version} weights are in {paths.folder}, the VAE in {paths.vae}")
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
