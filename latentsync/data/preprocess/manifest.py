"""The manifest: one JSON line per input, holding its state and every segment's, appended as inputs finish.

A later line for the same input replaces an earlier one, so a rerun only appends. A line is written with a single
`write` and fsync'd; a run killed mid-write leaves a torn last line, which readers ignore and the next writer cuts
off. Sharded runs (`--shard I/N`) append to their own file, `manifest.shard-I-of-N.jsonl`, so that shards running at
once never share a file; an unsharded run folds every file into `manifest.jsonl` (sorted by input) when it ends.

Line fields: `input` (path relative to RAW_DIR), `size`, `mtime_ns`, `prepare` (settings fingerprint of stages 1-5),
`faces` (of stages 1-4: with it unchanged, a stage 5 change reuses the anchors in OUT_DIR/anchors/<input>.npy),
`face_smoothing` ("steady" or "official": how the clips were aligned), `state` ("done" or "dropped"), `stage` and
`reason` of a drop, `duration` (s), `frames` (at 25 fps), `segments`. Each segment: `clip` (path relative to
OUT_DIR/clips), `shot`, `index`, `start`, `frames`, `state` ("kept" or "dropped"), `stage` and `reason` of a drop,
and the `sync` and `quality` results with their settings fingerprints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from latentsync.atomic import atomic_path

MAIN = "manifest.jsonl"
Record = dict[str, Any]


def shard_name(shard: tuple[int, int] | None) -> str:
    return MAIN if shard is None else f"manifest.shard-{shard[0]}-of-{shard[1]}.jsonl"


def read_lines(path: Path) -> list[Record]:
    """The complete lines of one manifest file (a torn last line is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            records.append(json.loads(line))
    return records


def load(out_dir: Path) -> dict[str, Record]:
    """The latest record of every input, from `manifest.jsonl` and then the shard files (which are newer)."""
    files = [out_dir / MAIN, *sorted(out_dir.glob("manifest.shard-*.jsonl"))]
    latest: dict[str, Record] = {}
    for path in files:
        for record in read_lines(path):
            latest[record["input"]] = record
    return latest


class ManifestWriter:
    """Appends records to one manifest file, each durable before `append` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _cut_torn_line(path)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the run, closed by `close`)

    def append(self, record: Record) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def compact(out_dir: Path) -> None:
    """Rewrite everything known as one sorted `manifest.jsonl` (atomically) and remove the shard files."""
    latest = load(out_dir)
    with atomic_path(out_dir / MAIN) as temp, open(temp, "w", encoding="utf-8") as file:
        file.writelines(json.dumps(latest[key], sort_keys=True) + "\n" for key in sorted(latest))
    for path in out_dir.glob("manifest.shard-*.jsonl"):
        path.unlink()


def _cut_torn_line(path: Path) -> None:
    """Truncate a file that does not end in a newline back to its last complete line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)
