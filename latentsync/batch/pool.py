"""Running the jobs on this machine: in this process on one device, or one worker process per device.

Each worker loads the models once and takes the next job from one shared queue whenever it is free, so a slow job
on one GPU does not hold the others back. A worker that dies (killed, a crash in native code) fails only the job it
was running; the others carry on with the rest.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from latentsync.errors import LatentSyncError

if TYPE_CHECKING:  # the server package imports FastAPI; batch needs its fetcher only for URLs
    from latentsync.server.fetch import FetchPolicy

from .execute import ModelSpec, run_job
from .jobs import Job
from .records import JobRecord

OnRecord = Callable[[JobRecord], None]
POLL_SECONDS = 0.5


class BatchError(LatentSyncError, RuntimeError):
    """The batch cannot run at all (no worker could load the models)."""


def run_in_process(jobs: Sequence[Job], spec: ModelSpec, device: str | None, policy: FetchPolicy, on_record: OnRecord) -> None:  # fmt: skip
    """One device, one model load, the jobs one after another in this process."""
    pipeline = spec.load(device)
    worker = device or "default"
    for job in jobs:
        on_record(run_job(pipeline, job, worker, policy)[0])


def cpu_threads(devices: Sequence[str]) -> int | None:
    """Torch threads per CPU worker, so that CPU workers share the cores instead of fighting over them."""
    on_cpu = sum(device == "cpu" for device in devices)
    return max(1, (os.cpu_count() or 1) // on_cpu) if on_cpu else None


def run_processes(
    jobs: Sequence[Job], spec: ModelSpec, devices: Sequence[str], policy: FetchPolicy, on_record: OnRecord
) -> None:
    """One worker process per entry of `devices` (the same device may appear twice), over one queue of jobs."""
    context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    tasks: mp.Queue = context.Queue()
    results: mp.Queue = context.Queue()
    for job in jobs:
        tasks.put(job)
    names = [f"{device}#{i}" for i, device in enumerate(devices)]
    for _ in names:
        tasks.put(None)
    threads = cpu_threads(devices)
    processes = {
        name: context.Process(
            target=_worker,
            args=(spec, device, name, threads if device == "cpu" else None, policy, tasks, results),
            name=f"latentsync-batch-{name}",
            daemon=True,
        )
        for name, device in zip(names, devices)
    }
    for process in processes.values():
        process.start()
    try:
        _collect(jobs, processes, results, on_record)
    finally:
        for process in processes.values():
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def _collect(jobs: Sequence[Job], processes: dict[str, mp.process.BaseProcess], results: mp.Queue, on_record: OnRecord) -> None:  # fmt: skip
    by_key = {job.key: job for job in jobs}
    pending = set(by_key)
    running: dict[str, Job] = {}
    alive, ready, load_errors = set(processes), set(), []
    while pending:
        try:
            kind, name, payload = results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            for name in sorted(alive):
                process = processes[name]
                if process.is_alive():
                    continue
                alive.discard(name)
                job = running.pop(name, None)
                if job is not None and job.key in pending:
                    pending.discard(job.key)
                    on_record(JobRecord.failed(job, f"the worker process on {name} died (exit code {process.exitcode})", name))  # fmt: skip
            if not alive:
                if not ready:
                    raise BatchError("no worker could load the models: " + "; ".join(load_errors or ["they exited"]))
                for key in sorted(pending):
                    on_record(JobRecord.failed(by_key[key], "every worker process died before this job ran"))
                return
            continue
        if kind == "ready":
            ready.add(name)
        elif kind == "load failed":
            load_errors.append(f"{name}: {payload}")
        elif kind == "started":
            running[name] = by_key[payload]
        elif kind == "record":
            running.pop(name, None)
            pending.discard(payload.key)
            on_record(payload)


def _worker(
    spec: ModelSpec,
    device: str,
    name: str,
    threads: int | None,
    policy: FetchPolicy,
    tasks: mp.Queue,
    results: mp.Queue,
) -> None:
    """A worker process: load the models on `device`, then run jobs from `tasks` until its end marker."""
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s [{name}] %(message)s")
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        pipeline = spec.load(device)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides whether the batch can go on
        results.put(("load failed", name, f"{type(exc).__name__}: {exc}" if not isinstance(exc, LatentSyncError) else str(exc)))  # fmt: skip
        return
    results.put(("ready", name, None))
    while (job := tasks.get()) is not None:
        results.put(("started", name, job.key))
        record, _ = run_job(pipeline, job, name, policy)
        results.put(("record", name, record))
