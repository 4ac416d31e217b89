"""Webhook authentication: HMAC-SHA256 signatures, timestamp window, and the replay guard.

Jira (Cloud admin webhooks with a secret) sends `X-Hub-Signature: sha256=<hex>`, the HMAC-SHA256
of the raw body keyed with the webhook's secret (WebSub style). ServiceNow has no built-in
webhook signing; our business rule (docs/servicenow/slm_sync_webhook.js) sends
`X-SLM-Signature: sha256=<base64>` over `<X-SLM-Timestamp>.<body>`, because
`GlideCertificateEncryption.generateMac` answers in base64; hex is accepted too.
Every comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections import OrderedDict

SCHEME = "sha256="
_DIGEST_SIZE = hashlib.sha256().digest_size


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """The HMAC-SHA256 digest of `message` keyed with `secret` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def sign_jira(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature` value Jira sends for `body` (for tests, docs and the bench)."""
    return SCHEME + hmac_sha256(secret, body).hex()


def sign_servicenow(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-SLM-Signature` value our ServiceNow business rule sends (base64, as ServiceNow)."""
    digest = hmac_sha256(secret, servicenow_signed_message(timestamp, body))
    return SCHEME + base64.b64encode(digest).decode("ascii")


def servicenow_signed_message(timestamp: str, body: bytes) -> bytes:
    """What the ServiceNow signature covers: the timestamp, a dot, the raw body."""
    return timestamp.encode("ascii") + b"." + body


def signature_matches(header: str, expected: bytes, *, allow_base64: bool) -> bool:
    """Whether `header` (`sha256=<hex or base64>`) carries the `expected` digest."""
    given = _decode(header, allow_base64=allow_base64)
    # compare_digest on equal-length inputs; a malformed header still costs one comparison.
    return hmac.compare_digest(given or b"\0" * _DIGEST_SIZE, expected) and given is not None


def _decode(header: str, *, allow_base64: bool) -> bytes | None:
    scheme, _, value = header.strip().partition("=")
    if f"{scheme.lower()}=" != SCHEME or not value:
        return None
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        digest = b""
    if len(digest) != _DIGEST_SIZE and allow_base64:
        try:
            digest = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    return digest if len(digest) == _DIGEST_SIZE else None


class ReplayGuard:
    """Remembers recent deliveries (bounded) so a captured request cannot be played again.

    A delivery older than the timestamp window is refused anyway, so an entry only needs to
    live that long; the size bound caps memory under a flood.
    """

    def __init__(self, *, max_entries: int, ttl_seconds: float) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, keys: tuple[str, ...], now: float) -> bool:
        """Record `keys`; False if any of them was seen within the window (a replay)."""
        with self._lock:
            self._expire(now)
            if any(key in self._seen for key in keys):
                return False
            for key in keys:
                self._seen[key] = now
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def forget(self, keys: tuple[str, ...]) -> None:
        """Drop `keys`, so a delivery that was refused after recording may come again."""
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if now - seen_at <= self.ttl_seconds:
                return
            del self._seen[key]
