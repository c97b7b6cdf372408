"""`latentsync batch`: a file of lip-sync jobs, one model load per device, resumable."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from latentsync.cli.options import add_job_options, add_model_options, devices, job_options
from latentsync.cli.serve import network
from latentsync.errors import LatentSyncError


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from latentsync.batch import RECORDS_FILE, BatchSummary, JobRecord, ModelSpec, Records, read_jobs
    from latentsync.batch.pool import run_in_process, run_processes

    jobs_file = Path(args.jobs)
    output_dir = Path(args.output_dir) if args.output_dir else jobs_file.parent / f"{jobs_file.stem}-outputs"
    jobs = read_jobs(jobs_file, output_dir, job_options(args))
    records = Records(output_dir / RECORDS_FILE)
    todo = [job for job in jobs if not records.is_done(job)]
    skipped = [job.key for job in jobs if records.is_done(job)]
    ran: list[JobRecord] = []
    started = time.perf_counter()
    with tqdm(total=len(jobs), initial=len(skipped), unit="job", desc="Batch", disable=args.quiet) as bar:

        def on_record(record: JobRecord) -> None:
            records.add(record)
            ran.append(record)
            bar.update()
            bar.set_postfix(failed=sum(r.status != "done" for r in ran))

        for job in todo:
            if job.problem is not None:  # refused before any model loads
                on_record(JobRecord.failed(job, job.problem))
        runnable = [job for job in todo if job.problem is None]
        if runnable:
            spec, policy = ModelSpec.from_args(args), fetch_policy(args)
            if args.ray is not None:
                from latentsync.batch.ray_backend import run_ray

                address = None if args.ray == "local" else args.ray
                run_ray(runnable, spec, address, args.devices, policy, on_record, args.ray_return_outputs)
            elif args.devices and len(args.devices) > 1:
                run_processes(runnable, spec, args.devices, policy, on_record)
            else:
                run_in_process(runnable, spec, args.devices[0] if args.devices else args.device, policy, on_record)
    summary = BatchSummary(ran, skipped, time.perf_counter() - started)
    print(json.dumps(summary.as_dict(), indent=2) if args.json else summary.table())
    return 1 if summary.failed else 0


def fetch_policy(args: argparse.Namespace):
    try:
        from latentsync.server.fetch import FetchPolicy
    except ImportError as exc:
        raise LatentSyncError(
            f"fetching input URLs needs the server extra ({exc.name} is missing): pip install 'latentsync[server]'"
        ) from None
    return FetchPolicy(int(args.max_download_mb * 1024 * 1024), args.download_timeout, tuple(args.allow_url_network))


def register(sub: argparse._SubParsersAction) -> None:
    bat = sub.add_parser(
        "batch",
        help="lip-sync every job of a CSV or JSON-lines file; a rerun skips the finished ones",
        description="JOBS has the columns video, audio[, output][, sync_mode, seed, steps, guidance_scale, "
        "face_index, face_at] (a CSV with a header row, or one JSON object a line); video and audio are paths "
        "(relative to the jobs file) or http(s) URLs. The job options below are the defaults a row overrides.",
    )
    bat.add_argument("jobs", metavar="JOBS", help="the jobs file (.csv or .jsonl)")
    bat.add_argument(
        "--output-dir",
        default=None,
        help="where outputs and the records file go (default: JOBS's folder/<JOBS name>-outputs)",
    )
    bat.add_argument(
        "--devices",
        type=devices,
        default=None,
        metavar="LIST",
        help="one worker process per device, e.g. cuda:0,cuda:1 (cpu,cpu works too); default: --device",
    )
    bat.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster, one actor per GPU (or one per --devices entry); without ADDRESS, "
        "RAY_ADDRESS or a local Ray instance",
    )
    bat.add_argument(
        "--ray-return-outputs",
        action="store_true",
        help="Ray actors send outputs back to this machine instead of writing them to a shared path",
    )
    bat.add_argument("--json", action="store_true", help="print the summary as JSON")
    bat.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    bat.add_argument(
        "--max-download-mb", type=float, default=500, help="largest input fetched from a URL (default 500 MB)"
    )
    bat.add_argument(
        "--download-timeout", type=float, default=120, help="seconds allowed for fetching one input URL (default 120)"
    )
    bat.add_argument(
        "--allow-url-network",
        type=network,
        action="append",
        default=[],
        metavar="CIDR",
        help="let input URLs point into this loopback/private network (repeatable; refused by default)",
    )
    add_job_options(bat)
    add_model_options(bat)
    bat.set_defaults(run=run)
