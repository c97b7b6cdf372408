"""Files that appear whole or not at all: every writer of the package goes through `atomic_path`.

A killed job, a full disk or an exception must never leave a half-written checkpoint, clip, manifest or chart where
a reader (a resumed run, the official loader, a user) would take it for a finished one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; when the block ends without error it is flushed to disk and
    renamed over `path`, otherwise removed.

    The name keeps the suffix (writers that choose a format by it) and is unique (concurrent writers of one path), and
    has the `.partial` mark by which data preparation clears what a killed run left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield temp
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
