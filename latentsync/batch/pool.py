"""Running the jobs on this machine: in this process on one device, or one worker process per device.

Each worker loads the models once and is handed the next job whenever it is free, so a slow job on one GPU does not
hold the others back. Each talks to the driver over its own pipe (messages are sent at once, not from a background
thread, so a worker that dies leaves nothing half-said), and the driver always knows which job each one runs. A
worker that dies (killed, a crash in native code) fails only the job it was running; the others carry on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from latentsync.errors import LatentSyncError
from latentsync.runtime import cpu_threads

if TYPE_CHECKING:  # the server package imports FastAPI; batch needs its fetcher only for URLs
    from latentsync.server.fetch import FetchPolicy

from .execute import ModelSpec, run_job
from .jobs import Job
from .records import JobRecord

OnRecord = Callable[[JobRecord], None]
POLL_SECONDS = 0.5


class BatchError(LatentSyncError, RuntimeError):
    """The batch cannot run at all (no worker could load the models)."""


def run_in_process(
    jobs: Sequence[Job], spec: ModelSpec, device: str | None, policy: FetchPolicy | None, on_record: OnRecord
) -> None:
    """One device, one model load, the jobs one after another in this process."""
    pipeline = spec.load(device)
    worker = device or "default"
    for job in jobs:
        on_record(run_job(pipeline, job, worker, policy)[0])


def run_processes(
    jobs: Sequence[Job], spec: ModelSpec, devices: Sequence[str], policy: FetchPolicy | None, on_record: OnRecord
) -> None:
    """One worker process per entry of `devices` (the same device may appear twice); each is handed the next job
    as soon as it has loaded its models or finished its last job."""
    context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    threads = cpu_threads(devices)
    workers: dict[str, tuple[mp.process.BaseProcess, Connection]] = {}
    try:
        for i, device in enumerate(devices):
            name = f"{device}#{i}"
            here, there = context.Pipe()
            process: mp.process.BaseProcess = context.Process(
                target=_worker,
                args=(spec, device, name, threads if device == "cpu" else None, policy, there),
                name=f"latentsync-batch-{name}",
                daemon=True,
            )
            process.start()
            there.close()
            workers[name] = (process, here)
        _dispatch(jobs, workers, on_record)
    finally:
        for process, connection in workers.values():
            with contextlib.suppress(OSError):
                connection.send(None)
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def _dispatch(
    jobs: Sequence[Job], workers: dict[str, tuple[mp.process.BaseProcess, Connection]], on_record: OnRecord
) -> None:
    """Hand out jobs to free workers and pass on their records until every job has one or no worker is left."""
    waiting = deque(jobs)
    running: dict[str, Job] = {}
    live, ready, load_errors = set(workers), set(), []
    while live and (waiting or running):
        wait([workers[name][1] for name in live] + [workers[name][0].sentinel for name in live], timeout=POLL_SECONDS)
        for name in sorted(live):
            process, connection = workers[name]
            while connection.poll():
                try:
                    kind, payload = connection.recv()
                except (EOFError, OSError):
                    break
                if kind == "load failed":
                    load_errors.append(f"{name}: {payload}")
                    continue
                if kind == "record":
                    running.pop(name, None)
                    on_record(payload)
                ready.add(name)
                if waiting:
                    running[name] = waiting.popleft()
                    try:
                        connection.send(running[name])
                    except OSError:  # it died just now: the job goes to another worker
                        waiting.appendleft(running.pop(name))
            if not process.is_alive():
                live.discard(name)
                job = running.pop(name, None)
                if job is not None:
                    on_record(
                        JobRecord.failed(job, f"the worker process on {name} died (exit code {process.exitcode})", name)
                    )
    if waiting:
        if not ready:
            raise BatchError("no worker could load the models: " + "; ".join(load_errors or ["they exited"]))
        for job in waiting:
            on_record(JobRecord.failed(job, "every worker process died before this job ran"))


def _worker(
    spec: ModelSpec, device: str, name: str, threads: int | None, policy: FetchPolicy | None, connection: Connection
) -> None:
    """A worker process: load the models on `device`, say so, then run each job it is sent until it gets None."""
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s [{name}] %(message)s")
    from latentsync.runtime import configure_threads

    configure_threads(threads)
    try:
        pipeline = spec.load(device)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides whether the batch can go on
        connection.send(
            ("load failed", str(exc) if isinstance(exc, LatentSyncError) else f"{type(exc).__name__}: {exc}")
        )
        return
    connection.send(("ready", None))
    while (job := connection.recv()) is not None:
        record, _ = run_job(pipeline, job, name, policy)
        connection.send(("record", record))
