"""Where the read-only test material lives: the real clips, the extracted specs and the official outputs.

They sit in a `shared/` folder beside the repository (or beside the folder holding several worktrees), never
inside it; `LATENTSYNC_SHARED` points elsewhere. One place for the tests and the benchmarks to find them.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "LATENTSYNC_SHARED"


def shared_dir() -> Path:
    """`$LATENTSYNC_SHARED`, else the nearest `shared/` with an `assets/` folder above this package."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / "assets").is_dir():
            return parent / "shared"
    return here.parents[3] / "shared"  # where a checkout's sibling would be; the tests say it is missing


SHARED = shared_dir()
ASSETS = SHARED / "assets"  # demo1..3 talking-head clips (1080x1920) and speech
SPEC = SHARED / "spec"  # facts extracted from the official code (state-dict manifests, ...)
GOLDEN = SHARED / "golden"  # outputs of the official code that ours must reproduce


def read_manifest(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, kind) rows of `spec/manifest_<name>.tsv`, in state_dict order."""
    rows = []
    for line in (SPEC / f"manifest_{name}.tsv").read_text().splitlines():
        key, shape, _dtype, kind = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.split(",") if s), kind))
    return rows
