"""What the operator decides about a server: where it keeps its data, who may call it, which inputs it accepts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """The defaults follow the hosted services: media up to 600 s, no fetching from the operator's own networks."""

    data_dir: Path
    api_key: str | None = None  # when set, every API call needs `Authorization: Bearer <api_key>`
    max_duration: float = 600.0  # seconds, for the video and the audio alike
    max_upload_bytes: int = 500 * MB
    max_download_bytes: int = 500 * MB
    download_timeout: float = 120.0  # seconds for a whole URL download, redirects included
    allow_networks: tuple[Network, ...] = ()  # loopback/private/link-local networks URLs may point into anyway
