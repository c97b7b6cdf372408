"""GPU workers: each holds one loaded pipeline (one per device) and runs the oldest job whose inputs are fetched.

Several workers over the one queue run jobs in order of submission, each on its own device. Whatever goes wrong
inside a job fails that job with a message for the client; the worker goes on with the next one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from latentsync.errors import LatentSyncError
from latentsync.server.jobs import Job, JobStore
from latentsync.server.storage import Storage

logger = logging.getLogger(__name__)

Pipeline = Callable[..., object]  # LipsyncPipeline or anything called like it
Chooser = Callable[..., tuple[float, float] | None]  # the pipeline's face_chooser
INPUTS = "inputs.json"  # in a job's work folder: the local files of its fetched inputs


def instance_token() -> str:
    """Names the claims of one server instance: host and pid (to tell a dead local owner) and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(owner: str) -> bool:
    """A claim whose owner process on this host no longer runs. (Other hosts' owners go by heartbeat only.)"""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Bell:
    """Wakes the threads waiting for work; a ring between a waiter's look at the queue and its wait is not lost."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.rings = 0

    def ring(self) -> None:
        with self._cond:
            self.rings += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.rings != seen, timeout)


def public_message(exc: BaseException, labels: dict[str, str], root: Path) -> str:
    """The failure as the client is told: the server's own paths replaced by what the client knows them as."""
    if isinstance(exc, LatentSyncError):
        message = str(exc)
    else:
        message = f"internal error ({type(exc).__name__}: {exc}); the server log has the details"
    for path, label in sorted(labels.items(), key=lambda item: -len(item[0])):
        message = message.replace(path, label)
    return message.replace(str(root), "<data dir>")


class Worker:
    """Runs the ready jobs of `store` on `pipeline`, oldest first, in one daemon thread."""

    def __init__(
        self,
        name: str,
        store: JobStore,
        storage: Storage,
        pipeline: Pipeline,
        ready: Bell,
        on_end: Callable[[str], None],
        token: str,
        speaker_chooser: Callable[[], Chooser] | None = None,
    ) -> None:
        """`speaker_chooser` makes the active-speaker face chooser for jobs asking `active_speaker`."""
        self.name, self.store, self.storage, self.pipeline, self.ready = name, store, storage, pipeline, ready
        self.speaker_chooser = speaker_chooser
        self.on_end = on_end
        self.token = token
        self.owner = ""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start (or, after a crash, restart) the thread; each thread claims jobs under a name of its own, so a
        restarted worker's heartbeat never keeps the crashed thread's job claimed."""
        self.owner = f"{self.token}:{self.name}:{uuid.uuid4().hex[:6]}"
        # A daemon: a stop never waits for a running job; the store re-runs it at the next start.
        self._thread = threading.Thread(target=self._loop, name=f"latentsync-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take no further job; the running one (if any) is left to finish or to be cut off by the exit."""
        self._stopping.set()
        self.ready.ring()

    def _loop(self) -> None:
        owner = self.owner
        while not self._stopping.is_set():
            try:
                seen = self.ready.rings
                job = self.store.claim_next(owner)
                if job is None:
                    self.ready.wait(seen, timeout=5.0)
                else:
                    self.run(job, owner)
            except Exception:  # e.g. a full disk failing the job store itself: keep serving the queue
                logger.exception("%s: job bookkeeping failed; retrying in a moment", self.name)
                self._stopping.wait(1.0)

    def run(self, job: Job, owner: str) -> None:
        logger.info("job %s (%s): started on %s", job.id, job.model, self.name)
        work = self.storage.work_dir(job.id)
        result = self.storage.result(job.id)
        labels = {str(result): "the result"}
        try:
            inputs = {kind: Path(path) for kind, path in json.loads((work / INPUTS).read_text()).items()}
            for kind, path in inputs.items():
                labels[str(path)] = " and ".join(filter(None, (labels.get(str(path)), kind)))
            params = job.params
            chooser = None
            if params.get("active_speaker"):
                if self.speaker_chooser is None:
                    raise LatentSyncError("this server cannot choose the active speaker; pass face_index or face_at")
                chooser = self.speaker_chooser()
            started = time.perf_counter()
            self.pipeline(
                inputs["video"],
                inputs["audio"],
                result,
                steps=params["steps"],
                guidance_scale=params["guidance_scale"],
                seed=params["seed"],
                sync_mode=params["sync_mode"],
                face_index=params.get("face_index"),
                face_at=tuple(params["face_at"]) if params.get("face_at") else None,
                face_chooser=chooser,
                progress=False,
                on_progress=lambda done, total: self.store.set_progress(job.id, owner, done / max(total, 1)),
            )
            owned = self.store.complete(job.id, owner, round((time.perf_counter() - started) * 1000))
            logger.info("job %s: completed", job.id)
        except Exception as exc:  # bad input, no face, out of memory, a bug: this job fails, the worker goes on
            if isinstance(exc, LatentSyncError):
                logger.info("job %s: failed: %s", job.id, exc)
            else:
                logger.exception("job %s: internal error", job.id)
            owned = self.store.fail(job.id, owner, public_message(exc, labels, self.storage.root))
        if not owned:  # recovered meanwhile as if this worker were dead: the rerun's files and outcome stand
            logger.warning("job %s: ended after its claim was taken back; outcome dropped", job.id)
            return
        shutil.rmtree(work, ignore_errors=True)
        self.on_end(job.id)
