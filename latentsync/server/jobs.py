"""The job store: one SQLite table in the data dir, so that the queue and every job's outcome survive a restart.

A job goes created -> processing -> completed | failed. The worker claims the oldest created job; a job still
marked processing when the server starts again was cut off mid-run, and `recover` decides its fate.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latentsync.server.storage import UnknownFile, check_id, new_id

STATUSES = ("created", "processing", "completed", "failed")
MAX_ATTEMPTS = 2  # a job cut off by a restart runs once more; cut off again, it is failed (it may be the cause)
CUT_OFF_AGAIN = (
    f"the server stopped while running this job, {MAX_ATTEMPTS} times; it is not tried again "
    "(if the server was killed for lack of memory, try a shorter video or --low-vram)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    inference_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
"""


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    model: str
    params: dict[str, Any]
    status: str
    created_at: str
    attempts: int
    progress: float
    error: str
    inference_ms: int


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds, as the hosted APIs write `created_at`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    """Thread-safe access to the jobs table: the API threads and the worker share one connection under a lock."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, model: str, params: dict[str, Any]) -> Job:
        """A new waiting job, as created (the worker may claim it the next moment)."""
        with self._lock:
            row = self._db.execute(
                "INSERT INTO jobs (id, model, params, status, created_at) VALUES (?, ?, ?, 'created', ?) RETURNING *",
                (new_id(), model, json.dumps(params), utc_now()),
            ).fetchone()
        return _job(row)

    def get(self, job_id: str) -> Job:
        """The job; UnknownFile (a LookupError) for an id this server never gave out."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (check_id(job_id),)).fetchone()
        if row is None:
            raise UnknownFile(f"no prediction with id {job_id!r}")
        return _job(row)

    def jobs_ahead(self, job: Job) -> int:
        """How many jobs run before this waiting one: the running job and the older waiting ones."""
        with self._lock:
            (ahead,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'processing' OR (status = 'created' AND seq < ?)",
                (job.seq,),
            ).fetchone()
        return int(ahead)

    def claim_next(self) -> Job | None:
        """Mark the oldest waiting job processing and return it (None when the queue is empty)."""
        with self._lock:
            row = self._db.execute(
                "UPDATE jobs SET status = 'processing', attempts = attempts + 1, progress = 0 "
                "WHERE seq = (SELECT seq FROM jobs WHERE status = 'created' ORDER BY seq LIMIT 1) RETURNING *"
            ).fetchone()
        return None if row is None else _job(row)

    def set_progress(self, job_id: str, fraction: float) -> None:
        self._update(job_id, progress=min(max(fraction, 0.0), 1.0))

    def complete(self, job_id: str, inference_ms: int) -> None:
        self._update(job_id, status="completed", progress=1.0, inference_ms=inference_ms)

    def fail(self, job_id: str, error: str) -> None:
        self._update(job_id, status="failed", error=error)

    def recover(self) -> tuple[int, int]:
        """Deal with jobs a stop cut off mid-run: run them again (first in line, they are the oldest), or fail
        those cut off MAX_ATTEMPTS times. Returns (requeued, failed)."""
        with self._lock:
            failed = self._db.execute(
                "UPDATE jobs SET status = 'failed', error = ? WHERE status = 'processing' AND attempts >= ?",
                (CUT_OFF_AGAIN, MAX_ATTEMPTS),
            ).rowcount
            requeued = self._db.execute(
                "UPDATE jobs SET status = 'created', progress = 0 WHERE status = 'processing'"
            ).rowcount
        return requeued, failed

    def _update(self, job_id: str, **values: object) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*values.values(), job_id))


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["params"] = json.loads(data["params"])
    return Job(**data)
