"""Webhook deliveries: the result envelope POSTed to the job's `webhook_url` when it ends.

Same address guard as input URLs; a delivery that fails (no connection, or an answer other than 2xx) is tried
again after 1, 2, 4, ... s (`webhook_backoff` doubling, `webhook_attempts` in all), in threads of its own.
The header `X-LatentSync-Signature: t=<unix time>,v1=<hex>` carries HMAC-SHA256(key, "<t>." + body) where the key
is the server's API key (or, without one, the data dir's signing.key).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from latentsync.server.fetch import FetchError, FetchPolicy, post_json, redact
from latentsync.server.signing import SIGNATURE_HEADER, Signer

logger = logging.getLogger(__name__)


class Webhooks:
    def __init__(self, signer: Signer, policy: FetchPolicy, attempts: int, backoff: float) -> None:
        self.signer, self.policy, self.attempts, self.backoff = signer, policy, attempts, backoff
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="latentsync-webhook")
        self._stopping = threading.Event()

    def deliver(self, url: str, body: bytes) -> None:
        self._pool.submit(self._deliver, url, body)

    def stop(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, url: str, body: bytes) -> bool:
        for attempt in range(self.attempts):
            if attempt and self._stopping.wait(self.backoff * 2 ** (attempt - 1)):
                return False
            stamp = int(time.time())
            try:
                status = post_json(
                    url, body, {SIGNATURE_HEADER: self.signer.webhook_signature(stamp, body)}, self.policy
                )
            except FetchError as exc:
                logger.warning("webhook %s: attempt %d failed: %s", redact(url), attempt + 1, exc)
                continue
            if 200 <= status < 300:
                return True
            logger.warning("webhook %s: attempt %d answered HTTP %d", redact(url), attempt + 1, status)
        logger.error("webhook %s: not delivered after %d attempts", redact(url), self.attempts)
        return False
