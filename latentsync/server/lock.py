"""One server per data dir: an exclusive lock on DATA/server.lock, whose text names the holder.

A second server on the same data dir would otherwise take the first one's running job for a cut-off one and run
it again. The lock is an OS file lock, so it goes away with the process however that ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from latentsync.errors import LatentSyncError


class DataDirBusy(LatentSyncError, RuntimeError):
    """Another server holds the data dir."""


class DataDirLock:
    def __init__(self, root: Path) -> None:
        self.path = root / "server.lock"
        self._file: int | None = None

    def acquire(self, address: str = "") -> None:
        """Hold the lock, or raise DataDirBusy naming the server that does."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(Path(self.path).read_text(errors="replace"))
            os.close(fd)
            raise DataDirBusy(
                f"the data dir {self.path.parent} is in use by another server ({holder}); stop it, or give this "
                "one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "address": address, "since": time.time()}
        os.write(fd, json.dumps(me).encode())
        self._file = fd

    def release(self) -> None:
        if self._file is not None:
            os.close(self._file)  # closing drops the lock; the file stays (another server may hold it already)
            self._file = None


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
        where = f" listening on {holder['address']}" if holder.get("address") else ""
        return f"pid {holder['pid']} on {holder['host']}{where}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "a process that is starting up"
