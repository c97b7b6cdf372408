"""The data dir's layout. Every file name comes from here, built from ids this server made, so that no id or
name a client sends can point outside the data dir."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

ID = re.compile(r"[0-9a-f]{32}")
UPLOAD_NAME = re.compile(r"[0-9a-f]{32}(\.[a-z0-9]{1,10})?")
UPLOADS_ROUTE = "/api/v3/media/uploads"  # where the API serves uploads; their URLs are inputs the server has


class UnknownFile(LookupError):
    """A job id or upload name that this server did not hand out (or whose file is gone)."""


def new_id() -> str:
    return uuid.uuid4().hex


def shown_id(text: str, limit: int = 40) -> str:
    """An id or name as echoed in an error: quoted, and cut short when a client sent something long."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class Storage:
    """DATA/jobs.sqlite3, DATA/uploads/<name>, DATA/results/<job id>.mp4, DATA/work/<job id>/ (fetched inputs)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uploads = self.root / "uploads"
        self.results = self.root / "results"
        self.work = self.root / "work"
        for folder in (self.uploads, self.results, self.work):
            folder.mkdir(parents=True, exist_ok=True)
        # Half-written results of jobs cut off by a hard stop; those jobs run again under new temporary names.
        for partial in self.results.glob(".*.partial*"):
            partial.unlink(missing_ok=True)

    @property
    def database(self) -> Path:
        return self.root / "jobs.sqlite3"

    def new_upload(self, filename: str | None) -> Path:
        """A fresh path for an upload; only a tame form of the client's extension is kept (players want it)."""
        suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,10}", suffix):
            suffix = ""
        return self.uploads / f"{new_id()}{suffix}"

    def upload(self, name: str) -> Path:
        """The stored upload called `name`; UnknownFile unless it is one of ours and still there."""
        if not UPLOAD_NAME.fullmatch(name) or not (self.uploads / name).is_file():
            raise UnknownFile(f"this server has no upload named {shown_id(name)}")
        return self.uploads / name

    def upload_for_url(self, url: str) -> Path | None:
        """The stored upload a URL this server handed out points to (whatever host name the client used to
        reach it), None for any other URL; UnknownFile for an upload URL whose file is not here."""
        folder, _, name = urlsplit(url).path.rpartition("/")
        if not folder.endswith(UPLOADS_ROUTE):
            return None
        return self.upload(name)

    def result(self, job_id: str) -> Path:
        return self.results / f"{check_id(job_id)}.mp4"

    def work_dir(self, job_id: str) -> Path:
        return self.work / check_id(job_id)

    def remove_job(self, job_id: str) -> None:
        """A job's result and work folder, gone."""
        self.result(job_id).unlink(missing_ok=True)
        shutil.rmtree(self.work_dir(job_id), ignore_errors=True)

    def remove_work_except(self, keep: set[str]) -> None:
        """Work folders of jobs that are not in `keep` (left by a hard stop), gone."""
        for folder in self.work.iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def uploads_older_than(self, when: float) -> list[Path]:
        return [path for path in self.uploads.iterdir() if path.is_file() and path.stat().st_mtime < when]

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free


def check_id(job_id: str) -> str:
    if not ID.fullmatch(job_id):
        raise UnknownFile(f"no prediction with id {shown_id(job_id)}")
    return job_id
