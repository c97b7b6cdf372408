"""The fetch pool: input URLs are downloaded (and every input's length checked) in threads of their own, before a
job reaches a GPU worker, so a slow or trickling URL holds one fetch thread, never a GPU.

All of one job's downloads share one deadline (`download_timeout`), however many inputs and redirects it has.
"""

from __future__ import annotations

import json
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
from latentsync.server.worker import INPUTS, Bell, public_message

logger = logging.getLogger(__name__)


class InputTooLong(LatentSyncError, ValueError):
    """A video or audio input longer than the server accepts."""


class Intake:
    """`settings.fetch_workers` threads taking waiting jobs oldest first; a job with its inputs on disk is marked
    ready and the GPU workers' bell rings."""

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        settings: ServerSettings,
        ready: Bell,
        on_end: Callable[[str], None],
        token: str,
    ) -> None:
        self.store, self.storage, self.settings, self.ready, self.on_end = store, storage, settings, ready, on_end
        self.policy = FetchPolicy(settings.max_download_bytes, settings.download_timeout, settings.allow_networks)
        self.waiting = Bell()
        self._stopping = threading.Event()
        self.owners = [f"{token}:fetch{i}" for i in range(max(settings.fetch_workers, 1))]
        self._threads = [
            threading.Thread(
                target=self._loop, args=(owner,), name=f"latentsync-{owner.rsplit(':', 1)[1]}", daemon=True
            )
            for owner in self.owners
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.waiting.ring()

    def alive_owners(self) -> list[str]:
        return [owner for owner, thread in zip(self.owners, self._threads) if thread.is_alive()]

    def _loop(self, owner: str) -> None:
        while not self._stopping.is_set():
            try:
                seen = self.waiting.rings
                job = self.store.claim_fetch(owner)
                if job is None:
                    self.waiting.wait(seen, timeout=5.0)
                else:
                    self.stage(job, owner)
            except Exception:
                logger.exception("%s: job bookkeeping failed; retrying in a moment", owner)
                self._stopping.wait(1.0)

    def stage(self, job: Job, owner: str) -> None:
        """Put the job's inputs in its work folder (an upload is used where it lies) and check their lengths."""
        work = self.storage.work_dir(job.id)
        shutil.rmtree(work, ignore_errors=True)  # a fetch cut off by a stop starts over
        labels: dict[str, str] = {}
        deadline = time.monotonic() + self.settings.download_timeout
        try:
            work.mkdir(parents=True)
            inputs = {}
            for kind in ("video", "audio"):
                inputs[kind] = self._input(job.params[kind], work / kind, kind, deadline)
                labels[str(inputs[kind])] = " and ".join(filter(None, (labels.get(str(inputs[kind])), kind)))
            for kind, path in inputs.items():
                seconds = media_duration(path)
                if seconds > self.settings.max_duration:
                    raise InputTooLong(
                        f"the {kind} is {seconds:.1f} s long; this server accepts media up to "
                        f"{self.settings.max_duration:g} s"
                    )
            (work / INPUTS).write_text(json.dumps({kind: str(path) for kind, path in inputs.items()}))
        except Exception as exc:
            if not isinstance(exc, LatentSyncError):
                logger.exception("job %s: internal error while fetching its inputs", job.id)
            shutil.rmtree(work, ignore_errors=True)
            if self.store.fail(job.id, owner, public_message(exc, labels, self.storage.root)):
                self.on_end(job.id)
            return
        if self.store.fetched(job.id, owner):
            self.ready.ring()

    def _input(self, url: str, dest: Path, kind: str, deadline: float) -> Path:
        """The local file for an input URL: a stored upload as it is, anything else downloaded to `dest`."""
        try:
            upload = self.storage.upload_for_url(url)
        except UnknownFile as exc:
            raise FetchError(f"{kind}: {exc} (uploads live in the server's data dir; was it cleaned?)") from None
        if upload is not None:
            return upload
        try:
            fetch(url, dest, self.policy, deadline)
        except FetchError as exc:
            raise FetchError(f"{kind}: {exc}") from None
        return dest
