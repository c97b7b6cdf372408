"""What the operator decides about a server: where it keeps its data, who may call it, which inputs it accepts,
how long it keeps what it made."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from latentsync.hub import DEFAULT_VERSION

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MB = 1024 * 1024
GB = 1024 * MB
DAY = 86400.0


@dataclass(frozen=True)
class ServerSettings:
    """The defaults follow the hosted services: media up to 600 s, no fetching from the operator's own networks."""

    data_dir: Path
    api_key: str | None = None  # when set, every API call needs `Authorization: Bearer <api_key>`
    max_duration: float = 600.0  # seconds, for the video and the audio alike
    max_upload_bytes: int = 500 * MB
    max_download_bytes: int = 500 * MB
    download_timeout: float = 120.0  # seconds for all of one job's URL downloads together, redirects included
    allow_networks: tuple[Network, ...] = ()  # loopback/private/link-local networks URLs may point into anyway
    keep_days: float = 7.0  # finished jobs, their results and unused uploads are deleted after this long
    min_free_bytes: int = 2 * GB  # under this much free space in the data dir, new jobs and uploads are refused
    result_url_seconds: float = 7 * DAY  # how long a signed result URL works (capped by keep_days in effect)
    fetch_workers: int = 4  # input downloads run in this many threads, apart from the GPU workers
    heartbeat_seconds: float = 5.0  # a running job's claim is renewed this often; 6 missed beats and it is recovered
    webhook_attempts: int = 5  # deliveries of one webhook before giving up (back-off doubles from 1 s)
    webhook_backoff: float = 1.0
    # Where `"active_speaker": true` looks for syncnet_v2.model (without it, the weight-free lip-movement scorer).
    checkpoints: Path | None = None  # the `latentsync download` layout; None: ./checkpoints
    model_version: str = DEFAULT_VERSION
