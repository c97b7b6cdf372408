"""Batches of lip-sync jobs: a jobs file, records that let a rerun skip finished jobs, and the backends that run
them (this process, one worker process per device, or Ray actors)."""

from .execute import ModelSpec, run_job
from .jobs import Job, JobsFileError, probe_inputs, read_jobs, refuse_bad_rows
from .pool import BatchError, run_in_process, run_processes
from .records import RECORDS_FILE, JobRecord, Records
from .summary import BatchSummary

__all__ = [
    "RECORDS_FILE",
    "BatchError",
    "BatchSummary",
    "Job",
    "JobRecord",
    "JobsFileError",
    "ModelSpec",
    "Records",
    "probe_inputs",
    "read_jobs",
    "refuse_bad_rows",
    "run_in_process",
    "run_job",
    "run_processes",
]
