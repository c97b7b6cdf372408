"""Running the jobs on a Ray cluster: one actor per GPU keeps the models loaded and runs jobs as they come.

Ray only carries the work: the driver hands the next job to whichever actor is idle and writes every record
itself, so resuming works exactly as with local workers (Ray Data's checkpointing is not used; it reprocesses
finished blocks). Inputs must be paths every node can read, or URLs; outputs are written by the actors to a shared
path, or with `return_outputs` sent back to the driver, which writes them (temporary name, then rename).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from latentsync.runtime import ray_session

if TYPE_CHECKING:  # the server package imports FastAPI; batch needs its fetcher only for URLs
    from latentsync.server.fetch import FetchPolicy

from .execute import ModelSpec, run_job, write_output
from .jobs import Job
from .pool import BatchError, OnRecord
from .records import JobRecord

logger = logging.getLogger(__name__)


class PipelineActor:
    """Holds one loaded pipeline on the device Ray gave this actor."""

    def __init__(self, spec: ModelSpec, device: str, name: str) -> None:
        from latentsync.runtime import configure_threads

        if device == "cpu":
            configure_threads(1)  # Ray gave this actor one CPU
        self.pipeline = spec.load(device)
        self.name = name

    def run(self, job: Job, policy: FetchPolicy, return_output: bool) -> tuple[JobRecord, bytes | None]:
        return run_job(self.pipeline, job, self.name, policy, return_output)


def actor_devices(ray: Any, devices: Sequence[str] | None) -> list[str]:
    """One actor per GPU of the cluster, unless `devices` says what to start (e.g. cpu,cpu)."""
    if devices:
        return ["cpu" if device == "cpu" else "cuda" for device in devices]
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus == 0:
        raise BatchError("the Ray cluster has no GPU; give --devices cpu[,cpu...] to run on its CPUs")
    return ["cuda"] * gpus


def run_ray(
    jobs: Sequence[Job],
    spec: ModelSpec,
    address: str | None,
    devices: Sequence[str] | None,
    policy: FetchPolicy,
    on_record: OnRecord,
    return_outputs: bool = False,
) -> None:
    with ray_session(address) as ray:
        actors: dict[str, Any] = {}
        try:
            remote = ray.remote(PipelineActor)
            for i, device in enumerate(actor_devices(ray, devices)):
                name = f"ray-{device}#{i}"
                resources = {"num_gpus": 1} if device == "cuda" else {"num_cpus": 1}
                actors[name] = remote.options(**resources).remote(spec, device, name)
            _dispatch(ray, jobs, actors, policy, on_record, return_outputs)
        finally:
            for actor in actors.values():
                ray.kill(actor)


def _dispatch(
    ray: Any,
    jobs: Sequence[Job],
    actors: dict[str, Any],
    policy: FetchPolicy,
    on_record: OnRecord,
    return_outputs: bool,
) -> None:
    """Keep every actor busy with one job at a time until the jobs are done or no actor is left."""
    waiting = list(jobs)[::-1]
    idle = list(actors)
    running: dict[Any, tuple[str, Job]] = {}
    ran_one = False
    while waiting or running:
        while idle and waiting:
            name, job = idle.pop(), waiting.pop()
            running[actors[name].run.remote(job, policy, return_outputs)] = (name, job)
        if not running:  # every actor is gone
            if not ran_one:
                raise BatchError("no Ray actor could load the models (see the Ray worker logs)")
            for job in waiting[::-1]:
                on_record(JobRecord.failed(job, "every Ray actor died before this job ran"))
            return
        (ready,), _ = ray.wait(list(running), num_returns=1)
        name, job = running.pop(ready)
        try:
            record, data = ray.get(ready)
        except ray.exceptions.RayActorError as exc:
            logger.warning("Ray actor %s is gone: %s", name, exc)
            if ran_one:
                on_record(JobRecord.failed(job, f"the Ray actor {name} died ({type(exc).__name__})", name))
            else:  # it may have failed to load the models: the job goes to another actor
                waiting.append(job)
            continue
        except ray.exceptions.RayTaskError as exc:
            record, data = JobRecord.failed(job, f"internal error on {name} ({exc.cause!r})", name), None
        ran_one = True
        idle.append(name)
        if data is not None and job.output is not None:
            write_output(job.output, data)
        on_record(record)
