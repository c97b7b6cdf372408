"""The `latentsync` command: one module per subcommand, each with `register(subparsers)`.

Subcommand modules import their heavy dependencies (torch, the pipeline, the server) inside `run`, so that
`latentsync --help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from latentsync import __version__
from latentsync.cli import batch, download, eval, infer, preprocess, serve, train
from latentsync.cli.options import add_model_options, load_pipeline
from latentsync.cli.stops import command_logging, exit_code, stop_signals_interrupt
from latentsync.errors import LatentSyncError

__all__ = ["add_model_options", "build_parser", "load_pipeline", "main"]

SUBCOMMANDS = (download, infer, batch, serve, preprocess, train, eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentsync", description="Audio-driven lip sync with the LatentSync models, on your own hardware."
    )
    parser.add_argument("--version", action="version", version=f"latentsync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details (also after the command)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with command_logging(args.verbose, getattr(args, "quiet", False)), stop_signals_interrupt():
            if os.environ.get("LATENTSYNC_THREADS"):  # torch is imported only when the count is set
                from latentsync.runtime import configure_threads

                configure_threads()
            return run(args)
    except LatentSyncError as exc:
        print(f"latentsync: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP: the `with` blocks have removed partial output
        print(f"latentsync: {exc or 'interrupted'}", file=sys.stderr)
        return exit_code(exc)
