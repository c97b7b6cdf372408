"""Running the stages over a folder: which inputs need work, in which process, and recording each result.

The main process alone reads and writes the manifest; workers (processes, or Ray tasks) get a `video.Job` and return
the input's record, appended as each finishes. An input whose record matches the current settings, its file's size
and modification time is not dispatched at all, so a rerun does no finished work and an interrupted run (kill -9
included) redoes at most the inputs that were in flight; their half-written outputs only ever existed under
temporary names, which are removed at start.

Where the sync and quality models run: in the worker itself (one process, or CPU-only workers), or in long-lived
scorers that load them once per GPU (a scoring process per device, a Ray actor per GPU; see `scorers`). Either way
the scores come back into the worker's record, so the manifest does not depend on it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext, ForkServerContext
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from latentsync.errors import InvalidArgumentError
from latentsync.runtime import ray_session, visible_gpus

from . import manifest
from .lock import OutputLock
from .manifest import Record
from .scorers import STOP_SECONDS, LocalScorers, RayRoute, Stats, attach, process_with, start_actors
from .settings import Settings
from .video import PREPARE_STAGES, Job, filters, filters_fingerprint, process_safely

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".wmv", ".3gp"}
log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    inputs: int = 0  # inputs of this run (this shard)
    processed: int = 0  # inputs that needed work
    kept_clips: int = 0
    skipped_stages: list[str] = field(default_factory=list)
    scorers: dict[str, Stats] = field(default_factory=dict)  # per long-lived scorer (scoring process, Ray actor)


def list_inputs(raw_dir: Path) -> list[str]:
    """Every video file under `raw_dir` (by suffix; hidden files and folders left out), relative, sorted."""
    found = []
    for path in raw_dir.rglob("*"):
        rel = path.relative_to(raw_dir)
        if path.suffix.lower() in VIDEO_SUFFIXES and not any(p.startswith(".") for p in rel.parts) and path.is_file():
            found.append(rel.as_posix())
    return sorted(found)


def in_shard(rel: str, shard: tuple[int, int] | None) -> bool:
    """Whether the input belongs to shard I of N: by a hash of its path, so adding files moves no other file."""
    if shard is None:
        return True
    return int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16) % shard[1] == shard[0]


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InvalidArgumentError(f"--shard takes I/N, e.g. 0/4; got {text!r}") from None
    if not 0 <= index < count:
        raise InvalidArgumentError(f"--shard {text}: I must be in 0..N-1")
    return index, count


def needs_work(previous: Record | None, raw_dir: Path, rel: str, settings: Settings, auxiliary: str) -> bool:
    if previous is None or previous["state"] == "failed":
        return True
    stat = (raw_dir / rel).stat()
    if (previous["prepare"], previous["size"], previous["mtime_ns"]) != (
        settings.fingerprint("prepare"),
        stat.st_size,
        stat.st_mtime_ns,
    ):
        return True
    judged = any(s["state"] != "dropped" or s["stage"] not in PREPARE_STAGES for s in previous["segments"])
    return judged and previous.get("filters") != filters_fingerprint(settings, auxiliary)


def run_preprocess(
    raw_dir: str | Path,
    out_dir: str | Path,
    settings: Settings,
    auxiliary: str | Path,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    ray_address: str | None = None,
    use_ray: bool = False,
    progress: bool = True,
    devices: Sequence[str] | None = None,
    scorers: int = 1,
) -> RunSummary:
    """Process every input of RAW_DIR (of this shard) that needs work into OUT_DIR.

    The sync and quality models run in a scoring process per entry of `devices` (default: per visible GPU when
    `workers` > 1; on a machine without one each worker scores itself), or with Ray in an actor per GPU of the
    cluster (else `scorers` CPU actors); see the `scorers` module.
    """
    raw, out = Path(raw_dir).resolve(), Path(out_dir).resolve()
    if not raw.is_dir():
        raise InvalidArgumentError(f"RAW_DIR {raw_dir}: no such folder")
    if out == raw or out.is_relative_to(raw) or raw.is_relative_to(out):
        raise InvalidArgumentError(f"OUT_DIR {out_dir} and RAW_DIR {raw_dir} must not contain one another")
    if workers < 1:
        raise InvalidArgumentError(f"--workers must be at least 1, got {workers}")
    if scorers < 1:
        raise InvalidArgumentError(f"--scorers must be at least 1, got {scorers}")
    out.mkdir(parents=True, exist_ok=True)
    summary = RunSummary()
    with OutputLock(out, shard):
        _remove_partials(out, shard)
        known = manifest.load(out)
        inputs = [rel for rel in list_inputs(raw) if in_shard(rel, shard)]
        summary.inputs = len(inputs)
        aux = str(auxiliary)
        jobs = [
            Job(str(raw), str(out), rel, settings, aux, known.get(rel))
            for rel in inputs
            if needs_work(known.get(rel), raw, rel, settings, aux)
        ]
        summary.processed = len(jobs)
        summary.skipped_stages = _warn_skipped(aux) if jobs else []
        writer = manifest.ManifestWriter(out / manifest.shard_name(shard))
        try:
            if use_ray:
                results = _run_ray(jobs, ray_address, aux, scorers, summary)
            else:
                scoring = list(devices or (visible_gpus() if workers > 1 else [])) if _scoring(aux) else []
                results = _run_local(jobs, workers, scoring, aux, summary)
            for record in tqdm(results, total=len(jobs), desc="Preprocessing", unit="video", disable=not progress):
                writer.append(record)
        finally:
            writer.close()
        if shard is None:
            manifest.compact(out)
        latest = manifest.load(out)
        summary.kept_clips = sum(
            s["state"] == "kept" for rel in inputs if rel in latest for s in latest[rel]["segments"]
        )
    return summary


def _run_local(
    jobs: list[Job], workers: int, devices: list[str], auxiliary: str, summary: RunSummary
) -> Iterator[Record]:
    """Records in completion order: in this process with one worker, else in `workers` spawned processes, which send
    their clips to a scoring process per entry of `devices` when there are any (else each scores itself)."""
    if not jobs:
        return
    if not devices and (workers == 1 or len(jobs) == 1):
        yield from map(process_safely, jobs)
        return
    # Workers fork from a server process that imported the stages once (torch alone takes seconds to import), not
    # from this one, whose library thread pools (OpenCV's) do not survive a fork.
    context: BaseContext = get_context("forkserver" if "forkserver" in get_all_start_methods() else "spawn")
    if isinstance(context, ForkServerContext):
        context.set_forkserver_preload([__name__.rpartition(".")[0] + ".video"])
    scorers = LocalScorers(context, auxiliary, devices, workers) if devices else None
    initargs = (scorers.slots, scorers.connections) if scorers else ()
    try:
        with ProcessPoolExecutor(workers, context, _worker_init, initargs) as pool:
            pending = {pool.submit(process_safely, job) for job in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
    finally:
        if scorers:
            summary.scorers = scorers.close()


def _worker_init(slots: Any = None, connections: Sequence[Connection] = ()) -> None:
    """One thread per library in a worker (the processes already use the cores); its scoring process, if any."""
    import cv2

    from latentsync.runtime import configure_threads

    cv2.setNumThreads(1)
    configure_threads(1)
    if slots is not None:
        attach(slots, connections)


def _run_ray(
    jobs: list[Job], address: str | None, auxiliary: str, cpu_scorers: int, summary: RunSummary
) -> Iterator[Record]:
    """Each input a Ray task (on `address`, or a local instance), its clips scored by long-lived actors; records as
    tasks finish."""
    if not jobs:
        return
    with ray_session(address) as ray:
        actors = start_actors(ray, auxiliary, cpu_scorers) if _scoring(auxiliary) else {}
        try:
            limit = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
            yield from _dispatch(ray, ray.remote(num_cpus=1)(process_with), jobs, actors, limit)
            for name, actor in actors.items():
                try:
                    summary.scorers[name] = ray.get(actor.stats.remote(), timeout=STOP_SECONDS)
                except ray.exceptions.RayError as error:  # the run is done; only its report misses this scorer
                    log.warning("scoring actor %s did not report: %s", name, error)
        finally:
            for actor in actors.values():
                ray.kill(actor)


def _dispatch(ray: Any, task: Any, jobs: list[Job], actors: dict[str, Any], limit: int) -> Iterator[Record]:
    """Keep at most `limit` tasks in flight (a large folder is not submitted at once), each given the scoring actor
    with the fewest tasks; yield records as tasks finish."""
    waiting = deque(jobs)
    running: dict[Any, str | None] = {}
    busy = Counter(dict.fromkeys(actors, 0))
    while waiting or running:
        while waiting and len(running) < limit:
            name = min(busy, key=busy.__getitem__) if busy else None
            route = RayRoute(actors[name]) if name is not None else None
            running[task.remote(waiting.popleft(), route)] = name
            if name is not None:
                busy[name] += 1
        (done,), _ = ray.wait(list(running), num_returns=1)
        if (name := running.pop(done)) is not None:
            busy[name] -= 1
        yield ray.get(done)


def _scoring(auxiliary: str) -> bool:
    """Whether a scoring stage can run (its weights are there): else no scorer is started."""
    return any(stage.skipped is None for stage in filters(auxiliary))


def _warn_skipped(auxiliary: str) -> list[str]:
    """Warn once per run about each stage that cannot run here; the reasons."""
    sync, quality = filters(auxiliary)
    reasons = []
    for stage, why in (("sync filter (stage 6)", sync.warning), ("quality filter (stage 7)", quality.warning)):
        if why:
            log.warning("skipping the %s: %s", stage, why)
            reasons.append(f"{stage}: {why}")
    return reasons


def _remove_partials(out: Path, shard: tuple[int, int] | None) -> None:
    """Temporary files a killed run left behind (only an unsharded run may: shards run at once)."""
    if shard is not None:
        return
    for path in out.rglob(".*.partial*"):
        path.unlink()
