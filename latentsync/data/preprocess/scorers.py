"""Long-lived scorers for stages 6-7: processes or Ray actors that load the sync and quality models once and score
the aligned clips the video workers send them, by path (the clips are in OUT_DIR, which they all see).

- `ScorerHost` holds both stages' models on one device (loaded on first use); it is the body of every scorer.
- One machine (`LocalScorers`): a scoring process per device (GPU); CPU worker i sends its clips to scorer
  i mod D over a pipe of its own, so a dead scorer is an error for its workers' clips, never a hang.
- Ray (`start_actors`, `RayRoute`): a `ScorerHost` actor per GPU of the cluster (else a few CPU actors); each video's
  task is given the handle of the actor with the fewest tasks in flight.

A worker reaches its scorer through `stages.scoring.score_through`, so the stages' code is the same either way.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from latentsync.runtime import configure_threads, cpu_threads

from .manifest import Record
from .stages.quality import QualityFilter
from .stages.scoring import Route, score_through
from .stages.sync import SyncFilter
from .video import Job, process_safely

Stats = dict[str, int]  # "<stage> loads" and "<stage> clips" of one scorer
STOP_SECONDS = 60
log = logging.getLogger(__name__)


class ScorerHost:
    """The scoring stages on one device, each model loaded on its first clip and kept."""

    def __init__(self, auxiliary: str, device: str | None = None, threads: int | None = None) -> None:
        configure_threads(threads)
        stages = (SyncFilter(Path(auxiliary), device), QualityFilter(Path(auxiliary), device))
        self.stages = {stage.NAME: stage for stage in stages}
        self.clips = dict.fromkeys(self.stages, 0)

    def score(self, name: str, clip: str) -> dict[str, Any]:
        self.clips[name] += 1
        return self.stages[name].score_here(Path(clip))

    def stats(self) -> Stats:
        """How often each model was loaded and how many clips each scored: once, and many, when all is well."""
        counts = {f"{name} loads": stage.loads for name, stage in self.stages.items()}
        return counts | {f"{name} clips": count for name, count in self.clips.items()}


def process_with(job: Job, route: Route | None) -> Record:
    """A video's record, its clips scored through `route` (a Ray task's body)."""
    score_through(route)
    try:
        return process_safely(job)
    finally:
        score_through(None)


class PipeRoute:
    """A CPU worker's line to its scoring process."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __call__(self, name: str, clip: Path) -> dict[str, Any]:
        try:
            self.connection.send((name, str(clip)))
            kind, payload = self.connection.recv()
        except (EOFError, OSError):
            raise RuntimeError("the scoring process ended (see its error above); rerun to retry") from None
        if kind == "error":
            raise payload
        return payload


def attach(slots: Any, connections: Sequence[Connection]) -> None:
    """In a CPU worker: take a free slot and score through its scoring process from now on."""
    score_through(PipeRoute(connections[slots.get(timeout=STOP_SECONDS)]))


def serve(auxiliary: str, device: str, threads: int | None, clients: list[Connection], control: Connection) -> None:
    """A scoring process: score the clips its CPU workers send until the driver asks for its stats."""
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s [scorer {device}] %(message)s")
    host = ScorerHost(auxiliary, device, threads)
    while True:
        ready = wait([control, *clients])
        if control in ready:
            with contextlib.suppress(EOFError, OSError):  # EOF: the run was killed
                control.recv()
                control.send(host.stats())
            return
        for connection in [client for client in clients if client in ready]:
            try:
                name, clip = connection.recv()
            except EOFError:
                clients.remove(connection)
                continue
            try:
                reply: tuple[str, Any] = ("scores", host.score(name, clip))
            except Exception as error:  # noqa: BLE001 - the worker records the clip's input as failed
                reply = ("error", error)
            try:
                connection.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError):  # an exception that does not pickle
                connection.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))


class LocalScorers:
    """A scoring process per entry of `devices`, serving the `workers` CPU worker processes of a pool."""

    def __init__(self, context: BaseContext, auxiliary: str, devices: Sequence[str], workers: int) -> None:
        threads = cpu_threads(devices)
        pipes = [context.Pipe() for _ in range(workers)]
        self.connections = [worker_end for worker_end, _ in pipes]
        self.slots = context.Queue()
        for slot in range(workers):
            self.slots.put(slot)
        self.scorers: dict[str, tuple[Any, Connection]] = {}
        for index, device in enumerate(devices):
            here, there = context.Pipe()
            clients = [end for slot, (_, end) in enumerate(pipes) if slot % len(devices) == index]
            name = f"{device}#{index}"
            process = context.Process(  # type: ignore[attr-defined]
                target=serve,
                args=(auxiliary, device, threads if device == "cpu" else None, clients, there),
                name=f"latentsync-scorer-{name}",
                daemon=True,
            )
            process.start()
            there.close()
            self.scorers[name] = (process, here)
        for _, scorer_end in pipes:  # held by the scorers alone: a scorer that dies is an EOF to its workers
            scorer_end.close()

    def close(self) -> dict[str, Stats]:
        """Stop the scoring processes; each one's stats (absent for one that had died)."""
        stats = {}
        for name, (process, control) in self.scorers.items():
            try:
                control.send(None)
                if control.poll(STOP_SECONDS):
                    stats[name] = control.recv()
            except (OSError, EOFError):
                log.warning("the scoring process %s had ended (exit code %s)", name, process.exitcode)
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        return stats


class RayRoute:
    """A Ray task's line to its scoring actor; an error in the actor is raised here as itself."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def __call__(self, name: str, clip: Path) -> dict[str, Any]:
        import ray

        try:
            return ray.get(self.actor.score.remote(name, str(clip)))
        except ray.exceptions.RayTaskError as error:
            raise (error.cause or error) from None


def start_actors(ray: Any, auxiliary: str, cpu_scorers: int) -> dict[str, Any]:
    """A scoring actor per GPU of the cluster (each holding one), else `cpu_scorers` actors of one CPU each. One that
    dies (a lost node) is restarted and the clip it was scoring sent again (scoring has no side effects)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    remote = ray.remote(max_restarts=2, max_task_retries=2)(ScorerHost)
    actors = {}
    for index, device in enumerate(["cuda"] * gpus or ["cpu"] * cpu_scorers):
        resources = {"num_gpus": 1} if device == "cuda" else {"num_cpus": 1}
        threads = 1 if device == "cpu" else None
        actors[f"ray-{device}#{index}"] = remote.options(**resources).remote(auxiliary, device, threads)
    return actors
