"""Webhook authentication: content type, HMAC-SHA256 signatures, and the replay guard.

Jira (Cloud admin webhooks with a secret) sends `X-Hub-Signature: sha256=<hex>`, the HMAC-SHA256
of the raw body keyed with the webhook's secret (WebSub style). ServiceNow has no built-in
webhook signing; our Script Include (docs/servicenow/SlmSyncWebhook.script_include.js) sends
`X-SLM-Signature: sha256=<base64>` over `<X-SLM-Timestamp>.<body>`, because
`GlideCertificateEncryption.generateMac` answers in base64.

Only the canonical spelling of a digest is accepted, so one digest has exactly one text per
encoding and nobody can mint "new" signatures by re-encoding a captured one:

    Jira        sha256=<64 lowercase hex>
    ServiceNow  sha256=<44 standard base64, padded>  or  sha256=<64 lowercase hex>

The prefix is lower case; upper-case hex, URL-safe or unpadded base64, non-canonical trailing
bits, spaces: malformed. The replay guard keys on the decoded digest anyway, so the two
ServiceNow spellings of one digest are the same delivery. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
from collections import OrderedDict
from collections.abc import Collection
from typing import Literal

SCHEME = "sha256="
Encoding = Literal["hex", "base64"]
JIRA_ENCODINGS: tuple[Encoding, ...] = ("hex",)
SERVICENOW_ENCODINGS: tuple[Encoding, ...] = ("base64", "hex")
_DIGEST_SIZE = hashlib.sha256().digest_size
_HEX = re.compile(r"[0-9a-f]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{43}=")
# application/json, optionally with charset=utf-8; nothing else (RFC 9110: case-insensitive
# type and charset, optional whitespace around ';', the value may be quoted).
_JSON_MEDIA_TYPE = re.compile(r'application/json(?:[ \t]*;[ \t]*charset=(?:utf-8|"utf-8"))?', re.I)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type header is `application/json` (optionally `; charset=utf-8`)."""
    return content_type is not None and bool(_JSON_MEDIA_TYPE.fullmatch(content_type.strip()))


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


def decode_signature(header: str, encodings: Collection[Encoding]) -> bytes | None:
    """The 32 digest bytes of `sha256=<digest>` in one of `encodings`; None unless canonical."""
    if not header.startswith(SCHEME):
        return None
    text = header[len(SCHEME) :]
    if "hex" in encodings and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if "base64" in encodings and _BASE64.fullmatch(text):
        return _canonical_base64(text)
    return None


def digest_matches(given: bytes, expected: bytes) -> bool:
    """Whether two digests are equal, in constant time."""
    return hmac.compare_digest(given, expected)


def _canonical_base64(text: str) -> bytes | None:
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # 43 characters carry 258 bits: four spellings decode to the same 32 bytes. Only the one
    # with the spare bits zero (what every encoder writes) is accepted.
    if len(digest) != _DIGEST_SIZE or base64.b64encode(digest).decode("ascii") != text:
        return None
    return digest


class ReplayGuard:
    """Remembers recent deliveries (bounded) so a captured request cannot be played again.

    A delivery older than the timestamp window is refused anyway, so an entry only needs to
    live that long; the size bound caps memory. Only authentic deliveries are recorded, so a
    flood of forged requests cannot push real entries out.
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
