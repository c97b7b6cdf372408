"""`latentsync batch`: a file of lip-sync jobs, one model load per device, resumable."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from latentsync.cli.options import add_fetch_options, add_job_options, add_model_options, devices, job_options
from latentsync.errors import LatentSyncError


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from latentsync.batch import (
        RECORDS_FILE,
        BatchSummary,
        JobRecord,
        ModelSpec,
        Records,
        probe_inputs,
        read_jobs,
        refuse_bad_rows,
    )
    from latentsync.batch.pool import run_in_process, run_processes
    from latentsync.cli.checks import check_settings, parsed_settings

    check_settings(parsed_settings(args))
    jobs_file = Path(args.jobs)
    output_dir = Path(args.output_dir) if args.output_dir else jobs_file.parent / f"{jobs_file.stem}-outputs"
    jobs = read_jobs(jobs_file, output_dir, job_options(args))
    records = Records(output_dir / RECORDS_FILE)
    todo = probe_inputs([job for job in jobs if not records.is_done(job)])
    refuse_bad_rows(jobs_file, todo)  # a finished row whose inputs are gone since is not in the way
    skipped = [job.key for job in jobs if records.is_done(job)]
    ran: list[JobRecord] = []
    started = time.perf_counter()
    with tqdm(total=len(jobs), initial=len(skipped), unit="job", desc="Batch", disable=args.quiet) as bar:

        def on_record(record: JobRecord) -> None:
            records.add(record)
            ran.append(record)
            bar.update()
            bar.set_postfix(failed=sum(r.status != "done" for r in ran))

        if todo:
            spec, policy = ModelSpec.from_args(args), fetch_policy(args)
            if args.ray is not None:
                from latentsync.batch.ray_backend import run_ray

                address = None if args.ray == "local" else args.ray
                run_ray(todo, spec, address, args.devices, policy, on_record, args.ray_return_outputs)
            elif args.devices and len(args.devices) > 1:
                run_processes(todo, spec, args.devices, policy, on_record)
            else:
                run_in_process(todo, spec, args.devices[0] if args.devices else args.device, policy, on_record)
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
    add_fetch_options(bat, timeout_for="one input URL")
    add_job_options(bat)
    add_model_options(bat)
    bat.set_defaults(run=run)
