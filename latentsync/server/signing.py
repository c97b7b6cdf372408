"""Signatures the server hands out: expiring result URLs that work without the bearer header (a hosted-API client
GETs `outputs[0]` as it is, a <video> tag plays it), and the signature header of webhook deliveries.

The key is derived from the API key (so rotating the key revokes every URL handed out) or, on a server without
one, from a random secret kept in the data dir.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

SIGNATURE_HEADER = "X-LatentSync-Signature"


class Signer:
    def __init__(self, api_key: str | None, data_dir: Path) -> None:
        if api_key:
            secret = api_key.encode()
        else:
            path = data_dir / "signing.key"
            if not path.exists():
                path.write_text(secrets.token_hex(32))
                path.chmod(0o600)
            secret = path.read_text().strip().encode()
        self._urls = hmac.new(secret, b"latentsync result urls", hashlib.sha256).digest()
        self._hooks = secret  # receivers verify with the API key itself (or the data dir's signing.key)

    def sign_path(self, path: str, seconds: float) -> str:
        """`path?expires=..&signature=..`, valid for `seconds`."""
        expires = int(time.time() + seconds)
        return f"{path}?expires={expires}&signature={self._url_mac(path, expires)}"

    def check_path(self, path: str, expires: str | None, signature: str | None) -> bool:
        if not expires or not signature or not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(signature, self._url_mac(path, int(expires)))

    def webhook_signature(self, timestamp: int, body: bytes) -> str:
        """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the receiver recomputes it with the same key."""
        mac = hmac.new(self._hooks, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={mac}"

    def _url_mac(self, path: str, expires: int) -> str:
        return hmac.new(self._urls, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
