"""One run per OUT_DIR: an advisory lock (released by the kernel even after kill -9) with the holder's name inside.

An unsharded run holds OUT_DIR's lock exclusively; each `--shard I/N` run holds it shared plus its own shard's
lock exclusively, so the shards of a SLURM array can run at once but never beside an unsharded run or a twin.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from latentsync.errors import LatentSyncError

LOCK = ".preprocess.lock"


class OutputLockedError(LatentSyncError, RuntimeError):
    """Another `latentsync preprocess` run is writing to this OUT_DIR."""


class OutputLock:
    def __init__(self, out_dir: Path, shard: tuple[int, int] | None = None) -> None:
        self.out_dir = out_dir
        self.shard = shard
        self._files: list[tuple[IO[str], bool]] = []

    def __enter__(self) -> OutputLock:  # noqa: PYI034 (Self needs Python 3.11)
        try:
            if self.shard is None:
                self._take(self.out_dir / LOCK, fcntl.LOCK_EX)
            else:
                self._take(self.out_dir / LOCK, fcntl.LOCK_SH)
                self._take(self.out_dir / f".preprocess.shard-{self.shard[0]}-of-{self.shard[1]}.lock", fcntl.LOCK_EX)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _take(self, path: Path, mode: int) -> None:
        file = open(path, "a+")  # noqa: SIM115 (held open for the run: closing it releases the lock)
        try:
            fcntl.flock(file, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise OutputLockedError(
                f"{self.out_dir} is in use by another preprocess run ({self._holders()}); wait for it to finish, "
                "or stop it (a stopped run can be resumed)"
            ) from None
        if mode == fcntl.LOCK_EX:
            file.seek(0)
            file.truncate()
            file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            file.flush()
        self._files.append((file, mode == fcntl.LOCK_EX))

    def _holders(self) -> str:
        names = []
        for path in sorted(self.out_dir.glob(".preprocess*.lock")):
            text = path.read_text().strip()
            if text:
                names.append(f"{text} ({path.name})")
        return ", ".join(names) or "holder unknown"

    def __exit__(self, *exc: object) -> None:
        for file, exclusive in reversed(self._files):
            if exclusive:  # no stale name for the next conflict message
                file.truncate(0)
            file.close()  # closing releases the lock
        self._files.clear()
