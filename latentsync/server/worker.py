"""The single worker thread: takes the oldest waiting job, fetches its inputs, lip-syncs, records the outcome.

One thread and one loaded pipeline, so jobs run one at a time in submission order on one GPU. Whatever goes
wrong inside a job fails that job with a message for the client; the thread goes on with the next one.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from latentsync.errors import LatentSyncError
from latentsync.media import media_duration
from latentsync.server.fetch import FetchError, FetchPolicy, fetch
from latentsync.server.jobs import Job, JobStore
from latentsync.server.settings import ServerSettings
from latentsync.server.storage import Storage, UnknownFile

logger = logging.getLogger(__name__)

Pipeline = Callable[..., object]  # LipsyncPipeline or anything called like it


class InputTooLong(LatentSyncError, ValueError):
    """A video or audio input longer than the server accepts."""


class Worker:
    """Runs the jobs of `store` on `pipeline`, oldest first, in one daemon thread."""

    def __init__(self, store: JobStore, storage: Storage, pipeline: Pipeline, settings: ServerSettings) -> None:
        self.store, self.storage, self.pipeline, self.settings = store, storage, pipeline, settings
        self.fetch_policy = FetchPolicy(settings.max_download_bytes, settings.download_timeout, settings.allow_networks)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # A daemon: a stop never waits for a running job; the store re-runs it at the next start.
        self._thread = threading.Thread(target=self._loop, name="latentsync-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """A job was submitted."""
        self._wake.set()

    def stop(self) -> None:
        """Take no further job; the running one (if any) is left to finish or to be cut off by the exit."""
        self._stopping.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next()
                if job is None:
                    self._wake.wait()
                    self._wake.clear()
                else:
                    self.run(job)
            except Exception:  # e.g. a full disk failing the job store itself: keep serving the queue
                logger.exception("worker: job bookkeeping failed; retrying in a moment")
                self._stopping.wait(1.0)

    def run(self, job: Job) -> None:
        logger.info("job %s (%s): started", job.id, job.model)
        work = self.storage.work_dir(job.id)
        labels: dict[str, str] = {str(self.storage.result(job.id)): "the result"}
        try:
            work.mkdir(parents=True, exist_ok=True)
            inputs = {}
            for kind in ("video", "audio"):
                inputs[kind] = self._input(job.params[kind], work / kind, kind)
                labels[str(inputs[kind])] = " and ".join(filter(None, (labels.get(str(inputs[kind])), kind)))
            for kind, path in inputs.items():
                seconds = media_duration(path)
                if seconds > self.settings.max_duration:
                    raise InputTooLong(
                        f"the {kind} is {seconds:.1f} s long; this server accepts media up to "
                        f"{self.settings.max_duration:g} s"
                    )
            started = time.perf_counter()
            self.pipeline(
                inputs["video"],
                inputs["audio"],
                self.storage.result(job.id),
                steps=job.params["steps"],
                guidance_scale=job.params["guidance_scale"],
                seed=job.params["seed"],
                sync_mode=job.params["sync_mode"],
                progress=False,
                on_progress=lambda done, total: self.store.set_progress(job.id, done / max(total, 1)),
            )
            self.store.complete(job.id, round((time.perf_counter() - started) * 1000))
            logger.info("job %s: completed", job.id)
        except LatentSyncError as exc:
            self.store.fail(job.id, self._public(str(exc), labels))
            logger.info("job %s: failed: %s", job.id, exc)
        except Exception as exc:  # a bug or a GPU failure: this job fails, the server goes on
            logger.exception("job %s: internal error", job.id)
            message = self._public(f"{type(exc).__name__}: {exc}", labels)
            self.store.fail(job.id, f"internal error ({message}); the server log has the details")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _input(self, url: str, dest: Path, kind: str) -> Path:
        """The local file for an input URL: a stored upload as it is, anything else downloaded to `dest`."""
        try:
            upload = self.storage.upload_for_url(url)
        except UnknownFile as exc:
            raise FetchError(f"{kind}: {exc} (uploads live in the server's data dir; was it cleaned?)") from None
        if upload is not None:
            return upload
        try:
            fetch(url, dest, self.fetch_policy)
        except FetchError as exc:
            raise FetchError(f"{kind}: {exc}") from None
        return dest

    def _public(self, message: str, labels: dict[str, str]) -> str:
        """The message with the server's own paths replaced by what the client knows them as."""
        for path, label in labels.items():
            message = message.replace(path, label)
        return message.replace(str(self.storage.root), "<data dir>")
