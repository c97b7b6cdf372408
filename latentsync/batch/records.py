"""What each job came to, kept in one JSON-lines file beside the outputs, so that a rerun skips finished jobs.

Only the driver writes it, one line per finished job, flushed to disk at once: a crash loses at most the job that
was running. The last line about a job wins. A job counts as done when its record says so for the same settings
(fingerprint) and its output file is there; outputs themselves appear only complete (temporary name, then rename).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .jobs import Job

RECORDS_FILE = "batch-records.jsonl"


@dataclass
class JobRecord:
    key: str  # the job's output path
    status: str  # "done" or "failed"
    fingerprint: str
    reason: str | None = None  # why it failed
    seconds: float = 0.0  # wall time of the job, fetching included
    output_seconds: float = 0.0  # length of the video written
    worker: str = ""  # which device or actor ran it
    finished: float = 0.0  # UNIX time

    @classmethod
    def failed(cls, job: Job, reason: str, worker: str = "", seconds: float = 0.0) -> JobRecord:
        return cls(job.key, "failed", job.fingerprint, reason, round(seconds, 3), 0.0, worker, time.time())


class Records:
    """The records file of one output folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.latest: dict[str, JobRecord] = {}
        if path.exists():
            for text in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = JobRecord(**json.loads(text))
                except (json.JSONDecodeError, TypeError):
                    continue  # a line cut short by a crash
                self.latest[record.key] = record

    def is_done(self, job: Job) -> bool:
        record = self.latest.get(job.key)
        return (
            record is not None
            and record.status == "done"
            and record.fingerprint == job.fingerprint
            and job.output is not None
            and job.output.is_file()
        )

    def add(self, record: JobRecord) -> None:
        self.latest[record.key] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())
