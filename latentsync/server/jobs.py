"""The job store: one SQLite table in the data dir, so that the queue and every job's outcome survive a restart.

A job goes created -> processing -> completed | failed. While created, its inputs are fetched (stage '' ->
'fetching' -> 'ready'), and a GPU worker claims the oldest ready job. A claim names its owner
("host:pid:worker") and carries a heartbeat the owner renews; a processing job is recovered (run again, or failed
after MAX_ATTEMPTS) only when its owner is gone: a dead process on this host, or a heartbeat gone stale. Updates
about a job come only from its current owner, so a worker presumed dead that wakes up cannot overwrite a rerun.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from latentsync.errors import LatentSyncError
from latentsync.server.storage import UnknownFile, check_id, new_id, shown_id

Status = Literal["created", "processing", "completed", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)
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
# Columns added after the first release; an older data dir gets them on open.
_ADDED = {
    "stage": "TEXT NOT NULL DEFAULT ''",
    "owner": "TEXT NOT NULL DEFAULT ''",
    "heartbeat": "REAL NOT NULL DEFAULT 0",
    "ended_at": "REAL NOT NULL DEFAULT 0",
    "base_url": "TEXT NOT NULL DEFAULT ''",
}


class JobBusy(LatentSyncError, RuntimeError):
    """The job is running and cannot be deleted now."""


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
    stage: str
    owner: str
    heartbeat: float
    ended_at: float
    base_url: str

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "failed")


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds, as the hosted APIs write `created_at`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    """Thread-safe access to the jobs table: the API threads and the workers share one connection under a lock."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, model: str, params: dict[str, Any], base_url: str = "") -> Job:
        """A new waiting job, as created (a fetcher may claim it the next moment)."""
        return self._one(
            "INSERT INTO jobs (id, model, params, status, created_at, base_url) VALUES (?, ?, ?, 'created', ?, ?) "
            "RETURNING *",
            (new_id(), model, json.dumps(params), utc_now(), base_url),
        )  # type: ignore[return-value]

    def get(self, job_id: str) -> Job:
        """The job; UnknownFile (a LookupError) for an id this server never gave out."""
        job = self._one("SELECT * FROM jobs WHERE id = ?", (check_id(job_id),))
        if job is None:
            raise UnknownFile(f"no prediction with id {shown_id(job_id)}")
        return job

    def jobs_ahead(self, job: Job) -> int:
        """How many jobs run before this waiting one: the running jobs and the older waiting ones."""
        with self._lock:
            (ahead,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'processing' OR (status = 'created' AND seq < ?)",
                (job.seq,),
            ).fetchone()
        return int(ahead)

    def claim_fetch(self, owner: str) -> Job | None:
        """The oldest job whose inputs nobody fetches yet, now marked as being fetched by `owner`."""
        return self._one(
            "UPDATE jobs SET stage = 'fetching', owner = ?, heartbeat = ? WHERE seq = "
            "(SELECT seq FROM jobs WHERE status = 'created' AND stage = '' ORDER BY seq LIMIT 1) RETURNING *",
            (owner, time.time()),
        )

    def fetched(self, job_id: str, owner: str) -> bool:
        """The job's inputs are on disk: it waits for a GPU worker."""
        return self._update(job_id, owner, stage="ready", owner="")

    def claim_next(self, owner: str) -> Job | None:
        """Mark the oldest job with fetched inputs processing by `owner` and return it (None when there is none)."""
        return self._one(
            "UPDATE jobs SET status = 'processing', attempts = attempts + 1, progress = 0, owner = ?, heartbeat = ? "
            "WHERE seq = (SELECT seq FROM jobs WHERE status = 'created' AND stage = 'ready' ORDER BY seq LIMIT 1) "
            "RETURNING *",
            (owner, time.time()),
        )

    def beat(self, owners: list[str]) -> None:
        """Renew the claims of these (live) owners."""
        if not owners:
            return
        marks = ", ".join("?" * len(owners))
        with self._lock:
            self._db.execute(f"UPDATE jobs SET heartbeat = ? WHERE owner IN ({marks})", (time.time(), *owners))

    def set_progress(self, job_id: str, owner: str, fraction: float) -> None:
        self._update(job_id, owner, progress=min(max(fraction, 0.0), 1.0))

    def complete(self, job_id: str, owner: str, inference_ms: int) -> bool:
        return self._update(
            job_id, owner, status="completed", progress=1.0, inference_ms=inference_ms, owner="", ended_at=time.time()
        )

    def fail(self, job_id: str, owner: str, error: str) -> bool:
        return self._update(job_id, owner, status="failed", error=error, owner="", ended_at=time.time())

    def recover(self, stale_before: float, gone: Callable[[str], bool] = lambda owner: False) -> tuple[int, list[str]]:
        """Take back the claims of owners that are gone (`gone(owner)`, or a heartbeat older than `stale_before`):
        a cut-off job runs again (first in line: it is the oldest) or, cut off MAX_ATTEMPTS times, fails; a job
        whose fetch was cut off is fetched again. Returns (jobs run again, ids of the jobs failed)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, owner, heartbeat, status, attempts FROM jobs WHERE owner != '' "
                "AND status IN ('created', 'processing')"
            ).fetchall()
            lost = [row for row in rows if row["heartbeat"] < stale_before or gone(row["owner"])]
            requeued, failed = 0, []
            for row in lost:
                if row["status"] == "created":
                    self._db.execute("UPDATE jobs SET stage = '', owner = '' WHERE id = ?", (row["id"],))
                elif row["attempts"] >= MAX_ATTEMPTS:
                    self._db.execute(
                        "UPDATE jobs SET status = 'failed', error = ?, owner = '', ended_at = ? WHERE id = ?",
                        (CUT_OFF_AGAIN, time.time(), row["id"]),
                    )
                    failed.append(row["id"])
                else:
                    self._db.execute(
                        "UPDATE jobs SET status = 'created', stage = '', progress = 0, owner = '' WHERE id = ?",
                        (row["id"],),
                    )
                    requeued += 1
        return requeued, failed

    def delete(self, job_id: str) -> Job:
        """Forget a job that is not running; JobBusy while it runs."""
        with self._lock:
            row = self._db.execute(
                "DELETE FROM jobs WHERE id = ? AND status != 'processing' RETURNING *", (check_id(job_id),)
            ).fetchone()
        if row is not None:
            return _job(row)
        job = self.get(job_id)  # UnknownFile if it never existed
        raise JobBusy(f"prediction {job.id} is running; delete it once it has ended")

    def ended_before(self, when: float) -> list[Job]:
        """Jobs that ended before the time `when` (seconds since the epoch)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE status IN ('completed', 'failed') AND ended_at < ?", (when,)
            ).fetchall()
        return [_job(row) for row in rows]

    def inputs_in_use(self) -> set[str]:
        """The video and audio URLs of the jobs that have not ended."""
        with self._lock:
            rows = self._db.execute("SELECT params FROM jobs WHERE status IN ('created', 'processing')").fetchall()
        return {url for row in rows for key, url in json.loads(row["params"]).items() if key in ("video", "audio")}

    def active_ids(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE status IN ('created', 'processing')").fetchall()
        return {row["id"] for row in rows}

    def _one(self, sql: str, args: tuple[object, ...]) -> Job | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return None if row is None else _job(row)

    def _update(self, job_id: str, holder: str, /, **values: object) -> bool:
        """Set columns of a job `holder` still holds; False when it holds it no more."""
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE jobs SET {columns} WHERE id = ? AND owner = ?", (*values.values(), job_id, holder)
            )
        return cursor.rowcount == 1


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["params"] = json.loads(data["params"])
    return Job(**data)
