"""How a command ends: logging levels, and SIGTERM/SIGHUP treated like Ctrl-C.

A stop signal raises `Stopped` (a KeyboardInterrupt) in the main thread, so every `with` block unwinds as it does
on Ctrl-C: the video writer deletes its partial file and the command exits with 128 + the signal's number.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
LOG_FORMAT = "%(levelname)s %(message)s"


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; `exit_code` is the shell's 128 + signal number (SIGTERM 143, SIGHUP 129)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status for an interrupt: 130 for Ctrl-C (SIGINT), 128 + n for a stop signal."""
    return interrupt.exit_code if isinstance(interrupt, Stopped) else 128 + signal.SIGINT


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Stopped` like Ctrl-C raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def command_logging(verbose: bool = False, quiet: bool = False) -> Iterator[None]:
    """While inside: latentsync's own messages at INFO (DEBUG with -v, warnings only with --quiet), other
    libraries' only from WARNING up, so torch's INFO lines (its FakeTensor cache stats at exit, say) never show."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    ours = logging.getLogger("latentsync")
    previous = ours.level
    ours.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        ours.setLevel(previous)  # main() may run again in the same process (tests, a notebook)
