"""Everything one server instance runs besides the HTTP routes: the store, the fetch pool, the GPU workers (one per
loaded pipeline), the supervisor thread, webhooks; and the result envelope the routes and webhooks both send.

The supervisor renews the claims of the live threads every `heartbeat_seconds`, takes back the jobs of owners that
died (a crashed worker thread is started again), and runs retention once an hour.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from functools import partial

from latentsync.eval.speaker import speaker_chooser
from latentsync.server.fetch import FetchPolicy
from latentsync.server.intake import Intake
from latentsync.server.jobs import Job, JobStore
from latentsync.server.retention import free_inputs, sweep
from latentsync.server.schemas import Prediction, PredictionResponse, Timings, Urls
from latentsync.server.settings import ServerSettings
from latentsync.server.signing import Signer
from latentsync.server.storage import Storage
from latentsync.server.webhooks import Webhooks
from latentsync.server.worker import Bell, Pipeline, Worker, instance_token, owner_gone

logger = logging.getLogger(__name__)

API = "/api/v3"
STALE_BEATS = 6  # a claim whose heartbeat is this many periods old belongs to a dead owner
SWEEP_EVERY = 3600.0


class Services:
    def __init__(self, settings: ServerSettings, pipelines: Sequence[Pipeline], names: Sequence[str]) -> None:
        self.settings = settings
        self.storage = Storage(settings.data_dir)
        self.store = JobStore(self.storage.database)
        self.signer = Signer(settings.api_key, self.storage.root)
        policy = FetchPolicy(settings.max_download_bytes, settings.download_timeout, settings.allow_networks)
        self.webhooks = Webhooks(self.signer, policy, settings.webhook_attempts, settings.webhook_backoff)
        token = instance_token()
        self.ready = Bell()
        self.intake = Intake(self.store, self.storage, settings, self.ready, self.job_ended, token)
        speaker = partial(speaker_chooser, settings.model_version, settings.checkpoints)
        self.workers = [
            Worker(name, self.store, self.storage, pipeline, self.ready, self.job_ended, token, speaker)
            for name, pipeline in zip(names, pipelines, strict=True)
        ]
        self.pipelines = list(pipelines)
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="latentsync-supervisor", daemon=True)

    def start(self) -> None:
        requeued, failed = self.store.recover(time.time() - self.stale_after, owner_gone)
        if requeued or failed:
            logger.info("jobs cut off by the last stop: %d run again, %d failed", requeued, len(failed))
        self.storage.remove_work_except(self.store.active_ids())
        for job_id in failed:
            self.job_ended(job_id)
        sweep(self.store, self.storage, self.settings.keep_days)
        self.intake.start()
        for worker in self.workers:
            worker.start()
        self._supervisor.start()

    def stop(self) -> None:
        self._stopping.set()
        self.intake.stop()
        for worker in self.workers:
            worker.stop()
        self.webhooks.stop()

    @property
    def stale_after(self) -> float:
        return STALE_BEATS * self.settings.heartbeat_seconds

    def submitted(self) -> None:
        self.intake.waiting.ring()

    def job_ended(self, job_id: str) -> None:
        """Free the job's uploads and send its webhook."""
        try:
            job = self.store.get(job_id)
            free_inputs(job, self.store, self.storage)
            if job.params.get("webhook_url"):
                body = self.envelope(job, job.base_url).model_dump_json().encode()
                self.webhooks.deliver(job.params["webhook_url"], body)
        except Exception:
            logger.exception("job %s: clean-up after its end failed", job_id)

    def envelope(self, job: Job, base: str) -> PredictionResponse:
        """The job in the hosted APIs' shape; `outputs` holds a signed, expiring URL once completed."""
        output = self.signer.sign_path(f"{API}/predictions/{job.id}/output.mp4", self.settings.result_url_seconds)
        return PredictionResponse(
            data=Prediction(
                id=job.id,
                model=job.model,
                outputs=[f"{base}{output}"] if job.status == "completed" else [],
                urls=Urls(get=f"{base}{API}/predictions/{job.id}/result"),
                has_nsfw_contents=[],
                status=job.status,  # type: ignore[arg-type]
                created_at=job.created_at,
                error=job.error,
                timings=Timings(inference=job.inference_ms),
                progress=job.progress,
                jobs_ahead=self.store.jobs_ahead(job) if job.status == "created" else 0,
            )
        )

    def _supervise(self) -> None:
        last_sweep = time.monotonic()
        while not self._stopping.wait(self.settings.heartbeat_seconds):
            try:
                live = self.intake.alive_owners() + [worker.owner for worker in self.workers if worker.alive]
                self.store.beat(live)
                requeued, failed = self.store.recover(time.time() - self.stale_after)
                for job_id in failed:
                    self.storage.remove_job(job_id)
                    self.job_ended(job_id)
                if requeued:
                    logger.warning("%d jobs of a worker that stopped answering run again", requeued)
                    self.intake.waiting.ring()
                for worker in self.workers:
                    if not worker.alive and not self._stopping.is_set():
                        logger.error("%s died; starting it again", worker.name)
                        worker.start()
                if time.monotonic() - last_sweep > SWEEP_EVERY:
                    sweep(self.store, self.storage, self.settings.keep_days)
                    last_sweep = time.monotonic()
            except Exception:
                logger.exception("supervisor: a round failed; the next one tries again")
