"""The per-job function every backend runs: fetch the inputs, lip-sync, and say what came of it.

The same function runs in the driver (one device), in a worker process per device (`--devices`) and in a Ray actor
(`--ray`); whatever goes wrong inside a job fails that job with a reason, and the worker goes on with the next.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentsync.atomic import atomic_path
from latentsync.errors import LatentSyncError

if TYPE_CHECKING:  # the server package imports FastAPI; batch needs its fetcher only for URLs
    from latentsync.server.fetch import FetchPolicy

from .jobs import Job, is_url
from .records import JobRecord

logger = logging.getLogger(__name__)

Pipeline = Callable[..., Any]  # LipsyncPipeline or anything called like it


@dataclass(frozen=True)
class ModelSpec:
    """The command line's model options (all but the device), so that each worker loads the same models."""

    options: dict[str, Any]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelSpec:
        from latentsync.cli.options import add_model_options

        probe = argparse.ArgumentParser(add_help=False)
        add_model_options(probe)
        names = [action.dest for action in probe._actions if action.dest != "device"]
        return cls({name: getattr(args, name) for name in names})

    def load(self, device: str | None) -> Pipeline:
        from latentsync.cli.options import load_pipeline

        return load_pipeline(argparse.Namespace(**self.options, device=device))


def run_job(
    pipeline: Pipeline, job: Job, worker: str, policy: FetchPolicy | None, return_output: bool = False
) -> tuple[JobRecord, bytes | None]:
    """Run one job; the record says how it went, and with `return_output` the output's bytes come back instead of
    being written to the job's output path (for workers that do not share the driver's disk)."""
    started = time.perf_counter()
    if job.problem is not None or job.output is None:
        return JobRecord.failed(job, job.problem or "no output path", worker), None
    try:
        with tempfile.TemporaryDirectory(prefix="latentsync-batch-") as tmp:
            work = Path(tmp)
            video = _local(job.video, work / "video", "video", policy)
            audio = _local(job.audio, work / "audio", "audio", policy)
            output = work / job.output.name if return_output else job.output
            output.parent.mkdir(parents=True, exist_ok=True)
            result = pipeline(video, audio, output, **job.options, progress=False)
            data = output.read_bytes() if return_output else None
        seconds = time.perf_counter() - started
        output_seconds = result.frames / 25  # the pipeline writes 25 fps
        return JobRecord(
            job.key, "done", job.fingerprint, None, round(seconds, 3), output_seconds, worker, time.time()
        ), data
    except LatentSyncError as exc:  # bad input, no face, GPU out of memory (explained by the pipeline)
        reason = str(exc)
    except MemoryError:
        reason = "out of memory on the host"
    except Exception as exc:  # a bug or a device failure: this job fails, the batch goes on
        logger.exception("job %s: internal error", job.key)
        reason = f"internal error ({type(exc).__name__}: {exc})"
    _free_device_memory()
    return JobRecord.failed(job, reason, worker, time.perf_counter() - started), None


def _local(source: str, dest: Path, kind: str, policy: FetchPolicy | None) -> Path:
    """The input as a local file: a path as it is, a URL downloaded with the server's guarded fetcher."""
    if not is_url(source):
        return Path(source)
    from latentsync.server.fetch import FetchError, fetch

    if policy is None:
        raise FetchError(f"{kind}: {source}: fetching URLs is not enabled here")
    try:
        fetch(source, dest, policy)
    except FetchError as exc:
        raise FetchError(f"{kind}: {exc}") from None
    return dest


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_output(path: Path, data: bytes) -> None:
    """Write bytes a remote worker returned, under a temporary name renamed when complete."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)
