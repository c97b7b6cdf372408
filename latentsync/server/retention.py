"""What the server deletes so that weeks of jobs do not fill its disk, and the floor under which it takes no more.

- an ended job's uploads as soon as no waiting or running job uses them;
- a job (its record and result video) `keep_days` after it ended; uploads no job used, `keep_days` after arrival;
- new jobs and uploads are refused while the data dir's disk has less than `min_free_bytes` free.
"""

from __future__ import annotations

import logging
import time

from latentsync.errors import LatentSyncError
from latentsync.server.jobs import Job, JobStore
from latentsync.server.settings import DAY, GB, ServerSettings
from latentsync.server.storage import Storage, UnknownFile

logger = logging.getLogger(__name__)


class DiskFull(LatentSyncError, OSError):
    """The data dir's disk is below the operator's free-space floor."""


def check_space(storage: Storage, settings: ServerSettings) -> None:
    free = storage.free_bytes()
    if free < settings.min_free_bytes:
        raise DiskFull(
            f"the server is low on disk space ({free / GB:.1f} GB free, it keeps at least "
            f"{settings.min_free_bytes / GB:.1f} GB): no new jobs or uploads until old ones are deleted "
            "(DELETE /api/v3/predictions/<id>) or expire (latentsync serve --keep-days)"
        )


def free_inputs(job: Job, store: JobStore, storage: Storage) -> None:
    """Delete the uploads an ended job used, unless a job that has not ended uses them too."""
    in_use = store.inputs_in_use()
    for kind in ("video", "audio"):
        url = job.params.get(kind, "")
        try:
            path = storage.upload_for_url(url)
        except UnknownFile:
            continue
        if path is not None and url not in in_use:
            path.unlink(missing_ok=True)


def sweep(store: JobStore, storage: Storage, keep_days: float) -> tuple[int, int]:
    """Delete what is older than `keep_days`; returns (jobs, uploads) deleted."""
    cutoff = time.time() - keep_days * DAY
    jobs = 0
    for job in store.ended_before(cutoff):
        storage.remove_job(job.id)
        store.delete(job.id)
        jobs += 1
    in_use = {path for url in store.inputs_in_use() for path in [_upload(storage, url)] if path is not None}
    uploads = 0
    for path in storage.uploads_older_than(cutoff):
        if path not in in_use:
            path.unlink(missing_ok=True)
            uploads += 1
    if jobs or uploads:
        logger.info("retention: deleted %d jobs older than %g days and %d unused uploads", jobs, keep_days, uploads)
    return jobs, uploads


def _upload(storage: Storage, url: str):
    try:
        return storage.upload_for_url(url)
    except UnknownFile:
        return None
