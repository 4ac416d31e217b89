"""Authenticated webhooks: `POST /webhooks/jira` and `POST /webhooks/servicenow` queue work now.

The receiver only queues: it turns an authentic, fresh, first-seen, relevant event into a
`WorkItem` and hands it to `enqueue`; the engine does the work under the same leases and ledger
as a poll, so a webhook can never create a ticket twice. Checks, in order, each answered alone
(the outcome in brackets is the `reason` label of `slm_sync_webhook_rejections_total`):

    webhooks off, unknown path, endpoint without secret   -> 404 (nothing to probe, not counted)
    not a POST                                            -> 405 [method_not_allowed]
    Content-Type not application/json[; charset=utf-8]    -> 415 [unsupported_media_type], JSON
    body over webhooks.max_body_bytes                     -> 413 [too_large] (before reading more)
    signature missing, not canonical, or wrong            -> 401 [missing_signature,
                                                                  malformed_signature,
                                                                  bad_signature]
    body not a JSON object                                -> 400 [malformed]
    timestamp missing or not Unix seconds                 -> 401 [bad_timestamp]
    timestamp outside webhooks.max_skew_seconds           -> 401 [stale]
    digest (any spelling) or delivery id seen before      -> 200 "duplicate" [duplicate]
    event not relevant (not our ticket, comment only...)  -> 200 "ignored"
    relevant event without its key (issue key, sys_id)    -> 400 [malformed]
    the queue refused the work                            -> 503 [unavailable]
    queued                                                -> 202

Every refusal is counted through the observers; its log line is rate-limited per source and
outcome (`LogThrottle`), so a flood cannot flood the log. The body is never logged.
docs/webhooks.md explains the setup on each side; `auth` the accepted signature spellings;
`events` which events count.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from werkzeug.wrappers import Request, Response

from config.settings import WebhookSettings
from sync.webhooks.auth import (
    JIRA_ENCODINGS,
    SERVICENOW_ENCODINGS,
    Encoding,
    ReplayGuard,
    decode_signature,
    digest_matches,
    hmac_sha256,
    is_json_media_type,
    servicenow_signed_message,
    sign_jira,
    sign_servicenow,
)
from sync.webhooks.events import (
    Ignored,
    Malformed,
    WorkItem,
    jira_timestamp_seconds,
    jira_work,
    servicenow_work,
)
from sync.webhooks.throttle import LogThrottle

__all__ = [
    "JIRA_PATH",
    "REJECTIONS",
    "SERVICENOW_PATH",
    "Observer",
    "WebhookReceiver",
    "WorkItem",
    "sign_jira",
    "sign_servicenow",
]

JIRA_PATH = "/webhooks/jira"
SERVICENOW_PATH = "/webhooks/servicenow"
Source = Literal["jira", "servicenow"]
Observer = Callable[[str, int, str], None]  # (source, status, outcome) for metrics

# Outcomes that refuse a request, and the event their (rate-limited) log line carries.
_REJECTION_EVENTS: Mapping[str, str] = {
    "method_not_allowed": "webhook.rejected",
    "unsupported_media_type": "webhook.rejected",
    "too_large": "webhook.rejected",
    "missing_signature": "webhook.rejected",
    "malformed_signature": "webhook.rejected",
    "bad_signature": "webhook.rejected",
    "bad_timestamp": "webhook.rejected",
    "stale": "webhook.rejected",
    "malformed": "webhook.malformed",
    "duplicate": "webhook.replayed",
    "unavailable": "webhook.enqueue_failed",
}
REJECTIONS: frozenset[str] = frozenset(_REJECTION_EVENTS)
_SPELLINGS = {"hex": "<64 lowercase hex>", "base64": "<44 padded base64>"}
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")

log = structlog.get_logger("slm_sync.webhooks")


class ByteStream(Protocol):
    """Where a request body is read from (werkzeug's `request.stream`, a file, a socket)."""

    def read(self, size: int, /) -> bytes: ...


class _Refused(Exception):
    """A request answered without queueing anything: status, outcome, reason (to the sender)."""

    def __init__(self, status: int, outcome: str, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason
        self.detail = detail or reason  # what the log line says; never the body


@dataclass(frozen=True)
class _Delivery:
    """An authenticated request: its parsed body, its time, its digest and delivery id."""

    source: Source
    payload: Mapping[str, Any]
    sent_at: float | None
    digest: bytes
    delivery_id: str | None

    def replay_keys(self) -> tuple[str, ...]:
        """What identifies this delivery to the replay guard."""
        # The decoded digest, never the header's text: every spelling of one signature is one
        # delivery. The delivery id header is unsigned, so it only adds a key (the sender's
        # retries carry the same id), it never replaces the digest.
        keys = [f"{self.source}:mac:{self.sent_at}:{self.digest.hex()}"]
        if self.delivery_id:
            keys.append(f"{self.source}:id:{self.delivery_id.strip()[:200]}")
        return tuple(keys)


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
        self.observers: list[Observer] = [] if observe is None else [observe]
        self.throttle = LogThrottle(clock)
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
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            self._check_envelope(lowered, len(body))
            item = self._accept(source, lowered, body)
        except _Refused as refused:
            return self._refuse(source, refused)
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
        try:
            # Content type and declared size are refused before a byte of the body is read.
            self._check_envelope({k.lower(): v for k, v in headers.items()}, content_length)
        except _Refused as refused:
            return self._refuse(source, refused)
        body = _read_at_most(stream, self.settings.max_body_bytes + 1)
        return self.handle(path, headers, body)

    def respond(self, request: Request) -> Response:
        """The werkzeug response for a request routed to `/webhooks/*` (for the HTTP server)."""
        source = self._source(request.path)
        if source is None:
            return _response(404, "not found")
        if request.method != "POST":
            refused = _Refused(405, "method_not_allowed", "method not allowed")
            response = _response(*self._refuse(source, refused))
            response.headers["Allow"] = "POST"
            return response
        status, reason = self.handle_stream(
            request.path, dict(request.headers), request.stream, request.content_length
        )
        return _response(status, reason)

    def _source(self, path: str) -> Source | None:
        if not self.settings.enabled:
            return None
        if path == JIRA_PATH and self.settings.jira_secret is not None:
            return "jira"
        if path == SERVICENOW_PATH and self.settings.servicenow_secret is not None:
            return "servicenow"
        return None

    def _check_envelope(self, headers: Mapping[str, str], size: int | None) -> None:
        if not is_json_media_type(headers.get("content-type")):
            raise _Refused(
                415,
                "unsupported_media_type",
                "Content-Type must be application/json (optionally ; charset=utf-8)",
            )
        if size is not None and size > self.settings.max_body_bytes:
            limit = self.settings.max_body_bytes
            raise _Refused(413, "too_large", f"body of {size} bytes over the {limit}-byte limit")

    def _accept(self, source: Source, headers: Mapping[str, str], body: bytes) -> WorkItem:
        delivery = self._authenticate(source, headers, body)
        now = self.clock()
        self._check_fresh(delivery.sent_at, now)
        keys = delivery.replay_keys()
        if not self.replays.first_time(keys, now):
            raise _Refused(200, "duplicate", "duplicate delivery ignored")
        item = self._work(source, delivery.payload, now)
        try:
            self.enqueue(item)
        except Exception as error:
            # Let the sender's retry through: this delivery was never acted on.
            self.replays.forget(keys)
            raise _Refused(
                503, "unavailable", "queue unavailable, retry later", f"{item.key}: {error}"
            ) from error
        return item

    def _authenticate(self, source: Source, headers: Mapping[str, str], body: bytes) -> _Delivery:
        if source == "jira":
            return self._authenticate_jira(headers, body)
        return self._authenticate_servicenow(headers, body)

    def _authenticate_jira(self, headers: Mapping[str, str], body: bytes) -> _Delivery:
        digest = self._verified_digest(
            "X-Hub-Signature",
            headers.get("x-hub-signature"),
            JIRA_ENCODINGS,
            lambda: hmac_sha256(self._secret("jira"), body),
        )
        payload = _json_object(body)
        delivery_id = headers.get("x-atlassian-webhook-identifier")
        return _Delivery("jira", payload, jira_timestamp_seconds(payload), digest, delivery_id)

    def _authenticate_servicenow(self, headers: Mapping[str, str], body: bytes) -> _Delivery:
        signature = headers.get("x-slm-signature")
        if not signature:
            raise _Refused(401, "missing_signature", "missing X-SLM-Signature")
        stamp = headers.get("x-slm-timestamp", "").strip()
        if not stamp:
            raise _Refused(401, "bad_timestamp", "missing X-SLM-Timestamp")
        if not _UNIX_SECONDS.fullmatch(stamp):
            raise _Refused(401, "bad_timestamp", "X-SLM-Timestamp is not Unix seconds")
        digest = self._verified_digest(
            "X-SLM-Signature",
            signature,
            SERVICENOW_ENCODINGS,
            lambda: hmac_sha256(self._secret("servicenow"), servicenow_signed_message(stamp, body)),
        )
        payload = _json_object(body)
        delivery_id = headers.get("x-slm-delivery")
        return _Delivery("servicenow", payload, float(stamp), digest, delivery_id)

    def _verified_digest(
        self,
        name: str,
        header: str | None,
        encodings: Collection[Encoding],
        expected: Callable[[], bytes],
    ) -> bytes:
        if not header:
            raise _Refused(401, "missing_signature", f"missing {name}")
        given = decode_signature(header, encodings)
        if given is None:
            spelled = " or ".join(f"sha256={_SPELLINGS[e]}" for e in encodings)
            raise _Refused(401, "malformed_signature", f"{name} is not {spelled}")
        if not digest_matches(given, expected()):
            raise _Refused(401, "bad_signature", "bad signature")
        return given

    def _check_fresh(self, sent_at: float | None, now: float) -> None:
        if sent_at is None:
            raise _Refused(401, "bad_timestamp", "no timestamp to check against replay")
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

    def _refuse(self, source: Source, refused: _Refused) -> tuple[int, str]:
        if refused.outcome in REJECTIONS:
            self._log_rejection(source, refused)
        return self._answer(source, refused.status, refused.outcome, refused.reason)

    def _log_rejection(self, source: Source, refused: _Refused) -> None:
        suppressed = self.throttle.admit(source, refused.outcome)
        if suppressed is None:
            return
        emit = log.error if refused.outcome == "unavailable" else log.warning
        emit(
            _REJECTION_EVENTS[refused.outcome],
            source=source,
            status=refused.status,
            outcome=refused.outcome,
            reason=refused.detail,
            suppressed=suppressed,
        )

    def _answer(self, source: Source, status: int, outcome: str, reason: str) -> tuple[int, str]:
        # The body never reaches a log line: only its verdict does. Rejections were logged
        # (rate-limited) by _refuse; only authentic deliveries are logged here, each once.
        if outcome == "queued":
            log.info("webhook.queued", source=source, status=status, detail=reason)
        elif outcome not in REJECTIONS:
            log.info(f"webhook.{outcome}", source=source, status=status, reason=reason)
        for observe in self.observers:
            observe(source, status, outcome)
        return status, reason


def _response(status: int, reason: str) -> Response:
    if status == 415:
        body = json.dumps({"error": "unsupported media type", "detail": reason})
        return Response(body + "\n", status=status, mimetype="application/json")
    return Response(reason + "\n", status=status, mimetype="text/plain")


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Refused(400, "malformed", "body is not JSON") from None
    if not isinstance(payload, dict):
        raise _Refused(400, "malformed", "body is not a JSON object")
    return payload


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
