"""The `latentsync` command: one module per subcommand, each with `register(subparsers)`.

Subcommand modules import their heavy dependencies (torch, the pipeline, the server) inside `run`, so that
`latentsync --help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import re
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


# A config override: `data.batch_size=4`, `run.trainable_modules=[a,b]`.
OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=.*")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with `key=value` overrides allowed anywhere among a command's options.

    argparse collects a positional list from one run of arguments only, so `train unet $(cat overrides) --data D
    run.max_train_steps=2` would refuse the last override; those left over join the command's `overrides`.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not (isinstance(getattr(args, "overrides", None), list) and all(OVERRIDE.fullmatch(x) for x in extra)):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
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
