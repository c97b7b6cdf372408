"""`latentsync serve`: the lip-sync HTTP API and its web page."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from latentsync.cli.options import add_fetch_options, add_model_options, load_pipeline
from latentsync.errors import LatentSyncError


def run(args: argparse.Namespace) -> int:
    try:
        from latentsync.server import ServerSettings, serve
        from latentsync.server.lock import DataDirLock
    except ImportError as exc:
        missing = f"the server needs its extra ({exc.name} is missing): pip install 'latentsync[server]'"
        raise LatentSyncError(missing) from None
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    if args.devices is not None and not devices:
        raise LatentSyncError("--devices needs a comma-separated list such as cuda:0,cuda:1")
    settings = ServerSettings(
        data_dir=Path(args.data_dir),
        api_key=os.environ.get("LATENTSYNC_API_KEY") or None,
        max_duration=args.max_duration,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_download_bytes=int(args.max_download_mb * 1024 * 1024),
        download_timeout=args.download_timeout,
        allow_networks=tuple(args.allow_url_network),
        keep_days=args.keep_days,
        min_free_bytes=int(args.min_free_gb * 1024**3),
        fetch_workers=args.fetch_workers,
        checkpoints=Path(args.checkpoints) if args.checkpoints else None,
        model_version=args.version,
    )
    # A data dir another server holds is refused before minutes of model loading (and again, for good, at start).
    busy = DataDirLock(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    busy.acquire()
    busy.release()
    # One pipeline, and so one GPU worker, per device; all take jobs from the one queue in submission order.
    pipelines = [load_pipeline(argparse.Namespace(**{**vars(args), "device": device})) for device in devices]
    serve(settings, pipelines or [load_pipeline(args)], host=args.host, port=args.port, devices=devices)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    text = "run the lip-sync HTTP API (hosted-service shapes) and its web page"
    srv = sub.add_parser("serve", help=text, description=text)
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument(
        "--data-dir", default="latentsync-data", help="jobs database, uploads and results (default ./latentsync-data)"
    )
    srv.add_argument(
        "--max-duration", type=float, default=600, help="longest accepted video or audio, seconds (default 600)"
    )
    srv.add_argument("--max-upload-mb", type=float, default=500, help="largest accepted upload (default 500 MB)")
    add_fetch_options(srv, timeout_for="one job's input URLs")
    srv.add_argument(
        "--devices",
        default=None,
        metavar="LIST",
        help="one GPU worker per device, e.g. cuda:0,cuda:1 (default: one worker on --device)",
    )
    srv.add_argument(
        "--keep-days",
        type=float,
        default=7,
        help="delete jobs, results and unused uploads this many days after they end (default 7)",
    )
    srv.add_argument(
        "--min-free-gb",
        type=float,
        default=2,
        help="refuse new jobs and uploads while the data dir's disk has less free (default 2)",
    )
    srv.add_argument(
        "--fetch-workers",
        type=int,
        default=4,
        help="threads downloading input URLs, apart from the GPU workers (default 4)",
    )
    add_model_options(srv)
    srv.set_defaults(run=run)
