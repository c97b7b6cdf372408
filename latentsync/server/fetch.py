"""Downloading a client's input URL (and posting to its webhook) without letting it reach into the server's own
networks.

Every hop (the first URL and each redirect) is resolved here, the address is checked, and the connection goes
to exactly that checked address, so a DNS answer that changes between check and connect cannot slip past.
The size cap and the time limit hold for the whole download, however the server trickles its bytes. Messages
name a URL without its user:password and query (which often carry credentials).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from latentsync.errors import LatentSyncError
from latentsync.server.settings import MB, Network

MAX_REDIRECTS = 5
CHUNK = 1 << 16
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(LatentSyncError, ValueError):
    """An input URL that is not allowed, cannot be reached, or sends something too big or too slowly."""


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    timeout: float  # seconds for the whole download
    allow_networks: tuple[Network, ...] = ()


class Unresolvable(FetchError):
    """The URL's host name has no address (now)."""


def redact(url: str) -> str:
    """The URL as it may be shown: no user:password, no query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<an unreadable URL>"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme or host else parts.path
    return shown[:200] + ("?…" if parts.query else "")


def check_scheme(url: str) -> None:
    """Only http(s) URLs with a host; file:, ftp:, data: and the like never reach a socket."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - a bad port raises here rather than at connect
    except ValueError:
        ok = False
    if not ok:
        raise FetchError(f"{redact(url)!r} is not an http(s) URL")


def check_url(url: str, allow: tuple[Network, ...] = ()) -> None:
    """What `fetch` would refuse before connecting: not http(s), or a host whose addresses are all out of bounds.
    A host name that does not resolve now passes (DNS may come back before the job runs)."""
    check_scheme(url)
    parts = urlsplit(url)
    try:
        _allowed_address(url, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), allow)
    except Unresolvable:
        pass


def blocked_reason(address: IPAddress, allow: tuple[Network, ...] = ()) -> str | None:
    """Why the server must not connect to `address` (None when it may): it is not a public address and the
    operator did not allow its network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allow):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or not address.is_global:
        return "not a public address"
    return None


def fetch(url: str, dest: Path, policy: FetchPolicy, deadline: float | None = None) -> None:
    """Download `url` into `dest`, following up to MAX_REDIRECTS redirects, each checked like the first URL.
    `deadline` (time.monotonic()) is when it must be done: a job's downloads share one; default: policy.timeout."""
    deadline = time.monotonic() + policy.timeout if deadline is None else deadline
    for _ in range(MAX_REDIRECTS + 1):
        check_scheme(url)
        connection = _connection(url, policy, deadline)
        try:
            try:
                response = _get(connection, url)
            except ssl.SSLError as exc:
                raise FetchError(f"{redact(url)}: TLS failed ({exc.reason or exc})") from None
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError(f"{redact(url)}: cannot connect ({_reason(exc, policy)})") from None
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location", ""))
                continue
            if response.status != 200:
                raise FetchError(f"{redact(url)}: the server answered HTTP {response.status} {response.reason}")
            _save(url, connection, response, dest, policy, deadline)
            return
        finally:
            connection.close()
    raise FetchError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")


def post_json(url: str, body: bytes, headers: dict[str, str], policy: FetchPolicy) -> int:
    """POST `body` (JSON) to `url` through the same address checks as a download; the HTTP status (no redirects:
    a webhook that moved is a failed delivery)."""
    check_scheme(url)
    connection = _connection(url, policy, time.monotonic() + policy.timeout)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "latentsync-server", **headers},
        )
        response = connection.getresponse()
        response.read(CHUNK)
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{redact(url)}: cannot deliver ({_reason(exc, policy)})") from None
    finally:
        connection.close()


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to an address checked beforehand, while the Host header keeps the URL's name."""

    pinned: socket.socket

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = self.pinned = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP, with TLS verified against the URL's host name."""

    pinned: socket.socket

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.pinned = self.tls.wrap_socket(raw, server_hostname=self.host)


def _connection(url: str, policy: FetchPolicy, deadline: float) -> _PinnedHTTP | _PinnedHTTPS:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _allowed_address(url, host, port, policy.allow_networks)
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    return kind(host, port, address, timeout=max(deadline - time.monotonic(), 0.001))


def _get(connection: _PinnedHTTP | _PinnedHTTPS, url: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection.request("GET", target, headers={"User-Agent": "latentsync-server", "Accept": "*/*"})
    return connection.getresponse()


def _allowed_address(url: str, host: str, port: int, allow: tuple[Network, ...]) -> str:
    """The first address of `host` the server may connect to; FetchError naming why if there is none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Unresolvable(f"{redact(url)}: cannot resolve the host {host!r} ({exc.strerror})") from None
    reasons = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        reason = blocked_reason(address, allow)
        if reason is None:
            return str(address)
        reasons.append(f"{address} is {reason}")
    raise FetchError(
        f"{redact(url)}: {'; '.join(reasons)}; this server does not fetch from loopback, private or link-local "
        "addresses unless its operator allows the network (latentsync serve --allow-url-network CIDR)"
    )


def _save(
    url: str,
    connection: _PinnedHTTP | _PinnedHTTPS,
    response: http.client.HTTPResponse,
    dest: Path,
    policy: FetchPolicy,
    deadline: float,
) -> None:
    too_big = f"{redact(url)}: larger than this server's {policy.max_bytes / MB:g} MB download limit"
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(too_big)
    size = 0
    with dest.open("wb") as out:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(f"{redact(url)}: {_reason(TimeoutError(), policy)}")
            connection.pinned.settimeout(remaining)  # no single read may outlast the whole download's limit
            try:
                chunk = response.read1(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError(f"{redact(url)}: the download broke off ({_reason(exc, policy)})") from None
            if not chunk:
                break
            size += len(chunk)
            if size > policy.max_bytes:
                raise FetchError(too_big)
            out.write(chunk)
    if size == 0:
        raise FetchError(f"{redact(url)}: the server sent an empty file")


def _reason(exc: BaseException, policy: FetchPolicy) -> str:
    if isinstance(exc, TimeoutError):
        return f"not done within this server's {policy.timeout:g} s download limit"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
