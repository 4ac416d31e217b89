"""Authenticated webhooks: `POST /webhooks/jira` and `POST /webhooks/servicenow` queue work now.

The receiver only queues: it turns an authentic, fresh, first-seen, relevant event into a
`WorkItem` and hands it to `enqueue`; the engine does the work under the same leases and ledger
as a poll, so a webhook can never create a ticket twice. Checks, in order, each answered alone:

    webhooks off, unknown path, endpoint without secret  -> 404 (nothing to probe)
    body over webhooks.max_body_bytes                    -> 413 (before reading more)
    signature missing or wrong                           -> 401 (logged without the body)
    body not a JSON object                               -> 400
    timestamp missing or outside webhooks.max_skew_seconds -> 401 (replay of an old capture)
    delivery seen before (same delivery id or signature) -> 200 "duplicate", nothing queued
    event not relevant (not our ticket, comment only...) -> 200 "ignored", nothing queued
    relevant event without its key (issue key, sys_id)   -> 400
    queued                                               -> 202

docs/webhooks.md explains the setup on each side; `webhooks_auth` the signature formats;
`webhooks_events` which events count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from werkzeug.wrappers import Request, Response

from config.settings import WebhookSettings
from sync.webhooks.auth import (
    ReplayGuard,
    hmac_sha256,
    servicenow_signed_message,
    sign_jira,
    sign_servicenow,
    signature_matches,
)
from sync.webhooks.events import (
    Ignored,
    Malformed,
    WorkItem,
    jira_timestamp_seconds,
    jira_work,
    servicenow_work,
)

__all__ = [
    "JIRA_PATH",
    "SERVICENOW_PATH",
    "WebhookReceiver",
    "WorkItem",
    "sign_jira",
    "sign_servicenow",
]

JIRA_PATH = "/webhooks/jira"
SERVICENOW_PATH = "/webhooks/servicenow"
Source = Literal["jira", "servicenow"]
Observer = Callable[[str, int, str], None]  # (source, status, outcome) for metrics

log = structlog.get_logger("slm_sync.webhooks")


class ByteStream(Protocol):
    """Where a request body is read from (werkzeug's `request.stream`, a file, a socket)."""

    def read(self, size: int, /) -> bytes: ...


class _Refused(Exception):
    """A request answered without queueing anything: status, outcome label, reason."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason


@dataclass(frozen=True)
class _Delivery:
    """An authenticated request: its parsed body, its time, and the keys that identify it."""

    payload: Mapping[str, Any]
    sent_at: float | None
    replay_keys: tuple[str, ...]


class WebhookReceiver:
    """Checks and routes webhook deliveries; see the module docstring for the answers."""

    def __init__(
        self,
        settings: WebhookSettings,
        enqueue: Callable[[WorkItem], None],
        clock: Callable[[], float] = time.time,
        observe: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.enqueue = enqueue
        self.clock = clock
        self.observe = observe
        self.replays = ReplayGuard(
            max_entries=settings.replay_cache_size,
            # A delivery may be dated up to the skew ahead; it must be remembered until it
            # has also fallen the skew behind, so twice the window.
            ttl_seconds=2.0 * settings.max_skew_seconds,
        )

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """(status, plain-text reason) for one POST to `path`."""
        source = self._source(path)
        if source is None:
            return 404, "not found"
        try:
            if len(body) > self.settings.max_body_bytes:
                raise self._too_large(len(body))
            item = self._accept(source, {k.lower(): v for k, v in headers.items()}, body)
        except _Refused as refused:
            return self._answer(source, refused.status, refused.outcome, refused.reason)
        return self._answer(source, 202, "queued", f"queued {item.kind} {item.key}")

    def handle_stream(
        self,
        path: str,
        headers: Mapping[str, str],
        stream: ByteStream,
        content_length: int | None,
    ) -> tuple[int, str]:
        """Like `handle`, reading the body from `stream`, never more than the limit plus one."""
        source = self._source(path)
        if source is None:
            return 404, "not found"
        limit = self.settings.max_body_bytes
        if content_length is not None and content_length > limit:
            return self._answer(source, 413, "too_large", self._too_large(content_length).reason)
        body = _read_at_most(stream, limit + 1)
        return self.handle(path, headers, body)

    def respond(self, request: Request) -> Response:
        """The werkzeug response for a request routed to `/webhooks/*` (for the HTTP server)."""
        if request.method != "POST":
            return Response("method not allowed\n", status=405, headers={"Allow": "POST"})
        status, reason = self.handle_stream(
            request.path, dict(request.headers), request.stream, request.content_length
        )
        return Response(reason + "\n", status=status, mimetype="text/plain")

    def _source(self, path: str) -> Source | None:
        if not self.settings.enabled:
            return None
        if path == JIRA_PATH and self.settings.jira_secret is not None:
            return "jira"
        if path == SERVICENOW_PATH and self.settings.servicenow_secret is not None:
            return "servicenow"
        return None

    def _accept(self, source: Source, headers: Mapping[str, str], body: bytes) -> WorkItem:
        delivery = self._authenticate(source, headers, body)
        now = self.clock()
        self._check_fresh(delivery.sent_at, now)
        if not self.replays.first_time(delivery.replay_keys, now):
            raise _Refused(200, "duplicate", "duplicate delivery ignored")
        item = self._work(source, delivery.payload, now)
        try:
            self.enqueue(item)
        except Exception as error:
            # Let the sender's retry through: this delivery was never acted on.
            self.replays.forget(delivery.replay_keys)
            log.error("webhook.enqueue_failed", source=source, key=item.key, error=str(error))
            raise _Refused(503, "unavailable", "queue unavailable, retry later") from error
        return item

    def _authenticate(self, source: Source, headers: Mapping[str, str], body: bytes) -> _Delivery:
        if source == "jira":
            return self._authenticate_jira(headers, body)
        return self._authenticate_servicenow(headers, body)

    def _authenticate_jira(self, headers: Mapping[str, str], body: bytes) -> _Delivery:
        signature = headers.get("x-hub-signature")
        if not signature:
            raise _Refused(401, "unauthenticated", "missing X-Hub-Signature")
        expected = hmac_sha256(self._secret("jira"), body)
        if not signature_matches(signature, expected, allow_base64=False):
            raise _Refused(401, "unauthenticated", "bad signature")
        payload = _json_object(body)
        keys = _replay_keys("jira", signature, headers.get("x-atlassian-webhook-identifier"))
        return _Delivery(payload, jira_timestamp_seconds(payload), keys)

    def _authenticate_servicenow(self, headers: Mapping[str, str], body: bytes) -> _Delivery:
        signature = headers.get("x-slm-signature")
        stamp = headers.get("x-slm-timestamp", "").strip()
        if not signature or not stamp:
            raise _Refused(401, "unauthenticated", "missing X-SLM-Signature or X-SLM-Timestamp")
        if not stamp.isdigit():
            raise _Refused(401, "unauthenticated", "X-SLM-Timestamp is not Unix seconds")
        expected = hmac_sha256(self._secret("servicenow"), servicenow_signed_message(stamp, body))
        if not signature_matches(signature, expected, allow_base64=True):
            raise _Refused(401, "unauthenticated", "bad signature")
        keys = _replay_keys("servicenow", signature, headers.get("x-slm-delivery"))
        return _Delivery(_json_object(body), float(stamp), keys)

    def _check_fresh(self, sent_at: float | None, now: float) -> None:
        if sent_at is None:
            raise _Refused(401, "stale", "no timestamp to check against replay")
        skew = now - sent_at
        if abs(skew) > self.settings.max_skew_seconds:
            raise _Refused(
                401,
                "stale",
                f"timestamp {skew:+.0f}s from now, outside {self.settings.max_skew_seconds}s"
                " (replayed, or a clock is wrong)",
            )

    def _work(self, source: Source, payload: Mapping[str, Any], now: float) -> WorkItem:
        try:
            if source == "jira":
                return jira_work(payload, label=self.settings.jira_label, received_at=now)
            return servicenow_work(payload, received_at=now)
        except Ignored as ignored:
            raise _Refused(200, "ignored", f"ignored: {ignored}") from None
        except Malformed as malformed:
            raise _Refused(400, "malformed", str(malformed)) from None

    def _secret(self, source: Source) -> str:
        secret = self.settings.jira_secret if source == "jira" else self.settings.servicenow_secret
        assert secret is not None  # _source() routes only to endpoints with a secret
        return secret.get_secret_value()

    def _too_large(self, size: int) -> _Refused:
        limit = self.settings.max_body_bytes
        return _Refused(413, "too_large", f"body of {size} bytes over the {limit}-byte limit")

    def _answer(self, source: Source, status: int, outcome: str, reason: str) -> tuple[int, str]:
        # The body never reaches a log line: only its verdict does.
        if status in (401, 413):
            log.warning("webhook.rejected", source=source, status=status, reason=reason)
        elif outcome == "duplicate":
            log.warning("webhook.replayed", source=source, status=status)
        elif outcome == "queued":
            log.info("webhook.queued", source=source, status=status, detail=reason)
        else:
            log.info(f"webhook.{outcome}", source=source, status=status, reason=reason)
        if self.observe is not None:
            self.observe(source, status, outcome)
        return status, reason


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Refused(400, "malformed", "body is not JSON") from None
    if not isinstance(payload, dict):
        raise _Refused(400, "malformed", "body is not a JSON object")
    return payload


def _replay_keys(source: Source, signature: str, delivery_id: str | None) -> tuple[str, ...]:
    # The delivery id header is not signed, so the signature is always a key too: replaying
    # the same body under a fresh id is still caught.
    keys = [f"{source}:sig:{signature.strip()}"]
    if delivery_id:
        keys.append(f"{source}:id:{delivery_id.strip()[:200]}")
    return tuple(keys)


def _read_at_most(stream: ByteStream, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
